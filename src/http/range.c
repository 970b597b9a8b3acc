#include "http/range.h"

#include <string.h>

/* 1*DIGIT into *v; false on no digits or past 2^63. Advances *p. */
static bool digits(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;
	uint64_t n = 0;

	while (s < end && *s >= '0' && *s <= '9') {
		if (n > (UINT64_MAX / 2 - 9) / 10)
			return false;
		n = n * 10 + (uint64_t)(*s - '0');
		s++;
	}
	if (s == *p)
		return false;
	*p = s;
	*v = n;
	return true;
}

enum range_result range_parse(struct sv value, uint64_t len, uint64_t *first, uint64_t *last)
{
	struct sv v = sv_trim_ows(value);
	const char *p, *end;
	uint64_t a = 0, b = 0;
	bool have_a, have_b = false;

	if (v.len < 6 || !sv_istarts(v, "bytes="))
		return RANGE_IGNORE;
	p = v.p + 6;
	end = v.p + v.len;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	have_a = digits(&p, end, &a);
	if (p >= end || *p != '-')
		return RANGE_IGNORE;
	p++;
	if (p < end && *p >= '0' && *p <= '9')
		have_b = digits(&p, end, &b);
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p != end) /* a second range, or junk */
		return RANGE_IGNORE;
	if (!have_a && !have_b)
		return RANGE_IGNORE;
	if (!have_a) { /* suffix: the last b bytes */
		if (b == 0)
			return RANGE_UNSATISFIABLE;
		if (len == 0) /* satisfiable, but no 206 can say so: the whole */
			return RANGE_IGNORE;
		*first = b >= len ? 0 : len - b;
		*last = len - 1;
		return RANGE_OK;
	}
	if (have_b && b < a)
		return RANGE_IGNORE;
	if (a >= len)
		return RANGE_UNSATISFIABLE;
	*first = a;
	*last = have_b && b < len ? b : len - 1;
	return RANGE_OK;
}

#include "base/sv.h"

#include <string.h>

struct sv sv_from_cstr(const char *s)
{
	return sv_make(s, strlen(s));
}

bool sv_eq(struct sv a, struct sv b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

bool sv_ieq(struct sv a, struct sv b)
{
	if (a.len != b.len)
		return false;
	for (size_t i = 0; i < a.len; i++)
		if (lower((unsigned char)a.p[i]) != lower((unsigned char)b.p[i]))
			return false;
	return true;
}

bool sv_ieq_cstr(struct sv a, const char *s)
{
	return sv_ieq(a, sv_from_cstr(s));
}

bool sv_istarts(struct sv a, const char *prefix)
{
	size_t n = strlen(prefix);
	return a.len >= n && sv_ieq(sv_make(a.p, n), sv_make(prefix, n));
}

struct sv sv_trim_ows(struct sv a)
{
	while (a.len > 0 && (a.p[0] == ' ' || a.p[0] == '\t')) {
		a.p++;
		a.len--;
	}
	while (a.len > 0 && (a.p[a.len - 1] == ' ' || a.p[a.len - 1] == '\t'))
		a.len--;
	return a;
}

int sv_to_u64(struct sv a, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (a.len == 0)
		return -1;
	for (size_t i = 0; i < a.len; i++) {
		unsigned char c = (unsigned char)a.p[i];
		if (c < '0' || c > '9')
			return -1;
		unsigned d = c - '0';
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

bool sv_next_list_elem(struct sv *rest, struct sv *elem)
{
	while (rest->len > 0) {
		const char *comma = memchr(rest->p, ',', rest->len);
		size_t n = comma ? (size_t)(comma - rest->p) : rest->len;
		struct sv e = sv_trim_ows(sv_make(rest->p, n));
		rest->p += comma ? n + 1 : n;
		rest->len -= comma ? n + 1 : n;
		if (e.len > 0) {
			*elem = e;
			return true;
		}
	}
	return false;
}

bool sv_list_has_token(struct sv list, const char *tok)
{
	struct sv e;
	while (sv_next_list_elem(&list, &e)) {
		const char *semi = memchr(e.p, ';', e.len);
		if (semi)
			e = sv_trim_ows(sv_make(e.p, (size_t)(semi - e.p)));
		if (sv_ieq_cstr(e, tok))
			return true;
	}
	return false;
}

bool sv_is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool sv_is_token(struct sv a)
{
	if (a.len == 0)
		return false;
	for (size_t i = 0; i < a.len; i++)
		if (!sv_is_tchar((unsigned char)a.p[i]))
			return false;
	return true;
}

int sv_pct_at(struct sv s, size_t i)
{
	if (i + 2 >= s.len)
		return -1;
	int hi = sv_hexval((unsigned char)s.p[i + 1]), lo = sv_hexval((unsigned char)s.p[i + 2]);
	return hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
}

int sv_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#include "buf/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbuf_init(struct sbuf *s, size_t max)
{
	*s = (struct sbuf){.max = max};
}

static bool reserve(struct sbuf *s, size_t n)
{
	size_t want;

	if (s->failed)
		return false;
	if (n > s->max - s->len) {
		s->failed = true;
		return false;
	}
	want = s->len + n + 1;
	if (want > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		while (cap < want)
			cap *= 2;
		s->p = sl_realloc(s->p, cap);
		s->cap = cap;
	}
	return true;
}

void sbuf_add(struct sbuf *s, const void *p, size_t n)
{
	if (n == 0 || !reserve(s, n))
		return;
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
}

void sbuf_add_sv(struct sbuf *s, struct sv v)
{
	sbuf_add(s, v.p, v.len);
}

void sbuf_add_str(struct sbuf *s, const char *str)
{
	sbuf_add(s, str, strlen(str));
}

void sbuf_add_char(struct sbuf *s, char c)
{
	sbuf_add(s, &c, 1);
}

void sbuf_add_u64(struct sbuf *s, unsigned long long v)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sbuf_add(s, tmp + i, sizeof(tmp) - i);
}

void sbuf_add_i64(struct sbuf *s, long long v)
{
	if (v < 0) {
		sbuf_add_char(s, '-');
		sbuf_add_u64(s, 0ull - (unsigned long long)v);
	} else {
		sbuf_add_u64(s, (unsigned long long)v);
	}
}

void sbuf_printf(struct sbuf *s, const char *fmt, ...)
{
	va_list ap;
	int n;
	char tmp[256];

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0) {
		s->failed = true;
		return;
	}
	if ((size_t)n < sizeof(tmp)) {
		sbuf_add(s, tmp, (size_t)n);
		return;
	}
	if (!reserve(s, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(s->p + s->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	s->len += (size_t)n;
}

void sbuf_reset(struct sbuf *s)
{
	s->len = 0;
	s->failed = false;
	if (s->p)
		s->p[0] = '\0';
}

void sbuf_free(struct sbuf *s)
{
	free(s->p);
	s->p = NULL;
	s->len = s->cap = 0;
	s->failed = false;
}

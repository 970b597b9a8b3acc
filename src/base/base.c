#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

noreturn void sl_assert_fail(const char *expr, const char *file, int line, const char *func)
{
	fprintf(stderr, "sluice: assertion failed: %s (%s:%d, %s)\n", expr, file, line, func);
	abort();
}

static noreturn void oom(size_t n)
{
	fprintf(stderr, "sluice: out of memory allocating %zu bytes\n", n);
	abort();
}

void *sl_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *sl_calloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *sl_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		oom(n);
	return q;
}

char *sl_strndup(const char *s, size_t n)
{
	char *p = sl_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

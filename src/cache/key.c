#include "cache/key.h"

#include <stdio.h>
#include <string.h>
#include <xxhash.h>

struct out {
	char *p;
	size_t len, cap;
	bool full;
};

static void put(struct out *o, char c)
{
	if (o->len == o->cap) {
		o->full = true;
		return;
	}
	o->p[o->len++] = c;
}

static void puts_(struct out *o, const char *s)
{
	while (*s)
		put(o, *s++);
}

/* RFC 3986 §2.3 */
static bool unreserved(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

long cache_key_make(struct sv host, bool ipv6, uint16_t port, struct sv path, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	struct out o = {.p = out, .cap = cap};
	char num[8];

	puts_(&o, "http://");
	if (ipv6)
		put(&o, '[');
	else if (host.len > 1 && host.p[host.len - 1] == '.')
		host.len--; /* the root label: "example.com." names example.com */
	for (size_t i = 0; i < host.len; i++) {
		char c = host.p[i];
		put(&o, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
	}
	if (ipv6)
		put(&o, ']');
	snprintf(num, sizeof(num), ":%u", (unsigned)port);
	puts_(&o, num);
	if (path.len == 0)
		put(&o, '/');
	for (size_t i = 0; i < path.len; i++) {
		char c = path.p[i];
		if (c != '%') {
			put(&o, c);
			continue;
		}
		int v = sv_pct_at(path, i);
		if (v < 0)
			return -1;
		if (unreserved(v)) {
			put(&o, (char)v);
		} else {
			put(&o, '%');
			put(&o, hex[v >> 4]);
			put(&o, hex[v & 15]);
		}
		i += 2;
	}
	return o.full ? -1 : (long)o.len;
}

uint64_t cache_key_hash(const char *key, size_t len)
{
	return XXH3_64bits(key, len);
}

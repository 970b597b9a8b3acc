/* fuzz_uri.c - libFuzzer target for uri_parse_absolute, uri_parse_authority,
 * uri_parse_host, uri_parse_origin and uri_route_path.
 *
 * Input: one byte choosing the function and default port, then the text
 * (for uri_parse_origin, the target, a newline, the Host value).
 * Checked: return codes from the documented set; views inside the input
 * (or the static "/" for an empty path); host non-empty, capped, port
 * non-zero; an absolute-form's authority parses the same as a Host value;
 * an origin-form target with its Host names what the absolute form
 * "http://" Host target names; uri_route_path of its path is no longer,
 * has no query or dot segment and is its own normal form. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"
#include "buf/limits.h"
#include "http/uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(struct sv s, const char *buf, size_t len)
{
	return s.p >= buf && s.len <= len && (size_t)(s.p - buf) <= len - s.len;
}

static void check_host(const struct uri *u, struct sv in)
{
	SL_ASSERT(inside(u->host, in.p, in.len));
	SL_ASSERT(u->host.len >= 1 && u->host.len <= HOST_NAME_MAX_LEN);
	SL_ASSERT(u->port != 0);
	SL_ASSERT(uri_host_eq(u->host, u->host));
	for (size_t i = 0; i < u->host.len; i++) {
		unsigned char c = (unsigned char)u->host.p[i];
		SL_ASSERT(c > 0x20 && c < 0x7f && c != '/' && c != '@' && c != '#');
		SL_ASSERT(u->host_is_ipv6 || c != ':');
	}
}

/* The path routes see: never longer, no query, no dot segment, and the
 * same when normalised again. */
static void check_route_path(struct sv path)
{
	static char a[8192], b[8192];
	if (path.len > sizeof(a))
		return;
	long n = uri_route_path(path, a, path.len);
	if (n < 0)
		return;
	SL_ASSERT((size_t)n <= path.len && memchr(a, '?', (size_t)n) == NULL);
	for (long i = 0; i + 1 < n; i++) { /* no "/." or "/.." segment, ";p" or not */
		if (a[i] != '/' || a[i + 1] != '.')
			continue;
		long j = i + 2 < n && a[i + 2] == '.' ? i + 3 : i + 2;
		SL_ASSERT(j < n && a[j] != '/' && a[j] != ';');
	}
	long m = uri_route_path(sv_make(a, (size_t)n), b, (size_t)n);
	SL_ASSERT(m == n && memcmp(a, b, (size_t)n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct sv in = sv_make((const char *)data + 1, size - 1);
	uint16_t defport = (uint16_t)(1 + data[0] * 257);
	struct uri u, h;
	int rc;

	switch (data[0] % 4) {
	case 0:
		rc = uri_parse_absolute(in, &u);
		SL_ASSERT(rc == 0 || rc == -1 || rc == -2);
		if (rc != 0)
			break;
		check_host(&u, in);
		SL_ASSERT(sv_ieq_cstr(u.scheme, "http") && u.scheme.p == in.p);
		SL_ASSERT(u.port_explicit || u.port == 80);
		SL_ASSERT(u.path.len >= 1 && u.path.p[0] == (u.query_only ? '?' : '/'));
		SL_ASSERT(memchr(u.path.p, '#', u.path.len) == NULL);
		if (u.query_only) {
			SL_ASSERT(u.path_empty && inside(u.path, in.p, in.len));
			SL_ASSERT(u.path.p + u.path.len == in.p + in.len);
		} else if (u.path_empty) {
			SL_ASSERT(u.path.len == 1);
		} else {
			SL_ASSERT(inside(u.path, in.p, in.len));
			SL_ASSERT(u.path.p + u.path.len == in.p + in.len);
		}
		/* the authority is a valid Host value naming the same thing */
		{
			const char *a = in.p + 7;
			const char *end =
				(u.path_empty && !u.query_only) ? in.p + in.len : u.path.p;
			SL_ASSERT(uri_parse_host(sv_make(a, (size_t)(end - a)), 80, &h) == 0);
			SL_ASSERT(sv_eq(h.host, u.host) && h.port == u.port);
			SL_ASSERT(h.host_is_ipv6 == u.host_is_ipv6);
		}
		break;
	case 1:
		rc = uri_parse_authority(in, &u);
		SL_ASSERT(rc == 0 || rc == -1);
		if (rc != 0)
			break;
		check_host(&u, in);
		SL_ASSERT(u.port_explicit);
		SL_ASSERT(u.host.p + u.host.len + u.host_is_ipv6 < in.p + in.len);
		break;
	case 3: {
		const char *nl = memchr(in.p, '\n', in.len);
		if (nl == NULL)
			break;
		struct sv target = sv_make(in.p, (size_t)(nl - in.p));
		struct sv host = sv_make(nl + 1, in.len - target.len - 1);
		rc = uri_parse_origin(target, host, &u);
		SL_ASSERT(rc == 0 || rc == -1);
		if (rc != 0)
			break;
		check_host(&u, host);
		SL_ASSERT(u.port_explicit || u.port == 80);
		SL_ASSERT(sv_eq(u.path, target) && target.len >= 1 && target.p[0] == '/');
		SL_ASSERT(sv_ieq_cstr(u.scheme, "http") && !u.path_empty);
		check_route_path(u.path);
		/* the same as the absolute form it stands for */
		char abs[8192];
		if (7 + host.len + target.len > sizeof(abs))
			break;
		memcpy(abs, "http://", 7);
		memcpy(abs + 7, host.p, host.len);
		memcpy(abs + 7 + host.len, target.p, target.len);
		SL_ASSERT(uri_parse_absolute(sv_make(abs, 7 + host.len + target.len), &h) == 0);
		SL_ASSERT(sv_eq(h.host, u.host) && h.port == u.port && !h.path_empty);
		SL_ASSERT(h.path.len == u.path.len && memcmp(h.path.p, u.path.p, u.path.len) == 0);
		break;
	}
	default:
		rc = uri_parse_host(in, defport, &u);
		SL_ASSERT(rc == 0 || rc == -1);
		if (rc != 0)
			break;
		check_host(&u, in);
		SL_ASSERT(u.port_explicit || u.port == defport);
		/* a Host value with its port is an authority-form target */
		if (u.port_explicit)
			SL_ASSERT(uri_parse_authority(in, &h) == 0 && sv_eq(h.host, u.host));
		break;
	}
	return 0;
}

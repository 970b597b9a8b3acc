/* uri.c - request targets and Host values (RFC 3986, RFC 9110 §4, §7.2,
 * RFC 9112 §3.2). */
#include "http/uri.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "buf/limits.h"

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_unreserved(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool is_sub_delim(unsigned char c)
{
	return c != 0 && strchr("!$&'()*+,;=", c) != NULL;
}

/* True if a '%' at s[i] starts a valid pct-encoded triple. */
static bool pct_ok(struct sv s, size_t i)
{
	return i + 2 < s.len && is_hex((unsigned char)s.p[i + 1]) &&
	       is_hex((unsigned char)s.p[i + 2]);
}

/* host [ ":" port ] (RFC 3986 §3.2.2-3.2.3), host being reg-name, IPv4
 * literal or "[" IPv6 "]". IPvFuture and IPv6 zone identifiers are refused:
 * nothing downstream could connect to them. */
static int parse_hostport(struct sv a, bool port_required, uint16_t default_port, struct uri *out)
{
	struct sv host;
	size_t i;

	if (a.len == 0)
		return -1;
	if (a.p[0] == '[') {
		const char *close = memchr(a.p, ']', a.len);
		char tmp[INET6_ADDRSTRLEN];
		struct in6_addr addr;

		if (close == NULL)
			return -1;
		host = sv_make(a.p + 1, (size_t)(close - a.p) - 1);
		if (host.len == 0 || host.len >= sizeof(tmp))
			return -1;
		/* inet_pton wants a C string: a NUL inside the brackets
		 * would hide what follows it, so the alphabet is checked
		 * first; inet_pton then checks the form */
		for (i = 0; i < host.len; i++) {
			unsigned char c = (unsigned char)host.p[i];
			if (!is_hex(c) && c != ':' && c != '.')
				return -1;
		}
		memcpy(tmp, host.p, host.len);
		tmp[host.len] = '\0';
		if (inet_pton(AF_INET6, tmp, &addr) != 1)
			return -1;
		out->host_is_ipv6 = true;
		i = (size_t)(close - a.p) + 1;
	} else {
		for (i = 0; i < a.len && a.p[i] != ':'; i++) {
			unsigned char c = (unsigned char)a.p[i];
			if (c == '%') {
				if (!pct_ok(a, i))
					return -1;
				i += 2;
			} else if (!is_unreserved(c) && !is_sub_delim(c)) {
				return -1;
			}
		}
		host = sv_make(a.p, i);
		if (host.len == 0)
			return -1;
		out->host_is_ipv6 = false;
	}
	if (host.len > HOST_NAME_MAX_LEN)
		return -1;
	out->host = host;

	if (i == a.len) {
		if (port_required)
			return -1;
		out->port = default_port;
		out->port_explicit = false;
		return 0;
	}
	if (a.p[i] != ':')
		return -1;
	/* An empty port is legal in RFC 3986 but means nothing useful here;
	 * refusing it keeps "host:" from meaning two things. */
	uint64_t port;
	if (sv_to_u64(sv_make(a.p + i + 1, a.len - i - 1), 65535, &port) != 0 || port == 0)
		return -1;
	out->port = (uint16_t)port;
	out->port_explicit = true;
	return 0;
}

/* path-abempty [ "?" query ]: the query's characters are the path's plus
 * '?', so the first '?' needs no special case. */
static bool path_ok(struct sv p)
{
	for (size_t i = 0; i < p.len; i++) {
		unsigned char c = (unsigned char)p.p[i];
		if (c == '%') {
			if (!pct_ok(p, i))
				return false;
			i += 2;
		} else if (!is_unreserved(c) && !is_sub_delim(c) && c != ':' && c != '@' &&
			   c != '/' && c != '?') {
			return false;
		}
	}
	return true;
}

static void uri_clear(struct uri *out)
{
	*out = (struct uri){.scheme = SV_NULL, .host = SV_NULL, .path = SV_NULL};
}

int uri_parse_absolute(struct sv target, struct uri *out)
{
	SL_ASSERT(out != NULL);
	uri_clear(out);

	const char *colon = target.len ? memchr(target.p, ':', target.len) : NULL;
	if (colon == NULL || colon == target.p)
		return -1;
	struct sv scheme = sv_make(target.p, (size_t)(colon - target.p));
	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
	if (!is_alpha((unsigned char)scheme.p[0]))
		return -1;
	for (size_t i = 1; i < scheme.len; i++) {
		unsigned char c = (unsigned char)scheme.p[i];
		if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.')
			return -1;
	}
	if (!sv_ieq_cstr(scheme, "http"))
		return -2;

	size_t pos = scheme.len + 1;
	if (target.len - pos < 2 || target.p[pos] != '/' || target.p[pos + 1] != '/')
		return -1;
	pos += 2;

	size_t auth = pos;
	while (pos < target.len && target.p[pos] != '/' && target.p[pos] != '?' &&
	       target.p[pos] != '#') {
		/* userinfo is refused outright (RFC 9110 §4.2.4): it is how
		 * "http://good.example@evil.example/" fools readers */
		if (target.p[pos] == '@')
			return -1;
		pos++;
	}
	if (parse_hostport(sv_make(target.p + auth, pos - auth), false, 80, out) != 0)
		return -1;
	out->scheme = scheme;

	struct sv rest = sv_make(target.p + pos, target.len - pos);
	if (rest.len == 0) {
		out->path = SV_LIT("/");
		out->path_empty = true;
		return 0;
	}
	/* A query with no path ("http://a?q"): the path is empty, and its
	 * origin-form is "/" followed by the query, which the caller writes. */
	if (rest.p[0] == '?') {
		if (!path_ok(rest))
			return -1;
		out->path = rest;
		out->path_empty = true;
		out->query_only = true;
		return 0;
	}
	if (rest.p[0] != '/' || !path_ok(rest))
		return -1;
	out->path = rest;
	return 0;
}

int uri_parse_authority(struct sv target, struct uri *out)
{
	SL_ASSERT(out != NULL);
	uri_clear(out);
	if (parse_hostport(target, true, 0, out) != 0)
		return -1;
	out->path_empty = true;
	return 0;
}

int uri_parse_host(struct sv value, uint16_t default_port, struct uri *out)
{
	SL_ASSERT(out != NULL);
	uri_clear(out);
	if (parse_hostport(value, false, default_port, out) != 0)
		return -1;
	out->path_empty = true;
	return 0;
}

int uri_parse_origin(struct sv target, struct sv host, struct uri *out)
{
	if (uri_parse_host(host, 80, out) != 0)
		return -1;
	if (target.len == 0 || target.p[0] != '/' || !path_ok(target)) {
		uri_clear(out);
		return -1;
	}
	out->scheme = SV_LIT("http");
	out->path = target;
	out->path_empty = false;
	return 0;
}

/* Whether a path segment [p, p+len) is "." or "..", ";params" aside. */
static bool dot_segment(const char *p, size_t len)
{
	const char *semi = memchr(p, ';', len);
	if (semi)
		len = (size_t)(semi - p);
	return (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.');
}

long uri_route_path(struct sv path, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (size_t i = 0; i < path.len && path.p[i] != '?'; i++) {
		unsigned char c = (unsigned char)path.p[i];
		if (n >= cap)
			return -1;
		if (c != '%') {
			if (!is_unreserved(c) && !is_sub_delim(c) && c != ':' && c != '@' &&
			    c != '/')
				return -1;
			out[n++] = (char)c;
			continue;
		}
		int pct = sv_pct_at(path, i);
		if (pct < 0)
			return -1;
		unsigned char v = (unsigned char)pct;
		i += 2;
		if (is_unreserved(v) || v == '/' || v == '\\' || v == ';') {
			/* A backslash is a "/" to some servers, and a ";" starts the
			 * parameters some drop: read as either would. */
			out[n++] = v == '\\' ? '/' : (char)v;
		} else {
			if (n + 3 > cap)
				return -1;
			out[n++] = '%';
			out[n++] = hex[v >> 4];
			out[n++] = hex[v & 15];
		}
	}
	for (size_t a = 0; a < n;) { /* each segment: after a '/', up to the next */
		size_t b = a + 1;
		while (b < n && out[b] != '/')
			b++;
		if (out[a] == '/' && dot_segment(out + a + 1, b - a - 1))
			return -1;
		a = b;
	}
	return (long)n;
}

bool uri_ipv6_canonical(struct sv host, char *out, size_t cap)
{
	char tmp[INET6_ADDRSTRLEN];
	struct in6_addr a6;
	if (host.len >= sizeof(tmp))
		return false;
	memcpy(tmp, host.p, host.len);
	tmp[host.len] = '\0';
	return inet_pton(AF_INET6, tmp, &a6) == 1 &&
	       inet_ntop(AF_INET6, &a6, out, (socklen_t)cap) != NULL;
}

static struct sv host_no_root(struct sv h)
{
	if (h.len > 1 && h.p[h.len - 1] == '.')
		h.len--;
	return h;
}

bool uri_host_eq(struct sv a, struct sv b)
{
	return sv_ieq(host_no_root(a), host_no_root(b));
}

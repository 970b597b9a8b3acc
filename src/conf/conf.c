/* conf.c - config grammar, directive registry and snapshots.
 *
 * Loading is: start from the built-in defaults (themselves written as config
 * text in the directive table, so the documented default and the real one
 * cannot drift apart), read each line, split it into arguments, look the first
 * one up in the table and hand the rest to that directive's parser, which
 * writes into struct conf. Checks that span directives run once at the end. */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/sv.h"
#include "buf/limits.h"
#include "http/uri.h"

#define DAY_MS	    (24ull * 3600 * 1000)
#define MANY	    SIZE_MAX /* no upper bound on the number of arguments */
#define MAX_THREADS 256
/* busy_poll INTERVAL is 10us..10ms (naps shorter than 10us cost a core, as
 * spinning does), WINDOW at most 1s and by default 10 INTERVALs. */
#define BUSY_POLL_MAX_US	 10000u
#define BUSY_POLL_WINDOW_MAX_US	 1000000u
#define BUSY_POLL_WINDOW_DEFAULT 10u
#define MAX_CONN_LIMIT		 1000000
#define MAX_DNS_CACHE		 1000000

struct loader;
struct directive;

/* A directive parser gets the arguments after the name; argc is already
 * within the directive's bounds. Returns 0 or -1 after calling fail(). */
typedef int parse_fn(struct loader *l, const struct directive *d, size_t argc, char **argv);

static parse_fn p_bool, p_count, p_size, p_duration, p_string, p_hostname;
static parse_fn p_listen, p_threads, p_allow, p_connect_ports, p_access_log, p_log_level;
static parse_fn p_dns_servers, p_include, p_backend, p_route, p_cache_dir, p_busy_poll;
static parse_fn p_count_auto;

#define F(field) offsetof(struct conf, field)
#define NOFIELD	 0

/* Every directive, one entry each:
 *   X(name, parser, field offset, min args, max args, min value, max value,
 *     usage, default as config text (NULL: none, or computed), doc)
 * The value bounds are read by the generic numeric parsers (count, size in
 * bytes, duration in ms), by threads and by busy_poll (its INTERVAL, in us);
 * others ignore them. Adding a directive is one entry here (and a parser if
 * no generic one fits), a field in struct conf, and its section in
 * docs/config.md. */
#define CONF_DIRECTIVES(X)                                                                         \
	X(listen, p_listen, F(listen), 1, 1, 0, 0, "ADDR:PORT", "127.0.0.1:3128",                  \
	  "address to accept proxy clients on; repeatable")                                        \
	X(threads, p_threads, F(threads), 1, 1, 1, MAX_THREADS, "N|auto", "auto",                  \
	  "worker threads; auto = one per core")                                                   \
	X(busy_poll, p_busy_poll, NOFIELD, 1, 2, 10, BUSY_POLL_MAX_US, "off|INTERVAL [WINDOW]",    \
	  "off", "while busy, look for events every INTERVAL instead of waiting to be woken")      \
	X(allow, p_allow, F(allow), 1, MANY, 0, 0, "CIDR|all|none...", "127.0.0.0/8 ::1",          \
	  "client networks allowed to use the proxy; repeatable")                                  \
	X(connect_ports, p_connect_ports, F(connect_ports), 1, MANY, 0, 0,                         \
	  "PORT|LO-HI|any|none...", "443", "ports CONNECT may reach; repeatable")                  \
	X(via, p_bool, F(via), 1, 1, 0, 0, "on|off", "on", "add a Via header")                     \
	X(forwarded_for, p_bool, F(forwarded_for), 1, 1, 0, 0, "on|off", "off",                    \
	  "add an X-Forwarded-For header")                                                         \
	X(visible_hostname, p_hostname, F(visible_hostname), 1, 1, 1, HOST_NAME_MAX_LEN, "NAME",   \
	  NULL, "name in Via and error pages; default: the host name")                             \
	X(access_log, p_access_log, NOFIELD, 1, 2, 0, 0, "PATH|stderr|off [squid|combined]",       \
	  "stderr squid", "where and how to log each request")                                     \
	X(log_level, p_log_level, F(log_level), 1, 1, 0, 0, "error|warn|info|debug", "info",       \
	  "verbosity of the error log")                                                            \
	X(connect_timeout, p_duration, F(connect_timeout_ms), 1, 1, 1, DAY_MS, "DURATION", "10s",  \
	  "time to connect to an origin")                                                          \
	X(read_timeout, p_duration, F(read_timeout_ms), 1, 1, 1, DAY_MS, "DURATION", "60s",        \
	  "time without bytes from a peer in the middle of a message")                             \
	X(client_idle_timeout, p_duration, F(client_idle_timeout_ms), 1, 1, 1, DAY_MS, "DURATION", \
	  "60s", "keep-alive time of an idle client connection")                                   \
	X(upstream_idle_timeout, p_duration, F(upstream_idle_timeout_ms), 1, 1, 1, DAY_MS,         \
	  "DURATION", "30s", "time an idle origin connection stays pooled")                        \
	X(half_closed_clients, p_bool, F(half_closed_clients), 1, 1, 0, 0, "on|off", "off",        \
	  "a client's FIN alone does not end a request still waiting for its answer")              \
	X(tunnel_idle_timeout, p_duration, F(tunnel_idle_timeout_ms), 1, 1, 1, DAY_MS, "DURATION", \
	  "10m", "time a CONNECT tunnel may pass no bytes")                                        \
	X(shutdown_timeout, p_duration, F(shutdown_timeout_ms), 1, 1, 1, DAY_MS, "DURATION",       \
	  "10s", "time in-flight requests get after SIGTERM")                                      \
	X(max_connections, p_count, F(max_connections), 1, 1, 1, MAX_CONN_LIMIT, "N", "10000",     \
	  "client connections open at once, whole process")                                        \
	X(max_connections_per_client, p_count_auto, F(max_connections_per_client), 1, 1, 0,        \
	  MAX_CONN_LIMIT, "N|auto", "auto",                                                        \
	  "client connections per client address; 0 = no limit, auto = max_connections / 4")       \
	X(max_header_size, p_size, F(max_header_size), 1, 1, 1024, MAX_HEADER_SIZE_CEIL, "SIZE",   \
	  "32K", "largest request head")                                                           \
	X(max_headers, p_count, F(max_headers), 1, 1, 1, MAX_HEADERS_CEIL, "N", "100",             \
	  "most header fields in a request")                                                       \
	X(max_request_line, p_size, F(max_request_line), 1, 1, 256, MAX_HEADER_SIZE_CEIL, "SIZE",  \
	  "8K", "longest request line; at most max_header_size")                                   \
	X(dns_servers, p_dns_servers, F(dns_servers), 1, MANY, 0, 0, "IP[:PORT]...", NULL,         \
	  "DNS servers; default: those in /etc/resolv.conf")                                       \
	X(dns_cache_size, p_count, F(dns_cache_size), 1, 1, 0, MAX_DNS_CACHE, "N", "4096",         \
	  "DNS cache entries; 0 = no cache")                                                       \
	X(cache, p_bool, F(cache), 1, 1, 0, 0, "on|off", "on", "keep a shared HTTP cache")         \
	X(cache_mem, p_size, F(cache_mem), 1, 1, 0, CACHE_MEM_CEIL, "SIZE", "256M",                \
	  "memory for cached objects; 0 = no memory cache")                                        \
	X(cache_max_object, p_size, F(cache_max_object), 1, 1, 0, CACHE_MAX_OBJECT_CEIL, "SIZE",   \
	  "16M", "largest response the cache stores")                                              \
	X(cache_dir, p_cache_dir, NOFIELD, 2, 2, 1 << 20, CACHE_MEM_CEIL << 4, "PATH SIZE", NULL,  \
	  "a disk cache in PATH of at most SIZE bytes")                                            \
	X(sendfile, p_bool, F(sendfile), 1, 1, 0, 0, "on|off", "off",                              \
	  "send large cached bodies with sendfile() instead of a copy")                            \
	X(cache_purge_allow, p_allow, F(purge_allow), 1, MANY, 0, 0, "CIDR|all|none...", "none",   \
	  "clients that may PURGE cached URLs")                                                    \
	X(backend, p_backend, NOFIELD, 2, MANY, 0, 0,                                              \
	  "NAME HOST:PORT... [balance roundrobin|leastconn|hash]", NULL,                           \
	  "a group of origin servers for reverse mode; repeatable")                                \
	X(route, p_route, NOFIELD, 2, 2, 0, 0, "[HOST][/PREFIX] BACKEND", NULL,                    \
	  "send requests for a host and path to a backend; repeatable")                            \
	X(forward, p_bool, F(forward), 1, 1, 0, 0, "on|off", "on",                                 \
	  "forward-proxy absolute-form and CONNECT requests")                                      \
	X(backend_fail_timeout, p_duration, F(backend_fail_timeout_ms), 1, 1, 1, DAY_MS,           \
	  "DURATION", "10s", "time a backend server that failed is skipped")                       \
	X(include, p_include, NOFIELD, 1, 1, 0, 0, "PATH", NULL,                                   \
	  "read other files (glob pattern) in place")

struct directive {
	const char *name;
	parse_fn *parse;
	size_t off;
	size_t amin, amax;
	uint64_t lo, hi;
	const char *usage;
	const char *def;
	const char *doc;
};

enum directive_id {
#define X(n, ...) D_##n,
	CONF_DIRECTIVES(X)
#undef X
		D_COUNT
};

static const struct directive directives[] = {
#define X(n, fn, off, amin, amax, lo, hi, usage, def, doc) \
	[D_##n] = {#n, fn, off, amin, amax, lo, hi, usage, def, doc},
	CONF_DIRECTIVES(X)
#undef X
};

/* The enum fields are written through int *; that is only sound if they are int-sized. */
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum log_level is not int-sized");
_Static_assert(sizeof(enum alog_format) == sizeof(int), "enum alog_format is not int-sized");

static bool includes_allowed = true;

void conf_set_includes_allowed(bool allowed)
{
	includes_allowed = allowed;
}

const char *conf_directive_name(size_t i)
{
	return i < SL_ARRAY_LEN(directives) ? directives[i].name : NULL;
}

/* ---- loader state ---- */

/* One file being read; frames form a stack through `up` while includes nest. */
struct frame {
	const char *name; /* as shown in messages */
	size_t dirlen;	  /* name[0, dirlen) is its directory with the '/', or "" */
	bool has_id;	  /* dev/ino valid (a file, not a string) */
	dev_t dev;
	ino_t ino;
	unsigned line;
	unsigned depth; /* 0 for the top-level file */
	struct frame *up;
};

struct loc {
	char *file; /* owned copy: the frame may be gone when it is used */
	unsigned line;
};

struct loader {
	struct conf *c;
	char *err;
	size_t errlen;
	bool failed;
	bool first; /* the directive being run was not seen before in this load */
	struct frame *cur;
	bool seen[D_COUNT];
	struct loc where[D_COUNT]; /* last place each directive was set */
};

/* One tokenised line. Unescaped arguments never outgrow the source line plus
 * one NUL, and each argument takes at least two source bytes except the last. */
struct line {
	char buf[CONF_LINE_MAX + 2];
	char *argv[CONF_LINE_MAX / 2 + 2];
	size_t argc;
};

static void vfail_at(struct loader *l, const char *file, unsigned line, const char *fmt, va_list ap)
	SL_PRINTF(4, 0);
static void vfail_at(struct loader *l, const char *file, unsigned line, const char *fmt, va_list ap)
{
	int n;

	/* Only the first error is kept: later ones are usually its echo. */
	if (l->failed)
		return;
	l->failed = true;
	if (l->err == NULL || l->errlen == 0)
		return;
	if (line)
		n = snprintf(l->err, l->errlen, "%s:%u: ", file, line);
	else
		n = snprintf(l->err, l->errlen, "%s: ", file);
	if (n < 0 || (size_t)n >= l->errlen)
		return;
	vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
}

static int fail_at(struct loader *l, const char *file, unsigned line, const char *fmt, ...)
	SL_PRINTF(4, 5);
static int fail_at(struct loader *l, const char *file, unsigned line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(l, file, line, fmt, ap);
	va_end(ap);
	return -1;
}

static int fail(struct loader *l, const char *fmt, ...) SL_PRINTF(2, 3);
static int fail(struct loader *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(l, l->cur->name, l->cur->line, fmt, ap);
	va_end(ap);
	return -1;
}

/* Small formatted strings returned by value, so a message can use several in
 * one call: quote(a).s lives until the end of the full expression. */
struct tbuf {
	char s[96];
};

/* An argument as it appears in a message: in double quotes, escaped like the
 * grammar, cut short (at a UTF-8 boundary) so one long value cannot push the
 * rest of the message out of the caller's buffer. */
static struct tbuf quote(const char *a)
{
	struct tbuf t;
	size_t o = 0, i;
	const size_t room = sizeof(t.s) - 6; /* closing quote, "...", NUL */

	t.s[o++] = '"';
	for (i = 0; a[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)a[i];
		size_t need = (ch == '"' || ch == '\\' || ch == '\t') ? 2 : 1;

		if (o + need > room) {
			while (o > 1 && ((unsigned char)t.s[o - 1] & 0xc0) == 0x80)
				o--;
			if (o > 1 && ((unsigned char)t.s[o - 1] & 0xc0) == 0xc0)
				o--;
			memcpy(t.s + o, "...", 3);
			o += 3;
			break;
		}
		if (need == 2) {
			t.s[o++] = '\\';
			t.s[o++] = ch == '\t' ? 't' : (char)ch;
		} else {
			t.s[o++] = (char)ch;
		}
	}
	t.s[o++] = '"';
	t.s[o] = '\0';
	return t;
}

/* A byte count the way a user would write it: 1024 -> "1K". */
static struct tbuf fmt_size(uint64_t v)
{
	static const char units[] = "KMGT";
	struct tbuf t;
	int u = -1;

	while (u < 3 && v != 0 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(t.s, sizeof(t.s), "%" PRIu64, v);
	else
		snprintf(t.s, sizeof(t.s), "%" PRIu64 "%c", v, units[u]);
	return t;
}

/* Duration units: suffix and how many of the base unit (ms or us) it is,
 * largest first down to the base unit itself; then "" (bare digits are
 * seconds), for parsing only. */
struct dunit {
	const char *suffix;
	uint64_t n;
};

static const struct dunit ms_units[] = {{"d", DAY_MS}, {"h", 3600000}, {"m", 60000},
					{"s", 1000},   {"ms", 1},      {"", 1000}};
static const struct dunit us_units[] = {{"s", 1000000}, {"ms", 1000}, {"us", 1}, {"", 1000000}};

/* v in the table's base unit, in the largest unit that divides it. */
static struct tbuf fmt_dunits(uint64_t v, const struct dunit *u)
{
	struct tbuf t;
	size_t i = 0;

	while (u[i].n != 1 && (v == 0 || v % u[i].n != 0))
		i++; /* the base unit (n 1) comes before "" and divides anything */
	snprintf(t.s, sizeof(t.s), "%" PRIu64 "%s", v / u[i].n, u[i].suffix);
	return t;
}

static struct tbuf fmt_duration(uint64_t ms)
{
	return fmt_dunits(ms, ms_units);
}

static struct tbuf fmt_us(uint64_t us)
{
	return fmt_dunits(us, us_units);
}

/* ---- number and address parsers (pure) ---- */

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Leading decimal digits of s into *v; returns how many, 0 on none or overflow. */
static size_t parse_digits(const char *s, uint64_t *v)
{
	size_t i = 0;

	*v = 0;
	for (; is_digit(s[i]); i++) {
		uint64_t d = (uint64_t)(s[i] - '0');

		if (*v > (UINT64_MAX - d) / 10)
			return 0;
		*v = *v * 10 + d;
	}
	return i;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	return sv_to_u64(sv_from_cstr(s), max, out);
}

static int parse_port(const char *s, uint16_t *out)
{
	uint64_t v;

	if (parse_u64(s, 65535, &v) < 0 || v == 0)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

int conf_parse_size(const char *s, uint64_t *out)
{
	uint64_t v;
	unsigned shift = 0;
	size_t i = parse_digits(s, &v);

	if (i == 0)
		return -1;
	switch (lower((unsigned char)s[i])) {
	case 'k':
		shift = 10;
		break;
	case 'm':
		shift = 20;
		break;
	case 'g':
		shift = 30;
		break;
	case 't':
		shift = 40;
		break;
	default:
		break;
	}
	if (shift)
		i++;
	if (lower((unsigned char)s[i]) == 'b')
		i++;
	if (s[i] != '\0' || v > (UINT64_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

/* Digits and one of the table's suffixes (any case), in its base unit. */
static int parse_dunits(const char *s, const struct dunit *u, size_t n, uint64_t *out)
{
	uint64_t v;
	size_t i = parse_digits(s, &v);

	if (i == 0)
		return -1;
	for (size_t k = 0; k < n; k++) {
		if (!sv_ieq_cstr(sv_from_cstr(s + i), u[k].suffix))
			continue;
		if (v > UINT64_MAX / u[k].n)
			return -1;
		*out = v * u[k].n;
		return 0;
	}
	return -1;
}

int conf_parse_duration_ms(const char *s, uint64_t *out)
{
	return parse_dunits(s, ms_units, SL_ARRAY_LEN(ms_units), out);
}

/* A duration in microseconds: digits and us, ms or s (bare digits are seconds,
 * as for the other durations). */
static int parse_duration_us(const char *s, uint64_t *out)
{
	return parse_dunits(s, us_units, SL_ARRAY_LEN(us_units), out);
}

/* Copy s[0, n) into a NUL-terminated buffer for inet_pton; false if too long. */
static bool copy_host(char *dst, size_t cap, const char *s, size_t n)
{
	if (n == 0 || n >= cap)
		return false;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

int conf_parse_addr(const char *s, struct conf_addr *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *port, *colon;
	struct in6_addr a6;
	struct in_addr a4 = {.s_addr = htonl(INADDR_ANY)};
	bool v6 = false;
	uint16_t p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':' ||
		    !copy_host(host, sizeof(host), s + 1, (size_t)(rb - s - 1)))
			return -1;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return -1;
		v6 = true;
		port = rb + 2;
	} else if ((colon = strchr(s, ':')) != NULL) {
		if (strchr(colon + 1, ':') != NULL) /* IPv6 without brackets */
			return -1;
		if (!(colon - s == 1 && s[0] == '*')) {
			if (!copy_host(host, sizeof(host), s, (size_t)(colon - s)) ||
			    inet_pton(AF_INET, host, &a4) != 1)
				return -1;
		}
		port = colon + 1;
	} else {
		port = s;
	}
	if (parse_port(port, &p) < 0)
		return -1;

	memset(out, 0, sizeof(*out));
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(p);
		sin6->sin6_addr = a6;
		out->len = sizeof(*sin6);
		inet_ntop(AF_INET6, &a6, host, sizeof(host));
		snprintf(out->text, sizeof(out->text), "[%s]:%u", host, (unsigned)p);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(p);
		sin->sin_addr = a4;
		out->len = sizeof(*sin);
		inet_ntop(AF_INET, &a4, host, sizeof(host));
		snprintf(out->text, sizeof(out->text), "%s:%u", host, (unsigned)p);
	}
	return 0;
}

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* A v6 CIDR inside ::ffff:0:0/96 is a v4 CIDR in disguise; store and match it
 * as one so that `allow ::ffff:10.0.0.0/104` and `allow 10.0.0.0/8` agree. */
static void cidr_unmap(struct conf_cidr *c)
{
	if (c->family == AF_INET6 && c->prefix >= 96 &&
	    memcmp(c->addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
		uint8_t v4[4];

		memcpy(v4, c->addr + 12, 4);
		memset(c->addr, 0, sizeof(c->addr));
		memcpy(c->addr, v4, 4);
		c->family = AF_INET;
		c->prefix -= 96;
	}
}

/* True if the first `prefix` bits of a and b agree. */
static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

/* Returns 0, -1 on bad syntax, or -2 if host bits are set; then `suggest`
 * holds the network address the user probably meant. */
static int parse_cidr(const char *s, struct conf_cidr *out, char *suggest, size_t slen)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	struct conf_cidr c = {0};
	uint8_t masked[16];
	unsigned bits;

	if (!copy_host(host, sizeof(host), s, hlen))
		return -1;
	c.family = strchr(host, ':') ? AF_INET6 : AF_INET;
	bits = c.family == AF_INET ? 32 : 128;
	if (inet_pton(c.family, host, c.addr) != 1)
		return -1;
	c.prefix = bits;
	if (slash) {
		uint64_t v;

		if (parse_u64(slash + 1, bits, &v) < 0)
			return -1;
		c.prefix = (unsigned)v;
	}

	memset(masked, 0, sizeof(masked));
	memcpy(masked, c.addr, c.prefix / 8);
	if (c.prefix % 8) {
		unsigned i = c.prefix / 8;

		masked[i] = (uint8_t)(c.addr[i] & (0xff << (8 - c.prefix % 8)));
	}
	if (memcmp(masked, c.addr, bits / 8) != 0) {
		if (suggest && slen) {
			inet_ntop(c.family, masked, host, sizeof(host));
			snprintf(suggest, slen, "%s/%u", host, c.prefix);
		}
		return -2;
	}
	cidr_unmap(&c);
	*out = c;
	return 0;
}

int conf_parse_cidr(const char *s, struct conf_cidr *out)
{
	return parse_cidr(s, out, NULL, 0) == 0 ? 0 : -1;
}

/* The client address as (family, bytes); a v4-mapped v6 address is v4. */
static bool sockaddr_bytes(const struct sockaddr *sa, int *family, uint8_t *bytes)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		*family = AF_INET;
		memcpy(bytes, &sin->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		const uint8_t *b = sin6->sin6_addr.s6_addr;

		if (memcmp(b, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
			*family = AF_INET;
			memcpy(bytes, b + 12, 4);
		} else {
			*family = AF_INET6;
			memcpy(bytes, b, 16);
		}
		return true;
	}
	return false;
}

bool conf_cidr_match(const struct conf_cidr *cidr, const struct sockaddr *sa)
{
	struct conf_cidr c = *cidr;
	uint8_t bytes[16];
	int family;

	SL_ASSERT(sa != NULL);
	SL_ASSERT((c.family == AF_INET && c.prefix <= 32) ||
		  (c.family == AF_INET6 && c.prefix <= 128));
	cidr_unmap(&c);
	if (!sockaddr_bytes(sa, &family, bytes) || family != c.family)
		return false;
	return prefix_eq(bytes, c.addr, c.prefix);
}

static bool cidrs_match(const struct conf_cidr *v, size_t n, const struct sockaddr *sa)
{
	for (size_t i = 0; i < n; i++)
		if (conf_cidr_match(&v[i], sa))
			return true;
	return false;
}

bool conf_client_allowed(const struct conf *c, const struct sockaddr *sa)
{
	SL_CHECK_OBJ(c, CONF_MAGIC);
	return cidrs_match(c->allow, c->nallow, sa);
}

bool conf_purge_allowed(const struct conf *c, const struct sockaddr *sa)
{
	SL_CHECK_OBJ(c, CONF_MAGIC);
	return cidrs_match(c->purge_allow, c->npurge_allow, sa);
}

bool conf_connect_port_allowed(const struct conf *c, uint16_t port)
{
	SL_CHECK_OBJ(c, CONF_MAGIC);
	for (size_t i = 0; i < c->nconnect_ports; i++)
		if (port >= c->connect_ports[i].lo && port <= c->connect_ports[i].hi)
			return true;
	return false;
}

/* ---- generic directive parsers ---- */

static void *field(struct loader *l, const struct directive *d)
{
	return (char *)l->c + d->off;
}

static void set_string(char **dst, const char *s)
{
	free(*dst);
	*dst = sl_strndup(s, strlen(s));
}

static int p_bool(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	bool *b = field(l, d);

	(void)argc;
	if (strcmp(argv[0], "on") == 0)
		*b = true;
	else if (strcmp(argv[0], "off") == 0)
		*b = false;
	else
		return fail(l, "%s: expected on or off, got %s", d->name, quote(argv[0]).s);
	return 0;
}

/* The numeric fields are all uint32_t; the table's bounds keep values in range. */
static void set_u32(struct loader *l, const struct directive *d, uint64_t v)
{
	SL_ASSERT(d->hi <= UINT32_MAX && v <= d->hi);
	*(uint32_t *)field(l, d) = (uint32_t)v;
}

static int p_count(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	uint64_t v;

	(void)argc;
	if (parse_u64(argv[0], UINT64_MAX, &v) < 0 || v < d->lo || v > d->hi)
		return fail(l, "%s: expected a number %" PRIu64 "..%" PRIu64 ", got %s", d->name,
			    d->lo, d->hi, quote(argv[0]).s);
	set_u32(l, d, v);
	return 0;
}

/* A count, or "auto" for one worked out in finish(). */
static int p_count_auto(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	uint64_t v;

	(void)argc;
	if (strcmp(argv[0], "auto") == 0) {
		*(uint32_t *)field(l, d) = CONF_AUTO; /* above every bound */
		return 0;
	}
	if (parse_u64(argv[0], UINT64_MAX, &v) < 0 || v < d->lo || v > d->hi)
		return fail(l, "%s: expected a number %" PRIu64 "..%" PRIu64 " or auto, got %s",
			    d->name, d->lo, d->hi, quote(argv[0]).s);
	set_u32(l, d, v);
	return 0;
}

static int p_size(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	uint64_t v;

	(void)argc;
	if (conf_parse_size(argv[0], &v) < 0 || v < d->lo || v > d->hi)
		return fail(l, "%s: expected a size %s..%s (bytes, or with K, M, G), got %s",
			    d->name, fmt_size(d->lo).s, fmt_size(d->hi).s, quote(argv[0]).s);
	/* Sizes that may pass 4G (cache_mem) live in a uint64_t field. */
	if (d->hi > UINT32_MAX)
		*(uint64_t *)field(l, d) = v;
	else
		set_u32(l, d, v);
	return 0;
}

static int p_duration(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	uint64_t v;

	(void)argc;
	if (conf_parse_duration_ms(argv[0], &v) < 0 || v < d->lo || v > d->hi)
		return fail(l, "%s: expected a duration %s..%s (e.g. 500ms, 30s, 5m, 2h), got %s",
			    d->name, fmt_duration(d->lo).s, fmt_duration(d->hi).s,
			    quote(argv[0]).s);
	set_u32(l, d, v);
	return 0;
}

/* Any non-empty text; kept for path-like directives (pid_file, cache_dir). */
static SL_UNUSED int p_string(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	(void)argc;
	if (argv[0][0] == '\0')
		return fail(l, "%s: expected %s, got \"\"", d->name, d->usage);
	set_string(field(l, d), argv[0]);
	return 0;
}

/* The name goes into Via headers and error pages, so only host-name bytes
 * are allowed: nothing that could end a header or break HTML. */
static bool valid_hostname(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) ||
		      ch == '-' || ch == '.' || ch == '_'))
			return false;
	}
	return true;
}

static int p_hostname(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	(void)argc;
	if (!valid_hostname(argv[0], d->hi))
		return fail(l,
			    "%s: expected a host name (1..%" PRIu64
			    " letters, digits, '-', '.', '_'), got %s",
			    d->name, d->hi, quote(argv[0]).s);
	set_string(field(l, d), argv[0]);
	return 0;
}

struct choice {
	const char *name;
	int value;
};

/* The generic enum parser: the word must be one of `choices`. */
static int parse_choice(struct loader *l, const struct directive *d, const char *arg,
			const struct choice *choices, size_t n, int *out)
{
	char list[128];
	size_t o = 0;

	for (size_t i = 0; i < n; i++)
		if (strcmp(arg, choices[i].name) == 0) {
			*out = choices[i].value;
			return 0;
		}
	list[0] = '\0';
	for (size_t i = 0; i < n && o < sizeof(list); i++) {
		int w = snprintf(list + o, sizeof(list) - o, "%s%s",
				 i == 0	      ? ""
				 : i + 1 == n ? " or "
					      : ", ",
				 choices[i].name);
		if (w < 0)
			break;
		o += (size_t)w;
	}
	return fail(l, "%s: expected %s, got %s", d->name, list, quote(arg).s);
}

static const struct choice log_levels[] = {
#define X(e, s) {s, LOG_##e},
	LOG_LEVELS(X)
#undef X
};

static const struct choice alog_formats[] = {
	{"squid", ALOG_SQUID},
	{"combined", ALOG_COMBINED},
};

static int p_log_level(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	(void)argc;
	return parse_choice(l, d, argv[0], log_levels, SL_ARRAY_LEN(log_levels),
			    (int *)field(l, d));
}

/* ---- custom directive parsers ---- */

/* Lists (listen, allow, connect_ports): the first occurrence in a load
 * replaces the default list, later ones append, so a config that names one
 * listen address does not also keep listening on the default one. */
static void *list_append(void *arr, size_t *n, size_t size)
{
	arr = sl_realloc(arr, (*n + 1) * size);
	memset((char *)arr + *n * size, 0, size);
	(*n)++;
	return arr;
}

static int p_listen(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	struct conf *c = l->c;
	struct conf_addr a;

	(void)argc;
	if (l->first)
		c->nlisten = 0;
	if (conf_parse_addr(argv[0], &a) < 0) {
		const char *colon = strchr(argv[0], ':');
		bool v6 = argv[0][0] != '[' && colon && strchr(colon + 1, ':');

		return fail(l, "%s: expected ADDR:PORT, got %s%s", d->name, quote(argv[0]).s,
			    v6 ? " (an IPv6 address needs brackets: [ADDR]:PORT)" : "");
	}
	for (size_t i = 0; i < c->nlisten; i++)
		if (strcmp(c->listen[i].text, a.text) == 0)
			return fail(l, "%s: %s is given twice", d->name, a.text);
	if (c->nlisten >= CONF_MAX_LISTEN)
		return fail(l, "%s: too many addresses (at most %d)", d->name, CONF_MAX_LISTEN);
	c->listen = list_append(c->listen, &c->nlisten, sizeof(*c->listen));
	c->listen[c->nlisten - 1] = a;
	return 0;
}

static int p_cache_dir(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	uint64_t v;

	(void)argc;
	if (argv[0][0] == '\0')
		return fail(l, "%s: expected a directory, got \"\"", d->name);
	if (conf_parse_size(argv[1], &v) < 0 || v < d->lo || v > d->hi)
		return fail(l, "%s: expected a size %s..%s (bytes, or with K, M, G, T), got %s",
			    d->name, fmt_size(d->lo).s, fmt_size(d->hi).s, quote(argv[1]).s);
	set_string(&l->c->cache_dir, argv[0]);
	l->c->cache_dir_size = v;
	return 0;
}

/* busy_poll off | INTERVAL [WINDOW]: the table's bounds are INTERVAL's, in
 * microseconds; WINDOW runs from INTERVAL to BUSY_POLL_WINDOW_MAX_US and is
 * BUSY_POLL_WINDOW_DEFAULT times INTERVAL if not given. */
static int p_busy_poll(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	uint64_t iv, win;

	if (strcmp(argv[0], "off") == 0) {
		if (argc != 1)
			return fail(l, "%s: off takes no window", d->name);
		l->c->busy_poll_us = 0;
		l->c->busy_poll_window_us = 0;
		return 0;
	}
	if (parse_duration_us(argv[0], &iv) < 0 || iv < d->lo || iv > d->hi)
		return fail(l, "%s: expected off or an interval %s..%s (e.g. 20us), got %s",
			    d->name, fmt_us(d->lo).s, fmt_us(d->hi).s, quote(argv[0]).s);
	win = iv * BUSY_POLL_WINDOW_DEFAULT;
	if (argc == 2 &&
	    (parse_duration_us(argv[1], &win) < 0 || win < iv || win > BUSY_POLL_WINDOW_MAX_US))
		return fail(l, "%s: expected a window %s..%s (at least the interval), got %s",
			    d->name, fmt_us(iv).s, fmt_us(BUSY_POLL_WINDOW_MAX_US).s,
			    quote(argv[1]).s);
	l->c->busy_poll_us = (uint32_t)iv;
	l->c->busy_poll_window_us = (uint32_t)win;
	return 0;
}

/* A backend server: HOST:PORT with HOST an IPv4 literal, [IPv6] or a name. */
static int parse_server(const char *s, struct conf_server *out)
{
	const char *colon;
	size_t hl;

	memset(out, 0, sizeof(*out));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			return -1;
		hl = (size_t)(rb - s - 1);
		colon = rb + 1;
		if (hl == 0 || !copy_host(out->host, sizeof(out->host), s + 1, hl))
			return -1;
		struct in6_addr a6;
		if (inet_pton(AF_INET6, out->host, &a6) != 1 ||
		    inet_ntop(AF_INET6, &a6, out->host, sizeof(out->host)) == NULL)
			return -1; /* one spelling per address: [0::1] is [::1] */
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - s);
		if (!copy_host(out->host, sizeof(out->host), s, hl) ||
		    !valid_hostname(out->host, HOST_NAME_MAX_LEN))
			return -1;
	}
	if (parse_port(colon + 1, &out->port) < 0)
		return -1;
	for (char *p = out->host; *p; p++)
		*p = (char)lower((unsigned char)*p);
	snprintf(out->text, sizeof(out->text), "%s%s%s:%u", s[0] == '[' ? "[" : "", out->host,
		 s[0] == '[' ? "]" : "", out->port);
	return 0;
}

static const struct choice balances[] = {
	{"roundrobin", BALANCE_ROUNDROBIN},
	{"leastconn", BALANCE_LEASTCONN},
	{"hash", BALANCE_HASH},
};

static int p_backend(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	struct conf *c = l->c;
	struct conf_backend *b;
	size_t nsrv = argc - 1;
	int bal = BALANCE_ROUNDROBIN;

	if (!valid_hostname(argv[0], CONF_NAME_MAX))
		return fail(l, "%s: expected a name (1..%d letters, digits, '-', '.', '_'), got %s",
			    d->name, CONF_NAME_MAX, quote(argv[0]).s);
	for (size_t i = 0; i < c->nbackends; i++)
		if (strcmp(c->backends[i].name, argv[0]) == 0)
			return fail(l, "%s: %s is defined twice", d->name, argv[0]);
	if (argc >= 3 && strcmp(argv[argc - 2], "balance") == 0) {
		if (parse_choice(l, d, argv[argc - 1], balances, SL_ARRAY_LEN(balances), &bal) < 0)
			return -1;
		nsrv -= 2;
	}
	if (nsrv == 0)
		return fail(l, "%s: %s has no servers (usage: %s %s)", d->name, argv[0], d->name,
			    d->usage);
	if (nsrv > CONF_MAX_SERVERS)
		return fail(l, "%s: too many servers (at most %d)", d->name, CONF_MAX_SERVERS);
	if (c->nbackends >= CONF_MAX_BACKENDS)
		return fail(l, "%s: too many backends (at most %d)", d->name, CONF_MAX_BACKENDS);
	struct conf_server *srv = sl_calloc(nsrv, sizeof(*srv));
	for (size_t i = 0; i < nsrv; i++) {
		if (parse_server(argv[1 + i], &srv[i]) < 0) {
			free(srv);
			return fail(l,
				    "%s: expected HOST:PORT (an IPv6 address in brackets), got %s",
				    d->name, quote(argv[1 + i]).s);
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(srv[j].text, srv[i].text) == 0) {
				free(srv);
				return fail(l, "%s: server %s is given twice", d->name,
					    argv[1 + i]);
			}
	}
	c->backends = list_append(c->backends, &c->nbackends, sizeof(*c->backends));
	b = &c->backends[c->nbackends - 1];
	snprintf(b->name, sizeof(b->name), "%s", argv[0]);
	b->servers = srv;
	b->nservers = nsrv;
	b->balance = (enum conf_balance)bal;
	return 0;
}

/* route [HOST[:PORT]][/PREFIX] BACKEND. The backend may be defined later in
 * the load: names are resolved in finish(). */
static int p_route(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	struct conf *c = l->c;
	struct conf_route r = {0};
	const char *a = argv[0], *slash = strchr(a, '/');
	size_t hl = slash ? (size_t)(slash - a) : strlen(a);

	(void)argc;
	if (hl > 0) {
		struct conf_server hp;
		char tmp[HOST_NAME_MAX_LEN + 8];
		if (hl >= sizeof(tmp))
			return fail(l, "%s: host too long in %s", d->name, quote(a).s);
		memcpy(tmp, a, hl);
		tmp[hl] = '\0';
		if (parse_server(tmp, &hp) == 0) {
			if (tmp[0] != '[' ||
			    !uri_ipv6_canonical(sv_from_cstr(hp.host), r.host, sizeof(r.host)))
				snprintf(r.host, sizeof(r.host), "%s", hp.host);
			r.port = hp.port;
		} else if (tmp[0] == '[' && tmp[hl - 1] == ']' &&
			   uri_ipv6_canonical(sv_make(tmp + 1, hl - 2), r.host, sizeof(r.host))) {
			/* An IPv6 literal, any port. */
		} else if (tmp[0] != '[' && valid_hostname(tmp, HOST_NAME_MAX_LEN)) {
			for (size_t i = 0; i < hl; i++)
				r.host[i] = (char)lower((unsigned char)tmp[i]);
		} else {
			return fail(l, "%s: expected HOST[:PORT][/PREFIX] or /PREFIX, got %s",
				    d->name, quote(a).s);
		}
		/* "www.example." is "www.example", as requests are matched. */
		size_t rl = strlen(r.host);
		if (rl > 1 && r.host[rl - 1] == '.')
			r.host[rl - 1] = '\0';
	}
	char prefix[CONF_LINE_MAX];
	if (slash) {
		for (const char *p = slash; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#' || *p == 0x7f)
				return fail(l,
					    "%s: a path prefix may not hold spaces, '?' or '#': %s",
					    d->name, quote(a).s);
		/* In the form request paths are matched in. */
		long pl = uri_route_path(sv_from_cstr(slash), prefix, sizeof(prefix));
		if (pl < 0)
			return fail(l,
				    "%s: a path prefix holds only what a URL path may (RFC 3986), "
				    "with no \".\" or \"..\" segment: %s",
				    d->name, quote(a).s);
		r.prefix_len = (size_t)pl;
		slash = prefix;
	}
	if (hl == 0 && r.prefix_len == 0)
		return fail(l, "%s: expected HOST[:PORT][/PREFIX] or /PREFIX, got %s", d->name,
			    quote(a).s);
	for (size_t i = 0; i < c->nroutes; i++)
		if (strcmp(c->routes[i].host, r.host) == 0 && c->routes[i].port == r.port &&
		    c->routes[i].prefix_len == r.prefix_len &&
		    memcmp(c->routes[i].prefix, slash ? slash : "", r.prefix_len) == 0)
			return fail(l, "%s: %s is routed twice", d->name, a);
	if (c->nroutes >= CONF_MAX_ROUTES)
		return fail(l, "%s: too many routes (at most %d)", d->name, CONF_MAX_ROUTES);
	r.prefix = sl_strndup(slash ? prefix : "", r.prefix_len);
	r.backend_name = sl_strndup(argv[1], strlen(argv[1]));
	r.file = sl_strndup(l->cur->name, strlen(l->cur->name));
	r.line = l->cur->line;
	c->routes = list_append(c->routes, &c->nroutes, sizeof(*c->routes));
	c->routes[c->nroutes - 1] = r;
	return 0;
}

static int p_threads(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	uint64_t v;

	(void)argc;
	if (strcmp(argv[0], "auto") == 0) {
		l->c->threads = 0;
		return 0;
	}
	if (parse_u64(argv[0], UINT64_MAX, &v) < 0 || v < d->lo || v > d->hi)
		return fail(l, "%s: expected a number %" PRIu64 "..%" PRIu64 " or auto, got %s",
			    d->name, d->lo, d->hi, quote(argv[0]).s);
	l->c->threads = (unsigned)v;
	return 0;
}

/* The address list a directive fills: allow or cache_purge_allow. */
static void cidr_list(struct loader *l, const struct directive *d, struct conf_cidr ***v,
		      size_t **n)
{
	if (strcmp(d->name, "cache_purge_allow") == 0) {
		*v = &l->c->purge_allow;
		*n = &l->c->npurge_allow;
	} else {
		*v = &l->c->allow;
		*n = &l->c->nallow;
	}
}

static int add_cidr(struct loader *l, const struct directive *d, const struct conf_cidr *cidr)
{
	struct conf_cidr **v;
	size_t *n;

	cidr_list(l, d, &v, &n);
	if (*n >= CONF_MAX_CIDRS)
		return fail(l, "%s: too many networks (at most %d)", d->name, CONF_MAX_CIDRS);
	*v = list_append(*v, n, sizeof(**v));
	(*v)[*n - 1] = *cidr;
	return 0;
}

static int p_allow(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	static const struct conf_cidr all4 = {.family = AF_INET, .prefix = 0};
	static const struct conf_cidr all6 = {.family = AF_INET6, .prefix = 0};

	struct conf_cidr **v;
	size_t *n;

	cidr_list(l, d, &v, &n);
	if (l->first)
		*n = 0;
	for (size_t i = 0; i < argc; i++) {
		struct conf_cidr cidr;
		char suggest[INET6_ADDRSTRLEN + 8];
		int rc;

		if (strcmp(argv[i], "none") == 0) {
			if (argc != 1)
				return fail(l, "%s: none must be alone on its line", d->name);
			*n = 0;
			continue;
		}
		if (strcmp(argv[i], "all") == 0) {
			if (add_cidr(l, d, &all4) < 0 || add_cidr(l, d, &all6) < 0)
				return -1;
			continue;
		}
		rc = parse_cidr(argv[i], &cidr, suggest, sizeof(suggest));
		if (rc == -2)
			return fail(l, "%s: %s has host bits set; did you mean %s?", d->name,
				    argv[i], suggest);
		if (rc < 0)
			return fail(l, "%s: expected ADDR, ADDR/PREFIX, all or none, got %s",
				    d->name, quote(argv[i]).s);
		if (add_cidr(l, d, &cidr) < 0)
			return -1;
	}
	return 0;
}

static int parse_port_range(const char *s, struct conf_ports *out)
{
	const char *dash = strchr(s, '-');
	char lo[8];

	if (dash == NULL) {
		if (parse_port(s, &out->lo) < 0)
			return -1;
		out->hi = out->lo;
		return 0;
	}
	if (!copy_host(lo, sizeof(lo), s, (size_t)(dash - s)) || parse_port(lo, &out->lo) < 0 ||
	    parse_port(dash + 1, &out->hi) < 0)
		return -1;
	return 0;
}

static int p_connect_ports(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	struct conf *c = l->c;

	if (l->first)
		c->nconnect_ports = 0;
	for (size_t i = 0; i < argc; i++) {
		struct conf_ports r;

		if (strcmp(argv[i], "none") == 0) {
			if (argc != 1)
				return fail(l, "%s: none must be alone on its line", d->name);
			c->nconnect_ports = 0;
			continue;
		}
		if (strcmp(argv[i], "any") == 0) {
			r = (struct conf_ports){1, 65535};
		} else if (parse_port_range(argv[i], &r) < 0) {
			return fail(l,
				    "%s: expected PORT or LO-HI (ports 1..65535), any or none, "
				    "got %s",
				    d->name, quote(argv[i]).s);
		} else if (r.lo > r.hi) {
			return fail(l, "%s: range %s ends before it starts", d->name,
				    quote(argv[i]).s);
		}
		if (c->nconnect_ports >= CONF_MAX_PORT_RANGES)
			return fail(l, "%s: too many port ranges (at most %d)", d->name,
				    CONF_MAX_PORT_RANGES);
		c->connect_ports = list_append(c->connect_ports, &c->nconnect_ports,
					       sizeof(*c->connect_ports));
		c->connect_ports[c->nconnect_ports - 1] = r;
	}
	return 0;
}

static int p_access_log(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	struct conf *c = l->c;
	int fmt = ALOG_SQUID;

	if (strcmp(argv[0], "off") == 0) {
		if (argc != 1)
			return fail(l, "%s: off takes no format", d->name);
		free(c->access_log);
		c->access_log = NULL;
		return 0;
	}
	if (argv[0][0] == '\0')
		return fail(l, "%s: expected PATH, stderr or off, got \"\"", d->name);
	if (argc == 2 &&
	    parse_choice(l, d, argv[1], alog_formats, SL_ARRAY_LEN(alog_formats), &fmt) < 0)
		return -1;
	set_string(&c->access_log, argv[0]);
	c->access_log_format = (enum alog_format)fmt;
	return 0;
}

/* One DNS server into its c-ares form "1.2.3.4:53" or "[::1]:53". */
static int parse_dns_server(const char *s, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN];
	uint8_t bin[16];
	const char *port = NULL, *colon;
	int family = AF_INET;
	uint16_t p = 53;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || !copy_host(host, sizeof(host), s + 1, (size_t)(rb - s - 1)))
			return -1;
		if (rb[1] == ':')
			port = rb + 2;
		else if (rb[1] != '\0')
			return -1;
		family = AF_INET6;
	} else if ((colon = strchr(s, ':')) != NULL && strchr(colon + 1, ':') != NULL) {
		/* Several colons: a bare IPv6 address, which cannot carry a port. */
		if (!copy_host(host, sizeof(host), s, strlen(s)))
			return -1;
		family = AF_INET6;
	} else {
		if (!copy_host(host, sizeof(host), s, colon ? (size_t)(colon - s) : strlen(s)))
			return -1;
		if (colon)
			port = colon + 1;
	}
	if (inet_pton(family, host, bin) != 1 || (port && parse_port(port, &p) < 0))
		return -1;
	inet_ntop(family, bin, host, sizeof(host));
	if (family == AF_INET6)
		snprintf(out, outlen, "[%s]:%u", host, (unsigned)p);
	else
		snprintf(out, outlen, "%s:%u", host, (unsigned)p);
	return 0;
}

static int p_dns_servers(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	/* "[" + address + "]:" + port + "," */
	const size_t each = INET6_ADDRSTRLEN + 9;
	char *csv = sl_malloc(argc * each + 1);
	size_t o = 0;

	csv[0] = '\0';
	for (size_t i = 0; i < argc; i++) {
		char one[INET6_ADDRSTRLEN + 9];

		if (parse_dns_server(argv[i], one, sizeof(one)) < 0) {
			free(csv);
			return fail(l, "%s: expected IPv4[:PORT], IPv6 or [IPv6]:PORT, got %s",
				    d->name, quote(argv[i]).s);
		}
		int w = snprintf(csv + o, argc * each + 1 - o, "%s%s", i ? "," : "", one);
		SL_ASSERT(w > 0 && (size_t)w < argc * each + 1 - o);
		o += (size_t)w;
	}
	free(l->c->dns_servers);
	l->c->dns_servers = csv;
	return 0;
}

/* ---- files and includes ---- */

static size_t dir_len(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? (size_t)(slash - path + 1) : 0;
}

/* Read a whole regular file. Returns 0, or a negative errno; -EFBIG when it
 * is larger than CONF_FILE_MAX, -EINVAL when it is not a regular file. */
static int read_file(const char *path, char **out, size_t *outlen, struct stat *st)
{
	/* O_NONBLOCK so that naming a FIFO fails the regular-file test instead
	 * of hanging the load; it changes nothing for regular files. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	size_t cap, len = 0;
	char *buf;
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st->st_mode) || st->st_size > CONF_FILE_MAX) {
		close(fd);
		return S_ISREG(st->st_mode) ? -EFBIG : -EINVAL;
	}
	/* st_size is a hint only (files in /proc say 0); the loop is the truth. */
	cap = st->st_size > 0 ? (size_t)st->st_size + 1 : 4096;
	buf = sl_malloc(cap);
	for (;;) {
		ssize_t n;

		if (len == cap) {
			if (cap > CONF_FILE_MAX) {
				rc = -EFBIG;
				break;
			}
			cap *= 2;
			buf = sl_realloc(buf, cap);
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (rc == 0 && len > CONF_FILE_MAX)
		rc = -EFBIG;
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

static const char *read_error(int rc, char *buf, size_t n)
{
	if (rc == -EFBIG)
		snprintf(buf, n, "larger than %s", fmt_size(CONF_FILE_MAX).s);
	else if (rc == -EINVAL)
		snprintf(buf, n, "not a regular file");
	else
		snprintf(buf, n, "%s", strerror(-rc));
	return buf;
}

static int parse_text(struct loader *l, const char *text, size_t len);

static int include_file(struct loader *l, const char *path)
{
	struct frame *f = l->cur, *chain[CONF_INCLUDE_DEPTH + 1], *up;
	struct frame sub;
	struct stat st;
	char *text, why[128], cycle[512];
	size_t len, n = 0, o = 0;
	int rc;

	if (f->depth >= CONF_INCLUDE_DEPTH)
		return fail(l, "include: nested more than %d deep", CONF_INCLUDE_DEPTH);
	rc = read_file(path, &text, &len, &st);
	if (rc < 0)
		return fail(l, "include: cannot read %s: %s", quote(path).s,
			    read_error(rc, why, sizeof(why)));

	for (up = f; up != NULL; up = up->up) {
		SL_ASSERT(n < SL_ARRAY_LEN(chain));
		chain[n++] = up;
		if (up->has_id && up->dev == st.st_dev && up->ino == st.st_ino)
			break;
	}
	if (up != NULL) {
		cycle[0] = '\0';
		while (n-- > 0 && o < sizeof(cycle)) {
			int w = snprintf(cycle + o, sizeof(cycle) - o, "%s -> ", chain[n]->name);
			if (w < 0)
				break;
			o += (size_t)w;
		}
		free(text);
		if (o < sizeof(cycle))
			snprintf(cycle + o, sizeof(cycle) - o, "%s", path);
		return fail(l, "include cycle: %s", cycle);
	}

	sub = (struct frame){.name = path,
			     .dirlen = dir_len(path),
			     .has_id = true,
			     .dev = st.st_dev,
			     .ino = st.st_ino,
			     .depth = f->depth + 1,
			     .up = f};
	l->cur = &sub;
	rc = parse_text(l, text, len);
	l->cur = f;
	free(text);
	return rc;
}

/* glob(3) reports unreadable directories through a callback with no context
 * pointer; loading runs on the main thread only, so a static carries it. */
static struct {
	char path[256];
	int err;
} glob_failure;

static int glob_err(const char *epath, int eerrno)
{
	/* A missing directory just matches nothing, like a missing file would. */
	if (eerrno == ENOENT || eerrno == ENOTDIR)
		return 0;
	snprintf(glob_failure.path, sizeof(glob_failure.path), "%s", epath);
	glob_failure.err = eerrno;
	return 1;
}

static char *join(const char *dir, size_t dirlen, const char *name, bool escape)
{
	char *out = sl_malloc(2 * dirlen + strlen(name) + 1);
	size_t o = 0;

	for (size_t i = 0; i < dirlen; i++) {
		/* The directory is a literal path, not part of the pattern. */
		if (escape && strchr("*?[\\", dir[i]))
			out[o++] = '\\';
		out[o++] = dir[i];
	}
	memcpy(out + o, name, strlen(name) + 1);
	return out;
}

static int p_include(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	const char *pat = argv[0];
	size_t dirlen = pat[0] == '/' ? 0 : l->cur->dirlen;
	glob_t g;
	char *path;
	int rc;

	(void)argc;
	if (!includes_allowed)
		return fail(l, "%s: not allowed here (includes are disabled)", d->name);
	if (pat[0] == '\0')
		return fail(l, "%s: expected PATH, got \"\"", d->name);
	if (strpbrk(pat, "*?[") == NULL) {
		path = join(l->cur->name, dirlen, pat, false);
		rc = include_file(l, path);
		free(path);
		return rc;
	}

	path = join(l->cur->name, dirlen, pat, true);
	memset(&glob_failure, 0, sizeof(glob_failure));
	rc = glob(path, 0, glob_err, &g);
	free(path);
	if (rc == GLOB_NOMATCH)
		return 0;
	if (rc == GLOB_ABORTED)
		return fail(l, "%s: cannot read directory %s: %s", d->name,
			    quote(glob_failure.path).s, strerror(glob_failure.err));
	if (rc != 0)
		return fail(l, "%s: cannot expand %s", d->name, quote(pat).s);
	rc = 0;
	for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
		rc = include_file(l, g.gl_pathv[i]);
	globfree(&g);
	return rc;
}

/* ---- lines and directives ---- */

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

static int tokenize(struct loader *l, const char *s, size_t len, struct line *ln)
{
	size_t i = 0, o = 0;

	SL_ASSERT(len <= CONF_LINE_MAX);
	ln->argc = 0;
	for (;;) {
		while (i < len && is_space(s[i]))
			i++;
		if (i == len || s[i] == '#')
			return 0;
		SL_ASSERT(ln->argc < SL_ARRAY_LEN(ln->argv));
		ln->argv[ln->argc++] = ln->buf + o;
		if (s[i] == '"') {
			for (i++;; i++) {
				if (i == len)
					return fail(l, "unterminated quoted string");
				if (s[i] == '"')
					break;
				if (s[i] == '\\') {
					if (++i == len)
						return fail(l, "unterminated quoted string");
					if (s[i] != '"' && s[i] != '\\')
						return fail(l,
							    "unknown escape \\%c in quoted "
							    "string (only \\\" and \\\\)",
							    s[i]);
				}
				ln->buf[o++] = s[i];
			}
			i++;
			if (i < len && !is_space(s[i]) && s[i] != '#')
				return fail(l, "expected a space after the closing quote");
		} else {
			for (; i < len && !is_space(s[i]) && s[i] != '#'; i++) {
				if (s[i] == '"')
					return fail(l, "unexpected quote inside an argument "
						       "(quote the whole argument)");
				ln->buf[o++] = s[i];
			}
		}
		SL_ASSERT(o < sizeof(ln->buf));
		ln->buf[o++] = '\0';
	}
}

static const struct directive *find_directive(const char *name)
{
	for (size_t i = 0; i < SL_ARRAY_LEN(directives); i++)
		if (strcmp(directives[i].name, name) == 0)
			return &directives[i];
	return NULL;
}

static int run_directive(struct loader *l, const struct directive *d, size_t argc, char **argv)
{
	size_t id = (size_t)(d - directives);
	struct loc *w = &l->where[id];

	if (argc < d->amin || argc > d->amax) {
		char want[64];

		if (d->amin == d->amax)
			snprintf(want, sizeof(want), "%zu argument%s", d->amin,
				 d->amin == 1 ? "" : "s");
		else if (d->amax == MANY)
			snprintf(want, sizeof(want), "at least %zu argument%s", d->amin,
				 d->amin == 1 ? "" : "s");
		else
			snprintf(want, sizeof(want), "%zu to %zu arguments", d->amin, d->amax);
		return fail(l, "%s: expected %s, got %zu (usage: %s %s)", d->name, want, argc,
			    d->name, d->usage);
	}
	l->first = !l->seen[id];
	l->seen[id] = true;
	if (w->file == NULL || strcmp(w->file, l->cur->name) != 0)
		set_string(&w->file, l->cur->name);
	w->line = l->cur->line;
	return d->parse(l, d, argc, argv);
}

static int check_bytes(struct loader *l, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == 0)
			return fail(l, "NUL byte not allowed");
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return fail(l, "control character 0x%02x not allowed", ch);
	}
	return 0;
}

static int parse_text(struct loader *l, const char *text, size_t len)
{
	struct line *ln = sl_malloc(sizeof(*ln));
	size_t pos = 0;
	int rc = 0;

	while (pos < len && rc == 0) {
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;

		pos += n + (nl != NULL);
		l->cur->line++;
		if (nl && n > 0 && s[n - 1] == '\r')
			n--;
		if (n > CONF_LINE_MAX)
			rc = fail(l, "line longer than %d bytes", CONF_LINE_MAX);
		else if ((rc = check_bytes(l, s, n)) == 0 && (rc = tokenize(l, s, n, ln)) == 0 &&
			 ln->argc > 0) {
			const struct directive *d = find_directive(ln->argv[0]);

			if (d == NULL)
				rc = fail(l, "unknown directive %s", quote(ln->argv[0]).s);
			else
				rc = run_directive(l, d, ln->argc - 1, ln->argv + 1);
		}
	}
	free(ln);
	return rc;
}

/* Checks that span directives, once the whole config is read. */
static int finish(struct loader *l)
{
	struct conf *c = l->c;
	const struct loc *rl = &l->where[D_max_request_line];

	for (size_t i = 0; i < c->nroutes; i++) {
		struct conf_route *r = &c->routes[i];
		size_t j = 0;
		while (j < c->nbackends && strcmp(c->backends[j].name, r->backend_name) != 0)
			j++;
		if (j == c->nbackends)
			return fail_at(l, r->file, r->line, "route: no backend named %s",
				       quote(r->backend_name).s);
		r->backend = j;
	}

	/* One address may hold a quarter of the slots unless told otherwise,
	 * so that no one client can take them all. */
	if (!l->seen[D_max_connections_per_client] || c->max_connections_per_client == CONF_AUTO)
		c->max_connections_per_client = SL_MAX(1u, c->max_connections / 4);

	if (!l->seen[D_max_request_line]) {
		/* Only the default is in the way: shrink it with max_header_size
		 * rather than reject a config that never mentioned it. */
		c->max_request_line = SL_MIN(c->max_request_line, c->max_header_size);
		return 0;
	}
	if (c->max_request_line > c->max_header_size) {
		const struct loc *hl = &l->where[D_max_header_size];
		char at[300];

		if (l->seen[D_max_header_size])
			snprintf(at, sizeof(at), "set at %s:%u", hl->file, hl->line);
		else
			snprintf(at, sizeof(at), "the default");
		return fail_at(l, rl->file, rl->line,
			       "max_request_line: %s is larger than max_header_size %s (%s)",
			       fmt_size(c->max_request_line).s, fmt_size(c->max_header_size).s, at);
	}
	return 0;
}

static void loader_init(struct loader *l, struct conf *c, struct frame *top, char *err,
			size_t errlen)
{
	memset(l, 0, sizeof(*l));
	l->c = c;
	l->cur = top;
	l->err = err;
	l->errlen = errlen;
	if (err && errlen)
		err[0] = '\0';
}

static void loader_free(struct loader *l)
{
	for (size_t i = 0; i < D_COUNT; i++)
		free(l->where[i].file);
}

/* ---- snapshots ---- */

static void conf_free(struct conf *c)
{
	free(c->source);
	free(c->listen);
	free(c->allow);
	free(c->purge_allow);
	free(c->connect_ports);
	free(c->visible_hostname);
	free(c->access_log);
	free(c->dns_servers);
	free(c->cache_dir);
	for (size_t i = 0; i < c->nbackends; i++)
		free(c->backends[i].servers);
	free(c->backends);
	for (size_t i = 0; i < c->nroutes; i++) {
		free(c->routes[i].prefix);
		free(c->routes[i].backend_name);
		free(c->routes[i].file);
	}
	free(c->routes);
	c->magic = 0;
	free(c);
}

struct conf *conf_defaults(void)
{
	struct conf *c = sl_calloc(1, sizeof(*c));
	struct frame top = {.name = "<defaults>"};
	struct line *ln = sl_malloc(sizeof(*ln));
	struct loader l;
	char err[256], host[256];

	c->magic = CONF_MAGIC;
	atomic_init(&c->refs, 1);
	loader_init(&l, c, &top, err, sizeof(err));
	for (size_t i = 0; i < SL_ARRAY_LEN(directives); i++) {
		const struct directive *d = &directives[i];

		if (d->def == NULL)
			continue;
		top.line++;
		int rc = tokenize(&l, d->def, strlen(d->def), ln);
		if (rc == 0)
			rc = run_directive(&l, d, ln->argc, ln->argv);
		if (rc != 0)
			fprintf(stderr, "sluice: bad built-in default for %s: %s\n", d->name, err);
		SL_ASSERT(rc == 0);
	}
	int rc = finish(&l);
	SL_ASSERT(rc == 0);
	loader_free(&l);
	free(ln);

	if (gethostname(host, sizeof(host) - 1) < 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	if (!valid_hostname(host, directives[D_visible_hostname].hi))
		snprintf(host, sizeof(host), "localhost");
	set_string(&c->visible_hostname, host);

	/* The table's texts must say what buf/limits.h says. */
	SL_ASSERT(c->max_header_size == MAX_HEADER_SIZE_DEFAULT);
	SL_ASSERT(c->max_headers == MAX_HEADERS_DEFAULT);
	SL_ASSERT(c->max_request_line == MAX_REQUEST_LINE_DEFAULT);
	SL_ASSERT(c->max_connections == MAX_CONNECTIONS_DEFAULT);
	SL_ASSERT(c->max_connections_per_client == MAX_CONNECTIONS_PER_CLIENT_DEFAULT);
	SL_ASSERT(c->dns_cache_size == DNS_CACHE_SIZE_DEFAULT);
	SL_ASSERT(c->shutdown_timeout_ms == DRAIN_DEADLINE_MS_DEFAULT);
	return c;
}

static int load(struct frame *top, const char *text, size_t len, struct conf **out, char *err,
		size_t errlen)
{
	struct conf *c = conf_defaults();
	struct loader l;
	int rc;

	c->source = sl_strndup(top->name, strlen(top->name));
	loader_init(&l, c, top, err, errlen);
	rc = parse_text(&l, text, len);
	if (rc == 0)
		rc = finish(&l);
	loader_free(&l);
	if (rc != 0) {
		SL_ASSERT(l.failed);
		conf_unref(&c);
		return -1;
	}
	*out = c;
	return 0;
}

int conf_load_string(const char *text, size_t len, const char *name, struct conf **out, char *err,
		     size_t errlen)
{
	struct frame top = {.name = name};

	SL_ASSERT(name != NULL && out != NULL && (text != NULL || len == 0));
	*out = NULL;
	return load(&top, text ? text : "", len, out, err, errlen);
}

int conf_load_file(const char *path, struct conf **out, char *err, size_t errlen)
{
	struct frame top = {.name = path, .dirlen = dir_len(path), .has_id = true};
	struct stat st;
	char *text, why[128];
	size_t len;
	int rc;

	SL_ASSERT(path != NULL && out != NULL);
	*out = NULL;
	rc = read_file(path, &text, &len, &st);
	if (rc < 0) {
		struct loader l;

		loader_init(&l, NULL, &top, err, errlen);
		return fail_at(&l, path, 0, "cannot read: %s", read_error(rc, why, sizeof(why)));
	}
	top.dev = st.st_dev;
	top.ino = st.st_ino;
	rc = load(&top, text, len, out, err, errlen);
	free(text);
	return rc;
}

struct conf *conf_ref(struct conf *c)
{
	SL_CHECK_OBJ(c, CONF_MAGIC);
	int old = atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	SL_ASSERT(old > 0);
	return c;
}

void conf_unref(struct conf **cp)
{
	struct conf *c = *cp;

	*cp = NULL;
	if (c == NULL)
		return;
	SL_CHECK_OBJ(c, CONF_MAGIC);
	/* acq_rel: the last owner must see every other owner's reads finished
	 * before it frees. */
	int old = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
	SL_ASSERT(old > 0);
	if (old == 1)
		conf_free(c);
}

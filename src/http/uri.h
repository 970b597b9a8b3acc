/* uri.h - pure parsing of request targets and Host values (RFC 9110 §4,
 * RFC 9112 §3.2, RFC 3986).
 *
 * Views point into the caller's buffer. No allocation. */
#ifndef SLUICE_URI_H
#define SLUICE_URI_H

#include <stdbool.h>
#include <stdint.h>

#include "base/sv.h"

struct uri {
	struct sv scheme;  /* "http" (lower- or mixed-case as received); empty for authority-form */
	struct sv host;	   /* reg-name or IPv4 literal, or IPv6 literal WITHOUT brackets */
	bool host_is_ipv6; /* host was "[...]" */
	uint16_t port;	   /* explicit port, or the scheme default (80 for http) */
	bool port_explicit;
	struct sv path;	 /* origin-form: path and query, starting with '/' ("/" if empty);
	                       the fragment, if any, is an error (not sent by clients) */
	bool path_empty; /* the target had no path at all (e.g. "http://a.b") */
	bool query_only; /* no path but a query ("http://a.b?q"): path holds "?q", and
	                       origin-form is "/" followed by it */
};

/* Parse an absolute-form target "http://host[:port][/path][?query]".
 * Only the "http" scheme (case-insensitive) is accepted: other schemes give
 * -2 (the caller answers 501 or 400 as it sees fit); userinfo ("user@host") is
 * rejected (-1), as is an empty host, a port outside 1..65535, non-digits in
 * the port, characters outside RFC 3986 in host or path, "%" not followed by
 * two hex digits, and a '#'. A query without a path ("http://a?q") is
 * accepted with query_only set: path is "?q", origin-form "/?q".
 * Returns 0 or a negative code. */
int uri_parse_absolute(struct sv target, struct uri *out) SL_WUR;

/* Parse an authority-form target "host:port" (CONNECT, RFC 9110 §9.3.6):
 * the port is mandatory. IPv6 literals in brackets. Returns 0 or -1. */
int uri_parse_authority(struct sv target, struct uri *out) SL_WUR;

/* Parse a Host header value "host[:port]" (port optional, default_port if
 * absent). Returns 0 or -1. */
int uri_parse_host(struct sv value, uint16_t default_port, struct uri *out) SL_WUR;

/* Parse an origin-form target "/path[?query]" with the Host value that
 * names its authority (RFC 9112 §3.2.1, §3.3): the URL a server in front of
 * an origin is asked for. The port defaults to 80. The path's characters are
 * checked as for uri_parse_absolute(). Returns 0 or -1. */
int uri_parse_origin(struct sv target, struct sv host, struct uri *out) SL_WUR;

/* The path of an origin-form path[?query] (as uri_parse_*() accepted it)
 * the way routes are matched against it (RFC 3986 §6.2.2): the query left
 * out, a percent-encoded unreserved character, "/" or ";" decoded (so
 * "/%61pi" is "/api"), an encoded backslash read as "/" (as some servers
 * do), the hex digits of any other encoding in upper case. Dot
 * segments are refused, not resolved: "." or "..", also encoded or with
 * ";params" after them (which some servers drop before resolving them), so
 * that no server behind can read a path that leaves the prefix it was
 * routed by; clients normalise their URLs and never send them. Writes into
 * out, of at least path.len bytes (the result is never longer). Returns
 * its length, or -1 for a dot segment, or for a bad "%" or a character no
 * path may hold (which the parsers never accept; a config's prefix may
 * have them). Pure. */
long uri_route_path(struct sv path, char *out, size_t cap) SL_WUR;

/* An IPv6 literal (without brackets) in its one text form (RFC 5952, as
 * inet_ntop writes it), so that "0:0::1" and "::1" name one host. Writes a
 * NUL-terminated string into out (INET6_ADDRSTRLEN bytes will do); false if
 * host is no IPv6 address or out too small. Pure. */
bool uri_ipv6_canonical(struct sv host, char *out, size_t cap);

/* True if two hosts name the same thing: case-insensitive comparison, a
 * trailing dot (the DNS root) ignored. */
bool uri_host_eq(struct sv a, struct sv b);

#endif

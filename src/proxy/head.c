#include "proxy/head.h"

#include <string.h>

static bool connection_names(struct sv name, const struct h1_header *hdrs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct sv rest = hdrs[i].value, e;
		if (!sv_ieq_cstr(hdrs[i].name, "Connection"))
			continue;
		while (sv_next_list_elem(&rest, &e))
			if (sv_ieq(e, name))
				return true;
	}
	return false;
}

bool head_is_hop_by_hop(struct sv name, const struct h1_header *hdrs, unsigned n, bool upgrade)
{
	static const char *const fixed[] = {
		"Connection", "Proxy-Connection",    "Keep-Alive",	   "TE",
		"Trailer",    "Proxy-Authorization", "Proxy-Authenticate",
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(fixed); i++)
		if (sv_ieq_cstr(name, fixed[i]))
			return true;
	if (sv_ieq_cstr(name, "Upgrade"))
		return !upgrade;
	/* A Connection option naming a framing field would let a client
	 * strip framing from the forwarded message: never honour that. */
	if (sv_ieq_cstr(name, "Content-Length") || sv_ieq_cstr(name, "Transfer-Encoding") ||
	    sv_ieq_cstr(name, "Host"))
		return false;
	return connection_names(name, hdrs, n);
}

static void add_field(struct sbuf *out, struct sv name, struct sv value)
{
	sbuf_add_sv(out, name);
	sbuf_add(out, ": ", 2);
	sbuf_add_sv(out, value);
	sbuf_add(out, "\r\n", 2);
}

static void add_common(struct sbuf *out, const struct h1_header *hdrs, unsigned n,
		       const struct head_opts *o, bool is_request, bool dechunk)
{
	for (unsigned i = 0; i < n; i++) {
		struct sv name = hdrs[i].name;
		if (head_is_hop_by_hop(name, hdrs, n, o->upgrade))
			continue;
		if (is_request && sv_ieq_cstr(name, "Host"))
			continue;
		if (o->max_forwards >= 0 && sv_ieq_cstr(name, "Max-Forwards"))
			continue;
		if (dechunk && sv_ieq_cstr(name, "Transfer-Encoding"))
			continue;
		/* In reverse mode sluice is where the request enters: what a
		 * client claims of the scheme, host or hops before it cannot
		 * be checked, and sluice says it itself (Forwarded). */
		if (is_request && o->reverse &&
		    (sv_ieq_cstr(name, "X-Forwarded-Proto") || sv_ieq_cstr(name, "Forwarded") ||
		     sv_ieq_cstr(name, "X-Forwarded-Host")))
			continue;
		/* The addresses before it are kept, on the one line below. */
		if (is_request && o->xff && sv_ieq_cstr(name, "X-Forwarded-For"))
			continue;
		add_field(out, name, hdrs[i].value);
	}
	if (is_request && o->own_fields)
		*o->own_fields = out->len;
	if (o->max_forwards >= 0) {
		sbuf_add_str(out, "Max-Forwards: ");
		sbuf_add_u64(out, (unsigned long long)o->max_forwards);
		sbuf_add(out, "\r\n", 2);
	}
	if (o->via_name) {
		sbuf_add_str(out, "Via: 1.1 ");
		sbuf_add_str(out, o->via_name);
		sbuf_add_str(out, " (sluice)\r\n");
	}
	if (is_request && o->xff) {
		/* One line, the client's address last (as nginx's
		 * $proxy_add_x_forwarded_for): a reader that takes only the
		 * first line still sees it. */
		sbuf_add_str(out, "X-Forwarded-For: ");
		for (unsigned i = 0; i < n; i++) {
			struct sv rest = hdrs[i].value, e;
			if (!sv_ieq_cstr(hdrs[i].name, "X-Forwarded-For") ||
			    head_is_hop_by_hop(hdrs[i].name, hdrs, n, o->upgrade))
				continue;
			while (sv_next_list_elem(&rest, &e)) {
				sbuf_add_sv(out, e);
				sbuf_add(out, ", ", 2);
			}
		}
		sbuf_add_str(out, o->xff);
		sbuf_add(out, "\r\n", 2);
	}
	if (is_request && o->reverse && o->xff) {
		bool v6 = strchr(o->xff, ':') != NULL;
		sbuf_add_str(out, v6 ? "Forwarded: for=\"[" : "Forwarded: for=");
		sbuf_add_str(out, o->xff);
		sbuf_add_str(out, v6 ? "]\";host=\"" : ";host=\"");
		sbuf_add_sv(out, o->host);
		sbuf_add_str(out, "\";proto=http\r\nX-Forwarded-Proto: http\r\n");
	}
}

void head_build_request(struct sbuf *out, const struct h1_request *req, const struct uri *u,
			const struct head_opts *o)
{
	sbuf_add_sv(out, req->method);
	sbuf_add_char(out, ' ');
	/* RFC 9112 §3.2.4: OPTIONS to an authority with an empty path is "*". */
	if (u->path_empty && !u->query_only && sv_ieq_cstr(req->method, "OPTIONS")) {
		sbuf_add_char(out, '*');
	} else {
		if (u->query_only)
			sbuf_add_char(out, '/');
		sbuf_add_sv(out, u->path);
	}
	sbuf_add_str(out, " HTTP/1.1\r\nHost: ");
	if (o->reverse) {
		sbuf_add_sv(out, o->host);
	} else if (u->host_is_ipv6) {
		sbuf_add_char(out, '[');
		sbuf_add_sv(out, u->host);
		sbuf_add_char(out, ']');
	} else {
		sbuf_add_sv(out, u->host);
	}
	if (!o->reverse && u->port != 80) {
		sbuf_add_char(out, ':');
		sbuf_add_u64(out, u->port);
	}
	sbuf_add(out, "\r\n", 2);
	add_common(out, req->headers, req->nheaders, o, true, false);
	if (o->upgrade)
		sbuf_add_str(out, "Connection: upgrade\r\n");
	sbuf_add(out, "\r\n", 2);
}

void head_build_response(struct sbuf *out, const struct h1_response *resp,
			 const struct head_opts *o, bool dechunk, const char *conn)
{
	sbuf_add_str(out, "HTTP/1.1 ");
	sbuf_add_u64(out, (unsigned long long)resp->status);
	sbuf_add_char(out, ' ');
	sbuf_add_sv(out, resp->reason);
	sbuf_add(out, "\r\n", 2);
	add_common(out, resp->headers, resp->nheaders, o, false, dechunk);
	if (conn) {
		sbuf_add_str(out, "Connection: ");
		sbuf_add_str(out, conn);
		sbuf_add(out, "\r\n", 2);
	}
	sbuf_add(out, "\r\n", 2);
}

bool head_via_has(const struct h1_header *hdrs, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n; i++) {
		struct sv rest = hdrs[i].value, e;
		if (!sv_ieq_cstr(hdrs[i].name, "Via"))
			continue;
		/* Via = received-protocol RWS received-by [ RWS comment ] */
		while (sv_next_list_elem(&rest, &e)) {
			const char *sp = memchr(e.p, ' ', e.len);
			if (sp == NULL)
				continue;
			struct sv by = sv_trim_ows(sv_make(sp + 1, e.len - (size_t)(sp + 1 - e.p)));
			const char *end = memchr(by.p, ' ', by.len);
			if (end)
				by.len = (size_t)(end - by.p);
			if (sv_ieq_cstr(by, name))
				return true;
		}
	}
	return false;
}

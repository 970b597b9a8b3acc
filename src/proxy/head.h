/* head.h - building the message heads the proxy sends (pure).
 *
 * Forwarding rules of RFC 9110 §7.6: hop-by-hop fields (Connection and every
 * field it names, Proxy-Connection, Keep-Alive, TE, Trailer, Upgrade unless
 * upgrading, Proxy-Authorization, Proxy-Authenticate) are not forwarded;
 * Via is appended; Host is rewritten from the target URI (RFC 9112 §3.2.2),
 * or in reverse mode passed through.
 * Output goes into a capped sbuf; the caller checks sbuf_failed(). */
#ifndef SLUICE_HEAD_H
#define SLUICE_HEAD_H

#include <stdbool.h>

#include "base/sv.h"
#include "buf/sbuf.h"
#include "http/h1.h"
#include "http/uri.h"

struct head_opts {
	const char *via_name; /* received-by for Via, or NULL for no Via */
	const char *xff;      /* client address for X-Forwarded-For, or NULL */
	bool upgrade;	      /* keep Upgrade and send Connection: upgrade */
	int max_forwards;     /* >= 0: send this Max-Forwards value instead */
	/* Reverse mode: Host is sent as the client gave it, and Forwarded
	 * (RFC 7239) and X-Forwarded-Proto are added for xff; a client's own
	 * X-Forwarded-Proto is dropped (it would lie about the scheme). */
	bool reverse;
	struct sv host;
	/* If set: where the fields this proxy adds (Via, X-Forwarded-For,
	 * ...) begin in the request head written (after Host and the client's
	 * own fields). */
	size_t *own_fields;
};

/* Request line in origin-form plus forwarded fields. */
void head_build_request(struct sbuf *out, const struct h1_request *req, const struct uri *u,
			const struct head_opts *o);

/* Response status line plus forwarded fields.
 * dechunk: drop Transfer-Encoding (the body is sent de-chunked, close-delimited);
 * conn: NULL for nothing, else the Connection value to send ("close",
 * "keep-alive", "upgrade"). */
void head_build_response(struct sbuf *out, const struct h1_response *resp,
			 const struct head_opts *o, bool dechunk, const char *conn);

/* True if a field must not be forwarded by the rules above, given the
 * message's own Connection fields. */
bool head_is_hop_by_hop(struct sv name, const struct h1_header *hdrs, unsigned n, bool upgrade);

/* True if any Via element's received-by equals name (loop detection). */
bool head_via_has(const struct h1_header *hdrs, unsigned n, const char *name);

#endif

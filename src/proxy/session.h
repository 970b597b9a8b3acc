/* session.h - a client connection and the HTTP transactions on it.
 *
 * A session reads request heads, and for each request runs one transaction
 * through an explicit state machine:
 *
 *   RESOLVE -> CONNECT -> EXCHANGE -> BODY -> (done: next request or close)
 *                  \-> TUNNEL (CONNECT 200, or 101 Switching Protocols)
 *   any state -> LOCAL (a response made by the proxy: errors, OPTIONS *)
 *
 * Every transition is logged at debug level as "old -> new". Request and
 * response bodies stream through one buffer per direction with backpressure;
 * an idle keep-alive session holds no buffer and no transaction. */
#ifndef SLUICE_SESSION_H
#define SLUICE_SESSION_H

#include <stdbool.h>
#include <sys/socket.h>

#include "base/base.h"

struct worker;
struct session;

/* Take over an accepted client socket. The session registers itself with
 * the worker and frees itself when the connection ends. An outsider (a
 * client outside `allow` of a forward proxy) has OUTSIDER_WAIT_MS to send
 * one request, is counted in w->noutsiders instead of max_connections, and
 * is closed after its answer. */
void session_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t len,
		    bool outsider);

/* Close sessions that are idle between requests (drain). */
/* Run the transaction waiting as w (request collapsing): its fetch in
 * flight changed. On w's worker thread. */
struct cache_waiter;
void session_waiter_run(struct cache_waiter *w);

void session_close_idle(struct worker *w);
/* Close every session now (forced stop or worker exit). */
void session_close_all(struct worker *w);

#endif

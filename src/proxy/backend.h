/* backend.h - reverse mode: which backend a request goes to (its route)
 * and which of that backend's servers answers it (balance, passive health).
 *
 * Routing is pure. Picking a server reads and updates the servers' shared
 * counters (struct conf_server): atomics, no locks, no I/O. */
#ifndef SLUICE_BACKEND_H
#define SLUICE_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "base/sv.h"
#include "conf/conf.h"

/* The route for a request to host:port (host without brackets) and path
 * (origin-form, starting with '/'). The most specific route wins: one
 * naming the host and port, then one naming the host, then one for any
 * host; among those, the longest path prefix. A prefix matches the path
 * itself and anything below it: "/api" matches "/api", "/api/x", "/api?q"
 * and "/api;p", not "/apis" (a prefix ending in '/' matches whatever
 * follows). The caller passes the path as uri_route_path() gives it.
 * Returns the route, or NULL and *status: 404 when the host is served (a
 * route names it, or one serves any host) but no prefix matches, 421 when
 * no route serves the host at all. */
const struct conf_route *backend_route(const struct conf *c, struct sv host, uint16_t port,
				       struct sv path, int *status);

/* Pick a server of b that is not in tried (bit i = server i), preferring
 * those not marked down: round robin, fewest requests in flight, or the
 * highest score for url_hash (rendezvous hashing: a server going down moves
 * only its own URLs). When every untried server is down, the one that comes
 * back soonest is tried anyway. Returns its index, or -1 when all were
 * tried. */
int backend_pick(struct conf_backend *b, uint64_t tried, uint64_t url_hash, uint64_t now_ms);

/* Passive health: a server that refused, reset or timed out is skipped
 * for fail_ms; one that answered is healthy again. */
void backend_failed(struct conf_server *s, uint64_t now_ms, uint32_t fail_ms);
void backend_ok(struct conf_server *s);

#endif

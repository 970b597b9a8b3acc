/* counters.h - process counters, one table.
 *
 * Each worker owns a block of counters it alone writes (relaxed atomic
 * stores, so no lock and no locked instruction on the hot path); readers sum
 * the blocks. Adding a counter is one line in COUNTERS. */
#ifndef SLUICE_COUNTERS_H
#define SLUICE_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

#define COUNTERS(X)                                                                               \
	X(CLIENT_ACCEPTED, "client_connections_accepted", "client connections accepted")          \
	X(CLIENT_REFUSED, "client_connections_refused", "client connections refused (limits)")    \
	X(CLIENT_ACTIVE, "client_connections_active", "client connections open now")              \
	X(REQUESTS, "requests", "requests received")                                              \
	X(REQUESTS_BAD, "requests_bad", "requests rejected as malformed")                         \
	X(REQUESTS_DENIED, "requests_denied", "requests denied by policy")                        \
	X(CLIENT_LEFT, "requests_client_left", "requests whose client hung up while they waited") \
	X(TUNNELS, "tunnels", "CONNECT tunnels and upgrades established")                         \
	X(UPSTREAM_CONNECTS, "upstream_connects", "new upstream connections")                     \
	X(UPSTREAM_REUSED, "upstream_reused", "requests sent on a pooled connection")             \
	X(UPSTREAM_RETRIES, "upstream_retries", "requests retried on a fresh connection")         \
	X(UPSTREAM_ERRORS, "upstream_errors", "upstream failures answered with 5xx")              \
	X(BYTES_FROM_CLIENTS, "bytes_from_clients", "bytes read from clients")                    \
	X(BYTES_TO_CLIENTS, "bytes_to_clients", "bytes written to clients")                       \
	X(CACHE_HITS, "cache_hits", "requests answered from the cache")                           \
	X(CACHE_MISSES, "cache_misses", "cacheable requests sent to the origin")                  \
	X(CACHE_STORED, "cache_stored", "responses stored in the cache")                          \
	X(CACHE_COLLAPSED, "cache_collapsed", "misses that waited for another's fetch")           \
	X(CACHE_DETACHED, "cache_fetches_detached",                                               \
	  "fetches carried on for waiters after their client left")

enum counter_id {
#define X(e, n, d) CNT_##e,
	COUNTERS(X)
#undef X
		CNT__COUNT
};

struct counters {
	_Atomic uint64_t v[CNT__COUNT];
};

/* Single-writer add: only the owning thread calls this. */
static inline void counter_add(struct counters *c, enum counter_id id, int64_t n)
{
	uint64_t v = atomic_load_explicit(&c->v[id], memory_order_relaxed);
	atomic_store_explicit(&c->v[id], v + (uint64_t)n, memory_order_relaxed);
}

static inline uint64_t counter_get(const struct counters *c, enum counter_id id)
{
	return atomic_load_explicit(&c->v[id], memory_order_relaxed);
}

const char *counter_name(enum counter_id id);
const char *counter_help(enum counter_id id);

#endif

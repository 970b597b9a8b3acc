/* dns.h - asynchronous name resolution on a worker's event loop.
 *
 * One resolver per worker thread: a c-ares channel whose sockets and timer
 * live on the worker's loop, a process-wide TTL-respecting cache of answers
 * (negative answers cached for DNS_NEG_TTL_S), coalescing of concurrent
 * lookups of one name within a worker, and /etc/hosts read once when the resolver is made (c-ares would read
 * the file from disk on every lookup, a blocking read on the worker).
 *
 * Results list IPv6 and IPv4 addresses interleaved, IPv6 first, which is
 * the order Happy Eyeballs (RFC 8305 §4) tries them in. */
#ifndef SLUICE_DNS_H
#define SLUICE_DNS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/base.h"
#include "buf/limits.h"

struct ev_loop;
struct dns;
struct dns_query;

#define DNS_ERRORS(X)                      \
	X(OK, "ok")                        \
	X(NOTFOUND, "no such host")        \
	X(NODATA, "host has no addresses") \
	X(TIMEOUT, "DNS timeout")          \
	X(FAIL, "DNS failure")             \
	X(BADNAME, "invalid host name")

enum dns_error {
#define X(e, s) DNS_##e,
	DNS_ERRORS(X)
#undef X
};

struct dns_addr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t a[16];
};

struct dns_result {
	enum dns_error error;
	unsigned n;
	struct dns_addr addrs[DNS_MAX_ADDRS];
};

/* Called once with the result unless the query was cancelled. The result is
 * valid during the call only. */
typedef void (*dns_cb)(void *arg, const struct dns_result *res);

/* The answer cache is process-wide (sharded, a lock per shard). Make it
 * once before any resolver (size in entries, 0: no cache); free it after
 * the last resolver is gone. */
void dns_cache_init(unsigned size);
void dns_cache_free(void);

struct dns_opts {
	const char *servers;	/* c-ares CSV, or NULL for /etc/resolv.conf */
	unsigned timeout_ms;	/* per try */
	const char *hosts_path; /* NULL: /etc/hosts; "" for none */
};

/* Make a resolver on `loop`. Returns NULL and writes a reason to err. */
struct dns *dns_new(struct ev_loop *loop, const struct dns_opts *opts, char *err, size_t errlen);
/* Use other servers from now on (reload): c-ares CSV, or NULL for the ones
 * in /etc/resolv.conf at the time the resolver was made. Lookups in flight
 * finish on the old ones. Returns 0, or -1 with a reason in err. */
int dns_set_servers(struct dns *d, const char *servers, char *err, size_t errlen) SL_WUR;

/* Cancel everything and free. Pending callbacks are not called. */
void dns_free(struct dns **dp);

/* Look up `host` (NUL-terminated, a name or an IP literal without brackets).
 * Returns 0 with *res filled when the answer is known at once (literal,
 * hosts file, cache; negative answers included), or 1 when the answer comes
 * later through cb(arg, ...) and *q is set to a handle for dns_cancel().
 * Never calls cb before returning. */
int dns_lookup(struct dns *d, const char *host, struct dns_result *res, dns_cb cb, void *arg,
	       struct dns_query **q) SL_WUR;

/* Forget a pending lookup: its callback will not be called. Sets *qp = NULL. */
void dns_cancel(struct dns_query **qp);

const char *dns_error_str(enum dns_error e);

/* Fill a sockaddr from a result address and a port. Returns its length. */
socklen_t dns_addr_to_sockaddr(const struct dns_addr *a, uint16_t port,
			       struct sockaddr_storage *ss);

/* Counters for tests and the status page. */
struct dns_stats {
	uint64_t lookups, cache_hits, queries, failures;
};
void dns_get_stats(const struct dns *d, struct dns_stats *out);

/* Parse hosts-file text into the resolver's table (exposed for tests):
 * lines "ADDR NAME [ALIAS...]", '#' comments. Returns entries added. */
unsigned dns_hosts_parse(struct dns *d, const char *text, size_t len);

#endif

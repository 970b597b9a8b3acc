/* upstream.h - connections to origin servers: connecting (Happy Eyeballs,
 * RFC 8305) and the per-worker pool of idle keep-alive connections.
 *
 * An upstream is owned by one session while in use. Its ev_io delivers
 * events to the owner's callback; while pooled, the pool watches it and
 * closes it if the origin closes or sends anything, or when it has been idle
 * longer than upstream_idle_timeout. */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/dns.h"
#include "ev/ev.h"

#define UPSTREAM_MAGIC 0x0b57ea11u

struct worker;

typedef void (*upstream_event_cb)(void *owner, uint32_t revents);

struct upstream {
	unsigned magic;
	int fd;
	struct ev_io io;
	struct worker *w;
	struct sockaddr_storage addr;
	char *key; /* "host:port", lower case; owned */
	uint64_t hash;
	unsigned nreq; /* requests sent on it so far */

	upstream_event_cb on_event; /* owner's, while in use */
	void *owner;

	/* Pool state. */
	bool pooled;
	struct ev_timer idle_timer;
	struct upstream *bnext, *bprev; /* bucket chain */
	struct upstream *lnext, *lprev; /* LRU list */
};

struct connector;

/* Result of a connect: up is a connected upstream owned by the caller, or
 * NULL with err = -errno of the last failure. The connector frees itself
 * after this call. */
typedef void (*upstream_connect_cb)(void *arg, struct upstream *up, int err);

/* Start connecting to res's addresses at port, racing address families per
 * RFC 8305 (a new attempt every 250 ms, or at once on a failure). key is the
 * pool key for the new connection. Returns the connector (for cancel); the
 * callback never runs before this returns. */
struct connector *upstream_connect(struct worker *w, const struct dns_result *res, uint16_t port,
				   const char *key, upstream_connect_cb cb, void *arg);
/* Abandon a connect in progress; the callback will not run. */
void upstream_connect_cancel(struct connector **cp);

/* Take an idle pooled connection for key, or NULL. A connection the origin
 * closed is dropped when its event is handled; with probe, also one whose
 * close is not handled yet (a recv(MSG_PEEK) each): for requests that could
 * not be retried on a fresh connection. */
struct upstream *upstream_pool_get(struct worker *w, const char *key, bool probe);
/* Give a connection that finished a response cleanly back to the pool (or
 * close it if the pool is full). Sets *up = NULL. */
void upstream_pool_put(struct upstream **up);
/* Set the owner's event callback (the session using it). */
void upstream_attach(struct upstream *up, upstream_event_cb cb, void *owner);
/* Close and free; abort = reset instead of FIN. Sets *up = NULL. */
void upstream_close(struct upstream **up, bool abort);
/* Close every pooled connection (drain, exit). */
void upstream_pool_clear(struct worker *w);
/* Close up to n pooled connections, the longest idle first: the process
 * is out of descriptors (EMFILE, ENFILE), and an idle connection is the
 * cheapest to give back. Returns how many were closed. */
unsigned upstream_pool_trim(struct worker *w, unsigned n);

/* The pool key for host and port into out: "host:port", lowercased. */
void upstream_key(const char *host, uint16_t port, char *out, size_t outlen);

#endif

/* worker.h - a worker thread: its event loop, listeners, resolver, upstream
 * pool and client sessions.
 *
 * The main thread makes the workers, binds every listening socket (one per
 * worker and address, SO_REUSEPORT) and posts config snapshots and listener
 * sets to them; a worker picks a post up on its loop's wakeup, so nothing is
 * shared but the post slot itself. */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "base/log.h"
#include "conf/conf.h"
#include "ev/ev.h"
#include "obs/counters.h"

#define WORKER_MAGIC 0x3a0c3a0cu

struct dns;
struct mem_store;
struct disk_store;
struct disk_mbox;
struct cache_waiter;
struct session;
struct drain;
struct upstream;
struct listener;

/* What the main thread posts: a config and this worker's listening fds, one
 * per conf->listen entry (ownership of the fds passes to the worker). */
struct worker_post {
	struct conf *conf;
	int *fds;
	size_t nfds;
};

struct worker {
	unsigned magic;
	unsigned id;
	pthread_t thread;
	struct ev_loop *loop;
	struct dns *dns;
	struct conf *conf; /* current snapshot, owned reference */
	struct counters cnt;
	struct mem_store *cache; /* the process's memory cache (shared), or NULL */
	struct disk_store *disk; /* and its disk tier (shared), or NULL */
	struct disk_mbox *dmbox; /* where this worker's disk reads complete */

	struct listener *listeners;
	struct session *sessions; /* every open client connection */
	unsigned nsessions;
	unsigned nrefresh;   /* of which the proxy's own: background refreshes
			       * (stale-while-revalidate) */
	unsigned ndetached;  /* and fetches carried on without their clients */
	unsigned noutsiders; /* clients outside `allow` (OUTSIDERS_MAX) */
	/* Lines a client can set off, at most one a second each. */
	struct log_gate refused_gate, denied_gate, fd_gate;
	struct drain *drains; /* the far ends of their socket pairs */

	/* Idle upstream connections: hash buckets by origin key, plus an LRU
	 * list over all of them for the total cap. */
	struct upstream **pool;
	unsigned npool_buckets;
	unsigned npooled;
	struct upstream *pool_lru_head, *pool_lru_tail;

	/* Transactions waiting on a fetch in flight (request collapsing),
	 * kicked from any thread: run on this one's wakeup. */
	pthread_mutex_t kick_mu;
	struct cache_waiter *kick_head;

	/* Posted by the main thread. */
	_Atomic(struct worker_post *) post;
	atomic_bool drain;	/* stop accepting, finish in-flight work */
	atomic_bool force_stop; /* close everything now */
	atomic_bool stopped;	/* set by the worker when its loop ended */
};

/* Process-wide connection accounting (max_connections and
 * max_connections_per_client). Returns true if the connection may proceed
 * and counts it; worker_conn_release() undoes it. */
bool worker_conn_admit(const struct conf *c, const struct sockaddr *peer);
void worker_conn_release(const struct sockaddr *peer);

/* Queue w to be run on worker wk's thread soon (any thread; once until it
 * runs). worker_unkick() takes it off the queue (wk's thread). */
void worker_kick(struct worker *wk, struct cache_waiter *w);
void worker_unkick(struct worker *wk, struct cache_waiter *w);

/* Make a worker (loop, resolver) from the main thread. Returns NULL and a
 * reason in err. */
struct worker *worker_new(unsigned id, struct conf *conf, char *err, size_t errlen);
/* Start its thread with its first post. Returns 0 or -errno. */
int worker_start(struct worker *w, struct worker_post *post) SL_WUR;
/* Post a new config/listener set (main thread). The worker frees the post. */
void worker_post(struct worker *w, struct worker_post *post);
/* Ask for a graceful stop, or (force) an immediate one. */
void worker_stop(struct worker *w, bool force);
/* Join and free. */
void worker_join_free(struct worker **wp);

/* Sum one counter over all workers. */
uint64_t worker_counter_sum(struct worker *const *ws, unsigned n, enum counter_id id);

/* Called by sessions when they end, so a draining worker can finish. */
void worker_session_gone(struct worker *w);

#endif

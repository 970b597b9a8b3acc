#include "proxy/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/log.h"
#include "buf/iobuf.h"
#include "cache/disk.h"
#include "cache/mem.h"
#include "dns/dns.h"
#include "net/net.h"
#include "obs/alog.h"
#include "proxy/session.h"
#include "proxy/upstream.h"

/* When accept() fails for lack of descriptors, stop accepting this long
 * rather than spin on a listener that stays readable. */
#define ACCEPT_PAUSE_MS 100

struct listener {
	struct ev_io io;
	int fd;
	struct ev_timer pause; /* accept paused for lack of descriptors */
	struct worker *w;
	char text[64];
	struct listener *next;
};

/* ---- process-wide connection accounting ---- */

#define CONN_SHARDS  16
#define CONN_BUCKETS 256

struct conn_count {
	struct conn_count *next;
	uint8_t addr[16];
	uint32_t n;
};

static atomic_uint total_conns;
static struct {
	pthread_mutex_t lock;
	struct conn_count *b[CONN_BUCKETS];
} shards[CONN_SHARDS] = {
#define S                                         \
	{                                         \
		.lock = PTHREAD_MUTEX_INITIALIZER \
	}
	S, S, S, S, S, S, S, S, S,
	S, S, S, S, S, S, S
#undef S
};

static void peer_key(const struct sockaddr *sa, uint8_t out[16])
{
	memset(out, 0, 16);
	if (sa->sa_family == AF_INET) {
		/* As an IPv4-mapped address, so v4 and mapped clients count once. */
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

bool worker_conn_admit(const struct conf *c, const struct sockaddr *peer)
{
	uint8_t key[16];
	uint64_t h;
	struct conn_count *e, **pp;
	bool ok = true;

	if (atomic_fetch_add(&total_conns, 1) >= c->max_connections) {
		atomic_fetch_sub(&total_conns, 1);
		return false;
	}
	peer_key(peer, key);
	h = XXH3_64bits(key, 16);
	pthread_mutex_lock(&shards[h % CONN_SHARDS].lock);
	pp = &shards[h % CONN_SHARDS].b[(h / CONN_SHARDS) % CONN_BUCKETS];
	for (e = *pp; e && memcmp(e->addr, key, 16) != 0; e = e->next)
		;
	if (e && c->max_connections_per_client && e->n >= c->max_connections_per_client) {
		ok = false;
	} else if (e) {
		e->n++;
	} else {
		e = sl_calloc(1, sizeof(*e));
		memcpy(e->addr, key, 16);
		e->n = 1;
		e->next = *pp;
		*pp = e;
	}
	pthread_mutex_unlock(&shards[h % CONN_SHARDS].lock);
	if (!ok)
		atomic_fetch_sub(&total_conns, 1);
	return ok;
}

void worker_conn_release(const struct sockaddr *peer)
{
	uint8_t key[16];
	uint64_t h;
	struct conn_count *e, **pp;

	atomic_fetch_sub(&total_conns, 1);
	peer_key(peer, key);
	h = XXH3_64bits(key, 16);
	pthread_mutex_lock(&shards[h % CONN_SHARDS].lock);
	for (pp = &shards[h % CONN_SHARDS].b[(h / CONN_SHARDS) % CONN_BUCKETS]; (e = *pp) != NULL;
	     pp = &e->next) {
		if (memcmp(e->addr, key, 16) != 0)
			continue;
		if (--e->n == 0) {
			*pp = e->next;
			free(e);
		}
		break;
	}
	pthread_mutex_unlock(&shards[h % CONN_SHARDS].lock);
}

/* ---- listeners ---- */

/* The error log's line for a refused connection, at most one a second. */
static void refused(struct worker *w, const struct sockaddr *sa, const char *why)
{
	char a[NET_ADDRSTRLEN];
	unsigned held;

	if (!log_gate_pass(&w->refused_gate, ev_now(w->loop), &held))
		return;
	net_addr_str(sa, a, sizeof(a), false);
	if (held)
		log_warn("connection from %s refused: %s (and %u more refused since the last "
			 "such line)",
			 a, why, held);
	else
		log_warn("connection from %s refused: %s", a, why);
}

static void accept_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents);

static void resume_accept(struct ev_loop *loop, struct ev_timer *t)
{
	struct listener *l = SL_CONTAINER_OF(t, struct listener, pause);
	/* Registering again reports connections still pending, which an
	 * edge-triggered registration would not do by itself. */
	if (ev_io_add(loop, &l->io, l->fd, EV_READ, accept_cb) < 0)
		log_error("listener %s: %s", l->text, strerror(errno));
}

static void apply_post(struct worker *w, struct worker_post *p);

static void accept_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	struct listener *l = SL_CONTAINER_OF(io, struct listener, io);
	struct worker *w = l->w;
	(void)revents;

	/* A reload posted and not applied yet (its wakeup may come later in
	 * this turn): apply it first, so that a connection made after the
	 * reload was logged is served by the new config. It may close this
	 * listener (freed later: l stays readable), whose successor, if any,
	 * reports what is pending on its own. */
	struct worker_post *p = atomic_exchange(&w->post, NULL);
	if (p) {
		apply_post(w, p);
		if (l->fd < 0)
			return;
	}

	bool trimmed = false;
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t plen;
		int fd = net_accept(io->fd, &peer, &plen);
		if (fd == -EAGAIN)
			return;
		if (fd == -EINTR || fd == -ECONNABORTED)
			continue;
		/* Out of descriptors: idle origin connections go first, once
		 * a turn (a flood must not empty the pool the clients being
		 * served need); then the accepts pause. */
		if ((fd == -EMFILE || fd == -ENFILE) && !trimmed &&
		    upstream_pool_trim(w, POOL_TRIM) > 0) {
			trimmed = true;
			continue;
		}
		if (fd < 0) {
			if (fd == -EMFILE || fd == -ENFILE)
				log_warn("accept on %s: %s; pausing", l->text, strerror(-fd));
			else
				log_warn("accept on %s: %s", l->text, strerror(-fd));
			ev_io_del(loop, io);
			ev_timer_at(loop, &l->pause, ev_now(loop) + ACCEPT_PAUSE_MS, resume_accept);
			return;
		}
		struct sockaddr *sa = (struct sockaddr *)&peer;
		/* A forward proxy (no routes) serves only the clients in
		 * `allow`: one outside is let in to be told so (403) but
		 * takes none of the slots the others are served in. */
		bool outsider = w->conf->nroutes == 0 && !conf_client_allowed(w->conf, sa);
		if (outsider ? w->noutsiders >= OUTSIDERS_MAX : !worker_conn_admit(w->conf, sa)) {
			counter_add(&w->cnt, CNT_CLIENT_REFUSED, 1);
			refused(w, sa,
				outsider ? "not allowed, and too many such connections open"
					 : "connection limit reached");
			close(fd);
			continue;
		}
		session_accept(w, fd, sa, plen, outsider);
	}
}

static void listener_free(void *arg)
{
	free(arg);
}

static void listener_close(struct worker *w, struct listener *l)
{
	ev_io_del(w->loop, &l->io);
	ev_timer_stop(w->loop, &l->pause);
	close(l->fd);
	l->fd = -1;
	ev_defer(w->loop, listener_free, l);
}

static void listeners_close_all(struct worker *w)
{
	while (w->listeners) {
		struct listener *l = w->listeners;
		w->listeners = l->next;
		listener_close(w, l);
	}
}

/* Apply a post: swap the config and make the listener set match it. */
static void apply_post(struct worker *w, struct worker_post *p)
{
	struct listener *keep = NULL, **tail = &keep;

	char err[256];

	conf_unref(&w->conf);
	w->conf = p->conf;
	p->conf = NULL;
	ev_set_busy_poll(w->loop, w->conf->busy_poll_us, w->conf->busy_poll_window_us);
	if (dns_set_servers(w->dns, w->conf->dns_servers, err, sizeof(err)) < 0)
		log_error("worker %u: %s (keeping the previous servers)", w->id, err);
	for (size_t i = 0; i < p->nfds; i++) {
		const char *text = w->conf->listen[i].text;
		struct listener *l = NULL, **pp;
		for (pp = &w->listeners; *pp; pp = &(*pp)->next)
			if (strcmp((*pp)->text, text) == 0) {
				l = *pp;
				*pp = l->next;
				break;
			}
		if (l == NULL && p->fds[i] >= 0) {
			l = sl_calloc(1, sizeof(*l));
			l->w = w;
			snprintf(l->text, sizeof(l->text), "%s", text);
			l->fd = p->fds[i];
			if (ev_io_add(w->loop, &l->io, p->fds[i], EV_READ, accept_cb) < 0) {
				log_error("worker %u: cannot watch listener %s: %s", w->id, text,
					  strerror(errno));
				close(p->fds[i]);
				free(l);
				continue;
			}
			p->fds[i] = -1;
		} else if (p->fds[i] >= 0) {
			close(p->fds[i]); /* already listening there */
		}
		if (l == NULL)
			continue;
		l->next = NULL;
		*tail = l;
		tail = &l->next;
	}
	listeners_close_all(w); /* the ones no longer configured */
	w->listeners = keep;
	free(p->fds);
	free(p);
}

static void maybe_finish_drain(struct worker *w)
{
	if (atomic_load(&w->drain) && w->nsessions == 0)
		ev_loop_stop(w->loop);
}

void worker_session_gone(struct worker *w)
{
	maybe_finish_drain(w);
}

void worker_kick(struct worker *wk, struct cache_waiter *w)
{
	pthread_mutex_lock(&wk->kick_mu);
	bool first = wk->kick_head == NULL;
	if (!w->queued) {
		w->queued = true;
		w->qprev = NULL;
		w->qnext = wk->kick_head;
		if (wk->kick_head)
			wk->kick_head->qprev = w;
		wk->kick_head = w;
	}
	pthread_mutex_unlock(&wk->kick_mu);
	if (first)
		ev_wake(wk->loop);
}

static void unlink_kick(struct worker *wk, struct cache_waiter *w)
{
	if (w->qprev)
		w->qprev->qnext = w->qnext;
	else
		wk->kick_head = w->qnext;
	if (w->qnext)
		w->qnext->qprev = w->qprev;
	w->qnext = w->qprev = NULL;
	w->queued = false;
}

void worker_unkick(struct worker *wk, struct cache_waiter *w)
{
	pthread_mutex_lock(&wk->kick_mu);
	if (w->queued)
		unlink_kick(wk, w);
	pthread_mutex_unlock(&wk->kick_mu);
}

/* Run every kicked waiter; one kicked again meanwhile runs again. */
static void run_kicks(struct worker *wk)
{
	for (;;) {
		pthread_mutex_lock(&wk->kick_mu);
		struct cache_waiter *w = wk->kick_head;
		if (w)
			unlink_kick(wk, w);
		pthread_mutex_unlock(&wk->kick_mu);
		if (w == NULL)
			return;
		session_waiter_run(w); /* may end its transaction */
	}
}

static void wakeup_cb(struct ev_loop *loop, void *arg)
{
	struct worker *w = arg;
	struct worker_post *p = atomic_exchange(&w->post, NULL);
	(void)loop;

	run_kicks(w);
	if (p)
		apply_post(w, p);
	if (atomic_load(&w->force_stop)) {
		listeners_close_all(w);
		session_close_all(w);
		upstream_pool_clear(w);
		ev_loop_stop(w->loop);
		return;
	}
	if (atomic_load(&w->drain)) {
		listeners_close_all(w);
		upstream_pool_clear(w);
		session_close_idle(w);
		maybe_finish_drain(w);
	}
}

static void before_wait(void *arg)
{
	(void)arg;
	alog_flush();
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int rc;

	if (w->disk) {
		w->dmbox = disk_mbox_new(w->loop);
		if (w->dmbox == NULL)
			log_error("worker %u: no disk cache mailbox (%s): disk cache not used here",
				  w->id, strerror(errno));
	}
	wakeup_cb(w->loop, w);
	rc = ev_loop_run(w->loop);
	if (rc < 0)
		log_error("worker %u: event loop failed: %s", w->id, strerror(-rc));
	listeners_close_all(w);
	session_close_all(w);
	upstream_pool_clear(w);
	disk_mbox_free(&w->dmbox);
	dns_free(&w->dns);
	/* The loop itself lives until worker_join_free(): the main thread may
	 * still wake it after it stopped. */
	alog_thread_exit();
	iobuf_pool_drain();
	atomic_store(&w->stopped, true);
	return NULL;
}

struct worker *worker_new(unsigned id, struct conf *conf, char *err, size_t errlen)
{
	struct worker *w = sl_calloc(1, sizeof(*w));
	struct dns_opts dopts = {.servers = conf->dns_servers, .timeout_ms = 2000};

	w->magic = WORKER_MAGIC;
	w->id = id;
	w->loop = ev_loop_new();
	if (w->loop == NULL) {
		snprintf(err, errlen, "event loop: %s", strerror(errno));
		free(w);
		return NULL;
	}
	w->dns = dns_new(w->loop, &dopts, err, errlen);
	if (w->dns == NULL) {
		ev_loop_free(&w->loop);
		free(w);
		return NULL;
	}
	w->conf = conf_ref(conf);
	pthread_mutex_init(&w->kick_mu, NULL);
	ev_set_wakeup(w->loop, wakeup_cb, w);
	ev_set_before_wait(w->loop, before_wait, w);
	return w;
}

int worker_start(struct worker *w, struct worker_post *post)
{
	atomic_store(&w->post, post);
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	return rc ? -rc : 0;
}

static void free_post(struct worker_post *p)
{
	if (p == NULL)
		return;
	conf_unref(&p->conf);
	for (size_t i = 0; i < p->nfds; i++)
		if (p->fds[i] >= 0)
			close(p->fds[i]);
	free(p->fds);
	free(p);
}

void worker_post(struct worker *w, struct worker_post *post)
{
	/* A post not yet picked up is replaced: only the newest matters, but
	 * its new listening fds must not leak. A replaced post's fds would be
	 * made again by the main thread only for addresses still new, so a
	 * replaced post's new fds are handed to the new post where missing.
	 * The old post is taken first and the new one published only once it
	 * is whole: the worker may take and free a published post at once. */
	struct worker_post *old = atomic_exchange(&w->post, NULL);
	if (old) {
		for (size_t i = 0; i < post->nfds; i++) {
			if (post->fds[i] >= 0)
				continue;
			for (size_t j = 0; j < old->nfds; j++) {
				if (old->fds[j] >= 0 && old->conf &&
				    strcmp(old->conf->listen[j].text, post->conf->listen[i].text) ==
					    0) {
					post->fds[i] = old->fds[j];
					old->fds[j] = -1;
				}
			}
		}
		free_post(old);
	}
	atomic_store(&w->post, post);
	ev_wake(w->loop);
}

void worker_stop(struct worker *w, bool force)
{
	atomic_store(&w->drain, true);
	if (force)
		atomic_store(&w->force_stop, true);
	ev_wake(w->loop);
}

void worker_join_free(struct worker **wp)
{
	struct worker *w = *wp;
	if (w == NULL)
		return;
	*wp = NULL;
	pthread_join(w->thread, NULL);
	ev_loop_free(&w->loop);
	pthread_mutex_destroy(&w->kick_mu);
	free_post(atomic_exchange(&w->post, NULL));
	conf_unref(&w->conf);
	w->magic = 0;
	free(w);
}

uint64_t worker_counter_sum(struct worker *const *ws, unsigned n, enum counter_id id)
{
	uint64_t sum = 0;
	for (unsigned i = 0; i < n; i++)
		sum += counter_get(&ws[i]->cnt, id);
	return sum;
}

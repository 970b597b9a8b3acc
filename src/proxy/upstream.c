#include "proxy/upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/log.h"
#include "buf/limits.h"
#include "net/net.h"
#include "proxy/worker.h"

#define CONNECTOR_MAGIC 0xc0cc0cc0u
/* RFC 8305 §5: the recommended Connection Attempt Delay. */
#define ATTEMPT_DELAY_MS 250
#define POOL_BUCKETS	 1024

struct attempt {
	int fd;
	struct ev_io io;
	struct sockaddr_storage ss;
	struct connector *c;
};

struct connector {
	unsigned magic;
	struct worker *w;
	struct dns_result res;
	unsigned next;
	uint16_t port;
	char *key;
	/* RFC 8305: a new attempt every ATTEMPT_DELAY_MS while earlier ones
	 * are still pending, so up to one per address. */
	struct attempt att[DNS_MAX_ADDRS];
	struct ev_timer delay;
	int last_err;
	bool finished;
	upstream_connect_cb cb;
	void *arg;
};

void upstream_key(const char *host, uint16_t port, char *out, size_t outlen)
{
	size_t i;
	snprintf(out, outlen, "%s:%u", host, port);
	for (i = 0; out[i]; i++)
		if (out[i] >= 'A' && out[i] <= 'Z')
			out[i] = (char)(out[i] + 32);
}

static struct upstream *upstream_new(struct worker *w, int fd, const struct sockaddr_storage *ss,
				     const char *key)
{
	struct upstream *up = sl_calloc(1, sizeof(*up));
	up->magic = UPSTREAM_MAGIC;
	up->fd = fd;
	up->io.fd = -1;
	up->w = w;
	up->addr = *ss;
	up->key = sl_strndup(key, strlen(key));
	up->hash = XXH3_64bits(key, strlen(key));
	return up;
}

static void upstream_io_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents);

static void free_upstream(void *arg)
{
	struct upstream *up = arg;
	free(up->key);
	up->magic = 0;
	free(up);
}

/* ---- pool ---- */

static void pool_unlink(struct upstream *up)
{
	struct worker *w = up->w;
	unsigned b = (unsigned)(up->hash % w->npool_buckets);

	SL_ASSERT(up->pooled);
	if (up->bprev)
		up->bprev->bnext = up->bnext;
	else
		w->pool[b] = up->bnext;
	if (up->bnext)
		up->bnext->bprev = up->bprev;
	if (up->lprev)
		up->lprev->lnext = up->lnext;
	else
		w->pool_lru_head = up->lnext;
	if (up->lnext)
		up->lnext->lprev = up->lprev;
	else
		w->pool_lru_tail = up->lprev;
	up->bnext = up->bprev = up->lnext = up->lprev = NULL;
	up->pooled = false;
	w->npooled--;
	ev_timer_stop(w->loop, &up->idle_timer);
}

void upstream_close(struct upstream **upp, bool abort)
{
	struct upstream *up = *upp;
	if (up == NULL)
		return;
	*upp = NULL;
	SL_CHECK_OBJ(up, UPSTREAM_MAGIC);
	if (up->pooled)
		pool_unlink(up);
	ev_timer_stop(up->w->loop, &up->idle_timer);
	ev_io_del(up->w->loop, &up->io);
	if (abort)
		net_abort(up->fd);
	else
		close(up->fd);
	up->fd = -1;
	up->on_event = NULL;
	ev_defer(up->w->loop, free_upstream, up);
}

static void idle_timeout_cb(struct ev_loop *loop, struct ev_timer *t)
{
	struct upstream *up = SL_CONTAINER_OF(t, struct upstream, idle_timer);
	(void)loop;
	upstream_close(&up, false);
}

static void upstream_io_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	struct upstream *up = SL_CONTAINER_OF(io, struct upstream, io);
	(void)loop;
	SL_CHECK_OBJ(up, UPSTREAM_MAGIC);
	if (up->pooled) {
		/* An idle connection has nothing to say: any input or a close
		 * means it cannot carry another request. */
		if (revents & (EV_READ | EV_RDHUP | EPOLLERR | EPOLLHUP))
			upstream_close(&up, false);
		return;
	}
	if (up->on_event)
		up->on_event(up->owner, revents);
}

void upstream_attach(struct upstream *up, upstream_event_cb cb, void *owner)
{
	SL_CHECK_OBJ(up, UPSTREAM_MAGIC);
	up->on_event = cb;
	up->owner = owner;
}

static bool still_alive(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

struct upstream *upstream_pool_get(struct worker *w, const char *key, bool probe)
{
	uint64_t h = XXH3_64bits(key, strlen(key));
	struct upstream *up, *next;

	if (w->pool == NULL)
		return NULL;
	for (up = w->pool[h % w->npool_buckets]; up != NULL; up = next) {
		next = up->bnext;
		if (up->hash != h || strcmp(up->key, key) != 0)
			continue;
		pool_unlink(up);
		if (probe && !still_alive(up->fd)) {
			upstream_close(&up, false);
			continue;
		}
		up->on_event = NULL;
		up->owner = NULL;
		return up;
	}
	return NULL;
}

void upstream_pool_put(struct upstream **upp)
{
	struct upstream *up = *upp;
	struct worker *w = up->w;
	unsigned b, same = 0;

	*upp = NULL;
	SL_CHECK_OBJ(up, UPSTREAM_MAGIC);
	SL_ASSERT(!up->pooled);
	if (atomic_load(&w->drain) || w->conf->upstream_idle_timeout_ms == 0) {
		upstream_close(&up, false);
		return;
	}
	if (w->pool == NULL) {
		w->npool_buckets = POOL_BUCKETS;
		w->pool = sl_calloc(w->npool_buckets, sizeof(*w->pool));
	}
	b = (unsigned)(up->hash % w->npool_buckets);
	for (struct upstream *o = w->pool[b]; o != NULL; o = o->bnext)
		if (o->hash == up->hash && strcmp(o->key, up->key) == 0)
			same++;
	if (same >= POOL_MAX_IDLE_PER_ORIGIN) {
		upstream_close(&up, false);
		return;
	}
	if (w->npooled >= POOL_MAX_IDLE_TOTAL) {
		struct upstream *old = w->pool_lru_tail;
		upstream_close(&old, false);
	}
	up->on_event = NULL;
	up->owner = NULL;
	up->pooled = true;
	up->bnext = w->pool[b];
	if (up->bnext)
		up->bnext->bprev = up;
	w->pool[b] = up;
	up->lnext = w->pool_lru_head;
	if (up->lnext)
		up->lnext->lprev = up;
	else
		w->pool_lru_tail = up;
	w->pool_lru_head = up;
	w->npooled++;
	ev_timer_at(w->loop, &up->idle_timer, ev_now(w->loop) + w->conf->upstream_idle_timeout_ms,
		    idle_timeout_cb);
}

unsigned upstream_pool_trim(struct worker *w, unsigned n)
{
	unsigned k = 0, held;
	while (k < n && w->pool_lru_tail) {
		struct upstream *up = w->pool_lru_tail;
		upstream_close(&up, false);
		k++;
	}
	if (k > 0 && log_gate_pass(&w->fd_gate, ev_now(w->loop), &held))
		log_warn("out of descriptors: %u idle origin connections closed%s", k,
			 held ? " (and more since the last such line)" : "");
	return k;
}

void upstream_pool_clear(struct worker *w)
{
	while (w->pool_lru_head) {
		struct upstream *up = w->pool_lru_head;
		upstream_close(&up, false);
	}
	free(w->pool);
	w->pool = NULL;
	w->npool_buckets = 0;
}

/* ---- connecting ---- */

static void free_connector(void *arg)
{
	struct connector *c = arg;
	free(c->key);
	c->magic = 0;
	free(c);
}

static void attempt_close(struct connector *c, struct attempt *a)
{
	if (a->fd < 0)
		return;
	ev_io_del(c->w->loop, &a->io);
	close(a->fd);
	a->fd = -1;
}

static void connector_end(struct connector *c)
{
	c->finished = true;
	for (unsigned i = 0; i < SL_ARRAY_LEN(c->att); i++)
		attempt_close(c, &c->att[i]);
	ev_timer_stop(c->w->loop, &c->delay);
	ev_defer(c->w->loop, free_connector, c);
}

static void start_next(struct connector *c);
static void fail_later_cb(struct ev_loop *loop, struct ev_timer *t);

static unsigned in_flight(const struct connector *c)
{
	unsigned n = 0;
	for (unsigned i = 0; i < SL_ARRAY_LEN(c->att); i++)
		n += c->att[i].fd >= 0;
	return n;
}

static void attempt_failed(struct connector *c, struct attempt *a, int err)
{
	char addr[NET_ADDRSTRLEN];
	net_addr_str((struct sockaddr *)&a->ss, addr, sizeof(addr), true);
	log_debug("connect %s: %s", addr, strerror(-err));
	c->last_err = err;
	attempt_close(c, a);
	if (c->next < c->res.n) {
		start_next(c);
		return;
	}
	if (in_flight(c) == 0) {
		upstream_connect_cb cb = c->cb;
		void *arg = c->arg;
		int e = c->last_err;
		connector_end(c);
		cb(arg, NULL, e);
	}
}

static void attempt_won(struct connector *c, struct attempt *a)
{
	struct upstream *up = upstream_new(c->w, a->fd, &a->ss, c->key);
	upstream_connect_cb cb = c->cb;
	void *arg = c->arg;

	/* Hand the fd over: re-register under the upstream's own io. */
	ev_io_del(c->w->loop, &a->io);
	a->fd = -1;
	if (ev_io_add(c->w->loop, &up->io, up->fd, EV_READ | EV_WRITE | EV_RDHUP, upstream_io_cb) <
	    0) {
		int e = -errno;
		upstream_close(&up, false);
		connector_end(c);
		cb(arg, NULL, e);
		return;
	}
	counter_add(&c->w->cnt, CNT_UPSTREAM_CONNECTS, 1);
	connector_end(c);
	cb(arg, up, 0);
}

static void attempt_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	struct attempt *a = SL_CONTAINER_OF(io, struct attempt, io);
	struct connector *c = a->c;
	int rc;
	(void)loop;
	(void)revents;

	if (c->finished)
		return;
	rc = net_connect_result(a->fd);
	if (rc == 0)
		attempt_won(c, a);
	else
		attempt_failed(c, a, rc);
}

static void delay_cb(struct ev_loop *loop, struct ev_timer *t)
{
	struct connector *c = SL_CONTAINER_OF(t, struct connector, delay);
	(void)loop;
	if (c->next < c->res.n)
		start_next(c);
}

/* Start an attempt on the next address that can be tried; addresses that
 * fail at once are skipped. With none left and nothing in flight, the
 * failure is reported from the loop, never from inside the caller. */
static void start_next(struct connector *c)
{
	while (c->next < c->res.n) {
		struct attempt *a = &c->att[c->next];
		socklen_t len;
		bool in_progress;
		int fd;

		SL_ASSERT(a->fd < 0);
		len = dns_addr_to_sockaddr(&c->res.addrs[c->next++], c->port, &a->ss);
		fd = net_connect((struct sockaddr *)&a->ss, len, &in_progress);
		if ((fd == -EMFILE || fd == -ENFILE) && upstream_pool_trim(c->w, POOL_TRIM) > 0)
			fd = net_connect((struct sockaddr *)&a->ss, len, &in_progress);
		if (fd < 0) {
			c->last_err = fd;
			continue;
		}
		if (ev_io_add(c->w->loop, &a->io, fd, EV_WRITE, attempt_cb) < 0) {
			c->last_err = -errno;
			close(fd);
			continue;
		}
		a->fd = fd;
		if (c->next < c->res.n)
			ev_timer_at(c->w->loop, &c->delay, ev_now(c->w->loop) + ATTEMPT_DELAY_MS,
				    delay_cb);
		return;
	}
	if (in_flight(c) == 0)
		ev_timer_at(c->w->loop, &c->delay, ev_now(c->w->loop), fail_later_cb);
}

struct connector *upstream_connect(struct worker *w, const struct dns_result *res, uint16_t port,
				   const char *key, upstream_connect_cb cb, void *arg)
{
	struct connector *c = sl_calloc(1, sizeof(*c));

	c->magic = CONNECTOR_MAGIC;
	c->w = w;
	c->res = *res;
	c->port = port;
	c->key = sl_strndup(key, strlen(key));
	c->cb = cb;
	c->arg = arg;
	c->last_err = -EHOSTUNREACH;
	for (unsigned i = 0; i < SL_ARRAY_LEN(c->att); i++) {
		c->att[i].fd = c->att[i].io.fd = -1;
		c->att[i].c = c;
	}
	SL_ASSERT(res->n <= SL_ARRAY_LEN(c->att));
	start_next(c);
	return c;
}

/* Every address failed before any callback could run: report on the loop. */
static void fail_later_cb(struct ev_loop *loop, struct ev_timer *t)
{
	struct connector *c = SL_CONTAINER_OF(t, struct connector, delay);
	upstream_connect_cb cb = c->cb;
	void *arg = c->arg;
	int e = c->last_err;
	(void)loop;
	if (in_flight(c) > 0)
		return;
	connector_end(c);
	cb(arg, NULL, e);
}

void upstream_connect_cancel(struct connector **cp)
{
	struct connector *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	SL_CHECK_OBJ(c, CONNECTOR_MAGIC);
	if (!c->finished)
		connector_end(c);
}

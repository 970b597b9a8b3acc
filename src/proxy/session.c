#include "proxy/session.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "buf/iobuf.h"
#include "buf/limits.h"
#include "buf/sbuf.h"
#include "dns/dns.h"
#include "http/chunked.h"
#include "http/h1.h"
#include "http/range.h"
#include "cache/disk.h"
#include "cache/key.h"
#include "cache/mem.h"
#include "cache/policy.h"
#include "http/date.h"
#include "http/uri.h"
#include "net/net.h"
#include "obs/alog.h"
#include "proxy/backend.h"
#include "proxy/head.h"
#include "proxy/relay.h"
#include "proxy/upstream.h"
#include "proxy/worker.h"

#define SESSION_MAGIC 0x5e551011u
#define TXN_MAGIC     0x7a7a7a7au
/* Background refreshes in flight at once, per worker. */
#define REFRESH_MAX 64
/* ... and fetches carried on without their clients (a HEAD's, one others
 * wait on): apart, so that those cannot crowd out stale-while-revalidate. */
#define DETACHED_MAX 16
/* A fill of unknown length reserves store memory in steps of this. */
#define FILL_STEP (64 * 1024)

#define TXN_STATES(X)             \
	X(RESOLVE, "resolve")     \
	X(CONNECT, "connect")     \
	X(EXCHANGE, "exchange")   \
	X(BODY, "body")           \
	X(TUNNEL, "tunnel")       \
	X(LOCAL, "local")         \
	X(HIT, "hit")             \
	X(COLLAPSED, "collapsed") \
	X(DISK, "disk")           \
	X(DONE, "done")

enum txn_state {
#define X(e, s) TS_##e,
	TXN_STATES(X)
#undef X
};

static const char *txn_state_str(enum txn_state s)
{
	static const char *const names[] = {
#define X(e, n) n,
		TXN_STATES(X)
#undef X
	};
	return names[s];
}

/* RFC 9209 error types used in Proxy-Status. */
#define PS_DNS		"dns_error"
#define PS_DNS_TIMEOUT	"dns_timeout"
#define PS_REFUSED	"connection_refused"
#define PS_CONN_TIMEOUT "connection_timeout"
#define PS_RESP_TIMEOUT "http_response_timeout"
#define PS_PROTOCOL	"http_protocol_error"
#define PS_INCOMPLETE	"http_response_incomplete"
#define PS_UNAVAILABLE	"destination_unavailable"
#define PS_LOOP		"proxy_loop_detected"

struct txn {
	unsigned magic;
	struct session *s;
	struct conf *conf;
	enum txn_state state;
	uint64_t t0_us, t0_wall_us;

	/* Copies of request fields kept for the whole transaction (the
	 * client buffer is reused for the body): method, URL, agent, referer. */
	struct sbuf strs;
	size_t method_len, url_off, url_len, ua_off, ua_len, ref_off, ref_len;
	char host[HOST_NAME_MAX_LEN + 1];
	uint16_t port;
	char key[HOST_NAME_MAX_LEN + 8];
	int version;
	bool is_connect, is_head, client_keepalive, upgrade, idempotent;
	bool expect_continue; /* Expect: 100-continue */

	/* Request body, client -> upstream. */
	struct h1_body reqb;
	uint64_t req_left;
	struct chunked req_ck;
	bool body_begun;  /* a byte of the body came */
	size_t cin_ready; /* bytes at the front of s->in ready to forward */
	bool req_framed;  /* the whole body has been identified */

	/* Upstream. */
	struct dns_query *dq;
	struct dns_result dres;
	struct connector *conn;
	struct upstream *up;
	bool up_rd, up_wr;
	bool up_rdhup; /* the origin's FIN (or an error) was signalled */
	bool reused, retried;
	struct sockaddr_storage upaddr;
	bool have_upaddr;
	struct sbuf up_out; /* request head for the upstream */
	size_t up_off;
	bool resp_started; /* a response byte arrived from upstream */
	/* Sending the request failed: the origin may have answered early
	 * and closed (a 413 for a big upload), so its answer is still read. */
	bool req_abandoned;
	int req_err;

	/* Response, upstream -> client. */
	struct iobuf *uin;
	size_t uin_ready;
	struct h1_body respb;
	uint64_t resp_left;
	struct chunked resp_ck;
	bool dechunk, resp_framed, up_reusable, head_sent, switching;
	struct sbuf cl_out; /* response head (or a local response) for the client */
	size_t cl_off;
	bool close_after; /* close the client connection after this response */

	struct relay *relay;

	/* Response body by splice(): upstream -> pipe -> client. */
	int pipe[2];
	size_t pipe_bytes, pipe_cap;
	bool splicing;

	/* Reverse mode: the backend and server this request goes to. host
	 * and port above are then the URL's (the public name), srv the
	 * address dialled. */
	struct conf_backend *be;
	struct conf_server *srv;
	bool srv_busy;	   /* counted in srv->active (leastconn) */
	bool srv_named;	   /* the error log named srv's failure already */
	uint64_t tried;	   /* servers of be tried so far (bit i = server i) */
	uint64_t url_hash; /* for balance hash */

	/* Cache (src/cache/). */
	char *ckey; /* primary key of the target; NULL when the cache is not involved */
	size_t ckey_len;
	struct cache_obj *hit;		 /* answering from this stored response */
	const struct cache_chunk *hit_c; /* body cursor: chunk and offset */
	size_t hit_off;
	uint64_t hit_left;		  /* body bytes still to send */
	bool ranged;			  /* a 206 of range_first..range_last */
	uint64_t range_first, range_last; /* (416: range_last is the length) */
	/* Where add_validators put reval's validators in up_out. */
	size_t up_cond_at;
	struct cache_obj *fill;	   /* storing the response into this */
	struct cache_obj *reval;   /* stale stored response being validated upstream */
	struct cache_obj *stale;   /* served if the origin fails (stale-if-error) */
	struct cache_obj *head_of; /* stored GET a HEAD's 200 may refresh (§4.3.5) */
	bool stale_cond;	   /* the client's conditionals make that a 304 */
	struct cache_pend *pend;   /* the fetch in flight this one leads or waits for */
	struct disk_read *dread;   /* reading from the disk tier, or a PURGE's wait */
	unsigned purged;	   /* PURGE: how many stored responses it dropped */
	uint64_t unlink_fail0;	   /* PURGE: disk_unlink_failures() before it */
	bool purging;		   /* PURGE: in TS_DISK until its files are deleted */
	size_t up_own;		   /* where this proxy\'s own fields begin in up_out */
	bool swr;		   /* answered stale while a refresh runs */
	bool vary_miss;		   /* stored, but another variant (Cache-Status) */
	size_t tgt_off, tgt_len;   /* the request target as received */
	bool from_disk;
	bool pend_leader;
	bool client_gone; /* the client left; the fetch goes on for the waiters */
	/* The response is stored as it comes and its client is sent it from
	 * the object (t->hit), at its own pace; the fetch keeps the origin's
	 * (step_decoupled). */
	bool decoupled;
	uint64_t final_at; /* bytes_out when the final answer's head was made */
	/* Decoupled, and the fill was dropped: the rest of the body comes
	 * from uin, after what the object held (tail_send). */
	bool tail;
	bool collapsed; /* answered from another request's fetch */
	/* A HEAD miss in reverse mode goes upstream as a GET, so that the
	 * answer is stored (head_to_get); its client has had all it gets
	 * once the head is out, and the fetch goes on without it. */
	bool head_get, head_done;
	bool miss_counted;	/* counted a miss already (collapse_rejoin) */
	bool collapsed_counted; /* and a wait on another request's fetch */
	uint64_t collapse_t0;	/* when it began to wait on one (ms) */
	/* When the first byte of the response head now being read came (ms),
	 * 0 before: the head must be whole within read_timeout of it, as a
	 * request head must, however slowly it trickles in. */
	uint64_t rhead_t0;
	struct cache_waiter waiter; /* while waiting on pend */
	uint64_t hit_pos;	    /* body offset of the hit cursor */
	/* Streaming a growing object of unknown length: chunked framing, the
	 * current chunk\'s data bytes still to send, whether one was begun. */
	bool hit_chunked, ck_any;
	uint64_t ck_left;
	bool cache_store;	  /* the response may be stored (judged when it comes) */
	uint32_t gen;		  /* the key's invalidation generation when looked up */
	uint64_t fill_reserved;	  /* bytes reserved in the store for the fill */
	bool fill_transient;	  /* not to be stored, finished for its waiters */
	uint64_t fill_reserved_t; /* ... and reserved for that (transient budget) */
	const char *cache_fwd;	  /* Cache-Status fwd= for a forwarded response */
	const char *cache_detail; /* why it was not stored, if it was not */
	bool cache_invalidate;	  /* unsafe method: a non-error answer invalidates */

	/* For the access log. */
	int status;
	const char *tag;
	uint64_t bytes_out;
	char ctype[64];
	bool logged;
	bool aborted;	  /* the client did not get its whole answer */
	bool client_left; /* ... for it hung up while the request waited */
};

struct session {
	unsigned magic;
	struct worker *w;
	int fd;
	struct ev_io io;
	struct ev_timer timer;
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} peer;
	struct iobuf *in;
	struct txn *txn;
	struct session *prev, *next;
	bool rd, wr, rd_eof, closed;
	bool rdhup; /* the client's FIN (or an error) was signalled */
	bool hup;   /* ... a reset or an error: gone both ways */
	/* Close by lingering (see LINGER_IDLE_MS): set when an answer went
	 * out while the client may still be sending. */
	bool linger, lingering;
	uint64_t linger_end;
	/* When the first byte of the request head now being read came, 0
	 * between requests: the head must be whole within read_timeout of it,
	 * however slowly it trickles in. */
	uint64_t head_t0;
	/* What the timer was armed for; a step that moved bytes sets moved.
	 * Events that change neither leave the deadline where it is. */
	const struct txn *timer_txn;
	int timer_state;
	bool moved;
	/* A session of the proxy's own, its answer drained (session_pair): a
	 * background refresh (stale-while-revalidate), a request this proxy
	 * makes to itself, or a HEAD's fetch carried on without its client.
	 * budget is the worker's count it is one of (NULL: a client's
	 * connection); refresh_of the stale object whose refreshing flag a
	 * refresh holds. */
	unsigned *budget;
	struct cache_obj *refresh_of;
	bool outsider; /* see session_accept */
};

static void session_run(struct session *s);
static void session_close(struct session *s, bool abort);
static void cache_fill_done(struct txn *t);
static void fill_append(struct txn *t, const void *p, size_t n);
static void fill_hand_over(struct txn *t);
static bool upstream_clean(struct txn *t);

/* ---- small helpers ---- */

static void go_state(struct txn *t, enum txn_state next)
{
	if (t->state == next)
		return;
	log_debug("txn %p: %s -> %s", (void *)t, txn_state_str(t->state), txn_state_str(next));
	t->state = next;
}

static uint64_t now_ms(const struct session *s)
{
	return ev_now(s->w->loop);
}

static struct sv txn_sv(const struct txn *t, size_t off, size_t len)
{
	return sv_make(t->strs.p ? t->strs.p + off : "", len);
}

static void timer_cb(struct ev_loop *loop, struct ev_timer *tm);

static void arm(struct session *s, uint32_t ms)
{
	ev_timer_at(s->w->loop, &s->timer, now_ms(s) + ms, timer_cb);
}

/* The timeout that applies in the session's current state. */
static void arm_for_state(struct session *s)
{
	const struct conf *c = s->txn ? s->txn->conf : s->w->conf;
	s->timer_txn = s->txn;
	s->timer_state = s->txn ? (int)s->txn->state : -1;
	if (s->txn == NULL) {
		uint64_t head = c->read_timeout_ms, idle = c->client_idle_timeout_ms;
		if (s->outsider) {
			head = SL_MIN(head, OUTSIDER_WAIT_MS);
			idle = SL_MIN(idle, OUTSIDER_WAIT_MS);
		}
		if (s->head_t0 != 0)
			ev_timer_at(s->w->loop, &s->timer, s->head_t0 + head, timer_cb);
		else
			arm(s, idle);
		return;
	}
	switch (s->txn->state) {
	case TS_RESOLVE:
	case TS_CONNECT:
		arm(s, c->connect_timeout_ms);
		break;
	case TS_TUNNEL:
		arm(s, c->tunnel_idle_timeout_ms);
		break;
	case TS_COLLAPSED: /* read_timeout in all, whatever fetches it waits on */
		ev_timer_at(s->w->loop, &s->timer, s->txn->collapse_t0 + c->read_timeout_ms,
			    timer_cb);
		break;
	case TS_EXCHANGE:
		if (s->txn->rhead_t0 != 0)
			ev_timer_at(s->w->loop, &s->timer, s->txn->rhead_t0 + c->read_timeout_ms,
				    timer_cb);
		else
			arm(s, c->read_timeout_ms);
		break;
	default:
		arm(s, c->read_timeout_ms);
		break;
	}
}

/* Write as much of b[*off..len) as the socket takes. 1: all written, 0: would
 * block, -errno: failed. */
static int flush_sbuf(int fd, const struct sbuf *b, size_t *off, bool *ready, uint64_t *count)
{
	while (*off < b->len) {
		ssize_t n = send(fd, b->p + *off, b->len - *off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				*ready = false;
				return 0;
			}
			return -errno;
		}
		*off += (size_t)n;
		if (count)
			*count += (uint64_t)n;
	}
	return 1;
}

/* ---- logging and teardown ---- */

/* The request is no longer in flight at its server: leastconn counts the
 * requests a server is busy with, from the pick to the end of its answer
 * (or of the transaction, for one that ends first). */
static void srv_idle(struct txn *t)
{
	if (!t->srv_busy)
		return;
	atomic_fetch_sub_explicit(&t->srv->active, 1, memory_order_relaxed);
	t->srv_busy = false;
}

static void txn_log(struct txn *t)
{
	struct alog_rec r;
	struct session *s = t->s;

	if (t->logged)
		return;
	t->logged = true;
	r = (struct alog_rec){
		.start_wall_us = t->t0_wall_us,
		.duration_us = clock_mono_us() - t->t0_us,
		.client = &s->peer.sa,
		.tag = t->tag ? t->tag : "NONE_NONE",
		.status = t->client_left ? 0 : t->status, /* (not an interim 100) */
		.bytes = t->bytes_out,
		.aborted = t->aborted,
		.method = txn_sv(t, 0, t->method_len),
		.url = txn_sv(t, t->url_off, t->url_len),
		.version = t->version,
		.upstream = t->have_upaddr ? (const struct sockaddr *)&t->upaddr : NULL,
		.content_type = sv_from_cstr(t->ctype),
		.referer = txn_sv(t, t->ref_off, t->ref_len),
		.user_agent = txn_sv(t, t->ua_off, t->ua_len),
	};
	alog_write(&r);
}

static void txn_free(struct txn **tp, bool abort_upstream)
{
	struct txn *t = *tp;
	if (t == NULL)
		return;
	*tp = NULL;
	SL_CHECK_OBJ(t, TXN_MAGIC);
	txn_log(t);
	dns_cancel(&t->dq);
	upstream_connect_cancel(&t->conn);
	upstream_close(&t->up, abort_upstream);
	relay_free(&t->relay);
	if (t->splicing) {
		close(t->pipe[0]);
		close(t->pipe[1]);
	}
	iobuf_put(&t->uin);
	sbuf_free(&t->strs);
	sbuf_free(&t->up_out);
	sbuf_free(&t->cl_out);
	cache_obj_put(&t->hit);
	disk_read_cancel(&t->dread);
	cache_obj_put(&t->reval);
	cache_obj_put(&t->stale);
	cache_obj_put(&t->head_of);
	if (t->pend && t->pend_leader) {
		if (t->fill)
			cache_obj_fail(t->fill);
		(void)mem_pend_end(t->s->w->cache, &t->pend);
	} else if (t->pend) {
		mem_pend_leave(&t->pend, &t->waiter);
	}
	if (t->waiter.kick)
		worker_unkick(t->s->w, &t->waiter);
	fill_hand_over(t); /* an unfinished fill is never inserted */
	cache_obj_put(&t->fill);
	srv_idle(t);
	free(t->ckey);
	conf_unref(&t->conf);
	t->magic = 0;
	free(t);
}

static void free_session(void *arg)
{
	struct session *s = arg;
	s->magic = 0;
	free(s);
}

/* Drop what the client sends while lingering. Returns with the session
 * closed when the client closes or fails. A client that keeps sending gets
 * a bounded share per wakeup; its next segment wakes us again. */
static void linger_read(struct session *s)
{
	char sink[16 * 1024];
	size_t budget = 1024 * 1024;

	while (budget > 0) {
		ssize_t n = recv(s->fd, sink, sizeof(sink), 0);
		if (n > 0) {
			budget -= SL_MIN(budget, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		session_close(s, false); /* EOF or error: the client is done */
		return;
	}
	ev_timer_at(s->w->loop, &s->timer, SL_MIN(now_ms(s) + LINGER_IDLE_MS, s->linger_end),
		    timer_cb);
}

/* Instead of closing now, shut the write side after the answer and wait
 * for the client to close. false: there is nothing to wait for. */
static bool linger_start(struct session *s)
{
	txn_free(&s->txn, false);
	iobuf_put(&s->in);
	if (shutdown(s->fd, SHUT_WR) < 0)
		return false;
	s->lingering = true;
	s->linger_end = now_ms(s) + LINGER_TOTAL_MS;
	linger_read(s);
	return true;
}

static void session_close(struct session *s, bool abort)
{
	struct worker *w = s->w;

	if (s->closed)
		return;
	if (s->txn && s->txn->client_gone)
		abort = true; /* a reset, never a FIN (leader_detach) */
	/* Closed under a transaction that has not finished (a failed write,
	 * shutdown_timeout): its client did not get all of its answer. A
	 * tunnel has no answer to finish; its end is its close. */
	if (s->txn && s->txn->state != TS_TUNNEL)
		s->txn->aborted = true;
	if (!abort && s->linger && !s->lingering && !s->rd_eof && !atomic_load(&w->drain) &&
	    linger_start(s))
		return;
	s->closed = true;
	txn_free(&s->txn, abort);
	iobuf_put(&s->in);
	ev_timer_stop(w->loop, &s->timer);
	ev_io_del(w->loop, &s->io);
	if (abort)
		net_abort(s->fd);
	else
		close(s->fd);
	s->fd = -1;
	if (s->prev)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	w->nsessions--;
	if (s->budget)
		(*s->budget)--;
	if (s->refresh_of) {
		atomic_store(&s->refresh_of->refreshing, false);
		cache_obj_put(&s->refresh_of);
	}
	if (s->budget == NULL) {
		counter_add(&w->cnt, CNT_CLIENT_ACTIVE, -1);
		if (s->outsider)
			w->noutsiders--;
		else
			worker_conn_release(&s->peer.sa);
	}
	ev_defer(w->loop, free_session, s);
	worker_session_gone(w);
}

/* ---- local responses ---- */

static void serve_hit(struct txn *t, struct cache_obj *o, bool not_mod, int64_t now,
		      const char *fwd, int fwd_status, bool stored, bool sie);
static int64_t wall_s(void);

/* The origin failed (no answer, or origin_status 500, 502, 503, 504):
 * answer with the stale stored response if stale-if-error allowed it. */
static bool serve_stale(struct txn *t, int origin_status)
{
	struct cache_obj *o = t->stale;
	if (o == NULL || t->head_sent)
		return false;
	t->stale = NULL;
	dns_cancel(&t->dq);
	upstream_connect_cancel(&t->conn);
	upstream_close(&t->up, true); /* its answer, if any, is not read */
	srv_idle(t);
	iobuf_put(&t->uin);
	cache_obj_put(&t->reval);
	log_debug("origin %s failed (%d): serving stale (stale-if-error)", t->key, origin_status);
	serve_hit(t, o, t->stale_cond, wall_s(), "stale", origin_status, false, true);
	return true;
}

/* Answer the client ourselves: "<code> <Reason>: <detail>" as text. */
static void txn_local(struct txn *t, int status, const char *detail, const char *ps_error,
		      bool close)
{
	struct session *s = t->s;
	const char *reason = h1_status_reason(status);
	char body[512];

	if (status >= 500 && serve_stale(t, 0))
		return;
	/* The page names the backend only (origin_name): the log names the
	 * server, if nothing did yet. */
	if ((status == 502 || status == 504) && t->srv && !t->srv_named)
		log_info("backend %s: server %s: %s", t->be->name, t->srv->text, detail);
	int blen = snprintf(body, sizeof(body), "%d %s: %s\n", status, reason, detail);
	if (blen < 0)
		blen = 0;
	if ((size_t)blen >= sizeof(body))
		blen = sizeof(body) - 1;
	/* The upstream side is of no further use. */
	dns_cancel(&t->dq);
	upstream_connect_cancel(&t->conn);
	upstream_close(&t->up, true);
	srv_idle(t);
	iobuf_put(&t->uin);
	sbuf_reset(&t->cl_out);
	t->cl_off = 0;
	sbuf_printf(&t->cl_out, "HTTP/1.1 %d %s\r\n", status, reason);
	sbuf_add_str(&t->cl_out, "Content-Type: text/plain; charset=utf-8\r\n");
	sbuf_printf(&t->cl_out, "Content-Length: %d\r\n", blen);
	if (ps_error)
		sbuf_printf(&t->cl_out, "Proxy-Status: %s; error=%s\r\n", t->conf->visible_hostname,
			    ps_error);
	if (status == 416)
		sbuf_printf(&t->cl_out, "Content-Range: bytes */%llu\r\n",
			    (unsigned long long)t->range_last);
	if (status == 405 ||
	    (status == 200 && sv_eq(txn_sv(t, 0, t->method_len), SV_LIT("OPTIONS"))))
		sbuf_add_str(
			&t->cl_out,
			t->conf->forward
				? "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH, "
				  "CONNECT\r\n"
				: "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH\r\n");
	/* The request body may be unread: the connection cannot carry another
	 * request unless the body was fully consumed. */
	/* (A CONNECT answered here made no tunnel: what the client sent
	 * behind it was meant for one, and is no request.) */
	t->close_after = close || t->close_after || !t->client_keepalive || !t->req_framed ||
			 s->rd_eof || t->cin_ready > 0 || t->is_connect;
	sbuf_add_str(&t->cl_out, t->close_after ? "Connection: close\r\n\r\n" : "\r\n");
	if (!t->is_head)
		sbuf_add(&t->cl_out, body, (size_t)blen);
	t->status = status;
	snprintf(t->ctype, sizeof(t->ctype), "text/plain");
	if (status >= 500)
		counter_add(&s->w->cnt, CNT_UPSTREAM_ERRORS, 1);
	log_debug("local %d for %.*s: %s", status, (int)t->url_len, t->strs.p + t->url_off, detail);
	go_state(t, TS_LOCAL);
}

/* TRACE that ends here (Max-Forwards: 0): reflect the request as received
 * (RFC 9110 §9.3.8), less the fields that carry credentials. */
static void txn_trace_reply(struct txn *t, const struct h1_request *req)
{
	struct sbuf body;

	sbuf_init(&body, OUT_HEAD_MAX);
	sbuf_add_sv(&body, req->method);
	sbuf_add_char(&body, ' ');
	sbuf_add_sv(&body, req->target);
	sbuf_add_str(&body, req->version == 10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
	for (unsigned i = 0; i < req->nheaders; i++) {
		struct sv n = req->headers[i].name;
		if (sv_ieq_cstr(n, "Cookie") || sv_ieq_cstr(n, "Authorization") ||
		    sv_ieq_cstr(n, "Proxy-Authorization"))
			continue;
		sbuf_add_sv(&body, n);
		sbuf_add_str(&body, ": ");
		sbuf_add_sv(&body, req->headers[i].value);
		sbuf_add_str(&body, "\r\n");
	}
	sbuf_add_str(&body, "\r\n");
	txn_local(t, 200, "", NULL, false);
	sbuf_reset(&t->cl_out);
	sbuf_printf(&t->cl_out,
		    "HTTP/1.1 200 OK\r\nContent-Type: message/http\r\n"
		    "Content-Length: %zu\r\n%s",
		    body.len, t->close_after ? "Connection: close\r\n\r\n" : "\r\n");
	sbuf_add(&t->cl_out, body.p, body.len);
	snprintf(t->ctype, sizeof(t->ctype), "message/http");
	sbuf_free(&body);
}

/* A failure after the response head went to the client: the only honest
 * signal left is to cut the connection, so the client sees an incomplete
 * message instead of a short one that looks whole. */
static void txn_abort(struct txn *t, const char *why)
{
	log_info("abort %.*s: %s", (int)t->url_len, t->strs.p + t->url_off, why);
	session_close(t->s, true); /* (marks it aborted, unless a tunnel) */
}

/* The client of a fetch that others wait on left in the middle of the
 * body (a write to it failed): the fetch goes on without it, so that the waiters
 * get the whole response and the cache keeps it, and what would have gone
 * to this client is dropped. False (abort as usual) when nobody waits. */
static bool leader_detach(struct txn *t, const char *why)
{
	if (t->client_gone || !t->pend || !t->pend_leader || !t->fill || !t->head_sent ||
	    mem_pend_seal(t->s->w->cache, t->pend))
		return false;
	log_info("%s for %.*s; its fetch goes on for the requests waiting on it", why,
		 (int)t->url_len, t->strs.p + t->url_off);
	t->client_gone = true;
	t->close_after = true;
	t->aborted = true;
	counter_add(&t->s->w->cnt, CNT_CACHE_DETACHED, 1);
	/* Never a FIN, should the client still be there: a FIN would end
	 * a close-delimited body as if it were whole. The close resets. */
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	(void)setsockopt(t->s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	(void)shutdown(t->s->fd, SHUT_RD);
	return true;
}

/* What is ready for a client that left goes nowhere. */
static void drop_client_output(struct txn *t)
{
	t->cl_off = t->cl_out.len;
	if (t->uin_ready > 0) {
		iobuf_consume(t->uin, t->uin_ready);
		t->uin_ready = 0;
	}
}

/* ---- transaction finish ---- */

/* Nothing may be left unread on a connection that goes back to the pool: a
 * pooled connection is handed out without a probe, and readiness the
 * transaction already took (edge-triggered) would never be reported again,
 * so stray bytes would be read as the next request's answer, and a FIN
 * would leave the next request waiting for a dead peer. The last read
 * having come up short (up_rd false) proves the socket was empty then, and
 * any byte since would have been reported; otherwise a one-byte peek tells. */
static bool upstream_clean(struct txn *t)
{
	char c;
	if (t->up_rdhup)
		return false;
	if (!t->up_rd)
		return true;
	ssize_t n = recv(t->up->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The exchange with the origin is over: its connection goes back to the
 * pool if it can carry another request, else it is closed. */
static void upstream_done(struct txn *t)
{
	srv_idle(t);
	if (t->up == NULL)
		return;
	if (t->up_reusable && t->req_framed && t->cin_ready == 0 && t->uin == NULL &&
	    t->up_off == t->up_out.len && upstream_clean(t))
		upstream_pool_put(&t->up);
	else
		upstream_close(&t->up, false);
}

/* Whether the client's connection can carry another request once t's
 * answer is out (if not, with request bytes unread, it lingers first). */
static bool txn_client_keep(struct txn *t)
{
	struct session *s = t->s;
	/* (A fetch carried on without its client ends its session.) */
	bool keep = !t->close_after && !t->client_gone && t->client_keepalive && t->req_framed &&
		    t->cin_ready == 0 && !s->rd_eof;
	if (!keep && (!t->req_framed || t->cin_ready > 0 || t->req_abandoned ||
		      (s->in && iobuf_len(s->in) > 0)))
		s->linger = true;
	return keep;
}

/* The session's transaction is gone: on to the next request, or closed. */
static void session_next(struct session *s, bool keep)
{
	if (!keep || atomic_load(&s->w->drain)) {
		session_close(s, false);
		return;
	}
	/* Pipelined requests already in the buffer are served by the
	 * driver's next turn; an idle session gives its buffer back. */
	if (s->in && iobuf_len(s->in) == 0)
		iobuf_put(&s->in);
}

static void txn_finish(struct txn *t)
{
	struct session *s = t->s;
	bool keep = txn_client_keep(t);

	upstream_done(t);
	go_state(t, TS_DONE);
	txn_free(&s->txn, false);
	session_next(s, keep);
}

/* ---- request start ---- */

static void copy_str(struct txn *t, struct sv v, size_t *off, size_t *len)
{
	*off = t->strs.len;
	*len = v.len;
	sbuf_add_sv(&t->strs, v);
}

/* ---- the cache ---- */

static int64_t wall_s(void)
{
	return (int64_t)(clock_wall_us() / 1000000);
}

static struct mem_store *txn_store(const struct txn *t)
{
	return t->conf->cache ? t->s->w->cache : NULL;
}

/* Store a whole object in memory and, behind it, on disk. */
struct gen_check {
	struct mem_store *store;
	const struct cache_obj *o;
	uint32_t gen;
};

static bool gen_unchanged(void *arg)
{
	const struct gen_check *g = arg;
	return mem_gen(g->store, g->o->key, g->o->key_len) == g->gen;
}

/* A copy the disk holds of o's name is older than o, which is not written
 * there: it goes, or it would answer once o left memory. A read of it
 * already on its way is kept out of memory too (the generation moves, as
 * for a purge). Not if the key was invalidated since o was fetched: the
 * disk's copy came after, and is newer. */
static void disk_retire(struct txn *t, struct disk_store *disk, const struct cache_obj *o,
			struct gen_check *g)
{
	if (disk_forget_if(disk, o, gen_unchanged, g))
		mem_gen_bump(txn_store(t), o->key, o->key_len);
}

/* Unless the key was invalidated since this request looked it up (t->gen:
 * what it got may be older than what made way): checked as it enters
 * memory and again as it enters the disk index, under that index's lock,
 * for a purge may come between the two (cache_purge). */
static bool cache_insert(struct txn *t, struct cache_obj *o)
{
	struct mem_store *store = txn_store(t);
	struct disk_store *disk = t->s->w->disk;
	if (store == NULL)
		return false;
	struct gen_check g = {store, o, t->gen};
	bool in_mem = mem_insert_gen(store, o, t->gen);
	if (disk && !(in_mem && disk_write_if(disk, o, gen_unchanged, &g)))
		disk_retire(t, disk, o, &g);
	if (!in_mem)
		return false;
	counter_add(&t->s->w->cnt, CNT_CACHE_STORED, 1);
	return true;
}

static void purge_answer(struct txn *t)
{
	char d[64];
	unsigned n = t->purged;
	struct disk_store *disk = t->s->w->disk;

	if (disk && disk_unlink_failures(disk) != t->unlink_fail0) {
		/* Out of both tiers' indexes, but a file stays, which a
		 * restart would read back. */
		txn_local(t, 500,
			  "purged, but a stored file could not be deleted and would come back "
			  "after a restart (see the error log)",
			  NULL, false);
		return;
	}
	snprintf(d, sizeof(d), "purged %u stored response%s", n, n == 1 ? "" : "s");
	txn_local(t, n ? 200 : 404, n ? d : "not in cache", NULL, false);
}

static void on_purge_done(void *arg, struct cache_obj *o)
{
	struct txn *t = arg;
	struct session *s = t->s;
	SL_CHECK_OBJ(t, TXN_MAGIC);
	SL_ASSERT(o == NULL);
	t->dread = NULL;
	purge_answer(t);
	session_run(s);
}

/* Drop every stored variant of a key, from both tiers; even with cache off
 * (the store is kept for a reload that turns it back on). The generation
 * goes up before the disk drops it and again as memory does: whatever was
 * read from either meanwhile stays out of memory, and a write to the disk
 * that has not entered its index by then stays out of it (cache_insert).
 * Returns how many the fuller tier held. With wait, a disk tier's files are
 * waited for: if any, t->dread is set and on_purge_done() runs once they are
 * deleted (disk_purge_wait). */
static unsigned cache_purge(struct txn *t, const char *key, size_t len, bool wait)
{
	struct mem_store *store = t->s->w->cache;
	struct worker *w = t->s->w;
	unsigned n = 0;
	if (store == NULL)
		return 0;
	if (w->disk) {
		mem_gen_bump(store, key, len);
		if (wait && w->dmbox)
			t->dread =
				disk_purge_wait(w->disk, w->dmbox, key, len, &n, on_purge_done, t);
		else
			n = disk_purge(w->disk, key, len);
	}
	unsigned m = mem_purge(store, key, len);
	return SL_MAX(n, m);
}

/* The primary key of an absolute-form target, into t->ckey. */
static bool txn_cache_key(struct txn *t, const struct uri *u)
{
	char buf[CACHE_KEY_MAX];
	if (u->query_only)
		return false; /* "http://h?q": rare; not cached */
	struct sv path = u->path_empty ? SV_LIT("/") : u->path;
	long n = cache_key_make(u->host, u->host_is_ipv6, u->port, path, buf, sizeof(buf));
	if (n < 0)
		return false;
	t->ckey = sl_malloc((size_t)n);
	memcpy(t->ckey, buf, (size_t)n);
	t->ckey_len = (size_t)n;
	return true;
}

/* Fields a 304 from cache carries (RFC 9110 §15.4.5). */
static bool in_304(struct sv name)
{
	static const char *const keep[] = {"Cache-Control", "Content-Location", "Date",
					   "ETag",	    "Expires",		"Vary",
					   "Last-Modified"};
	for (size_t i = 0; i < SL_ARRAY_LEN(keep); i++)
		if (sv_ieq_cstr(name, keep[i]))
			return true;
	return false;
}

/* Answer from a stored response (a reference the transaction takes): a
 * 304 if not_mod, else the stored status, head and (but for HEAD) body.
 * fwd: NULL for a plain hit, else the Cache-Status fwd= of a request that
 * went to the origin first, with the origin's status (0: no answer) and
 * whether the copy served was stored: a 304, or a 200 to a HEAD, that
 * refreshed it; or (sie) a failure, and this is a stale answer allowed by
 * stale-if-error. */
static void serve_hit(struct txn *t, struct cache_obj *o, bool not_mod, int64_t now,
		      const char *fwd, int fwd_status, bool stored, bool sie)
{
	struct session *s = t->s;
	int64_t age = policy_current_age(&o->meta, now);
	bool ranged = t->ranged && !not_mod;
	int status = not_mod ? 304 : ranged ? 206 : o->status;
	/* The body's length: known from the start when it came with one (an
	 * object still being filled, for a collapsed request, has only
	 * that), else what was stored of it, all of it by now. */
	uint64_t blen = o->body_hint ? o->body_hint
				     : atomic_load_explicit(&o->published, memory_order_acquire);

	t->hit = o;
	t->close_after = !t->client_keepalive || atomic_load(&s->w->drain);
	sbuf_reset(&t->cl_out);
	t->cl_off = 0;
	/* (Built without printf: a hit's head is most of what a small hit
	 * costs this proxy, and formatting was a tenth of it.) */
	sbuf_add_str(&t->cl_out, "HTTP/1.1 ");
	sbuf_add_u64(&t->cl_out, (unsigned)status);
	sbuf_add_char(&t->cl_out, ' ');
	sbuf_add_str(&t->cl_out, h1_status_reason(status));
	sbuf_add_str(&t->cl_out, "\r\n");
	for (unsigned i = 0; i < o->nhdrs; i++) {
		struct sv n = o->hdrs[i].name;
		if (sv_ieq_cstr(n, "Age") || (not_mod && !in_304(n)) ||
		    sv_ieq_cstr(n, "Content-Length"))
			continue;
		sbuf_add_sv(&t->cl_out, n);
		sbuf_add_str(&t->cl_out, ": ");
		sbuf_add_sv(&t->cl_out, o->hdrs[i].value);
		sbuf_add_str(&t->cl_out, "\r\n");
	}
	sbuf_add_str(&t->cl_out, "Age: ");
	sbuf_add_i64(&t->cl_out, SL_MIN(age, CC_DELTA_MAX));
	sbuf_add_str(&t->cl_out, "\r\n");
	/* The stored body's own length: a body that came chunked or
	 * close-delimited was stored without one. */
	if (t->hit_chunked)
		sbuf_add_str(&t->cl_out, "Transfer-Encoding: chunked\r\n");
	else if (!ranged && !not_mod && o->status != 204) {
		sbuf_add_str(&t->cl_out, "Content-Length: ");
		sbuf_add_u64(&t->cl_out, blen);
		sbuf_add_str(&t->cl_out, "\r\n");
	}
	if (ranged)
		sbuf_printf(&t->cl_out,
			    "Content-Range: bytes %llu-%llu/%llu\r\nContent-Length: %llu\r\n",
			    (unsigned long long)t->range_first, (unsigned long long)t->range_last,
			    (unsigned long long)blen,
			    (unsigned long long)(t->range_last - t->range_first + 1));
	if (t->collapsed) {
		sbuf_printf(&t->cl_out,
			    "Cache-Status: %s; fwd=uri-miss; fwd-status=%d; collapsed\r\n",
			    t->conf->visible_hostname, o->status);
	} else if (fwd && sie) {
		sbuf_printf(&t->cl_out, "Cache-Status: %s; fwd=%s", t->conf->visible_hostname, fwd);
		if (fwd_status)
			sbuf_printf(&t->cl_out, "; fwd-status=%d", fwd_status);
		sbuf_printf(&t->cl_out, "; ttl=%lld; detail=\"stale-if-error\"\r\n",
			    (long long)(o->meta.lifetime - age));
	} else if (fwd)
		sbuf_printf(&t->cl_out, "Cache-Status: %s; fwd=%s; fwd-status=%d%s\r\n",
			    t->conf->visible_hostname, fwd, fwd_status, stored ? "; stored" : "");
	else {
		sbuf_add_str(&t->cl_out, "Cache-Status: ");
		sbuf_add_str(&t->cl_out, t->conf->visible_hostname);
		sbuf_add_str(&t->cl_out, "; hit; ttl=");
		sbuf_add_i64(&t->cl_out, o->meta.lifetime - age);
		sbuf_add_str(&t->cl_out,
			     t->swr ? "; detail=\"stale-while-revalidate\"\r\n" : "\r\n");
	}
	if (t->conf->via) {
		sbuf_add_str(&t->cl_out, "Via: 1.1 ");
		sbuf_add_str(&t->cl_out, t->conf->visible_hostname);
		sbuf_add_str(&t->cl_out, " (sluice)\r\n");
	}
	if (t->close_after)
		sbuf_add_str(&t->cl_out, "Connection: close\r\n");
	else if (t->version == 10)
		sbuf_add_str(&t->cl_out, "Connection: keep-alive\r\n");
	sbuf_add_str(&t->cl_out, "\r\n");
	t->status = status;
	if (t->collapsed)
		t->tag = "TCP_CF_MISS";
	else if (fwd && sie)
		t->tag = "TCP_REFRESH_FAIL_OLD";
	else if (fwd)
		t->tag = "TCP_REFRESH_UNMODIFIED";
	else if (not_mod)
		t->tag = "TCP_IMS_HIT";
	else
		t->tag = t->swr ? "TCP_STALE_HIT" : t->from_disk ? "TCP_HIT" : "TCP_MEM_HIT";
	const struct h1_header *ct = h1_find(o->hdrs, o->nhdrs, "Content-Type");
	if (ct) {
		size_t n = SL_MIN(ct->value.len, sizeof(t->ctype) - 1);
		memcpy(t->ctype, ct->value.p, n);
		t->ctype[n] = '\0';
	}
	/* The cursor is placed when the first byte is sent (step_hit). */
	t->hit_c = NULL;
	t->hit_off = 0;
	t->hit_pos = ranged ? t->range_first : 0;
	t->hit_left = not_mod || t->is_head || o->status == 204 ? 0
		      : t->hit_chunked				? UINT64_MAX
		      : ranged					? t->range_last - t->range_first + 1
								: blen;
	/* (One that collapse_rejoin found stored counts as the miss it was
	 * when it came: counters only go up.) */
	if (!fwd && !t->collapsed && !t->miss_counted)
		counter_add(&s->w->cnt, CNT_CACHE_HITS, 1);
	go_state(t, TS_HIT);
}

static bool client_conditional(const struct h1_request *req)
{
	return h1_find(req->headers, req->nheaders, "If-None-Match") ||
	       h1_find(req->headers, req->nheaders, "If-Modified-Since") ||
	       h1_find(req->headers, req->nheaders, "Range") ||
	       policy_has_other_conditional(req->headers, req->nheaders);
}

/* Make the request to the origin conditional on the stored response's
 * validators (RFC 9111 §4.3.1). False if it has none (or is not a 200). */
static bool add_validators(struct txn *t, const struct cache_obj *o)
{
	const struct h1_header *et = h1_find(o->hdrs, o->nhdrs, "ETag");
	const struct h1_header *lm = h1_find(o->hdrs, o->nhdrs, "Last-Modified");
	size_t need = (et ? et->value.len + 17 : 0) + (lm ? lm->value.len + 21 : 0);
	if (o->status != 200 || (et == NULL && lm == NULL) || t->up_out.len < 2 ||
	    t->up_out.len + need > t->up_out.max)
		return false; /* (checked first: a half-written head must never go out) */
	t->up_out.len -= 2;   /* before the head's final CRLF */
	t->up_cond_at = t->up_out.len;
	if (et) {
		sbuf_add_str(&t->up_out, "If-None-Match: ");
		sbuf_add_sv(&t->up_out, et->value);
		sbuf_add_str(&t->up_out, "\r\n");
	}
	if (lm) {
		sbuf_add_str(&t->up_out, "If-Modified-Since: ");
		sbuf_add_sv(&t->up_out, lm->value);
		sbuf_add_str(&t->up_out, "\r\n");
	}
	sbuf_add_str(&t->up_out, "\r\n");
	return !sbuf_failed(&t->up_out);
}

/* A Range request answered from a complete stored 200 (RFC 9110 §14):
 * sets t->ranged for one satisfiable range whose If-Range (if any)
 * matches; answers 416 and returns false for an unsatisfiable one; else
 * the whole representation goes out. */
static bool cache_range(struct txn *t, const struct h1_request *req, const struct cache_obj *o)
{
	const struct h1_header *rh = h1_find(req->headers, req->nheaders, "Range");
	if (rh == NULL ||
	    !policy_if_range(req->headers, req->nheaders, o->hdrs, o->nhdrs, wall_s()))
		return true;
	switch (range_parse(rh->value, o->body_len, &t->range_first, &t->range_last)) {
	case RANGE_OK:
		t->ranged = true;
		return true;
	case RANGE_UNSATISFIABLE:
		t->range_last = o->body_len;
		counter_add(&t->s->w->cnt, CNT_CACHE_HITS, 1);
		t->tag = "TCP_MEM_HIT";
		txn_local(t, 416, "range not satisfiable", NULL, false);
		return false;
	default:
		return true;
	}
}

static bool origin_request(const struct txn *t, struct h1_request *rq, struct h1_header *rh,
			   unsigned cap);

/* A fetch this transaction waits on changed: run it on its own thread. */
static void txn_kick(struct cache_waiter *w)
{
	struct txn *t = SL_CONTAINER_OF(w, struct txn, waiter);
	worker_kick(t->s->w, w);
}

void session_waiter_run(struct cache_waiter *w)
{
	struct txn *t = SL_CONTAINER_OF(w, struct txn, waiter);
	SL_CHECK_OBJ(t, TXN_MAGIC);
	session_run(t->s);
}

/* A collapsed request stops waiting and goes to the origin itself. */
static void collapse_release(struct txn *t)
{
	mem_pend_leave(&t->pend, &t->waiter);
	worker_unkick(t->s->w, &t->waiter);
	/* Its own request goes out only now: a purge before now is no
	 * reason not to store the answer. */
	if (txn_store(t))
		t->gen = mem_gen(txn_store(t), t->ckey, t->ckey_len);
	t->tag = "TCP_MISS";
	go_state(t, TS_RESOLVE);
}

static bool cache_decide(struct txn *t, const struct h1_request *req, struct cache_obj *o,
			 bool forwarded);

/* The fetch a collapsed request waited on is another variant of the URL
 * (its Vary): the request is decided afresh, as if just received. Its
 * variant may be stored by now; else it waits on a fetch of its variant,
 * or leads one (mem_pend_join). */
static int collapse_rejoin(struct txn *t, const struct h1_request *rq)
{
	struct mem_store *store = txn_store(t);
	mem_pend_leave(&t->pend, &t->waiter);
	worker_unkick(t->s->w, &t->waiter);
	t->gen = mem_gen(store, t->ckey, t->ckey_len);
	t->from_disk = false;
	struct cache_obj *o = mem_lookup(store, t->ckey, t->ckey_len, rq->headers, rq->nheaders);
	if (!cache_decide(t, rq, o, true)) {
		t->tag = "TCP_MISS";
		go_state(t, TS_RESOLVE);
	}
	return 1;
}

/* COLLAPSED: waiting for another request's fetch of the same URL. */
static int step_collapsed(struct txn *t)
{
	struct cache_obj *o = NULL;
	enum pend_state st = mem_pend_state(t->pend, &o);
	struct h1_header rh[MAX_HEADERS_CEIL];
	struct h1_request rq;

	if (st == PEND_WAIT)
		return 0;
	if (st == PEND_RELEASED || o == NULL || !origin_request(t, &rq, rh, SL_ARRAY_LEN(rh))) {
		cache_obj_put(&o);
		collapse_release(t);
		return 1;
	}
	/* It must be the variant this request selects (its Vary). */
	if (!cache_obj_selected(o, rq.headers, rq.nheaders)) {
		cache_obj_put(&o);
		return collapse_rejoin(t, &rq);
	}
	if (atomic_load(&o->failed)) { /* its fetch failed: ask the origin */
		cache_obj_put(&o);
		collapse_release(t);
		return 1;
	}
	/* Of unknown length and still filling: an HTTP/1.1 client is
	 * streamed it chunked; a 1.0 one (no chunked) gets it once whole. */
	bool growing = st == PEND_FILLING && !atomic_load(&o->ended);
	if (growing && t->version != 11) {
		cache_obj_put(&o);
		return 0;
	}
	if (st != PEND_STREAM && !growing) { /* whole: no more news is needed */
		mem_pend_leave(&t->pend, &t->waiter);
		worker_unkick(t->s->w, &t->waiter);
	}
	t->collapsed = true;
	t->hit_chunked = growing;
	serve_hit(t, o, false, wall_s(), NULL, 0, false, false);
	return 1;
}

/* A read from the disk tier finished (o: a whole object, or NULL): it
 * goes into memory, the hot tier, and the request is decided as if the
 * memory store had had it all along; against the request as forwarded,
 * since the client's head is gone from its buffer by now. */
static void disk_done(struct txn *t, struct cache_obj *o)
{
	struct h1_header rh[MAX_HEADERS_CEIL];
	struct h1_request rq;
	struct mem_store *store = txn_store(t);

	if (!origin_request(t, &rq, rh, SL_ARRAY_LEN(rh))) {
		cache_obj_put(&o);
		go_state(t, TS_RESOLVE);
		return;
	}
	t->from_disk = o != NULL;
	if (o && store && !mem_insert_cold(store, o, t->gen)) {
		/* A response stored while the file was read is newer. */
		struct cache_obj *m =
			mem_lookup(store, t->ckey, t->ckey_len, rq.headers, rq.nheaders);
		if (m) {
			cache_obj_put(&o);
			o = m;
			t->from_disk = false;
		} else {
			log_debug("disk hit not kept in memory (larger than cache_mem, or purged "
				  "since)");
		}
	}
	if (!cache_decide(t, &rq, o, true)) {
		t->tag = "TCP_MISS";
		go_state(t, TS_RESOLVE);
	}
}

static void on_disk_read(void *arg, struct cache_obj *o)
{
	struct txn *t = arg;
	struct session *s = t->s;
	SL_CHECK_OBJ(t, TXN_MAGIC);
	t->dread = NULL;
	disk_done(t, o);
	session_run(s);
}

/* Whether the request's Connection field names fields of its own (other
 * than close and keep-alive): those are not forwarded, so the request as
 * forwarded differs from the client's by more than this proxy's fields. */
static bool names_own_fields(const struct h1_request *req)
{
	for (unsigned i = 0; i < req->nheaders; i++) {
		if (!sv_ieq_cstr(req->headers[i].name, "Connection"))
			continue;
		struct sv rest = req->headers[i].value, el;
		while (sv_next_list_elem(&rest, &el))
			if (!sv_ieq_cstr(el, "close") && !sv_ieq_cstr(el, "keep-alive"))
				return true;
	}
	return false;
}

/* Before a request goes upstream: answer it from cache if the rules allow
 * (true: answered), else note what the response will need. */
static bool cache_try(struct txn *t, const struct h1_request *req, const struct uri *u)
{
	struct mem_store *store = txn_store(t);
	bool get = sv_eq(req->method, SV_LIT("GET"));

	if (t->s->w->cache == NULL || t->is_connect)
		return false;
	if (policy_method_unsafe(req->method)) {
		/* Even with cache off: the store is kept for a reload that
		 * turns it back on, and must not keep what this changes. And
		 * with an Upgrade offer the origin may well not take. */
		t->cache_invalidate = txn_cache_key(t, u);
		return false;
	}
	if (store == NULL || t->upgrade)
		return false;
	if ((!get && !t->is_head) || t->reqb.kind != H1_BODY_NONE || !txn_cache_key(t, u)) {
		t->cache_fwd = "method";
		return false;
	}
	/* Read first: a purge from here on keeps what this request gets, from
	 * the origin or the disk, out of the store (mem_insert_gen). */
	t->gen = mem_gen(store, t->ckey, t->ckey_len);
	/* Variants are selected by the request as the origin gets it, the way
	 * they are stored: a Vary on a field this proxy writes (X-Forwarded-
	 * For, Forwarded, Via) selects by what was written. That request is
	 * parsed only where a Vary asks (a plain hit goes without). */
	bool varied;
	struct cache_obj *o = mem_lookup_unvaried(store, t->ckey, t->ckey_len, &varied);
	struct h1_header rh[MAX_HEADERS_CEIL];
	struct h1_request oreq;
	if (o && names_own_fields(req)) {
		/* The fields it names are not forwarded: look again as the
		 * request is forwarded. */
		cache_obj_put(&o);
		varied = true;
	}
	if (o == NULL) {
		if (!origin_request(t, &oreq, rh, SL_ARRAY_LEN(rh)))
			return false;
		req = &oreq;
		if (varied)
			o = mem_lookup(store, t->ckey, t->ckey_len, req->headers, req->nheaders);
	}
	struct worker *w = t->s->w;
	if (o == NULL && w->disk && w->dmbox) {
		/* The disk tier: its index answers now, the file comes later. */
		t->dread = disk_read(w->disk, w->dmbox, t->ckey, t->ckey_len, req->headers,
				     req->nheaders, on_disk_read, t);
		if (t->dread) {
			go_state(t, TS_DISK);
			return true;
		}
	}
	/* The URL stored, but not the variant asked for: RFC 9211 §2.2 has
	 * a more specific name for that miss. */
	t->vary_miss = o == NULL && (mem_has_key(store, t->ckey, t->ckey_len) ||
				     (w->disk && disk_has_key(w->disk, t->ckey, t->ckey_len)));
	return cache_decide(t, req, o, req == &oreq);
}

/* With what the stores hold for the request (o, a reference, or NULL):
 * answer it from cache (true), or note what its forwarding needs. */
static void refresh_start(struct txn *t, struct cache_obj *o);

static bool cache_decide(struct txn *t, const struct h1_request *req, struct cache_obj *o,
			 bool forwarded)
{
	struct mem_store *store = txn_store(t);
	bool get = sv_eq(req->method, SV_LIT("GET"));
	struct cc rq;
	cc_parse(req->headers, req->nheaders, &rq);
	bool pragma = h1_has_token(req->headers, req->nheaders, "Pragma", "no-cache");
	/* Read before add_validators() may move req's header lines (those of
	 * the request as forwarded, in t->up_out). */
	bool range = h1_find(req->headers, req->nheaders, "Range") != NULL;
	bool other_cond = policy_has_other_conditional(req->headers, req->nheaders);
	bool cond = client_conditional(req);
	bool auth = h1_find(req->headers, req->nheaders, "Authorization") != NULL;
	int64_t now = wall_s();
	t->cache_fwd = t->vary_miss ? "vary-miss" : "uri-miss";
	cache_obj_put(&t->head_of); /* decided afresh (collapse_rejoin) */
	if (o) {
		enum policy_reuse r = policy_reuse(&o->meta, &rq, pragma, now);
		bool usable = r == POLICY_REUSE_FRESH || r == POLICY_REUSE_STALE_OK;
		bool refresh = t->s->budget != NULL;
		if (r == POLICY_REUSE_STALE_REVALIDATE && !refresh && get && !other_cond) {
			/* RFC 5861 §3: answer stale now, refresh behind it. */
			refresh_start(t, o);
			t->swr = true;
			usable = true;
		}
		if (refresh)
			usable = false; /* a refresh is for the origin's answer */
		if (usable && !other_cond) {
			/* Conditionals apply only where the answer would be a
			 * 2xx (RFC 9110 §13.2.1): a stored 404 stays a 404. */
			bool not_mod = o->status >= 200 && o->status < 300 &&
				       policy_not_modified(req->method, req->headers, req->nheaders,
							   o->hdrs, o->nhdrs, now);
			if (!not_mod && get && o->status == 200 && !cache_range(t, req, o)) {
				cache_obj_put(&o);
				return true; /* 416 */
			}
			serve_hit(t, o, not_mod, now, NULL, 0, false, false);
			return true;
		}
		t->cache_fwd = r == POLICY_REUSE_REQ_NO_CACHE || r == POLICY_REUSE_TOO_OLD || usable
				       ? "request"
				       : "stale";
		if (!usable && !(rq.flags & CC_ONLY_IF_CACHED) &&
		    policy_stale_if_error(&o->meta, &rq, now)) {
			t->stale = cache_obj_ref(o); /* if the origin fails (RFC 5861 §4) */
			t->stale_cond = o->status >= 200 && o->status < 300 &&
					policy_not_modified(req->method, req->headers,
							    req->nheaders, o->hdrs, o->nhdrs, now);
		}
		if (!usable && t->is_head && store)
			t->head_of = cache_obj_ref(o); /* its 200 may refresh it */
		if (!usable && !cond && add_validators(t, o))
			t->reval = o; /* a 304 refreshes it (RFC 9111 §4.3) */
		else
			cache_obj_put(&o);
	}
	if (!t->miss_counted)
		counter_add(&t->s->w->cnt, CNT_CACHE_MISSES, 1);
	t->miss_counted = true;
	if (rq.flags & CC_ONLY_IF_CACHED) {
		/* RFC 9111 §5.2.1.7 */
		txn_local(t, 504, "not in cache (only-if-cached)", NULL, false);
		return true;
	}
	/* An answer shaped by Range or a precondition is not the plain
	 * response for the key. */
	if (get && t->conf->cache_max_object > 0 && !range && !other_cond)
		t->cache_store = true;
	/* A HEAD that would miss in reverse mode is fetched as a GET (as
	 * Varnish and nginx do), so that the next HEAD or GET hits; not one
	 * with credentials, whose answer is seldom stored. */
	if (t->is_head && t->be && t->conf->cache_max_object > 0 && !range && !other_cond &&
	    !t->reval && !t->stale && !cond && !(rq.flags & CC_NO_STORE) && !auth) {
		t->cache_store = true;
		t->head_get = true;
		cache_obj_put(&t->head_of); /* its answer is a GET's, not a HEAD's */
	}
	/* Request collapsing: a plain miss joins a fetch in flight for the
	 * key, or leads one others may join. */
	/* Which fetch fits is judged by the request as the origin gets it:
	 * req, when forwarded says so, else parsed here (cache_try's plain
	 * hit passes the client's). */
	struct h1_header rh[MAX_HEADERS_CEIL];
	struct h1_request oreq;
	if (t->cache_store && !t->reval && !t->stale && !cond &&
	    (forwarded || origin_request(t, &oreq, rh, SL_ARRAY_LEN(rh)))) {
		const struct h1_request *fr = forwarded ? req : &oreq;
		bool leader = false;
		t->waiter.kick = txn_kick;
		t->pend = mem_pend_join(store, t->ckey, t->ckey_len, fr->headers, fr->nheaders,
					&t->waiter, &leader);
		t->pend_leader = leader;
		if (t->pend && !leader) {
			if (!t->collapsed_counted)
				counter_add(&t->s->w->cnt, CNT_CACHE_COLLAPSED, 1);
			t->collapsed_counted = true;
			if (t->collapse_t0 == 0)
				t->collapse_t0 = now_ms(t->s);
			t->tag = "TCP_MISS";
			go_state(t, TS_COLLAPSED);
			return true;
		}
	}
	return false;
}

/* PURGE URL: drop every stored response for it (all Vary variants), for
 * clients in cache_purge_allow only; never forwarded. With a disk tier the
 * answer waits until the files are deleted (TS_DISK), so that a 200 holds
 * across a kill -9 that follows it. */
static void txn_purge(struct txn *t, const struct uri *u)
{
	struct mem_store *store = t->s->w->cache; /* even with cache off */

	t->tag = "NONE";
	if (!conf_purge_allowed(t->conf, &t->s->peer.sa)) {
		counter_add(&t->s->w->cnt, CNT_REQUESTS_DENIED, 1);
		t->tag = "TCP_DENIED";
		txn_local(t, 403, "PURGE not allowed from this address (cache_purge_allow)", NULL,
			  false);
		return;
	}
	if (t->s->w->disk)
		t->unlink_fail0 = disk_unlink_failures(t->s->w->disk);
	t->purged = store && txn_cache_key(t, u) ? cache_purge(t, t->ckey, t->ckey_len, true) : 0;
	if (t->dread) {
		t->purging = true;
		go_state(t, TS_DISK);
		return;
	}
	purge_answer(t);
}

/* ---- reverse mode ---- */

/* Where the connection goes: the backend server, or the URL's origin. */
static const char *dial_host(const struct txn *t)
{
	return t->srv ? t->srv->host : t->host;
}

static uint16_t dial_port(const struct txn *t)
{
	return t->srv ? t->srv->port : t->port;
}

/* Who the request went to, as an error page names it: the origin, or in
 * reverse mode the backend (its servers' addresses are for the error log,
 * which names the one that failed, not for whoever can reach the
 * listener). buf: room for either. */
static const char *origin_name(const struct txn *t, char *buf, size_t len)
{
	if (t->be)
		snprintf(buf, len, "backend %s", t->be->name);
	else
		snprintf(buf, len, "%s", t->key);
	return buf;
}

/* Take the next server of the backend; false when every one was tried. */
static bool pick_server(struct txn *t)
{
	int i = backend_pick(t->be, t->tried, t->url_hash, now_ms(t->s));
	if (i < 0)
		return false;
	srv_idle(t);
	t->srv = &t->be->servers[i];
	t->srv_named = false;
	t->tried |= 1ull << i;
	atomic_fetch_add_explicit(&t->srv->active, 1, memory_order_relaxed);
	t->srv_busy = true;
	upstream_key(t->srv->host, t->srv->port, t->key, sizeof(t->key));
	return true;
}

/* The server failed (refused, reset, timed out, did not resolve): mark
 * it down and, if the request can go again, move it to the next server.
 * It can when nothing of it reached the failed one (still connecting) or
 * when it is idempotent, has no body and no response byte came. */
static bool next_server(struct txn *t, const char *why)
{
	if (t->srv == NULL)
		return false;
	backend_failed(t->srv, now_ms(t->s), t->conf->backend_fail_timeout_ms);
	log_warn("backend %s: server %s failed (%s); skipped for %ums", t->be->name, t->srv->text,
		 why, t->conf->backend_fail_timeout_ms);
	t->srv_named = true;
	bool unsent = t->state == TS_RESOLVE || t->state == TS_CONNECT;
	bool again = t->idempotent && t->reqb.kind == H1_BODY_NONE && !t->resp_started;
	if (t->head_sent || !(unsent || again) || !pick_server(t))
		return false;
	counter_add(&t->s->w->cnt, CNT_UPSTREAM_RETRIES, 1);
	dns_cancel(&t->dq);
	upstream_connect_cancel(&t->conn);
	upstream_close(&t->up, true);
	iobuf_put(&t->uin);
	t->up_off = 0;
	t->reused = t->retried = false;
	t->req_abandoned = false;
	t->close_after = false;
	t->have_upaddr = false;
	go_state(t, TS_RESOLVE);
	return true;
}

/* The authority the request names: its Host field for an origin-form
 * target, else the target's own (which then overrides Host, RFC 9112
 * §3.2.2). Both were validated already. */
static struct sv url_authority(const struct h1_request *req)
{
	struct sv a = req->target;
	if (a.len > 0 && a.p[0] == '/') {
		const struct h1_header *h = h1_find(req->headers, req->nheaders, "Host");
		return h ? h->value : SV_NULL;
	}
	const char *p = memchr(a.p, ':', a.len);
	size_t start = (size_t)(p - a.p) + 3, end = start; /* past "://" */
	while (end < a.len && a.p[end] != '/' && a.p[end] != '?')
		end++;
	return sv_make(a.p + start, end - start);
}

/* Route an origin-form request (or, with forward off, an absolute-form
 * one) to a backend. u holds the URL: its host and port from the target
 * or the Host field, its path. Answers the client itself and returns
 * false when no route serves it. */
static bool reverse_route(struct txn *t, const struct uri *u)
{
	int status = 0;
	/* Routed by the path a server behind would read (uri_route_path),
	 * forwarded as it came. */
	char small[512]; /* most paths: no allocation on this path */
	char *rp = u->path.len <= sizeof(small) ? small : sl_malloc(u->path.len);
	long rl = uri_route_path(u->path, rp, u->path.len);
	if (rl < 0) {
		if (rp != small)
			free(rp);
		counter_add(&t->s->w->cnt, CNT_REQUESTS_BAD, 1);
		txn_local(t, 400, "dot segment (\".\" or \"..\") in the path", NULL, true);
		return false;
	}
	struct sv path = rl > 0 ? sv_make(rp, (size_t)rl) : SV_LIT("/");
	struct sv host = u->host; /* "www.example." is "www.example" (its root) */
	if (host.len > 1 && host.p[host.len - 1] == '.')
		host.len--;
	char v6[INET6_ADDRSTRLEN]; /* "0:0::1" is "::1", as routes hold it */
	if (u->host_is_ipv6 && uri_ipv6_canonical(u->host, v6, sizeof(v6)))
		host = sv_from_cstr(v6);
	const struct conf_route *r = backend_route(t->conf, host, u->port, path, &status);
	if (r == NULL) {
		if (rp != small)
			free(rp);
		counter_add(&t->s->w->cnt, CNT_REQUESTS_DENIED, 1);
		txn_local(t, status,
			  status == 421 ? "this server does not serve that host"
					: "no route for this path",
			  NULL, false);
		return false;
	}
	t->be = &t->conf->backends[r->backend];
	char lh[HOST_NAME_MAX_LEN + 1]; /* the host as routed, its case no part of it */
	size_t hl = SL_MIN(host.len, sizeof(lh));
	for (size_t i = 0; i < hl; i++)
		lh[i] = (char)tolower((unsigned char)host.p[i]);
	t->url_hash = cache_key_hash(lh, hl) ^ (cache_key_hash(path.p, path.len) * 31);
	if (rp != small)
		free(rp);
	/* The server is picked when the request goes to one (step_resolve):
	 * a hit, a PURGE or a request collapsed on another's fetch moves no
	 * round robin and is no connection in flight for leastconn. */
	return true;
}

static void txn_begin(struct session *s, const struct h1_request *req)
{
	struct txn *t = sl_calloc(1, sizeof(*t));
	struct worker *w = s->w;
	const struct h1_header *h;
	struct h1_error herr;
	struct uri u;
	size_t dummy;
	char addr[NET_ADDRSTRLEN];
	struct head_opts ho = {.max_forwards = -1};

	t->magic = TXN_MAGIC;
	t->s = s;
	t->conf = conf_ref(w->conf);
	t->t0_us = clock_mono_us();
	t->t0_wall_us = clock_wall_us();
	t->state = TS_RESOLVE;
	s->txn = t;
	sbuf_init(&t->strs, OUT_HEAD_MAX);
	sbuf_init(&t->up_out, OUT_HEAD_MAX);
	sbuf_init(&t->cl_out, OUT_HEAD_MAX);
	counter_add(&w->cnt, CNT_REQUESTS, 1);

	copy_str(t, req->method, &dummy, &t->method_len);
	copy_str(t, req->target, &t->url_off, &t->url_len);
	t->tgt_off = t->url_off;
	t->tgt_len = t->url_len;
	if ((h = h1_find(req->headers, req->nheaders, "User-Agent")) != NULL)
		copy_str(t, h->value, &t->ua_off, &t->ua_len);
	if ((h = h1_find(req->headers, req->nheaders, "Referer")) != NULL)
		copy_str(t, h->value, &t->ref_off, &t->ref_len);
	t->version = req->version;
	t->is_connect = sv_eq(req->method, SV_LIT("CONNECT"));
	t->is_head = sv_eq(req->method, SV_LIT("HEAD"));
	t->idempotent = h1_method_idempotent(req->method);
	t->expect_continue = h1_has_token(req->headers, req->nheaders, "Expect", "100-continue");
	if (req->version == 11)
		t->client_keepalive =
			!h1_has_token(req->headers, req->nheaders, "Connection", "close");
	else
		t->client_keepalive =
			h1_has_token(req->headers, req->nheaders, "Connection", "keep-alive");
	if (s->outsider)
		t->client_keepalive = false; /* one answer, then closed (session_accept) */

	/* Framing first: a message we cannot delimit poisons the connection. */
	if (h1_request_body(req, &t->reqb, &herr) < 0) {
		counter_add(&w->cnt, CNT_REQUESTS_BAD, 1);
		txn_local(t, herr.status, herr.reason, NULL, true);
		return;
	}
	/* "Content-Length: 0" (which some clients send with a GET) is no
	 * body: such a request is cached, collapsed and retried as any. */
	if (t->reqb.kind == H1_BODY_LENGTH && t->reqb.length == 0)
		t->reqb.kind = H1_BODY_NONE;
	t->req_left = t->reqb.length;
	t->req_framed = t->reqb.kind == H1_BODY_NONE;
	chunked_init(&t->req_ck);

	if (head_via_has(req->headers, req->nheaders, t->conf->visible_hostname)) {
		txn_local(t, 508, "request loops back to this proxy", PS_LOOP, false);
		return;
	}

	/* Routed requests (reverse mode) are for whoever can reach the
	 * listener, as an origin's are; forward proxying is for the allowed
	 * clients only. */
	bool routed = false;
	if (t->is_connect) {
		if (!t->conf->forward) {
			txn_local(t, 403, "forward proxying is off here", NULL, false);
			return;
		}
		if (uri_parse_authority(req->target, &u) < 0) {
			txn_local(t, 400, "invalid CONNECT target", NULL, true);
			return;
		}
		if (!conf_connect_port_allowed(t->conf, u.port)) {
			char d[64];
			snprintf(d, sizeof(d), "CONNECT to port %u not allowed", u.port);
			counter_add(&w->cnt, CNT_REQUESTS_DENIED, 1);
			t->tag = "TCP_DENIED";
			txn_local(t, 403, d, NULL, false);
			return;
		}
	} else if (req->target.len > 0 && (req->target.p[0] == '/' || req->target.p[0] == '*')) {
		if (sv_eq(req->method, SV_LIT("OPTIONS")) && sv_eq(req->target, SV_LIT("*"))) {
			/* OPTIONS * asks about this server itself (RFC 9110 §9.3.7);
			 * an HTTP/1.1 request still needs its one Host (RFC 9112 §3.2). */
			h = h1_find(req->headers, req->nheaders, "Host");
			if (req->version == 11 &&
			    (h == NULL ||
			     h1_find(h + 1, req->nheaders - (unsigned)(h + 1 - req->headers),
				     "Host") != NULL)) {
				txn_local(t, 400, "a request needs exactly one Host header", NULL,
					  true);
				return;
			}
			txn_local(t, 200, "this is sluice, an HTTP proxy", NULL, false);
			return;
		}
		if (t->conf->nroutes == 0) {
			txn_local(t, 400, "not a proxy request (origin-form target)", NULL, true);
			return;
		}
		h = h1_find(req->headers, req->nheaders, "Host");
		if (h == NULL || h1_find(h + 1, req->nheaders - (unsigned)(h + 1 - req->headers),
					 "Host") != NULL) {
			txn_local(t, 400, "a request needs exactly one Host header", NULL, true);
			return;
		}
		if (uri_parse_origin(req->target, h->value, &u) < 0) {
			txn_local(t, 400, "invalid Host header or request target", NULL, true);
			return;
		}
		routed = true;
		/* The access log names the whole URL, as for a proxy request. */
		t->url_off = t->strs.len;
		sbuf_add_str(&t->strs, "http://");
		sbuf_add_sv(&t->strs, h->value);
		sbuf_add_sv(&t->strs, req->target);
		t->url_len = t->strs.len - t->url_off;
	} else {
		int rc = uri_parse_absolute(req->target, &u);
		if (rc == -2) {
			txn_local(t, 501, "URL scheme not supported", NULL, false);
			return;
		}
		if (rc < 0) {
			txn_local(t, 400, "invalid URL", NULL, true);
			return;
		}
		routed = !t->conf->forward;
	}
	if (!routed && !conf_client_allowed(t->conf, &s->peer.sa)) {
		net_addr_str(&s->peer.sa, addr, sizeof(addr), false);
		counter_add(&w->cnt, CNT_REQUESTS_DENIED, 1);
		t->tag = "TCP_DENIED";
		txn_local(t, 403, "client address not allowed", NULL, true);
		unsigned held;
		if (log_enabled(LOG_INFO) && log_gate_pass(&w->denied_gate, now_ms(s), &held)) {
			if (held)
				log_info("denied client %s (and %u more denied requests since the "
					 "last such line)",
					 addr, held);
			else
				log_info("denied client %s", addr);
		}
		return;
	}
	if (u.host.len > HOST_NAME_MAX_LEN) {
		txn_local(t, 400, "host name too long", NULL, true);
		return;
	}
	memcpy(t->host, u.host.p, u.host.len);
	t->host[u.host.len] = '\0';
	t->port = u.port;
	upstream_key(t->host, t->port, t->key, sizeof(t->key));
	if (routed && !reverse_route(t, &u))
		return;
	if (sv_eq(req->method, SV_LIT("PURGE"))) {
		txn_purge(t, &u);
		return;
	}

	/* Max-Forwards (RFC 9110 §7.6.2) applies to OPTIONS and TRACE. */
	h = h1_find(req->headers, req->nheaders, "Max-Forwards");
	if (h && (sv_eq(req->method, SV_LIT("OPTIONS")) || sv_eq(req->method, SV_LIT("TRACE")))) {
		uint64_t mf;
		if (sv_to_u64(h->value, 1u << 30, &mf) < 0) {
			txn_local(t, 400, "invalid Max-Forwards", NULL, true);
			return;
		}
		if (mf == 0 && sv_eq(req->method, SV_LIT("TRACE"))) {
			txn_trace_reply(t, req);
			return;
		}
		if (mf == 0) {
			txn_local(t, 200, "Max-Forwards reached zero at this proxy", NULL, false);
			return;
		}
		ho.max_forwards = (int)(mf - 1);
	}

	if (!t->is_connect) {
		t->upgrade = req->version == 11 &&
			     h1_has_token(req->headers, req->nheaders, "Connection", "upgrade") &&
			     h1_find(req->headers, req->nheaders, "Upgrade") != NULL;
		ho.via_name = t->conf->via ? t->conf->visible_hostname : NULL;
		ho.upgrade = t->upgrade;
		if (t->conf->forwarded_for || t->be) {
			net_addr_str(&s->peer.sa, addr, sizeof(addr), false);
			ho.xff = addr;
		}
		if (t->be) {
			ho.reverse = true;
			ho.host = url_authority(req);
		}
		ho.own_fields = &t->up_own;
		head_build_request(&t->up_out, req, &u, &ho);
		if (sbuf_failed(&t->up_out)) {
			txn_local(t, 431, "request head too large to forward", NULL, true);
			return;
		}
	}
	if (sbuf_failed(&t->strs)) {
		txn_local(t, 431, "request head too large", NULL, true);
		return;
	}
	if (cache_try(t, req, &u))
		return;
	t->tag = t->is_connect ? "TCP_TUNNEL" : "TCP_MISS";
	go_state(t, TS_RESOLVE);
}

/* ---- resolve and connect ---- */

static void on_connected(void *arg, struct upstream *up, int err);
static void upstream_event(void *owner, uint32_t revents);

static void dns_failed(struct txn *t, const struct dns_result *res)
{
	char detail[HOST_NAME_MAX_LEN + 64];
	if (next_server(t, "no address"))
		return;
	char who[HOST_NAME_MAX_LEN + 16];
	snprintf(detail, sizeof(detail), "DNS lookup failed for %s (%s)",
		 t->be ? origin_name(t, who, sizeof(who)) : dial_host(t),
		 dns_error_str(res->error));
	bool late = res->error == DNS_TIMEOUT;
	txn_local(t, late ? 504 : 502, detail, late ? PS_DNS_TIMEOUT : PS_DNS, false);
}

static void resolved(struct txn *t, const struct dns_result *res)
{
	t->dres = *res;
	if (res->error != DNS_OK || res->n == 0)
		dns_failed(t, res);
	else
		go_state(t, TS_CONNECT);
}

static void on_resolved(void *arg, const struct dns_result *res)
{
	struct txn *t = arg;
	struct session *s = t->s;
	SL_CHECK_OBJ(t, TXN_MAGIC);
	t->dq = NULL;
	resolved(t, res); /* may end t */
	session_run(s);
}

/* The request as forwarded says GET, not HEAD (t->head_get). */
static void head_to_get(struct txn *t)
{
	static const char head[] = "HEAD ";
	if (!t->head_get || t->up_out.len < sizeof(head) - 1 ||
	    memcmp(t->up_out.p, head, sizeof(head) - 1) != 0)
		return;
	memcpy(t->up_out.p, "GET", 3);
	memmove(t->up_out.p + 3, t->up_out.p + 4, t->up_out.len - 4);
	t->up_out.len--;
	if (t->up_own > 0)
		t->up_own--;
}

/* RESOLVE: start the lookup; an answer known at once moves on directly. */
static int step_resolve(struct txn *t)
{
	struct dns_result res;
	head_to_get(t); /* before anything of it goes out */
	if (t->dq != NULL)
		return 0;
	/* Nothing is tried yet, so there is a server: a backend has one. */
	if (t->be && t->srv == NULL && !pick_server(t)) {
		txn_local(t, 503, "backend has no servers", NULL, false);
		return 1;
	}
	if (dns_lookup(t->s->w->dns, dial_host(t), &res, on_resolved, t, &t->dq) == 1)
		return 0;
	resolved(t, &res);
	return 1;
}

static void start_tunnel(struct txn *t, struct iobuf **to_client, struct iobuf **to_upstream)
{
	struct session *s = t->s;
	t->relay = relay_new(s->fd, t->up->fd, to_upstream, to_client);
	iobuf_put(to_client);
	iobuf_put(to_upstream);
	if (t->relay == NULL) {
		txn_abort(t, "cannot make a pipe for the tunnel");
		return;
	}
	counter_add(&s->w->cnt, CNT_TUNNELS, 1);
	go_state(t, TS_TUNNEL);
}

static void got_upstream(struct txn *t, struct upstream *up)
{
	struct session *s = t->s;

	t->up = up;
	t->upaddr = up->addr;
	t->have_upaddr = true;
	upstream_attach(up, upstream_event, t);
	/* Nothing is due from the origin before it has the request; its
	 * answer comes with a readiness event. */
	t->up_rd = false;
	t->up_wr = true;
	t->up_rdhup = false;
	up->nreq++;
	if (t->is_connect) {
		struct iobuf *b = iobuf_get(IOBUF_SIZE);
		static const char ok[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
		memcpy(iobuf_tail(b), ok, sizeof(ok) - 1);
		iobuf_commit(b, sizeof(ok) - 1);
		t->status = 200;
		start_tunnel(t, &b, &s->in);
		return;
	}
	t->up_off = 0;
	t->rhead_t0 = 0;
	go_state(t, TS_EXCHANGE);
}

static void on_connected(void *arg, struct upstream *up, int err)
{
	struct txn *t = arg;
	/* got_upstream() may end the transaction (no pipe for a tunnel): the
	 * session outlives it until the end of the batch, t does not. */
	struct session *s = t->s;

	SL_CHECK_OBJ(t, TXN_MAGIC);
	t->conn = NULL;
	if (up == NULL) {
		char detail[HOST_NAME_MAX_LEN + 96], who[HOST_NAME_MAX_LEN + 16];
		if (t->be)
			snprintf(detail, sizeof(detail), "cannot connect to %s: %s",
				 origin_name(t, who, sizeof(who)), strerror(-err));
		else
			snprintf(detail, sizeof(detail), "cannot connect to %s port %u: %s",
				 dial_host(t), dial_port(t), strerror(-err));
		if (!next_server(t, strerror(-err)))
			txn_local(t, 502, detail,
				  err == -ECONNREFUSED ? PS_REFUSED : PS_UNAVAILABLE, false);
	} else {
		got_upstream(t, up);
	}
	session_run(s);
}

/* CONNECT: take a pooled connection, or start a new one. */
static int step_connect(struct txn *t)
{
	struct session *s = t->s;

	if (t->conn != NULL)
		return 0;
	if (!t->is_connect && !t->retried) {
		/* What try_retry() can send again skips the liveness probe:
		 * a connection that turns out dead costs a retry, not a 502. */
		bool retryable = t->idempotent && t->reqb.kind == H1_BODY_NONE;
		struct upstream *up = upstream_pool_get(s->w, t->key, !retryable);
		if (up != NULL) {
			counter_add(&s->w->cnt, CNT_UPSTREAM_REUSED, 1);
			t->reused = true;
			got_upstream(t, up);
			return 1;
		}
	}
	t->reused = false;
	t->conn = upstream_connect(s->w, &t->dres, dial_port(t), t->key, on_connected, t);
	return 0;
}

/* TUNNEL: move bytes with the readiness the relay has noted. */
static int step_tunnel(struct txn *t)
{
	int err = 0;
	uint64_t up0, up_bytes, down_bytes;

	relay_bytes(t->relay, &up0, &down_bytes);
	int rc = relay_event(t->relay, -1, 0, &err);
	relay_bytes(t->relay, &up_bytes, &down_bytes);
	if (up_bytes != up0 || down_bytes != t->bytes_out)
		t->s->moved = true;
	t->bytes_out = down_bytes;
	if (rc == RELAY_AGAIN)
		return 0;
	if (rc == RELAY_ERROR)
		log_debug("tunnel %s ended: %s", t->key, strerror(-err));
	session_close(t->s, rc == RELAY_ERROR);
	return 1;
}

/* ---- request body, client -> upstream ---- */

/* Identify body bytes at the front of s->in (beyond cin_ready). */
static int frame_request(struct txn *t)
{
	struct session *s = t->s;
	size_t avail = s->in ? iobuf_len(s->in) - t->cin_ready : 0;

	if (t->req_framed || avail == 0)
		return 0;
	t->body_begun = true;
	if (t->reqb.kind == H1_BODY_LENGTH) {
		size_t n = (size_t)SL_MIN((uint64_t)avail, t->req_left);
		t->cin_ready += n;
		t->req_left -= n;
		if (t->req_left == 0)
			t->req_framed = true;
		return 0;
	}
	while (avail > 0 && !t->req_ck.done) {
		struct chunk_span span;
		long n = chunked_feed(&t->req_ck, iobuf_head(s->in) + t->cin_ready, avail, &span);
		if (n == CHUNKED_ERROR)
			return -1;
		t->cin_ready += (size_t)n;
		avail -= (size_t)n;
	}
	if (t->req_ck.done)
		t->req_framed = true;
	return 0;
}

/* Read from the client into s->in. 1: got bytes, 0: would block or no room,
 * -1: EOF, -2: error. */
static int read_client(struct session *s)
{
	if (!s->rd || s->rd_eof)
		return 0;
	if (s->in == NULL)
		s->in = iobuf_get(IOBUF_SIZE);
	if (iobuf_room(s->in) == 0)
		iobuf_compact(s->in);
	if (iobuf_room(s->in) == 0)
		return 0;
	for (;;) {
		size_t room = iobuf_room(s->in);
		ssize_t n = recv(s->fd, iobuf_tail(s->in), room, 0);
		if (n > 0) {
			/* A short read emptied the socket: what comes later raises
			 * a new edge. Not so for a FIN already queued. */
			if ((size_t)n < room && !s->rdhup)
				s->rd = false;
			iobuf_commit(s->in, (size_t)n);
			counter_add(&s->w->cnt, CNT_BYTES_FROM_CLIENTS, n);
			return 1;
		}
		if (n == 0) {
			s->rd_eof = true;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			s->rd = false;
			return 0;
		}
		return -2;
	}
}

/* Move request bytes to the upstream. Returns 1 on progress, 0 if blocked,
 * -1 if the transaction ended. */
static int pump_request(struct txn *t)
{
	struct session *s = t->s;
	int moved = 0;

	if (t->up_off < t->up_out.len) {
		size_t off0 = t->up_off;
		int rc = flush_sbuf(t->up->fd, &t->up_out, &t->up_off, &t->up_wr, NULL);
		if (rc < 0)
			return rc; /* reported by the caller as an upstream failure */
		if (t->up_off != off0)
			s->moved = true;
		if (rc == 0)
			return 0;
		moved = 1;
	}
	for (;;) {
		if (t->cin_ready > 0) {
			if (!t->up_wr)
				return moved;
			ssize_t n = send(t->up->fd, iobuf_head(s->in), t->cin_ready, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN) {
					t->up_wr = false;
					return moved;
				}
				return -errno;
			}
			iobuf_consume(s->in, (size_t)n);
			t->cin_ready -= (size_t)n;
			moved = 1;
			continue;
		}
		if (t->req_framed)
			return moved;
		if (frame_request(t) < 0) {
			if (t->head_sent) {
				txn_abort(t, "bad chunked request body");
				return -1000;
			}
			txn_local(t, 400, t->req_ck.error ? t->req_ck.error : "bad chunked body",
				  NULL, true);
			return -1000;
		}
		if (t->cin_ready > 0)
			continue;
		if (t->req_framed)
			return moved;
		int rc = read_client(s);
		if (rc == 1)
			continue;
		if (rc < 0) {
			/* The client went away mid-body: nothing to answer. */
			txn_abort(t, "client closed during the request body");
			return -1000;
		}
		return moved;
	}
}

/* ---- response, upstream -> client ---- */

static int read_upstream(struct txn *t)
{
	if (!t->up_rd)
		return 0;
	if (t->uin == NULL)
		t->uin = iobuf_get(IOBUF_SIZE);
	if (iobuf_room(t->uin) == 0)
		iobuf_compact(t->uin);
	if (iobuf_room(t->uin) == 0)
		return 0;
	for (;;) {
		size_t room = iobuf_room(t->uin);
		ssize_t n = recv(t->up->fd, iobuf_tail(t->uin), room, 0);
		if (n > 0) {
			if ((size_t)n < room && !t->up_rdhup)
				t->up_rd = false; /* drained, as in read_client() */
			iobuf_commit(t->uin, (size_t)n);
			t->resp_started = true;
			return 1;
		}
		if (n == 0)
			return -1;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			t->up_rd = false;
			return 0;
		}
		return -errno;
	}
}

/* The origin's FIN ends a close-delimited body: it is whole. */
static void body_closed(struct txn *t)
{
	t->resp_framed = true;
	t->up_reusable = false;
	cache_fill_done(t);
}

/* The fill of a decoupled response was dropped (it outgrew what may be
 * stored): the body bytes from here on are not in the object, so they stay
 * in uin and go to the client from there, de-chunked and in chunks of our
 * own, once it has all the object held (tail_send). What is ready in uin,
 * and the SKIP bytes after it, are in the object already and go. */
static void start_tail(struct txn *t, size_t skip)
{
	iobuf_consume(t->uin, t->uin_ready + skip);
	t->uin_ready = 0;
	t->tail = true;
	t->dechunk = t->respb.kind == H1_BODY_CHUNKED;
}

/* Identify response body bytes beyond uin_ready; de-chunk in place if the
 * client cannot take chunked. */
static int frame_response(struct txn *t)
{
	size_t avail = t->uin ? iobuf_len(t->uin) - t->uin_ready : 0;

	if (t->resp_framed || avail == 0)
		return 0;
	switch (t->respb.kind) {
	case H1_BODY_LENGTH: {
		size_t n = (size_t)SL_MIN((uint64_t)avail, t->resp_left);
		fill_append(t, iobuf_head(t->uin) + t->uin_ready, n);
		t->uin_ready += n;
		t->resp_left -= n;
		if (t->resp_left == 0) {
			t->resp_framed = true;
			cache_fill_done(t);
			/* Bytes past the declared length: the origin is confused,
			 * the connection must not be reused. */
			if (iobuf_len(t->uin) > t->uin_ready) {
				t->up_reusable = false;
				t->uin->end = t->uin->start + (uint32_t)t->uin_ready;
			}
		}
		return 0;
	}
	case H1_BODY_CLOSE:
		fill_append(t, iobuf_head(t->uin) + t->uin_ready, avail);
		if (t->decoupled && !t->tail && t->fill == NULL) {
			/* Dropped: what is ready before is in the object,
			 * these bytes are not (start_tail). */
			start_tail(t, 0);
		}
		t->uin_ready += avail;
		return 0;
	case H1_BODY_CHUNKED:
		while (avail > 0 && !t->resp_ck.done) {
			struct chunk_span span;
			char *p = iobuf_head(t->uin) + t->uin_ready;
			long n = chunked_feed(&t->resp_ck, p, avail, &span);
			if (n == CHUNKED_ERROR)
				return -1;
			if (span.len > 0)
				fill_append(t, span.data, span.len);
			if (t->decoupled && !t->tail && t->fill == NULL) {
				/* Dropped on this span: its data stays, moved
				 * up to what is not parsed yet; the framing
				 * before it, and all that was ready, goes. */
				memmove(p + n - span.len, span.data, span.len);
				start_tail(t, (size_t)n - span.len);
				t->uin_ready = span.len;
				avail -= (size_t)n;
				continue;
			}
			if (!t->dechunk) {
				t->uin_ready += (size_t)n;
			} else {
				/* Keep only the data: move it down to the ready
				 * region and drop the framing bytes around it. */
				if (span.len > 0)
					memmove(p, span.data, span.len);
				memmove(p + span.len, p + n, avail - (size_t)n);
				t->uin->end -= (uint32_t)((size_t)n - span.len);
				t->uin_ready += span.len;
			}
			avail -= (size_t)n;
		}
		if (t->resp_ck.done) {
			t->resp_framed = true;
			cache_fill_done(t);
			if (iobuf_len(t->uin) > t->uin_ready) {
				t->up_reusable = false;
				t->uin->end = t->uin->start + (uint32_t)t->uin_ready;
			}
		}
		return 0;
	case H1_BODY_NONE:
		t->resp_framed = true;
		return 0;
	}
	return 0;
}

/* Cache-Status for a response that came from the origin (RFC 9211). */
static void add_cache_status(struct txn *t)
{
	if (t->cache_fwd == NULL || t->cl_out.len < 2)
		return;
	t->cl_out.len -= 2; /* before the head's final CRLF */
	sbuf_printf(&t->cl_out, "Cache-Status: %s; fwd=%s; fwd-status=%d",
		    t->conf->visible_hostname, t->cache_fwd, t->status);
	if (t->fill)
		sbuf_add_str(&t->cl_out, "; stored");
	else if (t->cache_detail)
		sbuf_printf(&t->cl_out, "; detail=\"%s\"", t->cache_detail);
	sbuf_add_str(&t->cl_out, "\r\n\r\n");
}

/* A non-error answer to an unsafe method invalidates the target and the
 * same-origin Location / Content-Location (RFC 9111 §4.4). */
static void cache_invalidate(struct txn *t, const struct h1_response *resp)
{
	if (!t->cache_invalidate || !policy_status_invalidates(resp->status))
		return;
	(void)cache_purge(t, t->ckey, t->ckey_len, false);
	for (unsigned i = 0; i < resp->nheaders; i++) {
		struct sv n = resp->headers[i].name, path;
		if (!sv_ieq_cstr(n, "Location") && !sv_ieq_cstr(n, "Content-Location"))
			continue;
		if (policy_invalidation_path(resp->headers[i].value, sv_from_cstr(t->host), t->port,
					     &path) < 0)
			continue;
		char key[CACHE_KEY_MAX];
		bool v6 = strchr(t->host, ':') != NULL;
		long kl =
			cache_key_make(sv_from_cstr(t->host), v6, t->port, path, key, sizeof(key));
		if (kl > 0)
			(void)cache_purge(t, key, (size_t)kl, false);
	}
}

/* The request as the origin got it (the head this proxy sent), which is
 * what a stored response is judged against (Vary, Authorization). */
static bool origin_request(const struct txn *t, struct h1_request *rq, struct h1_header *rh,
			   unsigned cap)
{
	struct h1_error herr;
	struct h1_limits lim = {.max_head = OUT_HEAD_MAX,
				.max_line = OUT_HEAD_MAX,
				.max_headers = MAX_HEADERS_CEIL};
	return h1_parse_request(t->up_out.p, t->up_out.len, &lim, rq, rh, cap, &herr) == H1_OK;
}

/* A cache object for this transaction's key holding a response with these
 * fields: the status line and the end-to-end fields (Content-Length always,
 * for it frames the stored body, even when a Connection field names it).
 * NULL if the head does not fit or parse. */
static struct cache_obj *stored_obj(const struct txn *t, int status, const struct h1_header *h,
				    unsigned n, const char *vk, size_t vl, uint64_t body_len,
				    const struct policy_meta *m)
{
	struct cache_obj *o = NULL;
	struct sbuf head;

	sbuf_init(&head, MAX_RESPONSE_HEAD);
	sbuf_printf(&head, "HTTP/1.1 %d %s\r\n", status, h1_status_reason(status));
	for (unsigned i = 0; i < n; i++) {
		if (!sv_ieq_cstr(h[i].name, "Content-Length") && policy_field_hop(h[i].name, h, n))
			continue;
		sbuf_add_sv(&head, h[i].name);
		sbuf_add_str(&head, ": ");
		sbuf_add_sv(&head, h[i].value);
		sbuf_add_str(&head, "\r\n");
	}
	sbuf_add_str(&head, "\r\n");
	if (!sbuf_failed(&head))
		o = cache_obj_new(t->ckey, t->ckey_len, vk, vl, head.p, head.len, body_len, m);
	sbuf_free(&head);
	if (o != NULL && t->conf->sendfile)
		cache_obj_want_fd(o);
	return o;
}

/* The origin's answer was a head alone (a 304, a 200 to a HEAD), now
 * used: its connection goes back to the pool if nothing else is on it and
 * the request went out whole, else it is closed. */
static void upstream_done_bodiless(struct txn *t, const struct h1_response *resp)
{
	iobuf_consume(t->uin, resp->head_len);
	bool clean = iobuf_len(t->uin) == 0;
	iobuf_put(&t->uin);
	if (clean && t->up_reusable && t->req_framed && t->up_off == t->up_out.len &&
	    upstream_clean(t))
		upstream_pool_put(&t->up);
	else
		upstream_close(&t->up, false);
}

/* The origin says the stored response is still good (a 304 to our
 * conditional request, or a 200 to a HEAD that matches it, §4.3.5): store
 * it again with the answer's fields merged in (RFC 9111 §3.2, §4.3.4),
 * with new freshness, and answer from it. The answer has no body. */
static void cache_refresh(struct txn *t, const struct h1_response *resp, int fwd_status)
{
	struct mem_store *store = txn_store(t);
	struct cache_obj *o = t->reval, *n = NULL;
	struct h1_header merged[MAX_HEADERS_CEIL];
	int64_t now = wall_s();

	struct h1_header kept[MAX_HEADERS_CEIL], rh[MAX_HEADERS_CEIL];
	struct h1_request rq;
	char vk[CACHE_VARY_KEY_MAX];
	unsigned nk = 0;
	long vl = -1;

	t->reval = NULL;
	/* The stored Age was the old copy's; the 304's, if any, is the new. */
	for (unsigned i = 0; i < o->nhdrs; i++)
		if (!sv_ieq_cstr(o->hdrs[i].name, "Age"))
			kept[nk++] = o->hdrs[i];
	int nm = policy_merge_304(kept, nk, resp->headers, resp->nheaders, merged,
				  SL_ARRAY_LEN(merged));
	/* The refreshed copy must be storable on its own terms (the 304 may
	 * bring Set-Cookie, private, no-store), and is filed under the Vary
	 * it now carries. */
	bool storable = nm >= 0 && store && origin_request(t, &rq, rh, SL_ARRAY_LEN(rh)) &&
			policy_storable(SV_LIT("GET"), rq.headers, rq.nheaders, o->status, merged,
					(unsigned)nm) == POLICY_STORE_OK;
	if (storable)
		vl = policy_vary_key(merged, (unsigned)nm, rq.headers, rq.nheaders, vk, sizeof(vk));
	if (!storable || vl < 0) {
		/* Not to be kept: what was stored goes too. This client still
		 * gets the refreshed copy (with, say, its own Set-Cookie). */
		if (store)
			(void)cache_purge(t, o->key, o->key_len, false);
		storable = false;
		vl = 0;
	}
	if (nm >= 0) {
		struct policy_meta m;
		policy_meta(o->status, merged, (unsigned)nm, (int64_t)(t->t0_wall_us / 1000000),
			    now, &m);
		/* (No body hint: the body is o's, shared, not copied.) */
		n = stored_obj(t, o->status, merged, (unsigned)nm, vk, (size_t)vl, 0, &m);
		if (n) {
			cache_obj_share_body(n, o);
			cache_obj_done(n);
		}
	}
	/* Not if the key was invalidated while the request was out: the body
	 * the 304 vouched for may be older than what made way (cache_insert). */
	if (n && storable)
		storable = cache_insert(t, n);
	/* A 304, or a 200 to a HEAD, has no body: the origin connection is
	 * free again. */
	upstream_done_bodiless(t, resp);
	srv_idle(t); /* the answer is in; the client reads it from the store */
	/* fwd=stale, or request where the client's directives sent it */
	const char *fwd = t->cache_fwd ? t->cache_fwd : "stale";
	if (n) {
		cache_obj_put(&o);
		serve_hit(t, n, false, now, fwd, fwd_status, storable, false);
	} else {
		serve_hit(t, o, false, now, fwd, fwd_status, false, false);
	}
}

/* The origin's 304 names another representation than the stored one,
 * which it must then not update (RFC 9111 §4.3.4): the request goes again
 * as it came, without the validators, for a whole answer (which replaces
 * the stored one if it may be stored). Once: t->reval is gone after. */
static void reval_resend(struct txn *t, const struct h1_response *resp)
{
	cache_obj_put(&t->reval);
	upstream_done_bodiless(t, resp);
	t->up_out.len = t->up_cond_at;
	sbuf_add_str(&t->up_out, "\r\n");
	t->up_off = 0;
	t->status = 0;
	t->resp_started = false;
	t->reused = t->retried = false;
	t->req_abandoned = false;
	t->close_after = !t->client_keepalive || atomic_load(&t->s->w->drain);
	t->have_upaddr = false;
	go_state(t, TS_RESOLVE);
}

/* Decide whether to store the response whose head just arrived, and if so
 * start the object. */
static void cache_start_fill(struct txn *t, const struct h1_response *resp)
{
	struct h1_header rh[MAX_HEADERS_CEIL];
	struct h1_request rq;
	char vk[CACHE_VARY_KEY_MAX];

	if (!t->cache_store || txn_store(t) == NULL)
		return;
	if (mem_gen(txn_store(t), t->ckey, t->ckey_len) != t->gen) {
		t->cache_detail = "invalidated while in flight";
		return;
	}
	bool known = t->respb.kind == H1_BODY_LENGTH;
	if (known && t->respb.length > t->conf->cache_max_object) {
		t->cache_detail = "larger than cache_max_object";
		return;
	}
	if (!origin_request(t, &rq, rh, SL_ARRAY_LEN(rh)))
		return;
	enum policy_store why = policy_storable(rq.method, rq.headers, rq.nheaders, resp->status,
						resp->headers, resp->nheaders);
	if (why != POLICY_STORE_OK) {
		t->cache_detail = policy_store_str(why);
		return;
	}
	struct policy_meta m;
	policy_meta(resp->status, resp->headers, resp->nheaders, (int64_t)(t->t0_wall_us / 1000000),
		    wall_s(), &m);
	if (m.lifetime <= 0 &&
	    (resp->status != 200 || (!h1_find(resp->headers, resp->nheaders, "ETag") &&
				     !h1_find(resp->headers, resp->nheaders, "Last-Modified")))) {
		/* Stale on arrival and no validator to refresh it with. */
		t->cache_detail = "stale on arrival, nothing to validate";
		return;
	}
	long vl = policy_vary_key(resp->headers, resp->nheaders, rq.headers, rq.nheaders, vk,
				  sizeof(vk));
	if (vl < 0) {
		t->cache_detail = vl == -1 ? "Vary: *" : "Vary key too long";
		return;
	}
	/* A body of unknown length (chunked, or ended by close) reserves as
	 * it grows (fill_append). */
	uint64_t want = known ? t->respb.length : SL_MIN(FILL_STEP, t->conf->cache_max_object);
	if (!mem_reserve(txn_store(t), want)) {
		t->cache_detail = "too much being stored at once";
		return;
	}
	t->fill_reserved = want; /* given back in txn_free() if never done */
	t->fill = stored_obj(t, resp->status, resp->headers, resp->nheaders, vk, (size_t)vl,
			     known ? t->respb.length : 0, &m);
	if (t->fill == NULL) {
		t->cache_detail = "response head not storable";
		fill_hand_over(t); /* (no object: straight back) */
	}
}

/* The fill will not be stored: its object keeps the room it reserved, in
 * both budgets, until its last reader (a waiter, the leader's own client)
 * lets go of it. */
static void fill_hand_over(struct txn *t)
{
	struct mem_store *store = t->s->w->cache;
	if (t->fill_reserved == 0 && t->fill_reserved_t == 0)
		return;
	if (t->fill) {
		/* What it holds of the room for fills that will be stored
		 * moves to the transient budget if that has it, so that a
		 * slow reader of an object that is not stored does not keep
		 * others from being stored. */
		if (t->fill_reserved && mem_reserve_transient(store, t->fill_reserved)) {
			mem_release(store, t->fill_reserved);
			t->fill_reserved_t += t->fill_reserved;
			t->fill_reserved = 0;
		}
		cache_obj_hold(t->fill, store, t->fill_reserved, t->fill_reserved_t);
	} else {
		mem_release(store, t->fill_reserved);
		mem_release_transient(store, t->fill_reserved_t);
	}
	t->fill_reserved = t->fill_reserved_t = 0;
}

/* Room for a fill to grow to need bytes: within cache_max_object from the
 * room fills may reserve; past it, or when that room is all taken, while
 * requests collapsed on the fetch wait for it, from the transient budget
 * (it is then not stored, but not cut off under them either). False if
 * there is none: the fill is to be dropped. */
static bool fill_room(struct txn *t, uint64_t need)
{
	struct mem_store *store = txn_store(t);
	uint64_t have = t->fill_reserved + t->fill_reserved_t;
	uint64_t more = SL_MAX(need - have, FILL_STEP);
	bool fits = need <= t->conf->cache_max_object;
	if (fits && !t->fill_transient && mem_reserve(store, more)) {
		t->fill_reserved += more;
		return true;
	}
	if (!t->pend || mem_pend_seal(store, t->pend) || !mem_reserve_transient(store, more))
		return false; /* nobody to finish it for, or no room */
	if (!t->fill_transient)
		log_debug("not storing %.*s (%s); finishing it for the requests that stream it",
			  (int)t->url_len, t->strs.p + t->url_off,
			  fits ? "no room for fills" : "past cache_max_object");
	t->fill_transient = true;
	t->fill_reserved_t += more;
	return true;
}

/* Body bytes for the object being filled. One of unknown length that
 * outgrows cache_max_object is not to be stored; if requests collapsed on
 * it are streaming it, it goes on for them (fill_transient, never stored)
 * rather than cut them off. Past the room either budget allows, or with
 * nobody waiting, it is dropped: the response goes on to the client,
 * unstored, and whoever streamed it is cut off. */
static void fill_append(struct txn *t, const void *p, size_t n)
{
	struct cache_obj *o = t->fill;
	if (o == NULL)
		return;
	uint64_t need = o->body_len + n;
	if (need > t->fill_reserved + t->fill_reserved_t) {
		if (!fill_room(t, need)) {
			log_debug("not storing %.*s: body past what may be stored", (int)t->url_len,
				  t->strs.p + t->url_off);
			cache_obj_fail(o);
			if (t->pend) /* its waiters go to the origin themselves */
				(void)mem_pend_end(txn_store(t), &t->pend);
			fill_hand_over(t);
			cache_obj_put(&t->fill);
			return;
		}
	}
	cache_obj_append(o, p, n);
	if (t->pend)
		mem_pend_progress(t->pend);
}

/* The whole body is in: the object may now be served. */
static void cache_fill_done(struct txn *t)
{
	struct mem_store *store = txn_store(t);
	if (t->fill == NULL)
		return;
	cache_obj_done(t->fill);
	/* In the store before the fetch leaves the table of those in flight,
	 * so that a request finds one or the other (mem_pend_join takes the
	 * Vary from either). Not stored if the URL was invalidated since the
	 * request looked it up (the generation; that covers the whole fetch),
	 * nor if it went on past cache_max_object only for its waiters. */
	if (!t->fill_transient && cache_insert(t, t->fill)) {
		mem_release(store, t->fill_reserved); /* charged to the store now */
		t->fill_reserved = 0;
	}
	fill_hand_over(t); /* not stored: its room goes with its last reader */
	if (t->pend)
		(void)mem_pend_end(store, &t->pend);
	cache_obj_put(&t->fill);
}

/* Parse the response head in uin. 1: head handled, 0: need more, -1: ended. */
static int handle_response_head(struct txn *t)
{
	struct session *s = t->s;
	struct h1_header hdrs[MAX_HEADERS_CEIL];
	struct h1_response resp;
	struct h1_error herr;
	struct h1_limits lim = {.max_head = MAX_RESPONSE_HEAD,
				.max_line = MAX_RESPONSE_HEAD,
				.max_headers = t->conf->max_headers};
	struct head_opts ho = {.max_forwards = -1};
	const struct h1_header *h;
	const char *conn = NULL;
	int rc;

	rc = h1_parse_response(iobuf_head(t->uin), iobuf_len(t->uin), &lim, &resp, hdrs,
			       SL_ARRAY_LEN(hdrs), &herr);
	if (rc == H1_INCOMPLETE) {
		if (t->rhead_t0 == 0)
			t->rhead_t0 = now_ms(s);
		if (iobuf_room(t->uin) == 0 && t->uin->start == 0 && t->uin->cap < IOBUF_LARGE_SIZE)
			t->uin = iobuf_grow(&t->uin, IOBUF_LARGE_SIZE);
		return 0;
	}
	t->rhead_t0 = 0;
	if (rc == H1_ERROR) {
		char d[128];
		snprintf(d, sizeof(d), "invalid response from origin (%s)", herr.reason);
		txn_local(t, 502, d, PS_PROTOCOL, false);
		return -1;
	}
	if (t->srv)
		backend_ok(t->srv);
	if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
		/* Interim response: pass it on to HTTP/1.1 clients (RFC 9110
		 * §15.2), then wait for the final one. */
		if (t->version == 11) {
			sbuf_reset(&t->cl_out);
			head_build_response(&t->cl_out, &resp, &ho, false, NULL);
			t->cl_off = 0;
			rc = flush_sbuf(s->fd, &t->cl_out, &t->cl_off, &s->wr, &t->bytes_out);
			/* An interim response that does not fit the socket at
			 * once is dropped: it is advisory, and blocking the
			 * final response on it would stall the exchange. */
			if (rc < 0) {
				txn_abort(t, "client write failed");
				return -1;
			}
			if (rc == 0 && t->cl_off > 0) {
				txn_abort(t, "client not reading");
				return -1;
			}
			sbuf_reset(&t->cl_out);
			t->cl_off = 0;
		}
		iobuf_consume(t->uin, resp.head_len);
		return 1;
	}
	if (h1_response_body(&resp, t->is_head && !t->head_get ? SV_LIT("HEAD") : SV_LIT("GET"),
			     &t->respb, &herr) < 0) {
		char d[128];
		snprintf(d, sizeof(d), "invalid response from origin (%s)", herr.reason);
		txn_local(t, 502, d, PS_PROTOCOL, false);
		return -1;
	}
	/* A response without Date is dated on receipt, forwarded, stored and
	 * merged into a stored one so (RFC 9110 §6.6.1). */
	char date[HTTP_DATE_LEN + 1];
	if (!h1_find(resp.headers, resp.nheaders, "Date") && resp.nheaders < SL_ARRAY_LEN(hdrs)) {
		http_date_format(wall_s(), date);
		hdrs[resp.nheaders++] = (struct h1_header){SV_LIT("Date"), sv_from_cstr(date)};
	}
	t->status = resp.status;
	if ((h = h1_find(resp.headers, resp.nheaders, "Content-Type")) != NULL) {
		size_t n = SL_MIN(h->value.len, sizeof(t->ctype) - 1);
		memcpy(t->ctype, h->value.p, n);
		t->ctype[n] = '\0';
	}
	t->up_reusable = resp.version == 11 &&
			 !h1_has_token(resp.headers, resp.nheaders, "Connection", "close") &&
			 t->respb.kind != H1_BODY_CLOSE;
	if (resp.version == 10 &&
	    h1_has_token(resp.headers, resp.nheaders, "Connection", "keep-alive") &&
	    t->respb.kind != H1_BODY_CLOSE)
		t->up_reusable = true;

	if (t->reval && resp.status == 304) {
		if (policy_304_matches(t->reval->hdrs, t->reval->nhdrs, resp.headers, resp.nheaders,
				       wall_s()))
			cache_refresh(t, &resp, 304);
		else
			reval_resend(t, &resp);
		return 1;
	}
	/* A 200 to a HEAD says whether the stored GET response is still what
	 * the origin has (RFC 9111 §4.3.5): refreshed as by a 304, or dropped
	 * (as an unsafe method's answer drops it: all variants, both tiers). */
	if (t->head_of && resp.status == 200) {
		struct cache_obj *o = t->head_of;
		t->head_of = NULL;
		if (policy_head_freshens(o->status, o->hdrs, o->nhdrs, o->body_len, resp.headers,
					 resp.nheaders, wall_s())) {
			cache_obj_put(&t->reval);
			t->reval = o;
			cache_refresh(t, &resp, 200);
			return 1;
		}
		(void)cache_purge(t, o->key, o->key_len, false);
		cache_obj_put(&o);
	}
	cache_obj_put(&t->head_of);
	if ((resp.status >= 500 && resp.status <= 504 && resp.status != 501) &&
	    serve_stale(t, resp.status))
		return 1;
	cache_obj_put(&t->stale);
	cache_obj_put(&t->reval); /* a full answer replaces it, if storable */
	cache_invalidate(t, &resp);
	if (!(resp.status == 101 && t->upgrade))
		cache_start_fill(t, &resp);
	if (t->pend && t->fill)
		mem_pend_head(t->pend, t->fill); /* waiters stream it as it comes */
	else if (t->pend)
		(void)mem_pend_end(txn_store(t), &t->pend); /* they go to the origin */
	t->switching = resp.status == 101 && t->upgrade;
	if (resp.status == 101 && !t->upgrade) {
		txn_local(t, 502, "origin switched protocols unasked", PS_PROTOCOL, false);
		return -1;
	}
	ho.via_name = t->conf->via ? t->conf->visible_hostname : NULL;
	ho.upgrade = t->switching;
	t->dechunk = t->respb.kind == H1_BODY_CHUNKED && t->version == 10;
	/* Stored as it comes, the client sent it from the object, like the
	 * requests collapsed on this fetch: a slow or stalled client no
	 * longer holds the fetch, and them, back (step_decoupled). Once the
	 * request is all out; a body of unknown length only to a client that
	 * takes chunked, which is how the object streams to it (or to a HEAD
	 * fetched as a GET, which gets no body). */
	bool unknown_len = t->respb.kind == H1_BODY_CHUNKED || t->respb.kind == H1_BODY_CLOSE;
	bool decouple = t->fill && !t->switching && t->req_framed && t->cin_ready == 0 &&
			!t->req_abandoned && t->up_off == t->up_out.len &&
			((t->respb.kind == H1_BODY_LENGTH && t->respb.length > 0) ||
			 (unknown_len && (t->version == 11 || t->head_get)));
	if (t->switching) {
		conn = "upgrade";
	} else {
		/* A body delimited by close ends the client connection too,
		 * unless it goes out chunked from the object. */
		if (!t->head_get && ((t->respb.kind == H1_BODY_CLOSE && !decouple) || t->dechunk))
			t->close_after = true;
		/* An early answer from an origin that will not read the
		 * rest of the request: the rest has nowhere to go. */
		if ((!t->req_framed || t->cin_ready > 0 || t->req_abandoned) &&
		    (!t->up_reusable || t->req_abandoned))
			t->close_after = true;
		if (!t->client_keepalive || t->close_after || atomic_load(&s->w->drain))
			conn = "close";
		else if (t->version == 10)
			conn = "keep-alive";
	}
	if (t->close_after || !t->client_keepalive)
		t->close_after = true;
	sbuf_reset(&t->cl_out);
	head_build_response(&t->cl_out, &resp, &ho, t->dechunk, conn);
	add_cache_status(t);
	if (decouple && t->respb.kind == H1_BODY_CLOSE && t->version == 11 && t->cl_out.len >= 2) {
		t->cl_out.len -= 2; /* before the head's final CRLF */
		sbuf_add_str(&t->cl_out, "Transfer-Encoding: chunked\r\n\r\n");
	}
	if (sbuf_failed(&t->cl_out)) {
		txn_local(t, 502, "response head too large", PS_PROTOCOL, false);
		return -1;
	}
	t->cl_off = 0;
	t->head_sent = true;
	t->final_at = t->bytes_out;
	iobuf_consume(t->uin, resp.head_len);
	t->resp_left = t->respb.length;
	chunked_init(&t->resp_ck);
	t->resp_framed = t->respb.kind == H1_BODY_NONE ||
			 (t->respb.kind == H1_BODY_LENGTH && t->respb.length == 0);
	if (t->resp_framed)
		cache_fill_done(t);
	if (t->switching)
		t->resp_framed = true;
	if (t->head_get && !decouple && !t->resp_framed) {
		/* Not stored: its client wants the head alone, and nobody
		 * the body, which is left unread. */
		if (t->fill) {
			cache_obj_fail(t->fill);
			if (t->pend)
				(void)mem_pend_end(txn_store(t), &t->pend);
			fill_hand_over(t);
			cache_obj_put(&t->fill);
		}
		t->resp_framed = true;
		t->up_reusable = false;
	}
	go_state(t, TS_BODY);
	if (decouple) {
		t->decoupled = true;
		t->hit = cache_obj_ref(t->fill);
		t->hit_c = NULL;
		t->hit_off = 0;
		t->hit_pos = 0;
		t->hit_chunked = unknown_len && !t->head_get;
		t->hit_left = t->head_get ? 0 : unknown_len ? UINT64_MAX : t->respb.length;
	}
	return 1;
}

/* Upstream ended or failed before any response byte: maybe retry. */
static bool try_retry(struct txn *t)
{
	if (!t->reused || t->retried || t->resp_started || !t->idempotent ||
	    t->reqb.kind != H1_BODY_NONE)
		return false;
	counter_add(&t->s->w->cnt, CNT_UPSTREAM_RETRIES, 1);
	log_debug("retrying %s on a fresh connection", t->key);
	t->retried = true;
	t->req_abandoned = false;
	t->close_after = false;
	upstream_close(&t->up, false);
	iobuf_put(&t->uin);
	t->up_off = 0;
	go_state(t, TS_CONNECT);
	return true;
}

static void upstream_failed(struct txn *t, int err)
{
	char d[HOST_NAME_MAX_LEN + 96];

	if (t->head_sent) {
		txn_abort(t, "upstream failed mid-response");
		return;
	}
	if (try_retry(t))
		return;
	/* On a pooled connection, a close or reset before any answer is most
	 * often the server closing it as idle just as the request went out:
	 * no mark against the server's health (as nginx does); its next
	 * fresh connection tells. Part of an answer says it took the request. */
	if ((!t->reused || t->resp_started) &&
	    next_server(t, err == -1 ? "closed without a response" : strerror(-err)))
		return;
	if (t->srv && t->reused && !t->resp_started) { /* (next_server names the others) */
		t->srv_named = true;
		log_info("backend %s: server %s: a kept connection ended before the answer (%s); "
			 "not held against it",
			 t->be->name, t->srv->text,
			 err == -1 ? "closed without a response" : strerror(-err));
	}
	char who[HOST_NAME_MAX_LEN + 16];
	origin_name(t, who, sizeof(who));
	if (err == -1) {
		snprintf(d, sizeof(d), "%s%s closed the connection without a response",
			 t->be ? "" : "origin ", who);
		txn_local(t, 502, d, PS_INCOMPLETE, false);
	} else {
		snprintf(d, sizeof(d), "%s%s: %s", t->be ? "" : "origin ", who, strerror(-err));
		txn_local(t, 502, d, PS_PROTOCOL, false);
	}
}

/* Whether the rest of the response body goes by splice(): a plain byte
 * stream (not de-chunked), nothing left in the user-space buffer, and enough
 * of it to pay for the pipe. Once started, it stays on. */
static bool want_splice(struct txn *t)
{
	if (t->splicing)
		return true;
	if (t->dechunk || (t->uin && iobuf_len(t->uin) > 0) || t->resp_framed || t->fill)
		return false;
	if (t->respb.kind == H1_BODY_CLOSE ||
	    (t->respb.kind == H1_BODY_LENGTH && t->resp_left >= SPLICE_MIN)) {
		int sz;
		if (pipe2(t->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
			return false; /* the buffer path still works */
		(void)fcntl(t->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
		sz = fcntl(t->pipe[1], F_GETPIPE_SZ);
		t->pipe_cap = sz > 0 ? (size_t)sz : 4096;
		t->splicing = true;
		iobuf_put(&t->uin);
		return true;
	}
	return false;
}

/* Move body bytes upstream -> pipe -> client. The pipe is filled only when
 * empty, so an EAGAIN on filling can only mean the socket is empty.
 * 1: progress, 0: blocked, -1: the transaction was aborted. */
static int splice_body(struct txn *t)
{
	struct session *s = t->s;
	int progress = 0;

	for (;;) {
		if (t->pipe_bytes > 0) {
			if (!s->wr)
				return progress;
			ssize_t n = splice(t->pipe[0], NULL, s->fd, NULL, t->pipe_bytes,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				s->wr = false;
				return progress;
			}
			if (n <= 0) {
				txn_abort(t, "client write failed");
				return -1;
			}
			t->pipe_bytes -= (size_t)n;
			t->bytes_out += (uint64_t)n;
			counter_add(&s->w->cnt, CNT_BYTES_TO_CLIENTS, n);
			progress = 1;
			continue;
		}
		if (t->resp_framed || !t->up_rd)
			return progress;
		size_t want = t->pipe_cap;
		if (t->respb.kind == H1_BODY_LENGTH)
			want = (size_t)SL_MIN((uint64_t)want, t->resp_left);
		ssize_t n = splice(t->up->fd, NULL, t->pipe[1], NULL, want,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			t->up_rd = false;
			return progress;
		}
		if (n == 0 && t->respb.kind == H1_BODY_CLOSE) {
			t->resp_framed = true;
			t->up_reusable = false;
			return 1;
		}
		if (n <= 0) {
			txn_abort(t, n == 0 ? "origin closed mid-body" : "origin failed mid-body");
			return -1;
		}
		t->resp_started = true;
		t->pipe_bytes += (size_t)n;
		if (t->respb.kind == H1_BODY_LENGTH) {
			t->resp_left -= (uint64_t)n;
			if (t->resp_left == 0)
				t->resp_framed = true;
		}
		progress = 1;
	}
}

/* Write the rest of the response head and, in the same call, the body bytes
 * ready behind it. 1: the head is out, 0: would block, -errno: failed. */
static int flush_head(struct txn *t)
{
	struct session *s = t->s;

	if (t->client_gone) {
		drop_client_output(t);
		return 1;
	}
	while (t->cl_off < t->cl_out.len) {
		struct iovec iov[2];
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 1};
		size_t head = t->cl_out.len - t->cl_off;

		iov[0] = (struct iovec){.iov_base = t->cl_out.p + t->cl_off, .iov_len = head};
		if (t->uin_ready > 0) {
			iov[1] = (struct iovec){.iov_base = iobuf_head(t->uin),
						.iov_len = t->uin_ready};
			mh.msg_iovlen = 2;
		}
		/* The whole answer, and the connection closes right after:
		 * MSG_MORE holds it for the close, whose FIN then rides on the
		 * same segment. */
		int more = t->close_after && t->resp_framed && !t->switching ? MSG_MORE : 0;
		ssize_t n = sendmsg(s->fd, &mh, MSG_NOSIGNAL | more);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				s->wr = false;
				return 0;
			}
			return -errno;
		}
		size_t h = SL_MIN((size_t)n, head), b = (size_t)n - h;
		s->moved = true; /* even a partial write is progress for the timer */
		t->cl_off += h;
		t->bytes_out += (uint64_t)n;
		if (b > 0) {
			counter_add(&s->w->cnt, CNT_BYTES_TO_CLIENTS, (int64_t)b);
			iobuf_consume(t->uin, b);
			t->uin_ready -= b;
		}
	}
	return 1;
}

/* What obj_send() did: the answer is all out, the socket is full or the
 * rest is not published yet, the client write failed, or the object ended
 * short of its length (its fetch failed). */
enum obj_send { SEND_BLOCKED, SEND_DONE, SEND_FAILED, SEND_SHORT };
static enum obj_send obj_send(struct txn *t, int *progress);

/* writev() to the client, counted. The bytes written, 0 when the socket is
 * full, -1 when the write failed. */
static ssize_t client_writev(struct txn *t, const struct iovec *iov, int n, int *progress)
{
	struct session *s = t->s;
	ssize_t w;

	do
		w = writev(s->fd, iov, n);
	while (w < 0 && errno == EINTR);
	if (w < 0 && errno == EAGAIN) {
		s->wr = false;
		return 0;
	}
	if (w <= 0)
		return -1;
	*progress = 1;
	s->moved = true;
	t->bytes_out += (uint64_t)w;
	counter_add(&s->w->cnt, CNT_BYTES_TO_CLIENTS, w);
	return w;
}

/* The tail of a decoupled response (start_tail): the body bytes ready in
 * uin, in chunks of our own framing (the object's chunks went before them),
 * then the last chunk once the body is whole. */
static enum obj_send tail_send(struct txn *t, int *progress)
{
	struct session *s = t->s;

	for (;;) {
		if (t->cl_off == t->cl_out.len && t->ck_left == 0) {
			sbuf_reset(&t->cl_out);
			t->cl_off = 0;
			if (t->uin_ready > 0) {
				t->ck_left = t->uin_ready;
				sbuf_printf(&t->cl_out, "%s%zx\r\n", t->ck_any ? "\r\n" : "",
					    t->uin_ready);
				t->ck_any = true;
			} else if (t->resp_framed && t->hit_left != 0) {
				sbuf_add_str(&t->cl_out, t->ck_any ? "\r\n0\r\n\r\n" : "0\r\n\r\n");
				t->hit_left = 0;
			} else if (t->resp_framed) {
				if (t->uin && iobuf_len(t->uin) == 0)
					iobuf_put(&t->uin); /* lets the connection be pooled */
				return SEND_DONE;
			} else {
				return SEND_BLOCKED;
			}
		}
		if (!s->wr)
			return SEND_BLOCKED;
		struct iovec iov[2];
		int n = 0;
		size_t head = t->cl_out.len - t->cl_off;
		size_t data = (size_t)SL_MIN(t->ck_left, (uint64_t)t->uin_ready);
		if (head > 0)
			iov[n++] = (struct iovec){.iov_base = t->cl_out.p + t->cl_off,
						  .iov_len = head};
		if (data > 0)
			iov[n++] = (struct iovec){.iov_base = iobuf_head(t->uin), .iov_len = data};
		ssize_t w = client_writev(t, iov, n, progress);
		if (w <= 0)
			return w == 0 ? SEND_BLOCKED : SEND_FAILED;
		size_t h = SL_MIN((size_t)w, head), b = (size_t)w - h;
		t->cl_off += h;
		if (b > 0) /* (uin is gone by the last chunk) */
			iobuf_consume(t->uin, b);
		t->uin_ready -= b;
		t->ck_left -= b;
	}
}

/* The fetch of a HEAD's GET (head_get) failed after its client had the
 * whole answer (head_done): nothing is stored, the backend connection
 * closes, and the client's connection carries on. False if that is not
 * the case (the transaction is then aborted as usual). */
static bool head_fetch_failed(struct txn *t, const char *why)
{
	if (!t->head_done)
		return false;
	log_info("the GET fetched for a HEAD of %.*s ended short: %s", (int)t->url_len,
		 t->strs.p + t->url_off, why);
	t->up_reusable = false;
	txn_finish(t);
	return true;
}

static struct session *session_aside(struct worker *w, const struct sockaddr *peer, socklen_t len,
				     unsigned *budget);
static void refresh_kick(void *arg);

/* A HEAD's client has its whole answer (head_get): the fetch goes on in a
 * session of its own, as a background refresh does, and the client's
 * connection is free for its next request at once. Only for a body of
 * known length, whose room in the store is reserved: one that may still
 * be dropped for its size would cut off a GET of the same URL that the
 * client sends next and that collapses on it. False if not, or if no
 * session can be had (then the fetch goes on here). */
static bool head_detach(struct txn *t)
{
	struct session *s = t->s;
	struct worker *w = s->w;
	if (w->ndetached >= DETACHED_MAX || t->respb.kind != H1_BODY_LENGTH)
		return false;
	struct session *bg = session_aside(w, &s->peer.sa, sizeof(s->peer), &w->ndetached);
	if (bg == NULL)
		return false;
	bool keep = txn_client_keep(t);
	s->txn = NULL;
	bg->txn = t;
	t->s = bg;
	t->client_gone = true; /* nothing more goes to any client */
	t->close_after = true;
	t->head_done = true; /* a failure ends it quietly (head_fetch_failed) */
	ev_defer(w->loop, refresh_kick, bg);
	session_next(s, keep);
	return true;
}

/* Whether the client, which signalled a FIN or a reset, has left the
 * transaction behind: it waits on something other than its client (a
 * name, a connection, the origin's answer, another request's fetch) with
 * nothing of its answer begun. A FIN alone counts, as in Squid and nginx,
 * unless half_closed_clients is on: a client may shut down only its
 * sending side and still wait for the answer. Not so for CONNECT or an
 * Upgrade, whose FIN belongs to the stream to be relayed, nor for a read
 * from the disk tier or a PURGE's wait for its files, local and short;
 * only a reset ends those early. */
static bool client_abandoned(const struct txn *t)
{
	const struct session *s = t->s;
	bool fin = !t->conf->half_closed_clients && !t->is_connect && !t->upgrade;

	switch (t->state) {
	case TS_RESOLVE:
	case TS_CONNECT:
	case TS_COLLAPSED:
		break;
	case TS_EXCHANGE:
		if (t->head_sent)
			return false;
		break;
	case TS_DISK:
		fin = false;
		break;
	default:
		return false;
	}
	return s->hup || (s->rdhup && fin);
}

/* The client hung up while its request waited (client_abandoned): the
 * request ends now, its log line says so, and what it waited on is let go
 * (the origin's connection is closed, not pooled, as its answer is still
 * due). A fetch other requests wait on goes on without it, in a session of
 * its own, as a HEAD's does. */
static void client_left(struct txn *t)
{
	struct session *s = t->s;
	struct worker *w = s->w;

	if (s->budget != NULL || !client_abandoned(t))
		return;
	log_debug("client left before the answer to %.*s (%s)", (int)t->url_len,
		  t->strs.p + t->url_off, txn_state_str(t->state));
	counter_add(&w->cnt, CNT_CLIENT_LEFT, 1);
	t->aborted = true;
	t->client_left = true;
	txn_log(t); /* now, as the client saw it, not when a fetch ends */
	if (t->pend && t->pend_leader && mem_pend_waited(t->pend) && w->ndetached < DETACHED_MAX) {
		struct session *bg = session_aside(w, &s->peer.sa, sizeof(s->peer), &w->ndetached);
		if (bg) {
			s->txn = NULL;
			bg->txn = t;
			t->s = bg;
			t->client_gone = true; /* nothing goes to any client */
			t->close_after = true;
			counter_add(&w->cnt, CNT_CACHE_DETACHED, 1);
			/* Its deadline moves with it, not restarted. */
			if (ev_timer_armed(&s->timer) && s->timer_txn == t &&
			    s->timer_state == (int)t->state) {
				ev_timer_at(w->loop, &bg->timer, ev_timer_deadline(&s->timer),
					    timer_cb);
				bg->timer_txn = t;
				bg->timer_state = (int)t->state;
			}
			ev_defer(w->loop, refresh_kick, bg);
		}
	}
	session_close(s, true);
}

/* BODY of a decoupled response: what the origin sends goes into the object
 * as fast as it comes (and from there to the requests collapsed on it);
 * the client is sent from the object as fast as it takes it. The
 * connection to the origin goes back to the pool as soon as the body is
 * in, however far behind the client is. Should the fill be dropped (a body
 * of unknown length that outgrows what may be stored), the client is sent
 * what the object held, then the rest as the origin sends it, at the
 * client's pace (the tail). */
static int step_decoupled(struct txn *t, int progress)
{
	for (;;) {
		bool fetched = false, framing = !t->resp_framed;
		int sent = 0;

		if (framing && frame_response(t) < 0) {
			const char *why = t->resp_ck.error ? t->resp_ck.error : "bad chunked body";
			if (t->bytes_out == t->final_at) {
				/* Nothing of it reached the client yet: a 502
				 * says why (or a stale copy answers), and the
				 * waiters' streams are cut as the fill ends. */
				char d[160];
				snprintf(d, sizeof(d), "invalid response from origin (%s)", why);
				cache_obj_put(&t->hit);
				t->decoupled = false;
				txn_local(t, 502, d, PS_PROTOCOL, false);
			} else if (!head_fetch_failed(t, why)) {
				txn_abort(t, why);
			}
			return 1;
		}
		if (framing) {
			if (t->uin_ready > 0 && !t->tail) { /* it is in the object */
				iobuf_consume(t->uin, t->uin_ready);
				t->uin_ready = 0;
			}
			if (t->resp_framed && t->uin && iobuf_len(t->uin) == 0)
				iobuf_put(&t->uin);
			if (t->resp_framed && t->uin == NULL) /* else when the tail is out */
				upstream_done(t);
		}
		/* What is in goes out before more is read. */
		if (t->head_done && t->tail) {
			/* A HEAD's fetch whose fill was dropped: the rest is
			 * of no use to anyone. */
			t->up_reusable = false;
			txn_finish(t);
			return 1;
		}
		if (t->client_gone || t->head_done) {
			if (t->tail) {
				txn_abort(t, "client gone and the fill dropped");
				return 1;
			}
			if (t->resp_framed) {
				txn_finish(t);
				return 1;
			}
		} else {
			enum obj_send rc = t->hit ? obj_send(t, &sent) : tail_send(t, &sent);
			if (rc == SEND_SHORT && t->tail) {
				/* All the object held is out: the tail follows,
				 * and the object, with the room its fill had
				 * reserved, goes once no waiter holds it. */
				cache_obj_put(&t->hit);
				sent = 1;
				rc = SEND_BLOCKED;
			}
			switch (rc) {
			case SEND_BLOCKED:
				break;
			case SEND_DONE: /* all of the body was published: it is in */
				if (t->head_get && !t->resp_framed) {
					/* The client's answer is whole: its log
					 * line says so now, not when the fetch
					 * behind it ends. */
					txn_log(t);
					if (head_detach(t))
						return 1;    /* t is another session's now */
					t->head_done = true; /* the fetch goes on here */
					sent = 1;
					break;
				}
				txn_finish(t);
				return 1;
			case SEND_FAILED:
				if (leader_detach(t, "client write failed")) {
					sent = 1;
					break;
				}
				txn_abort(t, "client write failed");
				return 1;
			case SEND_SHORT:
				txn_abort(t, "origin failed mid-body");
				return 1;
			}
		}
		/* The tail is read as the client takes it, like a response
		 * that is not stored. */
		if (!t->resp_framed && (!t->tail || t->uin_ready == 0)) {
			int rc = read_upstream(t);
			if (rc == -1 && t->respb.kind == H1_BODY_CLOSE) {
				body_closed(t);
				upstream_done(t);
				rc = 1;
			} else if (rc < 0) {
				const char *why = rc == -1 ? "origin closed mid-body"
							   : "origin failed mid-body";
				if (!head_fetch_failed(t, why))
					txn_abort(t, why);
				return 1;
			}
			fetched = rc == 1;
		}
		if (!fetched && !sent)
			return progress;
		progress = 1;
	}
}

/* One step of EXCHANGE/BODY. 1: progress or the state changed, 0: blocked. */
static int step_exchange(struct txn *t)
{
	struct session *s = t->s;
	int progress = 0, rc;

	/* Request side. */
	if (!t->req_abandoned &&
	    (t->up_off < t->up_out.len || !t->req_framed || t->cin_ready > 0)) {
		rc = pump_request(t);
		if (rc == -1000)
			return 1; /* answered or aborted */
		if (rc < 0) {
			/* The origin may have answered and closed before
			 * taking the whole request (a 413 for a big upload):
			 * its answer is read before this counts as a failure.
			 * Neither connection can carry another request. */
			t->req_abandoned = true;
			t->req_err = rc;
			t->close_after = true;
			t->up_reusable = false;
			t->up_rd = true;
			rc = 1;
		}
		progress |= rc;
	}

	if (t->state == TS_EXCHANGE) {
		rc = read_upstream(t);
		if (rc < 0) {
			upstream_failed(t, t->req_abandoned && rc == -1 ? t->req_err : rc);
			return 1;
		}
		progress |= rc;
		if (t->uin && iobuf_len(t->uin) > 0) {
			rc = handle_response_head(t);
			if (rc < 0)
				return 1;
			progress |= rc;
		}
		return progress;
	}

	if (t->decoupled)
		return step_decoupled(t, progress);
	/* TS_BODY: head, then body bytes, to the client. */
	if (t->cl_off < t->cl_out.len) {
		/* Body bytes already here go out with the head, in one write
		 * (and one segment for a small response). */
		if (!t->switching && !t->resp_framed && t->uin &&
		    iobuf_len(t->uin) > t->uin_ready && frame_response(t) < 0) {
			char d[160];
			snprintf(d, sizeof(d), "invalid response from origin (%s)",
				 t->resp_ck.error ? t->resp_ck.error : "bad chunked body");
			if (t->cl_off == 0) /* nothing of it reached the client yet */
				txn_local(t, 502, d, PS_PROTOCOL, false);
			else
				txn_abort(t, d);
			return 1;
		}
		rc = flush_head(t);
		if (rc < 0 && leader_detach(t, "client write failed"))
			rc = flush_head(t); /* drops what was for the client */
		if (rc < 0) {
			txn_abort(t, "client write failed");
			return 1;
		}
		if (rc == 0)
			return progress;
		progress = 1;
	}
	if (t->switching) {
		/* The relay starts only after the whole request head is out:
		 * what the client sends next must not land inside it. */
		if (t->up_off < t->up_out.len)
			return progress;
		/* Forward what the origin sent after its 101 and relay. */
		if (t->uin && iobuf_len(t->uin) == 0)
			iobuf_put(&t->uin);
		start_tunnel(t, &t->uin, &s->in);
		return 1;
	}
	for (;;) {
		/* The fill it went on for was dropped (it outgrew what may be
		 * stored): nobody is left to fetch for. */
		if (t->client_gone && !t->fill && !t->resp_framed) {
			txn_abort(t, "client gone and the fill dropped");
			return 1;
		}
		if (t->uin_ready > 0 && t->client_gone) {
			drop_client_output(t);
			progress = 1;
			continue;
		}
		if (t->uin_ready > 0) {
			if (!s->wr)
				return progress;
			ssize_t n = send(s->fd, iobuf_head(t->uin), t->uin_ready, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN) {
					s->wr = false;
					return progress;
				}
				if (leader_detach(t, "client write failed"))
					continue;
				txn_abort(t, "client write failed");
				return 1;
			}
			t->bytes_out += (uint64_t)n;
			counter_add(&s->w->cnt, CNT_BYTES_TO_CLIENTS, n);
			iobuf_consume(t->uin, (size_t)n);
			t->uin_ready -= (size_t)n;
			progress = 1;
			continue;
		}
		if (t->resp_framed && t->pipe_bytes == 0) {
			if (t->uin && iobuf_len(t->uin) == 0)
				iobuf_put(&t->uin);
			/* The request may still be going out (origin answered
			 * early); only a complete exchange ends cleanly. A
			 * connection with part of a head unsent would glue the
			 * next request onto it. */
			if (!t->req_framed || t->cin_ready > 0) {
				t->close_after = true;
				t->up_reusable = false;
			}
			if (t->up_off < t->up_out.len)
				t->up_reusable = false;
			txn_finish(t);
			return 1;
		}
		if (want_splice(t)) {
			rc = splice_body(t);
			if (rc < 0)
				return 1;
			if (rc == 0)
				return progress;
			progress = 1;
			continue;
		}
		if (frame_response(t) < 0) {
			txn_abort(t, t->resp_ck.error ? t->resp_ck.error : "bad chunked response");
			return 1;
		}
		if (t->uin_ready > 0 || t->resp_framed)
			continue;
		rc = read_upstream(t);
		if (rc == 1) {
			progress = 1;
			continue;
		}
		if (rc < 0) {
			if (rc == -1 && t->respb.kind == H1_BODY_CLOSE) {
				body_closed(t);
				continue;
			}
			txn_abort(t,
				  rc == -1 ? "origin closed mid-body" : "origin failed mid-body");
			return 1;
		}
		return progress;
	}
}

/* A body in a memfd goes by sendfile(), page references and no copy; the
 * head before it with MSG_MORE, so that both leave in one segment for a
 * small answer. 1: progress, 0: blocked, SEND_FAILED or SEND_SHORT
 * (negated). */
static int hit_sendfile(struct txn *t, const struct cache_obj *o, size_t head, uint64_t avail)
{
	struct session *s = t->s;
	if (head > 0) {
		ssize_t h = send(s->fd, t->cl_out.p + t->cl_off, head, MSG_NOSIGNAL | MSG_MORE);
		if (h < 0 && errno == EINTR)
			return 1;
		if (h < 0 && errno == EAGAIN) {
			s->wr = false;
			return 0;
		}
		if (h < 0)
			return -SEND_FAILED;
		t->cl_off += (size_t)h;
		t->bytes_out += (uint64_t)h;
		counter_add(&s->w->cnt, CNT_BYTES_TO_CLIENTS, h);
		s->moved = true;
		if ((size_t)h < head)
			return 1;
	}
	uint64_t rem = SL_MIN(t->hit_left, avail - t->hit_pos);
	rem = SL_MIN(rem, (uint64_t)(t->hit_c->cap - t->hit_off));
	off_t off = (off_t)t->hit_off;
	ssize_t w = sendfile(s->fd, o->body_fd, &off, (size_t)rem);
	if (w < 0 && errno == EINTR)
		return 1;
	if (w < 0 && errno == EAGAIN) {
		s->wr = false;
		return 0;
	}
	if (w <= 0)
		return w == 0 ? -SEND_SHORT : -SEND_FAILED;
	t->bytes_out += (uint64_t)w;
	counter_add(&s->w->cnt, CNT_BYTES_TO_CLIENTS, w);
	s->moved = true;
	t->hit_off += (size_t)w;
	t->hit_pos += (uint64_t)w;
	t->hit_left -= (uint64_t)w;
	return 1;
}

/* Send the head in cl_out and t->hit's body from the cursor, as far as the
 * socket takes and the object has published; *progress is set when bytes
 * moved. Chunks are walked by their capacity, bounded by what is
 * published: every chunk but the last is full, and the last may still be
 * filling (an object whose fetch is in flight). The head goes out in the
 * same writev as the first body bytes: one segment, one wakeup of the
 * client, for a small answer. */
static enum obj_send obj_send(struct txn *t, int *progress)
{
	struct session *s = t->s;
	const struct cache_obj *o = t->hit;

	for (;;) {
		struct iovec iov[17];
		int n = 0;
		size_t head = t->cl_out.len - t->cl_off;
		uint64_t avail = t->hit_left > 0
					 ? atomic_load_explicit(&o->published, memory_order_acquire)
					 : 0;

		if (t->hit_left == 0 || t->hit_pos >= avail) {
			if (head > 0) { /* the head alone: no body, or none yet */
				size_t off0 = t->cl_off;
				int rc = flush_sbuf(s->fd, &t->cl_out, &t->cl_off, &s->wr,
						    &t->bytes_out);
				if (rc < 0)
					return SEND_FAILED;
				counter_add(&s->w->cnt, CNT_BYTES_TO_CLIENTS,
					    (int64_t)(t->cl_off - off0));
				if (t->cl_off != off0) {
					s->moved = true;
					*progress = 1;
				}
				if (rc == 0)
					return SEND_BLOCKED;
				continue;
			}
			if (t->hit_left == 0)
				return SEND_DONE;
			if (!atomic_load_explicit(&o->ended, memory_order_acquire))
				return SEND_BLOCKED; /* the fetch kicks us when there is more */
			if (t->hit_chunked && !atomic_load(&o->failed)) {
				/* The whole body is out: the last chunk ends it. */
				sbuf_reset(&t->cl_out);
				t->cl_off = 0;
				sbuf_add_str(&t->cl_out, t->ck_any ? "\r\n0\r\n\r\n" : "0\r\n\r\n");
				t->hit_left = 0;
				continue;
			}
			return SEND_SHORT;
		}
		if (t->hit_c == NULL) { /* the first byte: place the cursor */
			uint64_t skip = t->hit_pos;
			t->hit_c = o->body;
			while (skip >= t->hit_c->cap) {
				skip -= t->hit_c->cap;
				t->hit_c = t->hit_c->next;
			}
			t->hit_off = (size_t)skip;
		}
		if (t->hit_off == t->hit_c->cap) { /* published bytes lie beyond it */
			t->hit_c = t->hit_c->next;
			t->hit_off = 0;
		}
		if (!s->wr)
			return SEND_BLOCKED;
		if (o->body_fd >= 0 && t->hit_c == o->body && t->conf->sendfile) {
			int rc = hit_sendfile(t, o, head, avail);
			if (rc < 0)
				return (enum obj_send) - rc;
			if (rc == 0)
				return SEND_BLOCKED;
			*progress = 1;
			continue;
		}
		if (t->hit_chunked && t->ck_left == 0) {
			/* A new chunk of what is published, its size line queued
			 * behind whatever of the head is not out yet. */
			if (t->cl_off == t->cl_out.len) {
				sbuf_reset(&t->cl_out);
				t->cl_off = 0;
			}
			t->ck_left = SL_MIN(avail - t->hit_pos, (uint64_t)1 << 20);
			sbuf_printf(&t->cl_out, "%s%llx\r\n", t->ck_any ? "\r\n" : "",
				    (unsigned long long)t->ck_left);
			t->ck_any = true;
			head = t->cl_out.len - t->cl_off;
		}
		if (head > 0)
			iov[n++] = (struct iovec){.iov_base = t->cl_out.p + t->cl_off,
						  .iov_len = head};
		uint64_t rem = SL_MIN(t->hit_left, avail - t->hit_pos);
		if (t->hit_chunked)
			rem = SL_MIN(rem, t->ck_left);
		size_t off = t->hit_off;
		for (const struct cache_chunk *c = t->hit_c; c && n < 17 && rem > 0;
		     c = rem > 0 ? c->next : c, off = 0) {
			size_t len = (size_t)SL_MIN((uint64_t)(c->cap - off), rem);
			iov[n++] =
				(struct iovec){.iov_base = (char *)c->data + off, .iov_len = len};
			rem -= len;
		}
		ssize_t w = client_writev(t, iov, n, progress);
		if (w <= 0)
			return w == 0 ? SEND_BLOCKED : SEND_FAILED;
		size_t left = (size_t)w, h = SL_MIN(left, head);
		t->cl_off += h;
		left -= h;
		if (t->hit_chunked)
			t->ck_left -= (uint64_t)left;
		else
			t->hit_left -= (uint64_t)left;
		t->hit_pos += (uint64_t)left;
		/* Stay on a chunk just emptied: its successor may not be
		 * linked yet (it is by the time more is published). */
		while (left > 0) {
			size_t k = SL_MIN(left, (size_t)(t->hit_c->cap - t->hit_off));
			t->hit_off += k;
			left -= k;
			if (left > 0) {
				t->hit_c = t->hit_c->next;
				t->hit_off = 0;
			}
		}
	}
}

/* Answer from the cache: the head, then the stored body chunk by chunk. */
static int step_hit(struct txn *t)
{
	int progress = 0;

	switch (obj_send(t, &progress)) {
	case SEND_BLOCKED:
		return progress;
	case SEND_DONE:
		txn_finish(t);
		return 1;
	case SEND_FAILED:
		session_close(t->s, true);
		return 1;
	case SEND_SHORT:
		txn_abort(t, atomic_load(&t->hit->failed) ? "origin failed mid-body"
							  : "stored body shorter than its length");
		return 1;
	}
	return 1;
}

static int step_local(struct txn *t)
{
	struct session *s = t->s;
	size_t off0 = t->cl_off;
	int rc = flush_sbuf(s->fd, &t->cl_out, &t->cl_off, &s->wr, &t->bytes_out);
	if (t->cl_off != off0)
		s->moved = true;
	if (rc < 0) {
		session_close(s, true);
		return 1;
	}
	if (rc == 0)
		return 0;
	counter_add(&s->w->cnt, CNT_BYTES_TO_CLIENTS, (int64_t)t->cl_out.len);
	txn_finish(t);
	return 1;
}

/* ---- the session ---- */

/* A head that cannot be parsed: answer, log, and close. */
static void bad_request(struct session *s, const struct h1_error *herr)
{
	struct txn *t = sl_calloc(1, sizeof(*t));
	size_t dummy;

	counter_add(&s->w->cnt, CNT_REQUESTS_BAD, 1);
	s->head_t0 = 0;
	t->magic = TXN_MAGIC;
	t->s = s;
	t->conf = conf_ref(s->w->conf);
	t->t0_us = clock_mono_us();
	t->t0_wall_us = clock_wall_us();
	t->version = 11;
	sbuf_init(&t->strs, OUT_HEAD_MAX);
	sbuf_init(&t->up_out, OUT_HEAD_MAX);
	sbuf_init(&t->cl_out, OUT_HEAD_MAX);
	copy_str(t, SV_LIT("-"), &dummy, &t->method_len);
	copy_str(t, SV_LIT("-"), &t->url_off, &t->url_len);
	s->txn = t;
	log_info("bad request: %s (offset %zu)", herr->reason, herr->offset);
	txn_local(t, herr->status, herr->reason, NULL, true);
	/* Nothing after a malformed head can be trusted, but the client may
	 * still be sending it: drain before closing. */
	iobuf_put(&s->in);
	s->linger = true;
}

/* Read and parse the next request head. 1: a transaction was started (or
 * the session closed), 0: waiting for bytes. */
static int parse_head(struct session *s)
{
	const struct conf *c = s->w->conf;
	struct h1_header hdrs[MAX_HEADERS_CEIL];
	struct h1_request req;
	struct h1_error herr;
	struct h1_limits lim = {.max_head = c->max_header_size,
				.max_line = c->max_request_line,
				.max_headers = c->max_headers};

	for (;;) {
		if (s->in && iobuf_len(s->in) > 0) {
			if (s->head_t0 == 0)
				s->head_t0 = now_ms(s);
			int rc = h1_parse_request(iobuf_head(s->in), iobuf_len(s->in), &lim, &req,
						  hdrs, SL_ARRAY_LEN(hdrs), &herr);
			if (rc == H1_OK) {
				s->head_t0 = 0;
				txn_begin(s, &req);
				/* Everything needed was copied: the views into
				 * s->in die here, and the body starts at its head. */
				iobuf_consume(s->in, req.head_len);
				return 1;
			}
			if (rc == H1_ERROR) {
				bad_request(s, &herr);
				return 1;
			}
			/* Incomplete: make room for a head bigger than a buffer. */
			if (iobuf_room(s->in) == 0) {
				iobuf_compact(s->in);
				if (iobuf_room(s->in) == 0 && s->in->cap < IOBUF_LARGE_SIZE)
					s->in = iobuf_grow(&s->in, IOBUF_LARGE_SIZE);
				if (iobuf_room(s->in) == 0) {
					herr.status = 431;
					herr.reason = "request head too large";
					herr.offset = iobuf_len(s->in);
					bad_request(s, &herr);
					return 1;
				}
			}
		}
		int rc = read_client(s);
		if (rc == 1) {
			s->moved = true; /* the deadline becomes the head's */
			continue;
		}
		if (rc < 0) {
			/* EOF or error between requests (or inside a head). */
			session_close(s, false);
			return 1;
		}
		break;
	}
	if (s->in && iobuf_len(s->in) == 0)
		iobuf_put(&s->in); /* idle: hold no buffer */
	return 0;
}

/* The one driver: run the session's current step until it would block.
 * Every event, callback and timer ends up here, and no step calls another
 * step, so nothing recurses however many requests are pipelined. */
static void session_run(struct session *s)
{
	bool any = false;

	while (!s->closed && !s->lingering) {
		struct txn *t = s->txn;
		int rc;

		if (t == NULL) {
			if (atomic_load(&s->w->drain) && !(s->in && iobuf_len(s->in) > 0)) {
				session_close(s, false);
				return;
			}
			rc = parse_head(s);
		} else {
			SL_CHECK_OBJ(t, TXN_MAGIC);
			switch (t->state) {
			case TS_RESOLVE:
				rc = step_resolve(t);
				break;
			case TS_CONNECT:
				rc = step_connect(t);
				break;
			case TS_EXCHANGE:
			case TS_BODY:
				rc = step_exchange(t);
				break;
			case TS_TUNNEL:
				rc = step_tunnel(t);
				break;
			case TS_LOCAL:
				rc = step_local(t);
				break;
			case TS_HIT:
				rc = step_hit(t);
				break;
			case TS_COLLAPSED:
				rc = step_collapsed(t);
				break;
			case TS_DISK:
				rc = 0; /* the read's callback moves it on */
				break;
			default:
				SL_ASSERT(0);
				return;
			}
		}
		if (rc == 0) {
			if (!s->closed && !s->lingering &&
			    (any || s->moved || !ev_timer_armed(&s->timer) ||
			     s->timer_txn != s->txn ||
			     s->timer_state != (s->txn ? (int)s->txn->state : -1)))
				arm_for_state(s);
			s->moved = false;
			/* Blocked: on the client, or on something it may
			 * have stopped waiting for (the deadline is set for
			 * what it waits on: a fetch carried on keeps it). */
			if (s->rdhup && s->txn && !s->closed && !s->lingering)
				client_left(s->txn);
			return;
		}
		any = true;
	}
}

static void session_io_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	struct session *s = SL_CONTAINER_OF(io, struct session, io);
	(void)loop;
	SL_CHECK_OBJ(s, SESSION_MAGIC);
	if (s->lingering) {
		linger_read(s);
		return;
	}
	if (revents & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->rd = true;
	if (revents & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->rdhup = true;
	if (revents & (EPOLLHUP | EPOLLERR))
		s->hup = true;
	if (revents & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		s->wr = true;
	if (s->txn && s->txn->state == TS_TUNNEL)
		relay_note(s->txn->relay, s->fd, revents);
	session_run(s);
}

static void upstream_event(void *owner, uint32_t revents)
{
	struct txn *t = owner;
	SL_CHECK_OBJ(t, TXN_MAGIC);
	if (t->state == TS_TUNNEL) {
		relay_note(t->relay, t->up->fd, revents);
	} else {
		if (revents & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			t->up_rd = true;
		if (revents & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			t->up_rdhup = true;
		if (revents & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			t->up_wr = true;
	}
	session_run(t->s);
}

static void timer_cb(struct ev_loop *loop, struct ev_timer *tm)
{
	struct session *s = SL_CONTAINER_OF(tm, struct session, timer);
	struct txn *t = s->txn;
	(void)loop;

	SL_CHECK_OBJ(s, SESSION_MAGIC);
	if (s->lingering) {
		session_close(s, false);
		return;
	}
	if (t == NULL) {
		if (s->in && iobuf_len(s->in) > 0) {
			/* A head that never completed. */
			static const char body[] =
				"408 Request Timeout: request head not received\n";
			char r408[256];
			int len = snprintf(
				r408, sizeof(r408),
				"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; "
				"charset=utf-8\r\nContent-Length: %zu\r\n"
				"Connection: close\r\n\r\n%s",
				sizeof(body) - 1, body);
			/* Best effort: the client may be gone; the close follows. */
			ssize_t n = send(s->fd, r408, (size_t)len, MSG_NOSIGNAL);
			(void)n;
		}
		session_close(s, false);
		return;
	}
	switch (t->state) {
	case TS_RESOLVE:
	case TS_CONNECT: {
		char d[HOST_NAME_MAX_LEN + 64], who[HOST_NAME_MAX_LEN + 16];
		if (next_server(t, "timed out")) {
			session_run(s);
			return;
		}
		snprintf(d, sizeof(d), "%s %s timed out",
			 t->state == TS_RESOLVE ? "DNS lookup of" : "connection to",
			 origin_name(t, who, sizeof(who)));
		txn_local(t, 504, d, t->state == TS_RESOLVE ? PS_DNS_TIMEOUT : PS_CONN_TIMEOUT,
			  false);
		session_run(s);
		return;
	}
	case TS_EXCHANGE: {
		char d[HOST_NAME_MAX_LEN + 64], who[HOST_NAME_MAX_LEN + 16];
		if (!t->req_framed && t->cin_ready == 0 && t->up_off == t->up_out.len &&
		    !t->req_abandoned &&
		    !(t->expect_continue && !t->resp_started && !t->body_begun)) {
			/* Everything the client sent is out: it is the one late
			 * (unless it waits for a 100 Continue: below). */
			txn_local(t, 408, "request body not received in time", NULL, true);
		} else if (t->expect_continue && !t->resp_started && !t->body_begun) {
			/* The client waits for a 100 Continue, the origin
			 * perhaps for the body: no fault of the server to
			 * hold against it, nor a request to retry. */
			snprintf(d, sizeof(d), "no 100 Continue or response from %s in time",
				 origin_name(t, who, sizeof(who)));
			txn_local(t, 504, d, PS_RESP_TIMEOUT, false); /* it logs the server */
		} else if (!next_server(t, "no response in time")) {
			snprintf(d, sizeof(d), "no response from %s in time",
				 origin_name(t, who, sizeof(who)));
			txn_local(t, 504, d, PS_RESP_TIMEOUT, false);
		}
		session_run(s);
		return;
	}
	case TS_DISK:
		disk_read_cancel(&t->dread);
		if (t->purging) {
			/* Out of the index already; only the files are late. */
			log_warn("cache_dir: deleting the files of PURGE %.*s slower than "
				 "read_timeout; answered before they are gone",
				 (int)t->url_len, t->strs.p + t->url_off);
			purge_answer(t);
		} else {
			/* A disk that slow is no cache: ask the origin. */
			log_warn("cache_dir read slower than read_timeout; going to the origin");
			disk_done(t, NULL);
		}
		session_run(s);
		return;
	case TS_COLLAPSED:
		/* The fetch waited on is slow: ask the origin ourselves. */
		collapse_release(t);
		session_run(s);
		return;
	default:
		if (t->decoupled && head_fetch_failed(t, "timeout")) {
			session_run(s);
			return;
		}
		/* Mid-body, tunnel idle, or a client not reading our answer. */
		txn_abort(t, "timeout");
		return;
	}
}

/* budget: NULL for a client's connection; for the proxy's own session (a
 * background refresh), the worker's count it is one of, already counted
 * up, and counted down as the session closes. */
static struct session *session_new(struct worker *w, int fd, const struct sockaddr *peer,
				   socklen_t len, unsigned *budget, bool outsider)
{
	struct session *s = sl_calloc(1, sizeof(*s));

	s->magic = SESSION_MAGIC;
	s->w = w;
	s->fd = fd;
	s->budget = budget;
	memcpy(&s->peer, peer, SL_MIN((size_t)len, sizeof(s->peer)));
	s->rd = s->wr = true;
	s->next = w->sessions;
	if (s->next)
		s->next->prev = s;
	w->sessions = s;
	w->nsessions++;
	if (budget == NULL) {
		counter_add(&w->cnt, CNT_CLIENT_ACCEPTED, 1);
		counter_add(&w->cnt, CNT_CLIENT_ACTIVE, 1);
		net_set_nodelay(fd);
		s->outsider = outsider;
		w->noutsiders += outsider;
	}
	if (ev_io_add(w->loop, &s->io, fd, EV_READ | EV_WRITE | EV_RDHUP, session_io_cb) < 0) {
		log_error("cannot register client socket: %s", strerror(errno));
		s->io.fd = -1;
		session_close(s, true);
		return NULL;
	}
	return s;
}

void session_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t len,
		    bool outsider)
{
	struct session *s = session_new(w, fd, peer, len, NULL, outsider);
	/* Data may already be waiting (accept after the first segment). */
	if (s)
		session_run(s);
}

/* ---- background refresh (stale-while-revalidate) ---- */

static void refresh_kick(void *arg)
{
	session_run(arg);
}

/* The far end of a refresh's socket pair: reads and drops the answer. */
struct drain {
	struct ev_io io;
	int fd;
	struct drain *prev, *next; /* the worker's */
	struct worker *w;
};

static void drain_free(struct worker *w, struct drain *d)
{
	ev_io_del(w->loop, &d->io);
	close(d->fd);
	if (d->prev)
		d->prev->next = d->next;
	else
		w->drains = d->next;
	if (d->next)
		d->next->prev = d->prev;
	free(d);
}

static void drain_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	struct drain *d = SL_CONTAINER_OF(io, struct drain, io);
	char buf[16384];
	(void)revents;
	(void)loop;
	for (;;) {
		ssize_t n = recv(d->fd, buf, sizeof(buf), 0);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		break; /* the refresh is over (its end closed) */
	}
	drain_free(d->w, d);
}

/* A session of this proxy's own over the socket pair sv, whose far end
 * (a drain) only reads what comes and drops it, and goes when the session
 * closes: for a background refresh, or a fetch carried on without its
 * client. Counted in *budget (the worker's nrefresh or ndetached); NULL if
 * it cannot be had (the pair is closed then). */
static struct session *session_pair(struct worker *w, int sv[2], const struct sockaddr *peer,
				    socklen_t len, unsigned *budget)
{
	struct drain *d = sl_calloc(1, sizeof(*d));
	d->fd = sv[1];
	d->w = w;
	if (ev_io_add(w->loop, &d->io, sv[1], EV_READ | EV_RDHUP, drain_cb) < 0) {
		close(sv[0]);
		close(sv[1]);
		free(d);
		return NULL;
	}
	d->next = w->drains;
	if (d->next)
		d->next->prev = d;
	w->drains = d;
	(*budget)++; /* (session_close counts it off, even on failure) */
	return session_new(w, sv[0], peer, len, budget,
			   false); /* if NULL, the drain sees the end */
}

static struct session *session_aside(struct worker *w, const struct sockaddr *peer, socklen_t len,
				     unsigned *budget)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	return session_pair(w, sv, peer, len, budget);
}

/* Refresh o in the background: the same request, made by this proxy to
 * itself, over a socket pair whose far end only drains the answer. The
 * request goes through the whole path (routing, the pending table,
 * revalidation, storing) as a client's would; its session is marked so
 * that the cache validates instead of answering. One refresh at a time per
 * object, and at most REFRESH_MAX per worker. */
static void refresh_start(struct txn *t, struct cache_obj *o)
{
	struct worker *w = t->s->w;
	struct sbuf head;
	int sv[2];

	if (w->nrefresh >= REFRESH_MAX || t->up_own == 0 || t->up_out.len == 0 ||
	    atomic_exchange(&o->refreshing, true))
		return;
	const char *host = memchr(t->up_out.p, '\n', t->up_out.len); /* after the request line */
	if (host == NULL || (size_t)(host + 1 - t->up_out.p) > t->up_own)
		goto undo;
	host++;
	sbuf_init(&head, OUT_HEAD_MAX);
	sbuf_add_str(&head, "GET ");
	sbuf_add_sv(&head, txn_sv(t, t->tgt_off, t->tgt_len));
	sbuf_add_str(&head, " HTTP/1.1\r\n");
	sbuf_add(&head, host, t->up_own - (size_t)(host - t->up_out.p));
	sbuf_add_str(&head, "Connection: close\r\n\r\n");
	if (sbuf_failed(&head) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		sbuf_free(&head);
		goto undo;
	}
	/* A head is far smaller than a socket buffer: it goes in at once. */
	ssize_t n = send(sv[1], head.p, head.len, MSG_NOSIGNAL);
	bool sent = n == (ssize_t)head.len;
	sbuf_free(&head);
	if (!sent) {
		close(sv[0]);
		close(sv[1]);
		goto undo;
	}
	struct session *s = session_pair(w, sv, &t->s->peer.sa, sizeof(t->s->peer), &w->nrefresh);
	if (s == NULL)
		goto undo;
	s->refresh_of = cache_obj_ref(o);
	log_debug("refreshing %.*s in the background", (int)t->url_len, t->strs.p + t->url_off);
	ev_defer(w->loop, refresh_kick, s);
	return;
undo:
	atomic_store(&o->refreshing, false);
}

void session_close_idle(struct worker *w)
{
	struct session *s = w->sessions, *next;
	for (; s != NULL; s = next) {
		next = s->next;
		if (s->lingering || (s->txn == NULL && !(s->in && iobuf_len(s->in) > 0)))
			session_close(s, false);
	}
}

void session_close_all(struct worker *w)
{
	while (w->sessions)
		session_close(w->sessions, false);
	while (w->drains)
		drain_free(w, w->drains);
}

#include "proxy/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/sv.h"
#include "buf/limits.h"

#define RELAY_MAGIC 0x7e1a7e1au

struct half {
	int src, dst;
	int pipe[2];
	size_t in_pipe;
	size_t pipe_cap;
	struct iobuf *pending;
	bool src_ready, dst_ready;
	bool eof;  /* src ended */
	bool shut; /* dst write side shut down */
	bool wide; /* src's receive buffer was raised */
	uint64_t bytes;
};

struct relay {
	unsigned magic;
	struct half h[2]; /* 0: a->b, 1: b->a */
};

static int make_pipe(struct half *h)
{
	int sz;
	if (pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	/* A larger pipe moves more per splice; failure keeps the default. */
	(void)fcntl(h->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
	sz = fcntl(h->pipe[1], F_GETPIPE_SZ);
	h->pipe_cap = sz > 0 ? (size_t)sz : 4096;
	return 0;
}

struct relay *relay_new(int a, int b, struct iobuf **a_to_b, struct iobuf **b_to_a)
{
	struct relay *r = sl_calloc(1, sizeof(*r));

	r->magic = RELAY_MAGIC;
	r->h[0].src = a;
	r->h[0].dst = b;
	r->h[1].src = b;
	r->h[1].dst = a;
	for (int i = 0; i < 2; i++) {
		r->h[i].pipe[0] = r->h[i].pipe[1] = -1;
		r->h[i].src_ready = r->h[i].dst_ready = true;
	}
	if (make_pipe(&r->h[0]) < 0 || make_pipe(&r->h[1]) < 0) {
		int e = errno;
		relay_free(&r);
		errno = e;
		return NULL;
	}
	if (a_to_b && *a_to_b) {
		r->h[0].pending = *a_to_b;
		*a_to_b = NULL;
	}
	if (b_to_a && *b_to_a) {
		r->h[1].pending = *b_to_a;
		*b_to_a = NULL;
	}
	return r;
}

void relay_free(struct relay **rp)
{
	struct relay *r = *rp;
	if (r == NULL)
		return;
	*rp = NULL;
	SL_CHECK_OBJ(r, RELAY_MAGIC);
	for (int i = 0; i < 2; i++) {
		if (r->h[i].pipe[0] >= 0)
			close(r->h[i].pipe[0]);
		if (r->h[i].pipe[1] >= 0)
			close(r->h[i].pipe[1]);
		iobuf_put(&r->h[i].pending);
	}
	r->magic = 0;
	free(r);
}

void relay_bytes(const struct relay *r, uint64_t *a_to_b, uint64_t *b_to_a)
{
	*a_to_b = r->h[0].bytes;
	*b_to_a = r->h[1].bytes;
}

/* Whether net.core.rmem_max lets a socket have RELAY_WIDE_RCVBUF. */
static bool may_widen;

void relay_init(void)
{
	char buf[32] = {0};
	int fd = open("/proc/sys/net/core/rmem_max", O_RDONLY | O_CLOEXEC);

	may_widen = false;
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	uint64_t max = 0;
	if (n > 0 &&
	    sv_to_u64(sv_trim_ows(sv_make(buf, strcspn(buf, "\n"))), UINT64_MAX, &max) == 0)
		may_widen = max >= RELAY_WIDE_RCVBUF;
}

bool relay_widens(void)
{
	return may_widen;
}

/* A bulk transfer: give its source a fixed receive buffer (see
 * RELAY_WIDE_RCVBUF). Once per half. */
static void widen(struct half *h)
{
	h->wide = true;
	if (!may_widen)
		return;
	int v = RELAY_WIDE_RCVBUF;
	(void)setsockopt(h->src, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

/* Move what one half can. Returns 1 if anything moved, 0 if not, or -errno. */
static int half_run(struct half *h)
{
	int moved = 0;

	while (h->pending && h->dst_ready) {
		ssize_t n = write(h->dst, iobuf_head(h->pending), iobuf_len(h->pending));
		if (n < 0) {
			if (errno == EAGAIN) {
				h->dst_ready = false;
				return moved;
			}
			if (errno == EINTR)
				continue;
			return -errno;
		}
		h->bytes += (uint64_t)n;
		iobuf_consume(h->pending, (size_t)n);
		moved = 1;
		if (iobuf_len(h->pending) == 0)
			iobuf_put(&h->pending);
	}
	if (h->pending)
		return moved;

	for (;;) {
		bool progress = false;
		if (!h->eof && h->src_ready && h->in_pipe < h->pipe_cap) {
			ssize_t n = splice(h->src, NULL, h->pipe[1], NULL, h->pipe_cap - h->in_pipe,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				h->in_pipe += (size_t)n;
				progress = true;
			} else if (n == 0) {
				h->eof = true;
				progress = true;
			} else if (errno == EAGAIN) {
				/* The pipe had room, so the socket is empty. */
				h->src_ready = false;
			} else if (errno != EINTR) {
				return -errno;
			}
		}
		if (h->in_pipe > 0 && h->dst_ready) {
			ssize_t n = splice(h->pipe[0], NULL, h->dst, NULL, h->in_pipe,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				h->in_pipe -= (size_t)n;
				h->bytes += (uint64_t)n;
				if (!h->wide && h->bytes >= RELAY_WIDEN_AFTER)
					widen(h);
				progress = true;
				/* Pipe slots are whole pages, so an EAGAIN from
				 * the read side may have meant "pipe full" after
				 * all: try the socket again now there is room. */
				h->src_ready = true;
			} else if (n < 0 && errno == EAGAIN) {
				h->dst_ready = false;
			} else if (n < 0 && errno != EINTR) {
				return -errno;
			}
		}
		if (h->eof && h->in_pipe == 0 && !h->shut) {
			/* Pass the half-close on. ENOTCONN: the peer is gone
			 * already, which the other half will report. */
			(void)shutdown(h->dst, SHUT_WR);
			h->shut = true;
			progress = true;
		}
		if (!progress)
			return moved;
		moved = 1;
	}
}

void relay_note(struct relay *r, int fd, uint32_t revents)
{
	SL_CHECK_OBJ(r, RELAY_MAGIC);
	for (int i = 0; i < 2; i++) {
		struct half *h = &r->h[i];
		if (h->src == fd && (revents & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
			h->src_ready = true;
		if (h->dst == fd && (revents & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
			h->dst_ready = true;
	}
}

int relay_event(struct relay *r, int fd, uint32_t revents, int *err)
{
	relay_note(r, fd, revents);
	for (;;) {
		int m0 = half_run(&r->h[0]);
		int m1 = m0 < 0 ? 0 : half_run(&r->h[1]);
		if (m0 < 0 || m1 < 0) {
			*err = m0 < 0 ? m0 : m1;
			return RELAY_ERROR;
		}
		if (!m0 && !m1)
			break;
	}
	if (r->h[0].shut && r->h[1].shut)
		return RELAY_DONE;
	return RELAY_AGAIN;
}

#include "ev/ev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"

#define EV_BATCH 256

struct deferred {
	ev_defer_fn fn;
	void *arg;
};

struct ev_loop {
	int epfd;
	bool stop;
	uint64_t now;

	struct ev_timer **heap;
	uint32_t nheap, capheap;

	struct deferred *defer;
	size_t ndefer, capdefer;

	void (*before_wait)(void *arg);
	void *before_wait_arg;

	struct ev_io wake_io;
	void (*wake_fn)(struct ev_loop *loop, void *arg);
	void *wake_arg;

	/* Busy polling (ev_set_busy_poll): 0 = off. The timer slack is the
	 * loop thread's, saved when busy polling goes on. */
	uint32_t poll_us, poll_window_us;
	uint64_t last_io_us; /* end of the last batch of I/O events */
	bool slack_applied;
	long slack_saved;
	uint64_t naps;
};

uint64_t ev_now(const struct ev_loop *loop)
{
	return loop->now;
}

static void wake_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	uint64_t v;
	(void)revents;
	/* The eventfd is level-triggered: one read clears the count. */
	if (read(io->fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return;
	if (loop->wake_fn)
		loop->wake_fn(loop, loop->wake_arg);
}

struct ev_loop *ev_loop_new(void)
{
	struct ev_loop *loop = sl_calloc(1, sizeof(*loop));
	int efd;

	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		goto fail;
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0)
		goto fail;
	loop->wake_io.fd = -1;
	if (ev_io_add(loop, &loop->wake_io, efd, EV_READ | EV_LEVEL, wake_cb) < 0) {
		close(efd);
		goto fail;
	}
	loop->now = clock_mono_ms();
	return loop;
fail : {
	int e = errno;
	if (loop->epfd >= 0)
		close(loop->epfd);
	free(loop);
	errno = e;
	return NULL;
}
}

static void run_deferred(struct ev_loop *loop)
{
	/* Deferred work may defer more; run until none is left. */
	while (loop->ndefer > 0) {
		size_t n = loop->ndefer;
		struct deferred *d = loop->defer;
		loop->defer = NULL;
		loop->ndefer = loop->capdefer = 0;
		for (size_t i = 0; i < n; i++)
			d[i].fn(d[i].arg);
		free(d);
	}
}

void ev_loop_free(struct ev_loop **lp)
{
	struct ev_loop *loop = *lp;
	if (loop == NULL)
		return;
	*lp = NULL;
	run_deferred(loop);
	if (loop->wake_io.fd >= 0) {
		int fd = loop->wake_io.fd;
		ev_io_del(loop, &loop->wake_io);
		close(fd);
	}
	close(loop->epfd);
	free(loop->heap);
	free(loop);
}

void ev_loop_stop(struct ev_loop *loop)
{
	loop->stop = true;
}

int ev_io_add(struct ev_loop *loop, struct ev_io *io, int fd, uint32_t events, ev_io_cb cb)
{
	struct epoll_event ev = {.events = events & ~EV_LEVEL, .data.ptr = io};

	if (!(events & EV_LEVEL))
		ev.events |= EPOLLET;
	io->fd = fd;
	io->events = events;
	io->cb = cb;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		io->fd = -1;
		return -errno;
	}
	return 0;
}

int ev_io_mod(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events & ~EV_LEVEL, .data.ptr = io};

	SL_ASSERT(io->fd >= 0);
	if (!(events & EV_LEVEL))
		ev.events |= EPOLLET;
	if (events == io->events)
		return 0;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	return 0;
}

void ev_io_del(struct ev_loop *loop, struct ev_io *io)
{
	if (io->fd < 0)
		return;
	/* Fails only if the fd was already closed, which is the caller's bug
	 * but harmless here: the kernel dropped the registration with it. */
	(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->fd = -1;
}

/* Binary min-heap on t->key; t->idx is the slot + 1. */

static void heap_set(struct ev_loop *loop, uint32_t i, struct ev_timer *t)
{
	loop->heap[i] = t;
	t->idx = i + 1;
}

static void sift_up(struct ev_loop *loop, uint32_t i)
{
	struct ev_timer *t = loop->heap[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (loop->heap[parent]->key <= t->key)
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, t);
}

static void sift_down(struct ev_loop *loop, uint32_t i)
{
	struct ev_timer *t = loop->heap[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= loop->nheap)
			break;
		if (c + 1 < loop->nheap && loop->heap[c + 1]->key < loop->heap[c]->key)
			c++;
		if (t->key <= loop->heap[c]->key)
			break;
		heap_set(loop, i, loop->heap[c]);
		i = c;
	}
	heap_set(loop, i, t);
}

static void heap_remove(struct ev_loop *loop, struct ev_timer *t)
{
	uint32_t i = t->idx - 1;
	struct ev_timer *last;

	SL_ASSERT(t->idx != 0 && loop->heap[i] == t);
	t->idx = 0;
	last = loop->heap[--loop->nheap];
	if (last == t)
		return;
	heap_set(loop, i, last);
	if (i > 0 && loop->heap[(i - 1) / 2]->key > last->key)
		sift_up(loop, i);
	else
		sift_down(loop, i);
}

static void heap_insert(struct ev_loop *loop, struct ev_timer *t)
{
	if (loop->nheap == loop->capheap) {
		loop->capheap = loop->capheap ? loop->capheap * 2 : 64;
		loop->heap = sl_realloc(loop->heap, loop->capheap * sizeof(*loop->heap));
	}
	loop->heap[loop->nheap] = t;
	t->idx = ++loop->nheap;
	sift_up(loop, loop->nheap - 1);
}

void ev_timer_at(struct ev_loop *loop, struct ev_timer *t, uint64_t deadline, ev_timer_cb cb)
{
	if (deadline == 0)
		deadline = 1;
	t->cb = cb;
	t->deadline = deadline;
	if (t->idx != 0) {
		if (deadline >= t->key)
			return; /* lazy: re-keyed when the old key comes due */
		t->key = deadline;
		sift_up(loop, t->idx - 1);
		return;
	}
	t->key = deadline;
	heap_insert(loop, t);
}

void ev_timer_stop(struct ev_loop *loop, struct ev_timer *t)
{
	t->deadline = 0;
	if (t->idx != 0)
		heap_remove(loop, t);
}

unsigned ev_timer_count(const struct ev_loop *loop)
{
	return loop->nheap;
}

static void run_timers(struct ev_loop *loop)
{
	while (loop->nheap > 0 && loop->heap[0]->key <= loop->now) {
		struct ev_timer *t = loop->heap[0];
		heap_remove(loop, t);
		if (t->deadline > loop->now) {
			t->key = t->deadline;
			heap_insert(loop, t);
			continue;
		}
		t->deadline = 0;
		t->cb(loop, t);
	}
}

void ev_defer(struct ev_loop *loop, ev_defer_fn fn, void *arg)
{
	if (loop->ndefer == loop->capdefer) {
		loop->capdefer = loop->capdefer ? loop->capdefer * 2 : 32;
		loop->defer = sl_realloc(loop->defer, loop->capdefer * sizeof(*loop->defer));
	}
	loop->defer[loop->ndefer++] = (struct deferred){fn, arg};
}

void ev_set_before_wait(struct ev_loop *loop, void (*fn)(void *arg), void *arg)
{
	loop->before_wait = fn;
	loop->before_wait_arg = arg;
}

void ev_set_wakeup(struct ev_loop *loop, void (*fn)(struct ev_loop *loop, void *arg), void *arg)
{
	loop->wake_fn = fn;
	loop->wake_arg = arg;
}

void ev_wake(struct ev_loop *loop)
{
	uint64_t one = 1;
	/* EAGAIN means the counter is already non-zero: a wakeup is pending. */
	ssize_t n = write(loop->wake_io.fd, &one, sizeof(one));
	(void)n;
}

uint64_t ev_naps(const struct ev_loop *loop)
{
	return loop->naps;
}

/* A nap of interval_us must not last interval_us plus the default 50 us of
 * timer slack, so the thread's slack is cut to 1 ns while busy polling is on
 * and given back when it is turned off: hence on the loop's own thread. */
void ev_set_busy_poll(struct ev_loop *loop, uint32_t interval_us, uint32_t window_us)
{
	bool on = interval_us != 0;

	SL_ASSERT(interval_us < 1000000); /* a nap's timespec has no seconds */
	loop->poll_us = interval_us;
	loop->poll_window_us = on ? SL_MAX(window_us, interval_us) : 0;
	if (on == loop->slack_applied)
		return;
	if (on) {
		int r = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
		loop->slack_saved = r > 0 ? r : 50000;
		(void)prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	} else {
		(void)prctl(PR_SET_TIMERSLACK, (unsigned long)loop->slack_saved, 0, 0, 0);
	}
	loop->slack_applied = on;
}

/* Wait for events with busy polling on. Within poll_window_us of the end of
 * the last batch of I/O events: a look with no wait; if there is nothing,
 * a nap of poll_us on a timer of this thread's own core and a look again,
 * until the window is over; then (or at once, past the window) sleep in
 * epoll_wait until woken. The point is who pays for the wake-up: a thread
 * asleep in epoll_wait is woken by the core whose send made its socket
 * readable, and in a virtual machine that cross-core wake-up (an IPI) is
 * dear for the sender; a nap ends on this core's own timer. Timers firing do
 * not extend the window, so an idle loop with a periodic timer sleeps.
 * timeout_ms bounds it all, naps included, as for a plain epoll_wait. */
static int wait_busy(struct ev_loop *loop, struct epoll_event *evs, int timeout_ms)
{
	uint64_t start = clock_mono_us(), now = start;
	uint64_t until = loop->last_io_us + loop->poll_window_us;

	if (timeout_ms >= 0)
		until = SL_MIN(until, start + (uint64_t)timeout_ms * 1000);
	while (now < until) {
		int n = epoll_wait(loop->epfd, evs, EV_BATCH, 0);
		if (n != 0)
			return n;
		struct timespec ts = {0, (long)SL_MIN(loop->poll_us, until - now) * 1000};
		(void)nanosleep(&ts, NULL);
		loop->naps++;
		now = clock_mono_us();
	}
	if (timeout_ms > 0) {
		uint64_t spent_ms = (now - start) / 1000;
		timeout_ms = spent_ms >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int)spent_ms;
	}
	return epoll_wait(loop->epfd, evs, EV_BATCH, timeout_ms);
}

int ev_loop_run(struct ev_loop *loop)
{
	struct epoll_event evs[EV_BATCH];

	loop->stop = false;
	while (!loop->stop) {
		int timeout = -1, n;

		if (loop->before_wait)
			loop->before_wait(loop->before_wait_arg);
		run_deferred(loop);
		if (loop->stop)
			break;
		if (loop->nheap > 0) {
			uint64_t now = clock_mono_ms();
			uint64_t key = loop->heap[0]->key;
			timeout = key <= now ? 0 : (int)SL_MIN(key - now, 60000u);
		}
		if (loop->poll_us)
			n = wait_busy(loop, evs, timeout);
		else
			n = epoll_wait(loop->epfd, evs, EV_BATCH, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		loop->now = clock_mono_ms();
		for (int i = 0; i < n; i++) {
			struct ev_io *io = evs[i].data.ptr;
			/* Deleted earlier in this batch: its owner is going away. */
			if (io->fd < 0)
				continue;
			io->cb(loop, io, evs[i].events);
		}
		/* busy_poll's window runs from the end of the last I/O batch. */
		if (n > 0 && loop->poll_us)
			loop->last_io_us = clock_mono_us();
		run_deferred(loop);
		run_timers(loop);
	}
	return 0;
}

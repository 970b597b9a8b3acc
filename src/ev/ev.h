/* ev.h - the event loop: epoll, a timer heap, deferred work, and a wakeup.
 *
 * One loop per thread; nothing here is thread-safe except ev_wake().
 *
 * I/O: an ev_io is embedded in its owner. Registration is edge-triggered
 * unless EV_LEVEL is given: the callback must read/write until EAGAIN.
 * After ev_io_del() the loop delivers no further events for that io, even
 * ones already fetched in the current batch.
 *
 * Timers: an ev_timer is embedded in its owner and armed with an absolute
 * monotonic deadline. Moving a deadline later is free (the heap entry is
 * re-keyed lazily when it comes due), so timeouts can be pushed on every
 * read.
 *
 * Deferred work: ev_defer() runs a function after the current batch of
 * events, which is how objects are freed: never inside their own callback,
 * since a later event of the same batch may still point at them. */
#ifndef SLUICE_EV_H
#define SLUICE_EV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "base/base.h"

struct ev_loop;
struct ev_io;
struct ev_timer;

#define EV_READ	 EPOLLIN
#define EV_WRITE EPOLLOUT
#define EV_RDHUP EPOLLRDHUP
/* Flag for ev_io_add: level-triggered (for foreign code such as c-ares). */
#define EV_LEVEL 0x80000000u

typedef void (*ev_io_cb)(struct ev_loop *loop, struct ev_io *io, uint32_t revents);
typedef void (*ev_timer_cb)(struct ev_loop *loop, struct ev_timer *t);
typedef void (*ev_defer_fn)(void *arg);

struct ev_io {
	int fd;		 /* -1 when not registered */
	uint32_t events; /* as registered, incl. EV_LEVEL */
	ev_io_cb cb;
};

struct ev_timer {
	uint64_t deadline; /* wanted expiry, monotonic ms; 0 = not wanted */
	uint64_t key;	   /* expiry the heap is ordered by (<= deadline) */
	uint32_t idx;	   /* heap slot + 1; 0 = not in the heap */
	ev_timer_cb cb;
};

/* Create a loop. Returns NULL with errno set on failure (epoll/eventfd). */
struct ev_loop *ev_loop_new(void);
/* Free the loop. Registered ios are not closed; pending deferred work is run. */
void ev_loop_free(struct ev_loop **lp);

/* Run until ev_loop_stop(). Returns 0, or -errno if epoll_wait fails. */
int ev_loop_run(struct ev_loop *loop) SL_WUR;
void ev_loop_stop(struct ev_loop *loop);

/* The loop's cached monotonic time in ms, updated after every wait. */
uint64_t ev_now(const struct ev_loop *loop);

/* Register fd with callback cb for events (EV_READ|EV_WRITE|EV_RDHUP, edge-
 * triggered unless EV_LEVEL). Returns 0 or -errno. */
int ev_io_add(struct ev_loop *loop, struct ev_io *io, int fd, uint32_t events, ev_io_cb cb) SL_WUR;
/* Change the event set. Returns 0 or -errno. */
int ev_io_mod(struct ev_loop *loop, struct ev_io *io, uint32_t events) SL_WUR;
/* Unregister (does not close the fd). io->fd becomes -1. Idempotent. */
void ev_io_del(struct ev_loop *loop, struct ev_io *io);

/* Arm or move a timer to expire at the absolute monotonic time `deadline`
 * (ms); cb is stored. */
void ev_timer_at(struct ev_loop *loop, struct ev_timer *t, uint64_t deadline, ev_timer_cb cb);
/* Disarm. Idempotent. */
void ev_timer_stop(struct ev_loop *loop, struct ev_timer *t);
static inline bool ev_timer_armed(const struct ev_timer *t)
{
	return t->deadline != 0;
}
/* When an armed timer fires (monotonic ms); 0 if it is not armed. */
static inline uint64_t ev_timer_deadline(const struct ev_timer *t)
{
	return t->deadline;
}

/* Run fn(arg) after the current batch of events (or at the next one). */
void ev_defer(struct ev_loop *loop, ev_defer_fn fn, void *arg);

/* A hook run once per loop iteration, before waiting (flush logs, ...). */
void ev_set_before_wait(struct ev_loop *loop, void (*fn)(void *arg), void *arg);

/* Wakeup from any thread: makes the loop call the wakeup callback once soon. */
void ev_set_wakeup(struct ev_loop *loop, void (*fn)(struct ev_loop *loop, void *arg), void *arg);
void ev_wake(struct ev_loop *loop);

/* Busy polling (the busy_poll directive): while events keep coming, the loop
 * does not sleep until woken but naps interval_us and looks again, for up to
 * window_us (at least interval_us) after the end of the last batch of I/O
 * events. interval_us 0 turns it off (the default); below 1 s. Call on the
 * loop's thread (it sets that thread's timer slack). */
void ev_set_busy_poll(struct ev_loop *loop, uint32_t interval_us, uint32_t window_us);
/* Naps taken so far (busy polling). */
uint64_t ev_naps(const struct ev_loop *loop);

/* Number of timers armed (for tests and status). */
unsigned ev_timer_count(const struct ev_loop *loop);

#endif

#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "ev/ev.h"
#include "unit.h"

static int fired[8];
static struct ev_timer timers[8];
static int order[8], norder;

static void on_timer(struct ev_loop *loop, struct ev_timer *t)
{
	int i = (int)(t - timers);
	fired[i]++;
	order[norder++] = i;
	if (norder == 3)
		ev_loop_stop(loop);
}

TEST(timers_fire_in_deadline_order)
{
	struct ev_loop *loop = ev_loop_new();
	uint64_t now = ev_now(loop);
	norder = 0;
	memset(fired, 0, sizeof(fired));
	ev_timer_at(loop, &timers[0], now + 30, on_timer);
	ev_timer_at(loop, &timers[1], now + 10, on_timer);
	ev_timer_at(loop, &timers[2], now + 20, on_timer);
	CHECK_INT(ev_timer_count(loop), 3);
	CHECK_INT(ev_loop_run(loop), 0);
	CHECK_INT(order[0], 1);
	CHECK_INT(order[1], 2);
	CHECK_INT(order[2], 0);
	CHECK_INT(ev_timer_count(loop), 0);
	ev_loop_free(&loop);
	CHECK(loop == NULL);
}

TEST(timer_moved_later_lazily_fires_at_new_deadline)
{
	struct ev_loop *loop = ev_loop_new();
	uint64_t t0 = clock_mono_ms();
	norder = 0;
	memset(fired, 0, sizeof(fired));
	ev_timer_at(loop, &timers[0], ev_now(loop) + 5, on_timer);
	/* Pushed out: must not fire at +5. */
	ev_timer_at(loop, &timers[0], ev_now(loop) + 40, on_timer);
	ev_timer_at(loop, &timers[1], ev_now(loop) + 20, on_timer);
	ev_timer_at(loop, &timers[2], ev_now(loop) + 60, on_timer);
	CHECK_INT(ev_loop_run(loop), 0);
	CHECK_INT(order[0], 1);
	CHECK_INT(order[1], 0);
	CHECK_INT(order[2], 2);
	CHECK(clock_mono_ms() - t0 >= 40);
	ev_loop_free(&loop);
}

TEST(timer_moved_earlier_and_stopped)
{
	struct ev_loop *loop = ev_loop_new();
	norder = 0;
	memset(fired, 0, sizeof(fired));
	ev_timer_at(loop, &timers[0], ev_now(loop) + 1000, on_timer);
	ev_timer_at(loop, &timers[0], ev_now(loop) + 5, on_timer);
	ev_timer_at(loop, &timers[3], ev_now(loop) + 1, on_timer);
	ev_timer_stop(loop, &timers[3]);
	CHECK(!ev_timer_armed(&timers[3]));
	ev_timer_at(loop, &timers[1], ev_now(loop) + 10, on_timer);
	ev_timer_at(loop, &timers[2], ev_now(loop) + 15, on_timer);
	CHECK_INT(ev_loop_run(loop), 0);
	CHECK_INT(order[0], 0);
	CHECK_INT(fired[3], 0);
	ev_loop_free(&loop);
}

static int io_calls;
static void on_io(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	char buf[16];
	io_calls++;
	CHECK(revents & EV_READ);
	/* Edge-triggered: drain. */
	while (read(io->fd, buf, sizeof(buf)) > 0)
		;
	ev_loop_stop(loop);
}

static int deferred;
static void on_defer(void *arg)
{
	deferred += *(int *)arg;
}

TEST(io_readiness_and_deferred_work)
{
	struct ev_loop *loop = ev_loop_new();
	struct ev_io io = {.fd = -1};
	int p[2], one = 1;
	CHECK_INT(pipe2(p, O_NONBLOCK), 0);
	io_calls = 0;
	deferred = 0;
	CHECK_INT(ev_io_add(loop, &io, p[0], EV_READ, on_io), 0);
	CHECK_INT(write(p[1], "x", 1), 1);
	ev_defer(loop, on_defer, &one);
	CHECK_INT(ev_loop_run(loop), 0);
	CHECK_INT(io_calls, 1);
	CHECK_INT(deferred, 1);
	ev_io_del(loop, &io);
	CHECK_INT(io.fd, -1);
	close(p[0]);
	close(p[1]);
	ev_loop_free(&loop);
}

static void on_wake(struct ev_loop *loop, void *arg)
{
	(*(int *)arg)++;
	ev_loop_stop(loop);
}

TEST(wakeup_from_outside_runs_callback)
{
	struct ev_loop *loop = ev_loop_new();
	int woke = 0;
	ev_set_wakeup(loop, on_wake, &woke);
	ev_wake(loop);
	ev_wake(loop);
	CHECK_INT(ev_loop_run(loop), 0);
	CHECK_INT(woke, 1);
	ev_loop_free(&loop);
}

/* Busy polling: a writer thread sends a byte every 300 us; the loop, napping
 * 100 us at a time for up to 2 ms, must see each without sleeping in
 * epoll_wait, and once the writer stops, nap at most 2 ms / 100 us times
 * before it sleeps until the timer that ends the test. */
struct writer {
	int fd, n;
	unsigned gap_us;
};

static void *write_bytes(void *arg)
{
	struct writer *wr = arg;
	for (int i = 0; i < wr->n; i++) {
		struct timespec ts = {0, (long)wr->gap_us * 1000};
		nanosleep(&ts, NULL);
		if (write(wr->fd, "x", 1) != 1)
			break;
	}
	return NULL;
}

static void on_byte(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	char c;
	(void)loop;
	(void)revents;
	while (read(io->fd, &c, 1) == 1)
		io_calls++;
}

static void stop_loop(struct ev_loop *loop, struct ev_timer *t)
{
	(void)t;
	ev_loop_stop(loop);
}

TEST(busy_poll_naps_while_busy_then_sleeps)
{
	struct ev_loop *loop = ev_loop_new();
	struct ev_io io = {.fd = -1};
	struct ev_timer end = {0};
	struct writer wr = {.n = 20, .gap_us = 300};
	pthread_t th;
	int p[2];
	uint64_t t0 = clock_mono_ms(), naps;

	CHECK_INT(pipe2(p, O_NONBLOCK), 0);
	io_calls = 0;
	CHECK_INT(ev_io_add(loop, &io, p[0], EV_READ, on_byte), 0);
	ev_set_busy_poll(loop, 100, 2000);
	wr.fd = p[1];
	ev_timer_at(loop, &end, ev_now(loop) + 300, stop_loop);
	CHECK_INT(pthread_create(&th, NULL, write_bytes, &wr), 0);
	CHECK_INT(ev_loop_run(loop), 0);
	pthread_join(th, NULL);
	naps = ev_naps(loop);
	CHECK_INT(io_calls, 20);
	CHECK(clock_mono_ms() - t0 >= 300);
	/* It napped while the bytes came; and a wait naps at most 21 times (20
	 * naps of 100 us in a 2 ms window, one cut short at its end) before it
	 * sleeps, with at most 22 waits (one per byte, one before the first, one
	 * after the last): far below the ~3,000 naps of 100 us that fit in the
	 * 300 ms the loop ran. */
	CHECK(naps >= 1);
	CHECK(naps <= 22 * 21);
	if (naps < 1 || naps > 22 * 21)
		printf("    naps: %llu\n", (unsigned long long)naps);
	ev_io_del(loop, &io);
	close(p[0]);
	close(p[1]);
	ev_loop_free(&loop);
}

static int ticks;

static void tick(struct ev_loop *loop, struct ev_timer *t)
{
	if (++ticks == 100)
		ev_loop_stop(loop);
	else
		ev_timer_at(loop, t, ev_now(loop) + 1, tick);
}

TEST(busy_poll_keeps_timers_and_thread_slack)
{
	struct ev_loop *loop = ev_loop_new();
	struct ev_io io = {.fd = -1};
	struct ev_timer end = {0};
	int p[2];
	uint64_t t0 = clock_mono_ms(), naps;

	/* A slack of our own, so that its coming back is seen (an earlier test
	 * may have left this thread's at 1 ns). */
	CHECK_INT(prctl(PR_SET_TIMERSLACK, 30000UL, 0, 0, 0), 0);

	CHECK_INT(pipe2(p, O_NONBLOCK), 0);
	io_calls = 0;
	CHECK_INT(ev_io_add(loop, &io, p[0], EV_READ, on_byte), 0);
	/* A byte starts the window; a window of a second does not hold back a
	 * timer due in 50 ms, and the loop naps (1 ms each) until it. */
	CHECK_INT(write(p[1], "x", 1), 1);
	ev_set_busy_poll(loop, 1000, 1000000);
	ev_timer_at(loop, &end, clock_mono_ms() + 50, stop_loop);
	CHECK_INT(ev_loop_run(loop), 0);
	CHECK_INT(io_calls, 1);
	CHECK(clock_mono_ms() - t0 < 500);
	CHECK(ev_naps(loop) >= 1);
	CHECK_INT(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), 1);
	/* Timers firing are not I/O: with a window of 5 ms and a timer every
	 * 1 ms for 100 ms, the loop naps (100 us each) only in the 5 ms after
	 * the byte (50 naps, and one cut short by each timer or the window's
	 * end: 57 at most), not after each timer (~800). */
	ev_set_busy_poll(loop, 100, 5000);
	CHECK_INT(write(p[1], "x", 1), 1);
	naps = ev_naps(loop);
	ticks = 0;
	ev_timer_at(loop, &end, ev_now(loop) + 1, tick);
	CHECK_INT(ev_loop_run(loop), 0);
	CHECK_INT(io_calls, 2);
	CHECK_INT(ticks, 100);
	CHECK(ev_naps(loop) - naps <= 5000 / 100 + 10);
	if (ev_naps(loop) - naps > 5000 / 100 + 10)
		printf("    naps: %llu\n", (unsigned long long)(ev_naps(loop) - naps));
	/* Off again: no more naps, and the thread's slack is given back. */
	ev_set_busy_poll(loop, 0, 0);
	CHECK_INT(write(p[1], "x", 1), 1);
	naps = ev_naps(loop);
	ev_timer_at(loop, &end, ev_now(loop) + 5, stop_loop);
	CHECK_INT(ev_loop_run(loop), 0);
	CHECK_INT(io_calls, 3);
	CHECK(ev_naps(loop) == naps);
	CHECK_INT(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), 30000);
	ev_io_del(loop, &io);
	close(p[0]);
	close(p[1]);
	ev_loop_free(&loop);
}

int main(void)
{
	RUN(timers_fire_in_deadline_order);
	RUN(timer_moved_later_lazily_fires_at_new_deadline);
	RUN(timer_moved_earlier_and_stopped);
	RUN(io_readiness_and_deferred_work);
	RUN(wakeup_from_outside_runs_callback);
	RUN(busy_poll_naps_while_busy_then_sleeps);
	RUN(busy_poll_keeps_timers_and_thread_slack);
	return unit_done();
}

#include <fcntl.h>
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

int main(void)
{
	RUN(timers_fire_in_deadline_order);
	RUN(timer_moved_later_lazily_fires_at_new_deadline);
	RUN(timer_moved_earlier_and_stopped);
	RUN(io_readiness_and_deferred_work);
	RUN(wakeup_from_outside_runs_callback);
	return unit_done();
}

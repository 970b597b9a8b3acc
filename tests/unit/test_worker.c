/* test_worker.c - what the main thread posts to a worker (worker_post). */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "conf/conf.h"
#include "dns/dns.h"
#include "ev/ev.h"
#include "proxy/worker.h"
#include "unit.h"

#define NL 64

/* Stands in for a worker's loop: leaves the first post alone (the worker is
 * busy) and takes the next the moment it is published, as the loop's
 * wakeup does with atomic_exchange(&w->post, NULL), then frees it. */
struct grab {
	struct worker *w;
	struct worker_post *first;
	atomic_bool ready;
	int missing; /* listening fds of the taken post the worker did not get */
};

static void *grabber(void *arg)
{
	struct grab *g = arg;
	struct worker_post *p;

	atomic_store(&g->ready, true);
	/* (NULL in between: the main thread took the first back to merge.) */
	while ((p = atomic_load(&g->w->post)) == g->first || p == NULL)
		;
	p = atomic_exchange(&g->w->post, NULL);
	if (p == NULL)
		return NULL;
	for (size_t i = 0; i < p->nfds; i++) {
		if (p->fds[i] < 0)
			g->missing++;
		else
			close(p->fds[i]);
	}
	conf_unref(&p->conf);
	free(p->fds);
	free(p);
	return NULL;
}

static struct conf *listening_on(int base, bool reversed)
{
	char text[NL * 40], err[256];
	size_t o = 0;
	struct conf *c = NULL;

	for (int i = 0; i < NL; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, "listen 127.0.0.1:%d\n",
				      base + (reversed ? NL - 1 - i : i));
	if (conf_load_string(text, o, "t.conf", &c, err, sizeof(err)) < 0)
		printf("    conf: %s\n", err);
	return c;
}

/* A post with a listening fd (a stand-in descriptor) for every address, or
 * with none: addresses the main thread had bound already. */
static struct worker_post *post_of(struct conf *c, bool with_fds)
{
	struct worker_post *p = calloc(1, sizeof(*p));
	p->conf = conf_ref(c);
	p->nfds = c->nlisten;
	p->fds = malloc(c->nlisten * sizeof(int));
	for (size_t i = 0; i < c->nlisten; i++)
		p->fds[i] = with_fds ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1;
	return p;
}

/* Reload 1 adds 64 addresses while the worker is busy; reload 2 keeps them
 * (so it binds nothing) and comes before the worker took reload 1. The
 * worker, taking reload 2 as soon as it shows, must get reload 1's fds in
 * it, and the main thread must not touch the post once the worker may have
 * freed it (ASan: heap-use-after-free). */
TEST(a_replaced_post_hands_its_fds_on_before_the_new_one_shows)
{
	char err[256];
	struct conf *c1 = listening_on(20000, false), *c2 = listening_on(20000, true);
	struct worker *w = worker_new(0, c1, err, sizeof(err));
	int missing = 0;

	CHECK(w != NULL);
	if (w == NULL)
		return;
	for (int round = 0; round < 20; round++) {
		struct grab g = {.w = w};
		pthread_t th;
		struct worker_post *p1 = post_of(c1, true), *p2 = post_of(c2, false);

		worker_post(w, p1);
		g.first = p1;
		pthread_create(&th, NULL, grabber, &g);
		while (!atomic_load(&g.ready))
			;
		worker_post(w, p2);
		pthread_join(th, NULL);
		missing += g.missing;
	}
	CHECK_INT(missing, 0);
	/* The thread was never started: take it apart by hand. */
	dns_free(&w->dns);
	ev_loop_free(&w->loop);
	pthread_mutex_destroy(&w->kick_mu);
	conf_unref(&w->conf);
	free(w);
	conf_unref(&c1);
	conf_unref(&c2);
}

int main(void)
{
	RUN(a_replaced_post_hands_its_fds_on_before_the_new_one_shows);
	return unit_done();
}

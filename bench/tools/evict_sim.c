/* evict_sim.c - hit ratio of the cache's eviction (S3-FIFO, src/cache/evict.c)
 * against plain LRU on a synthetic Zipf trace.
 *
 *   evict_sim [-n OBJECTS] [-r REQUESTS] [-a ALPHA] [-s SEED]
 *
 * The trace: REQUESTS draws from OBJECTS objects, popularity Zipf(ALPHA)
 * with the ranks shuffled over the ids; each object has a fixed size from a
 * log-normal-like spread (median ~8 KiB, 200 B to 1 MiB). Both policies see
 * the same trace at cache sizes of 1 %, 5 % and 10 % of the bytes of all
 * objects; a miss inserts the object (then evicts to fit). Prints one line
 * per policy and size: object hit ratio and byte hit ratio, and a final
 * EVRESULT line per size for scripts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/evict.h"

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double unit(void)
{
	return (double)(rng() >> 11) / 9007199254740992.0;
}

struct obj {
	struct s3f_node node; /* S3-FIFO */
	struct obj *lru_next, *lru_prev;
	uint64_t size;
	bool lru_in;
};

/* ---- plain LRU, the baseline ---- */

struct lru {
	struct obj head;
	uint64_t bytes, cap;
};

static void lru_unlink(struct obj *o)
{
	o->lru_prev->lru_next = o->lru_next;
	o->lru_next->lru_prev = o->lru_prev;
}

static void lru_front(struct lru *l, struct obj *o)
{
	o->lru_next = l->head.lru_next;
	o->lru_prev = &l->head;
	l->head.lru_next->lru_prev = o;
	l->head.lru_next = o;
}

static bool lru_get(struct lru *l, struct obj *o)
{
	if (o->lru_in) {
		lru_unlink(o);
		lru_front(l, o);
		return true;
	}
	o->lru_in = true;
	l->bytes += o->size;
	lru_front(l, o);
	while (l->bytes > l->cap) {
		struct obj *v = l->head.lru_prev;
		lru_unlink(v);
		v->lru_in = false;
		l->bytes -= v->size;
	}
	return false;
}

static bool s3f_get(struct s3f *q, struct obj *o, uint64_t id)
{
	if (o->node.where != S3F_NONE) {
		s3f_hit(&o->node);
		return true;
	}
	o->node.size = o->size;
	o->node.hash = id * 0x9e3779b97f4a7c15ULL + 1;
	s3f_insert(q, &o->node);
	while (s3f_evict(q) != NULL)
		;
	return false;
}

int main(int argc, char **argv)
{
	size_t nobj = 100000, nreq = 1000000;
	double alpha = 0.9;
	uint64_t seed = 1;
	int c;

	while ((c = getopt(argc, argv, "n:r:a:s:")) != -1) {
		switch (c) {
		case 'n': nobj = strtoul(optarg, NULL, 10); break;
		case 'r': nreq = strtoul(optarg, NULL, 10); break;
		case 'a': alpha = strtod(optarg, NULL); break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: evict_sim [-n OBJECTS] [-r REQUESTS] [-a ALPHA] [-s SEED]\n");
			return 2;
		}
	}
	if (nobj < 10 || nreq < 1) {
		fprintf(stderr, "evict_sim: need at least 10 objects and 1 request\n");
		return 2;
	}
	rng_state = seed;

	/* Sizes: exp of a normal(ln 8192, 1.2), by Box-Muller; clamped. */
	uint64_t *size = calloc(nobj, sizeof(*size)), total = 0;
	for (size_t i = 0; i < nobj; i++) {
		double u1 = unit(), u2 = unit();
		double z = sqrt(-2.0 * log(u1 > 0 ? u1 : 1e-12)) * cos(2 * M_PI * u2);
		double s = exp(log(8192.0) + 1.2 * z);
		size[i] = s < 200 ? 200 : s > 1048576 ? 1048576 : (uint64_t)s;
		total += size[i];
	}
	/* Zipf CDF over ranks; rank r is object perm[r]. */
	double *cdf = calloc(nobj, sizeof(*cdf)), sum = 0;
	size_t *perm = calloc(nobj, sizeof(*perm));
	for (size_t i = 0; i < nobj; i++) {
		sum += 1.0 / pow((double)(i + 1), alpha);
		cdf[i] = sum;
		perm[i] = i;
	}
	for (size_t i = nobj - 1; i > 0; i--) {
		size_t j = rng() % (i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	uint32_t *trace = calloc(nreq, sizeof(*trace));
	for (size_t i = 0; i < nreq; i++) {
		double x = unit() * sum;
		size_t lo = 0, hi = nobj - 1;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (cdf[mid] < x)
				lo = mid + 1;
			else
				hi = mid;
		}
		trace[i] = (uint32_t)perm[lo];
	}

	printf("trace: %zu requests over %zu objects, Zipf(%.2f), %.1f MiB of objects\n", nreq,
	       nobj, alpha, (double)total / 1048576);
	printf("%-8s %-8s %12s %12s\n", "size", "policy", "object hits", "byte hits");
	static const int pct[] = {1, 5, 10};
	for (size_t k = 0; k < sizeof(pct) / sizeof(pct[0]); k++) {
		uint64_t cap = total / 100 * (uint64_t)pct[k];
		double ratio[2][2];
		for (int pol = 0; pol < 2; pol++) {
			struct obj *o = calloc(nobj, sizeof(*o));
			struct lru l = {.cap = cap};
			struct s3f q;
			l.head.lru_next = l.head.lru_prev = &l.head;
			s3f_init(&q, cap, nobj);
			for (size_t i = 0; i < nobj; i++)
				o[i].size = size[i];
			uint64_t hits = 0, hit_bytes = 0, bytes = 0;
			for (size_t i = 0; i < nreq; i++) {
				struct obj *x = &o[trace[i]];
				bool hit = pol == 0 ? lru_get(&l, x) : s3f_get(&q, x, trace[i]);
				hits += hit;
				hit_bytes += hit ? x->size : 0;
				bytes += x->size;
			}
			ratio[pol][0] = (double)hits / (double)nreq;
			ratio[pol][1] = (double)hit_bytes / (double)bytes;
			char label[16] = "";
			if (pol == 0)
				snprintf(label, sizeof(label), "%d%%", pct[k]);
			printf("%-8s %-8s %11.2f%% %11.2f%%\n", label, pol ? "S3-FIFO" : "LRU",
			       100 * ratio[pol][0], 100 * ratio[pol][1]);
			s3f_fini(&q);
			free(o);
		}
		printf("EVRESULT size_pct=%d lru_hit=%.4f s3fifo_hit=%.4f lru_byte_hit=%.4f "
		       "s3fifo_byte_hit=%.4f\n",
		       pct[k], ratio[0][0], ratio[1][0], ratio[0][1], ratio[1][1]);
	}
	free(size);
	free(cdf);
	free(perm);
	free(trace);
	return 0;
}

/* test_evict.c - S3-FIFO eviction: capacity, promotion, the ghost, scans. */
#include <stdlib.h>

#include "cache/evict.h"
#include "unit.h"

#define N 1000

static struct s3f_node nodes[N];

static struct s3f_node *node(unsigned i, uint64_t size)
{
	struct s3f_node *n = &nodes[i];
	memset(n, 0, sizeof(*n));
	n->size = size;
	n->hash = 0x1000 + i;
	return n;
}

/* Insert, then evict to fit; returns how many were evicted. */
static unsigned put(struct s3f *q, struct s3f_node *n)
{
	unsigned k = 0;
	s3f_insert(q, n);
	struct s3f_node *v;
	while ((v = s3f_evict(q)) != NULL) {
		CHECK(v->where == S3F_NONE);
		k++;
	}
	return k;
}

TEST(bytes_never_exceed_capacity_and_victims_are_out)
{
	struct s3f q;
	s3f_init(&q, 10000, 64);
	for (unsigned i = 0; i < N; i++) {
		put(&q, node(i, 100 + (i * 37) % 900));
		CHECK(s3f_bytes(&q) <= 10000);
	}
	uint64_t sum = 0;
	for (unsigned i = 0; i < N; i++)
		if (nodes[i].where != S3F_NONE)
			sum += nodes[i].size;
	CHECK_INT(sum, s3f_bytes(&q));
	s3f_fini(&q);
}

TEST(new_entries_wait_in_small_and_a_hit_promotes_them)
{
	struct s3f q;
	s3f_init(&q, 1000, 64);
	put(&q, node(0, 50));
	CHECK_INT(nodes[0].where, S3F_SMALL);
	s3f_hit(&nodes[0]);
	/* Fill well past capacity with entries seen once. */
	for (unsigned i = 1; i < 100; i++)
		put(&q, node(i, 50));
	CHECK_INT(nodes[0].where, S3F_MAIN);
	/* Entries never hit left from small: most of the early ones are gone. */
	unsigned early = 0;
	for (unsigned i = 1; i < 50; i++)
		early += nodes[i].where != S3F_NONE;
	CHECK(early < 5);
	s3f_fini(&q);
}

TEST(an_entry_back_soon_after_eviction_goes_to_main)
{
	struct s3f q;
	s3f_init(&q, 1000, 64);
	for (unsigned i = 0; i < 40; i++)
		put(&q, node(i, 50));
	CHECK_INT(nodes[0].where, S3F_NONE); /* dropped from small, remembered */
	put(&q, node(0, 50));
	CHECK_INT(nodes[0].where, S3F_MAIN);
	/* One never seen before goes to small. */
	put(&q, node(500, 50));
	CHECK_INT(nodes[500].where, S3F_SMALL);
	s3f_fini(&q);
}

TEST(a_scan_does_not_push_out_the_hot_set)
{
	struct s3f q;
	s3f_init(&q, 20000, 4096);
	/* A hot set of 100 entries, hit a few times each. */
	for (int round = 0; round < 3; round++)
		for (unsigned i = 0; i < 100; i++) {
			if (nodes[i].where == S3F_NONE || round == 0)
				put(&q, node(i, 100));
			else
				s3f_hit(&nodes[i]);
		}
	for (unsigned i = 0; i < 100; i++)
		s3f_hit(&nodes[i]);
	/* A scan of 900 entries seen once, 4.5 times the capacity. */
	for (unsigned i = 100; i < N; i++)
		put(&q, node(i, 100));
	unsigned hot = 0;
	for (unsigned i = 0; i < 100; i++)
		hot += nodes[i].where != S3F_NONE;
	CHECK(hot >= 95);
	s3f_fini(&q);
}

TEST(remove_takes_the_entry_and_its_bytes_out)
{
	struct s3f q;
	s3f_init(&q, 1000, 64);
	put(&q, node(1, 300));
	put(&q, node(2, 300));
	s3f_remove(&q, &nodes[1]);
	CHECK_INT(nodes[1].where, S3F_NONE);
	CHECK_INT(s3f_bytes(&q), 300);
	s3f_remove(&q, &nodes[1]); /* twice is harmless */
	CHECK_INT(s3f_bytes(&q), 300);
	/* An entry bigger than everything evicts itself too. */
	put(&q, node(3, 5000));
	CHECK_INT(nodes[3].where, S3F_NONE);
	CHECK_INT(s3f_bytes(&q), 0);
	s3f_fini(&q);
}

int main(void)
{
	RUN(bytes_never_exceed_capacity_and_victims_are_out);
	RUN(new_entries_wait_in_small_and_a_hit_promotes_them);
	RUN(an_entry_back_soon_after_eviction_goes_to_main);
	RUN(a_scan_does_not_push_out_the_hot_set);
	RUN(remove_takes_the_entry_and_its_bytes_out);
	return unit_done();
}

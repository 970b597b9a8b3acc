#include "cache/evict.h"

#include <stdlib.h>
#include <string.h>

static void list_init(struct s3f_node *h)
{
	h->next = h->prev = h;
}

static void push_head(struct s3f_node *h, struct s3f_node *n)
{
	n->next = h->next;
	n->prev = h;
	h->next->prev = n;
	h->next = n;
}

static void unlink_node(struct s3f_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = NULL;
}

void s3f_init(struct s3f *q, uint64_t cap, size_t ghost_slots)
{
	size_t slots = 16;
	memset(q, 0, sizeof(*q));
	q->cap = cap;
	q->small_cap = cap / 1000 * S3F_SMALL_PERMILLE;
	list_init(&q->small);
	list_init(&q->main);
	while (slots < ghost_slots && slots < ((size_t)1 << 30))
		slots <<= 1;
	q->ghost = sl_calloc(slots, sizeof(*q->ghost));
	q->ghost_mask = slots - 1;
}

void s3f_fini(struct s3f *q)
{
	free(q->ghost);
	q->ghost = NULL;
}

/* Spread the hash's low bits (callers' hashes are good, but cheap insurance
 * against keys hashed with a weak function). */
static size_t slot_of(const struct s3f *q, uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t)h & q->ghost_mask;
}

static void ghost_add(struct s3f *q, uint64_t hash)
{
	struct ghost *g = &q->ghost[slot_of(q, hash)];
	g->hash = hash;
	g->seq = ++q->ghost_seq;
}

/* In the ghost (and then forgotten: it is coming back). */
static bool ghost_take(struct s3f *q, uint64_t hash)
{
	struct ghost *g = &q->ghost[slot_of(q, hash)];
	if (g->seq == 0 || g->hash != hash)
		return false;
	bool live = q->ghost_seq - g->seq <= (uint64_t)(q->small_count + q->main_count);
	g->seq = 0;
	return live;
}

void s3f_insert(struct s3f *q, struct s3f_node *n)
{
	SL_ASSERT(n->where == S3F_NONE);
	atomic_store_explicit(&n->freq, 0, memory_order_relaxed);
	if (ghost_take(q, n->hash)) {
		push_head(&q->main, n);
		n->where = S3F_MAIN;
		q->main_bytes += n->size;
		q->main_count++;
	} else {
		push_head(&q->small, n);
		n->where = S3F_SMALL;
		q->small_bytes += n->size;
		q->small_count++;
	}
}

void s3f_remove(struct s3f *q, struct s3f_node *n)
{
	if (n->where == S3F_SMALL) {
		q->small_bytes -= n->size;
		q->small_count--;
	} else if (n->where == S3F_MAIN) {
		q->main_bytes -= n->size;
		q->main_count--;
	} else {
		return;
	}
	unlink_node(n);
	n->where = S3F_NONE;
}

struct s3f_node *s3f_evict(struct s3f *q)
{
	while (s3f_bytes(q) > q->cap) {
		bool from_small = q->small.prev != &q->small &&
				  (q->small_bytes > q->small_cap || q->main.prev == &q->main);
		if (from_small) {
			struct s3f_node *t = q->small.prev;
			unlink_node(t);
			q->small_bytes -= t->size;
			q->small_count--;
			if (atomic_load_explicit(&t->freq, memory_order_relaxed) > 0) {
				/* Hit while new: promote, counting afresh. */
				atomic_store_explicit(&t->freq, 0, memory_order_relaxed);
				push_head(&q->main, t);
				t->where = S3F_MAIN;
				q->main_bytes += t->size;
				q->main_count++;
				continue;
			}
			ghost_add(q, t->hash);
			t->where = S3F_NONE;
			return t;
		}
		struct s3f_node *t = q->main.prev;
		SL_ASSERT(t != &q->main);
		unlink_node(t);
		uint8_t f = atomic_load_explicit(&t->freq, memory_order_relaxed);
		if (f > 0) {
			/* Still in use: around again, one count less. */
			atomic_store_explicit(&t->freq, (uint8_t)(f - 1), memory_order_relaxed);
			push_head(&q->main, t);
			continue;
		}
		q->main_bytes -= t->size;
		q->main_count--;
		t->where = S3F_NONE;
		return t;
	}
	return NULL;
}

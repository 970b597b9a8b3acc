/* evict.h - S3-FIFO eviction over entries of any size (Yang et al., "FIFO
 * queues are all you need for cache eviction", SOSP 2023).
 *
 * Three FIFO queues: "small" takes new entries and holds about a tenth of
 * the bytes; "main" takes entries that were hit while in small, or that
 * come back soon after small dropped them; the "ghost" remembers the key
 * hashes small dropped (not the entries). Most new entries are seen once
 * and leave from small quickly, so they never push out the popular ones.
 *
 * A hit only bumps a 2-bit counter on the entry with a relaxed atomic: the
 * hit path takes no lock and moves nothing, which is why this is used
 * rather than an LRU (whose every hit relinks a list under a lock). Queue
 * work happens on insert, eviction and removal, which the owner serialises
 * (one lock per cache shard). No I/O, no clock; nodes are the caller's,
 * embedded in its objects. */
#ifndef SLUICE_EVICT_H
#define SLUICE_EVICT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* Per mille of the capacity that the small queue may hold. */
#define S3F_SMALL_PERMILLE 100
/* Counter ceiling (2 bits). */
#define S3F_FREQ_MAX 3

enum s3f_where { S3F_NONE, S3F_SMALL, S3F_MAIN };

struct s3f_node {
	struct s3f_node *next, *prev;
	uint64_t size; /* bytes charged; set before s3f_insert, fixed after */
	uint64_t hash; /* the key's hash, for the ghost; set before s3f_insert */
	_Atomic uint8_t freq;
	uint8_t where; /* enum s3f_where */
};

struct s3f {
	uint64_t cap, small_cap;
	uint64_t small_bytes, main_bytes;
	size_t small_count, main_count;
	struct s3f_node small, main; /* list heads: next is the newest, prev the oldest */
	/* Ghost: a direct-mapped table of (hash, sequence number); an entry
	 * counts while fewer hashes were added after it than the queues hold
	 * entries (the paper sizes the ghost like main, in entries). A
	 * collision forgets the older hash, which only costs a second chance. */
	struct ghost {
		uint64_t hash, seq;
	} * ghost;
	size_t ghost_mask;
	uint64_t ghost_seq;
};

/* Set up for cap bytes, with a ghost of about ghost_slots hashes (rounded up
 * to a power of two; a few times the expected number of entries). */
void s3f_init(struct s3f *q, uint64_t cap, size_t ghost_slots);
void s3f_fini(struct s3f *q);

/* Bytes charged to entries in the queues. */
static inline uint64_t s3f_bytes(const struct s3f *q)
{
	return q->small_bytes + q->main_bytes;
}

/* Add a node (size and hash set, where == S3F_NONE). It goes to main if its
 * hash is in the ghost, else to small. The queues may now be over capacity:
 * call s3f_evict() until it returns NULL. */
void s3f_insert(struct s3f *q, struct s3f_node *n);

/* A hit: no lock needed. */
static inline void s3f_hit(struct s3f_node *n)
{
	uint8_t f = atomic_load_explicit(&n->freq, memory_order_relaxed);
	if (f < S3F_FREQ_MAX)
		atomic_store_explicit(&n->freq, (uint8_t)(f + 1), memory_order_relaxed);
}

/* While the queues hold more than cap bytes, take one victim out and return
 * it (where == S3F_NONE; the caller frees it); NULL when within capacity. */
struct s3f_node *s3f_evict(struct s3f *q) SL_WUR;

/* Take a node out (purge, invalidation, replacement). */
void s3f_remove(struct s3f *q, struct s3f_node *n);

#endif

/* mem.h - the memory store: complete cached responses, shared by all
 * workers.
 *
 * An object holds one stored response: its key, the secondary (Vary) key
 * it was stored under, its head, policy metadata and body. Objects are
 * refcounted and immutable once in the store; a reader holding a reference
 * may keep reading after the object was replaced, purged or evicted.
 *
 * Locking: the index is CACHE_SHARDS hash tables, each with its own mutex;
 * a lookup takes only its shard's mutex, briefly, and marks the hit with
 * one relaxed atomic (S3-FIFO, cache/evict.h). Everything that changes
 * what is stored (insert, purge, eviction) also takes the store's one
 * writer mutex, always before any shard mutex, so those serialise while
 * hits do not wait on them beyond a shard's critical section. */
#ifndef SLUICE_CACHE_MEM_H
#define SLUICE_CACHE_MEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/evict.h"
#include "cache/policy.h"
#include "http/h1.h"

#define CACHE_OBJ_MAGIC 0xcac4e0b1u

struct cache_chunk {
	struct cache_chunk *next;
	uint32_t len, cap;
	char data[];
};

struct cache_obj {
	unsigned magic;
	atomic_uint refs;
	struct s3f_node node;	 /* eviction queues */
	struct cache_obj *chain; /* next in its hash chain */
	bool linked;		 /* in the index (under the writer lock) */
	uint64_t hash;		 /* of the key */
	uint64_t charge;	 /* bytes charged: everything allocated for it */
	char *key, *vary;	 /* primary and secondary key (not NUL-terminated) */
	size_t key_len, vary_len;
	int status;
	char *head; /* the response head as stored, CRLF lines, final CRLF */
	size_t head_len;
	struct h1_header *hdrs; /* views into head */
	unsigned nhdrs;
	struct policy_meta meta;
	struct cache_chunk *body, *tail;
	uint64_t body_len;
	uint64_t body_hint; /* expected body length (Content-Length), 0 if unknown */
	bool complete;
};

/* Make an object for key/vary with a stored response head (parsed again
 * here: it must be a valid response head). body_hint: the body's length if
 * known (Content-Length), so chunks are sized to it; 0 if not. Returns NULL
 * if the head does not parse or a key is too long. The caller owns the one
 * reference. */
struct cache_obj *cache_obj_new(const char *key, size_t key_len, const char *vary, size_t vary_len,
				const char *head, size_t head_len, uint64_t body_hint,
				const struct policy_meta *meta) SL_WUR;
/* Append body bytes (before cache_obj_done()). */
void cache_obj_append(struct cache_obj *o, const void *p, size_t n);
/* The body is all there: the object may now be inserted. */
void cache_obj_done(struct cache_obj *o);
/* Another reference / drop one (freeing on the last; *op set to NULL). */
struct cache_obj *cache_obj_ref(struct cache_obj *o);
void cache_obj_put(struct cache_obj **op);

struct mem_store;

struct mem_store *mem_store_new(uint64_t cap);
void mem_store_free(struct mem_store **sp);

/* Insert a complete object (the store takes its own reference). A stored
 * object with the same key and secondary key is replaced; a key keeps at
 * most CACHE_MAX_VARIANTS variants (the oldest goes), so a Vary on a field
 * with endless values cannot make one chain long. Then objects are evicted
 * until the store is within its capacity. Returns false if the
 * object alone is larger than the store, or is not complete. */
bool mem_insert(struct mem_store *s, struct cache_obj *o);

/* The stored response for key that the request (its header lines) selects:
 * the one whose secondary key equals the request's under the stored
 * response's Vary (cache/policy.h), newest first. Returns a reference, or
 * NULL on a miss. */
struct cache_obj *mem_lookup(struct mem_store *s, const char *key, size_t key_len,
			     const struct h1_header *req, unsigned nreq) SL_WUR;

/* Remove every stored response for key (all variants). Returns how many. */
unsigned mem_purge(struct mem_store *s, const char *key, size_t key_len);

/* Responses being received to be stored are not in the store yet, but their
 * bodies take memory: a fill reserves its body's length first, and at most
 * a quarter of the capacity may be reserved at once. Returns false if this
 * one does not fit now. mem_release() gives the bytes back. */
bool mem_reserve(struct mem_store *s, uint64_t n) SL_WUR;
void mem_release(struct mem_store *s, uint64_t n);

/* Objects and bytes (charged) in the store. */
void mem_stats(struct mem_store *s, uint64_t *objects, uint64_t *bytes);

#endif

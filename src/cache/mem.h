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
	char *data; /* right after the struct, or the body's own mapping */
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
	bool varies; /* its head has a Vary field: the request's fields select it */
	char *head;  /* the response head as stored, CRLF lines, final CRLF */
	size_t head_len;
	struct h1_header *hdrs; /* views into head */
	unsigned nhdrs;
	struct policy_meta meta;
	struct cache_chunk *body, *tail;
	uint64_t body_len;
	uint64_t body_hint; /* expected body length (Content-Length), 0 if unknown */
	/* A large body of known length lives in a mapping of its own, the
	 * object's first chunk (CACHE_MAP_MIN); false for a body in heap
	 * chunks. The mapping is anonymous, or of the memfd body_fd (-1 if
	 * none), which hits may send with sendfile(). */
	bool body_mapped;
	int body_fd;
	/* The body is another object's (cache_obj_share_body), which this
	 * one holds a reference to; NULL for a body of its own. */
	struct cache_obj *body_of;
	uint64_t body_charge; /* of charge, what the body's chunks take */
	bool complete;
	/* For readers on other threads while it is filled (request
	 * collapsing): body bytes that may be read (release-stored after
	 * they are written), and how it ended. A chunk with a successor is
	 * full (len == cap), so such a reader walks chunks by cap and stops
	 * at published. */
	_Atomic uint64_t published;
	atomic_bool ended, failed;
	/* A background refresh of this (stale-while-revalidate) is running:
	 * one at a time. */
	atomic_bool refreshing;
	/* Room reserved for it as a fill, held until it is freed
	 * (cache_obj_hold): from mem_reserve() and mem_reserve_transient(). */
	struct mem_store *held_in;
	uint64_t held, held_transient;
};

/* Make an object for key/vary with a stored response head (parsed again
 * here: it must be a valid response head). body_hint: the body's length if
 * known (Content-Length), so chunks are sized to it; 0 if not. Returns NULL
 * if the head does not parse or a key is too long. The caller owns the one
 * reference. */
struct cache_obj *cache_obj_new(const char *key, size_t key_len, const char *vary, size_t vary_len,
				const char *head, size_t head_len, uint64_t body_hint,
				const struct policy_meta *meta) SL_WUR;
/* Keep o's body in a memfd rather than an anonymous mapping, so that hits
 * can send it by sendfile() (o->body_fd). Only for a body that has a mapping
 * of its own (CACHE_MAP_MIN and up), before its first byte is appended; best
 * effort: past the memfd budget (CACHE_MEMFD_MAX, RLIMIT_NOFILE / 8) or if a
 * call fails, o keeps its anonymous mapping. */
void cache_obj_want_fd(struct cache_obj *o);
/* Append body bytes (before cache_obj_done()). */
void cache_obj_append(struct cache_obj *o, const void *p, size_t n);
/* Give o (new, no body yet) from's complete body, without a copy: o
 * holds a reference to the object that owns it (a 304 refreshes a stored
 * response's head, not its body). Then cache_obj_done(o). */
void cache_obj_share_body(struct cache_obj *o, struct cache_obj *from);
/* The body is all there: the object may now be inserted. */
void cache_obj_done(struct cache_obj *o);
/* The body will never be whole (the origin failed mid-body): readers that
 * stream it while it fills must abort. */
void cache_obj_fail(struct cache_obj *o);
/* Whether o is the variant the request (its header lines) selects: its
 * secondary key under o's Vary equals the one o was stored under. */
bool cache_obj_selected(const struct cache_obj *o, const struct h1_header *req, unsigned nreq);
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

/* Invalidation generations. mem_gen() reads key's before its response is
 * sought; mem_insert_gen() then stores the response only if no purge of
 * the key (mem_purge: PURGE, an unsafe method's invalidation) came since,
 * for what it got may be older than what the purge made way for. Keys
 * share CACHE_GEN_SLOTS counters by hash: a purge of one may keep another
 * fetched meanwhile from being stored, never the other way. mem_insert()
 * checks nothing. */
uint32_t mem_gen(struct mem_store *s, const char *key, size_t key_len);
bool mem_insert_gen(struct mem_store *s, struct cache_obj *o, uint32_t gen);
/* The same for a copy read back from a lower tier (the disk): stored only
 * if this store holds no object of its key and secondary key, which would
 * be as new or newer (a response reaches the disk through this store), for
 * one may have come while the copy was being read. */
bool mem_insert_cold(struct mem_store *s, struct cache_obj *o, uint32_t gen);
/* Bump key's generation without purging (mem_purge bumps it too): before
 * another tier drops the key, so that nothing read from that tier in the
 * meantime is stored in this one. */
void mem_gen_bump(struct mem_store *s, const char *key, size_t key_len);

/* The stored response for key that the request (its header lines) selects:
 * the one whose secondary key equals the request's under the stored
 * response's Vary (cache/policy.h), newest first. Returns a reference, or
 * NULL on a miss. */
struct cache_obj *mem_lookup(struct mem_store *s, const char *key, size_t key_len,
			     const struct h1_header *req, unsigned nreq) SL_WUR;

/* The lookup of a request whose fields are dear to get (a hit's fast
 * path): the newest stored response for key if it has no Vary, so that it
 * is what mem_lookup() gives any request; NULL otherwise, with *varied
 * set if the key has a response with a Vary (then mem_lookup() with the
 * request's fields tells). */
struct cache_obj *mem_lookup_unvaried(struct mem_store *s, const char *key, size_t key_len,
				      bool *varied) SL_WUR;

/* Whether any response for key is stored, whichever variant (after a
 * miss: Cache-Status fwd=vary-miss rather than uri-miss). */
bool mem_has_key(struct mem_store *s, const char *key, size_t key_len);

/* Remove every stored response for key (all variants). Returns how many.
 * A fetch in flight for key is marked, so that it is not stored. */
unsigned mem_purge(struct mem_store *s, const char *key, size_t key_len);

/* Responses being received to be stored are not in the store yet, but their
 * bodies take memory: a fill reserves its body's length first, and at most
 * a quarter of the capacity may be reserved at once. Returns false if this
 * one does not fit now. mem_release() gives the bytes back. */
bool mem_reserve(struct mem_store *s, uint64_t n) SL_WUR;
void mem_release(struct mem_store *s, uint64_t n);

/* A response too large to store may still be fetched to its end for the
 * requests streaming it (transient): what it grows past cache_max_object
 * comes from a budget of its own, an eighth of the capacity, so that it
 * never takes the room of fills that will be stored. */
bool mem_reserve_transient(struct mem_store *s, uint64_t n) SL_WUR;
void mem_release_transient(struct mem_store *s, uint64_t n);
/* A fill that is not stored (too large, failed, dropped) gives its room
 * back only when its last reader lets go of it: n bytes of mem_reserve()'s
 * and nt of mem_reserve_transient()'s, once per object. */
void cache_obj_hold(struct cache_obj *o, struct mem_store *s, uint64_t n, uint64_t nt);

/* Request collapsing: concurrent misses for one key make one origin
 * request per variant. The first becomes the leader of a pending fetch;
 * later ones join it as waiters and are kicked (from whatever thread the
 * leader runs on) whenever it changes. A waiter reads the pending's state
 * with mem_pend_state(), under the pending's own lock only. */
struct cache_waiter {
	/* Called with the pending's lock held, from any thread: must only
	 * queue a wakeup for the waiter's own thread. */
	void (*kick)(struct cache_waiter *w);
	struct cache_waiter *pnext; /* in the pending's list */
	/* For the owner's wakeup queue (not used by the store). */
	struct cache_waiter *qnext, *qprev;
	bool queued;
};

enum pend_state {
	PEND_WAIT,     /* the leader has no response head yet */
	PEND_STREAM,   /* stored as it arrives, with a known length: stream it */
	PEND_FILLING,  /* stored as it arrives, length unknown: stream it chunked */
	PEND_DONE,     /* the object is whole */
	PEND_RELEASED, /* not stored (uncacheable, failed): go to the origin */
};

struct cache_pend;

/* Join a fetch in flight for key that the request (its header lines) may
 * use, or start one: *leader says which. A fetch may be used while its
 * response head has not come, and then if the request selects the variant
 * it is (its Vary); so a waiter whose fetch turned out to be another
 * variant joins again, and the first of each variant leads a fetch of its
 * own. Returns a reference, or NULL when too many fetches are pending, in
 * all or for key (CACHE_MAX_VARIANTS); a fetch invalidated since it began
 * is never joined. */
struct cache_pend *mem_pend_join(struct mem_store *s, const char *key, size_t key_len,
				 const struct h1_header *req, unsigned nreq, struct cache_waiter *w,
				 bool *leader) SL_WUR;
/* Leader: the response head came; o is the object being filled, or NULL
 * when it will not be stored. */
void mem_pend_head(struct cache_pend *p, struct cache_obj *o);
/* Leader: more body bytes are published. */
void mem_pend_progress(struct cache_pend *p);
/* Leader: the fetch ended (stored or not); the pending leaves the table,
 * and waiters that did not get an object are released. Returns false if
 * the key was invalidated (PURGE, unsafe method) while it was in flight;
 * a leader that read mem_gen() before it joined is told the same by
 * mem_insert_gen(), and stores first, then ends. Drops the reference. */
bool mem_pend_end(struct mem_store *s, struct cache_pend **pp);
/* The state, and (PEND_STREAM, PEND_FILLING, PEND_DONE) the object, a new
 * reference. */
enum pend_state mem_pend_state(struct cache_pend *p, struct cache_obj **o);
/* Whether any request is waiting on the fetch. */
bool mem_pend_waited(struct cache_pend *p);
/* Leader, about to give up a fetch it has begun to answer: true if no
 * request waits on it, and then none can join it from now on (they go to
 * the origin themselves), so that none is cut off by its end; false if
 * some do wait (it is to go on for them). */
bool mem_pend_seal(struct mem_store *s, struct cache_pend *p);
/* Waiter: leave (no kick after this returns). Drops the reference. */
void mem_pend_leave(struct cache_pend **pp, struct cache_waiter *w);

/* Objects and bytes (charged) in the store. */
void mem_stats(struct mem_store *s, uint64_t *objects, uint64_t *bytes);

#endif

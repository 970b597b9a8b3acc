#include "cache/mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/base.h"
#include "buf/limits.h"
#include "cache/key.h"

struct shard {
	pthread_mutex_t mu;
	struct cache_obj *bucket[CACHE_BUCKETS_PER_SHARD];
};

/* A fetch in flight (request collapsing). */
struct cache_pend {
	atomic_uint refs;
	pthread_mutex_t mu; /* state, obj, waiters */
	enum pend_state state;
	struct cache_obj *obj;
	struct cache_waiter *waiters;
	/* Started while another fetch of the key had its head: that head's
	 * Vary, and the leader's secondary key under it, the variant this
	 * one is expected to be (NULL if not known). */
	char *pvary, *pvk;
	size_t pvary_len, pvk_len;
	bool lone;		 /* its variant cannot be told: joined by none */
	bool invalidated;	 /* under the store's pend_mu */
	bool sealed;		 /* joined by none (mem_pend_seal), under both */
	struct cache_pend *next; /* in the table, under the store's pend_mu */
	uint64_t hash;
	size_t key_len;
	char key[];
};

#define PEND_BUCKETS 1024
#define PEND_MAX     65536

struct mem_store {
	pthread_mutex_t pend_mu; /* the pending table; taken before a pending's or a shard's */
	struct cache_pend *pend[PEND_BUCKETS];
	unsigned npend;
	pthread_mutex_t writer;	    /* insert, purge, evict; taken before any shard */
	struct s3f q;		    /* under writer */
	uint64_t objects;	    /* under writer */
	_Atomic uint64_t reserved;  /* bodies being received for storing */
	_Atomic uint64_t transient; /* bodies fetched for their readers only */
	struct shard shard[CACHE_SHARDS];
	/* Purges so far, by key hash (mem_gen): mem_purge bumps under writer,
	 * mem_gen_bump (ahead of a disk purge) without it. */
	_Atomic uint32_t gen[CACHE_GEN_SLOTS];
};

/* ---- objects ---- */

/* Open memfds (bodies kept for sendfile), against their budget. */
static atomic_uint memfds;

static unsigned memfd_budget(void)
{
	static atomic_uint budget; /* 0: not read yet */
	unsigned b = atomic_load_explicit(&budget, memory_order_relaxed);
	if (b == 0) {
		struct rlimit rl;
		uint64_t n = CACHE_MEMFD_MAX;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
			n = SL_MIN(n, (uint64_t)rl.rlim_cur / 8);
		b = (unsigned)SL_MAX(n, (uint64_t)1);
		atomic_store_explicit(&budget, b, memory_order_relaxed);
	}
	return b;
}

void cache_obj_want_fd(struct cache_obj *o)
{
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	if (!o->body_mapped || o->body_fd >= 0 || o->body->len > 0)
		return;
	if (atomic_fetch_add(&memfds, 1) >= memfd_budget()) {
		atomic_fetch_sub(&memfds, 1);
		return;
	}
	struct cache_chunk *c = o->body;
	int fd = memfd_create("sluice-body", MFD_CLOEXEC);
	void *map = MAP_FAILED;
	if (fd >= 0 && ftruncate(fd, (off_t)c->cap) == 0)
		map = mmap(NULL, c->cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		if (fd >= 0)
			close(fd);
		atomic_fetch_sub(&memfds, 1);
		return;
	}
	munmap(c->data, c->cap); /* untouched: no byte is in it yet */
	c->data = map;
	o->body_fd = fd;
}

/* Give o's body a mapping of its own of body_hint bytes, as its first
 * chunk. A failed mmap (no memory) leaves the heap chunks. */
static void body_map(struct cache_obj *o)
{
	void *map = mmap(NULL, (size_t)o->body_hint, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return;
	struct cache_chunk *c = sl_calloc(1, sizeof(*c));
	c->data = map;
	c->cap = (uint32_t)o->body_hint;
	o->body = o->tail = c;
	o->body_mapped = true;
	o->charge += sizeof(*c) + c->cap;
	o->body_charge += sizeof(*c) + c->cap;
}

struct cache_obj *cache_obj_new(const char *key, size_t key_len, const char *vary, size_t vary_len,
				const char *head, size_t head_len, uint64_t body_hint,
				const struct policy_meta *meta)
{
	static const struct h1_limits lim = {.max_head = MAX_RESPONSE_HEAD,
					     .max_line = MAX_RESPONSE_HEAD,
					     .max_headers = MAX_HEADERS_CEIL};
	struct h1_header tmp[MAX_HEADERS_CEIL];
	struct h1_response resp;
	struct h1_error err;

	if (key_len == 0 || key_len > CACHE_KEY_MAX || vary_len > CACHE_VARY_KEY_MAX)
		return NULL;
	struct cache_obj *o = sl_calloc(1, sizeof(*o));
	o->magic = CACHE_OBJ_MAGIC;
	atomic_init(&o->refs, 1);
	o->head = sl_malloc(head_len ? head_len : 1);
	memcpy(o->head, head, head_len);
	o->head_len = head_len;
	/* The views must point into our copy, so parse the copy. */
	if (h1_parse_response(o->head, head_len, &lim, &resp, tmp, MAX_HEADERS_CEIL, &err) !=
		    H1_OK ||
	    resp.head_len != head_len) {
		free(o->head);
		free(o);
		return NULL;
	}
	o->status = resp.status;
	o->varies = h1_find(resp.headers, resp.nheaders, "Vary") != NULL;
	o->nhdrs = resp.nheaders;
	o->hdrs = sl_malloc((o->nhdrs ? o->nhdrs : 1) * sizeof(*o->hdrs));
	memcpy(o->hdrs, tmp, o->nhdrs * sizeof(*o->hdrs));
	o->key = sl_malloc(key_len);
	memcpy(o->key, key, key_len);
	o->key_len = key_len;
	o->vary = sl_malloc(vary_len ? vary_len : 1);
	memcpy(o->vary, vary, vary_len);
	o->vary_len = vary_len;
	o->hash = cache_key_hash(key, key_len);
	o->meta = *meta;
	o->body_hint = body_hint;
	o->charge = sizeof(*o) + head_len + o->nhdrs * sizeof(*o->hdrs) + key_len + vary_len;
	o->body_fd = -1;
	if (body_hint >= CACHE_MAP_MIN && body_hint <= CACHE_MAX_OBJECT_CEIL)
		body_map(o);
	return o;
}

void cache_obj_append(struct cache_obj *o, const void *p, size_t n)
{
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	SL_ASSERT(!o->complete);
	const char *src = p;
	while (n > 0) {
		struct cache_chunk *c = o->tail;
		if (c == NULL || c->len == c->cap) {
			/* Sized to what is still expected when the length is
			 * known, else to at least a page; never over CACHE_CHUNK.
			 * Small bodies cost little, large ones few chunks. */
			uint64_t want = n;
			if (o->body_hint > o->body_len)
				want = SL_MAX(want, o->body_hint - o->body_len);
			else
				want = SL_MAX(want, (uint64_t)4096);
			uint32_t cap = (uint32_t)SL_MIN(want, (uint64_t)CACHE_CHUNK);
			c = sl_malloc(sizeof(*c) + cap);
			c->data = (char *)(c + 1);
			c->next = NULL;
			c->len = 0;
			c->cap = cap;
			if (o->tail)
				o->tail->next = c;
			else
				o->body = c;
			o->tail = c;
			o->charge += sizeof(*c) + cap;
			o->body_charge += sizeof(*c) + cap;
		}
		size_t k = SL_MIN(n, (size_t)(c->cap - c->len));
		memcpy(c->data + c->len, src, k);
		c->len += (uint32_t)k;
		o->body_len += k;
		src += k;
		n -= k;
	}
	atomic_store_explicit(&o->published, o->body_len, memory_order_release);
}

void cache_obj_share_body(struct cache_obj *o, struct cache_obj *from)
{
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	SL_ASSERT(o->body == NULL && o->body_len == 0 && !o->complete && from->complete);
	struct cache_obj *owner = from->body_of ? from->body_of : from;
	o->body_of = cache_obj_ref(owner);
	o->body = owner->body;
	o->tail = owner->tail;
	o->body_len = owner->body_len;
	o->body_hint = owner->body_len;
	o->body_mapped = owner->body_mapped;
	o->body_fd = owner->body_fd;
	/* Charged to each object that keeps it alive: an overcount while two
	 * are stored, never an undercount once the first is gone. */
	o->body_charge = owner->body_charge;
	o->charge += owner->body_charge;
	atomic_store_explicit(&o->published, o->body_len, memory_order_release);
}

void cache_obj_done(struct cache_obj *o)
{
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	o->complete = true;
	atomic_store_explicit(&o->ended, true, memory_order_release);
}

void cache_obj_fail(struct cache_obj *o)
{
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	atomic_store_explicit(&o->failed, true, memory_order_relaxed);
	atomic_store_explicit(&o->ended, true, memory_order_release);
}

struct cache_obj *cache_obj_ref(struct cache_obj *o)
{
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
	return o;
}

void cache_obj_put(struct cache_obj **op)
{
	struct cache_obj *o = *op;
	if (o == NULL)
		return;
	*op = NULL;
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1)
		return;
	SL_ASSERT(!o->linked);
	if (o->body_of) {
		cache_obj_put(&o->body_of); /* the body is its */
	} else {
		for (struct cache_chunk *c = o->body, *n; c; c = n) {
			n = c->next;
			if (o->body_mapped && c == o->body)
				munmap(c->data, c->cap);
			free(c);
		}
		if (o->body_fd >= 0) {
			close(o->body_fd);
			atomic_fetch_sub(&memfds, 1);
		}
	}
	if (o->held_in) {
		mem_release(o->held_in, o->held);
		mem_release_transient(o->held_in, o->held_transient);
	}
	free(o->hdrs);
	free(o->head);
	free(o->key);
	free(o->vary);
	o->magic = 0;
	free(o);
}

/* ---- the store ---- */

struct mem_store *mem_store_new(uint64_t cap)
{
	struct mem_store *s = sl_calloc(1, sizeof(*s));
	pthread_mutex_init(&s->writer, NULL);
	pthread_mutex_init(&s->pend_mu, NULL);
	/* A ghost of a few times the entries a store of small objects holds. */
	s3f_init(&s->q, cap, (size_t)SL_MIN(cap / 1024 + 1024, (uint64_t)1 << 24));
	for (unsigned i = 0; i < CACHE_SHARDS; i++)
		pthread_mutex_init(&s->shard[i].mu, NULL);
	return s;
}

static struct shard *shard_of(struct mem_store *s, uint64_t h, struct cache_obj ***head)
{
	struct shard *sh = &s->shard[h % CACHE_SHARDS];
	*head = &sh->bucket[(h / CACHE_SHARDS) % CACHE_BUCKETS_PER_SHARD];
	return sh;
}

static bool same_key(const struct cache_obj *o, uint64_t h, const char *key, size_t len)
{
	return o->hash == h && o->key_len == len && memcmp(o->key, key, len) == 0;
}

/* Take o out of the index and the queues and drop the index's reference.
 * Under the writer lock. */
static void unlink_obj(struct mem_store *s, struct cache_obj *o)
{
	struct cache_obj **head;
	struct shard *sh = shard_of(s, o->hash, &head);

	pthread_mutex_lock(&sh->mu);
	for (struct cache_obj **pp = head; *pp; pp = &(*pp)->chain) {
		if (*pp == o) {
			*pp = o->chain;
			break;
		}
	}
	o->chain = NULL;
	o->linked = false;
	pthread_mutex_unlock(&sh->mu);
	s3f_remove(&s->q, &o->node);
	s->objects--;
	cache_obj_put(&o);
}

void mem_store_free(struct mem_store **sp)
{
	struct mem_store *s = *sp;
	if (s == NULL)
		return;
	*sp = NULL;
	pthread_mutex_lock(&s->writer);
	for (unsigned i = 0; i < CACHE_SHARDS; i++)
		for (unsigned b = 0; b < CACHE_BUCKETS_PER_SHARD; b++)
			while (s->shard[i].bucket[b])
				unlink_obj(s, s->shard[i].bucket[b]);
	pthread_mutex_unlock(&s->writer);
	for (unsigned i = 0; i < CACHE_SHARDS; i++)
		pthread_mutex_destroy(&s->shard[i].mu);
	pthread_mutex_destroy(&s->writer);
	pthread_mutex_destroy(&s->pend_mu);
	SL_ASSERT(s->npend == 0); /* every transaction ended first */
	/* ... and gave back all the room its fill reserved, or its object did */
	SL_ASSERT(atomic_load(&s->reserved) == 0 && atomic_load(&s->transient) == 0);
	s3f_fini(&s->q);
	free(s);
}

static _Atomic uint32_t *gen_slot(struct mem_store *s, uint64_t h)
{
	return &s->gen[h % CACHE_GEN_SLOTS];
}

uint32_t mem_gen(struct mem_store *s, const char *key, size_t key_len)
{
	return atomic_load_explicit(gen_slot(s, cache_key_hash(key, key_len)),
				    memory_order_acquire);
}

void mem_gen_bump(struct mem_store *s, const char *key, size_t key_len)
{
	atomic_fetch_add_explicit(gen_slot(s, cache_key_hash(key, key_len)), 1,
				  memory_order_release);
}

bool mem_insert(struct mem_store *s, struct cache_obj *o)
{
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	return mem_insert_gen(s, o, mem_gen(s, o->key, o->key_len));
}

static bool insert(struct mem_store *s, struct cache_obj *o, uint32_t gen, bool cold);

bool mem_insert_gen(struct mem_store *s, struct cache_obj *o, uint32_t gen)
{
	return insert(s, o, gen, false);
}

bool mem_insert_cold(struct mem_store *s, struct cache_obj *o, uint32_t gen)
{
	return insert(s, o, gen, true);
}

static bool insert(struct mem_store *s, struct cache_obj *o, uint32_t gen, bool cold)
{
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	if (!o->complete || o->linked || o->charge > s->q.cap)
		return false;
	struct cache_obj **head;
	struct shard *sh = shard_of(s, o->hash, &head);

	pthread_mutex_lock(&s->writer);
	if (atomic_load_explicit(gen_slot(s, o->hash), memory_order_relaxed) != gen) {
		pthread_mutex_unlock(&s->writer); /* purged since: it may be older */
		return false;
	}
	/* The variant this one replaces, if any, or the oldest variant when
	 * the key has its fill of them (the chain is newest first). */
	struct cache_obj *old = NULL, *oldest = NULL;
	unsigned variants = 0;
	pthread_mutex_lock(&sh->mu);
	for (struct cache_obj *c = *head; c; c = c->chain) {
		if (!same_key(c, o->hash, o->key, o->key_len))
			continue;
		variants++;
		oldest = c;
		if (c->vary_len == o->vary_len && memcmp(c->vary, o->vary, o->vary_len) == 0)
			old = c;
	}
	pthread_mutex_unlock(&sh->mu);
	if (old && cold) {
		pthread_mutex_unlock(&s->writer); /* what it holds is as new */
		return false;
	}
	if (old)
		unlink_obj(s, old);
	else if (variants >= CACHE_MAX_VARIANTS)
		unlink_obj(s, oldest);

	cache_obj_ref(o);
	o->node.size = o->charge;
	o->node.hash = o->hash;
	pthread_mutex_lock(&sh->mu);
	o->chain = *head;
	*head = o;
	o->linked = true;
	pthread_mutex_unlock(&sh->mu);
	s3f_insert(&s->q, &o->node);
	s->objects++;
	struct s3f_node *v;
	while ((v = s3f_evict(&s->q)) != NULL) {
		/* Already out of the queues; out of the index now. */
		unlink_obj(s, SL_CONTAINER_OF(v, struct cache_obj, node));
	}
	pthread_mutex_unlock(&s->writer);
	return true;
}

bool cache_obj_selected(const struct cache_obj *o, const struct h1_header *req, unsigned nreq)
{
	char vk[CACHE_VARY_KEY_MAX];
	long n = policy_vary_key(o->hdrs, o->nhdrs, req, nreq, vk, sizeof(vk));
	return n >= 0 && (size_t)n == o->vary_len && memcmp(vk, o->vary, (size_t)n) == 0;
}

struct cache_obj *mem_lookup(struct mem_store *s, const char *key, size_t key_len,
			     const struct h1_header *req, unsigned nreq)
{
	uint64_t h = cache_key_hash(key, key_len);
	struct cache_obj **head, *found = NULL;
	struct shard *sh = shard_of(s, h, &head);

	pthread_mutex_lock(&sh->mu);
	for (struct cache_obj *c = *head; c && !found; c = c->chain) {
		if (!same_key(c, h, key, key_len))
			continue;
		if (cache_obj_selected(c, req, nreq))
			found = cache_obj_ref(c);
	}
	pthread_mutex_unlock(&sh->mu);
	if (found)
		s3f_hit(&found->node);
	return found;
}

struct cache_obj *mem_lookup_unvaried(struct mem_store *s, const char *key, size_t key_len,
				      bool *varied)
{
	uint64_t h = cache_key_hash(key, key_len);
	struct cache_obj **head, *c, *found = NULL;
	struct shard *sh = shard_of(s, h, &head);

	*varied = false;
	pthread_mutex_lock(&sh->mu);
	for (c = *head; c && !same_key(c, h, key, key_len); c = c->chain)
		;
	/* The first of the key is what mem_lookup() would weigh first. */
	if (c && !c->varies)
		found = cache_obj_ref(c);
	else if (c)
		*varied = true;
	pthread_mutex_unlock(&sh->mu);
	if (found)
		s3f_hit(&found->node);
	return found;
}

bool mem_has_key(struct mem_store *s, const char *key, size_t key_len)
{
	uint64_t h = cache_key_hash(key, key_len);
	struct cache_obj **head;
	struct shard *sh = shard_of(s, h, &head);
	bool found = false;

	pthread_mutex_lock(&sh->mu);
	for (struct cache_obj *c = *head; c && !found; c = c->chain)
		found = same_key(c, h, key, key_len);
	pthread_mutex_unlock(&sh->mu);
	return found;
}

static void pend_invalidate(struct mem_store *s, uint64_t h, const char *key, size_t len);

unsigned mem_purge(struct mem_store *s, const char *key, size_t key_len)
{
	uint64_t h = cache_key_hash(key, key_len);
	struct cache_obj **head;
	struct shard *sh = shard_of(s, h, &head);
	unsigned n = 0;

	pend_invalidate(s, h, key, key_len);
	pthread_mutex_lock(&s->writer);
	atomic_fetch_add_explicit(gen_slot(s, h), 1, memory_order_release);
	for (;;) {
		struct cache_obj *victim = NULL;
		pthread_mutex_lock(&sh->mu);
		for (struct cache_obj *c = *head; c && !victim; c = c->chain)
			if (same_key(c, h, key, key_len))
				victim = c;
		pthread_mutex_unlock(&sh->mu);
		if (victim == NULL)
			break;
		unlink_obj(s, victim);
		n++;
	}
	pthread_mutex_unlock(&s->writer);
	return n;
}

static bool reserve_in(_Atomic uint64_t *pool, uint64_t n, uint64_t limit)
{
	uint64_t cur = atomic_load_explicit(pool, memory_order_relaxed);
	do {
		if (cur + n > limit)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(pool, &cur, cur + n, memory_order_relaxed,
							memory_order_relaxed));
	return true;
}

bool mem_reserve(struct mem_store *s, uint64_t n)
{
	return reserve_in(&s->reserved, n, s->q.cap / 4);
}

bool mem_reserve_transient(struct mem_store *s, uint64_t n)
{
	return reserve_in(&s->transient, n, s->q.cap / 8);
}

void mem_release_transient(struct mem_store *s, uint64_t n)
{
	if (s && n) {
		uint64_t was = atomic_fetch_sub_explicit(&s->transient, n, memory_order_relaxed);
		SL_ASSERT(was >= n); /* given back once */
	}
}

void cache_obj_hold(struct cache_obj *o, struct mem_store *s, uint64_t n, uint64_t nt)
{
	SL_ASSERT(o->held_in == NULL);
	o->held_in = s;
	o->held = n;
	o->held_transient = nt;
}

void mem_release(struct mem_store *s, uint64_t n)
{
	if (s && n) {
		uint64_t was = atomic_fetch_sub_explicit(&s->reserved, n, memory_order_relaxed);
		SL_ASSERT(was >= n); /* given back once */
	}
}

void mem_stats(struct mem_store *s, uint64_t *objects, uint64_t *bytes)
{
	pthread_mutex_lock(&s->writer);
	*objects = s->objects;
	*bytes = s3f_bytes(&s->q);
	pthread_mutex_unlock(&s->writer);
}

/* ---- fetches in flight ---- */

/* The secondary key of a request (its header lines) under a Vary value. */
static long vary_key_under(const char *vary, size_t vary_len, const struct h1_header *req,
			   unsigned nreq, char *vk, size_t cap)
{
	struct h1_header h = {.name = SV_LIT("Vary"), .value = {.p = vary, .len = vary_len}};
	return policy_vary_key(&h, 1, req, nreq, vk, cap);
}

/* How well a request (its header lines) fits fetch p of its key, under p's
 * lock: 0 not at all, 3 its head is the variant the request selects, 2 it
 * has no head yet and is expected to be that variant, 1 it has no head
 * and its variant is anyone's guess (nothing was known of the key's Vary
 * when it began). */
static int pend_fit(const struct cache_pend *p, const struct h1_header *req, unsigned nreq)
{
	char vk[CACHE_VARY_KEY_MAX];
	if (p->lone || p->sealed)
		return 0;
	if (p->state != PEND_WAIT && p->obj)
		return cache_obj_selected(p->obj, req, nreq) ? 3 : 0;
	if (p->pvary == NULL)
		return 1;
	long n = vary_key_under(p->pvary, p->pvary_len, req, nreq, vk, sizeof(vk));
	return n >= 0 && (size_t)n == p->pvk_len && memcmp(vk, p->pvk, (size_t)n) == 0 ? 2 : 0;
}

/* A new fetch p of a key of which o is a response (another fetch's head,
 * or a stored one): p is expected to be the variant its leader's request
 * selects under o's Vary (its lines joined into one list). A request
 * whose variant cannot be told (Vary: *, a key past CACHE_VARY_KEY_MAX)
 * gets an answer that will not be stored: its fetch is joined by none. */
static void pend_predict(struct cache_pend *p, const struct cache_obj *o,
			 const struct h1_header *req, unsigned nreq)
{
	char vk[CACHE_VARY_KEY_MAX];
	size_t len = 0;
	for (unsigned i = 0; i < o->nhdrs; i++)
		if (sv_ieq_cstr(o->hdrs[i].name, "vary"))
			len += o->hdrs[i].value.len + 2;
	char *vary = sl_malloc(len + 1);
	len = 0;
	for (unsigned i = 0; i < o->nhdrs; i++) {
		const struct h1_header *h = &o->hdrs[i];
		if (!sv_ieq_cstr(h->name, "vary"))
			continue;
		if (len > 0) {
			memcpy(vary + len, ", ", 2);
			len += 2;
		}
		memcpy(vary + len, h->value.p, h->value.len);
		len += h->value.len;
	}
	long n = vary_key_under(vary, len, req, nreq, vk, sizeof(vk));
	if (n < 0) {
		p->lone = true;
		free(vary);
		return;
	}
	p->pvary = vary;
	p->pvary_len = len;
	p->pvk = sl_malloc((size_t)n + 1);
	memcpy(p->pvk, vk, (size_t)n);
	p->pvk_len = (size_t)n;
}

static bool pend_is(const struct cache_pend *p, uint64_t h, const char *key, size_t len)
{
	return p->hash == h && p->key_len == len && memcmp(p->key, key, len) == 0;
}

/* Any stored response for key (a reference), or NULL. */
static struct cache_obj *key_any(struct mem_store *s, uint64_t h, const char *key, size_t len)
{
	struct cache_obj **head, *found = NULL;
	struct shard *sh = shard_of(s, h, &head);
	pthread_mutex_lock(&sh->mu);
	for (struct cache_obj *c = *head; c && !found; c = c->chain)
		if (same_key(c, h, key, len))
			found = cache_obj_ref(c);
	pthread_mutex_unlock(&sh->mu);
	return found;
}

static void pend_invalidate(struct mem_store *s, uint64_t h, const char *key, size_t len)
{
	pthread_mutex_lock(&s->pend_mu);
	for (struct cache_pend *p = s->pend[h % PEND_BUCKETS]; p; p = p->next)
		if (pend_is(p, h, key, len))
			p->invalidated = true;
	pthread_mutex_unlock(&s->pend_mu);
}

static void pend_put(struct cache_pend **pp)
{
	struct cache_pend *p = *pp;
	*pp = NULL;
	if (p == NULL || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return;
	SL_ASSERT(p->waiters == NULL);
	cache_obj_put(&p->obj);
	free(p->pvary);
	free(p->pvk);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

struct cache_pend *mem_pend_join(struct mem_store *s, const char *key, size_t key_len,
				 const struct h1_header *req, unsigned nreq, struct cache_waiter *w,
				 bool *leader)
{
	uint64_t h = cache_key_hash(key, key_len);
	struct cache_pend **bucket = &s->pend[h % PEND_BUCKETS];
	struct cache_pend *p = NULL, *sib = NULL;
	struct cache_obj *stored = NULL;
	int best = 0;
	unsigned n = 0;

	pthread_mutex_lock(&s->pend_mu);
	/* The fetch that fits best; never one invalidated since it began: its
	 * answer may predate what the invalidation made way for. */
	for (struct cache_pend *c = *bucket; c; c = c->next) {
		if (!pend_is(c, h, key, key_len))
			continue;
		n++;
		pthread_mutex_lock(&c->mu);
		int fit = c->invalidated ? 0 : pend_fit(c, req, nreq);
		if (fit > best) {
			best = fit;
			p = c;
		}
		if (sib == NULL && c->state != PEND_WAIT && c->obj)
			sib = c;
		pthread_mutex_unlock(&c->mu);
	}
	if (p) {
		atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
		pthread_mutex_lock(&p->mu);
		w->pnext = p->waiters;
		p->waiters = w;
		pthread_mutex_unlock(&p->mu);
		*leader = false;
	} else if (n < CACHE_MAX_VARIANTS && s->npend < PEND_MAX) {
		p = sl_calloc(1, sizeof(*p) + key_len);
		atomic_init(&p->refs, 2); /* the table's and the leader's */
		pthread_mutex_init(&p->mu, NULL);
		p->state = PEND_WAIT;
		p->hash = h;
		p->key_len = key_len;
		memcpy(p->key, key, key_len);
		if (sib) { /* its head stays: the table holds it (pend_mu) */
			pthread_mutex_lock(&sib->mu);
			pend_predict(p, sib->obj, req, nreq);
			pthread_mutex_unlock(&sib->mu);
		} else if ((stored = key_any(s, h, key, key_len)) != NULL) {
			/* The fetches that told the Vary may be over. */
			pend_predict(p, stored, req, nreq);
		}
		p->next = *bucket;
		*bucket = p;
		s->npend++;
		*leader = true;
	}
	/* Else too many fetches of the key's variants, or in all, are in
	 * flight: not collapsed. */
	pthread_mutex_unlock(&s->pend_mu);
	cache_obj_put(&stored);
	return p;
}

static void kick_all(struct cache_pend *p)
{
	for (struct cache_waiter *w = p->waiters; w; w = w->pnext)
		w->kick(w);
}

void mem_pend_head(struct cache_pend *p, struct cache_obj *o)
{
	pthread_mutex_lock(&p->mu);
	if (o) {
		p->obj = cache_obj_ref(o);
		p->state = o->body_hint > 0 ? PEND_STREAM : PEND_FILLING;
	} else {
		p->state = PEND_RELEASED;
	}
	kick_all(p);
	pthread_mutex_unlock(&p->mu);
}

void mem_pend_progress(struct cache_pend *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->waiters && (p->state == PEND_STREAM || p->state == PEND_FILLING))
		kick_all(p);
	pthread_mutex_unlock(&p->mu);
}

bool mem_pend_end(struct mem_store *s, struct cache_pend **pp)
{
	struct cache_pend *p = *pp;
	bool invalidated;

	pthread_mutex_lock(&s->pend_mu);
	struct cache_pend **slot = &s->pend[p->hash % PEND_BUCKETS];
	while (*slot != p) {
		SL_ASSERT(*slot != NULL); /* it is in the table until now */
		slot = &(*slot)->next;
	}
	*slot = p->next;
	s->npend--;
	invalidated = p->invalidated;
	pthread_mutex_unlock(&s->pend_mu);

	pthread_mutex_lock(&p->mu);
	bool whole = p->obj && atomic_load_explicit(&p->obj->ended, memory_order_acquire) &&
		     !atomic_load_explicit(&p->obj->failed, memory_order_relaxed);
	p->state = whole && !invalidated ? PEND_DONE : PEND_RELEASED;
	if (p->state == PEND_RELEASED && p->obj && !atomic_load(&p->obj->ended))
		cache_obj_fail(p->obj); /* streaming readers must not wait for the rest */
	kick_all(p);
	pthread_mutex_unlock(&p->mu);
	pend_put(pp); /* the leader's */
	pend_put(&p); /* the table's */
	return !invalidated;
}

enum pend_state mem_pend_state(struct cache_pend *p, struct cache_obj **o)
{
	pthread_mutex_lock(&p->mu);
	enum pend_state st = p->state;
	*o = st != PEND_WAIT && st != PEND_RELEASED && p->obj ? cache_obj_ref(p->obj) : NULL;
	pthread_mutex_unlock(&p->mu);
	return st;
}

bool mem_pend_waited(struct cache_pend *p)
{
	pthread_mutex_lock(&p->mu);
	bool any = p->waiters != NULL;
	pthread_mutex_unlock(&p->mu);
	return any;
}

bool mem_pend_seal(struct mem_store *s, struct cache_pend *p)
{
	/* Under the table's lock, as a join decides and adds its waiter. */
	pthread_mutex_lock(&s->pend_mu);
	pthread_mutex_lock(&p->mu);
	bool none = p->waiters == NULL;
	if (none)
		p->sealed = true;
	pthread_mutex_unlock(&p->mu);
	pthread_mutex_unlock(&s->pend_mu);
	return none;
}

void mem_pend_leave(struct cache_pend **pp, struct cache_waiter *w)
{
	struct cache_pend *p = *pp;
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	for (struct cache_waiter **wp = &p->waiters; *wp; wp = &(*wp)->pnext)
		if (*wp == w) {
			*wp = w->pnext;
			break;
		}
	w->pnext = NULL;
	pthread_mutex_unlock(&p->mu);
	pend_put(pp);
}

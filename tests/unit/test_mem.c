/* test_mem.c - the memory store: hits, Vary variants, replacement, purge,
 * capacity, references that outlive removal, and threads at once. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "buf/limits.h"
#include "cache/key.h"
#include "cache/mem.h"
#include "unit.h"

static const char head_plain[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
				 "Cache-Control: max-age=60\r\nContent-Length: 5\r\n\r\n";
static const char head_vary[] = "HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\n"
				"Content-Length: 5\r\n\r\n";

static struct cache_obj *make(const char *key, const char *head, const char *req_ae,
			      const char *body, size_t body_len)
{
	struct h1_header ae = {.name = sv_from_cstr("Accept-Encoding"),
			       .value = sv_from_cstr(req_ae ? req_ae : "")};
	struct h1_header vary = {.name = sv_from_cstr("Vary"),
				 .value = sv_from_cstr("Accept-Encoding")};
	char vk[256];
	long n = 0;
	if (strstr(head, "Vary"))
		n = policy_vary_key(&vary, 1, &ae, req_ae ? 1 : 0, vk, sizeof(vk));
	struct policy_meta m = {.lifetime = 60};
	struct cache_obj *o =
		cache_obj_new(key, strlen(key), vk, (size_t)n, head, strlen(head), body_len, &m);
	if (o) {
		cache_obj_append(o, body, body_len);
		cache_obj_done(o);
	}
	return o;
}

static bool body_is(const struct cache_obj *o, const char *want, size_t len)
{
	size_t off = 0;
	for (const struct cache_chunk *c = o->body; c; c = c->next) {
		if (off + c->len > len || memcmp(want + off, c->data, c->len) != 0)
			return false;
		off += c->len;
	}
	return off == len && o->body_len == len;
}

static struct cache_obj *get(struct mem_store *s, const char *key, const char *ae)
{
	struct h1_header h = {.name = sv_from_cstr("Accept-Encoding"),
			      .value = sv_from_cstr(ae ? ae : "")};
	return mem_lookup(s, key, strlen(key), &h, ae ? 1 : 0);
}

TEST(insert_then_hit_and_miss)
{
	struct mem_store *s = mem_store_new(1 << 20);
	struct cache_obj *o = make("http://a:80/x", head_plain, NULL, "hello", 5);
	CHECK(o != NULL);
	CHECK(mem_insert(s, o));
	cache_obj_put(&o);
	struct cache_obj *h = get(s, "http://a:80/x", NULL);
	CHECK(h != NULL);
	if (h) {
		CHECK(body_is(h, "hello", 5));
		CHECK_INT(h->status, 200);
		CHECK(h1_find(h->hdrs, h->nhdrs, "content-type") != NULL);
		CHECK_INT(h->meta.lifetime, 60);
	}
	cache_obj_put(&h);
	CHECK(get(s, "http://a:80/y", NULL) == NULL);
	CHECK(get(s, "http://a:80/x?", NULL) == NULL);
	CHECK(mem_has_key(s, "http://a:80/x", 13));
	CHECK(!mem_has_key(s, "http://a:80/y", 13));
	/* The fast path of a plain hit: no request fields needed. */
	bool varied = true;
	h = mem_lookup_unvaried(s, "http://a:80/x", 13, &varied);
	CHECK(h != NULL && !varied);
	cache_obj_put(&h);
	CHECK(mem_lookup_unvaried(s, "http://a:80/y", 13, &varied) == NULL && !varied);
	o = make("http://a:80/v", head_vary, "gzip", "zzzzz", 5);
	CHECK(mem_insert(s, o));
	cache_obj_put(&o);
	CHECK(mem_lookup_unvaried(s, "http://a:80/v", 13, &varied) == NULL && varied);
	uint64_t n, bytes;
	mem_stats(s, &n, &bytes);
	CHECK_INT(n, 2);
	CHECK(bytes > 5);
	mem_store_free(&s);
	CHECK(s == NULL);
}

TEST(vary_variants_are_selected_and_replaced)
{
	struct mem_store *s = mem_store_new(1 << 20);
	struct cache_obj *gz = make("http://a:80/v", head_vary, "gzip", "GZIP!", 5);
	struct cache_obj *id = make("http://a:80/v", head_vary, NULL, "plain", 5);
	CHECK(mem_insert(s, gz) && mem_insert(s, id));
	struct cache_obj *h = get(s, "http://a:80/v", "gzip");
	CHECK(h && body_is(h, "GZIP!", 5));
	cache_obj_put(&h);
	h = get(s, "http://a:80/v", NULL);
	CHECK(h && body_is(h, "plain", 5));
	cache_obj_put(&h);
	CHECK(get(s, "http://a:80/v", "br") == NULL);
	/* A newer gzip variant replaces the old one; a reader of the old one
	 * keeps its bytes. */
	struct cache_obj *old = get(s, "http://a:80/v", "gzip");
	struct cache_obj *gz2 = make("http://a:80/v", head_vary, "gzip", "NEWGZ", 5);
	CHECK(mem_insert(s, gz2));
	h = get(s, "http://a:80/v", "gzip");
	CHECK(h && body_is(h, "NEWGZ", 5));
	CHECK(old && body_is(old, "GZIP!", 5) && !old->linked);
	uint64_t n, bytes;
	mem_stats(s, &n, &bytes);
	CHECK_INT(n, 2);
	cache_obj_put(&h);
	cache_obj_put(&old);
	cache_obj_put(&gz);
	cache_obj_put(&id);
	cache_obj_put(&gz2);
	mem_store_free(&s);
}

TEST(purge_removes_every_variant_but_not_readers)
{
	struct mem_store *s = mem_store_new(1 << 20);
	struct cache_obj *a = make("http://a:80/p", head_vary, "gzip", "aaaaa", 5);
	struct cache_obj *b = make("http://a:80/p", head_vary, NULL, "bbbbb", 5);
	struct cache_obj *c = make("http://a:80/q", head_plain, NULL, "ccccc", 5);
	CHECK(mem_insert(s, a) && mem_insert(s, b) && mem_insert(s, c));
	struct cache_obj *reader = get(s, "http://a:80/p", NULL);
	CHECK_INT(mem_purge(s, "http://a:80/p", 13), 2);
	CHECK(get(s, "http://a:80/p", NULL) == NULL);
	CHECK(get(s, "http://a:80/p", "gzip") == NULL);
	struct cache_obj *other = get(s, "http://a:80/q", NULL);
	CHECK(other != NULL);
	CHECK(reader && body_is(reader, "bbbbb", 5));
	CHECK_INT(mem_purge(s, "http://a:80/p", 13), 0);
	cache_obj_put(&reader);
	cache_obj_put(&other);
	cache_obj_put(&a);
	cache_obj_put(&b);
	cache_obj_put(&c);
	mem_store_free(&s);
}

TEST(what_was_fetched_before_a_purge_is_not_stored_after_it)
{
	struct mem_store *s = mem_store_new(1 << 20);
	struct cache_obj *a = make("http://a:80/p", head_plain, NULL, "older", 5);
	struct cache_obj *a2 = make("http://a:80/p", head_plain, NULL, "newer", 5);
	struct cache_obj *q = make("http://a:80/q", head_plain, NULL, "qqqqq", 5);
	/* Two keys on different counters (checked, not assumed). */
	CHECK(cache_key_hash("http://a:80/p", 13) % CACHE_GEN_SLOTS !=
	      cache_key_hash("http://a:80/q", 13) % CACHE_GEN_SLOTS);
	uint32_t gp = mem_gen(s, "http://a:80/p", 13), gq = mem_gen(s, "http://a:80/q", 13);
	CHECK_INT(mem_purge(s, "http://a:80/p", 13), 0); /* nothing stored: it still counts */
	CHECK(!mem_insert_gen(s, a, gp));		 /* sought before the purge */
	CHECK(get(s, "http://a:80/p", NULL) == NULL);
	CHECK(mem_insert_gen(s, q, gq)); /* another key's purge is not its */
	CHECK(mem_insert_gen(s, a2, mem_gen(s, "http://a:80/p", 13))); /* sought after it */
	struct cache_obj *h = get(s, "http://a:80/p", NULL);
	CHECK(h && body_is(h, "newer", 5));
	cache_obj_put(&h);
	cache_obj_put(&a);
	cache_obj_put(&a2);
	cache_obj_put(&q);
	mem_store_free(&s);
}

/* A copy read back from the disk goes in only where memory has none of
 * its variant: a response stored while the file was read is newer. */
TEST(a_copy_from_disk_never_replaces_what_memory_holds)
{
	struct mem_store *s = mem_store_new(1 << 20);
	struct cache_obj *newer = make("http://a:80/d", head_vary, "gzip", "newer", 5);
	struct cache_obj *disk = make("http://a:80/d", head_vary, "gzip", "older", 5);
	struct cache_obj *other = make("http://a:80/d", head_vary, NULL, "plain", 5);
	uint32_t g = mem_gen(s, "http://a:80/d", 13);
	CHECK(mem_insert(s, newer));
	CHECK(!mem_insert_cold(s, disk, g));
	struct cache_obj *h = get(s, "http://a:80/d", "gzip");
	CHECK(h && body_is(h, "newer", 5));
	cache_obj_put(&h);
	CHECK(!disk->linked);
	/* Another variant of the key, absent from memory, goes in. */
	CHECK(mem_insert_cold(s, other, g));
	h = get(s, "http://a:80/d", NULL);
	CHECK(h && body_is(h, "plain", 5));
	cache_obj_put(&h);
	h = get(s, "http://a:80/d", "gzip");
	CHECK(h && body_is(h, "newer", 5));
	cache_obj_put(&h);
	cache_obj_put(&newer);
	cache_obj_put(&disk);
	cache_obj_put(&other);
	mem_store_free(&s);
}

TEST(capacity_is_kept_and_oversized_or_incomplete_refused)
{
	enum { CAP = 256 * 1024 };
	struct mem_store *s = mem_store_new(CAP);
	static char body[10000];
	memset(body, 'x', sizeof(body));
	for (int i = 0; i < 200; i++) {
		char key[64];
		snprintf(key, sizeof(key), "http://a:80/obj%d", i);
		struct cache_obj *o = make(key, head_plain, NULL, body, sizeof(body));
		CHECK(mem_insert(s, o));
		cache_obj_put(&o);
		uint64_t n, bytes;
		mem_stats(s, &n, &bytes);
		CHECK(bytes <= CAP);
	}
	uint64_t n, bytes;
	mem_stats(s, &n, &bytes);
	CHECK(n > 5 && n < 30);
	/* The newest is in (not yet evicted from the small queue). */
	struct cache_obj *h = get(s, "http://a:80/obj199", NULL);
	CHECK(h != NULL);
	cache_obj_put(&h);

	static char big[CAP];
	struct cache_obj *o = make("http://a:80/big", head_plain, NULL, big, sizeof(big));
	CHECK(!mem_insert(s, o));
	cache_obj_put(&o);
	struct policy_meta m = {0};
	o = cache_obj_new("k", 1, "", 0, head_plain, strlen(head_plain), 0, &m);
	CHECK(o && !mem_insert(s, o)); /* not done */
	cache_obj_put(&o);
	CHECK(cache_obj_new("k", 1, "", 0, "HTTP/1.1 200\r\n", 14, 0, &m) == NULL); /* no end */
	/* Without a length hint, bodies grow in chunks and all arrive. */
	static char mid[3 * CACHE_CHUNK + 7];
	for (size_t i = 0; i < sizeof(mid); i++)
		mid[i] = (char)(i * 7);
	o = cache_obj_new("k", 1, "", 0, head_plain, strlen(head_plain), 0, &m);
	for (size_t off = 0; off < sizeof(mid); off += 1000)
		cache_obj_append(o, mid + off, SL_MIN((size_t)1000, sizeof(mid) - off));
	cache_obj_done(o);
	CHECK(body_is(o, mid, sizeof(mid)));
	cache_obj_put(&o);
	mem_store_free(&s);
}

TEST(memory_charged_per_object_beyond_its_body)
{
	struct cache_obj *o =
		make("http://example.com:80/index.html", head_plain, NULL, "hello", 5);
	/* Struct, key, head copy, header views and the chunk header: with the
	 * length known, no unused chunk room. */
	uint64_t beyond = o->charge - 5;
	printf("    charge beyond the body (%zu-byte head, %zu-byte key): %llu bytes\n",
	       strlen(head_plain), o->key_len, (unsigned long long)beyond);
	CHECK_INT(beyond, sizeof(struct cache_obj) + strlen(head_plain) + o->key_len +
				  o->nhdrs * sizeof(struct h1_header) + sizeof(struct cache_chunk));
	cache_obj_put(&o);
}

TEST(large_bodies_get_a_mapping_and_on_request_a_memfd)
{
	enum { LEN = 300000 }; /* above CACHE_MAP_MIN */
	static char big[LEN];
	for (size_t i = 0; i < LEN; i++)
		big[i] = (char)(i * 7 + i / 251);
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n";
	struct policy_meta m = {.lifetime = 60};

	struct cache_obj *o = cache_obj_new("k", 1, "", 0, head, strlen(head), LEN, &m);
	CHECK(o && o->body_mapped && o->body_fd < 0 && o->body->cap == LEN);
	uint64_t charge = o->charge;
	cache_obj_want_fd(o);
	CHECK(o->body_fd >= 0);
	CHECK_INT(o->charge, charge); /* the same bytes, in another home */
	int fd = o->body_fd;
	cache_obj_want_fd(o); /* a second call changes nothing */
	CHECK_INT(o->body_fd, fd);
	cache_obj_append(o, big, 1000);
	cache_obj_append(o, big + 1000, LEN - 1000);
	cache_obj_done(o);
	CHECK(body_is(o, big, LEN));
	char back[100];
	CHECK_INT(pread(fd, back, sizeof(back), 123456), (long)sizeof(back));
	CHECK(memcmp(back, big + 123456, sizeof(back)) == 0); /* what sendfile() sends */
	cache_obj_put(&o);
	CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF); /* closed with its object */

	/* Too late once a byte is in: the body stays where it is. */
	o = cache_obj_new("k", 1, "", 0, head, strlen(head), LEN, &m);
	cache_obj_append(o, big, 1);
	cache_obj_want_fd(o);
	CHECK(o->body_mapped && o->body_fd < 0);
	cache_obj_put(&o);

	/* A small body has no mapping of its own, hence no memfd. */
	o = make("k", head_plain, NULL, "hello", 5);
	cache_obj_want_fd(o);
	CHECK(!o->body_mapped && o->body_fd < 0);
	CHECK(body_is(o, "hello", 5));
	cache_obj_put(&o);
}

/* A 304 refresh makes a new head for the same body: shared, not copied,
 * and alive as long as any object that reads it, whichever goes first. */
TEST(a_refreshed_object_shares_its_body_with_the_one_it_replaces)
{
	enum { LEN = 300000 };
	static char big[LEN];
	for (size_t i = 0; i < LEN; i++)
		big[i] = (char)(i * 13 + i / 7);
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n";
	static const char head2[] = "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\nX-New: 1\r\n\r\n";
	struct policy_meta m = {.lifetime = 60};
	struct mem_store *s = mem_store_new(4 << 20);

	struct cache_obj *o = cache_obj_new("k", 1, "", 0, head, strlen(head), LEN, &m);
	cache_obj_append(o, big, LEN);
	cache_obj_done(o);
	CHECK(mem_insert(s, o));
	struct cache_obj *n = cache_obj_new("k", 1, "", 0, head2, strlen(head2), 0, &m);
	cache_obj_share_body(n, o);
	cache_obj_done(n);
	CHECK(n->body == o->body && n->body_len == LEN && n->body_of == o);
	/* Its charge holds the body it keeps alive. */
	CHECK(n->charge >= LEN && n->charge - LEN < 1024);
	struct cache_obj *n2 = cache_obj_new("k", 1, "", 0, head2, strlen(head2), 0, &m);
	cache_obj_share_body(n2, n); /* a refresh of a refresh: the same owner */
	cache_obj_done(n2);
	CHECK(n2->body_of == o);
	CHECK(mem_insert(s, n)); /* replaces o in the store */
	cache_obj_put(&o);	 /* the first reader lets go */
	CHECK(body_is(n, big, LEN));
	cache_obj_put(&n);
	CHECK(body_is(n2, big, LEN));
	cache_obj_put(&n2);
	struct cache_obj *h = mem_lookup(s, "k", 1, NULL, 0);
	CHECK(h && body_is(h, big, LEN) && h->nhdrs == 2);
	cache_obj_put(&h);
	mem_store_free(&s);
}

TEST(a_key_keeps_a_bounded_number_of_variants)
{
	struct mem_store *s = mem_store_new(16 << 20);
	char ae[32];
	for (int i = 0; i < CACHE_MAX_VARIANTS + 5; i++) {
		snprintf(ae, sizeof(ae), "x-%d", i);
		struct cache_obj *o = make("http://a:80/many", head_vary, ae, "vvvvv", 5);
		CHECK(mem_insert(s, o));
		cache_obj_put(&o);
	}
	uint64_t n, bytes;
	mem_stats(s, &n, &bytes);
	CHECK_INT(n, CACHE_MAX_VARIANTS);
	struct cache_obj *h = get(s, "http://a:80/many", "x-0");
	CHECK(h == NULL); /* the oldest went */
	h = get(s, "http://a:80/many", "x-36");
	CHECK(h != NULL);
	cache_obj_put(&h);
	mem_store_free(&s);
}

TEST(reservations_for_bodies_in_flight_are_bounded)
{
	struct mem_store *s = mem_store_new(4000);
	CHECK(mem_reserve(s, 600));
	CHECK(mem_reserve(s, 400));
	CHECK(!mem_reserve(s, 1)); /* a quarter of 4000 is taken */
	mem_release(s, 400);
	CHECK(mem_reserve(s, 400));
	mem_release(s, 1000);
	CHECK(mem_reserve(s, 1000));
	/* Bodies fetched only for their readers have a budget of their own,
	 * an eighth: it takes nothing from the quarter, nor the quarter
	 * from it. */
	CHECK(mem_reserve_transient(s, 500));
	CHECK(!mem_reserve_transient(s, 1));
	/* An object holding transient room gives it back when freed. */
	struct cache_obj *o = make("http://a:80/x", head_plain, NULL, "hello", 5);
	cache_obj_hold(o, s, 0, 500);
	struct cache_obj *reader = cache_obj_ref(o);
	cache_obj_put(&o);
	CHECK(!mem_reserve_transient(s, 1)); /* a reader still holds it */
	cache_obj_put(&reader);
	CHECK(mem_reserve_transient(s, 500));
	mem_release_transient(s, 500);
	mem_release(s, 1000);
	mem_store_free(&s);
}

struct worker_arg {
	struct mem_store *s;
	unsigned seed;
	unsigned hits;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	for (int i = 0; i < 20000; i++) {
		a->seed = a->seed * 1103515245u + 12345u;
		unsigned r = a->seed >> 8;
		char key[64];
		snprintf(key, sizeof(key), "http://a:80/t%u", r % 64);
		if (r % 10 == 0) {
			struct cache_obj *o = make(key, head_plain, NULL, key, strlen(key));
			(void)mem_insert(a->s, o);
			cache_obj_put(&o);
		} else if (r % 97 == 0) {
			(void)mem_purge(a->s, key, strlen(key));
		} else {
			struct cache_obj *o = get(a->s, key, NULL);
			if (o) {
				a->hits += body_is(o, key, strlen(key));
				cache_obj_put(&o);
			}
		}
	}
	return NULL;
}

static unsigned kicks;

static void count_kick(struct cache_waiter *w)
{
	(void)w;
	kicks++;
}

static struct cache_pend *join(struct mem_store *s, const char *ae, struct cache_waiter *w,
			       bool *leader)
{
	struct h1_header h = {.name = sv_from_cstr("Accept-Encoding"), .value = sv_from_cstr(ae)};
	*leader = false;
	return mem_pend_join(s, "http://a:80/v", 13, &h, 1, w, leader);
}

TEST(a_fetch_is_joined_by_requests_for_its_variant_only)
{
	struct mem_store *s = mem_store_new(1 << 20);
	struct cache_waiter w1 = {.kick = count_kick}, w2 = {.kick = count_kick},
			    w3 = {.kick = count_kick}, w4 = {.kick = count_kick},
			    w5 = {.kick = count_kick};
	bool leader;
	struct cache_pend *gz = join(s, "gzip", &w1, &leader);
	CHECK(gz != NULL && leader);
	/* No head yet: which variant it is is not known, so anyone waits. */
	struct cache_pend *a = join(s, "br", &w2, &leader);
	CHECK(a == gz && !leader);
	/* The head says Vary: Accept-Encoding, and the fetch is gzip's. */
	struct cache_obj *o = make("http://a:80/v", head_vary, "gzip", "zzzzz", 5);
	kicks = 0;
	mem_pend_head(gz, o);
	CHECK_INT(kicks, 1);
	struct cache_pend *b = join(s, "gzip", &w3, &leader);
	CHECK(b == gz && !leader);
	/* br's waiter joins again: the first of br leads a fetch of its own,
	 * which the next br request joins. */
	mem_pend_leave(&a, &w2);
	struct cache_pend *br = join(s, "br", &w2, &leader);
	CHECK(br != NULL && br != gz && leader);
	struct cache_pend *c = join(s, "br", &w4, &leader);
	CHECK(c == br && !leader);
	/* A purge marks both: neither is joined after it, a new one leads. */
	CHECK_INT(mem_purge(s, "http://a:80/v", 13), 0);
	struct cache_pend *d = join(s, "gzip", &w5, &leader);
	CHECK(d != NULL && d != gz && d != br && leader);
	mem_pend_leave(&b, &w3);
	struct cache_pend *e = join(s, "br", &w3, &leader);
	CHECK(e != NULL && e != br && e != d && leader); /* d is expected to be gzip */
	mem_pend_leave(&c, &w4);
	CHECK(!mem_pend_end(s, &gz));
	CHECK(!mem_pend_end(s, &br));
	CHECK(mem_pend_end(s, &d));
	CHECK(mem_pend_end(s, &e));
	cache_obj_put(&o);
	mem_store_free(&s);
}

/* A leader giving up a fetch it answers: with nobody waiting it is sealed,
 * so a request coming after leads its own rather than join one about to be
 * cut off; with a waiter it is not, and goes on. */
TEST(a_fetch_given_up_without_waiters_is_joined_by_none)
{
	struct mem_store *s = mem_store_new(1 << 20);
	struct cache_waiter w1 = {.kick = count_kick}, w2 = {.kick = count_kick},
			    w3 = {.kick = count_kick};
	bool leader;
	struct cache_pend *p = join(s, "gzip", &w1, &leader);
	CHECK(p != NULL && leader);
	/* Leaders seal once their head is out (it is streamed by then). */
	struct cache_obj *o = make("http://a:80/v", head_vary, "gzip", "zzzzz", 5);
	mem_pend_head(p, o);
	CHECK(mem_pend_seal(s, p));
	struct cache_pend *q = join(s, "gzip", &w2, &leader);
	CHECK(q != NULL && q != p && leader);
	struct cache_pend *r = join(s, "gzip", &w3, &leader);
	CHECK(r == q && !leader);
	CHECK(!mem_pend_seal(s, q)); /* w3 waits on it */
	struct cache_pend *r2 = join(s, "gzip", &w1, &leader);
	CHECK(r2 == q && !leader); /* and others may still join */
	mem_pend_leave(&r, &w3);
	mem_pend_leave(&r2, &w1);
	CHECK(mem_pend_end(s, &p));
	CHECK(mem_pend_end(s, &q));
	cache_obj_put(&o);
	mem_store_free(&s);
}

TEST(a_request_waits_on_the_fetch_that_fits_its_variant_best)
{
	struct mem_store *s = mem_store_new(1 << 20);
	struct cache_waiter w[6];
	for (unsigned i = 0; i < SL_ARRAY_LEN(w); i++)
		w[i] = (struct cache_waiter){.kick = count_kick};
	bool leader;
	struct cache_pend *gz = join(s, "gzip", &w[0], &leader);
	struct cache_obj *o = make("http://a:80/v", head_vary, "gzip", "zzzzz", 5);
	mem_pend_head(gz, o);
	/* br leads a fetch of its own, expected (by gzip's Vary) to be br. */
	struct cache_pend *br = join(s, "br", &w[1], &leader);
	CHECK(br != NULL && br != gz && leader);
	/* gzip waits on the gzip fetch, not on br's that has no head yet. */
	struct cache_pend *a = join(s, "gzip", &w[2], &leader);
	CHECK(a == gz && !leader);
	/* Another br waits on br's; a deflate one does not, it leads. */
	struct cache_pend *b = join(s, "br", &w[3], &leader);
	CHECK(b == br && !leader);
	struct cache_pend *de = join(s, "deflate", &w[4], &leader);
	CHECK(de != NULL && de != br && de != gz && leader);
	/* After a purge none of the three is joined. */
	CHECK_INT(mem_purge(s, "http://a:80/v", 13), 0);
	struct cache_pend *c = join(s, "br", &w[5], &leader);
	CHECK(c != NULL && c != br && leader);
	mem_pend_leave(&a, &w[2]);
	mem_pend_leave(&b, &w[3]);
	CHECK(!mem_pend_end(s, &gz));
	CHECK(!mem_pend_end(s, &br));
	CHECK(!mem_pend_end(s, &de));
	CHECK(mem_pend_end(s, &c));
	cache_obj_put(&o);
	mem_store_free(&s);
}

TEST(a_fetch_takes_the_vary_of_a_stored_variant_as_its_guess)
{
	struct mem_store *s = mem_store_new(1 << 20);
	struct cache_waiter w[3];
	for (unsigned i = 0; i < SL_ARRAY_LEN(w); i++)
		w[i] = (struct cache_waiter){.kick = count_kick};
	struct cache_obj *o = make("http://a:80/v", head_vary, "gzip", "zzzzz", 5);
	CHECK(mem_insert(s, o));
	cache_obj_put(&o);
	bool leader;
	/* No fetch in flight tells the Vary, the stored gzip one does. */
	struct cache_pend *br = join(s, "br", &w[0], &leader);
	CHECK(br != NULL && leader);
	struct cache_pend *de = join(s, "deflate", &w[1], &leader);
	CHECK(de != NULL && de != br && leader);
	struct cache_pend *a = join(s, "br", &w[2], &leader);
	CHECK(a == br && !leader);
	mem_pend_leave(&a, &w[2]);
	/* A request whose secondary key is too long to make: its answer will
	 * not be stored, and nobody waits on its fetch. */
	static char huge[CACHE_VARY_KEY_MAX + 100];
	memset(huge, 'x', sizeof(huge) - 1);
	struct cache_pend *h1 = join(s, huge, &w[2], &leader);
	CHECK(h1 != NULL && leader);
	struct cache_pend *h2 = join(s, huge, &w[2], &leader);
	CHECK(h2 != NULL && h2 != h1 && leader);
	CHECK(mem_pend_end(s, &h1));
	CHECK(mem_pend_end(s, &h2));
	CHECK(mem_pend_end(s, &br));
	CHECK(mem_pend_end(s, &de));
	mem_store_free(&s);
}

TEST(a_key_has_a_bounded_number_of_fetches_in_flight)
{
	struct mem_store *s = mem_store_new(1 << 20);
	struct cache_pend *p[CACHE_MAX_VARIANTS + 1];
	struct cache_waiter w[CACHE_MAX_VARIANTS + 1];
	struct cache_obj *o[CACHE_MAX_VARIANTS];
	char ae[CACHE_MAX_VARIANTS + 1][16];
	bool leader;
	for (unsigned i = 0; i <= CACHE_MAX_VARIANTS; i++) {
		w[i] = (struct cache_waiter){.kick = count_kick};
		snprintf(ae[i], sizeof(ae[i]), "enc%u", i);
		p[i] = join(s, ae[i], &w[i], &leader);
		if (i < CACHE_MAX_VARIANTS) {
			CHECK(p[i] != NULL && leader);
			o[i] = make("http://a:80/v", head_vary, ae[i], "zzzzz", 5);
			mem_pend_head(p[i], o[i]);
		}
	}
	CHECK(p[CACHE_MAX_VARIANTS] == NULL); /* not collapsed: straight to the origin */
	for (unsigned i = 0; i < CACHE_MAX_VARIANTS; i++) {
		CHECK(mem_pend_end(s, &p[i]));
		cache_obj_put(&o[i]);
	}
	mem_store_free(&s);
}

TEST(threads_hit_insert_and_purge_at_once)
{
	struct mem_store *s = mem_store_new(64 * 1024);
	pthread_t t[4];
	struct worker_arg a[4];
	for (unsigned i = 0; i < 4; i++) {
		a[i] = (struct worker_arg){.s = s, .seed = i + 1};
		pthread_create(&t[i], NULL, worker, &a[i]);
	}
	unsigned hits = 0;
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		hits += a[i].hits;
	}
	CHECK(hits > 1000); /* and every hit had its own key as its body */
	uint64_t n, bytes;
	mem_stats(s, &n, &bytes);
	CHECK(bytes <= 64 * 1024);
	mem_store_free(&s);
}

int main(void)
{
	RUN(insert_then_hit_and_miss);
	RUN(vary_variants_are_selected_and_replaced);
	RUN(purge_removes_every_variant_but_not_readers);
	RUN(what_was_fetched_before_a_purge_is_not_stored_after_it);
	RUN(a_copy_from_disk_never_replaces_what_memory_holds);
	RUN(capacity_is_kept_and_oversized_or_incomplete_refused);
	RUN(memory_charged_per_object_beyond_its_body);
	RUN(large_bodies_get_a_mapping_and_on_request_a_memfd);
	RUN(a_refreshed_object_shares_its_body_with_the_one_it_replaces);
	RUN(a_key_keeps_a_bounded_number_of_variants);
	RUN(reservations_for_bodies_in_flight_are_bounded);
	RUN(a_fetch_is_joined_by_requests_for_its_variant_only);
	RUN(a_fetch_given_up_without_waiters_is_joined_by_none);
	RUN(a_request_waits_on_the_fetch_that_fits_its_variant_best);
	RUN(a_fetch_takes_the_vary_of_a_stored_variant_as_its_guess);
	RUN(a_key_has_a_bounded_number_of_fetches_in_flight);
	RUN(threads_hit_insert_and_purge_at_once);
	return unit_done();
}

/* test_disk.c - the disk store and its file format: exact round trips,
 * corruption and truncation caught, reads through a real loop, restarts,
 * damaged files dropped, Vary variants, purge, capacity, a directory that
 * cannot be written, cancelled reads, and threads at once. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "buf/limits.h"
#include "cache/disk.h"
#include "cache/diskfmt.h"
#include "cache/key.h"
#include "ev/ev.h"
#include "unit.h"

static const char head_plain[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
				 "Cache-Control: max-age=60\r\nContent-Length: 5\r\n\r\n";
static const char head_vary[] = "HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\n"
				"Content-Length: 5\r\n\r\n";

/* ---- helpers ---- */

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
	struct policy_meta m = {.lifetime = 60, .last_modified = -1};
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

static char *tmp_dir(void)
{
	char tmpl[] = "/tmp/sluice-test-disk-XXXXXX";
	char *p = mkdtemp(tmpl);
	return p ? strdup(p) : NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	chmod(path, 0700);
	return remove(path);
}

static void rm_rf(char *dir)
{
	chmod(dir, 0700);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

/* Files under dir/xy/ (the objects), and the bytes the store charges for them. */
static unsigned count_files(const char *dir, uint64_t *bytes)
{
	unsigned n = 0;
	*bytes = 0;
	for (unsigned i = 0; i < 256; i++) {
		char sub[4096];
		snprintf(sub, sizeof(sub), "%s/%02x", dir, i);
		DIR *dp = opendir(sub);
		if (dp == NULL)
			continue;
		struct dirent *de;
		struct stat st;
		while ((de = readdir(dp)) != NULL)
			if (fstatat(dirfd(dp), de->d_name, &st, 0) == 0 && S_ISREG(st.st_mode)) {
				n++;
				*bytes += disk_charge((uint64_t)st.st_size);
			}
		closedir(dp);
	}
	return n;
}

static bool copy_file(const char *from, const char *to)
{
	char buf[4096];
	ssize_t n;
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	bool ok = in >= 0 && out >= 0;
	while (ok && (n = read(in, buf, sizeof(buf))) > 0)
		ok = write(out, buf, (size_t)n) == n;
	close(in);
	close(out);
	return ok;
}

static void obj_path(const char *dir, const char *key, const char *vary, size_t vary_len, char *out,
		     size_t cap)
{
	char name[DISKFMT_NAME_LEN + 1];
	diskfmt_name(key, strlen(key), vary, vary_len, name);
	snprintf(out, cap, "%s/%.2s/%s", dir, name, name);
}

/* Open, without the index rebuild started. */
static struct disk_store *open_bare(const char *dir, uint64_t cap)
{
	char err[256] = "";
	struct disk_store *d = disk_open(dir, cap, 2, err, sizeof(err));
	if (d == NULL)
		printf("    disk_open: %s\n", err);
	return d;
}

/* Wait (bounded) for the rebuild of d's index to finish. */
static bool rebuilt(struct disk_store *d)
{
	for (int i = 0; i < 10000 && disk_rebuilding(d); i++)
		usleep(1000);
	return !disk_rebuilding(d);
}

/* Open and rebuild the index, as the proxy does at start-up. */
static struct disk_store *open_store(const char *dir, uint64_t cap)
{
	struct disk_store *d = open_bare(dir, cap);
	if (d) {
		disk_rebuild(d);
		CHECK(rebuilt(d));
	}
	return d;
}

struct rd {
	struct ev_loop *loop;
	int calls;
	struct cache_obj *o;
};

static void on_read(void *arg, struct cache_obj *o)
{
	struct rd *r = arg;
	r->calls++;
	r->o = o;
	ev_loop_stop(r->loop);
}

static void on_deadline(struct ev_loop *loop, struct ev_timer *t)
{
	(void)t;
	ev_loop_stop(loop);
}

/* Run loop until it is stopped or ms pass. */
static void run_for(struct ev_loop *loop, uint64_t ms)
{
	struct ev_timer t = {0};
	ev_timer_at(loop, &t, ev_now(loop) + ms, on_deadline);
	CHECK_INT(ev_loop_run(loop), 0);
	ev_timer_stop(loop, &t);
}

/* Read key (with Accept-Encoding ae, or none) through a loop of its own.
 * *sync_miss: the index had nothing. Returns the object or NULL. */
static struct cache_obj *get(struct disk_store *d, const char *key, const char *ae, bool *sync_miss)
{
	struct h1_header h = {.name = sv_from_cstr("Accept-Encoding"),
			      .value = sv_from_cstr(ae ? ae : "")};
	struct rd r = {.loop = ev_loop_new()};
	struct disk_mbox *mb = disk_mbox_new(r.loop);
	CHECK(mb != NULL);
	struct disk_read *dr = disk_read(d, mb, key, strlen(key), &h, ae ? 1 : 0, on_read, &r);
	if (sync_miss)
		*sync_miss = dr == NULL;
	if (dr) {
		run_for(r.loop, 10000);
		CHECK_INT(r.calls, 1);
	}
	disk_mbox_free(&mb);
	ev_loop_free(&r.loop);
	return r.o;
}

static void stats(struct disk_store *d, uint64_t *n, uint64_t *bytes, bool *degraded)
{
	disk_stats(d, n, bytes, degraded);
}

/* ---- the format ---- */

static struct cache_obj *make_rich(size_t body_len)
{
	static const char head[] = "HTTP/1.1 203 Fine\r\nVary: accept-encoding, accept-language\r\n"
				   "Cache-Control: s-maxage=9, stale-if-error=7\r\n"
				   "Vary: x-thing\r\nContent-Length: 0\r\n\r\n";
	struct policy_meta m = {.request_time = -5,
				.response_time = 1764806400,
				.date = 1764806399,
				.age_value = 3,
				.last_modified = -1,
				.lifetime = 123456789012LL,
				.heuristic = true,
				.cc = {.flags = CC_PUBLIC | CC_IMMUTABLE | CC_MUST_REVALIDATE,
				       .max_age = -1,
				       .s_maxage = 9,
				       .max_stale = CC_ANY,
				       .min_fresh = INT64_MIN,
				       .stale_while_revalidate = 2,
				       .stale_if_error = 7,
				       .bad_freshness = true,
				       .present = true}};
	static const char vary[] = "accept-encoding:gzip\naccept-language:\x01\nx-thing:a,b\n";
	const char *key = "http://example.com:80/rich?q=1";
	struct cache_obj *o = cache_obj_new(key, strlen(key), vary, sizeof(vary) - 1, head,
					    sizeof(head) - 1, 0, &m);
	char buf[1000];
	for (size_t off = 0; off < body_len;) {
		size_t n = SL_MIN(sizeof(buf), body_len - off);
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)((off + i) * 131 % 251);
		cache_obj_append(o, buf, n);
		off += n;
	}
	cache_obj_done(o);
	return o;
}

static bool same_obj(const struct cache_obj *a, const struct cache_obj *b)
{
	if (a->key_len != b->key_len || memcmp(a->key, b->key, a->key_len) ||
	    a->vary_len != b->vary_len || memcmp(a->vary, b->vary, a->vary_len) ||
	    a->head_len != b->head_len || memcmp(a->head, b->head, a->head_len) ||
	    a->status != b->status || a->nhdrs != b->nhdrs || a->body_len != b->body_len ||
	    !b->complete)
		return false;
	const struct policy_meta *x = &a->meta, *y = &b->meta;
	if (x->request_time != y->request_time || x->response_time != y->response_time ||
	    x->date != y->date || x->age_value != y->age_value ||
	    x->last_modified != y->last_modified || x->lifetime != y->lifetime ||
	    x->heuristic != y->heuristic)
		return false;
	if (x->cc.flags != y->cc.flags || x->cc.max_age != y->cc.max_age ||
	    x->cc.s_maxage != y->cc.s_maxage || x->cc.max_stale != y->cc.max_stale ||
	    x->cc.min_fresh != y->cc.min_fresh ||
	    x->cc.stale_while_revalidate != y->cc.stale_while_revalidate ||
	    x->cc.stale_if_error != y->cc.stale_if_error ||
	    x->cc.bad_freshness != y->cc.bad_freshness || x->cc.present != y->cc.present)
		return false;
	/* Bodies byte for byte, whatever the chunking. */
	const struct cache_chunk *ca = a->body, *cb = b->body;
	size_t ia = 0, ib = 0;
	for (uint64_t k = 0; k < a->body_len; k++) {
		while (ca && ia == ca->len) {
			ca = ca->next;
			ia = 0;
		}
		while (cb && ib == cb->len) {
			cb = cb->next;
			ib = 0;
		}
		if (!ca || !cb || ca->data[ia++] != cb->data[ib++])
			return false;
	}
	return true;
}

TEST(encoded_object_decodes_to_the_same_key_vary_head_meta_and_body)
{
	size_t sizes[] = {0, 1, 5000, 3 * CACHE_CHUNK + 17};
	for (size_t i = 0; i < SL_ARRAY_LEN(sizes); i++) {
		struct cache_obj *o = make_rich(sizes[i]);
		size_t len;
		void *buf = diskfmt_encode(o, &len);
		CHECK_INT(len, diskfmt_file_len(o));
		const char *why = NULL;
		struct cache_obj *back = diskfmt_decode(buf, len, &why);
		CHECK(back != NULL);
		if (back) {
			CHECK(same_obj(o, back));
			CHECK(h1_find(back->hdrs, back->nhdrs, "cache-control") != NULL);
		} else {
			printf("    decode: %s\n", why);
		}
		cache_obj_put(&back);
		cache_obj_put(&o);
		free(buf);
	}
}

/* A header whose checksum is right but whose metadata no response could
 * have given (a hand-made file) is refused: the policy's sums must not
 * overflow on it. */
TEST(metadata_out_of_range_is_rejected)
{
	const int64_t bad[] = {INT64_MAX, INT64_MIN, DISKFMT_TIME_MAX + 1};
	for (unsigned field = 0; field < 3; field++) {
		for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
			struct cache_obj *o = make_rich(10);
			if (field == 0)
				o->meta.age_value = bad[i];
			else if (field == 1)
				o->meta.date = bad[i];
			else
				o->meta.lifetime = bad[i];
			size_t len;
			void *buf = diskfmt_encode(o, &len);
			const char *why = NULL;
			struct cache_obj *back = diskfmt_decode(buf, len, &why);
			CHECK(back == NULL);
			CHECK_STR(why ? why : "", "metadata out of range");
			cache_obj_put(&back);
			cache_obj_put(&o);
			free(buf);
		}
	}
	struct cache_obj *o = make_rich(10);
	o->meta.age_value = CC_DELTA_MAX; /* the largest an Age field gives */
	o->meta.lifetime = -DISKFMT_TIME_MAX;
	size_t len;
	void *buf = diskfmt_encode(o, &len);
	const char *why = NULL;
	struct cache_obj *back = diskfmt_decode(buf, len, &why);
	CHECK(back != NULL);
	cache_obj_put(&back);
	cache_obj_put(&o);
	free(buf);
}

TEST(header_alone_gives_what_the_index_needs)
{
	struct cache_obj *o = make_rich(100);
	size_t len;
	uint8_t *buf = diskfmt_encode(o, &len);
	struct diskfmt_hdr h;
	struct h1_header hdrs[MAX_HEADERS_CEIL];
	CHECK_INT(diskfmt_header(buf, 10, &h, hdrs, MAX_HEADERS_CEIL), DISKFMT_SHORT);
	CHECK_INT(h.hdr_len, DISKFMT_FIXED);
	CHECK_INT(diskfmt_header(buf, DISKFMT_FIXED, &h, hdrs, MAX_HEADERS_CEIL), DISKFMT_SHORT);
	CHECK_INT(h.hdr_len, diskfmt_header_len(o));
	CHECK_INT(h.file_len, len);
	CHECK_INT(diskfmt_header(buf, h.hdr_len, &h, hdrs, MAX_HEADERS_CEIL), DISKFMT_OK);
	CHECK_MEM(h.key, h.key_len, "http://example.com:80/rich?q=1");
	CHECK_INT(h.vary_len, o->vary_len);
	CHECK(memcmp(h.vary, o->vary, o->vary_len) == 0);
	CHECK_INT(h.head_len, o->head_len);
	CHECK_INT(h.status, 203);
	CHECK_INT(h.nhdrs, 4);
	CHECK_INT(h.meta.lifetime, 123456789012LL);
	CHECK_INT(h.body_len, 100);
	/* A torn header is rejected by its own checksum, body unread. */
	buf[DISKFMT_FIXED + 3] ^= 0x20;
	CHECK_INT(diskfmt_header(buf, h.hdr_len, &h, hdrs, MAX_HEADERS_CEIL), DISKFMT_BAD);
	CHECK_STR(h.why, "header checksum mismatch");
	free(buf);
	cache_obj_put(&o);
}

TEST(every_single_byte_corruption_is_rejected)
{
	struct cache_obj *o = make("http://a:80/c", head_vary, "gzip", "hello", 5);
	size_t len;
	uint8_t *buf = diskfmt_encode(o, &len);
	unsigned accepted = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t orig = buf[i];
		for (unsigned v = 0; v < 256; v++) {
			if (v == orig)
				continue;
			buf[i] = (uint8_t)v;
			const char *why = NULL;
			struct cache_obj *back = diskfmt_decode(buf, len, &why);
			if (back) {
				accepted++;
				cache_obj_put(&back);
			} else {
				CHECK(why != NULL);
			}
		}
		buf[i] = orig;
	}
	CHECK_INT(accepted, 0);
	free(buf);
	cache_obj_put(&o);
}

TEST(truncation_at_every_length_and_trailing_bytes_are_rejected)
{
	struct cache_obj *o = make("http://a:80/t", head_plain, NULL, "hello", 5);
	size_t len;
	uint8_t *buf = diskfmt_encode(o, &len);
	unsigned accepted = 0;
	for (size_t n = 0; n < len; n++) {
		const char *why = NULL;
		struct cache_obj *back = diskfmt_decode(buf, n, &why);
		accepted += back != NULL;
		cache_obj_put(&back);
	}
	CHECK_INT(accepted, 0);
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, buf, len);
	longer[len] = 0;
	const char *why = NULL;
	CHECK(diskfmt_decode(longer, len + 1, &why) == NULL);
	CHECK_STR(why, "trailing bytes after the file");
	struct cache_obj *back = diskfmt_decode(buf, len, &why);
	CHECK(back && body_is(back, "hello", 5));
	cache_obj_put(&back);
	free(longer);
	free(buf);
	cache_obj_put(&o);
}

TEST(names_differ_by_key_and_vary_and_are_hex)
{
	char a[DISKFMT_NAME_LEN + 1], b[DISKFMT_NAME_LEN + 1], c[DISKFMT_NAME_LEN + 1];
	diskfmt_name("ab", 2, "c", 1, a);
	diskfmt_name("a", 1, "bc", 2, b);
	diskfmt_name("ab", 2, "c", 1, c);
	CHECK(strcmp(a, b) != 0);
	CHECK_STR(a, c);
	CHECK_INT(strspn(a, "0123456789abcdef"), DISKFMT_NAME_LEN);
}

/* ---- the store ---- */

TEST(written_object_is_read_back_on_the_loop)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	CHECK(d != NULL);
	struct cache_obj *o = make("http://a:80/x", head_plain, NULL, "hello", 5);
	CHECK(disk_write(d, o));
	/* Queued behind the write of that name: sees what it wrote. */
	bool miss;
	struct cache_obj *h = get(d, "http://a:80/x", NULL, &miss);
	CHECK(!miss);
	CHECK(h != NULL);
	if (h) {
		CHECK(same_obj(o, h));
		CHECK(body_is(h, "hello", 5));
		CHECK_INT(h->meta.lifetime, 60);
	}
	cache_obj_put(&h);
	CHECK(get(d, "http://a:80/y", NULL, &miss) == NULL);
	CHECK(miss);
	uint64_t n, bytes;
	bool deg;
	stats(d, &n, &bytes, &deg);
	CHECK_INT(n, 1);
	CHECK_INT(bytes, disk_charge(diskfmt_file_len(o)));
	CHECK(!deg);
	cache_obj_put(&o);
	disk_close(&d);
	CHECK(d == NULL);
	rm_rf(dir);
}

TEST(objects_survive_a_restart_and_leftover_files_are_cleaned)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	char body[70000];
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)(i * 7);
	struct cache_obj *o = make("http://a:80/big", head_plain, NULL, body, sizeof(body));
	struct cache_obj *gz = make("http://a:80/v", head_vary, "gzip", "GZIP!", 5);
	CHECK(disk_write(d, o) && disk_write(d, gz));
	disk_close(&d);

	/* What a crash leaves: a temporary file, a stray file, an empty file
	 * with a good name. */
	char p[4096];
	snprintf(p, sizeof(p), "%s/tmp/0123.1", dir);
	close(open(p, O_WRONLY | O_CREAT, 0600));
	snprintf(p, sizeof(p), "%s/ab/junk", dir);
	close(open(p, O_WRONLY | O_CREAT, 0600));
	snprintf(p, sizeof(p), "%s/ab/ab000000000000000000000000000000", dir);
	close(open(p, O_WRONLY | O_CREAT, 0600));
	/* A valid file under a name that is not its key's. */
	char src[4096], moved[4096];
	obj_path(dir, "http://a:80/big", "", 0, src, sizeof(src));
	snprintf(moved, sizeof(moved), "%s/cd/cd000000000000000000000000000000", dir);
	CHECK(copy_file(src, moved));

	d = open_store(dir, 1 << 20);
	CHECK(d != NULL);
	uint64_t n, bytes;
	stats(d, &n, &bytes, NULL);
	CHECK_INT(n, 2);
	CHECK_INT(bytes, disk_charge(diskfmt_file_len(o)) + disk_charge(diskfmt_file_len(gz)));
	struct cache_obj *h = get(d, "http://a:80/big", NULL, NULL);
	CHECK(h && same_obj(o, h) && body_is(h, body, sizeof(body)));
	cache_obj_put(&h);
	/* The Vary field came back from the header alone. */
	h = get(d, "http://a:80/v", "gzip", NULL);
	CHECK(h && body_is(h, "GZIP!", 5));
	cache_obj_put(&h);
	bool miss;
	CHECK(get(d, "http://a:80/v", "br", &miss) == NULL && miss);
	disk_close(&d); /* the deletions the rebuild queued are done */
	CHECK(access(p, F_OK) != 0);
	snprintf(p, sizeof(p), "%s/ab/junk", dir);
	CHECK(access(p, F_OK) != 0);
	snprintf(p, sizeof(p), "%s/tmp/0123.1", dir);
	CHECK(access(p, F_OK) != 0);
	CHECK(access(moved, F_OK) != 0);
	cache_obj_put(&o);
	cache_obj_put(&gz);
	rm_rf(dir);
}

static void flip_byte(const char *path, long off_from_end)
{
	int fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	off_t end = lseek(fd, 0, SEEK_END);
	uint8_t c;
	CHECK(pread(fd, &c, 1, end - off_from_end) == 1);
	c ^= 0x10;
	CHECK(pwrite(fd, &c, 1, end - off_from_end) == 1);
	close(fd);
}

TEST(corrupted_file_reads_as_a_miss_and_is_deleted)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	struct cache_obj *a = make("http://a:80/body", head_plain, NULL, "hello", 5);
	struct cache_obj *b = make("http://a:80/head", head_plain, NULL, "world", 5);
	CHECK(disk_write(d, a) && disk_write(d, b));
	disk_close(&d);
	char pa[4096], pb[4096];
	obj_path(dir, "http://a:80/body", "", 0, pa, sizeof(pa));
	obj_path(dir, "http://a:80/head", "", 0, pb, sizeof(pb));
	CHECK(access(pa, F_OK) == 0 && access(pb, F_OK) == 0);
	/* A body byte: the header is fine, so the entry is indexed; the read
	 * finds the damage. A head byte: the scan finds it. */
	flip_byte(pa, DISKFMT_TRAILER + 2);
	flip_byte(pb, DISKFMT_TRAILER + 5 + 10);

	d = open_store(dir, 1 << 20);
	uint64_t n, bytes;
	stats(d, &n, &bytes, NULL);
	CHECK_INT(n, 1);
	bool miss;
	CHECK(get(d, "http://a:80/body", NULL, &miss) == NULL);
	CHECK(!miss); /* the index had it; the read found it damaged */
	CHECK(access(pa, F_OK) != 0);
	/* The rebuild queued the bad head's deletion on an I/O thread:
	 * wait (bounded) for it. */
	for (int i = 0; i < 5000 && access(pb, F_OK) == 0; i++)
		usleep(1000);
	CHECK(access(pb, F_OK) != 0);
	stats(d, &n, &bytes, NULL);
	CHECK_INT(n, 0);
	CHECK_INT(bytes, 0);
	CHECK(get(d, "http://a:80/body", NULL, &miss) == NULL && miss);
	disk_close(&d);
	cache_obj_put(&a);
	cache_obj_put(&b);
	rm_rf(dir);
}

TEST(truncated_file_is_dropped_at_start_up)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	struct cache_obj *a = make("http://a:80/t", head_plain, NULL, "hello", 5);
	CHECK(disk_write(d, a));
	disk_close(&d);
	char pa[4096];
	obj_path(dir, "http://a:80/t", "", 0, pa, sizeof(pa));
	struct stat st;
	CHECK(stat(pa, &st) == 0);
	CHECK(truncate(pa, st.st_size - 1) == 0);
	d = open_store(dir, 1 << 20);
	uint64_t n;
	stats(d, &n, NULL, NULL);
	CHECK_INT(n, 0);
	disk_close(&d); /* the deletion the rebuild queued is done */
	CHECK(access(pa, F_OK) != 0);
	cache_obj_put(&a);
	rm_rf(dir);
}

TEST(vary_variants_are_selected_and_replaced)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	struct cache_obj *gz = make("http://a:80/v", head_vary, "gzip", "GZIP!", 5);
	struct cache_obj *id = make("http://a:80/v", head_vary, NULL, "plain", 5);
	struct cache_obj *br = make("http://a:80/v", head_vary, "br", "BROTL", 5);
	CHECK(disk_write(d, gz) && disk_write(d, id) && disk_write(d, br));
	struct cache_obj *h = get(d, "http://a:80/v", "gzip", NULL);
	CHECK(h && body_is(h, "GZIP!", 5));
	cache_obj_put(&h);
	h = get(d, "http://a:80/v", NULL, NULL);
	CHECK(h && body_is(h, "plain", 5));
	cache_obj_put(&h);
	h = get(d, "http://a:80/v", " br ", NULL); /* normalised like the stored one */
	CHECK(h && body_is(h, "BROTL", 5));
	cache_obj_put(&h);
	bool miss;
	CHECK(get(d, "http://a:80/v", "deflate", &miss) == NULL && miss);
	CHECK(disk_has_key(d, "http://a:80/v", 13)); /* but the URL is there */
	CHECK(!disk_has_key(d, "http://a:80/w", 13));
	/* A newer gzip variant replaces the old one in place. */
	struct cache_obj *gz2 = make("http://a:80/v", head_vary, "gzip", "NEWGZ", 5);
	CHECK(disk_write(d, gz2));
	h = get(d, "http://a:80/v", "gzip", NULL);
	CHECK(h && body_is(h, "NEWGZ", 5));
	cache_obj_put(&h);
	uint64_t n, bytes;
	stats(d, &n, &bytes, NULL);
	CHECK_INT(n, 3);
	uint64_t fb;
	disk_close(&d);
	CHECK_INT(count_files(dir, &fb), 3);
	CHECK_INT(fb, bytes);

	/* Several Vary lines select as one list, before and after a restart. */
	d = open_store(dir, 1 << 20);
	struct cache_obj *rich = make_rich(10);
	CHECK(disk_write(d, rich));
	struct h1_header rq[] = {{SV_LIT("X-Thing"), SV_LIT("a,  b")},
				 {SV_LIT("Accept-Encoding"), SV_LIT("gzip")}};
	for (int pass = 0; pass < 2; pass++) {
		struct rd r = {.loop = ev_loop_new()};
		struct disk_mbox *mb = disk_mbox_new(r.loop);
		struct disk_read *dr =
			disk_read(d, mb, rich->key, rich->key_len, rq, 2, on_read, &r);
		CHECK(dr != NULL);
		if (dr)
			run_for(r.loop, 10000);
		CHECK(r.o && same_obj(rich, r.o));
		cache_obj_put(&r.o);
		/* Another X-Thing: not this variant. */
		CHECK(disk_read(d, mb, rich->key, rich->key_len, rq + 1, 1, on_read, &r) == NULL);
		disk_mbox_free(&mb);
		ev_loop_free(&r.loop);
		disk_close(&d);
		d = open_store(dir, 1 << 20);
	}
	disk_close(&d);
	cache_obj_put(&rich);
	cache_obj_put(&gz);
	cache_obj_put(&id);
	cache_obj_put(&br);
	cache_obj_put(&gz2);
	rm_rf(dir);
}

TEST(purge_removes_every_variant_from_index_and_disk)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	struct cache_obj *a = make("http://a:80/p", head_vary, "gzip", "aaaaa", 5);
	struct cache_obj *b = make("http://a:80/p", head_vary, NULL, "bbbbb", 5);
	struct cache_obj *c = make("http://a:80/q", head_plain, NULL, "ccccc", 5);
	CHECK(disk_write(d, a) && disk_write(d, b) && disk_write(d, c));
	/* Files written (a read of a name runs after its write)... */
	struct cache_obj *h = get(d, "http://a:80/p", "gzip", NULL);
	CHECK(h && body_is(h, "aaaaa", 5));
	cache_obj_put(&h);
	h = get(d, "http://a:80/p", NULL, NULL);
	CHECK(h && body_is(h, "bbbbb", 5));
	cache_obj_put(&h);
	CHECK_INT(disk_purge(d, "http://a:80/p", 13), 2);
	/* ...and written again, purged before the writes may have run. */
	CHECK(disk_write(d, a) && disk_write(d, b));
	CHECK_INT(disk_purge(d, "http://a:80/p", 13), 2);
	CHECK_INT(disk_purge(d, "http://a:80/p", 13), 0);
	bool miss;
	CHECK(get(d, "http://a:80/p", "gzip", &miss) == NULL && miss);
	h = get(d, "http://a:80/q", NULL, NULL);
	CHECK(h && body_is(h, "ccccc", 5));
	cache_obj_put(&h);
	disk_close(&d);
	uint64_t fb;
	CHECK_INT(count_files(dir, &fb), 1);
	/* And it stays purged across a restart. */
	d = open_store(dir, 1 << 20);
	CHECK(get(d, "http://a:80/p", NULL, &miss) == NULL && miss);
	disk_close(&d);
	cache_obj_put(&a);
	cache_obj_put(&b);
	cache_obj_put(&c);
	rm_rf(dir);
}

struct pw {
	struct ev_loop *loop;
	const char *dir;
	int calls, files_then;
};

static void on_purged(void *arg, struct cache_obj *o)
{
	struct pw *p = arg;
	uint64_t fb;
	CHECK(o == NULL);
	p->calls++;
	p->files_then = count_files(p->dir, &fb);
	ev_loop_stop(p->loop);
}

/* The I/O thread (of the 2 open_bare starts) that o's file name goes to. */
static unsigned io_thread_of(const struct cache_obj *o)
{
	char name[DISKFMT_NAME_LEN + 1];
	diskfmt_name(o->key, o->key_len, o->vary, o->vary_len, name);
	return (unsigned)(cache_key_hash(name, DISKFMT_NAME_LEN) % 2);
}

TEST(purge_wait_answers_once_the_files_are_gone)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 64 << 20);
	struct cache_obj *o[8], *fill[16];
	int no = 0, nfill = 0;
	size_t big = 1 << 20;
	char *body = malloc(big);
	char ae[16], key[32];
	memset(body, 'z', big);
	/* Eight variants of one URL: one whose file is on thread 0, seven on
	 * thread 1, behind 16 MiB of other objects' writes there. The wait must
	 * end with thread 1's removals, well after thread 0's. */
	for (int i = 0; no < 8 && i < 1000; i++) {
		snprintf(ae, sizeof(ae), "x%d", i);
		struct cache_obj *v = make("http://a:80/w", head_vary, ae, body, big);
		if (io_thread_of(v) == (no == 0 ? 0u : 1u))
			o[no++] = v;
		else
			cache_obj_put(&v);
	}
	for (int i = 0; nfill < 16 && i < 1000; i++) {
		snprintf(key, sizeof(key), "http://f:80/%d", i);
		struct cache_obj *f = make(key, head_plain, NULL, body, big);
		if (io_thread_of(f) == 1)
			fill[nfill++] = f;
		else
			cache_obj_put(&f);
	}
	CHECK_INT(no, 8);
	CHECK_INT(nfill, 16);
	for (int i = 0; i < nfill; i++)
		CHECK(disk_write(d, fill[i]));
	for (int i = 0; i < no; i++)
		CHECK(disk_write(d, o[i]));
	struct pw p = {.loop = ev_loop_new(), .dir = dir};
	struct disk_mbox *mb = disk_mbox_new(p.loop);
	unsigned n = 99;
	struct disk_read *w = disk_purge_wait(d, mb, "http://a:80/w", 13, &n, on_purged, &p);
	CHECK_INT(n, 8);
	CHECK(w != NULL);
	if (w)
		run_for(p.loop, 10000);
	CHECK_INT(p.calls, 1);
	CHECK_INT(p.files_then, nfill); /* every variant's file gone when it is called */
	/* Nothing stored: no wait, no call. */
	n = 99;
	CHECK(disk_purge_wait(d, mb, "http://a:80/w", 13, &n, on_purged, &p) == NULL);
	CHECK_INT(n, 0);
	/* Cancelled: never called (and nothing leaks). */
	CHECK(disk_write(d, o[0]));
	w = disk_purge_wait(d, mb, "http://a:80/w", 13, &n, on_purged, &p);
	CHECK_INT(n, 1);
	CHECK(w != NULL);
	disk_read_cancel(&w);
	CHECK(w == NULL);
	run_for(p.loop, 200);
	CHECK_INT(p.calls, 1);
	disk_mbox_free(&mb);
	ev_loop_free(&p.loop);
	disk_close(&d);
	for (int i = 0; i < no; i++)
		cache_obj_put(&o[i]);
	for (int i = 0; i < nfill; i++)
		cache_obj_put(&fill[i]);
	free(body);
	rm_rf(dir);
}

TEST(lookups_miss_until_the_rebuild_reaches_the_files_then_hit)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	struct cache_obj *o = make("http://a:80/r", head_plain, NULL, "rrrrr", 5);
	CHECK(disk_write(d, o));
	disk_close(&d);

	d = open_bare(dir, 1 << 20);
	CHECK(disk_rebuilding(d));
	bool miss;
	CHECK(get(d, "http://a:80/r", NULL, &miss) == NULL && miss);
	uint64_t n;
	stats(d, &n, NULL, NULL);
	CHECK_INT(n, 0);
	disk_rebuild(d);
	CHECK(rebuilt(d));
	struct cache_obj *h = get(d, "http://a:80/r", NULL, NULL);
	CHECK(h && body_is(h, "rrrrr", 5));
	cache_obj_put(&h);
	stats(d, &n, NULL, NULL);
	CHECK_INT(n, 1);
	disk_close(&d);
	cache_obj_put(&o);
	rm_rf(dir);
}

static bool answer(void *arg)
{
	return *(bool *)arg;
}

TEST(a_conditional_write_enters_the_index_only_if_still_wanted)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	struct cache_obj *o = make("http://a:80/c", head_plain, NULL, "ccccc", 5);
	bool no = false, yes = true;
	bool miss;
	CHECK(!disk_write_if(d, o, answer, &no));
	CHECK(get(d, "http://a:80/c", NULL, &miss) == NULL && miss);
	disk_close(&d); /* its writes are done */
	uint64_t fb;
	CHECK_INT(count_files(dir, &fb), 0); /* the refused one wrote nothing */
	d = open_store(dir, 1 << 20);
	CHECK(disk_write_if(d, o, answer, &yes));
	struct cache_obj *h = get(d, "http://a:80/c", NULL, NULL);
	CHECK(h && body_is(h, "ccccc", 5));
	cache_obj_put(&h);
	disk_close(&d);
	CHECK_INT(count_files(dir, &fb), 1);
	cache_obj_put(&o);
	rm_rf(dir);
}

TEST(a_newer_response_not_written_retires_the_stored_one_unless_invalidated_since)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	struct cache_obj *v1 = make("http://a:80/f", head_plain, NULL, "old", 3);
	struct cache_obj *v2 = make("http://a:80/f", head_plain, NULL, "new", 3);
	struct cache_obj *other = make("http://a:80/g", head_plain, NULL, "ggg", 3);
	bool no = false, yes = true, miss;
	CHECK(disk_write(d, v1));
	CHECK(disk_write(d, other));
	/* v2 was fetched before an invalidation: v1 (as far as it knows)
	 * may have come after it, and stays. */
	CHECK(!disk_forget_if(d, v2, answer, &no));
	struct cache_obj *h = get(d, "http://a:80/f", NULL, NULL);
	CHECK(h && body_is(h, "old", 3));
	cache_obj_put(&h);
	CHECK(disk_forget_if(d, v2, answer, &yes));
	CHECK(get(d, "http://a:80/f", NULL, &miss) == NULL && miss);
	CHECK(!disk_forget_if(d, v2, answer, &yes)); /* nothing left to retire */
	h = get(d, "http://a:80/g", NULL, NULL);     /* another key is untouched */
	CHECK(h && body_is(h, "ggg", 3));
	cache_obj_put(&h);
	disk_close(&d); /* its removals are done */
	uint64_t fb;
	CHECK_INT(count_files(dir, &fb), 1);
	cache_obj_put(&v1);
	cache_obj_put(&v2);
	cache_obj_put(&other);
	rm_rf(dir);
}

TEST(what_is_purged_or_written_before_the_rebuild_wins_over_the_files)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	struct cache_obj *a = make("http://a:80/p", head_vary, "gzip", "aaaaa", 5);
	struct cache_obj *b = make("http://a:80/p", head_vary, NULL, "bbbbb", 5);
	struct cache_obj *w1 = make("http://a:80/w", head_plain, NULL, "old!!", 5);
	struct cache_obj *w2 = make("http://a:80/w", head_plain, NULL, "new!!", 5);
	struct cache_obj *k = make("http://a:80/k", head_plain, NULL, "kkkkk", 5);
	CHECK(disk_write(d, a) && disk_write(d, b) && disk_write(d, w1) && disk_write(d, k));
	disk_close(&d);

	/* While the index is still empty: a purge of a key it has not
	 * reached (both variants), and a newer copy of another. */
	d = open_bare(dir, 1 << 20);
	CHECK_INT(disk_purge(d, "http://a:80/p", 13), 0);
	CHECK(disk_write(d, w2));
	disk_rebuild(d);
	CHECK(rebuilt(d));
	bool miss;
	CHECK(get(d, "http://a:80/p", "gzip", &miss) == NULL && miss);
	CHECK(get(d, "http://a:80/p", NULL, &miss) == NULL && miss);
	struct cache_obj *h = get(d, "http://a:80/w", NULL, NULL);
	CHECK(h && body_is(h, "new!!", 5));
	cache_obj_put(&h);
	h = get(d, "http://a:80/k", NULL, NULL);
	CHECK(h && body_is(h, "kkkkk", 5));
	cache_obj_put(&h);
	uint64_t n;
	stats(d, &n, NULL, NULL);
	CHECK_INT(n, 2);
	disk_close(&d);
	uint64_t fb;
	CHECK_INT(count_files(dir, &fb), 2); /* the purged files are gone */
	/* And so it stays across another restart. */
	d = open_store(dir, 1 << 20);
	CHECK(get(d, "http://a:80/p", NULL, &miss) == NULL && miss);
	h = get(d, "http://a:80/w", NULL, NULL);
	CHECK(h && body_is(h, "new!!", 5));
	cache_obj_put(&h);
	disk_close(&d);
	cache_obj_put(&a);
	cache_obj_put(&b);
	cache_obj_put(&w1);
	cache_obj_put(&w2);
	cache_obj_put(&k);
	rm_rf(dir);
}

struct come_and_go {
	struct disk_store *d;
	const char *dir;
	struct cache_obj *x, *others[5];
};

/* Between the rebuild's scan (which saw x's old file) and its merge: x is
 * written anew, then evicted by others (its file unlinked), then the
 * others go, leaving room. */
static void come_and_go(void *arg)
{
	struct come_and_go *c = arg;
	char path[4096];
	struct stat st;
	obj_path(c->dir, "http://a:80/x", "", 0, path, sizeof(path));
	CHECK(disk_write(c->d, c->x));
	for (int i = 0; i < 5; i++)
		CHECK(disk_write(c->d, c->others[i]));
	for (int i = 0; i < 2000 && stat(path, &st) == 0; i++)
		usleep(1000);
	CHECK(stat(path, &st) < 0); /* evicted: its file is gone */
	for (int i = 0; i < 5; i++) /* (the first went with x) */
		(void)disk_purge(c->d, c->others[i]->key, c->others[i]->key_len);
}

TEST(a_name_written_and_evicted_during_the_rebuild_is_not_brought_back)
{
	char *dir = tmp_dir();
	char body[1000];
	memset(body, 'x', sizeof(body));
	struct come_and_go c = {.dir = dir};
	c.x = make("http://a:80/x", head_plain, NULL, body, sizeof(body));
	for (int i = 0; i < 5; i++) {
		char key[64];
		snprintf(key, sizeof(key), "http://a:80/other%d", i);
		c.others[i] = make(key, head_plain, NULL, body, sizeof(body));
	}
	struct disk_store *d = open_store(dir, 4 * DISK_BLOCK);
	CHECK(disk_write(d, c.x));
	disk_close(&d);

	c.d = d = open_bare(dir, 4 * DISK_BLOCK);
	disk_rebuild_hook(d, come_and_go, &c);
	disk_rebuild(d);
	CHECK(rebuilt(d));
	bool miss;
	CHECK(get(d, "http://a:80/x", NULL, &miss) == NULL && miss);
	uint64_t n, fb;
	stats(d, &n, NULL, NULL);
	disk_close(&d);
	CHECK_INT(n, 0);
	CHECK_INT(count_files(dir, &fb), 0);
	cache_obj_put(&c.x);
	for (int i = 0; i < 5; i++)
		cache_obj_put(&c.others[i]);
	rm_rf(dir);
}

/* Out of descriptors (EMFILE), a read is a miss; the file is good and
 * stays, and so does its entry. */
TEST(a_read_short_of_descriptors_misses_and_keeps_the_file)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	struct cache_obj *o = make("http://a:80/fd", head_plain, NULL, "hello", 5);
	CHECK(disk_write(d, o));
	struct cache_obj *h = get(d, "http://a:80/fd", NULL, NULL);
	CHECK(h && body_is(h, "hello", 5));
	cache_obj_put(&h);

	struct rd r = {.loop = ev_loop_new()};
	struct disk_mbox *mb = disk_mbox_new(r.loop);
	struct rlimit old, low;
	CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
	low = old;
	low.rlim_cur = 64;
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
	int fds[64], nf = 0, fd;
	while (nf < 64 && (fd = dup(0)) >= 0)
		fds[nf++] = fd;
	CHECK(disk_read(d, mb, "http://a:80/fd", 14, NULL, 0, on_read, &r) != NULL);
	run_for(r.loop, 5000);
	for (int i = 0; i < nf; i++)
		close(fds[i]);
	CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
	CHECK_INT(r.calls, 1);
	CHECK(r.o == NULL);
	disk_mbox_free(&mb);
	ev_loop_free(&r.loop);

	h = get(d, "http://a:80/fd", NULL, NULL); /* descriptors again: a hit */
	CHECK(h && body_is(h, "hello", 5));
	cache_obj_put(&h);
	uint64_t fb;
	CHECK_INT(count_files(dir, &fb), 1);
	disk_close(&d);
	cache_obj_put(&o);
	rm_rf(dir);
}

TEST(closing_during_the_rebuild_stops_it_and_loses_nothing)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	struct cache_obj *o = make("http://a:80/c", head_plain, NULL, "ccccc", 5);
	CHECK(disk_write(d, o));
	disk_close(&d);
	d = open_bare(dir, 1 << 20);
	disk_rebuild(d);
	disk_close(&d); /* however far it got */
	d = open_store(dir, 1 << 20);
	struct cache_obj *h = get(d, "http://a:80/c", NULL, NULL);
	CHECK(h && body_is(h, "ccccc", 5));
	cache_obj_put(&h);
	disk_close(&d);
	cache_obj_put(&o);
	rm_rf(dir);
}

TEST(eviction_keeps_files_within_capacity_and_hits_stay)
{
	char *dir = tmp_dir();
	char body[1000];
	memset(body, 'x', sizeof(body));
	struct cache_obj *probe = make("http://a:80/e/00", head_plain, NULL, body, sizeof(body));
	uint64_t one = disk_charge(diskfmt_file_len(probe)); /* one block */
	cache_obj_put(&probe);
	uint64_t cap = one * 10 + one / 2;
	struct disk_store *d = open_store(dir, cap);
	char key[64];
	for (unsigned i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "http://a:80/e/%02u", i);
		struct cache_obj *o = make(key, head_plain, NULL, body, sizeof(body));
		CHECK(disk_write(d, o));
		cache_obj_put(&o);
		/* Key 0 is read after every write: its reference bit keeps it. */
		struct cache_obj *h = get(d, "http://a:80/e/00", NULL, NULL);
		CHECK(h != NULL);
		cache_obj_put(&h);
		uint64_t n, bytes;
		stats(d, &n, &bytes, NULL);
		CHECK(bytes <= cap);
	}
	uint64_t n, bytes;
	stats(d, &n, &bytes, NULL);
	CHECK_INT(n, 10);
	bool miss;
	CHECK(get(d, "http://a:80/e/05", NULL, &miss) == NULL && miss);
	struct cache_obj *h = get(d, "http://a:80/e/39", NULL, NULL);
	CHECK(h != NULL);
	cache_obj_put(&h);
	/* Larger than the whole store: refused. */
	char big[50000];
	memset(big, 'y', sizeof(big));
	struct cache_obj *o = make("http://a:80/big", head_plain, NULL, big, sizeof(big));
	CHECK(!disk_write(d, o));
	cache_obj_put(&o);
	disk_close(&d);
	uint64_t fb;
	CHECK_INT(count_files(dir, &fb), 10);
	CHECK(fb <= cap);
	/* A smaller capacity on restart evicts down to it. */
	d = open_store(dir, one * 3);
	stats(d, &n, &bytes, NULL);
	CHECK_INT(n, 3);
	disk_close(&d);
	CHECK_INT(count_files(dir, &fb), 3);
	rm_rf(dir);
}

TEST(a_key_keeps_a_bounded_number_of_variants)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 22);
	char ae[16];
	for (unsigned i = 0; i < CACHE_MAX_VARIANTS + 5; i++) {
		snprintf(ae, sizeof(ae), "enc%u", i);
		struct cache_obj *o = make("http://a:80/many", head_vary, ae, "vvvvv", 5);
		CHECK(disk_write(d, o));
		cache_obj_put(&o);
	}
	uint64_t n;
	stats(d, &n, NULL, NULL);
	CHECK_INT(n, CACHE_MAX_VARIANTS);
	bool miss;
	CHECK(get(d, "http://a:80/many", "enc0", &miss) == NULL && miss);
	struct cache_obj *h = get(d, "http://a:80/many", "enc36", NULL);
	CHECK(h != NULL);
	cache_obj_put(&h);
	disk_close(&d);
	uint64_t fb;
	CHECK_INT(count_files(dir, &fb), CACHE_MAX_VARIANTS);
	rm_rf(dir);
}

/* Count lines of stderr containing needle while fn runs. */
static int stderr_fd_saved = -1, stderr_capture = -1;

static void capture_begin(void)
{
	char tmpl[] = "/tmp/sluice-test-disk-log-XXXXXX";
	stderr_capture = mkstemp(tmpl);
	unlink(tmpl);
	stderr_fd_saved = dup(2);
	dup2(stderr_capture, 2);
}

static unsigned capture_end(const char *needle)
{
	dup2(stderr_fd_saved, 2);
	close(stderr_fd_saved);
	char buf[8192];
	ssize_t n = pread(stderr_capture, buf, sizeof(buf) - 1, 0);
	close(stderr_capture);
	buf[n > 0 ? n : 0] = '\0';
	unsigned count = 0;
	for (char *p = buf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		count++;
	if (count != 1)
		printf("    log: %s\n", buf);
	return count;
}

TEST(unwritable_directory_fails_open_or_degrades_to_memory_only)
{
	if (geteuid() == 0) {
		printf("    skipped: running as root, which ignores permissions\n");
		return;
	}
	char *base = tmp_dir();
	char p[4096], err[512] = "";
	/* At start-up: the store cannot be made at all. */
	chmod(base, 0500);
	snprintf(p, sizeof(p), "%s/cache", base);
	CHECK(disk_open(p, 1 << 20, 2, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "Permission denied") != NULL);
	CHECK(disk_open(base, 1 << 20, 2, err, sizeof(err)) == NULL);
	CHECK(strstr(err, base) != NULL);
	chmod(base, 0700);

	/* At run time: one line, writes stop, reads go on. */
	struct disk_store *d = open_store(base, 1 << 20);
	struct cache_obj *a = make("http://a:80/ro1", head_plain, NULL, "hello", 5);
	struct cache_obj *b = make("http://a:80/ro2", head_plain, NULL, "world", 5);
	CHECK(disk_write(d, a));
	struct cache_obj *h = get(d, "http://a:80/ro1", NULL, NULL);
	CHECK(h != NULL);
	cache_obj_put(&h);
	snprintf(p, sizeof(p), "%s/tmp", base);
	chmod(p, 0500);
	capture_begin();
	CHECK(disk_write(d, b));
	bool deg = false;
	for (int i = 0; i < 500 && !deg; i++) {
		stats(d, NULL, NULL, &deg);
		if (!deg)
			usleep(10000);
	}
	CHECK(deg);
	CHECK(!disk_write(d, b));
	bool miss;
	CHECK(get(d, "http://a:80/ro2", NULL, &miss) == NULL && miss);
	h = get(d, "http://a:80/ro1", NULL, NULL);
	CHECK(h && body_is(h, "hello", 5));
	cache_obj_put(&h);
	uint64_t n;
	stats(d, &n, NULL, NULL);
	CHECK_INT(n, 1);
	/* Closed first: the flag is set just before the line is written. */
	disk_close(&d);
	CHECK_INT(capture_end("continuing with the memory cache only"), 1);
	chmod(p, 0700);
	cache_obj_put(&a);
	cache_obj_put(&b);
	rm_rf(base);
}

static void never(void *arg, struct cache_obj *o)
{
	int *calls = arg;
	(*calls)++;
	cache_obj_put(&o);
}

TEST(cancelled_reads_never_call_back_and_free_their_object)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	struct cache_obj *o = make("http://a:80/c", head_plain, NULL, "hello", 5);
	CHECK(disk_write(d, o));
	struct ev_loop *loop = ev_loop_new();
	struct disk_mbox *mb = disk_mbox_new(loop);
	int calls = 0;
	/* Cancelled at once, and cancelled after the I/O thread is likely
	 * done (the object read is then freed unseen). */
	struct disk_read *r1 = disk_read(d, mb, "http://a:80/c", 13, NULL, 0, never, &calls);
	CHECK(r1 != NULL);
	disk_read_cancel(&r1);
	CHECK(r1 == NULL);
	struct disk_read *r2 = disk_read(d, mb, "http://a:80/c", 13, NULL, 0, never, &calls);
	usleep(50000);
	disk_read_cancel(&r2);
	disk_read_cancel(&r2); /* NULL: ignored */
	run_for(loop, 100);
	CHECK_INT(calls, 0);
	/* A read still pending when its mailbox goes is dropped, unleaked. */
	struct disk_read *r3 = disk_read(d, mb, "http://a:80/c", 13, NULL, 0, never, &calls);
	CHECK(r3 != NULL);
	disk_mbox_free(&mb);
	CHECK(mb == NULL);
	disk_close(&d);
	ev_loop_free(&loop);
	CHECK_INT(calls, 0);
	cache_obj_put(&o);
	rm_rf(dir);
}

struct cancel_in_cb {
	struct disk_read *self, *other;
	struct ev_loop *loop;
	int calls;
};

static void cb_cancels(void *arg, struct cache_obj *o)
{
	struct cancel_in_cb *c = arg;
	c->calls++;
	/* Teardown code cancelling what it still holds, itself included. */
	disk_read_cancel(&c->self);
	disk_read_cancel(&c->other);
	cache_obj_put(&o);
	ev_loop_stop(c->loop);
}

TEST(a_callback_may_cancel_its_own_and_other_reads)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	struct cache_obj *o = make("http://a:80/c", head_plain, NULL, "hello", 5);
	CHECK(disk_write(d, o));
	struct ev_loop *loop = ev_loop_new();
	struct disk_mbox *mb = disk_mbox_new(loop);
	struct cancel_in_cb c = {.loop = loop};
	c.self = disk_read(d, mb, "http://a:80/c", 13, NULL, 0, cb_cancels, &c);
	c.other = disk_read(d, mb, "http://a:80/c", 13, NULL, 0, cb_cancels, &c);
	run_for(loop, 5000);
	run_for(loop, 100);
	CHECK_INT(c.calls, 1);
	disk_mbox_free(&mb);
	disk_close(&d);
	ev_loop_free(&loop);
	cache_obj_put(&o);
	rm_rf(dir);
}

/* Threads, each with its own loop, writing, reading and purging a small
 * set of keys at once: every hit's body names its key. */
struct thr {
	struct disk_store *d;
	unsigned seed, hits, bad;
};

struct thr_rd {
	struct ev_loop *loop;
	struct cache_obj *o;
	bool done;
};

static void thr_cb(void *arg, struct cache_obj *o)
{
	struct thr_rd *r = arg;
	r->o = o;
	r->done = true;
	ev_loop_stop(r->loop);
}

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	struct ev_loop *loop = ev_loop_new();
	struct disk_mbox *mb = disk_mbox_new(loop);
	char key[64];
	for (unsigned i = 0; i < 300; i++) {
		t->seed = t->seed * 1103515245 + 12345;
		unsigned k = (t->seed >> 16) % 16, op = (t->seed >> 8) % 8;
		snprintf(key, sizeof(key), "http://t:80/%u", k);
		if (op < 3) {
			struct cache_obj *o = make(key, head_plain, NULL, key, strlen(key));
			(void)disk_write(t->d, o);
			cache_obj_put(&o);
		} else if (op == 3) {
			(void)disk_purge(t->d, key, strlen(key));
		} else {
			struct thr_rd r = {.loop = loop};
			struct disk_read *dr =
				disk_read(t->d, mb, key, strlen(key), NULL, 0, thr_cb, &r);
			if (dr == NULL)
				continue;
			if (op == 7) {
				disk_read_cancel(&dr);
				continue;
			}
			while (!r.done)
				run_for(loop, 1000);
			if (r.o) {
				t->hits++;
				if (!body_is(r.o, key, strlen(key)))
					t->bad++;
			}
			cache_obj_put(&r.o);
		}
	}
	disk_mbox_free(&mb);
	ev_loop_free(&loop);
	return NULL;
}

TEST(threads_write_read_and_purge_at_once)
{
	char *dir = tmp_dir();
	struct disk_store *d = open_store(dir, 1 << 20);
	pthread_t th[4];
	struct thr a[4];
	for (unsigned i = 0; i < 4; i++) {
		a[i] = (struct thr){.d = d, .seed = i + 1};
		pthread_create(&th[i], NULL, thr_main, &a[i]);
	}
	unsigned hits = 0, bad = 0;
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		hits += a[i].hits;
		bad += a[i].bad;
	}
	CHECK(hits > 50);
	CHECK_INT(bad, 0);
	uint64_t n, bytes;
	stats(d, &n, &bytes, NULL);
	disk_close(&d);
	/* The index and the files agree once the queues are done. */
	uint64_t fb;
	CHECK_INT(count_files(dir, &fb), n);
	CHECK_INT(fb, bytes);
	rm_rf(dir);
}

int main(void)
{
	log_set_level(LOG_WARN);
	RUN(encoded_object_decodes_to_the_same_key_vary_head_meta_and_body);
	RUN(metadata_out_of_range_is_rejected);
	RUN(header_alone_gives_what_the_index_needs);
	RUN(every_single_byte_corruption_is_rejected);
	RUN(truncation_at_every_length_and_trailing_bytes_are_rejected);
	RUN(names_differ_by_key_and_vary_and_are_hex);
	RUN(written_object_is_read_back_on_the_loop);
	RUN(objects_survive_a_restart_and_leftover_files_are_cleaned);
	RUN(corrupted_file_reads_as_a_miss_and_is_deleted);
	RUN(truncated_file_is_dropped_at_start_up);
	RUN(vary_variants_are_selected_and_replaced);
	RUN(purge_removes_every_variant_from_index_and_disk);
	RUN(purge_wait_answers_once_the_files_are_gone);
	RUN(lookups_miss_until_the_rebuild_reaches_the_files_then_hit);
	RUN(a_conditional_write_enters_the_index_only_if_still_wanted);
	RUN(a_newer_response_not_written_retires_the_stored_one_unless_invalidated_since);
	RUN(what_is_purged_or_written_before_the_rebuild_wins_over_the_files);
	RUN(a_name_written_and_evicted_during_the_rebuild_is_not_brought_back);
	RUN(a_read_short_of_descriptors_misses_and_keeps_the_file);
	RUN(closing_during_the_rebuild_stops_it_and_loses_nothing);
	RUN(eviction_keeps_files_within_capacity_and_hits_stay);
	RUN(a_key_keeps_a_bounded_number_of_variants);
	RUN(unwritable_directory_fails_open_or_degrades_to_memory_only);
	RUN(cancelled_reads_never_call_back_and_free_their_object);
	RUN(a_callback_may_cancel_its_own_and_other_reads);
	RUN(threads_write_read_and_purge_at_once);
	return unit_done();
}

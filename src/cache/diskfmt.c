#include "cache/diskfmt.h"

#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "buf/limits.h"

/* Offsets in the fixed part. */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 4,
	OFF_STATUS = 6,
	OFF_RESERVED = 8,
	OFF_KEY_LEN = 12,
	OFF_VARY_LEN = 16,
	OFF_HEAD_LEN = 20,
	OFF_BODY_LEN = 24,
	OFF_META = 32, /* six i64 */
	OFF_CC_FLAGS = 80,
	OFF_BITS = 84,
	OFF_CC = 88, /* six i64 */
	OFF_HDR_SUM = 136,
};
_Static_assert(OFF_HDR_SUM + 8 == DISKFMT_FIXED, "fixed part layout");
/* Every field of these is in the file: one added here must be added there
 * too, with DISKFMT_VERSION bumped. (A field that fits in padding slips by;
 * the round-trip test compares each field.) */
_Static_assert(sizeof(struct cc) == 64, "struct cc changed: update the disk format");
_Static_assert(sizeof(struct policy_meta) == 120, "policy_meta changed: update the disk format");

#define BIT_HEURISTIC	  (1u << 0)
#define BIT_BAD_FRESHNESS (1u << 1)
#define BIT_CC_PRESENT	  (1u << 2)
#define BITS_KNOWN	  (BIT_HEURISTIC | BIT_BAD_FRESHNESS | BIT_CC_PRESENT)
/* Every CC_* flag policy.h defines. */
#define CC_KNOWN ((CC_IMMUTABLE << 1) - 1)

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The signed times travel as their two's complement bits. */
static int64_t geti64(const uint8_t *p)
{
	uint64_t u = get64(p);
	int64_t v;
	memcpy(&v, &u, sizeof(v));
	return v;
}

static void puti64(uint8_t *p, int64_t v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof(u));
	put64(p, u);
}

void diskfmt_name(const char *key, size_t key_len, const char *vary, size_t vary_len,
		  char out[DISKFMT_NAME_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	XXH3_state_t st;
	uint8_t len[8];

	/* The key's length first, so no split of one string into key and
	 * vary hashes like another. */
	put64(len, key_len);
	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, len, sizeof(len));
	XXH3_128bits_update(&st, key, key_len);
	XXH3_128bits_update(&st, vary, vary_len);
	XXH128_hash_t h = XXH3_128bits_digest(&st);
	for (int i = 0; i < 16; i++) {
		uint64_t w = i < 8 ? h.high64 : h.low64;
		unsigned b = (unsigned)(w >> (8 * (7 - i % 8))) & 0xff;
		out[2 * i] = hex[b >> 4];
		out[2 * i + 1] = hex[b & 15];
	}
	out[DISKFMT_NAME_LEN] = '\0';
}

size_t diskfmt_header_len(const struct cache_obj *o)
{
	return DISKFMT_FIXED + o->key_len + o->vary_len + o->head_len;
}

uint64_t diskfmt_file_len(const struct cache_obj *o)
{
	return diskfmt_header_len(o) + o->body_len + DISKFMT_TRAILER;
}

/* XXH3-64 of the header without its own checksum field. */
static uint64_t header_sum(const uint8_t *hdr, size_t hdr_len)
{
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, hdr, OFF_HDR_SUM);
	XXH3_64bits_update(&st, hdr + DISKFMT_FIXED, hdr_len - DISKFMT_FIXED);
	return XXH3_64bits_digest(&st);
}

void diskfmt_encode_header(const struct cache_obj *o, void *out)
{
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	SL_ASSERT(o->complete && o->body_len <= CACHE_MAX_OBJECT_CEIL);
	SL_ASSERT(o->key_len >= 1 && o->key_len <= CACHE_KEY_MAX);
	SL_ASSERT(o->vary_len <= CACHE_VARY_KEY_MAX && o->head_len <= MAX_RESPONSE_HEAD);
	const struct policy_meta *m = &o->meta;
	uint8_t *p = out;
	uint32_t bits = (m->heuristic ? BIT_HEURISTIC : 0) |
			(m->cc.bad_freshness ? BIT_BAD_FRESHNESS : 0) |
			(m->cc.present ? BIT_CC_PRESENT : 0);

	memset(p, 0, DISKFMT_FIXED);
	put32(p + OFF_MAGIC, DISKFMT_MAGIC);
	put16(p + OFF_VERSION, DISKFMT_VERSION);
	put16(p + OFF_STATUS, (uint16_t)o->status);
	put32(p + OFF_KEY_LEN, (uint32_t)o->key_len);
	put32(p + OFF_VARY_LEN, (uint32_t)o->vary_len);
	put32(p + OFF_HEAD_LEN, (uint32_t)o->head_len);
	put64(p + OFF_BODY_LEN, o->body_len);
	const int64_t meta[6] = {m->request_time, m->response_time, m->date,
				 m->age_value,	  m->last_modified, m->lifetime};
	for (int i = 0; i < 6; i++)
		puti64(p + OFF_META + 8 * i, meta[i]);
	/* Flags policy.h does not define would be rejected on reading. */
	put32(p + OFF_CC_FLAGS, m->cc.flags & CC_KNOWN);
	put32(p + OFF_BITS, bits);
	const int64_t cc[6] = {m->cc.max_age,
			       m->cc.s_maxage,
			       m->cc.max_stale,
			       m->cc.min_fresh,
			       m->cc.stale_while_revalidate,
			       m->cc.stale_if_error};
	for (int i = 0; i < 6; i++)
		puti64(p + OFF_CC + 8 * i, cc[i]);
	size_t off = DISKFMT_FIXED;
	memcpy(p + off, o->key, o->key_len);
	off += o->key_len;
	memcpy(p + off, o->vary, o->vary_len);
	off += o->vary_len;
	memcpy(p + off, o->head, o->head_len);
	off += o->head_len;
	put64(p + OFF_HDR_SUM, header_sum(p, off));
}

void diskfmt_encode_trailer(const struct cache_obj *o, const void *hdr, void *out)
{
	SL_CHECK_OBJ(o, CACHE_OBJ_MAGIC);
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, hdr, diskfmt_header_len(o));
	for (const struct cache_chunk *c = o->body; c; c = c->next)
		XXH3_64bits_update(&st, c->data, c->len);
	put64(out, XXH3_64bits_digest(&st));
}

void *diskfmt_encode(const struct cache_obj *o, size_t *len)
{
	size_t hl = diskfmt_header_len(o);
	size_t n = (size_t)diskfmt_file_len(o);
	uint8_t *p = sl_malloc(n);
	diskfmt_encode_header(o, p);
	size_t off = hl;
	for (const struct cache_chunk *c = o->body; c; c = c->next) {
		memcpy(p + off, c->data, c->len);
		off += c->len;
	}
	SL_ASSERT(off == hl + o->body_len);
	diskfmt_encode_trailer(o, p, p + off);
	*len = n;
	return p;
}

static int bad(struct diskfmt_hdr *h, const char *why)
{
	h->why = why;
	return DISKFMT_BAD;
}

int diskfmt_header(const void *buf, size_t len, struct diskfmt_hdr *h, struct h1_header *hdrs,
		   unsigned cap)
{
	static const struct h1_limits lim = {.max_head = MAX_RESPONSE_HEAD,
					     .max_line = MAX_RESPONSE_HEAD,
					     .max_headers = MAX_HEADERS_CEIL};
	const uint8_t *p = buf;

	memset(h, 0, sizeof(*h));
	h->hdr_len = DISKFMT_FIXED;
	if (len < DISKFMT_FIXED)
		return DISKFMT_SHORT;
	if (get32(p + OFF_MAGIC) != DISKFMT_MAGIC)
		return bad(h, "not a cache file (bad magic)");
	if (get16(p + OFF_VERSION) != DISKFMT_VERSION)
		return bad(h, "another format version");
	if (get32(p + OFF_RESERVED) != 0)
		return bad(h, "reserved bits set");
	uint32_t kl = get32(p + OFF_KEY_LEN), vl = get32(p + OFF_VARY_LEN);
	uint32_t hl = get32(p + OFF_HEAD_LEN);
	uint64_t bl = get64(p + OFF_BODY_LEN);
	if (kl == 0 || kl > CACHE_KEY_MAX)
		return bad(h, "key length out of range");
	if (vl > CACHE_VARY_KEY_MAX)
		return bad(h, "secondary key length out of range");
	if (hl == 0 || hl > MAX_RESPONSE_HEAD)
		return bad(h, "head length out of range");
	if (bl > CACHE_MAX_OBJECT_CEIL)
		return bad(h, "body length out of range");
	uint32_t bits = get32(p + OFF_BITS), ccf = get32(p + OFF_CC_FLAGS);
	if ((bits & ~BITS_KNOWN) != 0 || (ccf & ~(uint32_t)CC_KNOWN) != 0)
		return bad(h, "unknown flags");
	unsigned status = get16(p + OFF_STATUS);
	if (status < 100 || status > 999)
		return bad(h, "status out of range");

	/* The caps above keep every sum far from overflowing. */
	h->hdr_len = DISKFMT_FIXED + (size_t)kl + vl + hl;
	h->file_len = h->hdr_len + bl + DISKFMT_TRAILER;
	h->body_len = bl;
	h->status = (int)status;
	h->key_len = kl;
	h->vary_len = vl;
	h->head_len = hl;
	struct policy_meta *m = &h->meta;
	m->request_time = geti64(p + OFF_META);
	m->response_time = geti64(p + OFF_META + 8);
	m->date = geti64(p + OFF_META + 16);
	m->age_value = geti64(p + OFF_META + 24);
	m->last_modified = geti64(p + OFF_META + 32);
	m->lifetime = geti64(p + OFF_META + 40);
	m->heuristic = bits & BIT_HEURISTIC;
	m->cc.flags = ccf;
	m->cc.bad_freshness = bits & BIT_BAD_FRESHNESS;
	m->cc.present = bits & BIT_CC_PRESENT;
	m->cc.max_age = geti64(p + OFF_CC);
	m->cc.s_maxage = geti64(p + OFF_CC + 8);
	m->cc.max_stale = geti64(p + OFF_CC + 16);
	m->cc.min_fresh = geti64(p + OFF_CC + 24);
	m->cc.stale_while_revalidate = geti64(p + OFF_CC + 32);
	m->cc.stale_if_error = geti64(p + OFF_CC + 40);
	/* What the policy computes with (current age, staleness) cannot
	 * overflow within these. */
	const int64_t times[] = {m->request_time, m->response_time, m->date, m->last_modified,
				 m->lifetime};
	for (size_t i = 0; i < SL_ARRAY_LEN(times); i++)
		if (times[i] < -DISKFMT_TIME_MAX || times[i] > DISKFMT_TIME_MAX)
			return bad(h, "metadata out of range");
	if (m->age_value < 0 || m->age_value > CC_DELTA_MAX)
		return bad(h, "metadata out of range");
	if (len < h->hdr_len)
		return DISKFMT_SHORT;

	if (header_sum(p, h->hdr_len) != get64(p + OFF_HDR_SUM))
		return bad(h, "header checksum mismatch");
	h->key = (const char *)p + DISKFMT_FIXED;
	h->vary = h->key + kl;
	h->head = h->vary + vl;

	struct h1_response resp;
	struct h1_error err;
	if (h1_parse_response(h->head, hl, &lim, &resp, hdrs, cap, &err) != H1_OK ||
	    resp.head_len != hl)
		return bad(h, "stored head does not parse");
	if (resp.status != h->status)
		return bad(h, "stored status differs from the head's");
	h->nhdrs = resp.nheaders;
	return DISKFMT_OK;
}

int diskfmt_dec_begin(struct diskfmt_dec *d, const void *buf, size_t len)
{
	/* Big (32 KiB) but only on the reader's stack for the call; the
	 * object parses its own copy of the head again for its views. */
	struct h1_header hdrs[MAX_HEADERS_CEIL];

	d->o = NULL;
	d->st = NULL;
	d->body_left = 0;
	int rc = diskfmt_header(buf, len, &d->hdr, hdrs, MAX_HEADERS_CEIL);
	if (rc != DISKFMT_OK)
		return rc;
	struct diskfmt_hdr *h = &d->hdr;
	d->o = cache_obj_new(h->key, h->key_len, h->vary, h->vary_len, h->head, h->head_len,
			     h->body_len, &h->meta);
	if (d->o == NULL)
		return bad(h, "object rejected");
	/* Allocated: XXH3_state_t wants 64-byte alignment, which a
	 * caller's struct on the heap would not give it. */
	d->st = XXH3_createState();
	SL_ASSERT(d->st != NULL);
	XXH3_64bits_reset(d->st);
	XXH3_64bits_update(d->st, buf, h->hdr_len);
	d->body_left = h->body_len;
	/* The header's views are into the caller's buffer, which need not
	 * outlive this call; point them at the object's copies. */
	h->key = d->o->key;
	h->vary = d->o->vary;
	h->head = d->o->head;
	return DISKFMT_OK;
}

void diskfmt_dec_body(struct diskfmt_dec *d, const void *p, size_t n)
{
	SL_ASSERT(d->o != NULL && n <= d->body_left);
	XXH3_64bits_update(d->st, p, n);
	cache_obj_append(d->o, p, n);
	d->body_left -= n;
}

void diskfmt_dec_abort(struct diskfmt_dec *d)
{
	cache_obj_put(&d->o);
	if (d->st)
		XXH3_freeState(d->st);
	d->st = NULL;
	d->body_left = 0;
}

struct cache_obj *diskfmt_dec_end(struct diskfmt_dec *d, const void *trailer, size_t n,
				  const char **why)
{
	SL_ASSERT(d->o != NULL && d->body_left == 0);
	struct cache_obj *o = NULL;
	if (n != DISKFMT_TRAILER) {
		*why = "file length differs from the header's";
	} else if (XXH3_64bits_digest(d->st) != get64(trailer)) {
		*why = "file checksum mismatch";
	} else {
		o = d->o;
		d->o = NULL;
		cache_obj_done(o);
	}
	diskfmt_dec_abort(d);
	return o;
}

struct cache_obj *diskfmt_decode(const void *buf, size_t len, const char **why)
{
	struct diskfmt_dec d;
	int rc = diskfmt_dec_begin(&d, buf, len);
	if (rc == DISKFMT_SHORT) {
		*why = "truncated header";
		return NULL;
	}
	if (rc != DISKFMT_OK) {
		*why = d.hdr.why;
		return NULL;
	}
	if (d.hdr.file_len != len) {
		*why = len < d.hdr.file_len ? "truncated file" : "trailing bytes after the file";
		diskfmt_dec_abort(&d);
		return NULL;
	}
	const uint8_t *p = buf;
	diskfmt_dec_body(&d, p + d.hdr.hdr_len, (size_t)d.hdr.body_len);
	return diskfmt_dec_end(&d, p + d.hdr.hdr_len + d.hdr.body_len, DISKFMT_TRAILER, why);
}

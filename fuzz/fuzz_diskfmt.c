/* fuzz_diskfmt.c - libFuzzer target for the disk store's file format.
 *
 * Input: one byte of choices, then a file. With bit 0 of the choice set,
 * the file's two checksums are first recomputed over what it holds, so the
 * fuzzer gets past them to the parser behind. The header parser and the
 * decoder (whole, and streamed in pieces) run on it. Checked: whatever
 * is accepted re-encodes to exactly the same bytes (there is one encoding
 * of an object), the header's views are inside the input, the streamed
 * decoder agrees with the whole one, and a rejection says why. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/base.h"
#include "buf/limits.h"
#include "cache/diskfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Make both checksums match the bytes, where the lengths let them. */
static void fix_sums(uint8_t *p, size_t len)
{
	if (len < DISKFMT_FIXED)
		return;
	uint64_t hl = (uint64_t)DISKFMT_FIXED + get32(p + 12) + get32(p + 16) + get32(p + 20);
	if (hl <= len) {
		XXH3_state_t *st = XXH3_createState();
		XXH3_64bits_reset(st);
		XXH3_64bits_update(st, p, DISKFMT_FIXED - 8);
		XXH3_64bits_update(st, p + DISKFMT_FIXED, (size_t)hl - DISKFMT_FIXED);
		put64(p + DISKFMT_FIXED - 8, XXH3_64bits_digest(st));
		XXH3_freeState(st);
	}
	if (len >= hl + DISKFMT_TRAILER)
		put64(p + len - DISKFMT_TRAILER, XXH3_64bits(p, len - DISKFMT_TRAILER));
}

static bool inside(const char *v, size_t n, const uint8_t *buf, size_t len)
{
	const char *b = (const char *)buf;
	return v >= b && n <= len && (size_t)(v - b) <= len - n;
}

/* Decode with the streaming API, feeding the body in pieces of step. */
static struct cache_obj *streamed(const uint8_t *p, size_t len, size_t step)
{
	struct diskfmt_dec d;
	const char *why;
	if (diskfmt_dec_begin(&d, p, len) != DISKFMT_OK)
		return NULL;
	if (d.hdr.file_len != len) {
		diskfmt_dec_abort(&d);
		return NULL;
	}
	size_t off = d.hdr.hdr_len;
	while (d.body_left > 0) {
		size_t n = (size_t)SL_MIN(d.body_left, (uint64_t)step);
		diskfmt_dec_body(&d, p + off, n);
		off += n;
	}
	return diskfmt_dec_end(&d, p + off, len - off, &why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t len = size - 1;
	/* A copy of exactly the file's length, so reads past it are caught. */
	uint8_t *p = malloc(len ? len : 1);
	memcpy(p, data + 1, len);
	if (data[0] & 1)
		fix_sums(p, len);

	static struct h1_header hdrs[MAX_HEADERS_CEIL];
	struct diskfmt_hdr h;
	int rc = diskfmt_header(p, len, &h, hdrs, MAX_HEADERS_CEIL);
	SL_ASSERT(rc == DISKFMT_OK || rc == DISKFMT_SHORT || rc == DISKFMT_BAD);
	SL_ASSERT(rc != DISKFMT_BAD || h.why != NULL);
	SL_ASSERT(rc != DISKFMT_SHORT || h.hdr_len > len);
	if (rc == DISKFMT_OK) {
		SL_ASSERT(h.hdr_len <= len && h.file_len == h.hdr_len + h.body_len + 8);
		SL_ASSERT(inside(h.key, h.key_len, p, len) && inside(h.vary, h.vary_len, p, len) &&
			  inside(h.head, h.head_len, p, len));
		SL_ASSERT(h.key_len >= 1 && h.key_len <= CACHE_KEY_MAX);
		SL_ASSERT(h.nhdrs <= MAX_HEADERS_CEIL);
		for (unsigned i = 0; i < h.nhdrs; i++)
			SL_ASSERT(inside(hdrs[i].name.p, hdrs[i].name.len, p, len));
	}

	const char *why = NULL;
	struct cache_obj *o = diskfmt_decode(p, len, &why);
	SL_ASSERT(o != NULL || why != NULL);
	struct cache_obj *s = streamed(p, len, 1 + data[0] / 2);
	SL_ASSERT((o == NULL) == (s == NULL));
	if (o) {
		SL_ASSERT(rc == DISKFMT_OK && o->complete && o->body_len == h.body_len);
		SL_ASSERT(diskfmt_file_len(o) == len);
		size_t n;
		uint8_t *again = diskfmt_encode(o, &n);
		SL_ASSERT(n == len && memcmp(again, p, len) == 0);
		free(again);
		char name[DISKFMT_NAME_LEN + 1];
		diskfmt_name(o->key, o->key_len, o->vary, o->vary_len, name);
		SL_ASSERT(strlen(name) == DISKFMT_NAME_LEN);
	}
	cache_obj_put(&o);
	cache_obj_put(&s);
	free(p);
	return 0;
}

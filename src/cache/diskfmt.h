/* diskfmt.h - the disk store's object file: one complete cached response
 * per file, as pure encoding and strict decoding (no I/O, no threads).
 *
 * All integers are little-endian. A file is
 *
 *   fixed part   DISKFMT_FIXED bytes:
 *       0  u32 magic "SLDC"          4  u16 version (DISKFMT_VERSION)
 *       6  u16 status                8  u32 reserved, 0
 *      12  u32 key length           16  u32 secondary (Vary) key length
 *      20  u32 head length          24  u64 body length
 *      32  i64 request_time, response_time, date, age_value,
 *              last_modified, lifetime           (struct policy_meta)
 *      80  u32 cc.flags             84  u32 bits: 0 heuristic,
 *                                       1 cc.bad_freshness, 2 cc.present
 *      88  i64 cc.max_age, s_maxage, max_stale, min_fresh,
 *              stale_while_revalidate, stale_if_error
 *     136  u64 header checksum: XXH3-64 of bytes 0..136 and the key,
 *              secondary key and head that follow
 *   key, secondary key, head   (the "header" is the fixed part and these)
 *   body
 *   u64 file checksum: XXH3-64 of every byte before it
 *
 * The header alone rebuilds an index entry at start-up, and its own
 * checksum rejects a torn one without reading the body; the file checksum
 * is verified on every read, so a torn or corrupted file is never served.
 * A reader also checks that the file is exactly as long as the lengths
 * say. A change to the layout bumps DISKFMT_VERSION: files of another
 * version are dropped, not converted. */
#ifndef SLUICE_CACHE_DISKFMT_H
#define SLUICE_CACHE_DISKFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "cache/mem.h"
#include "cache/policy.h"
#include "http/h1.h"

#define DISKFMT_MAGIC	0x43444c53u /* "SLDC" */
#define DISKFMT_VERSION 1
#define DISKFMT_FIXED	144
#define DISKFMT_TRAILER 8
/* A file name: 32 lower-case hex digits of a 128-bit hash. */
#define DISKFMT_NAME_LEN 32

/* Return codes of the parsers. */
#define DISKFMT_OK    0
#define DISKFMT_SHORT (-1) /* more bytes needed: hdr_len says how many in all */
#define DISKFMT_BAD   (-2) /* not a valid file: why says what is wrong */

/* A parsed header. The views point into the caller's buffer. */
struct diskfmt_hdr {
	size_t hdr_len;	   /* fixed part + key + vary + head (valid once the fixed part is) */
	uint64_t file_len; /* hdr_len + body + trailer */
	uint64_t body_len;
	int status;
	struct policy_meta meta;
	const char *key, *vary, *head;
	size_t key_len, vary_len, head_len;
	unsigned nhdrs;	 /* head lines parsed into the caller's array */
	const char *why; /* static text, set with DISKFMT_BAD */
};

/* The file name of the object stored for key and secondary key vary, into
 * out (NUL-terminated). Distinct (key, vary) pairs get distinct names but
 * for a 128-bit hash collision, which readers catch by comparing keys. */
void diskfmt_name(const char *key, size_t key_len, const char *vary, size_t vary_len,
		  char out[DISKFMT_NAME_LEN + 1]);

/* Sizes of the encoding of a complete object o: the header, and the whole
 * file. */
size_t diskfmt_header_len(const struct cache_obj *o);
uint64_t diskfmt_file_len(const struct cache_obj *o);

/* Encode o's header into out[diskfmt_header_len(o)]. o must be complete
 * with a body of at most CACHE_MAX_OBJECT_CEIL bytes (asserted). */
void diskfmt_encode_header(const struct cache_obj *o, void *out);
/* The trailer (file checksum) of o, given the header encode_header wrote:
 * written to out[DISKFMT_TRAILER]. The body goes between the two as is, so
 * a writer never copies it. */
void diskfmt_encode_trailer(const struct cache_obj *o, const void *hdr, void *out);
/* The whole file in one new buffer (the caller frees it); *len its length.
 * For tests and tools: the store writes header, body and trailer apart. */
void *diskfmt_encode(const struct cache_obj *o, size_t *len);

/* The metadata's times (and freshness lifetime) a header may hold, in
 * seconds either side of the epoch: past year 30,000, and far from any
 * overflow. */
#define DISKFMT_TIME_MAX (INT64_C(1) << 40)

/* Parse the header at buf[0..len). With fewer than DISKFMT_FIXED bytes, or
 * fewer than the fixed part says the header takes, returns DISKFMT_SHORT
 * with h->hdr_len the bytes needed (read that many and call again; the
 * fixed part has then been checked, and h->file_len is known). Returns
 * DISKFMT_OK when the whole header is valid: magic, version, zero reserved
 * bits, every length within its cap (key 1..CACHE_KEY_MAX, vary up to
 * CACHE_VARY_KEY_MAX, head up to MAX_RESPONSE_HEAD, body up to
 * CACHE_MAX_OBJECT_CEIL), metadata within range (times within
 * DISKFMT_TIME_MAX, Age within CC_DELTA_MAX), the header checksum, and a
 * head that parses as a
 * response head (into hdrs[cap]; cap >= MAX_HEADERS_CEIL takes any head)
 * with the stored status. Else DISKFMT_BAD with h->why. Bytes past the
 * header are not looked at. */
int diskfmt_header(const void *buf, size_t len, struct diskfmt_hdr *h, struct h1_header *hdrs,
		   unsigned cap) SL_WUR;

/* Streaming decoder, for a reader that reads a file in pieces: begin with
 * the header, feed exactly hdr.body_len body bytes, end with the trailer.
 * The object is built as the body arrives and handed out only if the file
 * checksum matches. */
struct diskfmt_dec {
	struct diskfmt_hdr hdr;
	struct cache_obj *o;
	struct XXH3_state_s *st;
	uint64_t body_left;
};
/* Start decoding: buf[0..len) holds at least the header (DISKFMT_SHORT
 * otherwise, as diskfmt_header). DISKFMT_OK: d is live until
 * diskfmt_dec_end() or diskfmt_dec_abort(). Else d holds nothing (and
 * d->hdr.why says why, for DISKFMT_BAD). */
int diskfmt_dec_begin(struct diskfmt_dec *d, const void *buf, size_t len) SL_WUR;
/* Body bytes, in order; n at most d->body_left (asserted). */
void diskfmt_dec_body(struct diskfmt_dec *d, const void *p, size_t n);
/* Finish with the trailer's n bytes: all the body must have been fed.
 * Returns the complete object (the caller owns its reference), or NULL if
 * n is not DISKFMT_TRAILER or the checksum does not match (*why set). d
 * holds nothing afterwards either way. */
struct cache_obj *diskfmt_dec_end(struct diskfmt_dec *d, const void *trailer, size_t n,
				  const char **why) SL_WUR;
/* Give up (a short read): frees what d holds. */
void diskfmt_dec_abort(struct diskfmt_dec *d);

/* Decode a whole file in buf[0..len): a new complete object (the caller
 * owns its reference), or NULL with *why when anything is wrong, len not
 * being exactly the file's length included. */
struct cache_obj *diskfmt_decode(const void *buf, size_t len, const char **why) SL_WUR;

#endif

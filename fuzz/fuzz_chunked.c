/* fuzz_chunked.c - libFuzzer target for the chunked decoder.
 *
 * Input: four bytes seeding where the stream is cut, then the stream. The
 * stream is decoded whole, byte by byte (if short) and in seeded random
 * pieces; all must give the same data bytes and the same verdict (error,
 * done, bytes consumed). Every span must lie inside the bytes its call
 * consumed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "http/chunked.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
	bool error;
	bool done;
	size_t consumed;
	size_t dlen;
	char *data; /* at least len bytes */
};

/* Feed one piece until it is used up, the message ends or an error comes. */
static void feed_piece(struct chunked *c, const char *p, size_t n, struct outcome *o)
{
	size_t off = 0;
	while (off < n && !o->error && !o->done) {
		struct chunk_span sp;
		long rc = chunked_feed(c, p + off, n - off, &sp);
		if (rc == CHUNKED_ERROR) {
			SL_ASSERT(c->error != NULL && !c->done);
			o->error = true;
			/* the error is sticky */
			SL_ASSERT(chunked_feed(c, p, n, &sp) == CHUNKED_ERROR);
			return;
		}
		SL_ASSERT(rc >= 0 && (size_t)rc <= n - off);
		SL_ASSERT(rc > 0 || c->done);
		if (sp.len > 0) {
			SL_ASSERT(sp.data >= p + off && sp.data + sp.len <= p + off + rc);
			memcpy(o->data + o->dlen, sp.data, sp.len);
			o->dlen += sp.len;
		} else {
			SL_ASSERT(sp.data == NULL);
		}
		off += (size_t)rc;
		o->consumed += (size_t)rc;
		o->done = c->done;
	}
}

static void same(const struct outcome *a, const struct outcome *b)
{
	SL_ASSERT(a->error == b->error);
	SL_ASSERT(a->done == b->done);
	SL_ASSERT(a->error || a->consumed == b->consumed);
	SL_ASSERT(a->dlen == b->dlen);
	SL_ASSERT(a->dlen == 0 || memcmp(a->data, b->data, a->dlen) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	uint32_t seed = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
			(uint32_t)data[3] << 24;
	const char *in = (const char *)data + 4;
	size_t len = size - 4;
	char *b1 = malloc(len + 1), *b2 = malloc(len + 1);
	SL_ASSERT(b1 != NULL && b2 != NULL);

	struct chunked c;
	struct outcome whole = {.data = b1}, part;

	chunked_init(&c);
	feed_piece(&c, in, len, &whole);
	SL_ASSERT(whole.consumed <= len);
	SL_ASSERT(!whole.done || whole.error || whole.consumed >= 5);

	if (len <= 4096) {
		part = (struct outcome){.data = b2};
		chunked_init(&c);
		for (size_t i = 0; i < len; i++)
			feed_piece(&c, in + i, 1, &part);
		same(&whole, &part);
	}

	/* pieces of 1..256 bytes, lengths from an xorshift stream */
	part = (struct outcome){.data = b2};
	chunked_init(&c);
	uint32_t x = seed | 1;
	for (size_t at = 0; at < len;) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		size_t n = (x & 0x80000000u) ? 1 + (x & 0xff) : 1 + (x & 0x7);
		if (n > len - at)
			n = len - at;
		feed_piece(&c, in + at, n, &part);
		at += n;
	}
	same(&whole, &part);

	free(b1);
	free(b2);
	return 0;
}

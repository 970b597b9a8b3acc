#include <stdlib.h>

#include "buf/limits.h"
#include "http/chunked.h"
#include "unit.h"

#define OUT_MAX (64 * 1024)

struct outcome {
	bool error;
	bool done;
	size_t consumed;
	size_t dlen;
	unsigned spans;
	const char *why;
	char data[OUT_MAX];
};

/* Feed in[0..len) cut into pieces at cuts[] (ascending), each piece fed
 * until it is used up, the message ends or an error comes. */
static void feed_cut(const char *in, size_t len, const size_t *cuts, size_t ncuts,
		     struct outcome *o)
{
	struct chunked c;
	size_t start = 0;

	chunked_init(&c);
	memset(o, 0, offsetof(struct outcome, data));
	for (size_t k = 0; k <= ncuts && !o->error && !o->done; k++) {
		size_t end = k < ncuts ? cuts[k] : len;
		size_t off = start;
		while (off < end) {
			struct chunk_span sp;
			long rc = chunked_feed(&c, in + off, end - off, &sp);
			if (rc == CHUNKED_ERROR) {
				o->error = true;
				o->why = c.error;
				CHECK(c.error != NULL);
				break;
			}
			CHECK(rc >= 0 && (size_t)rc <= end - off);
			if (sp.len > 0) {
				CHECK(sp.data >= in + off && sp.data + sp.len <= in + off + rc);
				CHECK(o->dlen + sp.len <= OUT_MAX);
				memcpy(o->data + o->dlen, sp.data, sp.len);
				o->dlen += sp.len;
				o->spans++;
			}
			off += (size_t)rc;
			o->consumed += (size_t)rc;
			if (rc == 0) {
				CHECK(c.done);
				break;
			}
		}
		o->done = c.done;
		start = end;
	}
}

static struct outcome whole, part;

static void feed_whole(const char *in, size_t len)
{
	feed_cut(in, len, NULL, 0, &whole);
}

/* Same data and verdict however the input is split: byte by byte, at every
 * single cut point, and at pseudo-random cut sets. */
static void check_split_invariant(const char *in, size_t len)
{
	static size_t cuts[OUT_MAX];

	feed_whole(in, len);
	for (size_t i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	feed_cut(in, len, cuts, len ? len - 1 : 0, &part);
#define SAME()                                                         \
	do {                                                           \
		CHECK(part.error == whole.error);                      \
		CHECK(part.done == whole.done);                        \
		CHECK(part.dlen == whole.dlen);                        \
		CHECK(memcmp(part.data, whole.data, whole.dlen) == 0); \
		if (!whole.error)                                      \
			CHECK(part.consumed == whole.consumed);        \
	} while (0)
	SAME();
	for (size_t i = 1; i < len; i++) {
		size_t one = i;
		feed_cut(in, len, &one, 1, &part);
		SAME();
	}
	unsigned seed = 12345;
	for (int r = 0; r < 50; r++) {
		size_t n = 0, at = 0;
		for (;;) {
			seed = seed * 1103515245u + 12345u;
			at += 1 + (seed >> 16) % 7;
			if (at >= len)
				break;
			cuts[n++] = at;
		}
		feed_cut(in, len, cuts, n, &part);
		SAME();
	}
#undef SAME
	feed_whole(in, len);
}

#define DECODE(lit) check_split_invariant(lit, sizeof(lit) - 1)
#define DECODE_OK(lit, want)                             \
	do {                                             \
		DECODE(lit);                             \
		CHECK(!whole.error);                     \
		CHECK(whole.done);                       \
		CHECK_MEM(whole.data, whole.dlen, want); \
	} while (0)
#define DECODE_ERR(lit)             \
	do {                        \
		DECODE(lit);        \
		CHECK(whole.error); \
		CHECK(!whole.done); \
	} while (0)

TEST(rfc9112_7_1_simple_body)
{
	DECODE_OK("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
	CHECK_INT(whole.consumed, 26);
	CHECK_INT(whole.spans, 2);
}

TEST(rfc9112_7_1_hex_sizes_case_and_leading_zeros)
{
	DECODE_OK("A\r\n0123456789\r\n00b\r\n0123456789a\r\n000\r\n\r\n", "01234567890123456789a");
	DECODE_OK("0\r\n\r\n", "");
	DECODE_OK("0000000000000001\r\nx\r\n0\r\n\r\n", "x");
}

TEST(rfc9112_7_1_one_span_per_call_stopping_after_it)
{
	static const char m[] = "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
	struct chunked c;
	struct chunk_span sp;
	chunked_init(&c);
	long rc = chunked_feed(&c, m, sizeof(m) - 1, &sp);
	CHECK_INT(rc, 6);
	CHECK(sp.data == m + 3);
	CHECK_INT(sp.len, 3);
	rc = chunked_feed(&c, m + 6, sizeof(m) - 1 - 6, &sp);
	CHECK_INT(rc, 8);
	CHECK(sp.data == m + 11);
	rc = chunked_feed(&c, m + 14, sizeof(m) - 1 - 14, &sp);
	CHECK_INT(rc, 7);
	CHECK(sp.data == NULL);
	CHECK_INT(sp.len, 0);
	CHECK(c.done);
	CHECK_INT(chunked_feed(&c, "x", 1, &sp), 0);
	CHECK_INT(chunked_feed(&c, m, 0, &sp), 0);
}

TEST(rfc9112_7_1_bytes_after_end_not_consumed)
{
	static const char m[] = "1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
	DECODE(m);
	CHECK(whole.done && !whole.error);
	CHECK_INT(whole.consumed, 11);
}

TEST(rfc9112_7_1_zeroed_struct_is_a_fresh_decoder)
{
	struct chunked c = {0};
	struct chunk_span sp;
	CHECK_INT(chunked_feed(&c, "0\r\n\r\n", 5, &sp), 5);
	CHECK(c.done);
}

TEST(rfc9112_7_1_incomplete_is_not_done)
{
	DECODE("5\r\nhel");
	CHECK(!whole.error && !whole.done);
	CHECK_MEM(whole.data, whole.dlen, "hel");
	DECODE("5\r\nhello\r\n0\r\n");
	CHECK(!whole.error && !whole.done);
	DECODE("5\r\nhello\r\n0\r\nX: y\r\n");
	CHECK(!whole.error && !whole.done);
}

TEST(rfc9112_7_1_size_0x10_rejected)
{
	DECODE_ERR("0x10\r\n0123456789abcdef\r\n0\r\n\r\n");
}

TEST(rfc9112_7_1_size_sign_and_whitespace_rejected)
{
	DECODE_ERR("-1\r\nx\r\n0\r\n\r\n");
	DECODE_ERR("+1\r\nx\r\n0\r\n\r\n");
	DECODE_ERR(" 1\r\nx\r\n0\r\n\r\n");
	DECODE_ERR("\t1\r\nx\r\n0\r\n\r\n");
	DECODE_ERR("\r\n1\r\nx\r\n0\r\n\r\n");
	DECODE_ERR("g\r\n");
	/* BWS is only allowed before ';' */
	DECODE_ERR("1 \r\nx\r\n0\r\n\r\n");
}

TEST(rfc9112_7_1_overlong_hex_rejected)
{
	/* 17 digits, even with a small value */
	DECODE_ERR("00000000000000001\r\nx\r\n0\r\n\r\n");
	DECODE_ERR("10000000000000000\r\n");
	/* 16 digits but above 2^62 */
	DECODE_ERR("4000000000000001\r\n");
	DECODE_ERR("ffffffffffffffff\r\n");
	/* 2^62 itself is a valid size */
	DECODE("4000000000000000\r\nabc");
	CHECK(!whole.error);
	CHECK_INT(whole.dlen, 3);
}

TEST(rfc9112_7_1_1_extensions_parsed)
{
	DECODE_OK("5;name\r\nhello\r\n0;a=b;c=\"q \\\" ;\"\r\n\r\n", "hello");
	DECODE_OK("5 ; a = b ;c\t=\t\"x\"\r\nhello\r\n0\r\n\r\n", "hello");
	DECODE_OK("5;a;b;c=d\r\nhello\r\n0\r\n\r\n", "hello");
	DECODE_OK("5;a \t;b\r\nhello\r\n0\r\n\r\n", "hello");
}

TEST(rfc9112_7_1_1_bad_extensions_rejected)
{
	DECODE_ERR("5;\r\nhello\r\n0\r\n\r\n");
	DECODE_ERR("5;=b\r\nhello\r\n0\r\n\r\n");
	DECODE_ERR("5;a=\r\nhello\r\n0\r\n\r\n");
	DECODE_ERR("5;a=b c\r\nhello\r\n0\r\n\r\n");
	DECODE_ERR("5;a=\"unterminated\r\nhello\r\n0\r\n\r\n");
	DECODE_ERR("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n");
	DECODE_ERR("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n");
	DECODE_ERR("5;a \r\nhello\r\n0\r\n\r\n");
	DECODE_ERR("5;a\0\r\nhello\r\n0\r\n\r\n");
	DECODE_ERR("5;a@b\r\nhello\r\n0\r\n\r\n");
}

TEST(rfc9112_7_1_1_ext_too_long_rejected)
{
	static char buf[CHUNK_LINE_MAX + 64];
	size_t n = 0;
	/* the size line's content is exactly CHUNK_LINE_MAX bytes */
	buf[n++] = '1';
	buf[n++] = ';';
	while (n < CHUNK_LINE_MAX)
		buf[n++] = 'e';
	memcpy(buf + n, "\r\nx\r\n0\r\n\r\n", 10);
	check_split_invariant(buf, n + 10);
	CHECK(!whole.error && whole.done);
	/* one byte more */
	buf[1] = 'e';
	memmove(buf + 2, buf + 1, n + 10 - 1);
	buf[1] = ';';
	check_split_invariant(buf, n + 11);
	CHECK(whole.error);
	CHECK_STR(whole.why, "chunk size line too long");
}

TEST(rfc9112_7_1_missing_crlf_after_data_rejected)
{
	DECODE_ERR("5\r\nhelloX\r\n0\r\n\r\n");
	DECODE_ERR("5\r\nhello0\r\n\r\n");
	DECODE_ERR("5\r\nhello\r0\r\n\r\n");
	/* a size that is one too small leaves a data byte where CRLF goes */
	DECODE_ERR("4\r\nhello\r\n0\r\n\r\n");
}

TEST(rfc9112_7_1_bare_lf_rejected)
{
	DECODE_ERR("5\nhello\r\n0\r\n\r\n");
	CHECK_STR(whole.why, "bare LF in chunked coding");
	DECODE_ERR("5\r\nhello\n0\r\n\r\n");
	DECODE_ERR("5\r\nhello\r\n0\n\n");
	DECODE_ERR("5\r\nhello\r\n0\r\n\n");
	DECODE_ERR("0\r\nX: y\n\r\n");
	DECODE_ERR("5;a=b\nhello\r\n0\r\n\r\n");
}

TEST(rfc9112_7_1_bare_cr_rejected)
{
	DECODE_ERR("5\rhello\r\n0\r\n\r\n");
	DECODE_ERR("0\r\n\rX");
	DECODE_ERR("0\r\nX: a\rb\r\n\r\n");
}

TEST(rfc9112_7_1_2_trailers_checked_like_fields)
{
	DECODE_OK("0\r\nX-Sum: abc\r\nY:\r\nZ: \t\xff\r\n\r\n", "");
	DECODE_ERR("0\r\nX-Sum : abc\r\n\r\n");
	DECODE_ERR("0\r\nX-Sum: abc\r\n more\r\n\r\n");
	DECODE_ERR("0\r\nX-Sum: a\0c\r\n\r\n");
	DECODE_ERR("0\r\nX-Sum: a\x7f\r\n\r\n");
	DECODE_ERR("0\r\nX(Sum: abc\r\n\r\n");
	DECODE_ERR("0\r\n: abc\r\n\r\n");
	DECODE_ERR("0\r\n abc\r\n\r\n");
}

TEST(rfc9112_7_1_2_trailer_section_capped)
{
	static char buf[CHUNK_TRAILER_MAX + 64];
	size_t n = 0;
	memcpy(buf, "0\r\n", 3);
	n = 3;
	/* trailer section (fields and final CRLF) exactly CHUNK_TRAILER_MAX */
	memcpy(buf + n, "X: ", 3);
	n += 3;
	while (n < 3 + CHUNK_TRAILER_MAX - 4)
		buf[n++] = 'v';
	memcpy(buf + n, "\r\n\r\n", 4);
	n += 4;
	feed_whole(buf, n);
	CHECK(!whole.error && whole.done);
	memmove(buf + 4, buf + 3, n - 3);
	buf[3] = 'X';
	feed_whole(buf, n + 1);
	CHECK(whole.error);
	CHECK_STR(whole.why, "chunked trailer section too large");
}

TEST(rfc9112_7_1_error_is_sticky)
{
	struct chunked c;
	struct chunk_span sp;
	chunked_init(&c);
	CHECK_INT(chunked_feed(&c, "z", 1, &sp), CHUNKED_ERROR);
	CHECK(c.error != NULL);
	CHECK_INT(chunked_feed(&c, "0\r\n\r\n", 5, &sp), CHUNKED_ERROR);
	CHECK(!c.done);
}

TEST(rfc9112_7_1_large_chunk_streams_in_pieces)
{
	static char buf[20000];
	size_t n = 0;
	memcpy(buf, "2710\r\n", 6); /* 10000 */
	n = 6;
	for (int i = 0; i < 10000; i++)
		buf[n++] = (char)('a' + i % 26);
	memcpy(buf + n, "\r\n0\r\n\r\n", 7);
	n += 7;
	check_split_invariant(buf, n);
	CHECK(whole.done && !whole.error);
	CHECK_INT(whole.dlen, 10000);
	CHECK(memcmp(whole.data, buf + 6, 10000) == 0);
	CHECK_INT(whole.spans, 1);
}

int main(void)
{
	RUN(rfc9112_7_1_simple_body);
	RUN(rfc9112_7_1_hex_sizes_case_and_leading_zeros);
	RUN(rfc9112_7_1_one_span_per_call_stopping_after_it);
	RUN(rfc9112_7_1_bytes_after_end_not_consumed);
	RUN(rfc9112_7_1_zeroed_struct_is_a_fresh_decoder);
	RUN(rfc9112_7_1_incomplete_is_not_done);
	RUN(rfc9112_7_1_size_0x10_rejected);
	RUN(rfc9112_7_1_size_sign_and_whitespace_rejected);
	RUN(rfc9112_7_1_overlong_hex_rejected);
	RUN(rfc9112_7_1_1_extensions_parsed);
	RUN(rfc9112_7_1_1_bad_extensions_rejected);
	RUN(rfc9112_7_1_1_ext_too_long_rejected);
	RUN(rfc9112_7_1_missing_crlf_after_data_rejected);
	RUN(rfc9112_7_1_bare_lf_rejected);
	RUN(rfc9112_7_1_bare_cr_rejected);
	RUN(rfc9112_7_1_2_trailers_checked_like_fields);
	RUN(rfc9112_7_1_2_trailer_section_capped);
	RUN(rfc9112_7_1_error_is_sticky);
	RUN(rfc9112_7_1_large_chunk_streams_in_pieces);
	return unit_done();
}

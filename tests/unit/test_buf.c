#include "buf/iobuf.h"
#include "buf/sbuf.h"
#include "unit.h"

TEST(iobuf_consume_resets_and_pool_reuses)
{
	struct iobuf *b = iobuf_get(IOBUF_SIZE), *c;
	CHECK_INT(b->cap, IOBUF_SIZE);
	CHECK_INT(iobuf_len(b), 0);
	memcpy(iobuf_tail(b), "hello", 5);
	iobuf_commit(b, 5);
	iobuf_consume(b, 2);
	CHECK_MEM(iobuf_head(b), iobuf_len(b), "llo");
	iobuf_compact(b);
	CHECK_INT(b->start, 0);
	CHECK_MEM(iobuf_head(b), iobuf_len(b), "llo");
	iobuf_consume(b, 3);
	CHECK_INT(b->start, 0);
	CHECK_INT(b->end, 0);
	struct iobuf *keep = b;
	iobuf_put(&b);
	CHECK(b == NULL);
	c = iobuf_get(IOBUF_SIZE);
	CHECK(c == keep); /* from this thread's pool */
	iobuf_put(&c);
	iobuf_pool_drain();
}

TEST(iobuf_grow_keeps_data)
{
	struct iobuf *b = iobuf_get(IOBUF_SIZE);
	memset(iobuf_tail(b), 'a', IOBUF_SIZE);
	iobuf_commit(b, IOBUF_SIZE);
	iobuf_consume(b, 10);
	b = iobuf_grow(&b, IOBUF_LARGE_SIZE);
	CHECK_INT(b->cap, IOBUF_LARGE_SIZE);
	CHECK_INT(iobuf_len(b), IOBUF_SIZE - 10);
	CHECK_INT(iobuf_room(b), IOBUF_LARGE_SIZE - (IOBUF_SIZE - 10));
	iobuf_put(&b);
	iobuf_pool_drain();
}

TEST(sbuf_cap_is_sticky)
{
	struct sbuf s;
	sbuf_init(&s, 10);
	sbuf_add_str(&s, "12345");
	sbuf_add_u64(&s, 678);
	CHECK_STR(s.p, "12345678");
	CHECK(!sbuf_failed(&s));
	sbuf_add_str(&s, "abc");
	CHECK(sbuf_failed(&s));
	sbuf_add_str(&s, "d");
	CHECK_STR(s.p, "12345678");
	sbuf_reset(&s);
	CHECK(!sbuf_failed(&s));
	sbuf_printf(&s, "%d-%s", 42, "x");
	CHECK_STR(s.p, "42-x");
	sbuf_reset(&s);
	sbuf_add_i64(&s, -9);
	sbuf_add_i64(&s, 0);
	sbuf_add_char(&s, ' ');
	sbuf_add_i64(&s, 17);
	CHECK_STR(s.p, "-90 17");
	sbuf_reset(&s);
	sbuf_add_i64(&s, INT64_MIN);
	CHECK(sbuf_failed(&s)); /* 20 characters: past the cap of 10 */
	struct sbuf w;
	sbuf_init(&w, 64);
	sbuf_add_i64(&w, INT64_MIN);
	CHECK_STR(w.p, "-9223372036854775808");
	sbuf_free(&w);
	sbuf_free(&s);
	CHECK(s.p == NULL);
}

TEST(sbuf_printf_long_output)
{
	struct sbuf s;
	char big[600];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sbuf_init(&s, 4096);
	sbuf_printf(&s, "<%s>", big);
	CHECK_INT(s.len, sizeof(big) + 1);
	CHECK(s.p[0] == '<' && s.p[s.len - 1] == '>');
	sbuf_free(&s);
}

int main(void)
{
	RUN(iobuf_consume_resets_and_pool_reuses);
	RUN(iobuf_grow_keeps_data);
	RUN(sbuf_cap_is_sticky);
	RUN(sbuf_printf_long_output);
	return unit_done();
}

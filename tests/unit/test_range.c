/* The Range field (RFC 9110 §14) and If-Range (§13.1.5), as the cache
 * answers them from a stored representation. */
#include "cache/policy.h"
#include "http/range.h"
#include "unit.h"

static enum range_result R(const char *v, uint64_t len, uint64_t *a, uint64_t *b)
{
	*a = *b = 12345;
	return range_parse(sv_from_cstr(v), len, a, b);
}

TEST(rfc9110_14_1_2_int_range_suffix_and_open_ranges)
{
	uint64_t a, b;
	CHECK_INT(R("bytes=0-0", 10, &a, &b), RANGE_OK);
	CHECK_INT(a, 0);
	CHECK_INT(b, 0);
	CHECK_INT(R("bytes=2-5", 10, &a, &b), RANGE_OK);
	CHECK_INT(a, 2);
	CHECK_INT(b, 5);
	CHECK_INT(R("bytes=4-", 10, &a, &b), RANGE_OK);
	CHECK_INT(a, 4);
	CHECK_INT(b, 9);
	CHECK_INT(R("bytes=-3", 10, &a, &b), RANGE_OK);
	CHECK_INT(a, 7);
	CHECK_INT(b, 9);
	CHECK_INT(R("BYTES=3-100", 10, &a, &b), RANGE_OK); /* last past the end: clipped */
	CHECK_INT(b, 9);
	CHECK_INT(R("bytes=-100", 10, &a, &b), RANGE_OK); /* suffix longer than it: all */
	CHECK_INT(a, 0);
	CHECK_INT(b, 9);
}

TEST(rfc9110_14_1_1_invalid_ranges_are_ignored)
{
	uint64_t a, b;
	const char *bad[] = {"",
			     "bytes",
			     "bytes=",
			     "bytes=-",
			     "bytes=5-2",
			     "items=0-1",
			     "bytes=a-b",
			     "bytes=1-2,4-5",
			     "bytes=0-1x",
			     "bytes 0-1",
			     "bytes=--1",
			     "bytes=1--2",
			     "bytes=99999999999999999999-"};
	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
		if (R(bad[i], 10, &a, &b) != RANGE_IGNORE)
			printf("    not ignored: %s\n", bad[i]);
		CHECK_INT(R(bad[i], 10, &a, &b), RANGE_IGNORE);
	}
}

TEST(rfc9110_15_5_17_unsatisfiable_ranges)
{
	uint64_t a, b;
	CHECK_INT(R("bytes=10-", 10, &a, &b), RANGE_UNSATISFIABLE);
	CHECK_INT(R("bytes=10-20", 10, &a, &b), RANGE_UNSATISFIABLE);
	CHECK_INT(R("bytes=-0", 10, &a, &b), RANGE_UNSATISFIABLE);
	CHECK_INT(R("bytes=0-", 0, &a, &b), RANGE_UNSATISFIABLE);
	CHECK_INT(R("bytes=-0", 0, &a, &b), RANGE_UNSATISFIABLE);
	/* §14.1.1: a non-zero suffix of an empty representation is satisfiable,
	 * but no 206 can carry it: the whole (empty) answer. */
	CHECK_INT(R("bytes=-5", 0, &a, &b), RANGE_IGNORE);
}

static struct h1_header H(const char *n, const char *v) {
	return (struct h1_header){sv_from_cstr(n), sv_from_cstr(v)};
}

TEST(rfc9110_13_1_5_if_range_strong_etag_or_exact_date)
{
	struct h1_header st[] = {H("ETag", "\"v1\""),
				 H("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
				 H("Date", "Tue, 01 Dec 2026 10:00:01 GMT")};
	struct h1_header weak[] = {H("ETag", "W/\"v1\"")};
	int64_t now = 1796000000;
	struct h1_header none[] = {H("Range", "bytes=0-1")};
	CHECK(policy_if_range(none, 1, st, 3, now));
	struct h1_header r1[] = {H("If-Range", "\"v1\"")};
	CHECK(policy_if_range(r1, 1, st, 3, now));
	CHECK(!policy_if_range(r1, 1, weak, 1, now)); /* strong comparison only */
	struct h1_header r2[] = {H("If-Range", "W/\"v1\"")};
	CHECK(!policy_if_range(r2, 1, st, 3, now));
	struct h1_header r3[] = {H("If-Range", "\"v2\"")};
	CHECK(!policy_if_range(r3, 1, st, 3, now));
	struct h1_header r4[] = {H("If-Range", "Tue, 01 Dec 2026 10:00:00 GMT")};
	CHECK(policy_if_range(r4, 1, st, 3, now));
	struct h1_header r5[] = {H("If-Range", "Tue, 01 Dec 2026 10:00:01 GMT")};
	CHECK(!policy_if_range(r5, 1, st, 3, now)); /* exact, not "not newer" */
	struct h1_header r6[] = {H("If-Range", "yesterday")};
	CHECK(!policy_if_range(r6, 1, st, 3, now));
	/* A date is an entity-tag only in quotes: "Wed, ..." is a date. */
	struct h1_header wed[] = {H("Last-Modified", "Wed, 02 Dec 2026 10:00:00 GMT"),
				  H("Date", "Thu, 03 Dec 2026 10:00:00 GMT")};
	struct h1_header r7[] = {H("If-Range", "Wed, 02 Dec 2026 10:00:00 GMT")};
	CHECK(policy_if_range(r7, 1, wed, 2, now));
}

/* §8.8.2.2: for a cache, Last-Modified is strong only when it is at least a
 * second before the stored Date; else an If-Range date never matches. */
TEST(rfc9110_8_8_2_2_if_range_date_needs_a_strong_last_modified)
{
	int64_t now = 1796000000;
	struct h1_header same[] = {H("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
				   H("Date", "Tue, 01 Dec 2026 10:00:00 GMT")};
	struct h1_header nodate[] = {H("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT")};
	struct h1_header r[] = {H("If-Range", "Tue, 01 Dec 2026 10:00:00 GMT")};
	CHECK(!policy_if_range(r, 1, same, 2, now));
	CHECK(!policy_if_range(r, 1, nodate, 1, now));
}

int main(void)
{
	RUN(rfc9110_14_1_2_int_range_suffix_and_open_ranges);
	RUN(rfc9110_14_1_1_invalid_ranges_are_ignored);
	RUN(rfc9110_15_5_17_unsatisfiable_ranges);
	RUN(rfc9110_13_1_5_if_range_strong_etag_or_exact_date);
	RUN(rfc9110_8_8_2_2_if_range_date_needs_a_strong_last_modified);
	return unit_done();
}

#include "base/sv.h"
#include "unit.h"

TEST(sv_ieq_is_ascii_case_insensitive)
{
	CHECK(sv_ieq(SV_LIT("Content-Length"), SV_LIT("content-length")));
	CHECK(!sv_ieq(SV_LIT("Content-Length"), SV_LIT("content-lengt")));
	CHECK(!sv_ieq(SV_LIT("a\xc1"), SV_LIT("a\xe1")));
}

TEST(sv_to_u64_strict)
{
	uint64_t v = 0;
	CHECK_INT(sv_to_u64(SV_LIT("0"), UINT64_MAX, &v), 0);
	CHECK_INT(v, 0);
	CHECK_INT(sv_to_u64(SV_LIT("18446744073709551615"), UINT64_MAX, &v), 0);
	CHECK(v == UINT64_MAX);
	CHECK_INT(sv_to_u64(SV_LIT("18446744073709551616"), UINT64_MAX, &v), -1);
	CHECK_INT(sv_to_u64(SV_LIT("65536"), 65535, &v), -1);
	CHECK_INT(sv_to_u64(SV_LIT("65535"), 65535, &v), 0);
	CHECK_INT(sv_to_u64(SV_LIT(""), 10, &v), -1);
	CHECK_INT(sv_to_u64(SV_LIT("+1"), 10, &v), -1);
	CHECK_INT(sv_to_u64(SV_LIT(" 1"), 10, &v), -1);
	CHECK_INT(sv_to_u64(SV_LIT("1x"), 10, &v), -1);
}

TEST(sv_list_iterates_and_skips_empty_elements)
{
	struct sv rest = SV_LIT(" a ,, b\t,c;q=1 ,"), e;
	CHECK(sv_next_list_elem(&rest, &e));
	CHECK_SV(e, "a");
	CHECK(sv_next_list_elem(&rest, &e));
	CHECK_SV(e, "b");
	CHECK(sv_next_list_elem(&rest, &e));
	CHECK_SV(e, "c;q=1");
	CHECK(!sv_next_list_elem(&rest, &e));
	CHECK(sv_list_has_token(SV_LIT("keep-alive, Close"), "close"));
	CHECK(sv_list_has_token(SV_LIT("gzip, chunked;x=1"), "chunked"));
	CHECK(!sv_list_has_token(SV_LIT("closed"), "close"));
}

TEST(sv_token_chars_per_rfc9110)
{
	CHECK(sv_is_token(SV_LIT("GET")));
	CHECK(sv_is_token(SV_LIT("X-Custom_Header.1~")));
	CHECK(!sv_is_token(SV_LIT("")));
	CHECK(!sv_is_token(SV_LIT("a b")));
	CHECK(!sv_is_token(SV_LIT("a:b")));
	CHECK(!sv_is_token(SV_LIT("a\x7f")));
}

TEST(hex_digits_either_case)
{
	CHECK_INT(sv_hexval('0'), 0);
	CHECK_INT(sv_hexval('9'), 9);
	CHECK_INT(sv_hexval('a'), 10);
	CHECK_INT(sv_hexval('F'), 15);
	CHECK_INT(sv_hexval('g'), -1);
	CHECK_INT(sv_hexval(' '), -1);
	CHECK_INT(sv_hexval(0xff), -1);
}

int main(void)
{
	RUN(hex_digits_either_case);
	RUN(sv_ieq_is_ascii_case_insensitive);
	RUN(sv_to_u64_strict);
	RUN(sv_list_iterates_and_skips_empty_elements);
	RUN(sv_token_chars_per_rfc9110);
	return unit_done();
}

/* test_key.c - the primary cache key (RFC 9111 §2, RFC 9110 §4.2.3). */
#include "cache/key.h"
#include "unit.h"

static const char *key(const char *host, bool v6, uint16_t port, const char *path)
{
	static char out[256];
	long n = cache_key_make(sv_from_cstr(host), v6, port, sv_from_cstr(path), out,
				sizeof(out) - 1);
	if (n < 0)
		return "(error)";
	out[n] = 0;
	return out;
}

TEST(rfc9110_4_2_3_host_case_and_port_normalised)
{
	CHECK_STR(key("Example.COM", false, 80, "/a"), "http://example.com:80/a");
	CHECK_STR(key("example.com", false, 8080, "/a?b=C"), "http://example.com:8080/a?b=C");
	CHECK_STR(key("::1", true, 80, "/"), "http://[::1]:80/");
	CHECK_STR(key("h", false, 80, ""), "http://h:80/"); /* empty path is "/" */
	/* The path is case-sensitive. */
	CHECK(strcmp(key("h", false, 80, "/A"), "http://h:80/a") != 0);
	/* A trailing dot names the same host (the DNS root). */
	CHECK_STR(key("Example.com.", false, 80, "/a"), "http://example.com:80/a");
	CHECK_STR(key(".", false, 80, "/"), "http://.:80/");
}

TEST(rfc3986_6_2_2_percent_encoding_normalised)
{
	CHECK_STR(key("h", false, 80, "/%7Euser/%41%2d"), "http://h:80/~user/A-");
	CHECK_STR(key("h", false, 80, "/a%2fb%3f"), "http://h:80/a%2Fb%3F");
	CHECK_STR(key("h", false, 80, "/%"), "(error)");
	CHECK_STR(key("h", false, 80, "/%4"), "(error)");
	CHECK_STR(key("h", false, 80, "/%zz"), "(error)");
}

TEST(key_too_long_is_an_error_and_hash_follows_the_key)
{
	char out[16];
	CHECK(cache_key_make(sv_from_cstr("example.com"), false, 80, sv_from_cstr("/x"), out,
			     sizeof(out)) < 0);
	const char *a = "http://h:80/a";
	CHECK(cache_key_hash(a, strlen(a)) == cache_key_hash("http://h:80/a", 13));
	CHECK(cache_key_hash(a, strlen(a)) != cache_key_hash("http://h:80/b", 13));
}

int main(void)
{
	RUN(rfc9110_4_2_3_host_case_and_port_normalised);
	RUN(rfc3986_6_2_2_percent_encoding_normalised);
	RUN(key_too_long_is_an_error_and_hash_follows_the_key);
	return unit_done();
}

#include "buf/limits.h"
#include "http/uri.h"
#include "unit.h"

static struct uri u;

#define ABS(lit)	uri_parse_absolute(SV_LIT(lit), &u)
#define AUTH(lit)	uri_parse_authority(SV_LIT(lit), &u)
#define HOST(lit, port) uri_parse_host(SV_LIT(lit), port, &u)

TEST(rfc9112_3_2_2_absolute_form_parts)
{
	CHECK_INT(ABS("http://example.com/a/b?x=1&y=%41"), 0);
	CHECK_SV(u.scheme, "http");
	CHECK_SV(u.host, "example.com");
	CHECK(!u.host_is_ipv6);
	CHECK_INT(u.port, 80);
	CHECK(!u.port_explicit);
	CHECK_SV(u.path, "/a/b?x=1&y=%41");
	CHECK(!u.path_empty);
}

TEST(rfc9112_3_2_2_scheme_case_insensitive_and_port)
{
	CHECK_INT(ABS("HTTP://Example.COM:8080"), 0);
	CHECK_SV(u.scheme, "HTTP");
	CHECK_SV(u.host, "Example.COM");
	CHECK_INT(u.port, 8080);
	CHECK(u.port_explicit);
	CHECK_SV(u.path, "/");
	CHECK(u.path_empty);
	CHECK_INT(ABS("http://a:65535/"), 0);
	CHECK_INT(u.port, 65535);
	CHECK_INT(ABS("http://a:080/"), 0);
	CHECK_INT(u.port, 80);
}

TEST(rfc3986_3_1_other_schemes_are_minus_2)
{
	CHECK_INT(ABS("https://example.com/"), -2);
	CHECK_INT(ABS("ftp://example.com/"), -2);
	CHECK_INT(ABS("ws://example.com/"), -2);
	CHECK_INT(ABS("1http://example.com/"), -1);
	CHECK_INT(ABS("ht_tp://example.com/"), -1);
	CHECK_INT(ABS("://example.com/"), -1);
	CHECK_INT(ABS("/just/a/path"), -1);
	CHECK_INT(ABS(""), -1);
}

TEST(rfc3986_3_2_double_slash_required)
{
	CHECK_INT(ABS("http:/example.com/"), -1);
	CHECK_INT(ABS("http:example.com"), -1);
	CHECK_INT(ABS("http:"), -1);
	CHECK_INT(ABS("http:/"), -1);
}

TEST(rfc9110_4_2_4_userinfo_rejected)
{
	CHECK_INT(ABS("http://user@example.com/"), -1);
	CHECK_INT(ABS("http://user:pw@example.com/"), -1);
	CHECK_INT(ABS("http://good.example@evil.example/"), -1);
	/* '@' in the path is a pchar, not userinfo */
	CHECK_INT(ABS("http://example.com/a@b"), 0);
}

TEST(rfc9110_4_2_1_empty_host_rejected)
{
	CHECK_INT(ABS("http:///x"), -1);
	CHECK_INT(ABS("http://:80/x"), -1);
	CHECK_INT(ABS("http://"), -1);
	CHECK_INT(ABS("http://?q"), -1);
}

TEST(rfc3986_3_2_3_port_range)
{
	CHECK_INT(ABS("http://a:0/"), -1);
	CHECK_INT(ABS("http://a:65536/"), -1);
	CHECK_INT(ABS("http://a:99999999999999999999/"), -1);
	CHECK_INT(ABS("http://a:8a/"), -1);
	CHECK_INT(ABS("http://a:-1/"), -1);
	CHECK_INT(ABS("http://a:+80/"), -1);
	CHECK_INT(ABS("http://a:/"), -1);
	CHECK_INT(ABS("http://a:80:81/"), -1);
}

TEST(rfc3986_3_5_fragment_rejected)
{
	CHECK_INT(ABS("http://a/b#frag"), -1);
	CHECK_INT(ABS("http://a#frag"), -1);
	CHECK_INT(ABS("http://a/b?q#f"), -1);
}

TEST(rfc3986_2_1_percent_encoding_checked)
{
	CHECK_INT(ABS("http://a/%2F%2f"), 0);
	CHECK_INT(ABS("http://a/%2"), -1);
	CHECK_INT(ABS("http://a/%"), -1);
	CHECK_INT(ABS("http://a/%zz"), -1);
	CHECK_INT(ABS("http://a/?q=%g0"), -1);
	CHECK_INT(ABS("http://%61.example/"), 0);
	CHECK_INT(ABS("http://%6.example/"), -1);
}

TEST(rfc3986_3_3_path_chars)
{
	CHECK_INT(ABS("http://a/!$&'()*+,;=:@-._~/x?/?:@"), 0);
	CHECK_INT(ABS("http://a/a b"), -1);
	CHECK_INT(ABS("http://a/\""), -1);
	CHECK_INT(ABS("http://a/<x>"), -1);
	CHECK_INT(ABS("http://a/{x}"), -1);
	CHECK_INT(ABS("http://a/a|b"), -1);
	CHECK_INT(ABS("http://a/a\\b"), -1);
	CHECK_INT(ABS("http://a/a^b"), -1);
	CHECK_INT(ABS("http://a/a`b"), -1);
	CHECK_INT(ABS("http://a/?[x]"), -1);
	CHECK_INT(ABS("http://a/\xc3\xa9"), -1);
	CHECK_INT(ABS("http://a/\x7f"), -1);
}

TEST(rfc9112_3_2_1_query_without_path_gets_slash)
{
	/* origin-form is "/" + query; the caller writes the '/' */
	CHECK_INT(ABS("http://a?q=1"), 0);
	CHECK_SV(u.host, "a");
	CHECK_SV(u.path, "?q=1");
	CHECK(u.query_only);
	CHECK(u.path_empty);
	CHECK_INT(ABS("http://a:81?"), 0);
	CHECK_SV(u.path, "?");
	CHECK_INT(ABS("http://a?q#f"), -1);
	CHECK_INT(ABS("http://a/x"), 0);
	CHECK(!u.query_only);
}

TEST(rfc3986_3_2_2_ipv6_literal)
{
	CHECK_INT(ABS("http://[::1]:8080/x"), 0);
	CHECK_SV(u.host, "::1");
	CHECK(u.host_is_ipv6);
	CHECK_INT(u.port, 8080);
	CHECK_SV(u.path, "/x");
	CHECK_INT(ABS("http://[2001:db8::a:b:c]"), 0);
	CHECK_SV(u.host, "2001:db8::a:b:c");
	CHECK_INT(u.port, 80);
	CHECK_INT(ABS("http://[::ffff:192.0.2.1]/"), 0);
	CHECK_INT(ABS("http://[::g]/"), -1);
	CHECK_INT(ABS("http://[::1/"), -1);
	CHECK_INT(ABS("http://[]/"), -1);
	CHECK_INT(ABS("http://[::1]x/"), -1);
	CHECK_INT(ABS("http://[::1]:/"), -1);
	CHECK_INT(ABS("http://[1.2.3.4]/"), -1);
	CHECK_INT(ABS("http://[fe80::1%25eth0]/"), -1);
	CHECK_INT(ABS("http://[v1.fe]/"), -1);
	/* inet_pton sees a C string: a NUL must not cut the literal short */
	CHECK_INT(uri_parse_host(sv_make("[::ffff:1\0x]", 12), 80, &u), -1);
	CHECK_INT(uri_parse_host(sv_make("[::1\0]", 6), 80, &u), -1);
	CHECK_INT(ABS("http://::1/"), -1);
	CHECK_INT(ABS("http://[0000:0000:0000:0000:0000:0000:0000:0000:0000]/"), -1);
}

TEST(rfc3986_3_2_2_reg_name_chars)
{
	CHECK_INT(ABS("http://a-b_c~d.e!$&'()*+,;=/"), 0);
	CHECK_SV(u.host, "a-b_c~d.e!$&'()*+,;=");
	CHECK_INT(ABS("http://192.0.2.1:81/"), 0);
	CHECK_SV(u.host, "192.0.2.1");
	CHECK_INT(ABS("http://a b/"), -1);
	CHECK_INT(ABS("http://a\"b/"), -1);
	CHECK_INT(ABS("http://a<b/"), -1);
	CHECK_INT(ABS("http://a\\b/"), -1);
	CHECK_INT(ABS("http://\xc3\xa9.example/"), -1);
}

TEST(uri_host_length_capped)
{
	static char buf[HOST_NAME_MAX_LEN + 32];
	memcpy(buf, "http://", 7);
	memset(buf + 7, 'a', HOST_NAME_MAX_LEN);
	buf[7 + HOST_NAME_MAX_LEN] = '/';
	CHECK_INT(uri_parse_absolute(sv_make(buf, 7 + HOST_NAME_MAX_LEN + 1), &u), 0);
	CHECK_INT(u.host.len, HOST_NAME_MAX_LEN);
	memset(buf + 7, 'a', HOST_NAME_MAX_LEN + 1);
	buf[7 + HOST_NAME_MAX_LEN + 1] = '/';
	CHECK_INT(uri_parse_absolute(sv_make(buf, 7 + HOST_NAME_MAX_LEN + 2), &u), -1);
	CHECK_INT(uri_parse_host(sv_make(buf + 7, HOST_NAME_MAX_LEN + 1), 80, &u), -1);
	CHECK_INT(uri_parse_host(sv_make(buf + 7, HOST_NAME_MAX_LEN), 80, &u), 0);
}

TEST(rfc9110_9_3_6_authority_form)
{
	CHECK_INT(AUTH("example.com:443"), 0);
	CHECK_SV(u.host, "example.com");
	CHECK_INT(u.port, 443);
	CHECK(u.port_explicit);
	CHECK_INT(u.scheme.len, 0);
	CHECK_INT(AUTH("[2001:db8::1]:8443"), 0);
	CHECK_SV(u.host, "2001:db8::1");
	CHECK(u.host_is_ipv6);
	CHECK_INT(u.port, 8443);
	CHECK_INT(AUTH("example.com"), -1);
	CHECK_INT(AUTH("example.com:"), -1);
	CHECK_INT(AUTH("example.com:0"), -1);
	CHECK_INT(AUTH("example.com:443/x"), -1);
	CHECK_INT(AUTH("user@example.com:443"), -1);
	CHECK_INT(AUTH("http://example.com:443"), -1);
	CHECK_INT(AUTH(":443"), -1);
	CHECK_INT(AUTH("[::1]"), -1);
	CHECK_INT(AUTH(""), -1);
}

TEST(rfc9110_7_2_host_header)
{
	CHECK_INT(HOST("example.com", 80), 0);
	CHECK_SV(u.host, "example.com");
	CHECK_INT(u.port, 80);
	CHECK(!u.port_explicit);
	CHECK_INT(HOST("example.com:8080", 80), 0);
	CHECK_INT(u.port, 8080);
	CHECK(u.port_explicit);
	CHECK_INT(HOST("[::1]", 443), 0);
	CHECK_SV(u.host, "::1");
	CHECK_INT(u.port, 443);
	CHECK_INT(HOST("", 80), -1);
	CHECK_INT(HOST("a b", 80), -1);
	CHECK_INT(HOST("a/b", 80), -1);
	CHECK_INT(HOST("example.com:0", 80), -1);
	CHECK_INT(HOST("example.com:", 80), -1);
	CHECK_INT(HOST("u@example.com", 80), -1);
	CHECK_INT(HOST("a,b", 80), 0); /* ',' is a sub-delim; two Host fields are the caller's */
}

TEST(uri_host_eq_case_insensitive)
{
	CHECK(uri_host_eq(SV_LIT("Example.COM"), SV_LIT("example.com")));
	CHECK(!uri_host_eq(SV_LIT("example.com"), SV_LIT("example.co")));
	CHECK(uri_host_eq(SV_LIT("example.com"), SV_LIT("Example.com.")));
	CHECK(!uri_host_eq(SV_LIT("example.com"), SV_LIT("example.com..")));
	CHECK(!uri_host_eq(SV_LIT("."), SV_LIT("")));
	CHECK(uri_host_eq(SV_LIT(""), SV_LIT("")));
}

static const char *route_path(const char *in)
{
	static char out[256];
	long n = uri_route_path(sv_from_cstr(in), out, strlen(in));
	if (n < 0)
		return "(refused)";
	out[n] = '\0';
	return out;
}

TEST(rfc3986_6_2_2_route_path_normalised_and_dot_segments_refused)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"/api/x?q=1", "/api/x"},
		{"/%61pi/%7e%2Dx", "/api/~-x"},		    /* unreserved: decoded */
		{"/a%2fb%2F", "/a/b/"},			    /* an encoded "/" is one */
		{"/a%3cb%3E", "/a%3Cb%3E"},		    /* others: upper-case hex */
		{"/a/b.c/.d/..e/x..", "/a/b.c/.d/..e/x.."}, /* dots, no dot segment */
		{"/", "/"},
		{"/?only", "/"},
		{"?only", ""}, /* a query alone (absolute-form "http://a?q") */
		{"/a;p=1/b", "/a;p=1/b"},
		{"/public/../admin", "(refused)"},
		{"/public/./x", "(refused)"},
		{"/public/..", "(refused)"},
		{"/public/.", "(refused)"},
		{"/public/%2e%2E/admin", "(refused)"}, /* encoded dots */
		{"/public/.%2e/admin", "(refused)"},
		{"/public/..%2fadmin", "(refused)"}, /* encoded slash after them */
		{"/public/..;/admin", "(refused)"},  /* ";params" after them */
		{"/public/..%3b/admin", "(refused)"},
		{"/public/..%5Cadmin", "(refused)"}, /* a backslash, "/" to some */
		{"/a%5cb", "/a/b"},
		{"/public/.;x/admin", "(refused)"},
		{"/x/..?q", "(refused)"},
		{"/a%2", "(refused)"}, /* a bad % */
		{"/a%zz", "(refused)"},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++)
		CHECK_STR(route_path(cases[i].in), cases[i].want);
}

TEST(rfc5952_ipv6_literal_has_one_text_form)
{
	char out[64];
	CHECK(uri_ipv6_canonical(SV_LIT("0:0:0::1"), out, sizeof(out)));
	CHECK_STR(out, "::1");
	CHECK(uri_ipv6_canonical(SV_LIT("2001:DB8:0:0::1"), out, sizeof(out)));
	CHECK_STR(out, "2001:db8::1");
	CHECK(!uri_ipv6_canonical(SV_LIT("www.example"), out, sizeof(out)));
	CHECK(!uri_ipv6_canonical(SV_LIT("1.2.3.4"), out, sizeof(out)));
	CHECK(!uri_ipv6_canonical(SV_LIT("::1"), out, 2)); /* no room */
}

int main(void)
{
	RUN(rfc9112_3_2_2_absolute_form_parts);
	RUN(rfc9112_3_2_2_scheme_case_insensitive_and_port);
	RUN(rfc3986_3_1_other_schemes_are_minus_2);
	RUN(rfc3986_3_2_double_slash_required);
	RUN(rfc9110_4_2_4_userinfo_rejected);
	RUN(rfc9110_4_2_1_empty_host_rejected);
	RUN(rfc3986_3_2_3_port_range);
	RUN(rfc3986_3_5_fragment_rejected);
	RUN(rfc3986_2_1_percent_encoding_checked);
	RUN(rfc3986_3_3_path_chars);
	RUN(rfc9112_3_2_1_query_without_path_gets_slash);
	RUN(rfc3986_3_2_2_ipv6_literal);
	RUN(rfc3986_3_2_2_reg_name_chars);
	RUN(uri_host_length_capped);
	RUN(rfc9110_9_3_6_authority_form);
	RUN(rfc9110_7_2_host_header);
	RUN(uri_host_eq_case_insensitive);
	RUN(rfc3986_6_2_2_route_path_normalised_and_dot_segments_refused);
	RUN(rfc5952_ipv6_literal_has_one_text_form);
	return unit_done();
}

#include <arpa/inet.h>
#include <netinet/in.h>

#include "obs/alog.h"
#include "proxy/head.h"
#include "unit.h"

static struct h1_header H(const char *n, const char *v) {
	return (struct h1_header){sv_from_cstr(n), sv_from_cstr(v)};
}

TEST(rfc9110_7_6_1_connection_named_fields_dropped)
{
	struct h1_header h[] = {H("Connection", "X-Foo, close"),
				H("X-Foo", "1"),
				H("X-Bar", "2"),
				H("Keep-Alive", "t=5"),
				H("TE", "trailers"),
				H("Proxy-Authorization", "Basic x"),
				H("Upgrade", "ws")};
	unsigned n = SL_ARRAY_LEN(h);
	CHECK(head_is_hop_by_hop(SV_LIT("x-foo"), h, n, false));
	CHECK(!head_is_hop_by_hop(SV_LIT("X-Bar"), h, n, false));
	CHECK(head_is_hop_by_hop(SV_LIT("keep-alive"), h, n, false));
	CHECK(head_is_hop_by_hop(SV_LIT("TE"), h, n, false));
	CHECK(head_is_hop_by_hop(SV_LIT("Proxy-Authorization"), h, n, false));
	CHECK(head_is_hop_by_hop(SV_LIT("Upgrade"), h, n, false));
	CHECK(!head_is_hop_by_hop(SV_LIT("Upgrade"), h, n, true));
}

TEST(connection_cannot_strip_framing_fields)
{
	struct h1_header h[] = {H("Connection", "Content-Length, Transfer-Encoding, Host")};
	CHECK(!head_is_hop_by_hop(SV_LIT("Content-Length"), h, 1, false));
	CHECK(!head_is_hop_by_hop(SV_LIT("Transfer-Encoding"), h, 1, false));
	CHECK(!head_is_hop_by_hop(SV_LIT("Host"), h, 1, false));
}

TEST(rfc9112_3_2_request_head_rewritten)
{
	struct h1_header h[] = {H("Host", "wrong.example"), H("Accept", "*/*"),
				H("Proxy-Connection", "keep-alive"), H("Connection", "x-a"),
				H("X-A", "drop")};
	struct h1_request req = {
		.method = SV_LIT("GET"), .version = 11, .headers = h, .nheaders = SL_ARRAY_LEN(h)};
	struct uri u;
	struct sbuf out;
	struct head_opts o = {.via_name = "px", .xff = "10.0.0.1", .max_forwards = -1};
	CHECK_INT(uri_parse_absolute(SV_LIT("http://Origin.test:8080/a?b=1"), &u), 0);
	sbuf_init(&out, 4096);
	head_build_request(&out, &req, &u, &o);
	CHECK_STR(out.p, "GET /a?b=1 HTTP/1.1\r\nHost: Origin.test:8080\r\nAccept: */*\r\n"
			 "Via: 1.1 px (sluice)\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n");
	sbuf_free(&out);
}

TEST(rfc7239_reverse_mode_host_passed_through_forwarded_added)
{
	/* A client's claims of scheme, host and earlier hops are dropped
	 * (sluice is where the request enters); the addresses before it are
	 * kept, its own appended on one line. */
	struct h1_header h[] = {H("Host", "WWW.example:8080"),
				H("X-Forwarded-Proto", "https"),
				H("X-Forwarded-For", "10.1.1.1"),
				H("Forwarded", "for=6.6.6.6;proto=https;host=evil.example"),
				H("X-Forwarded-Host", "evil.example"),
				H("x-forwarded-for", "10.2.2.2, 10.3.3.3")};
	struct h1_request req = {
		.method = SV_LIT("GET"), .version = 11, .headers = h, .nheaders = SL_ARRAY_LEN(h)};
	struct uri u;
	struct sbuf out;
	struct head_opts o = {.xff = "::1",
			      .max_forwards = -1,
			      .reverse = true,
			      .host = SV_LIT("WWW.example:8080")};
	CHECK_INT(uri_parse_origin(SV_LIT("/p?q"), h[0].value, &u), 0);
	sbuf_init(&out, 4096);
	head_build_request(&out, &req, &u, &o);
	CHECK_STR(out.p, "GET /p?q HTTP/1.1\r\nHost: WWW.example:8080\r\n"
			 "X-Forwarded-For: 10.1.1.1, 10.2.2.2, 10.3.3.3, ::1\r\n"
			 "Forwarded: for=\"[::1]\";host=\"WWW.example:8080\";proto=http\r\n"
			 "X-Forwarded-Proto: http\r\n\r\n");
	sbuf_free(&out);
}

TEST(x_forwarded_for_one_line_without_empty_or_hop_by_hop_elements)
{
	struct h1_header h[] = {H("X-Forwarded-For", "1.1.1.1 ,"), H("X-Forwarded-For", ""),
				H("X-Forwarded-For", ", 2.2.2.2")};
	struct h1_request req = {
		.method = SV_LIT("GET"), .version = 11, .headers = h, .nheaders = SL_ARRAY_LEN(h)};
	struct uri u;
	struct sbuf out;
	struct head_opts o = {.xff = "10.0.0.9", .max_forwards = -1};
	CHECK_INT(uri_parse_absolute(SV_LIT("http://a.test/"), &u), 0);
	sbuf_init(&out, 4096);
	head_build_request(&out, &req, &u, &o);
	CHECK_STR(out.p, "GET / HTTP/1.1\r\nHost: a.test\r\n"
			 "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\n\r\n");
	sbuf_free(&out);
	/* Named in Connection, it is the hop's own: not passed on. */
	struct h1_header h2[] = {H("Connection", "X-Forwarded-For"),
				 H("X-Forwarded-For", "6.6.6.6")};
	req.headers = h2;
	req.nheaders = SL_ARRAY_LEN(h2);
	sbuf_init(&out, 4096);
	head_build_request(&out, &req, &u, &o);
	CHECK_STR(out.p, "GET / HTTP/1.1\r\nHost: a.test\r\n"
			 "X-Forwarded-For: 10.0.0.9\r\n\r\n");
	sbuf_free(&out);
}

TEST(rfc9112_3_2_4_options_empty_path_is_asterisk_port80_omitted)
{
	struct h1_request req = {.method = SV_LIT("OPTIONS"), .version = 11};
	struct uri u;
	struct sbuf out;
	struct head_opts o = {.max_forwards = 3};
	CHECK_INT(uri_parse_absolute(SV_LIT("http://a.test:80"), &u), 0);
	sbuf_init(&out, 4096);
	head_build_request(&out, &req, &u, &o);
	CHECK_STR(out.p, "OPTIONS * HTTP/1.1\r\nHost: a.test\r\nMax-Forwards: 3\r\n\r\n");
	sbuf_free(&out);
}

TEST(response_head_dechunked_with_connection)
{
	struct h1_header h[] = {H("Transfer-Encoding", "chunked"), H("Content-Type", "text/x"),
				H("Keep-Alive", "timeout=5")};
	struct h1_response r = {
		.version = 11, .status = 200, .reason = SV_LIT("OK"), .headers = h, .nheaders = 3};
	struct sbuf out;
	struct head_opts o = {.max_forwards = -1};
	sbuf_init(&out, 4096);
	head_build_response(&out, &r, &o, true, "close");
	CHECK_STR(out.p, "HTTP/1.1 200 OK\r\nContent-Type: text/x\r\nConnection: close\r\n\r\n");
	sbuf_free(&out);
}

TEST(rfc9110_7_6_3_via_loop_detection)
{
	struct h1_header h[] = {H("Via", "1.0 fred, 1.1 p.example (sluice)"),
				H("Via", "HTTP/1.1 other")};
	CHECK(head_via_has(h, 2, "fred"));
	CHECK(head_via_has(h, 2, "P.example"));
	CHECK(head_via_has(h, 2, "other"));
	CHECK(!head_via_has(h, 2, "sluice"));
	CHECK(!head_via_has(h, 2, "p"));
}

TEST(alog_squid_and_combined_lines)
{
	struct sockaddr_in c = {.sin_family = AF_INET, .sin_port = htons(5555)};
	struct sockaddr_in u = {.sin_family = AF_INET, .sin_port = htons(8080)};
	char line[512];
	size_t n;
	inet_pton(AF_INET, "127.0.0.1", &c.sin_addr);
	inet_pton(AF_INET, "10.1.2.3", &u.sin_addr);
	struct alog_rec r = {.start_wall_us = 1700000000123456ull,
			     .duration_us = 45000,
			     .client = (struct sockaddr *)&c,
			     .tag = "TCP_MISS",
			     .status = 200,
			     .bytes = 1234,
			     .method = SV_LIT("GET"),
			     .url = SV_LIT("http://a.test/x"),
			     .version = 11,
			     .upstream = (struct sockaddr *)&u,
			     .content_type = SV_LIT("text/html; charset=utf-8"),
			     .user_agent = SV_LIT("curl/8 \"evil\"\n")};
	n = alog_format_rec(&r, ALOG_SQUID, line, sizeof(line));
	CHECK_MEM(line, n,
		  "1700000000.123     45 127.0.0.1 TCP_MISS/200 1234 GET "
		  "http://a.test/x - HIER_DIRECT/10.1.2.3 text/html\n");
	n = alog_format_rec(&r, ALOG_COMBINED, line, sizeof(line));
	CHECK_MEM(line, n,
		  "127.0.0.1 - - [14/Nov/2023:22:13:20 +0000] \"GET http://a.test/x "
		  "HTTP/1.1\" 200 1234 \"-\" \"curl/8 ?evil??\" 45 10.1.2.3:8080\n");
}

TEST(alog_aborted_lines)
{
	struct sockaddr_in c = {.sin_family = AF_INET, .sin_port = htons(5555)};
	char line[512];
	size_t n;
	inet_pton(AF_INET, "127.0.0.1", &c.sin_addr);
	struct alog_rec r = {.start_wall_us = 1700000000123456ull,
			     .duration_us = 2000,
			     .client = (struct sockaddr *)&c,
			     .tag = "TCP_MISS",
			     .aborted = true,
			     .method = SV_LIT("GET"),
			     .url = SV_LIT("http://a.test/x"),
			     .version = 11};
	/* Nothing was sent: Squid's 000, nginx's 499. */
	n = alog_format_rec(&r, ALOG_SQUID, line, sizeof(line));
	CHECK_MEM(line, n,
		  "1700000000.123      2 127.0.0.1 TCP_MISS_ABORTED/000 0 GET "
		  "http://a.test/x - HIER_NONE/- -\n");
	n = alog_format_rec(&r, ALOG_COMBINED, line, sizeof(line));
	CHECK_MEM(line, n,
		  "127.0.0.1 - - [14/Nov/2023:22:13:20 +0000] \"GET http://a.test/x "
		  "HTTP/1.1\" 499 0 \"-\" \"-\" 2 -\n");
	/* Cut off mid-body: the status that was sent, and the bytes. */
	r.status = 200;
	r.bytes = 70000;
	n = alog_format_rec(&r, ALOG_SQUID, line, sizeof(line));
	CHECK_MEM(line, n,
		  "1700000000.123      2 127.0.0.1 TCP_MISS_ABORTED/200 70000 GET "
		  "http://a.test/x - HIER_NONE/- -\n");
	n = alog_format_rec(&r, ALOG_COMBINED, line, sizeof(line));
	CHECK_MEM(line, n,
		  "127.0.0.1 - - [14/Nov/2023:22:13:20 +0000] \"GET http://a.test/x "
		  "HTTP/1.1\" 200 70000 \"-\" \"-\" 2 -\n");
}

int main(void)
{
	RUN(rfc9110_7_6_1_connection_named_fields_dropped);
	RUN(connection_cannot_strip_framing_fields);
	RUN(rfc9112_3_2_request_head_rewritten);
	RUN(rfc9112_3_2_4_options_empty_path_is_asterisk_port80_omitted);
	RUN(rfc7239_reverse_mode_host_passed_through_forwarded_added);
	RUN(x_forwarded_for_one_line_without_empty_or_hop_by_hop_elements);
	RUN(response_head_dechunked_with_connection);
	RUN(rfc9110_7_6_3_via_loop_detection);
	RUN(alog_squid_and_combined_lines);
	RUN(alog_aborted_lines);
	return unit_done();
}

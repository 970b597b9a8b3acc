#include <stdlib.h>
#include <time.h>

#include "http/h1.h"
#include "unit.h"

#define HCAP 1100

static const struct h1_limits lim = {.max_head = 32768, .max_line = 8192, .max_headers = 100};
static struct h1_header hdrs[HCAP];
static struct h1_request req;
static struct h1_response resp;
static struct h1_error err;
static struct h1_body body;

struct verdict {
	int rc;
	int status;
	size_t offset;
	size_t head_len;
};

static struct verdict req_once(const char *buf, size_t len, const struct h1_limits *l)
{
	struct h1_request r = {0};
	struct h1_error e = {0};
	static struct h1_header h[HCAP];
	int rc = h1_parse_request(buf, len, l, &r, h, HCAP, &e);
	return (struct verdict){rc, rc == H1_ERROR ? e.status : 0, rc == H1_ERROR ? e.offset : 0,
				rc == H1_OK ? r.head_len : 0};
}

static struct verdict resp_once(const char *buf, size_t len, const struct h1_limits *l)
{
	struct h1_response r = {0};
	struct h1_error e = {0};
	static struct h1_header h[HCAP];
	int rc = h1_parse_response(buf, len, l, &r, h, HCAP, &e);
	return (struct verdict){rc, rc == H1_ERROR ? e.status : 0, rc == H1_ERROR ? e.offset : 0,
				rc == H1_OK ? r.head_len : 0};
}

/* The caller re-parses a growing buffer, so every shorter prefix must give
 * "incomplete" or exactly the verdict of the whole buffer. */
static void check_prefixes(struct verdict (*fn)(const char *, size_t, const struct h1_limits *),
			   const char *buf, size_t len, const struct h1_limits *l)
{
	struct verdict full = fn(buf, len, l);
	size_t step = len > 4096 ? len / 512 : 1;
	for (size_t p = 0; p < len; p += step) {
		struct verdict v = fn(buf, p, l);
		if (v.rc == H1_INCOMPLETE)
			continue;
		CHECK(v.rc == full.rc && v.status == full.status && v.offset == full.offset &&
		      v.head_len == full.head_len);
	}
}

static int req_lim(const char *buf, size_t len, const struct h1_limits *l)
{
	check_prefixes(req_once, buf, len, l);
	memset(&err, 0, sizeof(err));
	return h1_parse_request(buf, len, l, &req, hdrs, HCAP, &err);
}

static int resp_lim(const char *buf, size_t len, const struct h1_limits *l)
{
	check_prefixes(resp_once, buf, len, l);
	memset(&err, 0, sizeof(err));
	return h1_parse_response(buf, len, l, &resp, hdrs, HCAP, &err);
}

#define REQ(lit)  req_lim(lit, sizeof(lit) - 1, &lim)
#define RESP(lit) resp_lim(lit, sizeof(lit) - 1, &lim)
#define REQ_ERR(lit, st)                       \
	do {                                   \
		CHECK_INT(REQ(lit), H1_ERROR); \
		CHECK_INT(err.status, st);     \
	} while (0)
#define RESP_ERR(lit)                           \
	do {                                    \
		CHECK_INT(RESP(lit), H1_ERROR); \
		CHECK_INT(err.status, 502);     \
	} while (0)

/* Parse a request head and compute its framing. */
static int req_body(const char *buf, size_t len)
{
	int rc = h1_parse_request(buf, len, &lim, &req, hdrs, HCAP, &err);
	CHECK_INT(rc, H1_OK);
	if (rc != H1_OK)
		return -99;
	memset(&err, 0, sizeof(err));
	return h1_request_body(&req, &body, &err);
}

static int resp_body(const char *buf, size_t len, const char *method)
{
	int rc = h1_parse_response(buf, len, &lim, &resp, hdrs, HCAP, &err);
	CHECK_INT(rc, H1_OK);
	if (rc != H1_OK)
		return -99;
	memset(&err, 0, sizeof(err));
	return h1_response_body(&resp, sv_from_cstr(method), &body, &err);
}

#define REQ_BODY(lit)	  req_body(lit, sizeof(lit) - 1)
#define RESP_BODY(lit, m) resp_body(lit, sizeof(lit) - 1, m)
#define REQ_BODY_ERR(lit, st)                 \
	do {                                  \
		CHECK_INT(REQ_BODY(lit), -1); \
		CHECK_INT(err.status, st);    \
	} while (0)
#define RESP_BODY_ERR(lit, m)                     \
	do {                                      \
		CHECK_INT(RESP_BODY(lit, m), -1); \
		CHECK_INT(err.status, 502);       \
	} while (0)

/* ---- request line (RFC 9112 §3) ---- */

TEST(rfc9112_3_simple_get_parses_into_views)
{
	static const char m[] = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n"
				"Accept:  */* \t\r\nX-Empty:\r\n\r\nBODY";
	CHECK_INT(REQ(m), H1_OK);
	CHECK_SV(req.method, "GET");
	CHECK_SV(req.target, "/index.html?q=1");
	CHECK_INT(req.version, 11);
	CHECK_INT(req.nheaders, 3);
	CHECK(req.headers == hdrs);
	CHECK_SV(hdrs[0].name, "Host");
	CHECK_SV(hdrs[0].value, "example.com");
	CHECK_SV(hdrs[1].name, "Accept");
	CHECK_SV(hdrs[1].value, "*/*");
	CHECK_SV(hdrs[2].name, "X-Empty");
	CHECK_INT(hdrs[2].value.len, 0);
	CHECK_INT(req.head_len, sizeof(m) - 1 - 4);
}

TEST(rfc9112_3_no_headers_and_http10)
{
	CHECK_INT(REQ("OPTIONS * HTTP/1.0\r\n\r\n"), H1_OK);
	CHECK_SV(req.method, "OPTIONS");
	CHECK_SV(req.target, "*");
	CHECK_INT(req.version, 10);
	CHECK_INT(req.nheaders, 0);
	CHECK_INT(req.head_len, 22);
}

TEST(rfc9112_3_2_absolute_and_authority_targets)
{
	CHECK_INT(REQ("GET http://a.example:8080/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n"), H1_OK);
	CHECK_SV(req.target, "http://a.example:8080/x?y");
	CHECK_INT(REQ("CONNECT a.example:443 HTTP/1.1\r\n\r\n"), H1_OK);
	CHECK_SV(req.method, "CONNECT");
	CHECK_SV(req.target, "a.example:443");
}

TEST(rfc9112_2_2_leading_empty_lines_skipped)
{
	static const char m[] = "\r\n\r\nGET / HTTP/1.1\r\n\r\n";
	CHECK_INT(REQ(m), H1_OK);
	CHECK_SV(req.method, "GET");
	CHECK_INT(req.head_len, sizeof(m) - 1);
	CHECK_INT(REQ("\r\n"), H1_INCOMPLETE);
	REQ_ERR("\n\nGET / HTTP/1.1\r\n\r\n", 400);
	REQ_ERR("\r\r\nGET / HTTP/1.1\r\n\r\n", 400);
}

TEST(rfc9112_2_incomplete_until_final_crlf)
{
	static const char m[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	for (size_t n = 0; n < sizeof(m) - 1; n++)
		CHECK_INT(req_lim(m, n, &lim), H1_INCOMPLETE);
	CHECK_INT(REQ(m), H1_OK);
}

TEST(rfc9112_3_method_is_token)
{
	CHECK_INT(REQ("M-SEARCH * HTTP/1.1\r\n\r\n"), H1_OK);
	REQ_ERR("G(T / HTTP/1.1\r\n\r\n", 400);
	REQ_ERR("G\x80T / HTTP/1.1\r\n\r\n", 400);
	REQ_ERR(" GET / HTTP/1.1\r\n\r\n", 400);
	REQ_ERR("\tGET / HTTP/1.1\r\n\r\n", 400);
}

TEST(rfc9112_3_single_spaces_only)
{
	REQ_ERR("GET  / HTTP/1.1\r\n\r\n", 400);
	REQ_ERR("GET /  HTTP/1.1\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.1 \r\n\r\n", 400);
	REQ_ERR("GET\t/ HTTP/1.1\r\n\r\n", 400);
	REQ_ERR("GET /\tHTTP/1.1\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.1\t\r\n\r\n", 400);
	REQ_ERR("GET /\r\n\r\n", 400); /* HTTP/0.9 form */
	REQ_ERR("GET\r\n\r\n", 400);
	REQ_ERR("\r\n\r\n GET / HTTP/1.1\r\n\r\n", 400);
}

TEST(rfc9112_3_2_target_visible_ascii_only)
{
	REQ_ERR("GET /a\x7f HTTP/1.1\r\n\r\n", 400);
	REQ_ERR("GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 400);
	REQ_ERR("GET /a\0b HTTP/1.1\r\n\r\n", 400);
	REQ_ERR("GET /a\x01 HTTP/1.1\r\n\r\n", 400);
}

TEST(rfc9112_2_3_bad_version_is_400)
{
	REQ_ERR("GET / http/1.1\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.10\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/11\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.x\r\n\r\n", 400);
	REQ_ERR("GET / HTTX/1.1\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/2\r\n\r\n", 400);
}

TEST(rfc9112_2_3_unsupported_version_is_505)
{
	REQ_ERR("GET / HTTP/2.0\r\n\r\n", 505);
	REQ_ERR("GET / HTTP/1.2\r\n\r\n", 505);
	REQ_ERR("GET / HTTP/0.9\r\n\r\n", 505);
	REQ_ERR("GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505);
	CHECK_INT(err.offset, 6);
}

/* ---- line endings (RFC 9112 §2.2) ---- */

TEST(rfc9112_2_2_bare_lf_rejected)
{
	REQ_ERR("GET / HTTP/1.1\n\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400);
	REQ_ERR("GET /\n HTTP/1.1\r\n\r\n", 400);
	CHECK_STR(err.reason, "bare LF");
}

TEST(rfc9112_2_2_bare_cr_rejected)
{
	REQ_ERR("GET / HTTP/1.1\rX\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400);
	CHECK_STR(err.reason, "bare CR");
	CHECK_INT(err.offset, 23);
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\n\rX", 400);
	REQ_ERR("GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n", 400);
}

/* ---- fields (RFC 9112 §5, RFC 9110 §5.5) ---- */

TEST(rfc9112_5_1_space_before_colon_rejected)
{
	REQ_ERR("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
	CHECK_STR(err.reason, "whitespace before colon");
	CHECK_INT(err.offset, 20);
	REQ_ERR("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", 400);
}

TEST(rfc9112_5_2_obs_fold_rejected)
{
	REQ_ERR("GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", 400);
	CHECK_STR(err.reason, "obs-fold not allowed");
	REQ_ERR("GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n", 400);
}

TEST(rfc9112_2_2_whitespace_before_first_field_rejected)
{
	REQ_ERR("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400);
}

TEST(rfc9110_5_1_field_name_is_token)
{
	REQ_ERR("GET / HTTP/1.1\r\n: a\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nHo\x80st: a\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nHost\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nHost a\r\n\r\n", 400);
}

TEST(rfc9110_5_5_nul_and_ctl_in_value_rejected)
{
	REQ_ERR("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 400);
	CHECK_STR(err.reason, "NUL byte");
	CHECK_INT(err.offset, 20);
	REQ_ERR("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nX: a\x1f\r\n\r\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400);
}

TEST(rfc9110_5_5_htab_and_obs_text_allowed_in_value)
{
	CHECK_INT(REQ("GET / HTTP/1.1\r\nX: a\tb \xff\x80\r\n\r\n"), H1_OK);
	CHECK_MEM(hdrs[0].value.p, hdrs[0].value.len, "a\tb \xff\x80");
}

TEST(rfc9110_5_5_value_ows_trimmed)
{
	CHECK_INT(REQ("GET / HTTP/1.1\r\nX:\t \tv a l \t\r\nY: \t \r\nZ:w\r\n\r\n"), H1_OK);
	CHECK_SV(hdrs[0].value, "v a l");
	CHECK_INT(hdrs[1].value.len, 0);
	CHECK_SV(hdrs[2].value, "w");
}

TEST(h1_error_in_received_bytes_reported_before_head_complete)
{
	/* none of these has a final CRLFCRLF */
	REQ_ERR("GET / HTTP/1.1\r\nX: a\0", 400);
	REQ_ERR("GE\0", 400);
	REQ_ERR("GET  ", 400);
	REQ_ERR("GET / HTTP/1.1\n", 400);
	REQ_ERR("GET / HTTP/1.1\r\nHost : ", 400);
	REQ_ERR("GET / HTTP/1.1\r\nA: b\r\n c", 400);
	REQ_ERR("GET / HTTP/2.0\r\n", 505);
	REQ_ERR("GET / HTTP/1.1\r\nA: b\r\n\rx", 400);
	CHECK_INT(REQ("GET / HTTP/1.1\r\nX: a\r"), H1_INCOMPLETE);
	CHECK_INT(REQ("GET / HTTP/1.1\r"), H1_INCOMPLETE);
	CHECK_INT(REQ("GET / HTTP/1"), H1_INCOMPLETE);
}

/* ---- limits ---- */

/* "GET /aaa...a HTTP/1.1" with the line content exactly n bytes */
static size_t make_line(char *buf, size_t n, const char *tail)
{
	size_t p = 0;
	memcpy(buf, "GET /", 5);
	p = 5;
	while (p < n - 9)
		buf[p++] = 'a';
	memcpy(buf + p, " HTTP/1.1", 9);
	p += 9;
	size_t t = strlen(tail);
	memcpy(buf + p, tail, t);
	return p + t;
}

TEST(h1_request_line_limit_is_414)
{
	static char buf[300];
	struct h1_limits l = {.max_head = 1000, .max_line = 100, .max_headers = 10};
	size_t n = make_line(buf, 100, "\r\n\r\n");
	CHECK_INT(req_lim(buf, n, &l), H1_OK);
	n = make_line(buf, 101, "\r\n\r\n");
	CHECK_INT(req_lim(buf, n, &l), H1_ERROR);
	CHECK_INT(err.status, 414);
	/* reported as soon as the line is longer than the limit */
	CHECK_INT(req_lim(buf, 101, &l), H1_ERROR);
	CHECK_INT(err.status, 414);
	CHECK_INT(req_lim(buf, 100, &l), H1_INCOMPLETE);
	/* leading empty lines do not count against the line */
	memcpy(buf, "\r\n", 2);
	n = make_line(buf + 2, 100, "\r\n\r\n");
	CHECK_INT(req_lim(buf, n + 2, &l), H1_OK);
}

TEST(h1_request_line_over_both_limits_is_414)
{
	static char buf[300];
	struct h1_limits l = {.max_head = 120, .max_line = 100, .max_headers = 10};
	size_t n = make_line(buf, 200, "\r\n\r\n");
	CHECK_INT(req_lim(buf, n, &l), H1_ERROR);
	CHECK_INT(err.status, 414);
	l.max_line = 150; /* the line fits max_line but not max_head */
	CHECK_INT(req_lim(buf, n, &l), H1_ERROR);
	CHECK_INT(err.status, 431);
}

/* a head of exactly `total` bytes: request line, X-Pad fields, CRLF */
static size_t make_head(char *buf, size_t total, unsigned nfields)
{
	static const char start[] = "GET / HTTP/1.1\r\n";
	size_t p = sizeof(start) - 1;
	memcpy(buf, start, p);
	size_t room = total - p - 2;
	for (unsigned i = 0; i < nfields; i++) {
		size_t flen = room / (nfields - i);
		/* "X: " + pad + CRLF */
		memcpy(buf + p, "X: ", 3);
		memset(buf + p + 3, 'v', flen - 5);
		memcpy(buf + p + flen - 2, "\r\n", 2);
		p += flen;
		room -= flen;
	}
	memcpy(buf + p, "\r\n", 2);
	return p + 2;
}

TEST(h1_head_limit_is_431)
{
	static char buf[2000];
	struct h1_limits l = {.max_head = 1000, .max_line = 100, .max_headers = 10};
	size_t n = make_head(buf, 1000, 3);
	CHECK_INT(n, 1000);
	CHECK_INT(req_lim(buf, n, &l), H1_OK);
	CHECK_INT(req.head_len, 1000);
	n = make_head(buf, 1001, 3);
	CHECK_INT(req_lim(buf, n, &l), H1_ERROR);
	CHECK_INT(err.status, 431);
	/* never "incomplete" once max_head bytes are in */
	n = make_head(buf, 1500, 3);
	CHECK_INT(req_lim(buf, 1000, &l), H1_ERROR);
	CHECK_INT(err.status, 431);
	CHECK_INT(req_lim(buf, 999, &l), H1_INCOMPLETE);
	/* a flood of empty lines is bounded too */
	for (size_t i = 0; i < 1000; i += 2)
		memcpy(buf + i, "\r\n", 2);
	CHECK_INT(req_lim(buf, 1000, &l), H1_ERROR);
	CHECK_INT(err.status, 431);
}

TEST(h1_header_count_limit_is_431)
{
	static char buf[2000];
	struct h1_limits l = {.max_head = 2000, .max_line = 100, .max_headers = 10};
	size_t n = make_head(buf, 400, 10);
	CHECK_INT(req_lim(buf, n, &l), H1_OK);
	CHECK_INT(req.nheaders, 10);
	n = make_head(buf, 400, 11);
	CHECK_INT(req_lim(buf, n, &l), H1_ERROR);
	CHECK_INT(err.status, 431);
	/* the caller's array is the limit too if it is smaller */
	n = make_head(buf, 400, 5);
	CHECK_INT(h1_parse_request(buf, n, &l, &req, hdrs, 4, &err), H1_ERROR);
	CHECK_INT(err.status, 431);
	CHECK_INT(h1_parse_request(buf, n, &l, &req, hdrs, 5, &err), H1_OK);
}

TEST(h1_64k_head_parses_in_linear_time)
{
	static char buf[65536];
	struct h1_limits l = {.max_head = 65536, .max_line = 8192, .max_headers = 1000};
	size_t n = make_head(buf, sizeof(buf), 1000);
	CHECK_INT(n, sizeof(buf));
	CHECK_INT(req_lim(buf, n, &l), H1_OK);
	CHECK_INT(req.nheaders, 1000);
	/* the caller re-parses as bytes arrive: 1 KiB at a time, 64 calls,
	 * then many full parses; even under sanitizers this is well under a
	 * second when each call is O(len) */
	clock_t t0 = clock();
	int ok = 0;
	for (size_t k = 1024; k <= n; k += 1024)
		ok += h1_parse_request(buf, k, &l, &req, hdrs, HCAP, &err) == H1_OK;
	for (int i = 0; i < 200; i++)
		ok += h1_parse_request(buf, n, &l, &req, hdrs, HCAP, &err) == H1_OK;
	double s = (double)(clock() - t0) / CLOCKS_PER_SEC;
	CHECK_INT(ok, 201);
	CHECK(s < 5.0);
}

/* ---- responses (RFC 9112 §4) ---- */

TEST(rfc9112_4_status_line_parses)
{
	static const char m[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
	CHECK_INT(RESP(m), H1_OK);
	CHECK_INT(resp.version, 11);
	CHECK_INT(resp.status, 200);
	CHECK_SV(resp.reason, "OK");
	CHECK_INT(resp.nheaders, 1);
	CHECK_INT(resp.head_len, sizeof(m) - 1 - 5);
	CHECK_INT(RESP("HTTP/1.0 404 Not Found\r\n\r\n"), H1_OK);
	CHECK_INT(resp.version, 10);
	CHECK_INT(resp.status, 404);
	CHECK_SV(resp.reason, "Not Found");
}

TEST(rfc9112_4_reason_phrase_chars)
{
	CHECK_INT(RESP("HTTP/1.1 200 A\tB \xe9\xff!\r\n\r\n"), H1_OK);
	CHECK_MEM(resp.reason.p, resp.reason.len, "A\tB \xe9\xff!");
	CHECK_INT(RESP("HTTP/1.1 204 \r\n\r\n"), H1_OK);
	CHECK_INT(resp.reason.len, 0);
	CHECK_INT(RESP("HTTP/1.1 200\r\n\r\n"), H1_OK);
	CHECK_INT(resp.status, 200);
	CHECK_INT(resp.reason.len, 0);
	RESP_ERR("HTTP/1.1 200 O\0K\r\n\r\n");
	RESP_ERR("HTTP/1.1 200 O\x7fK\r\n\r\n");
	RESP_ERR("HTTP/1.1 200 OK\n\r\n");
}

TEST(rfc9112_4_status_code_three_digits)
{
	RESP_ERR("HTTP/1.1 20 OK\r\n\r\n");
	RESP_ERR("HTTP/1.1 2000 OK\r\n\r\n");
	RESP_ERR("HTTP/1.1 099 OK\r\n\r\n");
	RESP_ERR("HTTP/1.1 2x0 OK\r\n\r\n");
	RESP_ERR("HTTP/1.1  200 OK\r\n\r\n");
	RESP_ERR("HTTP/1.1 -20 OK\r\n\r\n");
	CHECK_INT(RESP("HTTP/1.1 999 Odd\r\n\r\n"), H1_OK);
	CHECK_INT(RESP("HTTP/1.1 100 Continue\r\n\r\n"), H1_OK);
}

TEST(rfc9112_4_response_errors_are_502)
{
	RESP_ERR("HTTP/2.0 200 OK\r\n\r\n");
	RESP_ERR("HTTP/1.2 200 OK\r\n\r\n");
	RESP_ERR("http/1.1 200 OK\r\n\r\n");
	RESP_ERR("HTTP/1.1\t200 OK\r\n\r\n");
	RESP_ERR("\r\nHTTP/1.1 200 OK\r\n\r\n");
	RESP_ERR("HTTP/1.1 200 OK\r\nX : y\r\n\r\n");
	RESP_ERR("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n");
	RESP_ERR("HTTP/1.1 200 OK\r\nX: y\0\r\n\r\n");
	RESP_ERR("HTTP/1.1 200 OK\r\nX: y\r\r\n\r\n");
	RESP_ERR("HTTP/1.1 200 OK\r\nX: y\n\n");
	RESP_ERR("ICY 200 OK\r\n\r\n");
}

TEST(h1_response_limits_are_502)
{
	static char buf[2000];
	struct h1_limits l = {.max_head = 1000, .max_line = 10, .max_headers = 3};
	static const char m[] = "HTTP/1.1 200 A reason phrase longer than max_line\r\n\r\n";
	/* max_line is for request lines only */
	CHECK_INT(resp_lim(m, sizeof(m) - 1, &l), H1_OK);
	memcpy(buf, "HTTP/1.1 200 OK\r\n", 17);
	memset(buf + 17, 'x', 1100);
	CHECK_INT(resp_lim(buf, 1100, &l), H1_ERROR);
	CHECK_INT(err.status, 502);
	static const char many[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
	CHECK_INT(resp_lim(many, sizeof(many) - 1, &l), H1_ERROR);
	CHECK_INT(err.status, 502);
}

/* ---- request framing (RFC 9112 §6) ---- */

TEST(rfc9112_6_3_no_framing_no_body)
{
	CHECK_INT(REQ_BODY("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
	CHECK_INT(body.kind, H1_BODY_NONE);
}

TEST(rfc9112_6_2_content_length)
{
	CHECK_INT(REQ_BODY("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n"), 0);
	CHECK_INT(body.kind, H1_BODY_LENGTH);
	CHECK_INT(body.length, 10);
	CHECK_INT(REQ_BODY("POST / HTTP/1.0\r\ncontent-length: 0\r\n\r\n"), 0);
	CHECK_INT(body.kind, H1_BODY_LENGTH);
	CHECK_INT(body.length, 0);
}

TEST(rfc9112_6_3_cl_and_te_rejected)
{
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		     400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
		     400);
}

TEST(rfc9112_6_1_chunked_final)
{
	CHECK_INT(REQ_BODY("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
	CHECK_INT(body.kind, H1_BODY_CHUNKED);
	CHECK_INT(REQ_BODY("POST / HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n"), 0);
	CHECK_INT(body.kind, H1_BODY_CHUNKED);
	CHECK_INT(REQ_BODY("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 0);
	CHECK_INT(body.kind, H1_BODY_CHUNKED);
	/* several fields are one list (RFC 9110 §5.3) */
	CHECK_INT(REQ_BODY("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n"
			   "Transfer-Encoding: chunked\r\n\r\n"),
		  0);
	CHECK_INT(body.kind, H1_BODY_CHUNKED);
}

TEST(rfc9112_6_1_te_chunked_identity_rejected)
{
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
		     "Transfer-Encoding: gzip\r\n\r\n",
		     400);
}

TEST(rfc9112_6_1_te_chunked_twice_rejected)
{
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
		     "Transfer-Encoding: chunked\r\n\r\n",
		     400);
}

TEST(rfc9112_6_3_te_without_chunked_last_rejected)
{
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
}

TEST(rfc9112_6_1_unknown_coding_is_501)
{
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", 501);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 501);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: br, chunked\r\n\r\n", 501);
}

TEST(rfc9112_6_1_te_syntax_rejected)
{
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: ch unked\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: gzip;q, chunked\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nTransfer-Encoding: ,\r\n\r\n", 400);
	CHECK_INT(REQ_BODY("POST / HTTP/1.1\r\nTransfer-Encoding: gzip;level=1, chunked\r\n\r\n"),
		  0);
	CHECK_INT(body.kind, H1_BODY_CHUNKED);
}

TEST(rfc9112_6_1_te_in_http10_rejected)
{
	REQ_BODY_ERR("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}

TEST(rfc9110_8_6_cl_duplicates_must_agree)
{
	CHECK_INT(REQ_BODY("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), 0);
	CHECK_INT(body.length, 5);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
	CHECK_INT(REQ_BODY("POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n"), 0);
	CHECK_INT(body.kind, H1_BODY_LENGTH);
	CHECK_INT(body.length, 1);
	CHECK_INT(REQ_BODY("POST / HTTP/1.1\r\nContent-Length: 1 , 1,\r\n\r\n"), 0);
	CHECK_INT(body.length, 1);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: 1,2\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1,2\r\n\r\n", 400);
}

TEST(rfc9110_8_6_cl_digits_only)
{
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: 1.0\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: \"1\"\r\n\r\n", 400);
	/* OWS around the value is not part of it */
	CHECK_INT(REQ_BODY("POST / HTTP/1.1\r\nContent-Length:  1\t\r\n\r\n"), 0);
	CHECK_INT(body.length, 1);
	CHECK_INT(REQ_BODY("POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n"), 0);
	CHECK_INT(body.length, 7);
}

TEST(rfc9110_8_6_cl_upper_bound)
{
	CHECK_INT(REQ_BODY("POST / HTTP/1.1\r\nContent-Length: 4611686018427387904\r\n\r\n"), 0);
	CHECK(body.length == (uint64_t)1 << 62);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: 4611686018427387905\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n", 400);
	REQ_BODY_ERR("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n", 400);
}

/* ---- response framing (RFC 9112 §6.3) ---- */

TEST(rfc9112_6_3_head_and_bodiless_statuses)
{
	CHECK_INT(RESP_BODY("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD"), 0);
	CHECK_INT(body.kind, H1_BODY_NONE);
	CHECK_INT(RESP_BODY("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD"), 0);
	CHECK_INT(body.kind, H1_BODY_NONE);
	CHECK_INT(RESP_BODY("HTTP/1.1 100 Continue\r\n\r\n", "POST"), 0);
	CHECK_INT(body.kind, H1_BODY_NONE);
	CHECK_INT(RESP_BODY("HTTP/1.1 101 Switching Protocols\r\n\r\n", "GET"), 0);
	CHECK_INT(body.kind, H1_BODY_NONE);
	CHECK_INT(RESP_BODY("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", "GET"), 0);
	CHECK_INT(body.kind, H1_BODY_NONE);
	CHECK_INT(RESP_BODY("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", "GET"), 0);
	CHECK_INT(body.kind, H1_BODY_NONE);
}

TEST(rfc9112_6_3_connect_2xx_has_no_body)
{
	CHECK_INT(RESP_BODY("HTTP/1.1 200 Connection established\r\n\r\n", "CONNECT"), 0);
	CHECK_INT(body.kind, H1_BODY_NONE);
	CHECK_INT(RESP_BODY("HTTP/1.1 407 Auth\r\nContent-Length: 3\r\n\r\n", "CONNECT"), 0);
	CHECK_INT(body.kind, H1_BODY_LENGTH);
	CHECK_INT(body.length, 3);
}

TEST(rfc9112_6_3_response_te_and_cl)
{
	CHECK_INT(RESP_BODY("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET"), 0);
	CHECK_INT(body.kind, H1_BODY_CHUNKED);
	CHECK_INT(RESP_BODY("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "GET"),
		  0);
	CHECK_INT(body.kind, H1_BODY_CLOSE);
	CHECK_INT(RESP_BODY("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET"), 0);
	CHECK_INT(body.kind, H1_BODY_CLOSE);
	CHECK_INT(RESP_BODY("HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n", "GET"), 0);
	CHECK_INT(body.kind, H1_BODY_CLOSE);
	CHECK_INT(RESP_BODY("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", "GET"), 0);
	CHECK_INT(body.kind, H1_BODY_LENGTH);
	CHECK_INT(body.length, 42);
	CHECK_INT(RESP_BODY("HTTP/1.0 200 OK\r\n\r\n", "GET"), 0);
	CHECK_INT(body.kind, H1_BODY_CLOSE);
}

TEST(rfc9112_6_3_response_cl_and_te_is_502)
{
	RESP_BODY_ERR("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		      "GET");
	/* still an error where the status means no body */
	RESP_BODY_ERR("HTTP/1.1 304 NM\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		      "GET");
	RESP_BODY_ERR("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		      "HEAD");
}

TEST(rfc9112_6_3_response_bad_framing_is_502)
{
	RESP_BODY_ERR("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "GET");
	RESP_BODY_ERR("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", "GET");
	RESP_BODY_ERR("HTTP/1.1 204 OK\r\nContent-Length: x\r\n\r\n", "GET");
	RESP_BODY_ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "GET");
	RESP_BODY_ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", "GET");
	RESP_BODY_ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n", "GET");
	RESP_BODY_ERR("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET");
	CHECK_INT(RESP_BODY("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", "GET"), 0);
	CHECK_INT(body.length, 5);
}

/* ---- helpers ---- */

TEST(h1_find_and_count_case_insensitive)
{
	CHECK_INT(REQ("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\n"), H1_OK);
	const struct h1_header *h = h1_find(req.headers, req.nheaders, "x-A");
	CHECK(h == &hdrs[1]);
	CHECK(h1_find(req.headers, req.nheaders, "X-B") == NULL);
	CHECK(h1_find(req.headers, req.nheaders, "X-") == NULL);
	CHECK_INT(h1_count(req.headers, req.nheaders, "X-A"), 2);
	CHECK_INT(h1_count(req.headers, req.nheaders, "host"), 1);
	CHECK_INT(h1_count(req.headers, req.nheaders, "none"), 0);
	CHECK(h1_find(NULL, 0, "Host") == NULL);
}

TEST(h1_has_token_over_all_fields)
{
	CHECK_INT(REQ("GET / HTTP/1.1\r\nConnection: keep-alive\r\nconnection: Upgrade, Close\r\n"
		      "X: closed\r\n\r\n"),
		  H1_OK);
	CHECK(h1_has_token(req.headers, req.nheaders, "Connection", "close"));
	CHECK(h1_has_token(req.headers, req.nheaders, "Connection", "keep-alive"));
	CHECK(h1_has_token(req.headers, req.nheaders, "connection", "upgrade"));
	CHECK(!h1_has_token(req.headers, req.nheaders, "Connection", "clos"));
	CHECK(!h1_has_token(req.headers, req.nheaders, "X", "close"));
}

TEST(rfc9110_9_2_2_idempotent_methods)
{
	CHECK(h1_method_idempotent(SV_LIT("GET")));
	CHECK(h1_method_idempotent(SV_LIT("HEAD")));
	CHECK(h1_method_idempotent(SV_LIT("PUT")));
	CHECK(h1_method_idempotent(SV_LIT("DELETE")));
	CHECK(h1_method_idempotent(SV_LIT("OPTIONS")));
	CHECK(h1_method_idempotent(SV_LIT("TRACE")));
	CHECK(!h1_method_idempotent(SV_LIT("POST")));
	CHECK(!h1_method_idempotent(SV_LIT("PATCH")));
	CHECK(!h1_method_idempotent(SV_LIT("CONNECT")));
	CHECK(!h1_method_idempotent(SV_LIT("get"))); /* methods are case-sensitive */
	CHECK(!h1_method_idempotent(SV_LIT("GETX")));
}

TEST(h1_status_reason_table)
{
	static const int codes[] = {100, 101, 200, 204, 206, 301, 302, 304, 400,
				    403, 404, 405, 407, 408, 411, 413, 414, 417,
				    421, 431, 500, 501, 502, 503, 504, 505, 508};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		CHECK(strcmp(h1_status_reason(codes[i]), "Unknown") != 0);
	CHECK_STR(h1_status_reason(200), "OK");
	CHECK_STR(h1_status_reason(502), "Bad Gateway");
	CHECK_STR(h1_status_reason(431), "Request Header Fields Too Large");
	CHECK_STR(h1_status_reason(299), "Unknown");
	CHECK_STR(h1_status_reason(0), "Unknown");
	CHECK_STR(h1_status_reason(-1), "Unknown");
}

int main(void)
{
	RUN(rfc9112_3_simple_get_parses_into_views);
	RUN(rfc9112_3_no_headers_and_http10);
	RUN(rfc9112_3_2_absolute_and_authority_targets);
	RUN(rfc9112_2_2_leading_empty_lines_skipped);
	RUN(rfc9112_2_incomplete_until_final_crlf);
	RUN(rfc9112_3_method_is_token);
	RUN(rfc9112_3_single_spaces_only);
	RUN(rfc9112_3_2_target_visible_ascii_only);
	RUN(rfc9112_2_3_bad_version_is_400);
	RUN(rfc9112_2_3_unsupported_version_is_505);
	RUN(rfc9112_2_2_bare_lf_rejected);
	RUN(rfc9112_2_2_bare_cr_rejected);
	RUN(rfc9112_5_1_space_before_colon_rejected);
	RUN(rfc9112_5_2_obs_fold_rejected);
	RUN(rfc9112_2_2_whitespace_before_first_field_rejected);
	RUN(rfc9110_5_1_field_name_is_token);
	RUN(rfc9110_5_5_nul_and_ctl_in_value_rejected);
	RUN(rfc9110_5_5_htab_and_obs_text_allowed_in_value);
	RUN(rfc9110_5_5_value_ows_trimmed);
	RUN(h1_error_in_received_bytes_reported_before_head_complete);
	RUN(h1_request_line_limit_is_414);
	RUN(h1_request_line_over_both_limits_is_414);
	RUN(h1_head_limit_is_431);
	RUN(h1_header_count_limit_is_431);
	RUN(h1_64k_head_parses_in_linear_time);
	RUN(rfc9112_4_status_line_parses);
	RUN(rfc9112_4_reason_phrase_chars);
	RUN(rfc9112_4_status_code_three_digits);
	RUN(rfc9112_4_response_errors_are_502);
	RUN(h1_response_limits_are_502);
	RUN(rfc9112_6_3_no_framing_no_body);
	RUN(rfc9112_6_2_content_length);
	RUN(rfc9112_6_3_cl_and_te_rejected);
	RUN(rfc9112_6_1_chunked_final);
	RUN(rfc9112_6_1_te_chunked_identity_rejected);
	RUN(rfc9112_6_1_te_chunked_twice_rejected);
	RUN(rfc9112_6_3_te_without_chunked_last_rejected);
	RUN(rfc9112_6_1_unknown_coding_is_501);
	RUN(rfc9112_6_1_te_syntax_rejected);
	RUN(rfc9112_6_1_te_in_http10_rejected);
	RUN(rfc9110_8_6_cl_duplicates_must_agree);
	RUN(rfc9110_8_6_cl_digits_only);
	RUN(rfc9110_8_6_cl_upper_bound);
	RUN(rfc9112_6_3_head_and_bodiless_statuses);
	RUN(rfc9112_6_3_connect_2xx_has_no_body);
	RUN(rfc9112_6_3_response_te_and_cl);
	RUN(rfc9112_6_3_response_cl_and_te_is_502);
	RUN(rfc9112_6_3_response_bad_framing_is_502);
	RUN(h1_find_and_count_case_insensitive);
	RUN(h1_has_token_over_all_fields);
	RUN(rfc9110_9_2_2_idempotent_methods);
	RUN(h1_status_reason_table);
	return unit_done();
}

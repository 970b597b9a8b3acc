/* fuzz_h1_response.c - libFuzzer target for h1_parse_response and
 * h1_response_body.
 *
 * Input: one byte choosing the limits and the request method, then the bytes
 * of the stream. Checked as for requests: views inside the head, head_len <=
 * len, re-parse of the head alone, monotone verdicts, errors always 502. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"
#include "http/h1.h"

#define CAP 128

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct verdict {
	int rc;
	struct h1_response resp;
	struct h1_error err;
	struct h1_header hdrs[CAP];
};

static void parse(const char *buf, size_t len, const struct h1_limits *lim, struct verdict *v)
{
	memset(&v->resp, 0, sizeof(v->resp));
	memset(&v->err, 0, sizeof(v->err));
	v->rc = h1_parse_response(buf, len, lim, &v->resp, v->hdrs, CAP, &v->err);
}

static bool inside(struct sv s, const char *buf, size_t len)
{
	return s.p >= buf && s.len <= len && (size_t)(s.p - buf) <= len - s.len;
}

static bool same(const struct verdict *a, const struct verdict *b)
{
	if (a->rc != b->rc)
		return false;
	if (a->rc == H1_ERROR)
		return a->err.status == b->err.status && a->err.offset == b->err.offset;
	if (a->rc == H1_OK)
		return a->resp.head_len == b->resp.head_len &&
		       a->resp.nheaders == b->resp.nheaders && a->resp.status == b->resp.status;
	return true;
}

static void check(const char *buf, size_t len, const struct h1_limits *lim, const struct verdict *v)
{
	SL_ASSERT(v->rc == H1_OK || v->rc == H1_INCOMPLETE || v->rc == H1_ERROR);
	if (v->rc == H1_INCOMPLETE) {
		SL_ASSERT(len < lim->max_head);
		return;
	}
	if (v->rc == H1_ERROR) {
		SL_ASSERT(v->err.status == 502 && v->err.reason != NULL);
		SL_ASSERT(v->err.offset <= len);
		return;
	}
	const struct h1_response *r = &v->resp;
	size_t hl = r->head_len;
	SL_ASSERT(hl <= len && hl <= lim->max_head && hl >= 16);
	SL_ASSERT(memcmp(buf + hl - 2, "\r\n", 2) == 0);
	SL_ASSERT(r->version == 10 || r->version == 11);
	SL_ASSERT(r->status >= 100 && r->status <= 999);
	SL_ASSERT(r->nheaders <= lim->max_headers && r->headers == v->hdrs);
	SL_ASSERT(inside(r->reason, buf, hl));
	for (unsigned i = 0; i < r->nheaders; i++) {
		struct sv n = r->headers[i].name, val = r->headers[i].value;
		SL_ASSERT(inside(n, buf, hl) && sv_is_token(n));
		SL_ASSERT(inside(val, buf, hl));
		SL_ASSERT(sv_trim_ows(val).len == val.len);
		for (size_t k = 0; k < val.len; k++) {
			unsigned char c = (unsigned char)val.p[k];
			SL_ASSERT(c == '\t' || (c >= 0x20 && c != 0x7f));
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct h1_limits lims[] = {
		{.max_head = 65536, .max_line = 8192, .max_headers = 100},
		{.max_head = 80, .max_line = 8, .max_headers = 3},
	};
	static const char *const methods[] = {"GET", "HEAD", "CONNECT", "POST"};
	static struct verdict whole, part;

	if (size < 1)
		return 0;
	const struct h1_limits *lim = &lims[data[0] & 1];
	const char *method = methods[(data[0] >> 1) & 3];
	const char *buf = (const char *)data + 1;
	size_t len = size - 1;

	parse(buf, len, lim, &whole);
	check(buf, len, lim, &whole);

	size_t cut = len ? (size_t)(data[0] >> 3) * len / 32 : 0;
	parse(buf, cut, lim, &part);
	check(buf, cut, lim, &part);
	SL_ASSERT(part.rc == H1_INCOMPLETE || same(&part, &whole));

	if (whole.rc != H1_OK)
		return 0;
	parse(buf, whole.resp.head_len, lim, &part);
	SL_ASSERT(same(&part, &whole));
	SL_ASSERT(part.resp.reason.p == whole.resp.reason.p);

	struct h1_body body;
	struct h1_error err;
	if (h1_response_body(&whole.resp, sv_from_cstr(method), &body, &err) == 0) {
		SL_ASSERT(body.kind == H1_BODY_NONE || body.kind == H1_BODY_LENGTH ||
			  body.kind == H1_BODY_CHUNKED || body.kind == H1_BODY_CLOSE);
		SL_ASSERT(body.kind != H1_BODY_LENGTH || body.length <= (uint64_t)1 << 62);
		if (strcmp(method, "HEAD") == 0 || whole.resp.status < 200 ||
		    whole.resp.status == 204 || whole.resp.status == 304)
			SL_ASSERT(body.kind == H1_BODY_NONE);
	} else {
		SL_ASSERT(err.status == 502 && err.reason != NULL);
	}
	return 0;
}

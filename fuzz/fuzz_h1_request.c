/* fuzz_h1_request.c - libFuzzer target for h1_parse_request and
 * h1_request_body.
 *
 * Input: one byte choosing the limits, then the bytes of the stream.
 * Checked: every view lies inside the head; head_len <= len; a complete head
 * re-parses alone to the same result; the verdict is monotone in the input
 * (a prefix gives "incomplete" or exactly the whole input's verdict); error
 * statuses are from the documented set. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"
#include "http/h1.h"

#define CAP 128

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct verdict {
	int rc;
	struct h1_request req;
	struct h1_error err;
	struct h1_header hdrs[CAP];
};

static void parse(const char *buf, size_t len, const struct h1_limits *lim, struct verdict *v)
{
	memset(&v->req, 0, sizeof(v->req));
	memset(&v->err, 0, sizeof(v->err));
	v->rc = h1_parse_request(buf, len, lim, &v->req, v->hdrs, CAP, &v->err);
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
		return a->req.head_len == b->req.head_len && a->req.nheaders == b->req.nheaders;
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
		int s = v->err.status;
		SL_ASSERT(s == 400 || s == 414 || s == 431 || s == 505);
		SL_ASSERT(v->err.reason != NULL);
		SL_ASSERT(v->err.offset <= len);
		return;
	}
	const struct h1_request *r = &v->req;
	size_t hl = r->head_len;
	SL_ASSERT(hl <= len && hl <= lim->max_head && hl >= 4);
	SL_ASSERT(memcmp(buf + hl - 4, "\r\n\r\n", 4) == 0);
	SL_ASSERT(r->version == 10 || r->version == 11);
	SL_ASSERT(r->nheaders <= lim->max_headers && r->headers == v->hdrs);
	SL_ASSERT(inside(r->method, buf, hl) && sv_is_token(r->method));
	SL_ASSERT(inside(r->target, buf, hl) && r->target.len > 0);
	SL_ASSERT(r->target.len <= lim->max_line);
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
		{.max_head = 32768, .max_line = 8192, .max_headers = 100},
		{.max_head = 64, .max_line = 24, .max_headers = 3},
		{.max_head = 300, .max_line = 400, .max_headers = CAP},
		{.max_head = 65536, .max_line = 16, .max_headers = 0},
	};
	static struct verdict whole, part;

	if (size < 1)
		return 0;
	const struct h1_limits *lim = &lims[data[0] % SL_ARRAY_LEN(lims)];
	const char *buf = (const char *)data + 1;
	size_t len = size - 1;

	parse(buf, len, lim, &whole);
	check(buf, len, lim, &whole);

	/* monotone: a prefix, cut where the selector byte says */
	size_t cut = len ? (size_t)(data[0] >> 2) * len / 64 : 0;
	parse(buf, cut, lim, &part);
	check(buf, cut, lim, &part);
	SL_ASSERT(part.rc == H1_INCOMPLETE || same(&part, &whole));

	if (whole.rc != H1_OK)
		return 0;

	/* the head alone gives the same result, with the same views */
	parse(buf, whole.req.head_len, lim, &part);
	SL_ASSERT(same(&part, &whole));
	SL_ASSERT(part.req.method.p == whole.req.method.p);
	SL_ASSERT(part.req.target.p == whole.req.target.p);

	struct h1_body body;
	struct h1_error err;
	if (h1_request_body(&whole.req, &body, &err) == 0) {
		SL_ASSERT(body.kind == H1_BODY_NONE || body.kind == H1_BODY_LENGTH ||
			  body.kind == H1_BODY_CHUNKED);
		SL_ASSERT(body.kind != H1_BODY_LENGTH || body.length <= (uint64_t)1 << 62);
		SL_ASSERT(body.kind != H1_BODY_CHUNKED || whole.req.version == 11);
		const struct h1_header *h = whole.req.headers;
		unsigned n = whole.req.nheaders;
		SL_ASSERT(h1_count(h, n, "Content-Length") == 0 ||
			  h1_count(h, n, "Transfer-Encoding") == 0);
		bool te = h1_find(h, n, "Transfer-Encoding") != NULL;
		SL_ASSERT((body.kind == H1_BODY_CHUNKED) == te);
	} else {
		SL_ASSERT(err.status == 400 || err.status == 501);
		SL_ASSERT(err.reason != NULL);
	}
	(void)h1_has_token(whole.req.headers, whole.req.nheaders, "Connection", "close");
	(void)h1_method_idempotent(whole.req.method);
	return 0;
}

/* h1.c - HTTP/1.1 message head parser and body framing rules (RFC 9112).
 *
 * The caller re-parses the whole buffer each time bytes arrive, so every call
 * is a single left-to-right pass that never looks at a byte twice, and every
 * decision depends only on the bytes before it. That makes the result
 * monotone in the input: once a prefix gives an error, any longer buffer gives
 * the same error at the same offset, and once a prefix gives a complete head,
 * a longer buffer gives the same head. Limits are checked in the same pass, at
 * the byte that first crosses them. */
#include "http/h1.h"

#include <string.h>

#include "http/status.h"

/* Byte classes: one load per byte in the hot loops. */
#define C_TCHAR	 1 /* token (RFC 9110 §5.6.2) */
#define C_FVAL	 2 /* field-value byte: HTAB, SP, VCHAR, obs-text */
#define C_TARGET 4 /* request-target byte: visible ASCII */

static const unsigned char cls[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, /* 0x00 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
	2, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6, /* 0x20 */
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6, /* 0x30 */
	6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x40 */
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7, /* 0x50 */
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x60 */
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0, /* 0x70 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x90 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xa0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xb0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xc0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xd0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xe0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xf0 */
};

/* Content-Length values above this are refused: no real body is that large,
 * and it keeps every sum of lengths and offsets far from overflow. */
#define CL_MAX ((uint64_t)1 << 62)

/* One parse: the input, how far we may look, and how to report. */
struct scan {
	const unsigned char *b;
	size_t len; /* bytes received */
	size_t win; /* min(len, max_head): a head must end inside it */
	size_t max_head;
	int st_bad;   /* 400 for requests, 502 for responses */
	int st_large; /* 431 for requests, 502 for responses */
	struct h1_error *err;
};

static int fail(struct h1_error *err, int status, const char *reason, size_t offset)
{
	err->status = status;
	err->reason = reason;
	err->offset = offset;
	return H1_ERROR;
}

/* The scan reached the end of the window without finishing the head: either
 * the bytes ran out (wait for more) or the head limit was hit. */
static int need_more(const struct scan *s)
{
	if (s->len >= s->max_head)
		return fail(s->err, s->st_large, "header section too large", s->max_head);
	return H1_INCOMPLETE;
}

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Name the problem with an unexpected byte in a line. */
static const char *bad_byte(unsigned char c, const char *otherwise)
{
	if (c == '\n')
		return "bare LF";
	if (c == '\r')
		return "bare CR";
	if (c == 0)
		return "NUL byte";
	return otherwise;
}

/* "HTTP/" DIGIT "." DIGIT at b[pos..pos+8), case-sensitive (RFC 9112 §2.3).
 * Returns the offset of the first wrong byte, or pos + 8 if all match, or
 * `end` if the bytes run out first. */
static size_t scan_version(const unsigned char *b, size_t pos, size_t end)
{
	static const char pat[] = "HTTP/#.#";

	for (size_t i = 0; i < 8; i++, pos++) {
		if (pos >= end)
			return end;
		bool ok = pat[i] == '#' ? is_digit(b[pos]) : b[pos] == (unsigned char)pat[i];
		if (!ok)
			return pos;
	}
	return pos;
}

/* Header fields from b[pos] to the empty line (RFC 9112 §5). */
static int parse_fields(const struct scan *s, size_t pos, unsigned max, struct h1_header *hdrs,
			unsigned *nout, size_t *head_len)
{
	const unsigned char *b = s->b;
	size_t win = s->win;
	unsigned n = 0;

	for (;;) {
		if (pos >= win)
			return need_more(s);
		if (b[pos] == '\r') {
			if (pos + 1 >= win)
				return need_more(s);
			if (b[pos + 1] != '\n')
				return fail(s->err, s->st_bad, "bare CR", pos);
			*nout = n;
			*head_len = pos + 2;
			return H1_OK;
		}

		size_t name = pos;
		while (pos < win && (cls[b[pos]] & C_TCHAR))
			pos++;
		if (pos >= win)
			return need_more(s);
		if (b[pos] != ':') {
			unsigned char c = b[pos];
			if (pos == name && is_ws(c))
				/* RFC 9112 §5.2: obs-fold; before the first field it
				 * is the whitespace §2.2 says to reject */
				return fail(s->err, s->st_bad, "obs-fold not allowed", pos);
			if (is_ws(c))
				return fail(s->err, s->st_bad, "whitespace before colon", pos);
			if (c == '\r' && pos > name)
				return fail(s->err, s->st_bad, "header line without colon", pos);
			return fail(s->err, s->st_bad, bad_byte(c, "bad byte in header name"), pos);
		}
		if (pos == name)
			return fail(s->err, s->st_bad, "empty header name", pos);
		if (n >= max)
			return fail(s->err, s->st_large, "too many headers", name);
		size_t name_len = pos - name;

		pos++;
		while (pos < win && is_ws(b[pos]))
			pos++;
		size_t val = pos;
		while (pos < win && (cls[b[pos]] & C_FVAL))
			pos++;
		if (pos >= win)
			return need_more(s);
		if (b[pos] != '\r') {
			const char *why = bad_byte(b[pos], "control byte in header value");
			return fail(s->err, s->st_bad, why, pos);
		}
		if (pos + 1 >= win)
			return need_more(s);
		if (b[pos + 1] != '\n')
			return fail(s->err, s->st_bad, "bare CR", pos);

		size_t vend = pos;
		while (vend > val && is_ws(b[vend - 1]))
			vend--;
		hdrs[n].name = sv_make((const char *)b + name, name_len);
		hdrs[n].value = sv_make((const char *)b + val, vend - val);
		n++;
		pos += 2;
	}
}

/* The request-line scan reached its bound: the line limit (414, at the
 * first byte past it) or the end of the window. */
static int line_run_off(const struct scan *s, bool capped, size_t lend)
{
	if (capped)
		return fail(s->err, 414, "request line too long", lend - 1);
	return need_more(s);
}

static void scan_init(struct scan *s, const char *buf, size_t len, const struct h1_limits *lim,
		      bool request, struct h1_error *err)
{
	s->b = (const unsigned char *)buf;
	s->len = len;
	s->max_head = lim->max_head;
	s->win = SL_MIN(len, lim->max_head);
	s->st_bad = request ? 400 : 502;
	s->st_large = request ? 431 : 502;
	s->err = err;
}

int h1_parse_request(const char *buf, size_t len, const struct h1_limits *lim,
		     struct h1_request *req, struct h1_header *hdrs, unsigned cap,
		     struct h1_error *err)
{
	SL_ASSERT(buf != NULL || len == 0);
	SL_ASSERT(lim != NULL && req != NULL && err != NULL);
	SL_ASSERT(hdrs != NULL || cap == 0);

	struct scan s;
	scan_init(&s, buf, len, lim, true, err);
	const unsigned char *b = s.b;
	size_t pos = 0;

	/* RFC 9112 §2.2: a server SHOULD ignore empty lines before the
	 * request-line (old clients send CRLF after a POST body). They count
	 * against max_head, so a flood of them is still bounded. */
	while (pos < s.win && b[pos] == '\r') {
		if (pos + 1 >= s.win)
			return need_more(&s);
		if (b[pos + 1] != '\n')
			return fail(err, 400, "bare CR", pos);
		pos += 2;
	}

	/* The request line's content (without CRLF) may be max_line bytes, so
	 * its CR is at line + max_line at the latest: scan at most one byte
	 * further. Running off that bound is 414; running off the window is
	 * "read more" or 431. */
	size_t line = pos;
	bool capped = lim->max_line < s.win - line;
	size_t lend = capped ? line + lim->max_line + 1 : s.win;

	while (pos < lend && (cls[b[pos]] & C_TCHAR))
		pos++;
	if (pos >= lend)
		return line_run_off(&s, capped, lend);
	if (b[pos] != ' ') {
		if (b[pos] == '\r')
			return fail(err, 400, "request line without target", pos);
		return fail(err, 400, bad_byte(b[pos], "bad method"), pos);
	}
	if (pos == line)
		return fail(err, 400, "whitespace before method", pos);
	struct sv method = sv_make(buf + line, pos - line);

	size_t target = ++pos;
	while (pos < lend && (cls[b[pos]] & C_TARGET))
		pos++;
	if (pos >= lend)
		return line_run_off(&s, capped, lend);
	if (b[pos] != ' ') {
		if (b[pos] == '\r')
			return fail(err, 400, "no HTTP version in request line", pos);
		return fail(err, 400, bad_byte(b[pos], "bad byte in request target"), pos);
	}
	if (pos == target)
		return fail(err, 400, "extra whitespace in request line", pos);
	struct sv tgt = sv_make(buf + target, pos - target);

	size_t ver = ++pos;
	pos = scan_version(b, ver, lend);
	if (pos >= lend)
		return line_run_off(&s, capped, lend);
	if (pos < ver + 8) {
		if (b[pos] == ' ')
			return fail(err, 400, "extra whitespace in request line", pos);
		return fail(err, 400, bad_byte(b[pos], "bad HTTP version"), pos);
	}
	if (b[pos] != '\r')
		return fail(err, 400, bad_byte(b[pos], "bad HTTP version"), pos);
	if (pos + 1 >= s.win)
		return need_more(&s);
	if (b[pos + 1] != '\n')
		return fail(err, 400, "bare CR", pos);
	int major = b[ver + 5] - '0', minor = b[ver + 7] - '0';
	if (major != 1 || minor > 1)
		return fail(err, 505, "HTTP version not supported", ver);

	unsigned n;
	size_t head_len;
	int rc = parse_fields(&s, pos + 2, SL_MIN(cap, lim->max_headers), hdrs, &n, &head_len);
	if (rc != H1_OK)
		return rc;

	req->method = method;
	req->target = tgt;
	req->version = major * 10 + minor;
	req->headers = hdrs;
	req->nheaders = n;
	req->head_len = head_len;
	return H1_OK;
}

int h1_parse_response(const char *buf, size_t len, const struct h1_limits *lim,
		      struct h1_response *resp, struct h1_header *hdrs, unsigned cap,
		      struct h1_error *err)
{
	SL_ASSERT(buf != NULL || len == 0);
	SL_ASSERT(lim != NULL && resp != NULL && err != NULL);
	SL_ASSERT(hdrs != NULL || cap == 0);

	struct scan s;
	scan_init(&s, buf, len, lim, false, err);
	const unsigned char *b = s.b;
	size_t win = s.win;

	/* RFC 9112 §4: HTTP-version SP 3DIGIT SP [ reason-phrase ]. No empty
	 * lines are skipped: before a response they mean the previous body
	 * was longer than its framing said. */
	size_t pos = scan_version(b, 0, win);
	if (pos >= win)
		return need_more(&s);
	if (pos < 8)
		return fail(err, 502, bad_byte(b[pos], "bad HTTP version in status line"), pos);
	if (b[pos] != ' ')
		return fail(err, 502, bad_byte(b[pos], "bad status line"), pos);
	int major = b[5] - '0', minor = b[7] - '0';
	if (major != 1 || minor > 1)
		return fail(err, 502, "unsupported HTTP version in response", 0);

	int status = 0;
	for (size_t i = 0; i < 3; i++) {
		if (++pos >= win)
			return need_more(&s);
		if (!is_digit(b[pos]) || (i == 0 && b[pos] == '0'))
			return fail(err, 502, bad_byte(b[pos], "bad status code"), pos);
		status = status * 10 + (b[pos] - '0');
	}
	if (++pos >= win)
		return need_more(&s);

	/* The SP before an empty reason is mandatory in the grammar, but
	 * "HTTP/1.1 200\r\n" is common and cannot be read two ways. */
	size_t reason = pos;
	if (b[pos] == ' ') {
		reason = ++pos;
		while (pos < win && (cls[b[pos]] & C_FVAL))
			pos++;
		if (pos >= win)
			return need_more(&s);
	}
	if (b[pos] != '\r')
		return fail(err, 502, bad_byte(b[pos], "bad byte in status line"), pos);
	if (pos + 1 >= win)
		return need_more(&s);
	if (b[pos + 1] != '\n')
		return fail(err, 502, "bare CR", pos);
	struct sv rsn = sv_make(buf + reason, pos - reason);

	unsigned n;
	size_t head_len;
	int rc = parse_fields(&s, pos + 2, SL_MIN(cap, lim->max_headers), hdrs, &n, &head_len);
	if (rc != H1_OK)
		return rc;

	resp->version = major * 10 + minor;
	resp->status = status;
	resp->reason = rsn;
	resp->headers = hdrs;
	resp->nheaders = n;
	resp->head_len = head_len;
	return H1_OK;
}

/* ---- framing (RFC 9112 §6) ---- */

/* The framing functions do not see the buffer, so they report offset 0. */
static int body_fail(struct h1_error *err, int status, const char *reason)
{
	fail(err, status, reason, 0);
	return -1;
}

/* What the Transfer-Encoding fields say, all fields combined in order. */
struct te_info {
	unsigned ncodings;
	unsigned nchunked;
	bool chunked_last;
	bool unknown; /* a coding we do not know (501 for requests) */
	bool syntax;  /* a coding or parameter that is not a token */
};

static bool te_known(struct sv c)
{
	static const char *const known[] = {
		"chunked", "gzip", "x-gzip", "deflate", "compress", "x-compress",
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(known); i++)
		if (sv_ieq_cstr(c, known[i]))
			return true;
	return false;
}

/* transfer-coding = token *( OWS ";" OWS token "=" token ). Quoted-string
 * parameters are refused rather than parsed: no coding we accept defines
 * any, and a quoted comma would make the list split ambiguous. */
static bool te_params_ok(struct sv p)
{
	while (p.len > 0) {
		/* p starts just after a ';' */
		const char *semi = memchr(p.p, ';', p.len);
		size_t n = semi ? (size_t)(semi - p.p) : p.len;
		struct sv param = sv_trim_ows(sv_make(p.p, n));
		const char *eq = memchr(param.p, '=', param.len);
		if (eq == NULL)
			return false;
		struct sv k = sv_trim_ows(sv_make(param.p, (size_t)(eq - param.p)));
		struct sv v = sv_trim_ows(sv_make(eq + 1, param.len - (size_t)(eq - param.p) - 1));
		if (!sv_is_token(k) || !sv_is_token(v))
			return false;
		p.p += semi ? n + 1 : n;
		p.len -= semi ? n + 1 : n;
	}
	return true;
}

static void te_scan(const struct h1_header *h, unsigned n, struct te_info *te)
{
	*te = (struct te_info){0};
	for (unsigned i = 0; i < n; i++) {
		if (!sv_ieq_cstr(h[i].name, "Transfer-Encoding"))
			continue;
		struct sv rest = h[i].value, e;
		while (sv_next_list_elem(&rest, &e)) {
			const char *semi = memchr(e.p, ';', e.len);
			struct sv name = e;
			if (semi) {
				size_t n1 = (size_t)(semi - e.p);
				name = sv_trim_ows(sv_make(e.p, n1));
				if (!te_params_ok(sv_make(semi + 1, e.len - n1 - 1)))
					te->syntax = true;
			}
			if (!sv_is_token(name)) {
				te->syntax = true;
				continue;
			}
			bool chunked = sv_ieq_cstr(name, "chunked");
			/* chunked takes no parameters; one there is a sign of a
			 * message crafted to be read differently downstream */
			if (chunked && semi)
				te->syntax = true;
			if (!te_known(name))
				te->unknown = true;
			te->ncodings++;
			te->nchunked += chunked;
			te->chunked_last = chunked;
		}
	}
}

/* Content-Length (RFC 9110 §8.6): every element of every field must be the
 * same decimal number. Returns 0 (absent: *present false), or -1. */
static int cl_scan(const struct h1_header *h, unsigned n, bool *present, uint64_t *out)
{
	*present = false;
	for (unsigned i = 0; i < n; i++) {
		if (!sv_ieq_cstr(h[i].name, "Content-Length"))
			continue;
		struct sv rest = h[i].value, e;
		bool any = false;
		while (sv_next_list_elem(&rest, &e)) {
			uint64_t v;
			if (sv_to_u64(e, CL_MAX, &v) != 0)
				return -1;
			if (*present && v != *out)
				return -1;
			*present = true;
			*out = v;
			any = true;
		}
		if (!any)
			return -1;
	}
	return 0;
}

int h1_request_body(const struct h1_request *req, struct h1_body *out, struct h1_error *err)
{
	SL_ASSERT(req != NULL && out != NULL && err != NULL);
	const struct h1_header *h = req->headers;
	unsigned n = req->nheaders;
	bool has_te = h1_find(h, n, "Transfer-Encoding") != NULL;
	bool has_cl;
	uint64_t cl = 0;

	*out = (struct h1_body){.kind = H1_BODY_NONE};
	/* RFC 9112 §6.3 item 3: a server MAY reject CL with TE; a proxy that
	 * forwards either reading is the classic smuggling hole, so it must. */
	if (has_te && h1_find(h, n, "Content-Length") != NULL)
		return body_fail(err, 400, "both Transfer-Encoding and Content-Length");
	if (has_te) {
		struct te_info te;
		/* RFC 9112 §6.1: HTTP/1.0 has no transfer codings; the
		 * framing of such a message is faulty */
		if (req->version == 10)
			return body_fail(err, 400, "Transfer-Encoding in HTTP/1.0 request");
		te_scan(h, n, &te);
		if (te.syntax)
			return body_fail(err, 400, "bad Transfer-Encoding");
		if (te.ncodings == 0)
			return body_fail(err, 400, "empty Transfer-Encoding");
		if (te.nchunked > 1)
			return body_fail(err, 400, "chunked applied more than once");
		if (te.nchunked == 1 && !te.chunked_last)
			return body_fail(err, 400, "chunked is not the final coding");
		if (te.unknown)
			return body_fail(err, 501, "unknown transfer coding");
		/* §6.3 item 4: without chunked last the length is unknowable */
		if (!te.chunked_last)
			return body_fail(err, 400, "chunked is not the final coding");
		out->kind = H1_BODY_CHUNKED;
		return 0;
	}
	if (cl_scan(h, n, &has_cl, &cl) != 0)
		return body_fail(err, 400, "bad or conflicting Content-Length");
	if (has_cl) {
		out->kind = H1_BODY_LENGTH;
		out->length = cl;
	}
	return 0;
}

int h1_response_body(const struct h1_response *resp, struct sv req_method, struct h1_body *out,
		     struct h1_error *err)
{
	SL_ASSERT(resp != NULL && out != NULL && err != NULL);
	const struct h1_header *h = resp->headers;
	unsigned n = resp->nheaders;
	bool has_te = h1_find(h, n, "Transfer-Encoding") != NULL;
	bool has_cl;
	uint64_t cl = 0;
	struct te_info te = {0};

	*out = (struct h1_body){.kind = H1_BODY_CLOSE};
	/* Framing headers are checked even where the status says there is no
	 * body: a malformed one means the origin's framing cannot be trusted
	 * for what follows on the connection either. */
	if (has_te && h1_find(h, n, "Content-Length") != NULL)
		return body_fail(err, 502, "both Transfer-Encoding and Content-Length");
	if (cl_scan(h, n, &has_cl, &cl) != 0)
		return body_fail(err, 502, "bad or conflicting Content-Length");
	if (has_te) {
		/* RFC 9112 §6.1: TE in HTTP/1.0 means faulty framing */
		if (resp->version == 10)
			return body_fail(err, 502, "Transfer-Encoding in HTTP/1.0 response");
		te_scan(h, n, &te);
		if (te.syntax)
			return body_fail(err, 502, "bad Transfer-Encoding");
		if (te.ncodings == 0)
			return body_fail(err, 502, "empty Transfer-Encoding");
		if (te.nchunked > 1)
			return body_fail(err, 502, "chunked applied more than once");
	}

	/* RFC 9112 §6.3 items 1 and 2 */
	if (sv_eq(req_method, SV_LIT("HEAD")) || resp->status < 200 || resp->status == 204 ||
	    resp->status == 304 || (sv_eq(req_method, SV_LIT("CONNECT")) && resp->status < 300)) {
		out->kind = H1_BODY_NONE;
		return 0;
	}
	if (has_te) {
		out->kind = te.chunked_last ? H1_BODY_CHUNKED : H1_BODY_CLOSE;
		return 0;
	}
	if (has_cl) {
		out->kind = H1_BODY_LENGTH;
		out->length = cl;
	}
	return 0;
}

const struct h1_header *h1_find(const struct h1_header *hdrs, unsigned n, const char *name)
{
	struct sv nm = sv_from_cstr(name);
	for (unsigned i = 0; i < n; i++)
		if (sv_ieq(hdrs[i].name, nm))
			return &hdrs[i];
	return NULL;
}

unsigned h1_count(const struct h1_header *hdrs, unsigned n, const char *name)
{
	struct sv nm = sv_from_cstr(name);
	unsigned c = 0;
	for (unsigned i = 0; i < n; i++)
		c += sv_ieq(hdrs[i].name, nm);
	return c;
}

bool h1_has_token(const struct h1_header *hdrs, unsigned n, const char *name, const char *tok)
{
	struct sv nm = sv_from_cstr(name);
	for (unsigned i = 0; i < n; i++)
		if (sv_ieq(hdrs[i].name, nm) && sv_list_has_token(hdrs[i].value, tok))
			return true;
	return false;
}

bool h1_method_idempotent(struct sv method)
{
	/* RFC 9110 §9.2.2; method names are case-sensitive (§9.1) */
	static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
	for (size_t i = 0; i < SL_ARRAY_LEN(idem); i++)
		if (sv_eq(method, sv_from_cstr(idem[i])))
			return true;
	return false;
}

const char *h1_status_reason(int status)
{
	switch (status) {
#define X(code, text) \
	case code:    \
		return text;
		HTTP_STATUSES(X)
#undef X
	default:
		return "Unknown";
	}
}

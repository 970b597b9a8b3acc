/* h1.h - pure HTTP/1.1 message head parser (RFC 9112) and framing rules.
 *
 * Pure: bytes in, views and a status out; no I/O, no allocation, no global
 * state. Every view returned points into the caller's buffer and is valid
 * while that buffer is unchanged.
 *
 * Strict on purpose (RFC 9112 §11, request smuggling): a head that could be
 * read two ways is rejected, never guessed at. In particular:
 *   - lines end in CRLF; a bare CR or bare LF anywhere in the head is an error;
 *   - obs-fold (a header line starting with SP/HTAB) is an error;
 *   - whitespace between a field name and ':' is an error;
 *   - field names are tokens; field values contain no CTL except HTAB
 *     (so no NUL, no CR, no LF, no DEL); bytes >= 0x80 are allowed in values;
 *   - the request line is exactly METHOD SP TARGET SP HTTP/1.x with single
 *     spaces, METHOD a token, TARGET visible ASCII (0x21-0x7e);
 *   - versions other than HTTP/1.0 and HTTP/1.1 are rejected (505);
 *   - leading empty lines before a request line (RFC 9112 §2.2) are skipped.
 */
#ifndef SLUICE_H1_H
#define SLUICE_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sv.h"

/* Return codes. */
#define H1_OK	      0
#define H1_INCOMPLETE (-1)
#define H1_ERROR      (-2)

struct h1_header {
	struct sv name;	 /* token, as received (case preserved) */
	struct sv value; /* OWS-trimmed; may be empty */
};

/* Why a message was rejected. status is the HTTP status a proxy answers with
 * (400, 414, 431, 501, 505 for requests; 502 for responses), reason a short
 * static English phrase ("bare CR in header", "obs-fold not allowed", ...),
 * offset the byte offset in the buffer where the problem was found. */
struct h1_error {
	int status;
	const char *reason;
	size_t offset;
};

struct h1_limits {
	size_t max_head;      /* whole head incl. final CRLFCRLF; over it: 431 (request) / 502 */
	size_t max_line;      /* request line; over it: 414 (request only) */
	unsigned max_headers; /* over it: 431 / 502 */
};

struct h1_request {
	struct sv method;
	struct sv target;
	int version;		   /* 10 or 11 */
	struct h1_header *headers; /* caller's array, filled in order */
	unsigned nheaders;
	size_t head_len; /* bytes consumed, incl. leading empty lines and final CRLF */
};

struct h1_response {
	int version;	  /* 10 or 11 */
	int status;	  /* 100..999 as three digits */
	struct sv reason; /* may be empty */
	struct h1_header *headers;
	unsigned nheaders;
	size_t head_len;
};

/* Parse a request head from buf[0..len).
 * hdrs/cap: storage for headers (cap >= lim->max_headers is expected).
 * Returns H1_OK (req filled, req->head_len set), H1_INCOMPLETE (no complete
 * head yet and no limit exceeded: read more), or H1_ERROR (*err filled).
 * H1_INCOMPLETE is never returned once len >= lim->max_head: that is 431
 * (or 414 if the request line alone exceeds lim->max_line). An error in the
 * bytes already received is reported even if the head is incomplete. */
int h1_parse_request(const char *buf, size_t len, const struct h1_limits *lim,
		     struct h1_request *req, struct h1_header *hdrs, unsigned cap,
		     struct h1_error *err) SL_WUR;

/* Parse a response head; same contract, errors carry status 502. */
int h1_parse_response(const char *buf, size_t len, const struct h1_limits *lim,
		      struct h1_response *resp, struct h1_header *hdrs, unsigned cap,
		      struct h1_error *err) SL_WUR;

/* How a message body is delimited (RFC 9112 §6). */
enum h1_body_kind {
	H1_BODY_NONE,	 /* no body */
	H1_BODY_LENGTH,	 /* Content-Length bytes */
	H1_BODY_CHUNKED, /* chunked transfer coding, final */
	H1_BODY_CLOSE,	 /* until the connection closes (responses only) */
};

struct h1_body {
	enum h1_body_kind kind;
	uint64_t length; /* for H1_BODY_LENGTH */
};

/* Request framing (RFC 9112 §6.1-6.3):
 *   - both Transfer-Encoding and Content-Length: 400;
 *   - Transfer-Encoding: each coding must be a token; "chunked" must be last
 *     and appear once (else 400); a coding not in {chunked, gzip, x-gzip,
 *     deflate, compress, x-compress} is 501; several TE fields are combined;
 *   - HTTP/1.0 request with Transfer-Encoding: 400;
 *   - Content-Length: digits only, all values (comma lists or repeated fields)
 *     identical, else 400; values above 2^62 are 400;
 *   - neither: no body.
 * Returns 0, or -1 with *err filled (err->offset is 0: the framing functions
 * do not see the buffer). */
int h1_request_body(const struct h1_request *req, struct h1_body *out, struct h1_error *err) SL_WUR;

/* Response framing (RFC 9112 §6.3), given the request method:
 *   - HEAD requests, 1xx, 204 and 304: no body whatever the headers say
 *     (but malformed framing headers are still an error);
 *   - 2xx to CONNECT: no body (the connection becomes a tunnel);
 *   - Transfer-Encoding with chunked last: chunked; TE without chunked last:
 *     close-delimited; TE and CL together: 502 (we never forward ambiguity);
 *   - Content-Length rules as for requests, errors 502;
 *   - a Transfer-Encoding that is malformed (non-token coding, chunked twice,
 *     empty) or sent in an HTTP/1.0 response (RFC 9112 §6.1): 502;
 *   - otherwise close-delimited.
 * Returns 0, or -1 with *err filled (status 502). */
int h1_response_body(const struct h1_response *resp, struct sv req_method, struct h1_body *out,
		     struct h1_error *err) SL_WUR;

/* Find the first header with this name (case-insensitive); NULL if none. */
const struct h1_header *h1_find(const struct h1_header *hdrs, unsigned n, const char *name);

/* Count headers with this name. */
unsigned h1_count(const struct h1_header *hdrs, unsigned n, const char *name);

/* True if any field named `name` has `tok` in its comma list
 * (e.g. Connection: close). */
bool h1_has_token(const struct h1_header *hdrs, unsigned n, const char *name, const char *tok);

/* True if the method is one of RFC 9110's idempotent methods. */
bool h1_method_idempotent(struct sv method);

/* Reason phrase for a status code this proxy generates ("Bad Gateway"...);
 * "Unknown" for others. */
const char *h1_status_reason(int status);

#endif

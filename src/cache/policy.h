/* policy.h - RFC 9111 rules for a shared cache, as pure functions.
 *
 * Pure: header views and "now" in, decisions out; no I/O, no allocation, no
 * clock of its own. The cache and the proxy ask; this module answers. Every
 * time is in whole seconds on the cache's clock (seconds since the epoch).
 *
 * Section numbers are RFC 9111's unless another RFC is named. */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/sv.h"
#include "http/h1.h"

/* delta-seconds past what we represent is taken as 2^31 (§1.2.2). */
#define CC_DELTA_MAX 2147483648LL
/* max-stale without a value: any staleness is acceptable. */
#define CC_ANY INT64_MAX
/* Heuristic freshness (§4.2.2): this fraction of the time since
 * Last-Modified, and never more than a day. */
#define HEURISTIC_PERCENT 10
#define HEURISTIC_MAX_S	  86400

#define CC_NO_STORE	    (1u << 0)
#define CC_NO_CACHE	    (1u << 1)
#define CC_PRIVATE	    (1u << 2)
#define CC_PUBLIC	    (1u << 3)
#define CC_MUST_REVALIDATE  (1u << 4)
#define CC_PROXY_REVALIDATE (1u << 5)
#define CC_MUST_UNDERSTAND  (1u << 6)
#define CC_NO_TRANSFORM	    (1u << 7)
#define CC_ONLY_IF_CACHED   (1u << 8)
#define CC_IMMUTABLE	    (1u << 9)

/* Cache-Control, request or response (§5.2). Times in seconds, -1 when the
 * directive is absent. */
struct cc {
	unsigned flags;
	int64_t max_age, s_maxage;
	int64_t max_stale; /* request; CC_ANY when given without a value */
	int64_t min_fresh; /* request */
	int64_t stale_while_revalidate, stale_if_error; /* RFC 5861 */
	/* A freshness directive (max-age, s-maxage) had a malformed value or
	 * was given twice with different values: a response is then stale
	 * (§4.2.1 encourages it); a request's max-age is taken as 0. */
	bool bad_freshness;
	bool present; /* at least one Cache-Control field line */
};

/* Parse every Cache-Control field line of a message. Directive names are
 * case-insensitive; both token and quoted-string arguments are accepted
 * (§5.2); unknown directives are ignored (§5.2.3). The qualified forms
 * no-cache="f" and private="f" are treated as unqualified, which §5.2.2.4
 * and §5.2.2.7 allow. A value-less max-stale means any staleness; any other
 * malformed argument makes the directive count as absent, except for the
 * freshness directives (see bad_freshness). */
void cc_parse(const struct h1_header *h, unsigned n, struct cc *out);

/* Why a response may not be stored; POLICY_STORE_OK when it may (§3). */
#define POLICY_STORE_REASONS(X)                                                  \
	X(OK, "storable")                                                        \
	X(METHOD, "method not cacheable")                                        \
	X(STATUS, "status not final or not understood")                          \
	X(PARTIAL, "partial content")                                            \
	X(REQ_NO_STORE, "request no-store")                                      \
	X(NO_STORE, "response no-store")                                         \
	X(PRIVATE, "response private")                                           \
	X(AUTHORIZATION, "request with Authorization, response not shareable")   \
	X(NO_FRESHNESS, "no explicit freshness and not heuristically cacheable") \
	X(VARY_STAR, "Vary: *")                                                  \
	X(SET_COOKIE, "response sets a cookie")

enum policy_store {
#define X(n, s) POLICY_STORE_##n,
	POLICY_STORE_REASONS(X)
#undef X
};
const char *policy_store_str(enum policy_store r);

/* Status codes "heuristically cacheable" by default (RFC 9110 §15.1). */
bool policy_status_heuristic(int status);
/* Status codes whose caching rules this cache implements (§5.2.2.3,
 * must-understand): the final codes RFC 9110 defines. */
bool policy_status_understood(int status);

/* May this response to this request be stored by a shared cache (§3)?
 * method: the request's; req/resp: header lists. Only GET responses are
 * stored (HEAD is answered from a stored GET); 206 is not stored (this cache
 * keeps whole objects only), nor a 304 (it validates, it is not a response
 * to keep). Stricter than the RFC on one point: a response with Set-Cookie
 * is not stored, so one user's cookie is never replayed to others. */
enum policy_store policy_storable(struct sv method, const struct h1_header *req, unsigned nreq,
				  int status, const struct h1_header *resp, unsigned nresp);

/* What the cache keeps about a stored response to answer the questions
 * below; filled by policy_meta() when the response arrives. */
struct policy_meta {
	int64_t request_time;  /* when the request was sent (§4.2.3) */
	int64_t response_time; /* when the response was received */
	int64_t date;	       /* Date, or response_time if absent or invalid */
	int64_t age_value;     /* Age, 0 if absent or invalid */
	int64_t last_modified; /* Last-Modified (0 for one before 1970), -1 if absent or invalid */
	int64_t lifetime;      /* freshness lifetime (§4.2.1) */
	bool heuristic;	       /* lifetime is heuristic (§4.2.2) */
	struct cc cc;	       /* the response's Cache-Control */
};

/* Compute the metadata of a response received at response_time to a request
 * sent at request_time. now is for parsing two-digit years. */
void policy_meta(int status, const struct h1_header *resp, unsigned nresp, int64_t request_time,
		 int64_t response_time, struct policy_meta *m);

/* Freshness lifetime (§4.2.1): s-maxage, then max-age, then Expires minus
 * Date (an invalid Expires, or one given twice differently, is in the past:
 * 0), then the heuristic where no explicit time was given and the status is
 * heuristically cacheable or the response is public: HEURISTIC_PERCENT of
 * Date minus Last-Modified, at most HEURISTIC_MAX_S; else 0. A bad
 * freshness directive gives 0. */
int64_t policy_lifetime(int status, const struct cc *cc, const struct h1_header *resp,
			unsigned nresp, int64_t date, int64_t now, bool *heuristic);

/* current_age (§4.2.3) at now. Never negative. */
int64_t policy_current_age(const struct policy_meta *m, int64_t now);

/* The answer to "may this stored response be used for this request?". */
#define POLICY_REUSE(X)                                            \
	X(FRESH, "fresh")                                          \
	X(STALE_OK, "stale, acceptable to the client (max-stale)") \
	X(STALE_REVALIDATE, "stale within stale-while-revalidate") \
	X(REVALIDATE, "must be validated with the origin")         \
	X(REQ_NO_CACHE, "request no-cache: must be validated")     \
	X(NO_CACHE, "response no-cache: must be validated")        \
	X(TOO_OLD, "older than the request's max-age, or not fresh enough for min-fresh")

enum policy_reuse {
#define X(n, s) POLICY_REUSE_##n,
	POLICY_REUSE(X)
#undef X
};
const char *policy_reuse_str(enum policy_reuse r);

/* Decide reuse of stored response m for a request with Cache-Control rq
 * (and Pragma: no-cache pragma_no_cache, honoured only when the request
 * has no Cache-Control, §5.4) at now (§4, §4.2.4, §5.2.1, RFC 5861 §3).
 * Stale responses are never served when must-revalidate, proxy-revalidate
 * or s-maxage forbid it (§5.2.2.2, §5.2.2.8, §5.2.2.10). */
enum policy_reuse policy_reuse(const struct policy_meta *m, const struct cc *rq,
			       bool pragma_no_cache, int64_t now);

/* May a stale stored response be served because the origin failed (an
 * error status 500, 502, 503, 504 or no answer)? Only with a stale-if-error
 * covering the staleness (RFC 5861 §4): the request's when it sent one,
 * else the response's; and
 * never where must-revalidate, proxy-revalidate or s-maxage forbid stale
 * answers (§4.2.4). */
bool policy_stale_if_error(const struct policy_meta *m, const struct cc *rq, int64_t now);

/* Entity tags (RFC 9110 §8.8.3). */
struct etag {
	bool weak;
	struct sv opaque; /* including the quotes */
};
/* Parse one entity-tag (W/"x" or "x"); the whole view. 0 or -1. */
int etag_parse(struct sv v, struct etag *out) SL_WUR;
/* Strong comparison: both strong and the opaque tags equal (§8.8.3.2). */
bool etag_strong_eq(const struct etag *a, const struct etag *b);
/* Weak comparison: opaque tags equal, weakness ignored. */
bool etag_weak_eq(const struct etag *a, const struct etag *b);

/* Evaluate a client's If-None-Match / If-Modified-Since against a stored
 * response (RFC 9110 §13.2.2, §4.3.2 of RFC 9111): true if the answer is 304
 * Not Modified. If-None-Match ("*" or a list, weak comparison) takes
 * precedence; If-Modified-Since is used only without it, only for GET and
 * HEAD, and compares against Last-Modified (or, lacking it, Date). An
 * invalid date or list makes that header count as absent. */
bool policy_not_modified(struct sv method, const struct h1_header *req, unsigned nreq,
			 const struct h1_header *stored, unsigned nstored, int64_t now);

/* Whether the request carries a conditional this cache does not evaluate
 * (If-Match, If-Unmodified-Since): such requests go to the origin. If-Range
 * is evaluated with Range (policy_if_range). */
bool policy_has_other_conditional(const struct h1_header *req, unsigned nreq);

/* If-Range (RFC 9110 §13.1.5): true if the request has none, or its
 * validator matches the stored response: an entity-tag by strong
 * comparison with a strong ETag, a date by exact equality with
 * Last-Modified. False sends the whole representation instead of the
 * range. A malformed validator does not match. */
bool policy_if_range(const struct h1_header *req, unsigned nreq, const struct h1_header *stored,
		     unsigned nstored, int64_t now);

/* A 200 to a HEAD (RFC 9111 §4.3.5): true if it vouches for a stored GET
 * response (its status, header lines, body_len bytes of body), which it
 * then refreshes like a 304: the stored one is a 200, each validator the
 * HEAD's answer carries (ETag, Last-Modified) equals the stored one (an
 * entity-tag and its weakness alike, a date to the second), and its
 * Content-Length, if any, is the stored body's length. False: the stored
 * response is no longer what the origin has. */
bool policy_head_freshens(int stored_status, const struct h1_header *stored, unsigned nstored,
			  uint64_t body_len, const struct h1_header *head, unsigned nhead,
			  int64_t now);

/* A 304 to a conditional request made from a stored response (§4.3.4):
 * true if it is for that response and may update it. Its strong ETag
 * must equal the stored strong one, a weak ETag the stored one weakly
 * (§8.8.3.2 of RFC 9110), a Last-Modified (with no ETag) the stored one.
 * One with no validator at all is taken for the response it was asked
 * about: §4.3.4 names only a stored response without validators for it,
 * but many origins send their 304s bare, and the request named this one. */
bool policy_304_matches(const struct h1_header *stored, unsigned nstored,
			const struct h1_header *resp, unsigned nresp, int64_t now);

/* Fields never stored or taken over from a 304: hop-by-hop fields (RFC
 * 9110 §7.6.1: Connection and what it lists, Keep-Alive, Proxy-Connection,
 * TE, Transfer-Encoding, Upgrade, Trailer), and Proxy-Authenticate and
 * Proxy-Authentication-Info (§3.1). msg: the message the field came
 * from, whose Connection field names more hop-by-hop fields. */
bool policy_field_hop(struct sv name, const struct h1_header *msg, unsigned nmsg);

/* Merge a 304 response into stored headers (§3.2, §4.3.4): each field of
 * upd replaces all stored lines of that name, except hop-by-hop fields and
 * the fields the stored body's framing and coding depend on
 * (Content-Length, Content-Encoding, Content-Range), which stay as stored.
 * The result is written into out (views into the two inputs, at most cap
 * lines); returns the count, or -1 if cap is too small. Stored order is
 * kept: a replaced field's new lines take the place of its first old one,
 * fields new to the response go at the end. */
int policy_merge_304(const struct h1_header *stored, unsigned nstored, const struct h1_header *upd,
		     unsigned nupd, struct h1_header *out, unsigned cap) SL_WUR;

/* A request method that is not safe (RFC 9110 §9.2.1): a non-error answer
 * to it invalidates stored responses (§4.4). */
bool policy_method_unsafe(struct sv method);
/* Does a response with this status to an unsafe method invalidate (§4.4:
 * "non-error": 2xx and 3xx)? */
bool policy_status_invalidates(int status);

/* The Location or Content-Location value of a response to an unsafe request
 * to origin (host, port) names another URI to invalidate when it is of the
 * same origin (§4.4). If so, returns 0 and its origin-form path and query in
 * *path (a view into value, or the static "/"); -1 for another origin, a
 * scheme other than http, a relative reference that is not an absolute path,
 * a query without a path ("http://h?q"), or a malformed value. A fragment is not part of the URI stored, so it is
 * cut off. */
int policy_invalidation_path(struct sv value, struct sv host, uint16_t port,
			     struct sv *path) SL_WUR;

/* Vary (§4.1). The secondary key of a request for a stored response with
 * these Vary field lines: for each listed field name, in order, the name
 * (lower-cased), ':', the request's field value normalised, and '\n'. The
 * value is every line of that field split at commas, each element
 * OWS-trimmed, empty ones dropped, joined by ","; so "gzip, br" and
 * "gzip,br" select the same response. A field the request lacks gives
 * "\x01" (absent differs from empty). Two requests select the same stored
 * response exactly when their keys are equal. Returns the key's length, -1
 * for Vary: * or an element that is not a field name (never matches), or
 * -2 if out[cap] is too small. */
long policy_vary_key(const struct h1_header *resp, unsigned nresp, const struct h1_header *req,
		     unsigned nreq, char *out, size_t cap) SL_WUR;

#endif

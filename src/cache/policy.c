#include "cache/policy.h"

#include <string.h>

#include "http/date.h"
#include "http/uri.h"

/* ---- Cache-Control ---- */

/* The next directive of a Cache-Control value: name and argument (without
 * quotes; a quoted-string's escapes are left in). Commas inside a quoted
 * string do not end a directive. Returns false at the end; *bad is set for
 * an element that is not `token [ "=" ( token / quoted-string ) ]`. */
static bool cc_next(struct sv *rest, struct sv *name, struct sv *arg, bool *has_arg, bool *bad)
{
	const char *p = rest->p, *end = rest->p + rest->len;

	for (;;) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		if (p >= end) {
			*rest = sv_make(end, 0);
			return false;
		}
		const char *n0 = p;
		while (p < end && sv_is_tchar((unsigned char)*p))
			p++;
		*name = sv_make(n0, (size_t)(p - n0));
		*arg = sv_make(p, 0);
		*has_arg = false;
		*bad = name->len == 0;
		if (p < end && *p == '=') {
			p++;
			*has_arg = true;
			if (p < end && *p == '"') {
				const char *a0 = ++p;
				while (p < end && *p != '"') {
					if (*p == '\\' && p + 1 < end)
						p++;
					p++;
				}
				if (p >= end) {
					*bad = true; /* unterminated quoted string */
					*arg = sv_make(a0, (size_t)(p - a0));
				} else {
					*arg = sv_make(a0, (size_t)(p - a0));
					p++;
				}
			} else {
				const char *a0 = p;
				while (p < end && sv_is_tchar((unsigned char)*p))
					p++;
				*arg = sv_make(a0, (size_t)(p - a0));
				if (arg->len == 0)
					*bad = true;
			}
		}
		/* OWS before the list's comma (but none before "="). */
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p < end && *p != ',') {
			/* Junk after the directive: skip to the next comma
			 * outside quotes and report this element bad. */
			*bad = true;
			bool q = false;
			while (p < end && (q || *p != ',')) {
				if (*p == '"')
					q = !q;
				else if (*p == '\\' && q && p + 1 < end)
					p++;
				p++;
			}
		}
		*rest = sv_make(p, (size_t)(end - p));
		return true;
	}
}

/* delta-seconds (§1.2.2): digits; past CC_DELTA_MAX is CC_DELTA_MAX.
 * Returns the value or -1 if malformed. */
static int64_t delta_seconds(struct sv a)
{
	int64_t v = 0;
	if (a.len == 0)
		return -1;
	for (size_t i = 0; i < a.len; i++) {
		if (a.p[i] < '0' || a.p[i] > '9')
			return -1;
		if (v < CC_DELTA_MAX)
			v = v * 10 + (a.p[i] - '0');
	}
	return v > CC_DELTA_MAX ? CC_DELTA_MAX : v;
}

/* Set a delta directive; a second, different value or a malformed one is
 * reported through *conflict. */
static void set_delta(int64_t *slot, bool has_arg, struct sv arg, bool bad, bool *conflict)
{
	int64_t v = has_arg && !bad ? delta_seconds(arg) : -1;
	if (v < 0) {
		*conflict = true;
		return;
	}
	if (*slot >= 0 && *slot != v)
		*conflict = true;
	else
		*slot = v;
}

void cc_parse(const struct h1_header *h, unsigned n, struct cc *out)
{
	static const struct {
		const char *name;
		unsigned flag;
	} flags[] = {
		{"no-store", CC_NO_STORE},
		{"no-cache", CC_NO_CACHE},
		{"private", CC_PRIVATE},
		{"public", CC_PUBLIC},
		{"must-revalidate", CC_MUST_REVALIDATE},
		{"proxy-revalidate", CC_PROXY_REVALIDATE},
		{"must-understand", CC_MUST_UNDERSTAND},
		{"no-transform", CC_NO_TRANSFORM},
		{"only-if-cached", CC_ONLY_IF_CACHED},
		{"immutable", CC_IMMUTABLE},
	};

	memset(out, 0, sizeof(*out));
	out->max_age = out->s_maxage = out->max_stale = out->min_fresh = -1;
	out->stale_while_revalidate = out->stale_if_error = -1;
	for (unsigned i = 0; i < n; i++) {
		if (!sv_ieq_cstr(h[i].name, "cache-control"))
			continue;
		out->present = true;
		struct sv rest = h[i].value, name, arg;
		bool has_arg, bad;
		while (cc_next(&rest, &name, &arg, &has_arg, &bad)) {
			bool ignored = false;
			if (sv_ieq_cstr(name, "max-age")) {
				set_delta(&out->max_age, has_arg, arg, bad, &out->bad_freshness);
			} else if (sv_ieq_cstr(name, "s-maxage")) {
				set_delta(&out->s_maxage, has_arg, arg, bad, &out->bad_freshness);
			} else if (sv_ieq_cstr(name, "max-stale")) {
				if (!has_arg)
					out->max_stale = bad ? -1 : CC_ANY;
				else
					set_delta(&out->max_stale, true, arg, bad, &ignored);
			} else if (sv_ieq_cstr(name, "min-fresh")) {
				set_delta(&out->min_fresh, has_arg, arg, bad, &ignored);
			} else if (sv_ieq_cstr(name, "stale-while-revalidate")) {
				set_delta(&out->stale_while_revalidate, has_arg, arg, bad,
					  &ignored);
			} else if (sv_ieq_cstr(name, "stale-if-error")) {
				set_delta(&out->stale_if_error, has_arg, arg, bad, &ignored);
			} else {
				for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
					if (sv_ieq_cstr(name, flags[k].name) && !bad)
						out->flags |= flags[k].flag;
			}
			(void)ignored;
		}
	}
}

/* ---- storability ---- */

const char *policy_store_str(enum policy_store r)
{
	static const char *const s[] = {
#define X(n, str) str,
		POLICY_STORE_REASONS(X)
#undef X
	};
	return (unsigned)r < sizeof(s) / sizeof(s[0]) ? s[r] : "?";
}

static bool status_in(int status, const short *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == status)
			return true;
	return false;
}

bool policy_status_heuristic(int status)
{
	static const short set[] = {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501};
	return status_in(status, set, sizeof(set) / sizeof(set[0]));
}

bool policy_status_understood(int status)
{
	static const short set[] = {
		200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 305, 307,
		308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412,
		413, 414, 415, 416, 417, 421, 422, 426, 500, 501, 502, 503, 504, 505,
	};
	return status_in(status, set, sizeof(set) / sizeof(set[0]));
}

static bool has_field(const struct h1_header *h, unsigned n, const char *name)
{
	return h1_find(h, n, name) != NULL;
}

enum policy_store policy_storable(struct sv method, const struct h1_header *req, unsigned nreq,
				  int status, const struct h1_header *resp, unsigned nresp)
{
	struct cc rq, rs;

	if (!sv_eq(method, sv_from_cstr("GET")))
		return POLICY_STORE_METHOD;
	if (status < 200 || status > 599)
		return POLICY_STORE_STATUS;
	if (status == 206)
		return POLICY_STORE_PARTIAL;
	if (status == 304)
		return POLICY_STORE_STATUS; /* a validation answer, not a response to keep */
	cc_parse(req, nreq, &rq);
	cc_parse(resp, nresp, &rs);
	/* §3: must-understand limits storing to understood status codes and,
	 * for those, overrides no-store (§5.2.2.3). */
	if (rs.flags & CC_MUST_UNDERSTAND) {
		if (!policy_status_understood(status))
			return POLICY_STORE_STATUS;
	} else if (rs.flags & CC_NO_STORE) {
		return POLICY_STORE_NO_STORE;
	}
	if (rq.flags & CC_NO_STORE)
		return POLICY_STORE_REQ_NO_STORE;
	if (rs.flags & CC_PRIVATE)
		return POLICY_STORE_PRIVATE;
	/* §3.5 */
	if (has_field(req, nreq, "authorization") &&
	    !(rs.flags & (CC_MUST_REVALIDATE | CC_PUBLIC)) && rs.s_maxage < 0)
		return POLICY_STORE_AUTHORIZATION;
	for (unsigned i = 0; i < nresp; i++)
		if (sv_ieq_cstr(resp[i].name, "vary") && sv_list_has_token(resp[i].value, "*"))
			return POLICY_STORE_VARY_STAR;
	if (has_field(resp, nresp, "set-cookie"))
		return POLICY_STORE_SET_COOKIE;
	if (has_field(resp, nresp, "expires") || rs.max_age >= 0 || rs.s_maxage >= 0 ||
	    rs.bad_freshness || (rs.flags & CC_PUBLIC) || policy_status_heuristic(status))
		return POLICY_STORE_OK;
	return POLICY_STORE_NO_FRESHNESS;
}

/* ---- freshness and age ---- */

/* What date_field() returns for a field that is not there, or that is
 * invalid or given twice with different values; any other value is the
 * date (seconds since 1970, negative before). */
#define DATE_ABSENT INT64_MIN
#define DATE_BAD    (INT64_MIN + 1)

static bool date_ok(int64_t v)
{
	return v > DATE_BAD;
}

/* A single-valued date field. */
static int64_t date_field(const struct h1_header *h, unsigned n, const char *name, int64_t now)
{
	int64_t v = DATE_ABSENT;
	for (unsigned i = 0; i < n; i++) {
		if (!sv_ieq_cstr(h[i].name, name))
			continue;
		int64_t t;
		if (http_date_parse(h[i].value, now, &t) < 0 || !date_ok(t) ||
		    (v != DATE_ABSENT && v != t))
			return DATE_BAD;
		v = t;
	}
	return v;
}

int64_t policy_lifetime(int status, const struct cc *cc, const struct h1_header *resp,
			unsigned nresp, int64_t date, int64_t now, bool *heuristic)
{
	*heuristic = false;
	if (cc->bad_freshness)
		return 0;
	if (cc->s_maxage >= 0)
		return cc->s_maxage;
	if (cc->max_age >= 0)
		return cc->max_age;
	int64_t exp = date_field(resp, nresp, "expires", now);
	if (exp == DATE_BAD)
		return 0;	/* §5.3: an invalid Expires is in the past */
	if (exp != DATE_ABSENT) /* (one before 1970 too: no heuristic then) */
		return exp > date ? exp - date : 0;
	if (!policy_status_heuristic(status) && !(cc->flags & CC_PUBLIC))
		return 0;
	int64_t lm = date_field(resp, nresp, "last-modified", now);
	if (!date_ok(lm) || lm >= date)
		return 0;
	*heuristic = true;
	int64_t h = (date - lm) * HEURISTIC_PERCENT / 100;
	return h > HEURISTIC_MAX_S ? HEURISTIC_MAX_S : h;
}

void policy_meta(int status, const struct h1_header *resp, unsigned nresp, int64_t request_time,
		 int64_t response_time, struct policy_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->request_time = request_time;
	m->response_time = response_time;
	int64_t d = date_field(resp, nresp, "date", response_time);
	m->date = date_ok(d) ? d : response_time;
	int64_t lm = date_field(resp, nresp, "last-modified", response_time);
	m->last_modified = date_ok(lm) ? SL_MAX(lm, 0) : -1;
	const struct h1_header *age = h1_find(resp, nresp, "age");
	int64_t av = age ? delta_seconds(age->value) : -1;
	m->age_value = av > 0 ? av : 0;
	cc_parse(resp, nresp, &m->cc);
	m->lifetime =
		policy_lifetime(status, &m->cc, resp, nresp, m->date, response_time, &m->heuristic);
}

int64_t policy_current_age(const struct policy_meta *m, int64_t now)
{
	int64_t apparent = m->response_time - m->date;
	if (apparent < 0)
		apparent = 0;
	int64_t delay = m->response_time - m->request_time;
	if (delay < 0)
		delay = 0;
	int64_t corrected = m->age_value + delay;
	int64_t initial = apparent > corrected ? apparent : corrected;
	int64_t resident = now - m->response_time;
	if (resident < 0)
		resident = 0;
	return initial + resident;
}

/* ---- reuse ---- */

const char *policy_reuse_str(enum policy_reuse r)
{
	static const char *const s[] = {
#define X(n, str) str,
		POLICY_REUSE(X)
#undef X
	};
	return (unsigned)r < sizeof(s) / sizeof(s[0]) ? s[r] : "?";
}

/* Stale answers forbidden by the response (§4.2.4). */
static bool stale_forbidden(const struct policy_meta *m)
{
	return (m->cc.flags & (CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE)) || m->cc.s_maxage >= 0;
}

enum policy_reuse policy_reuse(const struct policy_meta *m, const struct cc *rq,
			       bool pragma_no_cache, int64_t now)
{
	if ((rq->flags & CC_NO_CACHE) || (!rq->present && pragma_no_cache))
		return POLICY_REUSE_REQ_NO_CACHE;
	if (m->cc.flags & CC_NO_CACHE)
		return POLICY_REUSE_NO_CACHE;
	int64_t age = policy_current_age(m, now);
	int64_t rq_max_age = rq->bad_freshness ? 0 : rq->max_age;
	if (rq_max_age >= 0 && age > rq_max_age)
		return POLICY_REUSE_TOO_OLD;
	if (age < m->lifetime) {
		if (rq->min_fresh >= 0 && m->lifetime - age < rq->min_fresh)
			return POLICY_REUSE_TOO_OLD;
		return POLICY_REUSE_FRESH;
	}
	if (stale_forbidden(m))
		return POLICY_REUSE_REVALIDATE;
	int64_t stale = age - m->lifetime;
	/* §5.2.1.2: max-stale accepts staleness; min-fresh asks for fresh,
	 * which a stale answer cannot be. */
	if (rq->min_fresh < 0 && rq->max_stale >= 0 && stale <= rq->max_stale)
		return POLICY_REUSE_STALE_OK;
	/* §5.2.1.1, §5.2.1.3: a client that sent max-age or min-fresh without
	 * an acceptable max-stale does not want a stale answer. */
	if (rq_max_age >= 0 || rq->min_fresh >= 0)
		return POLICY_REUSE_REVALIDATE;
	if (m->cc.stale_while_revalidate >= 0 && stale <= m->cc.stale_while_revalidate)
		return POLICY_REUSE_STALE_REVALIDATE;
	return POLICY_REUSE_REVALIDATE;
}

bool policy_stale_if_error(const struct policy_meta *m, const struct cc *rq, int64_t now)
{
	if (stale_forbidden(m) || (m->cc.flags & CC_NO_CACHE))
		return false;
	int64_t stale = policy_current_age(m, now) - m->lifetime;
	if (stale < 0)
		stale = 0;
	/* RFC 5861 §4: the request's stale-if-error, when sent, is the
	 * window for this request; else the response's. */
	int64_t win = m->cc.stale_if_error;
	if (rq->stale_if_error >= 0)
		win = rq->stale_if_error;
	return win >= 0 && stale <= win;
}

/* ---- validators ---- */

int etag_parse(struct sv v, struct etag *out)
{
	size_t i = 0;
	out->weak = false;
	if (v.len >= 2 && v.p[0] == 'W' && v.p[1] == '/') {
		out->weak = true;
		i = 2;
	}
	if (v.len - i < 2 || v.p[i] != '"' || v.p[v.len - 1] != '"')
		return -1;
	/* etagc = %x21 / %x23-7E / obs-text */
	for (size_t k = i + 1; k + 1 < v.len; k++) {
		unsigned char c = (unsigned char)v.p[k];
		if (c == '"' || c < 0x21 || c == 0x7f)
			return -1;
	}
	out->opaque = sv_make(v.p + i, v.len - i);
	return 0;
}

bool etag_strong_eq(const struct etag *a, const struct etag *b)
{
	return !a->weak && !b->weak && sv_eq(a->opaque, b->opaque);
}

bool etag_weak_eq(const struct etag *a, const struct etag *b)
{
	return sv_eq(a->opaque, b->opaque);
}

/* If-None-Match: 1 if some listed tag (or "*") matches, 0 if none does or
 * the field is malformed, -1 if it is absent (If-Modified-Since counts only
 * then, RFC 9110 §13.1.3). */
static int inm_matches(const struct h1_header *req, unsigned nreq, const struct etag *have)
{
	bool seen = false, match = false;
	for (unsigned i = 0; i < nreq; i++) {
		if (!sv_ieq_cstr(req[i].name, "if-none-match"))
			continue;
		seen = true;
		struct sv rest = req[i].value, el;
		if (sv_eq(sv_trim_ows(rest), sv_from_cstr("*"))) {
			match = true;
			continue;
		}
		/* Entity tags may not hold commas, so a plain split is exact. */
		while (sv_next_list_elem(&rest, &el)) {
			struct etag t;
			if (etag_parse(el, &t) < 0)
				return 0;
			if (have && etag_weak_eq(&t, have))
				match = true;
		}
	}
	return seen ? match : -1;
}

bool policy_not_modified(struct sv method, const struct h1_header *req, unsigned nreq,
			 const struct h1_header *stored, unsigned nstored, int64_t now)
{
	struct etag have;
	const struct h1_header *et = h1_find(stored, nstored, "etag");
	bool have_tag = et && etag_parse(et->value, &have) == 0;
	int inm = inm_matches(req, nreq, have_tag ? &have : NULL);
	if (inm >= 0)
		return inm == 1;
	if (!sv_eq(method, sv_from_cstr("GET")) && !sv_eq(method, sv_from_cstr("HEAD")))
		return false;
	int64_t ims = date_field(req, nreq, "if-modified-since", now);
	if (!date_ok(ims))
		return false;
	int64_t lm = date_field(stored, nstored, "last-modified", now);
	if (!date_ok(lm))
		lm = date_field(stored, nstored, "date", now);
	return date_ok(lm) && lm <= ims;
}

bool policy_has_other_conditional(const struct h1_header *req, unsigned nreq)
{
	return has_field(req, nreq, "if-match") || has_field(req, nreq, "if-unmodified-since");
}

bool policy_if_range(const struct h1_header *req, unsigned nreq, const struct h1_header *stored,
		     unsigned nstored, int64_t now)
{
	const struct h1_header *ir = h1_find(req, nreq, "if-range");
	if (ir == NULL)
		return true;
	struct sv v = sv_trim_ows(ir->value);
	if ((v.len > 0 && v.p[0] == '"') || (v.len > 1 && v.p[0] == 'W' && v.p[1] == '/')) {
		/* (else a date, which may start "Wed, ") */
		const struct h1_header *et = h1_find(stored, nstored, "etag");
		struct etag want, have;
		return et && etag_parse(v, &want) == 0 && etag_parse(et->value, &have) == 0 &&
		       etag_strong_eq(&want, &have);
	}
	/* A date matches only a strong Last-Modified: for a cache, one at
	 * least a second before the stored Date (RFC 9110 §8.8.2.2). */
	int64_t when = date_field(req, nreq, "if-range", now);
	int64_t lm = date_field(stored, nstored, "last-modified", now);
	int64_t date = date_field(stored, nstored, "date", now);
	return date_ok(when) && date_ok(lm) && when == lm && date_ok(date) && lm < date;
}

bool policy_304_matches(const struct h1_header *stored, unsigned nstored,
			const struct h1_header *resp, unsigned nresp, int64_t now)
{
	const struct h1_header *et = h1_find(resp, nresp, "etag");
	if (et) {
		const struct h1_header *set = h1_find(stored, nstored, "etag");
		struct etag a, b;
		if (set == NULL || etag_parse(et->value, &a) < 0 || etag_parse(set->value, &b) < 0)
			return false;
		return a.weak ? etag_weak_eq(&a, &b) : etag_strong_eq(&a, &b);
	}
	int64_t lm = date_field(resp, nresp, "last-modified", now);
	if (lm == DATE_ABSENT)
		return true;
	return date_ok(lm) && lm == date_field(stored, nstored, "last-modified", now);
}

bool policy_head_freshens(int stored_status, const struct h1_header *stored, unsigned nstored,
			  uint64_t body_len, const struct h1_header *head, unsigned nhead,
			  int64_t now)
{
	const struct h1_header *et = h1_find(head, nhead, "etag");
	const struct h1_header *lm = h1_find(head, nhead, "last-modified");
	const struct h1_header *cl = h1_find(head, nhead, "content-length");
	if (stored_status != 200)
		return false; /* a 200 cannot vouch for a stored 404 */
	if (et) {
		const struct h1_header *set = h1_find(stored, nstored, "etag");
		struct etag a, b;
		if (set == NULL || etag_parse(et->value, &a) < 0 ||
		    etag_parse(set->value, &b) < 0 || a.weak != b.weak ||
		    !sv_eq(a.opaque, b.opaque))
			return false;
	}
	if (lm) {
		int64_t when = date_field(head, nhead, "last-modified", now);
		if (!date_ok(when) || when != date_field(stored, nstored, "last-modified", now))
			return false;
	}
	uint64_t n;
	return cl == NULL ||
	       (sv_to_u64(sv_trim_ows(cl->value), UINT64_MAX, &n) == 0 && n == body_len);
}

/* ---- header storage and update ---- */

bool policy_field_hop(struct sv name, const struct h1_header *msg, unsigned nmsg)
{
	static const char *const hop[] = {
		"connection", "keep-alive",	    "proxy-connection",
		"te",	      "transfer-encoding",  "upgrade",
		"trailer",    "proxy-authenticate", "proxy-authentication-info",
	};
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (sv_ieq_cstr(name, hop[i]))
			return true;
	for (unsigned i = 0; i < nmsg; i++) {
		if (!sv_ieq_cstr(msg[i].name, "connection"))
			continue;
		struct sv rest = msg[i].value, el;
		while (sv_next_list_elem(&rest, &el))
			if (sv_ieq(el, name))
				return true;
	}
	return false;
}

/* Fields a 304 does not update: framing and coding of the stored body. */
static bool keep_stored(struct sv name, const struct h1_header *upd, unsigned nupd)
{
	return sv_ieq_cstr(name, "content-length") || sv_ieq_cstr(name, "content-encoding") ||
	       sv_ieq_cstr(name, "content-range") || policy_field_hop(name, upd, nupd);
}

static bool has_name(const struct h1_header *h, unsigned n, struct sv name)
{
	for (unsigned i = 0; i < n; i++)
		if (sv_ieq(h[i].name, name))
			return true;
	return false;
}

int policy_merge_304(const struct h1_header *stored, unsigned nstored, const struct h1_header *upd,
		     unsigned nupd, struct h1_header *out, unsigned cap)
{
	unsigned n = 0;
	for (unsigned i = 0; i < nstored; i++) {
		struct sv name = stored[i].name;
		bool replaced = !keep_stored(name, upd, nupd) && has_name(upd, nupd, name);
		if (!replaced) {
			if (n == cap)
				return -1;
			out[n++] = stored[i];
			continue;
		}
		if (has_name(stored, i, name))
			continue; /* its new lines went in at its first line */
		for (unsigned k = 0; k < nupd; k++) {
			if (!sv_ieq(upd[k].name, name))
				continue;
			if (n == cap)
				return -1;
			out[n++] = upd[k];
		}
	}
	for (unsigned k = 0; k < nupd; k++) {
		struct sv name = upd[k].name;
		if (keep_stored(name, upd, nupd) || has_name(stored, nstored, name))
			continue;
		if (n == cap)
			return -1;
		out[n++] = upd[k];
	}
	return (int)n;
}

/* ---- invalidation ---- */

bool policy_method_unsafe(struct sv method)
{
	static const char *const safe[] = {"GET", "HEAD", "OPTIONS", "TRACE"};
	for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
		if (sv_eq(method, sv_from_cstr(safe[i])))
			return false;
	return true;
}

bool policy_status_invalidates(int status)
{
	return status >= 200 && status < 400;
}

int policy_invalidation_path(struct sv value, struct sv host, uint16_t port, struct sv *path)
{
	if (value.len == 0)
		return -1;
	const char *hash = memchr(value.p, '#', value.len);
	if (hash)
		value.len = (size_t)(hash - value.p);
	if (value.len >= 1 && value.p[0] == '/') {
		if (value.len >= 2 && value.p[1] == '/')
			return -1; /* network-path reference: another authority */
		for (size_t i = 0; i < value.len; i++)
			if ((unsigned char)value.p[i] <= 0x20 || (unsigned char)value.p[i] >= 0x7f)
				return -1;
		*path = value;
		return 0;
	}
	struct uri u;
	if (uri_parse_absolute(value, &u) != 0 || !uri_host_eq(u.host, host) || u.port != port)
		return -1;
	if (u.query_only)
		return -1; /* "http://h?q": no view can hold its "/?q" */
	*path = u.path_empty ? sv_from_cstr("/") : u.path;
	return 0;
}

/* ---- Vary ---- */

struct out {
	char *p;
	size_t len, cap;
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || o->cap - o->len < n) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

/* The request's value of one field, normalised: lines joined by ", ",
 * whitespace around commas and at the ends dropped. */
static void put_value(struct out *o, const struct h1_header *req, unsigned nreq, struct sv name)
{
	bool first = true, any = false;
	for (unsigned i = 0; i < nreq; i++) {
		if (!sv_ieq(req[i].name, name))
			continue;
		any = true;
		struct sv rest = req[i].value, el;
		while (sv_next_list_elem(&rest, &el)) {
			if (!first)
				put(o, ",", 1);
			put(o, el.p, el.len);
			first = false;
		}
	}
	if (!any)
		put(o, "\x01", 1);
}

long policy_vary_key(const struct h1_header *resp, unsigned nresp, const struct h1_header *req,
		     unsigned nreq, char *out, size_t cap)
{
	struct out o = {.p = out, .cap = cap};
	for (unsigned i = 0; i < nresp; i++) {
		if (!sv_ieq_cstr(resp[i].name, "vary"))
			continue;
		struct sv rest = resp[i].value, el;
		while (sv_next_list_elem(&rest, &el)) {
			if (sv_eq(el, sv_from_cstr("*")) || !sv_is_token(el))
				return -1; /* never matches */
			for (size_t k = 0; k < el.len; k++) {
				char c = el.p[k];
				c = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
				put(&o, &c, 1);
			}
			put(&o, ":", 1);
			put_value(&o, req, nreq, el);
			put(&o, "\n", 1);
		}
	}
	return o.full ? -2 : (long)o.len;
}

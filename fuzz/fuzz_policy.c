/* fuzz_policy.c - libFuzzer target for the cache policy and HTTP-date code.
 *
 * Input: one byte of choices, then text split at '\n' into header lines
 * "name:value"; lines before a "--" line are the request's, after it the
 * response's (the stored response for conditionals). Every decision is made
 * on them. Checked: lifetimes, ages and windows never negative; decisions
 * from the documented sets; a 304 merge's lines are views into its inputs
 * and within cap; a Vary key within its buffer and the same for the same
 * request; a parsed date formats and parses back to itself; a cache key
 * within its buffer, and normalising it again changes nothing; a byte range
 * accepted lies inside the representation. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"
#include "cache/key.h"
#include "cache/policy.h"
#include "http/date.h"
#include "http/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXH 32

static unsigned split(const char *p, const char *end, struct h1_header *h, const char **stop)
{
	unsigned n = 0;
	while (p < end && n < MAXH) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if (le - p == 2 && p[0] == '-' && p[1] == '-') {
			*stop = nl ? nl + 1 : end;
			return n;
		}
		const char *c = memchr(p, ':', (size_t)(le - p));
		if (c) {
			h[n].name = sv_make(p, (size_t)(c - p));
			h[n].value = sv_trim_ows(sv_make(c + 1, (size_t)(le - c - 1)));
			n++;
		}
		p = nl ? nl + 1 : end;
	}
	*stop = end;
	return n;
}

static bool inside(struct sv s, const char *buf, size_t len)
{
	return s.p >= buf && s.len <= len && (size_t)(s.p - buf) <= len - s.len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *text = (const char *)data + 1, *end = text + size - 1, *mid;
	struct h1_header rq[MAXH], rs[MAXH], out[MAXH];
	unsigned nrq = split(text, end, rq, &mid);
	const char *dummy;
	unsigned nrs = split(mid, end, rs, &dummy);
	int64_t now = 1764806400 + (int64_t)data[0] * 86400 * 97;
	int status = data[0] % 2 ? 200 : 100 + (data[0] * 7) % 500;
	static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PURGE"};
	struct sv method = sv_from_cstr(methods[(data[0] >> 1) % SL_ARRAY_LEN(methods)]);

	/* Every Range field against lengths around its numbers: a range
	 * accepted is inside the representation. */
	for (unsigned i = 0; i < nrq; i++) {
		uint64_t lens[] = {0, 1, data[0], 1000, UINT64_MAX / 2};
		for (size_t k = 0; k < SL_ARRAY_LEN(lens); k++) {
			uint64_t a, b;
			if (range_parse(rq[i].value, lens[k], &a, &b) == RANGE_OK)
				SL_ASSERT(a <= b && b < lens[k]);
		}
	}
	(void)policy_if_range(rq, nrq, rs, nrs, now);

	struct cc c;
	cc_parse(rq, nrq, &c);
	SL_ASSERT(c.max_age >= -1 && c.max_age <= CC_DELTA_MAX);
	SL_ASSERT(c.min_fresh >= -1 && c.max_stale >= -1);

	enum policy_store st = policy_storable(method, rq, nrq, status, rs, nrs);
	SL_ASSERT(st <= POLICY_STORE_SET_COOKIE && policy_store_str(st)[0] != '?');

	struct policy_meta m;
	policy_meta(status, rs, nrs, now - data[0], now, &m);
	SL_ASSERT(m.lifetime >= 0 && m.age_value >= 0);
	SL_ASSERT(!m.heuristic || m.lifetime <= HEURISTIC_MAX_S);
	for (int64_t later = now; later < now + 1000000; later += 99999) {
		SL_ASSERT(policy_current_age(&m, later) >= 0);
		enum policy_reuse r = policy_reuse(&m, &c, data[0] & 1, later);
		SL_ASSERT(r <= POLICY_REUSE_TOO_OLD && policy_reuse_str(r)[0] != '?');
		(void)policy_stale_if_error(&m, &c, later);
	}
	(void)policy_not_modified(method, rq, nrq, rs, nrs, now);
	(void)policy_has_other_conditional(rq, nrq);
	/* A HEAD's 200 (here rq) vouches only for a stored 200. */
	if (policy_head_freshens(status, rs, nrs, data[0], rq, nrq, now))
		SL_ASSERT(status == 200);

	int n = policy_merge_304(rs, nrs, rq, nrq, out, MAXH);
	SL_ASSERT(n >= -1 && n <= MAXH);
	for (int i = 0; i < n; i++)
		SL_ASSERT(inside(out[i].name, text, size - 1) &&
			  inside(out[i].value, text, size - 1));

	char k1[512], k2[512];
	long l1 = policy_vary_key(rs, nrs, rq, nrq, k1, sizeof(k1));
	long l2 = policy_vary_key(rs, nrs, rq, nrq, k2, sizeof(k2));
	SL_ASSERT(l1 >= -2 && l1 <= (long)sizeof(k1) && l1 == l2);
	SL_ASSERT(l1 < 0 || memcmp(k1, k2, (size_t)l1) == 0);

	for (unsigned i = 0; i < nrq + nrs; i++) {
		struct sv v = i < nrq ? rq[i].value : rs[i - nrq].value;
		int64_t t, back;
		if (http_date_parse(v, now, &t) == 0) {
			char d[HTTP_DATE_LEN + 1];
			http_date_format(t, d);
			SL_ASSERT(strlen(d) == HTTP_DATE_LEN);
			SL_ASSERT(http_date_parse(sv_from_cstr(d), now, &back) == 0);
			/* A leap second formats as the next minute's :00. */
			SL_ASSERT(back == t);
		}
		/* Cache keys: bounded, prefixed, and normalising twice changes
		 * nothing. */
		char key[256], key2[256];
		bool v6 = data[0] & 4;
		struct sv host = sv_from_cstr(v6 ? "FE80::1" : "Example.COM");
		long kl = cache_key_make(host, v6, 80, v, key, sizeof(key));
		SL_ASSERT(kl >= -1 && kl <= (long)sizeof(key));
		if (kl >= 0) {
			const char *pre = v6 ? "http://[fe80::1]:80" : "http://example.com:80";
			size_t pl = strlen(pre);
			SL_ASSERT((size_t)kl > pl && memcmp(key, pre, pl) == 0);
			struct sv p2 = sv_make(key + pl, (size_t)kl - pl);
			long kl2 = cache_key_make(sv_from_cstr(v6 ? "fe80::1" : "example.com"), v6,
						  80, p2, key2, sizeof(key2));
			SL_ASSERT(kl2 == kl && memcmp(key, key2, (size_t)kl) == 0);
			SL_ASSERT(cache_key_hash(key, (size_t)kl) ==
				  cache_key_hash(key2, (size_t)kl2));
		}
		struct sv path;
		if (policy_invalidation_path(v, sv_from_cstr("example.com"), 80, &path) == 0)
			SL_ASSERT(path.len >= 1 && path.p[0] == '/' &&
				  !memchr(path.p, '#', path.len));
		struct etag e;
		if (etag_parse(v, &e) == 0)
			SL_ASSERT(etag_weak_eq(&e, &e) && inside(e.opaque, v.p, v.len));
	}
	return 0;
}

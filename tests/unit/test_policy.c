/* test_policy.c - the shared-cache rules of RFC 9111, rule by rule. Section
 * numbers in the test names are RFC 9111's unless another RFC is named. */
#include "cache/policy.h"
#include "http/date.h"
#include "unit.h"

#define NOW  1764806400 /* 2025-12-04 00:00:00 UTC */
#define MAXH 16

/* A header list from "Name: value" strings (views into the literals). */
struct hl {
	struct h1_header h[MAXH];
	unsigned n;
};

static struct hl hl_make(const char *const *lines)
{
	struct hl l = {.n = 0};
	for (; lines && *lines && l.n < MAXH; lines++) {
		const char *c = strchr(*lines, ':');
		struct h1_header *h = &l.h[l.n++];
		h->name = sv_make(*lines, (size_t)(c - *lines));
		h->value = sv_trim_ows(sv_from_cstr(c + 1));
	}
	return l;
}

#define HL(...) hl_make((const char *const[]){__VA_ARGS__, NULL})
#define NONE	hl_make(NULL)

static enum policy_store storable(int status, struct hl req, struct hl resp)
{
	return policy_storable(sv_from_cstr("GET"), req.h, req.n, status, resp.h, resp.n);
}

static struct cc cc_of(struct hl l)
{
	struct cc c;
	cc_parse(l.h, l.n, &c);
	return c;
}

static struct policy_meta meta(int status, struct hl resp, int64_t req_t, int64_t resp_t)
{
	struct policy_meta m;
	policy_meta(status, resp.h, resp.n, req_t, resp_t, &m);
	return m;
}

static enum policy_reuse reuse(const struct policy_meta *m, struct hl req, int64_t now)
{
	struct cc rq = cc_of(req);
	bool pragma = h1_has_token(req.h, req.n, "pragma", "no-cache");
	return policy_reuse(m, &rq, pragma, now);
}

/* "Date: <t>" into a caller's buffer. */
static const char *date_line(char *buf, const char *name, int64_t t)
{
	char d[HTTP_DATE_LEN + 1];
	http_date_format(t, d);
	snprintf(buf, 64, "%s: %s", name, d);
	return buf;
}

TEST(s5_2_directives_case_insensitive_token_or_quoted)
{
	struct cc c = cc_of(HL("Cache-Control: MAX-AGE=\"60\", No-Store", "cache-control: Public"));
	CHECK_INT(c.max_age, 60);
	CHECK(c.flags & CC_NO_STORE);
	CHECK(c.flags & CC_PUBLIC);
	CHECK(!c.bad_freshness);
	CHECK(c.present);
	c = cc_of(HL("Cache-Control: s-maxage=5 , unknown-ext=\"a, b\", private"));
	CHECK_INT(c.s_maxage, 5);
	CHECK(c.flags & CC_PRIVATE);
	CHECK(!c.bad_freshness);
	/* The grammar has no whitespace around "=". */
	c = cc_of(HL("Cache-Control: s-maxage = 5, no-store x"));
	CHECK(c.bad_freshness);
	CHECK(!(c.flags & CC_NO_STORE)); /* junk after a directive: not that directive */
	CHECK(!cc_of(HL("Other: x")).present);
	/* OWS before a comma, after a directive without a value. */
	c = cc_of(HL("Cache-Control: private , no-store\t, max-age=600 "));
	CHECK(c.flags & CC_PRIVATE);
	CHECK(c.flags & CC_NO_STORE);
	CHECK_INT(c.max_age, 600);
	CHECK(!c.bad_freshness);
}

TEST(s5_2_2_4_qualified_no_cache_and_private_treated_as_unqualified)
{
	struct cc c = cc_of(HL("Cache-Control: no-cache=\"Set-Cookie, X-A\", private=\"X-B\""));
	CHECK(c.flags & CC_NO_CACHE);
	CHECK(c.flags & CC_PRIVATE);
	CHECK_INT(c.max_age, -1);
}

TEST(s1_2_2_delta_seconds_overflow_is_2_to_the_31)
{
	CHECK_INT(cc_of(HL("Cache-Control: max-age=99999999999999999999999")).max_age,
		  CC_DELTA_MAX);
	CHECK_INT(cc_of(HL("Cache-Control: max-age=2147483647")).max_age, 2147483647);
}

TEST(s4_2_1_malformed_or_conflicting_freshness_means_stale)
{
	const char *bad[] = {"max-age=", "max-age=-1",		 "max-age=1.5",	 "max-age=abc",
			     "max-age",	 "max-age=5, max-age=6", "s-maxage=\"1", "max-age=5x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char line[64];
		snprintf(line, sizeof(line), "Cache-Control: %s", bad[i]);
		struct hl resp = HL(line);
		struct policy_meta m = meta(200, resp, NOW, NOW);
		if (!m.cc.bad_freshness || m.lifetime != 0)
			printf("    not stale: %s\n", bad[i]);
		CHECK(m.cc.bad_freshness);
		CHECK_INT(m.lifetime, 0);
	}
	/* The same value twice is no conflict. */
	CHECK_INT(meta(200, HL("Cache-Control: max-age=5, max-age=5"), NOW, NOW).lifetime, 5);
	/* A malformed request max-age is taken as 0: only a new response will do. */
	struct policy_meta m = meta(200, HL("Cache-Control: max-age=100"), NOW, NOW);
	CHECK_INT(reuse(&m, HL("Cache-Control: max-age=x"), NOW + 1), POLICY_REUSE_TOO_OLD);
}

TEST(s3_storable_status_method_and_directives)
{
	CHECK_INT(storable(200, NONE, NONE), POLICY_STORE_OK);
	CHECK_INT(storable(404, NONE, NONE), POLICY_STORE_OK); /* heuristically cacheable */
	CHECK_INT(storable(302, NONE, NONE), POLICY_STORE_NO_FRESHNESS);
	CHECK_INT(storable(302, NONE, HL("Cache-Control: max-age=60")), POLICY_STORE_OK);
	CHECK_INT(storable(500, NONE, HL("Expires: Thu, 01 Jan 2099 00:00:00 GMT")),
		  POLICY_STORE_OK);
	CHECK_INT(storable(201, NONE, HL("Cache-Control: public")), POLICY_STORE_OK);
	CHECK_INT(storable(100, NONE, NONE), POLICY_STORE_STATUS);
	CHECK_INT(storable(206, NONE, HL("Cache-Control: max-age=60")), POLICY_STORE_PARTIAL);
	CHECK_INT(storable(200, NONE, HL("Cache-Control: no-store")), POLICY_STORE_NO_STORE);
	CHECK_INT(storable(200, HL("Cache-Control: no-store"), NONE), POLICY_STORE_REQ_NO_STORE);
	CHECK_INT(storable(200, NONE, HL("Cache-Control: private")), POLICY_STORE_PRIVATE);
	CHECK_INT(storable(200, NONE, HL("Vary: Accept, *")), POLICY_STORE_VARY_STAR);
	CHECK_INT(storable(304, NONE, HL("Cache-Control: max-age=60")), POLICY_STORE_STATUS);
	CHECK_INT(storable(200, NONE, HL("Cache-Control: max-age=60", "Set-Cookie: s=1")),
		  POLICY_STORE_SET_COOKIE);
	CHECK_INT(storable(200, NONE, HL("Cache-Control: private , max-age=600")),
		  POLICY_STORE_PRIVATE);
	CHECK_INT(policy_storable(sv_from_cstr("POST"), NULL, 0, 200, NULL, 0),
		  POLICY_STORE_METHOD);
	CHECK_INT(policy_storable(sv_from_cstr("HEAD"), NULL, 0, 200, NULL, 0),
		  POLICY_STORE_METHOD);
	CHECK_INT(policy_storable(sv_from_cstr("get"), NULL, 0, 200, NULL, 0),
		  POLICY_STORE_METHOD); /* methods are case-sensitive */
	CHECK_STR(policy_store_str(POLICY_STORE_PRIVATE), "response private");
}

TEST(s5_2_2_3_must_understand_overrides_no_store_for_understood_codes)
{
	struct hl both = HL("Cache-Control: must-understand, no-store, max-age=60");
	CHECK_INT(storable(200, NONE, both), POLICY_STORE_OK);
	CHECK_INT(storable(299, NONE, both), POLICY_STORE_STATUS);
	CHECK_INT(storable(299, NONE, HL("Cache-Control: max-age=60")), POLICY_STORE_OK);
}

TEST(s3_5_authorization_needs_public_must_revalidate_or_s_maxage)
{
	struct hl auth = HL("Authorization: Basic dTpw");
	CHECK_INT(storable(200, auth, HL("Cache-Control: max-age=60")), POLICY_STORE_AUTHORIZATION);
	CHECK_INT(storable(200, auth, HL("Cache-Control: public")), POLICY_STORE_OK);
	CHECK_INT(storable(200, auth, HL("Cache-Control: must-revalidate")), POLICY_STORE_OK);
	CHECK_INT(storable(200, auth, HL("Cache-Control: s-maxage=10")), POLICY_STORE_OK);
}

TEST(s4_2_1_lifetime_s_maxage_then_max_age_then_expires)
{
	char d[64], e[64];
	date_line(d, "Date", NOW);
	date_line(e, "Expires", NOW + 300);
	CHECK_INT(meta(200, HL(d, e, "Cache-Control: max-age=60, s-maxage=30"), NOW, NOW).lifetime,
		  30);
	CHECK_INT(meta(200, HL(d, e, "Cache-Control: max-age=60"), NOW, NOW).lifetime, 60);
	CHECK_INT(meta(200, HL(d, e), NOW, NOW).lifetime, 300);
	/* Expires is relative to the origin's Date, not our clock. */
	CHECK_INT(meta(200, HL(d, e), NOW + 1000, NOW + 1000).lifetime, 300);
	date_line(e, "Expires", NOW - 5);
	CHECK_INT(meta(200, HL(d, e), NOW, NOW).lifetime, 0);
}

TEST(s5_3_invalid_expires_means_already_expired)
{
	struct policy_meta m = meta(200, HL("Expires: 0"), NOW, NOW);
	CHECK_INT(m.lifetime, 0);
	CHECK(!m.heuristic);
	char e1[64], e2[64];
	date_line(e1, "Expires", NOW + 100);
	date_line(e2, "Expires", NOW + 200);
	CHECK_INT(meta(200, HL(e1, e2), NOW, NOW).lifetime, 0);
	/* Without Date, the time of receipt stands in (RFC 9110 §6.6.1). */
	CHECK_INT(meta(200, HL(e1), NOW, NOW).lifetime, 100);
	/* A valid date before 1970 is in the past, not absent: no heuristic
	 * freshness from Last-Modified (§4.2.2). */
	char lm[64];
	date_line(lm, "Last-Modified", NOW - 86400 * 365);
	m = meta(200, HL("Expires: Wed, 31 Dec 1969 23:59:59 GMT", lm), NOW, NOW);
	CHECK_INT(m.lifetime, 0);
	CHECK(!m.heuristic);
	CHECK_INT(meta(200, HL("Expires: Sat, 01 Jan 1960 00:00:00 GMT", lm), NOW, NOW).lifetime,
		  0);
}

TEST(s4_2_2_heuristic_only_without_explicit_time_and_when_allowed)
{
	char d[64], lm[64];
	date_line(d, "Date", NOW);
	date_line(lm, "Last-Modified", NOW - 1000);
	struct policy_meta m = meta(200, HL(d, lm), NOW, NOW);
	CHECK_INT(m.lifetime, 1000 * HEURISTIC_PERCENT / 100);
	CHECK(m.heuristic);
	/* Capped. */
	date_line(lm, "Last-Modified", NOW - 100 * 86400);
	CHECK_INT(meta(200, HL(d, lm), NOW, NOW).lifetime, HEURISTIC_MAX_S);
	/* Not for a status that is not heuristically cacheable... */
	CHECK_INT(meta(302, HL(d, lm), NOW, NOW).lifetime, 0);
	/* ...unless public. */
	CHECK(meta(302, HL(d, lm, "Cache-Control: public"), NOW, NOW).lifetime > 0);
	/* An explicit time wins, even zero. */
	CHECK_INT(meta(200, HL(d, lm, "Cache-Control: max-age=0"), NOW, NOW).lifetime, 0);
	CHECK(!meta(200, HL(d, lm, "Cache-Control: max-age=0"), NOW, NOW).heuristic);
	/* No Last-Modified: nothing to reason from. */
	CHECK_INT(meta(200, HL(d), NOW, NOW).lifetime, 0);
}

TEST(s4_2_3_age_calculation)
{
	char d[64];
	/* Origin's clock 10 s behind the response time: apparent age 10. */
	date_line(d, "Date", NOW - 10);
	struct policy_meta m = meta(200, HL(d), NOW - 2, NOW);
	CHECK_INT(policy_current_age(&m, NOW), 10);
	CHECK_INT(policy_current_age(&m, NOW + 5), 15);
	/* Age from an upstream cache plus the response delay wins. */
	m = meta(200, HL(d, "Age: 30"), NOW - 2, NOW);
	CHECK_INT(policy_current_age(&m, NOW), 32);
	/* A Date in the future gives no negative age. */
	date_line(d, "Date", NOW + 50);
	m = meta(200, HL(d), NOW, NOW);
	CHECK_INT(policy_current_age(&m, NOW), 0);
	/* An invalid Age is ignored. */
	date_line(d, "Date", NOW);
	m = meta(200, HL(d, "Age: -5"), NOW, NOW);
	CHECK_INT(policy_current_age(&m, NOW), 0);
}

TEST(s4_2_fresh_stale_and_request_directives)
{
	char d[64];
	date_line(d, "Date", NOW);
	struct policy_meta m = meta(200, HL(d, "Cache-Control: max-age=100"), NOW, NOW);
	CHECK_INT(reuse(&m, NONE, NOW + 50), POLICY_REUSE_FRESH);
	CHECK_INT(reuse(&m, NONE, NOW + 100), POLICY_REUSE_REVALIDATE);
	/* §5.2.1.1 max-age */
	CHECK_INT(reuse(&m, HL("Cache-Control: max-age=10"), NOW + 50), POLICY_REUSE_TOO_OLD);
	CHECK_INT(reuse(&m, HL("Cache-Control: max-age=60"), NOW + 50), POLICY_REUSE_FRESH);
	/* §5.2.1.3 min-fresh */
	CHECK_INT(reuse(&m, HL("Cache-Control: min-fresh=60"), NOW + 50), POLICY_REUSE_TOO_OLD);
	CHECK_INT(reuse(&m, HL("Cache-Control: min-fresh=40"), NOW + 50), POLICY_REUSE_FRESH);
	/* §5.2.1.2 max-stale, with and without a value */
	CHECK_INT(reuse(&m, HL("Cache-Control: max-stale=30"), NOW + 120), POLICY_REUSE_STALE_OK);
	CHECK_INT(reuse(&m, HL("Cache-Control: max-stale=10"), NOW + 120), POLICY_REUSE_REVALIDATE);
	CHECK_INT(reuse(&m, HL("Cache-Control: max-stale"), NOW + 99999), POLICY_REUSE_STALE_OK);
	/* §5.2.1.4 no-cache, and Pragma only without Cache-Control (§5.4) */
	CHECK_INT(reuse(&m, HL("Cache-Control: no-cache"), NOW + 1), POLICY_REUSE_REQ_NO_CACHE);
	CHECK_INT(reuse(&m, HL("Pragma: no-cache"), NOW + 1), POLICY_REUSE_REQ_NO_CACHE);
	CHECK_INT(reuse(&m, HL("Pragma: no-cache", "Cache-Control: max-age=60"), NOW + 1),
		  POLICY_REUSE_FRESH);
	CHECK_STR(policy_reuse_str(POLICY_REUSE_FRESH), "fresh");
}

TEST(s5_2_2_4_response_no_cache_always_validates)
{
	struct policy_meta m = meta(200, HL("Cache-Control: no-cache, max-age=100"), NOW, NOW);
	CHECK_INT(reuse(&m, NONE, NOW + 1), POLICY_REUSE_NO_CACHE);
	CHECK_INT(reuse(&m, HL("Cache-Control: max-stale"), NOW + 1), POLICY_REUSE_NO_CACHE);
}

TEST(s4_2_4_must_revalidate_proxy_revalidate_s_maxage_forbid_stale)
{
	const char *cc[] = {"Cache-Control: max-age=10, must-revalidate",
			    "Cache-Control: max-age=10, proxy-revalidate",
			    "Cache-Control: s-maxage=10, stale-while-revalidate=100"};
	for (size_t i = 0; i < 3; i++) {
		struct policy_meta m =
			meta(200, HL(cc[i], "Cache-Control: stale-if-error=100"), NOW, NOW);
		CHECK_INT(reuse(&m, NONE, NOW + 5), POLICY_REUSE_FRESH);
		CHECK_INT(reuse(&m, HL("Cache-Control: max-stale"), NOW + 20),
			  POLICY_REUSE_REVALIDATE);
		CHECK_INT(reuse(&m, NONE, NOW + 20), POLICY_REUSE_REVALIDATE);
		struct cc rq = cc_of(NONE);
		CHECK(!policy_stale_if_error(&m, &rq, NOW + 20));
	}
}

TEST(rfc5861_3_stale_while_revalidate_window)
{
	struct policy_meta m =
		meta(200, HL("Cache-Control: max-age=10, stale-while-revalidate=30"), NOW, NOW);
	CHECK_INT(reuse(&m, NONE, NOW + 5), POLICY_REUSE_FRESH);
	CHECK_INT(reuse(&m, NONE, NOW + 25), POLICY_REUSE_STALE_REVALIDATE);
	CHECK_INT(reuse(&m, NONE, NOW + 41), POLICY_REUSE_REVALIDATE);
	/* A client asking for an age limit does not get the stale answer. */
	CHECK_INT(reuse(&m, HL("Cache-Control: max-age=100"), NOW + 25), POLICY_REUSE_REVALIDATE);
}

TEST(rfc5861_4_stale_if_error_window_from_response_or_request)
{
	struct policy_meta m =
		meta(200, HL("Cache-Control: max-age=10, stale-if-error=60"), NOW, NOW);
	struct cc none = cc_of(NONE), rq = cc_of(HL("Cache-Control: stale-if-error=5"));
	CHECK(policy_stale_if_error(&m, &none, NOW + 50));
	CHECK(!policy_stale_if_error(&m, &none, NOW + 80));
	CHECK(!policy_stale_if_error(&m, &rq, NOW + 50));
	struct policy_meta plain = meta(200, HL("Cache-Control: max-age=10"), NOW, NOW);
	CHECK(!policy_stale_if_error(&plain, &none, NOW + 20));
	CHECK(policy_stale_if_error(&plain, &rq, NOW + 14));
}

TEST(rfc9110_8_8_3_2_strong_and_weak_comparison)
{
	struct etag w1, w2, s1, s2;
	CHECK(etag_parse(sv_from_cstr("W/\"1\""), &w1) == 0 && w1.weak);
	CHECK(etag_parse(sv_from_cstr("W/\"2\""), &w2) == 0);
	CHECK(etag_parse(sv_from_cstr("\"1\""), &s1) == 0 && !s1.weak);
	CHECK(etag_parse(sv_from_cstr("\"2\""), &s2) == 0);
	/* The table of RFC 9110 §8.8.3.2. */
	CHECK(!etag_strong_eq(&w1, &w1) && etag_weak_eq(&w1, &w1));
	CHECK(!etag_strong_eq(&w1, &w2) && !etag_weak_eq(&w1, &w2));
	CHECK(!etag_strong_eq(&w1, &s1) && etag_weak_eq(&w1, &s1));
	CHECK(etag_strong_eq(&s1, &s1) && etag_weak_eq(&s1, &s1));
	CHECK(!etag_weak_eq(&s1, &s2));
	struct etag t;
	CHECK(etag_parse(sv_from_cstr("1"), &t) < 0);
	CHECK(etag_parse(sv_from_cstr("\""), &t) < 0);
	CHECK(etag_parse(sv_from_cstr("\"a\"b\""), &t) < 0);
	CHECK(etag_parse(sv_from_cstr("w/\"a\""), &t) < 0);
	CHECK(etag_parse(sv_from_cstr("W/"), &t) < 0);
	CHECK(etag_parse(sv_from_cstr("\"a b\""), &t) < 0);
	CHECK(etag_parse(sv_from_cstr("\"\""), &t) == 0);
}

TEST(s4_3_2_client_conditionals_answered_from_cache)
{
	char lm[64], ims_new[64], ims_old[64];
	date_line(lm, "Last-Modified", NOW - 100);
	date_line(ims_new, "If-Modified-Since", NOW - 50);
	date_line(ims_old, "If-Modified-Since", NOW - 150);
	struct hl st = HL("ETag: \"v1\"", lm);
	struct sv get = sv_from_cstr("GET");
#define NM(req) policy_not_modified(get, (req).h, (req).n, st.h, st.n, NOW)
	struct hl r1 = HL("If-None-Match: \"v0\", W/\"v1\""), r2 = HL("If-None-Match: \"v2\"");
	struct hl r3 = HL("If-None-Match: *"), r4 = HL(ims_new), r5 = HL(ims_old);
	struct hl r6 = HL("If-None-Match: \"v2\"", ims_new), r7 = HL("If-Modified-Since: never");
	CHECK(NM(r1)); /* weak comparison */
	CHECK(!NM(r2));
	CHECK(NM(r3));
	CHECK(NM(r4));
	CHECK(!NM(r5));
	CHECK(!NM(r6)); /* If-None-Match takes precedence (RFC 9110 §13.2.2) */
	CHECK(!NM(r7));
	/* ... even a malformed one: If-Modified-Since is then ignored too
	 * (RFC 9110 §13.1.3), and no 304 comes of it. */
	struct hl r8 = HL("If-None-Match: v1", ims_new);
	CHECK(!NM(r8));
	CHECK(!policy_not_modified(sv_from_cstr("POST"), r4.h, r4.n, st.h, st.n, NOW));
#undef NM
	CHECK(policy_has_other_conditional(HL("If-Match: \"x\"").h, 1));
	CHECK(!policy_has_other_conditional(r1.h, r1.n));
}

TEST(s3_1_hop_by_hop_fields_are_not_stored)
{
	struct hl msg = HL("Connection: close, X-Secret", "X-Secret: 1", "Keep-Alive: 5");
	CHECK(policy_field_hop(sv_from_cstr("Connection"), msg.h, msg.n));
	CHECK(policy_field_hop(sv_from_cstr("keep-alive"), msg.h, msg.n));
	CHECK(policy_field_hop(sv_from_cstr("x-secret"), msg.h, msg.n));
	CHECK(policy_field_hop(sv_from_cstr("Transfer-Encoding"), NULL, 0));
	CHECK(!policy_field_hop(sv_from_cstr("ETag"), msg.h, msg.n));
}

TEST(s3_2_304_updates_stored_fields_but_not_framing)
{
	struct hl st = HL("Content-Type: text/plain", "ETag: \"1\"", "X-A: old1", "X-A: old2",
			  "Content-Length: 5", "Cache-Control: max-age=1");
	struct hl upd = HL("Cache-Control: max-age=100", "X-A: new", "Content-Length: 0",
			   "Connection: x-hop", "X-Hop: 1", "X-New: n", "Content-Encoding: gzip");
	struct h1_header out[MAXH];
	int n = policy_merge_304(st.h, st.n, upd.h, upd.n, out, MAXH);
	CHECK_INT(n, 6);
	if (n != 6)
		return;
	CHECK_SV(out[0].value, "text/plain");
	CHECK_SV(out[1].value, "\"1\"");
	CHECK_SV(out[2].name, "X-A");
	CHECK_SV(out[2].value, "new");
	CHECK_SV(out[3].value, "5"); /* Content-Length stays */
	CHECK_SV(out[4].value, "max-age=100");
	CHECK_SV(out[5].name, "X-New");
	CHECK_INT(policy_merge_304(st.h, st.n, upd.h, upd.n, out, 5), -1);
}

TEST(rfc9110_5_6_7_dates_before_1970_are_dates_each_their_own)
{
	/* An If-Range of 1960 is not a stored Last-Modified of 1965, nor is
	 * a 304's; the same date is. */
	struct hl st = HL("Last-Modified: Fri, 01 Jan 1965 00:00:00 GMT",
			  "Date: Tue, 01 Dec 2026 10:00:00 GMT");
	struct hl rq = HL("Range: bytes=0-1", "If-Range: Fri, 01 Jan 1960 00:00:00 GMT");
	CHECK(!policy_if_range(rq.h, rq.n, st.h, st.n, NOW));
	struct hl rq2 = HL("Range: bytes=0-1", "If-Range: Fri, 01 Jan 1965 00:00:00 GMT");
	CHECK(policy_if_range(rq2.h, rq2.n, st.h, st.n, NOW));
	struct hl up = HL("Last-Modified: Fri, 01 Jan 1960 00:00:00 GMT");
	CHECK(!policy_304_matches(st.h, st.n, up.h, up.n, NOW));
	struct hl ims = HL("If-Modified-Since: Fri, 01 Jan 1960 00:00:00 GMT");
	CHECK(!policy_not_modified(sv_from_cstr("GET"), ims.h, ims.n, st.h, st.n, NOW));
}

TEST(s4_3_4_a_304_updates_only_the_stored_response_its_validator_names)
{
	struct hl strong = HL("ETag: \"a\"", "Last-Modified: Tue, 01 Dec 2026 10:00:00 GMT");
	struct hl weak = HL("ETag: W/\"a\"");
	struct hl lmonly = HL("Last-Modified: Tue, 01 Dec 2026 10:00:00 GMT");
#define M(st, ...) policy_304_matches((st).h, (st).n, HL(__VA_ARGS__).h, HL(__VA_ARGS__).n, NOW)
	CHECK(M(strong, "ETag: \"a\""));
	CHECK(!M(strong, "ETag: \"b\"")); /* MUST NOT update (§4.3.4) */
	CHECK(!M(weak, "ETag: \"a\""));	  /* a strong one needs a strong match */
	CHECK(M(weak, "ETag: W/\"a\""));
	CHECK(M(strong, "ETag: W/\"a\"")); /* a weak one matches weakly */
	CHECK(!M(lmonly, "ETag: \"a\""));
	CHECK(!M(strong, "ETag: nonsense"));
	CHECK(M(lmonly, "Last-Modified: Tue, 01 Dec 2026 10:00:00 GMT"));
	CHECK(!M(lmonly, "Last-Modified: Tue, 01 Dec 2026 10:00:01 GMT"));
	CHECK(M(lmonly, "Cache-Control: max-age=5")); /* no validator: the one asked about */
#undef M
}

TEST(s4_3_5_a_head_200_freshens_only_the_stored_response_it_matches)
{
	struct hl st = HL("ETag: \"a1\"", "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT",
			  "Content-Length: 5", "Cache-Control: max-age=1");
	int64_t now = 800000000;
	struct hl same = HL("ETag: \"a1\"", "Content-Length: 5", "Cache-Control: max-age=60");
	CHECK(policy_head_freshens(200, st.h, st.n, 5, same.h, same.n, now));
	struct hl lm = HL("Last-Modified: Sunday, 06-Nov-94 08:49:37 GMT");
	CHECK(policy_head_freshens(200, st.h, st.n, 5, lm.h, lm.n, now)); /* the same date */
	/* Every validator received must match. */
	struct hl other = HL("ETag: \"a2\"", "Content-Length: 5");
	CHECK(!policy_head_freshens(200, st.h, st.n, 5, other.h, other.n, now));
	struct hl weak = HL("ETag: W/\"a1\"");
	CHECK(!policy_head_freshens(200, st.h, st.n, 5, weak.h, weak.n, now));
	struct hl later = HL("ETag: \"a1\"", "Last-Modified: Mon, 07 Nov 1994 08:49:37 GMT");
	CHECK(!policy_head_freshens(200, st.h, st.n, 5, later.h, later.n, now));
	struct hl noetag = HL("Content-Length: 5");
	CHECK(!policy_head_freshens(200, noetag.h, noetag.n, 5, same.h, same.n, now));
	CHECK(!policy_head_freshens(200, noetag.h, noetag.n, 5, lm.h, lm.n, now));
	struct hl wst = HL("ETag: W/\"a1\"");
	CHECK(policy_head_freshens(200, wst.h, wst.n, 5, weak.h, weak.n, now));
	/* A malformed validator matches nothing. */
	struct hl badlm = HL("Last-Modified: yesterday");
	CHECK(!policy_head_freshens(200, st.h, st.n, 5, badlm.h, badlm.n, now));
	struct hl badcl = HL("ETag: \"a1\"", "Content-Length: five");
	CHECK(!policy_head_freshens(200, st.h, st.n, 5, badcl.h, badcl.n, now));
	/* And its Content-Length, if it has one. */
	struct hl longer = HL("ETag: \"a1\"", "Content-Length: 6");
	CHECK(!policy_head_freshens(200, st.h, st.n, 5, longer.h, longer.n, now));
	/* No validator received: nothing to disagree with, only the length
	 * (the case the section is for: a stored response without any). */
	struct hl bare = HL("Content-Length: 5", "Cache-Control: max-age=60");
	CHECK(policy_head_freshens(200, noetag.h, noetag.n, 5, bare.h, bare.n, now));
	CHECK(!policy_head_freshens(200, noetag.h, noetag.n, 4, bare.h, bare.n, now));
	/* A 200 does not vouch for a stored 404. */
	CHECK(!policy_head_freshens(404, st.h, st.n, 5, same.h, same.n, now));
}

TEST(s4_4_unsafe_methods_with_non_error_status_invalidate)
{
	CHECK(policy_method_unsafe(sv_from_cstr("POST")));
	CHECK(policy_method_unsafe(sv_from_cstr("DELETE")));
	CHECK(policy_method_unsafe(sv_from_cstr("FROB"))); /* unknown methods too */
	CHECK(!policy_method_unsafe(sv_from_cstr("GET")));
	CHECK(!policy_method_unsafe(sv_from_cstr("HEAD")));
	CHECK(!policy_method_unsafe(sv_from_cstr("OPTIONS")));
	CHECK(policy_status_invalidates(200));
	CHECK(policy_status_invalidates(303));
	CHECK(!policy_status_invalidates(404));
	CHECK(!policy_status_invalidates(500));
}

TEST(s4_4_location_and_content_location_of_the_same_origin)
{
	struct sv host = sv_from_cstr("example.com"), p;
#define INV(v) policy_invalidation_path(sv_from_cstr(v), host, 80, &p)
	CHECK(INV("/a/b?c#frag") == 0);
	CHECK_SV(p, "/a/b?c");
	CHECK(INV("http://EXAMPLE.com/x") == 0);
	CHECK_SV(p, "/x");
	CHECK(INV("http://example.com:80") == 0);
	CHECK_SV(p, "/");
	CHECK(INV("http://example.com:8080/x") < 0); /* another origin */
	CHECK(INV("http://other.example/x") < 0);
	CHECK(INV("https://example.com/x") < 0);
	CHECK(INV("//example.com/x") < 0);
	CHECK(INV("x/y") < 0); /* relative path: not resolved */
	CHECK(INV("/a b") < 0);
	CHECK(INV("") < 0);
#undef INV
}

TEST(s4_1_vary_secondary_key_normalised)
{
	char a[256], b[256];
	struct hl resp = HL("Vary: Accept-Encoding", "vary: ACCEPT-language");
	struct hl r1 = HL("Accept-Encoding: gzip, br", "Accept-Language: en");
	struct hl r2 = HL("accept-encoding: gzip,br", "Accept-Language: en");
	struct hl r3 = HL("Accept-Encoding: gzip", "Accept-Encoding: br", "Accept-Language: en");
	struct hl r4 = HL("Accept-Encoding: br, gzip", "Accept-Language: en");
	struct hl r5 = HL("Accept-Encoding: gzip, br");
	struct hl r6 = HL("Accept-Encoding: gzip, br", "Accept-Language:");
	long n1 = policy_vary_key(resp.h, resp.n, r1.h, r1.n, a, sizeof(a));
	CHECK(n1 > 0);
	CHECK_MEM(a, (size_t)n1, "accept-encoding:gzip,br\naccept-language:en\n");
	long n2 = policy_vary_key(resp.h, resp.n, r2.h, r2.n, b, sizeof(b));
	CHECK(n1 == n2 && memcmp(a, b, (size_t)n1) == 0);
	n2 = policy_vary_key(resp.h, resp.n, r3.h, r3.n, b, sizeof(b));
	CHECK(n1 == n2 && memcmp(a, b, (size_t)n1) == 0); /* lines combined */
	n2 = policy_vary_key(resp.h, resp.n, r4.h, r4.n, b, sizeof(b));
	CHECK(n1 != n2 || memcmp(a, b, (size_t)n1) != 0); /* order matters */
	n1 = policy_vary_key(resp.h, resp.n, r5.h, r5.n, a, sizeof(a));
	n2 = policy_vary_key(resp.h, resp.n, r6.h, r6.n, b, sizeof(b));
	CHECK(n1 > 0 && n2 > 0 &&
	      (n1 != n2 || memcmp(a, b, (size_t)n1) != 0)); /* absent != empty */
	struct hl star = HL("Vary: Accept, *");
	CHECK_INT(policy_vary_key(star.h, star.n, r1.h, r1.n, a, sizeof(a)), -1);
	struct hl junk = HL("Vary: Accept, a b");
	CHECK_INT(policy_vary_key(junk.h, junk.n, r1.h, r1.n, a, sizeof(a)), -1);
	CHECK_INT(policy_vary_key(resp.h, resp.n, r1.h, r1.n, a, 10), -2);
	CHECK_INT(policy_vary_key(NULL, 0, r1.h, r1.n, a, sizeof(a)), 0);
}

int main(void)
{
	RUN(s5_2_directives_case_insensitive_token_or_quoted);
	RUN(s5_2_2_4_qualified_no_cache_and_private_treated_as_unqualified);
	RUN(s1_2_2_delta_seconds_overflow_is_2_to_the_31);
	RUN(s4_2_1_malformed_or_conflicting_freshness_means_stale);
	RUN(s3_storable_status_method_and_directives);
	RUN(s5_2_2_3_must_understand_overrides_no_store_for_understood_codes);
	RUN(s3_5_authorization_needs_public_must_revalidate_or_s_maxage);
	RUN(s4_2_1_lifetime_s_maxage_then_max_age_then_expires);
	RUN(s5_3_invalid_expires_means_already_expired);
	RUN(s4_2_2_heuristic_only_without_explicit_time_and_when_allowed);
	RUN(s4_2_3_age_calculation);
	RUN(s4_2_fresh_stale_and_request_directives);
	RUN(s5_2_2_4_response_no_cache_always_validates);
	RUN(s4_2_4_must_revalidate_proxy_revalidate_s_maxage_forbid_stale);
	RUN(rfc5861_3_stale_while_revalidate_window);
	RUN(rfc5861_4_stale_if_error_window_from_response_or_request);
	RUN(rfc9110_8_8_3_2_strong_and_weak_comparison);
	RUN(s4_3_2_client_conditionals_answered_from_cache);
	RUN(s3_1_hop_by_hop_fields_are_not_stored);
	RUN(s3_2_304_updates_stored_fields_but_not_framing);
	RUN(rfc9110_5_6_7_dates_before_1970_are_dates_each_their_own);
	RUN(s4_3_4_a_304_updates_only_the_stored_response_its_validator_names);
	RUN(s4_3_5_a_head_200_freshens_only_the_stored_response_it_matches);
	RUN(s4_4_unsafe_methods_with_non_error_status_invalidate);
	RUN(s4_4_location_and_content_location_of_the_same_origin);
	RUN(s4_1_vary_secondary_key_normalised);
	return unit_done();
}

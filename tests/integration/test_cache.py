"""The shared cache in forward mode: what is stored, what is served from it,
and what every answer says about it (Age, Cache-Status, the origin's count)."""
import hashlib
import socket
import os
import threading
import time

from lib import asserts as A
from lib.client import ConnClosed, build_request
from lib.origin import CLOSE
from lib.util import wait_until


def counting(headers=(), body=b"body"):
    """A handler answering 200 with `headers` and a body naming the request
    count, so a cached answer is told apart from a fresh one."""
    def h(req, c):
        n = len(c.origin.requests)
        data = body + b" #%d" % n
        c.respond(200, data if req.method != "HEAD" else b"", list(headers) +
                  ([("Content-Length", str(len(data)))] if req.method == "HEAD" else []))
    return h


def cs(r):
    return r.header("Cache-Status") or ""


def test_cache001_fresh_response_served_from_cache(t):
    p = t.sluice()
    o = t.origin(counting([("Cache-Control", "max-age=60"), ("Content-Type", "text/plain")]))
    r1 = t.get(p, o.url("/a"))
    A.status(r1, 200)
    A.eq(r1.body, b"body #1", "first body")
    A.contains(cs(r1), "fwd=uri-miss", "first Cache-Status")
    A.contains(cs(r1), "stored", "first Cache-Status")
    r2 = t.get(p, o.url("/a"))
    A.status(r2, 200)
    A.eq(r2.body, b"body #1", "second body comes from cache")
    A.contains(cs(r2), "; hit", "second Cache-Status")
    A.eq(r2.header("Content-Type"), "text/plain", "stored Content-Type")
    age = r2.header("Age")
    if age is None or not age.isdigit() or int(age) > 5:
        raise AssertionError(f"Age on a hit: {age!r}")
    A.eq(len(o.requests), 1, "requests at origin")


def test_cache002_no_store_private_and_unfresh_not_stored(t):
    p = t.sluice()
    for cc, why in (("no-store", "response no-store"), ("private, max-age=60", "response private")):
        o = t.origin(counting([("Cache-Control", cc)]))
        r1 = t.get(p, o.url("/x"))
        A.contains(cs(r1), why, f"Cache-Status for {cc}")
        r2 = t.get(p, o.url("/x"))
        A.eq(r2.body, b"body #2", f"second answer for {cc} comes from the origin")
        A.eq(len(o.requests), 2, f"requests at origin for {cc}")
    # No freshness information at all: nothing to serve later.
    o = t.origin(counting())
    A.contains(cs(t.get(p, o.url("/plain"))), "stale on arrival", "Cache-Status")
    t.get(p, o.url("/plain"))
    A.eq(len(o.requests), 2, "requests at origin without freshness")


def test_cache003_vary_keeps_one_variant_per_header_value(t):
    p = t.sluice()

    def h(req, c):
        enc = req.header("Accept-Encoding") or "none"
        c.respond(200, f"{enc} #{len(c.origin.requests)}".encode(),
                  [("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")])
    o = t.origin(h)
    gz = [("Accept-Encoding", "gzip")]
    A.eq(t.get(p, o.url("/v"), gz).body, b"gzip #1", "gzip, first")
    A.eq(t.get(p, o.url("/v")).body, b"none #2", "no Accept-Encoding, first")
    A.eq(t.get(p, o.url("/v"), [("Accept-Encoding", "gzip")]).body, b"gzip #1",
         "gzip again: cached variant")
    A.eq(t.get(p, o.url("/v")).body, b"none #2", "none again: cached variant")
    A.eq(t.get(p, o.url("/v"), [("Accept-Encoding", "br")]).body, b"br #3", "br: a miss")
    A.eq(len(o.requests), 3, "requests at origin")


def test_cache004_head_answered_from_a_stored_get(t):
    p = t.sluice()
    o = t.origin(counting([("Cache-Control", "max-age=60")]))
    A.status(t.get(p, o.url("/h")), 200)
    r = t.get(p, o.url("/h"), method="HEAD")
    A.status(r, 200)
    A.eq(r.body, b"", "HEAD has no body")
    A.eq(r.header("Content-Length"), str(len(b"body #1")), "Content-Length of the stored GET")
    A.contains(cs(r), "; hit", "Cache-Status")
    A.eq([q.method for q in o.requests], ["GET"], "origin saw only the GET")


def test_cache005_request_directives_bypass_the_stored_response(t):
    p = t.sluice()
    o = t.origin(counting([("Cache-Control", "max-age=60")]))
    t.get(p, o.url("/r"))
    for hdrs in ([("Cache-Control", "no-cache")], [("Pragma", "no-cache")]):
        r = t.get(p, o.url("/r"), hdrs)
        A.contains(cs(r), "fwd=request", f"Cache-Status with {hdrs}")
    # max-age=0 refuses only an age above 0 (RFC 9111 §5.2.1.1): a second on.
    # Ages count whole seconds: the copy is stored again and asked for
    # within one second of the clock (tried again if a second began).
    for tries in range(1, 6):
        start = int(time.time())
        t.get(p, o.url("/r"), [("Cache-Control", "no-cache")])
        r = t.get(p, o.url("/r"), [("Cache-Control", "max-age=0")])
        if int(time.time()) == start:
            break
    A.contains(cs(r), "; hit", "max-age=0 at age 0")
    time.sleep(1.1)
    r = t.get(p, o.url("/r"), [("Cache-Control", "max-age=0")])
    A.contains(cs(r), "fwd=request", "max-age=0 at age 1")
    n = len(o.requests)
    A.eq(n, 4 + tries, "requests at origin: each no-cache and the last max-age=0")
    # The last of them was stored again; a plain request hits it.
    r = t.get(p, o.url("/r"))
    A.contains(cs(r), "; hit", "plain request after them")
    A.eq(r.body, b"body #%d" % n, "the newest stored response")
    A.eq(len(o.requests), n, "requests at origin")


def test_cache006_expired_response_goes_back_to_the_origin(t):
    p = t.sluice()
    # Ages are whole seconds: max-age=3 leaves room for a slow (valgrind)
    # second request, and 4.2 s later the age is past it for certain.
    o = t.origin(counting([("Cache-Control", "max-age=3")]))
    t.get(p, o.url("/e"))
    A.contains(cs(t.get(p, o.url("/e"))), "; hit", "within its lifetime")
    time.sleep(4.2)
    r = t.get(p, o.url("/e"))
    A.contains(cs(r), "fwd=stale", "after expiry")
    A.eq(r.body, b"body #2", "fresh body")
    A.eq(len(o.requests), 2, "requests at origin")


def test_cache007_only_if_cached(t):
    p = t.sluice()
    o = t.origin(counting([("Cache-Control", "max-age=60")]))
    oic = [("Cache-Control", "only-if-cached")]
    A.status(t.get(p, o.url("/o"), oic), 504)
    A.eq(len(o.requests), 0, "a miss with only-if-cached does not reach the origin")
    t.get(p, o.url("/o"))
    r = t.get(p, o.url("/o"), oic)
    A.status(r, 200)
    A.eq(r.body, b"body #1", "hit with only-if-cached")


def test_cache008_unsafe_method_invalidates(t):
    p = t.sluice()

    def h(req, c):
        if req.method == "POST":
            c.respond(303, b"", [("Location", "/other")])
        else:
            c.respond(200, f"{req.target} #{len(c.origin.requests)}".encode(),
                      [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    t.get(p, o.url("/page"))
    t.get(p, o.url("/other"))
    A.contains(cs(t.get(p, o.url("/page"))), "; hit", "page before the POST")
    A.status(t.get(p, o.url("/page"), method="POST", body=b"x=1"), 303)
    r = t.get(p, o.url("/page"))
    A.eq(r.body, b"/page #4", "page after the POST comes from the origin")
    r = t.get(p, o.url("/other"))
    A.eq(r.body, b"/other #5", "the Location target was invalidated too")


def test_cache009_client_conditional_answered_with_304(t):
    p = t.sluice()
    o = t.origin(counting([("Cache-Control", "max-age=60"), ("ETag", '"v1"')]))
    t.get(p, o.url("/c"))
    r = t.get(p, o.url("/c"), [("If-None-Match", 'W/"v1"')])
    A.status(r, 304)
    A.eq(r.body, b"", "304 has no body")
    A.eq(r.header("ETag"), '"v1"', "ETag on the 304")
    r = t.get(p, o.url("/c"), [("If-None-Match", '"v0"')])
    A.status(r, 200)
    A.eq(r.body, b"body #1", "non-matching tag: the stored body")
    A.eq(len(o.requests), 1, "requests at origin")


def test_cache010_authorization_needs_public(t):
    p = t.sluice()
    auth = [("Authorization", "Basic dTpw")]
    o = t.origin(counting([("Cache-Control", "max-age=60")]))
    A.contains(cs(t.get(p, o.url("/s"), auth)), "Authorization", "Cache-Status")
    t.get(p, o.url("/s"))
    A.eq(len(o.requests), 2, "an authorised answer was not shared")
    o2 = t.origin(counting([("Cache-Control", "public, max-age=60")]))
    t.get(p, o2.url("/s"), auth)
    A.contains(cs(t.get(p, o2.url("/s"))), "; hit", "public answer is shared")


def test_cache011_large_bodies_and_cache_max_object(t):
    p = t.sluice("cache_max_object 300K\n")
    big = bytes(range(256)) * 1000  # 256,000 bytes: several chunks
    o = t.origin(lambda req, c: c.respond(200, big, [("Cache-Control", "max-age=60")]))
    t.get(p, o.url("/big"))
    r = t.get(p, o.url("/big"), timeout=10)
    A.contains(cs(r), "; hit", "Cache-Status")
    A.eq(len(r.body), len(big), "length of the cached body")
    A.eq(r.body == big, True, "cached body intact")
    huge = big * 2
    o2 = t.origin(lambda req, c: c.respond(200, huge, [("Cache-Control", "max-age=60")]))
    r = t.get(p, o2.url("/huge"), timeout=10)
    A.contains(cs(r), "larger than cache_max_object", "Cache-Status")
    A.eq(r.body == huge, True, "body passed through")
    t.get(p, o2.url("/huge"), timeout=10)
    A.eq(len(o2.requests), 2, "too large: not stored")


def test_cache012_cache_off(t):
    p = t.sluice("cache off\n")
    o = t.origin(counting([("Cache-Control", "max-age=60")]))
    r1 = t.get(p, o.url("/a"))
    r2 = t.get(p, o.url("/a"))
    A.eq(r2.body, b"body #2", "second answer from the origin")
    A.eq(r1.header("Cache-Status"), None, "no Cache-Status with the cache off")
    A.eq(len(o.requests), 2, "requests at origin")


def test_cache013_body_cut_short_is_not_stored(t):
    p = t.sluice()

    def h(req, c):
        if len(c.origin.requests) == 1:
            c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                   b"Content-Length: 100\r\n\r\n" + b"x" * 50)
            return "close"
        c.respond(200, b"y" * 100, [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    c = t.client(p)
    c.send(build_request("GET", o.url("/cut")))
    r = c.read_response()
    A.eq(r.complete, False, "the client sees an incomplete response")
    r = t.get(p, o.url("/cut"))
    A.eq(r.body, b"y" * 100, "next request goes to the origin")
    A.contains(cs(t.get(p, o.url("/cut"))), "; hit", "the whole one was stored")
    A.eq(len(o.requests), 2, "requests at origin")


def test_cache014_stored_error_is_not_turned_into_304(t):
    p = t.sluice()
    o = t.origin(lambda req, c: c.respond(404, b"gone", [("Cache-Control", "max-age=60")]))
    A.status(t.get(p, o.url("/missing")), 404)
    r = t.get(p, o.url("/missing"), [("If-None-Match", "*")])
    A.status(r, 404)
    A.contains(cs(r), "; hit", "Cache-Status")
    A.eq(r.body, b"gone", "stored body")


def test_cache015_hit_keeps_content_length_named_in_connection(t):
    p = t.sluice()
    o = t.origin(lambda req, c: c.respond(200, b"12345", [("Cache-Control", "max-age=60"),
                                                         ("Connection", "Content-Length")]))
    t.get(p, o.url("/cl"))
    c = t.client(p)
    for i in range(2):  # two hits on one connection: the framing must hold
        c.send(build_request("GET", o.url("/cl")))
        r = c.read_response()
        A.eq(r.header("Content-Length"), "5", f"Content-Length on hit {i}")
        A.eq(r.body, b"12345", f"body of hit {i}")


def test_cache016_range_answers_and_cookies_are_not_stored(t):
    p = t.sluice()

    def h(req, c):
        n = len(c.origin.requests)
        if req.header("Range"):
            c.respond(416, b"", [("Cache-Control", "max-age=60")])
        elif req.target == "/cookie":
            c.respond(200, b"c%d" % n, [("Cache-Control", "max-age=60"),
                                         ("Set-Cookie", f"session={n}")])
        else:
            c.respond(200, b"r%d" % n, [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    A.status(t.get(p, o.url("/r"), [("Range", "bytes=99999-")]), 416)
    r = t.get(p, o.url("/r"))
    A.status(r, 200)
    A.eq(r.body, b"r2", "the plain GET is not answered with the stored 416")
    r = t.get(p, o.url("/cookie"))
    A.contains(cs(r), "sets a cookie", "Cache-Status")
    r = t.get(p, o.url("/cookie"))
    A.eq(r.header("Set-Cookie"), "session=4", "the second client gets its own cookie")


def test_cache017_purge_only_from_allowed_clients(t):
    p = t.sluice()
    o = t.origin(counting([("Cache-Control", "max-age=60")]))
    t.get(p, o.url("/p"))
    r = t.get(p, o.url("/p"), method="PURGE")
    A.proxy_error(r, 403)
    A.contains(r.body.decode(), "cache_purge_allow", "the reason names the directive")
    A.contains(cs(t.get(p, o.url("/p"))), "; hit", "still cached after a refused PURGE")
    A.eq([q.method for q in o.requests], ["GET"], "PURGE is never forwarded")


def test_cache018_purge_drops_every_variant(t):
    p = t.sluice("cache_purge_allow 127.0.0.1 ::1\n")

    def h(req, c):
        enc = req.header("Accept-Encoding") or "none"
        c.respond(200, f"{enc} #{len(c.origin.requests)}".encode(),
                  [("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")])
    o = t.origin(h)
    t.get(p, o.url("/v"), [("Accept-Encoding", "gzip")])
    t.get(p, o.url("/v"))
    r = t.get(p, o.url("/v"), method="PURGE")
    A.status(r, 200)
    A.contains(r.body.decode(), "purged 2 stored responses", "PURGE answer")
    A.eq(t.get(p, o.url("/v")).body, b"none #3", "after PURGE: from the origin")
    A.eq(t.get(p, o.url("/v"), [("Accept-Encoding", "gzip")]).body, b"gzip #4",
         "the other variant went too")
    A.status(t.get(p, o.url("/nothing"), method="PURGE"), 404)


def validating(etag_of):
    """A handler with validators: 304 when the request's If-None-Match names
    the current tag, else 200 with a body naming the request count."""
    def h(req, c):
        n = len(c.origin.requests)
        tag = etag_of(n)
        if req.header("If-None-Match") == tag:
            c.send(b"HTTP/1.1 304 Not Modified\r\nETag: " + tag.encode() +
                   b"\r\nCache-Control: no-cache\r\nX-Validated: %d\r\n\r\n" % n)
            return None
        c.respond(200, b"v #%d" % n, [("ETag", tag), ("Cache-Control", "no-cache")])
    return h


def test_cache019_stale_response_revalidated_with_the_origin(t):
    p = t.sluice()
    o = t.origin(validating(lambda n: '"v1"'))
    r1 = t.get(p, o.url("/rv"))
    A.eq(r1.body, b"v #1", "first body")
    r2 = t.get(p, o.url("/rv"))
    A.status(r2, 200)
    A.eq(r2.body, b"v #1", "the stored body, validated")
    A.contains(cs(r2), "fwd=stale; fwd-status=304", "Cache-Status")
    A.eq(r2.header("X-Validated"), "2", "a field of the 304 is merged in")
    A.eq(o.requests[1].header("If-None-Match"), '"v1"', "the origin got a conditional")
    r3 = t.get(p, o.url("/rv"), method="HEAD")
    A.status(r3, 200)
    A.eq(r3.body, b"", "HEAD validated too")
    A.eq(len(o.requests), 3, "no-cache: every use is validated")


def test_cache020_changed_response_replaces_the_stored_one(t):
    p = t.sluice()
    o = t.origin(validating(lambda n: f'"v{n}"'))  # a new tag every time
    t.get(p, o.url("/ch"))
    r = t.get(p, o.url("/ch"))
    A.eq(r.body, b"v #2", "the new body")
    A.contains(cs(r), "fwd=stale; fwd-status=200; stored", "Cache-Status")
    t.get(p, o.url("/ch"))
    A.eq(o.requests[2].header("If-None-Match"), '"v2"', "validated against the new one")


def test_cache021_client_conditional_on_a_stale_entry_goes_through(t):
    p = t.sluice()
    o = t.origin(validating(lambda n: '"v1"'))
    t.get(p, o.url("/cc"))
    r = t.get(p, o.url("/cc"), [("If-None-Match", '"v1"')])
    A.status(r, 304)
    A.eq(o.requests[1].header("If-None-Match"), '"v1"', "the client's own conditional")
    r = t.get(p, o.url("/cc"))
    A.eq(r.body, b"v #1", "the stored response is still there")


def test_cache022_refresh_that_sets_a_cookie_is_not_kept(t):
    """A 304 that brings Set-Cookie (or private) makes the refreshed copy
    unstorable: this client gets it, with its cookie; nobody else does."""
    p = t.sluice()

    def h(req, c):
        n = len(c.origin.requests)
        if req.header("If-None-Match") == '"v1"':
            c.send(b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nSet-Cookie: s=%d\r\n\r\n' % n)
            return None
        c.respond(200, b"v #%d" % n, [("ETag", '"v1"'), ("Cache-Control", "no-cache")])
    o = t.origin(h)
    t.get(p, o.url("/ck"))
    r = t.get(p, o.url("/ck"))
    A.eq(r.body, b"v #1", "the validated body")
    A.eq(r.header("Set-Cookie"), "s=2", "this client's cookie")
    A.not_contains(cs(r), "stored", "Cache-Status")
    r = t.get(p, o.url("/ck"))
    A.eq(r.header("Set-Cookie"), None, "the next client gets no one's cookie")
    A.eq(r.body, b"v #3", "and a fresh answer: nothing was kept")


def test_cache023_refresh_takes_the_304s_age_not_the_old_one(t):
    p = t.sluice()

    def h(req, c):
        if req.header("If-None-Match") == '"a"':
            c.send(b'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\n'
                   b'Cache-Control: max-age=100\r\n\r\n')
            return None
        c.respond(200, b"aged", [("ETag", '"a"'), ("Age", "5000"),
                                  ("Cache-Control", "max-age=100")])
    o = t.origin(h)
    t.get(p, o.url("/age"))            # stored already stale (Age 5000 > 100)
    t.get(p, o.url("/age"))            # revalidated: 304, no Age
    r = t.get(p, o.url("/age"))
    A.contains(cs(r), "; hit", "fresh after the refresh")
    A.eq(len(o.requests), 2, "requests at origin")


def test_cache024_vary_is_judged_on_what_the_origin_got(t):
    """A field the client named in Connection is not forwarded, so the
    origin's answer is for "no Accept-Language": it must not be filed under
    the client's value and served to real French requests."""
    p = t.sluice()

    def h(req, c):
        lang = req.header("Accept-Language") or "en"
        c.respond(200, lang.encode(), [("Cache-Control", "max-age=60"),
                                       ("Vary", "Accept-Language")])
    o = t.origin(h)
    r = t.get(p, o.url("/l"), [("Connection", "accept-language"), ("Accept-Language", "fr")])
    A.eq(r.body, b"en", "the origin saw no Accept-Language")
    r = t.get(p, o.url("/l"), [("Accept-Language", "fr")])
    A.eq(r.body, b"fr", "a French request is not served the English copy")
    r = t.get(p, o.url("/l"))
    A.eq(r.body, b"en", "a request without the field gets the stored one")
    A.contains(cs(r), "; hit", "Cache-Status")


def test_cache025_stale_if_error_serves_stale_when_origin_fails(t):
    p = t.sluice()
    state = {"fail": 0}

    def h(req, c):
        if state["fail"]:
            c.respond(state["fail"], b"origin broken")
            return None
        c.respond(200, b"good copy", [("Cache-Control", "max-age=1, stale-if-error=60"),
                                       ("ETag", '"g"')])
    o = t.origin(h)
    A.eq(t.get(p, o.url("/sie")).body, b"good copy", "stored")
    time.sleep(2.1)  # now stale
    for code in (500, 503, 504):
        state["fail"] = code
        r = t.get(p, o.url("/sie"))
        A.status(r, 200)
        A.eq(r.body, b"good copy", f"stale copy instead of the origin's {code}")
        A.contains(cs(r), f"fwd=stale; fwd-status={code}", "Cache-Status")
        A.contains(cs(r), 'detail="stale-if-error"', "Cache-Status")
    state["fail"] = 404  # not an error the stale copy may hide
    A.status(t.get(p, o.url("/sie")), 404)
    # The origin gone altogether: no answer at all.
    state["fail"] = 0
    A.eq(t.get(p, o.url("/sie2")).body, b"good copy", "another URL stored")
    time.sleep(2.1)
    o.stop()
    r = t.get(p, o.url("/sie2"))
    A.status(r, 200)
    A.eq(r.body, b"good copy", "stale copy with the origin down")
    A.not_contains(cs(r), "fwd-status", "no origin status when there was no answer")
    p.wait_log(lambda l: "TCP_REFRESH_FAIL_OLD/200" in l and "/sie2 " in l,
               what="access log line tagged TCP_REFRESH_FAIL_OLD for /sie2")


def test_cache026_stale_if_error_only_where_allowed(t):
    p = t.sluice()
    state = {"fail": False}

    def h(req, c):
        if state["fail"]:
            c.respond(503, b"down")
            return None
        cc = {"/plain": "max-age=1", "/mr": "max-age=1, stale-if-error=60, must-revalidate",
              "/short": "max-age=1, stale-if-error=1"}[req.target]
        c.respond(200, b"copy", [("Cache-Control", cc)])
    o = t.origin(h)
    for path in ("/plain", "/mr", "/short"):
        t.get(p, o.url(path))
    time.sleep(3.1)  # stale by 2 s: past /short's stale-if-error window
    state["fail"] = True
    for path in ("/plain", "/mr", "/short"):
        A.status(t.get(p, o.url(path)), 503)
    # The request may allow it when the response did not say.
    r = t.get(p, o.url("/plain"), [("Cache-Control", "stale-if-error=3600")])
    A.status(r, 200)
    A.eq(r.body, b"copy", "request's stale-if-error")


def test_cache027_range_answered_from_a_stored_response(t):
    p = t.sluice()
    body = bytes(range(48, 48 + 64))  # 64 distinct bytes

    def h(req, c):
        c.respond(200, body, [("Cache-Control", "max-age=60"), ("ETag", '"r1"'),
                              ("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT")])
    o = t.origin(h)
    A.eq(t.get(p, o.url("/r")).body, body, "stored")
    for rng, first, last in (("bytes=0-9", 0, 9), ("bytes=60-", 60, 63), ("bytes=-5", 59, 63),
                             ("bytes=10-1000", 10, 63)):
        r = t.get(p, o.url("/r"), [("Range", rng)])
        A.status(r, 206)
        A.eq(r.body, body[first:last + 1], f"bytes for {rng}")
        A.eq(r.header("Content-Range"), f"bytes {first}-{last}/64", f"Content-Range for {rng}")
        A.eq(r.header("Content-Length"), str(last - first + 1), f"Content-Length for {rng}")
        A.contains(cs(r), "; hit", "Cache-Status")
    r = t.get(p, o.url("/r"), [("Range", "bytes=64-")])
    A.proxy_error(r, 416, "range not satisfiable")
    A.eq(r.header("Content-Range"), "bytes */64", "416 Content-Range")
    # Several ranges, or a bad one: the whole representation (RFC 9110 §14.2).
    for rng in ("bytes=0-1,5-6", "bytes=9-3", "lines=1-2"):
        r = t.get(p, o.url("/r"), [("Range", rng)])
        A.status(r, 200)
        A.eq(r.body, body, f"whole body for {rng}")
    # If-Range: the range only if the validator matches.
    r = t.get(p, o.url("/r"), [("Range", "bytes=0-3"), ("If-Range", '"r1"')])
    A.status(r, 206)
    A.eq(r.body, body[:4], "If-Range matching ETag")
    r = t.get(p, o.url("/r"), [("Range", "bytes=0-3"), ("If-Range", '"old"')])
    A.status(r, 200)
    A.eq(r.body, body, "If-Range not matching: whole body")
    r = t.get(p, o.url("/r"), [("Range", "bytes=0-3"),
                               ("If-Range", "Tue, 01 Dec 2026 10:00:00 GMT")])
    A.status(r, 206)
    # A HEAD ignores Range.
    r = t.get(p, o.url("/r"), [("Range", "bytes=0-3")], method="HEAD")
    A.status(r, 200)
    A.eq(len(o.requests), 1, "everything after the first from cache")


def test_cache028_range_on_a_miss_goes_to_the_origin_and_is_not_stored(t):
    p = t.sluice()

    def h(req, c):
        rng = req.header("Range")
        if rng:
            c.send(b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-1/4\r\n"
                   b"Content-Length: 2\r\nCache-Control: max-age=60\r\n\r\nab")
            return None
        c.respond(200, b"abcd", [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    r = t.get(p, o.url("/m"), [("Range", "bytes=0-1")])
    A.status(r, 206)
    A.eq(r.body, b"ab", "origin's 206")
    A.eq(o.requests[0].header("Range"), "bytes=0-1", "Range forwarded")
    r = t.get(p, o.url("/m"))
    A.eq(r.body, b"abcd", "the partial answer was not stored as the whole")
    A.eq(len(o.requests), 2, "requests at origin")


def test_cache029_chunked_and_close_delimited_responses_are_stored(t):
    p = t.sluice()
    big = b"x" * 70000  # spans several reservation steps

    def h(req, c):
        n = len(c.origin.requests)
        if req.target.startswith("/chunked"):
            data = (b"part one, " + big + b" #%d" % n)
            c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" +
                   b"%x\r\n%s\r\n" % (10, data[:10]) +
                   b"%x\r\n%s\r\n" % (len(data) - 10, data[10:]) +
                   b"0\r\nX-Trailer: t\r\n\r\n")
            return None
        c.send(b"HTTP/1.0 200 OK\r\nCache-Control: max-age=60\r\n\r\nuntil close #%d" % n)
        return CLOSE
    o = t.origin(h)
    r1 = t.get(p, o.url("/chunked"))
    A.eq(r1.body, b"part one, " + big + b" #1", "first body")
    A.contains(cs(r1), "stored", "Cache-Status")
    r2 = t.get(p, o.url("/chunked"))
    A.eq(r2.body, r1.body, "hit: the same bytes")
    A.contains(cs(r2), "; hit", "Cache-Status")
    A.eq(r2.header("Transfer-Encoding"), None, "a hit is not chunked")
    A.eq(r2.header("Content-Length"), str(len(r1.body)), "a hit carries its length")
    r1 = t.get(p, o.url("/close"))
    A.eq(r1.body, b"until close #2", "close-delimited body")
    r2 = t.get(p, o.url("/close"))
    A.eq(r2.body, b"until close #2", "close-delimited body from cache")
    A.eq(r2.header("Content-Length"), "14", "with its length")
    A.eq(len(o.requests), 2, "requests at origin")


def test_cache030_unknown_length_past_the_limit_or_cut_is_not_stored(t):
    p = t.sluice("cache_max_object 100K\n")

    def h(req, c):
        n = len(c.origin.requests)
        head = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"
        if req.target == "/big":
            data = b"y" * 150000 + b"#%d" % n
            c.send(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
            return None
        c.send(head + b"10\r\n0123456789abcdef\r\n")  # and then the origin dies
        return CLOSE
    o = t.origin(h)
    r = t.get(p, o.url("/big"))
    A.eq(len(r.body), 150002, "the whole big body reaches the client")
    A.eq(t.get(p, o.url("/big")).body[-2:], b"#2", "not stored: over cache_max_object")
    c = t.client(p)
    c.send(b"GET " + o.url("/cut").encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        c.read_response()
    except AssertionError:
        pass  # the cut is passed on: an incomplete response
    t.get(p, o.url("/big"))
    c = t.client(p)
    c.send(b"GET " + o.url("/cut").encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        c.read_response()
    except AssertionError:
        pass
    A.eq(sum(1 for r in o.requests if r.target == "/cut"), 2, "a cut body was not stored")


def collapsing_origin(t, headers, parts, chunked=False):
    """An origin that holds its first answer until `go` is set, then sends
    the body in `parts` with pauses; every later request is answered at
    once with the request count in the body."""
    go = threading.Event()
    t.defer(go.set)

    def h(req, c):
        n = len(c.origin.requests)
        if n > 1:
            c.respond(200, b"later #%d" % n, headers)
            return None
        go.wait(10)
        body = b"".join(parts)
        if chunked:
            c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" +
                   b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers) +
                   b"\r\n")
            for p in parts:
                c.send(b"%x\r\n%s\r\n" % (len(p), p))
                time.sleep(0.1)
            c.send(b"0\r\n\r\n")
            return None
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body) +
               b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers) + b"\r\n")
        for p in parts:
            c.send(p)
            time.sleep(0.1)
        return None
    return t.origin(h), go


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(d):
    """d as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(d), d)


def start_clients(t, p, url, n, headers=()):
    cs_ = []
    for _ in range(n):
        c = t.client(p, timeout=10)
        c.send(build_request("GET", url, list(headers)))
        cs_.append(c)
    return cs_


def test_cache031_concurrent_misses_collapse_into_one_origin_request(t):
    p = t.sluice()
    parts = [b"a" * 30000, b"b" * 30000, b"c" * 30000]
    o, go = collapsing_origin(t, [("Cache-Control", "max-age=60")], parts)
    first = start_clients(t, p, o.url("/hot"), 1)
    o.wait_requests(1)
    rest = start_clients(t, p, o.url("/hot"), 9)
    time.sleep(0.3)  # all nine are waiting on the first one's fetch
    go.set()
    bodies = [c.read_response() for c in first + rest]
    for r in bodies:
        A.status(r, 200)
        A.eq(r.body, b"".join(parts), "every client gets the whole body")
    A.eq(len(o.requests), 1, "requests at origin")
    collapsed = [r for r in bodies if "collapsed" in cs(r)]
    A.eq(len(collapsed), 9, "nine answers say collapsed")
    A.contains(cs(collapsed[0]), "fwd=uri-miss; fwd-status=200", "Cache-Status")
    A.eq(collapsed[0].header("Content-Length"), "90000", "streamed with its length")
    p.wait_log(lambda l: sum(1 for x in p.access_lines() if "TCP_CF_MISS/200" in x) == 9,
               what="nine TCP_CF_MISS lines")
    A.contains(cs(t.get(p, o.url("/hot"))), "; hit", "then a plain hit")


def test_cache032_uncacheable_answer_releases_the_waiters(t):
    p = t.sluice()
    o, go = collapsing_origin(t, [("Cache-Control", "private")], [b"mine"])
    first = start_clients(t, p, o.url("/priv"), 1)
    o.wait_requests(1)
    rest = start_clients(t, p, o.url("/priv"), 4)
    time.sleep(0.3)
    go.set()
    A.eq(first[0].read_response().body, b"mine", "the first client's own answer")
    later = sorted(c.read_response().body for c in rest)
    A.eq(later, [b"later #%d" % i for i in range(2, 6)], "each waiter asked the origin itself")
    A.eq(len(o.requests), 5, "requests at origin")


def test_cache033_unknown_length_is_streamed_chunked_to_waiters(t):
    p = t.sluice()
    parts = [b"x" * 5000, b"y" * 5000, b"z" * 5000]
    o, go = collapsing_origin(t, [("Cache-Control", "max-age=60")], parts, chunked=True)
    first = start_clients(t, p, o.url("/ch"), 1)
    o.wait_requests(1)
    rest = start_clients(t, p, o.url("/ch"), 3)
    old = t.client(p, timeout=10)  # an HTTP/1.0 client: no chunked for it
    old.send(build_request("GET", o.url("/ch"), version="HTTP/1.0"))
    time.sleep(0.3)
    go.set()
    A.eq(first[0].read_response().body, b"".join(parts), "leader's body")
    for c in rest:
        r = c.read_response()
        A.eq(r.body, b"".join(parts), "waiter's body")
        A.eq(r.header("Transfer-Encoding"), "chunked", "streamed as it came, chunked")
        A.contains(cs(r), "collapsed", "Cache-Status")
    r = old.read_response()
    A.eq(r.body, b"".join(parts), "HTTP/1.0 waiter's body")
    A.eq(r.header("Content-Length"), "15000", "given whole, with its length")
    A.eq(len(o.requests), 1, "requests at origin")


def test_cache034_a_fetch_cut_mid_body_cuts_its_streams_and_is_not_stored(t):
    p = t.sluice()
    go = threading.Event()
    t.defer(go.set)

    def h(req, c):
        n = len(c.origin.requests)
        if n > 1:
            c.respond(200, b"fresh #%d" % n, [("Cache-Control", "max-age=60")])
            return None
        go.wait(10)
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nCache-Control: max-age=60\r\n"
               b"\r\n" + b"z" * 20000)
        time.sleep(0.2)
        return CLOSE
    o = t.origin(h)
    first = start_clients(t, p, o.url("/cut"), 1)
    o.wait_requests(1)
    rest = start_clients(t, p, o.url("/cut"), 3)
    time.sleep(0.3)
    go.set()
    for c in first + rest:
        try:
            r = c.read_response()
        except (AssertionError, OSError):
            continue  # cut while reading: what the client should see
        if len(r.body) >= 100000:
            raise AssertionError(f"a cut body must not look whole: {r!r}")
    p.wait_log(lambda l: sum(1 for x in p.access_lines() if "/cut" in x) == 4,
               what="four access log lines for /cut")
    A.eq(t.get(p, o.url("/cut")).body, b"fresh #2", "nothing was stored")


def held_first_get_origin(t):
    """An origin that answers a POST with "posted" and a GET with "version
    #N" (N: its request count) fresh for a minute, the first GET only once
    `go` is set."""
    go = threading.Event()
    t.defer(go.set)

    def h(req, c):
        n = len(c.origin.requests)
        if req.method == "POST":
            c.respond(200, b"posted")
            return None
        if n == 1:
            go.wait(10)
        c.respond(200, b"version #%d" % n, [("Cache-Control", "max-age=60")])
    return t.origin(h), go


def test_cache036_invalidation_reaches_a_fetch_in_flight(t):
    p = t.sluice()
    o, go = held_first_get_origin(t)
    first = start_clients(t, p, o.url("/doc"), 1)
    o.wait_requests(1)
    A.eq(t.get(p, o.url("/doc"), method="POST", body=b"new").body, b"posted", "POST")
    go.set()
    A.eq(first[0].read_response().body, b"version #1", "the old fetch still answers its client")
    A.eq(t.get(p, o.url("/doc")).body, b"version #3", "but was not stored")


def test_cache037_stale_while_revalidate_answers_stale_and_refreshes_behind(t):
    p = t.sluice()
    state = {"v": 1, "delay": 0.0}

    def h(req, c):
        time.sleep(state["delay"])
        # (Version 2 stays fresh: its second of delay counts in its age.)
        c.respond(200, b"version %d" % state["v"],
                  [("Cache-Control", "max-age=%d, stale-while-revalidate=30" %
                    (1 if state["v"] == 1 else 60)),
                   ("ETag", '"v%d"' % state["v"])])
    o = t.origin(h)
    A.eq(t.get(p, o.url("/swr")).body, b"version 1", "stored")
    time.sleep(2.1)  # stale, within stale-while-revalidate
    state.update(v=2, delay=1.0)
    t0 = time.monotonic()
    r = t.get(p, o.url("/swr"))
    took = time.monotonic() - t0
    A.eq(r.body, b"version 1", "the stale copy, at once")
    A.contains(cs(r), 'detail="stale-while-revalidate"', "Cache-Status")
    if took > 0.8:
        raise AssertionError(f"the stale answer waited for the origin ({took:.2f}s)")
    o.wait_requests(2)
    A.eq(o.requests[1].header("If-None-Match"), '"v1"', "the refresh is conditional")
    wait_until(lambda: t.get(p, o.url("/swr")).body == b"version 2", 5,
               "the refreshed copy to be served")
    r = t.get(p, o.url("/swr"))
    A.contains(cs(r), "; hit", "a plain hit again")
    A.eq(len(o.requests), 2, "requests at origin: the first and one refresh")
    p.wait_log(lambda l: "TCP_STALE_HIT/200" in l, what="TCP_STALE_HIT line")


def test_cache038_one_background_refresh_for_many_stale_hits(t):
    p = t.sluice()
    go = threading.Event()
    t.defer(go.set)

    def h(req, c):
        n = len(c.origin.requests)
        if n > 1:
            go.wait(10)
        c.respond(200, b"copy #%d" % n,
                  [("Cache-Control", "max-age=%d, stale-while-revalidate=60" %
                    (1 if n == 1 else 60))])
    o = t.origin(h)
    t.get(p, o.url("/many"))
    time.sleep(2.1)
    for _ in range(10):
        A.eq(t.get(p, o.url("/many")).body, b"copy #1", "stale while the refresh is held")
    go.set()
    wait_until(lambda: t.get(p, o.url("/many")).body == b"copy #2", 5, "the refreshed copy")
    A.eq(len(o.requests), 2, "one refresh for ten stale hits")


def memfds(p):
    """The memfds sluice holds open (bodies kept for sendfile)."""
    fd_dir = f"/proc/{p.pid}/fd"
    n = 0
    for fd in os.listdir(fd_dir):
        try:
            n += os.readlink(os.path.join(fd_dir, fd)).startswith("/memfd:sluice-body")
        except OSError:
            pass  # closed meanwhile
    return n


def read_bytes(p):
    """Bytes sluice has read through read(), sendfile() and the like
    (/proc/PID/io rchar): a sendfile() counts what it sends, a writev()
    to a socket nothing."""
    with open(f"/proc/{p.pid}/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar")


def hit_reads(t, p, url, want):
    """A hit of url, whole; how many bytes sluice read to send it."""
    before = read_bytes(p)
    r = t.get(p, url)
    A.contains(cs(r), "; hit", "Cache-Status")
    A.eq(r.body == want, True, "the hit carries the very bytes")
    return read_bytes(p) - before


def large_objects(t, conf):
    """A 1 MiB object stored and served whole, in ranges, and streamed to
    collapsed requests while it arrives; the same bytes every time."""
    p = t.sluice(conf + "cache_purge_allow 127.0.0.1\n")
    big = os.urandom(1 << 20)
    go = threading.Event()
    t.defer(go.set)

    def h(req, c):
        if req.target == "/slow":
            go.wait(10)
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nCache-Control: max-age=60\r\n"
                   b"ETag: \"big\"\r\n\r\n" % len(big))
            for i in range(0, len(big), 262144):
                c.send(big[i:i + 262144])
                time.sleep(0.05)
            return None
        c.respond(200, big, [("Cache-Control", "max-age=60"), ("ETag", '"big"')])
    o = t.origin(h)
    A.eq(hashlib.sha256(t.get(p, o.url("/big")).body).hexdigest(),
         hashlib.sha256(big).hexdigest(), "first answer")
    r = t.get(p, o.url("/big"))
    A.contains(cs(r), "; hit", "Cache-Status")
    A.eq(r.body == big, True, "a hit carries the very bytes")
    r = t.get(p, o.url("/big"), [("Range", "bytes=500000-500099")])
    A.status(r, 206)
    A.eq(r.body, big[500000:500100], "a range inside it")
    r = t.get(p, o.url("/big"), [("Range", "bytes=-10")])
    A.eq(r.body, big[-10:], "its last bytes")
    A.eq(len(o.requests), 1, "requests at origin")
    first = start_clients(t, p, o.url("/slow"), 1)
    o.wait_requests(2)
    rest = start_clients(t, p, o.url("/slow"), 3)
    time.sleep(0.3)
    go.set()
    for c in first + rest:
        A.eq(c.read_response().body == big, True, "the slow one, whole, to each client")
    A.eq(len(o.requests), 2, "one origin request for the slow one")
    A.contains(cs(t.get(p, o.url("/slow"))), "; hit", "the slow one is stored")
    return p, o, big


def test_cache039_large_objects_are_served_whole_ranged_and_streamed(t):
    """By default hits are copied: no descriptor is held per object."""
    p, o, big = large_objects(t, "")
    A.eq(memfds(p), 0, "memfds held with sendfile off")
    n = hit_reads(t, p, o.url("/big"), big)
    A.eq(n < len(big) // 2, True, f"a copied 1 MiB hit reads no file ({n} bytes read)")


def test_cache040_sendfile_on_serves_the_same_bytes_and_frees_its_descriptors(t):
    """With sendfile on, each large body is a memfd that hits send from; a
    purged object gives its descriptor back."""
    p, o, big = large_objects(t, "sendfile on\n")
    A.eq(memfds(p), 2, "one memfd per stored large object")
    n = hit_reads(t, p, o.url("/big"), big)
    A.eq(n >= len(big), True, f"a 1 MiB hit goes by sendfile() ({n} bytes read)")
    A.status(t.get(p, o.url("/big"), method="PURGE"), 200)
    wait_until(lambda: memfds(p) == 1, 5, "the purged object's memfd closed")
    r = t.get(p, o.url("/slow"))
    A.contains(cs(r), "; hit", "the other one still stored")
    A.eq(r.body == big, True, "and served whole")


def leader_and_waiters(t, p, o, url, n):
    """One client whose request reached the origin, then n that wait on its
    fetch."""
    first = start_clients(t, p, url, 1)[0]
    o.wait_requests(1)
    rest = start_clients(t, p, url, n)
    time.sleep(0.3)  # all n have joined the first one's fetch
    return first, rest


def test_cache041_leader_leaving_mid_body_does_not_cut_the_waiters(t):
    p = t.sluice()
    parts = [b"a" * 200000, b"b" * 200000, b"c" * 200000, b"d" * 200000]
    o, go = collapsing_origin(t, [("Cache-Control", "max-age=60")], parts)
    first, rest = leader_and_waiters(t, p, o, o.url("/big"), 4)
    go.set()
    first.read_head()
    first.close()  # the leader's client leaves while the body streams
    for c in rest:
        r = c.read_response()
        A.status(r, 200)
        A.eq(r.complete, True, "a waiter's answer is whole")
        A.eq(r.body, b"".join(parts), "every waiter gets the whole body")
    A.eq(len(o.requests), 1, "requests at origin")
    A.contains(cs(t.get(p, o.url("/big"))), "; hit", "the fetch was stored")
    A.contains(p.stderr_text(), "client write failed for " + o.url("/big") +
               "; its fetch goes on for the requests waiting on it", "log line")


def test_cache042_leader_leaving_before_the_answer_still_fetches_for_the_waiters(t):
    p = t.sluice()
    parts = [b"e" * 100000, b"f" * 100000]
    o, go = collapsing_origin(t, [("Cache-Control", "max-age=60")], parts)
    first, rest = leader_and_waiters(t, p, o, o.url("/early"), 3)
    first.close()  # gone before the origin answers at all
    time.sleep(0.2)
    go.set()
    for c in rest:
        r = c.read_response()
        A.status(r, 200)
        A.eq(r.body, b"".join(parts), "every waiter gets the whole body")
    A.eq(len(o.requests), 1, "requests at origin")
    A.contains(cs(t.get(p, o.url("/early"))), "; hit", "the fetch was stored")


def test_cache043_leader_gone_and_fill_dropped_stops_the_fetch(t):
    # Of unknown length, the body outgrows cache_max_object after the
    # leader's client left, and goes on for the waiters until it outgrows
    # the room for that too (an eighth of cache_mem): it is dropped, and
    # nobody is left to fetch for.
    p = t.sluice("cache_max_object 150K\ncache_mem 1M\n")
    parts = [b"g" * 100000] * 6
    o, go = collapsing_origin(t, [("Cache-Control", "max-age=60")], parts, chunked=True)
    first, rest = leader_and_waiters(t, p, o, o.url("/huge"), 2)
    go.set()
    first.read_head()
    first.close()
    for c in rest:
        r = c.read_response()
        A.eq(r.complete, False, "a waiter's stream of the dropped fill is cut")
    wait_until(lambda: "abort " + o.url("/huge") + ": client gone and the fill dropped"
               in p.stderr_text(), 5, "the detached fetch stopped")
    r = t.get(p, o.url("/huge"))
    A.eq(r.body, b"later #2", "nothing stored: the next request goes to the origin")


def fetch_past_a_first_client_not_reading(t, p, path, chunked=False):
    """A 12 MiB fetch, far more than the socket buffers hold between the
    proxy and a client that reads nothing (about 5 MiB here), whose first
    client does not read: the two requests collapsed on it must get all of
    it at the origin's pace. Returns the origin, that first client and the
    body."""
    parts = [bytes([0x61 + i]) * (2 << 20) for i in range(6)]
    body = b"".join(parts)
    o, go = collapsing_origin(t, [("Cache-Control", "max-age=60")], parts, chunked=chunked)
    first, rest = leader_and_waiters(t, p, o, o.url(path), 2)
    go.set()
    for c in rest:
        r = c.read_response(timeout=10)
        A.eq(r.complete, True, "a waiter's answer is whole")
        A.eq(r.body == body, True, "every waiter gets the whole body")
    return o, first, body


def test_cache044_a_first_client_that_does_not_read_does_not_hold_back_the_fetch(t):
    # The fetch, the waiters and the store go on at the origin's pace; the
    # first client gets it all when it reads.
    p = t.sluice("threads 1\n")
    o, first, body = fetch_past_a_first_client_not_reading(t, p, "/slowpoke")
    r = t.get(p, o.url("/slowpoke"), timeout=10)
    A.contains(cs(r), "; hit", "stored while the first client had not read")
    conns = o.accepted
    A.eq(t.get(p, o.url("/other")).body, b"later #2", "another URL, from the origin")
    A.eq(o.accepted, conns, "the fetch's connection went back to the pool")
    r = first.read_response(timeout=10)
    A.status(r, 200)
    A.eq(r.body == body, True, "the first client, reading at last, gets the whole body")
    A.contains(cs(r), "fwd=uri-miss", "Cache-Status of the first client's miss")
    A.eq(len(o.requests), 2, "requests at origin")


def test_cache045_a_first_client_that_never_reads_times_out_alone(t):
    p = t.sluice("read_timeout 1s\n")
    o, first, body = fetch_past_a_first_client_not_reading(t, p, "/stuck")
    wait_until(lambda: "abort " + o.url("/stuck") + ": timeout" in p.stderr_text(), 5,
               "the first client timed out")
    try:
        r = first.read_response(timeout=5)
        cut = not r.complete
    except (ConnClosed, OSError):
        cut = True
    A.eq(cut, True, "the first client's answer is cut")
    r = t.get(p, o.url("/stuck"), timeout=10)
    A.contains(cs(r), "; hit", "the fetch was stored")
    A.eq(r.body == body, True, "and is served whole")
    A.eq(len(o.requests), 1, "requests at origin")


def test_cache046_nor_does_a_first_client_of_a_chunked_answer(t):
    # The same with a body of unknown length: the first client is streamed
    # it from the object, chunked, as the requests collapsed on it are.
    p = t.sluice("threads 1\n")
    o, first, body = fetch_past_a_first_client_not_reading(t, p, "/slowchunks", chunked=True)
    r = t.get(p, o.url("/slowchunks"), timeout=10)
    A.contains(cs(r), "; hit", "stored while the first client had not read")
    conns = o.accepted
    A.eq(t.get(p, o.url("/other")).body, b"later #2", "another URL, from the origin")
    A.eq(o.accepted, conns, "the fetch's connection went back to the pool")
    r = first.read_response(timeout=10)
    A.status(r, 200)
    A.eq(r.header("Transfer-Encoding"), "chunked", "the first client's answer is chunked")
    A.eq(r.body == body, True, "the first client, reading at last, gets the whole body")
    A.eq(len(o.requests), 2, "requests at origin")


def test_cache047_a_close_delimited_answer_being_stored_keeps_the_connection_open(t):
    # Sent from the object as it is stored, chunked, to an HTTP/1.1 client:
    # the origin's close does not end the client's connection.
    p = t.sluice()

    def h(req, c):
        n = len(c.origin.requests)
        c.send(b"HTTP/1.0 200 OK\r\nCache-Control: max-age=60\r\n\r\n" + b"z" * 100000 +
               b"#%d" % n)
        return CLOSE
    o = t.origin(h)
    c = t.client(p, timeout=10)
    c.send(build_request("GET", o.url("/eof")))
    r = c.read_response()
    A.status(r, 200)
    A.eq(r.body, b"z" * 100000 + b"#1", "the body")
    A.eq(r.header("Transfer-Encoding"), "chunked", "chunked, as the object streams")
    A.eq(r.header("Connection"), None, "no close")
    c.send(build_request("GET", o.url("/eof")))
    r = c.read_response()
    A.contains(cs(r), "; hit", "the next request on the same connection: a hit")
    A.eq(r.body, b"z" * 100000 + b"#1", "the stored body")
    old = t.client(p, timeout=10)  # no chunked for HTTP/1.0: ended by close, as it came
    old.send(build_request("GET", o.url("/eof10"), version="HTTP/1.0"))
    r = old.read_response()
    A.eq(r.body, b"z" * 100000 + b"#2", "the HTTP/1.0 client's body")
    A.eq(r.header("Transfer-Encoding"), None, "not chunked")
    A.eq(len(o.requests), 2, "requests at origin")


def test_cache048_an_answer_that_outgrows_the_store_reaches_its_slow_client_whole(t):
    # Of unknown length, sent to its client from the object: past
    # cache_max_object the fill is dropped, and the client, reading late,
    # gets what the object held, then the rest from the origin, as it reads
    # (the proxy does not read the origin ahead of it).
    p = t.sluice("cache_max_object 1M\n")
    go = threading.Event()
    t.defer(go.set)
    sent = []
    parts = [bytes([0x41 + i]) * (1 << 20) for i in range(24)]
    body = b"".join(parts)

    def h(req, c):
        n = len(c.origin.requests)
        if n > 1:
            c.respond(200, b"later #%d" % n, [("Cache-Control", "max-age=60")])
            return None
        c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        for part in parts:
            c.send(b"%x\r\n%s\r\n" % (len(part), part))
            sent.append(len(part))
        c.send(b"0\r\n\r\n")
        sent.append(0)
        return None
    o = t.origin(h)
    first = start_clients(t, p, o.url("/toobig"), 1)[0]
    wait_until(lambda: "not storing " + o.url("/toobig") in p.stderr_text() or
               len(sent) > 2, 10, "the fill dropped")
    time.sleep(1)
    A.eq(0 in sent, False, "while the client reads nothing, the origin is not read to the end")
    r = first.read_response(timeout=20)
    A.status(r, 200)
    A.eq(r.complete, True, "the answer is whole")
    A.eq(len(r.body), len(body), "its length")
    A.eq(r.body == body, True, "the whole body, in order")
    A.eq(r.header("Transfer-Encoding"), "chunked", "chunked")
    A.eq(t.get(p, o.url("/toobig")).body, b"later #2", "not stored")


def revalidated_origin(t, answer, hold=lambda n: True):
    """An origin whose GET answer ("version #N", N its request count) is
    stale at once, with ETag "v1"; a POST gets "posted"; a conditional GET
    for "v1" gets answer(N) -> (status, body, fields), once `go` is set if
    hold(N)."""
    go = threading.Event()
    t.defer(go.set)

    def h(req, c):
        n = len(c.origin.requests)
        if req.method == "POST":
            c.respond(200, b"posted")
            return None
        if req.header("If-None-Match") == '"v1"':
            if hold(n):
                go.wait(10)
            c.respond(*answer(n))
            return None
        c.respond(200, b"version #%d" % n, [("Cache-Control", "max-age=0"), ("ETag", '"v1"')])
    return t.origin(h), go


def test_cache049_invalidation_reaches_a_revalidation_in_flight(t):
    # RFC 9111 §4.4: a POST invalidates the URL while a stale copy of it is
    # being revalidated; the 304 that comes back after it must not store
    # the old body again.
    p = t.sluice()
    o, go = revalidated_origin(
        t, lambda n: (304, b"", [("ETag", '"v1"'), ("Cache-Control", "max-age=60")]),
        hold=lambda n: n == 2)
    url = o.url("/doc")
    A.eq(t.get(p, url).body, b"version #1", "stored, stale at once")
    first = start_clients(t, p, url, 1)  # revalidates it
    o.wait_requests(2)
    A.eq(o.requests[1].header("If-None-Match"), '"v1"', "a conditional request")
    A.eq(t.get(p, url, method="POST", body=b"new").body, b"posted", "POST")
    go.set()
    r = first[0].read_response()
    A.eq(r.body, b"version #1", "the 304 still refreshes its own client's answer")
    A.contains(cs(r), "fwd=stale", "Cache-Status of the revalidated answer")
    r = t.get(p, url)
    A.eq(r.body, b"version #4", "but stored nothing: the next request goes to the origin")
    # Without an invalidation, a 304 does refresh the stored copy.
    r = t.get(p, url)
    A.eq(o.requests[-1].header("If-None-Match"), '"v1"', "revalidated")
    A.eq(r.body, b"version #4", "the stored body")
    r = t.get(p, url)
    A.contains(cs(r), "; hit", "refreshed by the 304: a hit now")
    A.eq(len(o.requests), 5, "requests at origin")


def test_cache050_nor_does_a_new_answer_to_a_revalidation_sent_before_it(t):
    # The same with a changed answer (a 200, not a 304) to the conditional
    # request: made before the POST, maybe, so not stored either; and so
    # for each of two clients revalidating the same stale copy at once.
    p = t.sluice()
    o, go = revalidated_origin(
        t, lambda n: (200, b"changed #%d" % n, [("Cache-Control", "max-age=60"),
                                               ("ETag", '"v2"')]))
    url = o.url("/doc")
    A.eq(t.get(p, url).body, b"version #1", "stored, stale at once")
    two = start_clients(t, p, url, 2)  # both revalidate it
    o.wait_requests(3)
    A.eq(t.get(p, url, method="POST", body=b"new").body, b"posted", "POST")
    go.set()
    rs = sorted((c.read_response() for c in two), key=lambda r: r.body)
    A.eq([r.body for r in rs], [b"changed #2", b"changed #3"], "each client its own new answer")
    for r in rs:
        A.contains(cs(r), 'detail="invalidated while in flight"', "Cache-Status: not stored")
    r = t.get(p, url)
    A.eq(r.body, b"version #5", "neither was stored: the next request goes to the origin")
    A.eq(len(o.requests), 5, "requests at origin")


def test_cache051_a_malformed_chunked_answer_gets_a_502_stored_or_not(t):
    # Found bad before any of it went out, the answer is a 502 saying why,
    # whether the proxy was storing it (and sending it from the object) or
    # not; nothing is stored and the next request goes to the origin.
    p = t.sluice()

    def h(req, c):
        n = len(c.origin.requests)
        cc = b"max-age=60" if req.target.startswith("/store") else b"no-store"
        c.send(b"HTTP/1.1 200 OK\r\nCache-Control: " + cc + b"\r\n"
               b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\nhello #%d\r\n0\r\n\r\n" % n)
        return CLOSE
    o = t.origin(h)
    for path in ("/store", "/nostore"):
        r = t.get(p, o.url(path))
        A.proxy_error(r, 502, detail="invalid response from origin (bad chunk size)",
                      proxy_status="http_protocol_error")
    r = t.get(p, o.url("/store"))
    A.status(r, 502)
    A.eq(len(o.requests), 3, "nothing stored: each request went to the origin")


def test_cache052_a_304_refreshes_its_variant_while_another_is_being_revalidated(t):
    # Fetches in flight of other variants of the URL take nothing from a
    # 304: the variant it refreshed is stored.
    p = t.sluice()
    go = threading.Event()
    t.defer(go.set)

    def h(req, c):
        n = len(c.origin.requests)
        lang = req.header("Accept-Language")
        cc = "max-age=60" if req.header("If-None-Match") else "max-age=0"
        hdrs = [("Cache-Control", cc), ("Vary", "Accept-Language"), ("ETag", '"%s"' % lang)]
        if req.header("If-None-Match"):
            if lang == "en":
                go.wait(10)
            c.respond(304, b"", hdrs)
            return None
        c.respond(200, b"%s #%d" % (lang.encode(), n), hdrs)
    o = t.origin(h)
    url = o.url("/page")
    A.eq(t.get(p, url, [("Accept-Language", "en")]).body, b"en #1", "en stored")
    A.eq(t.get(p, url, [("Accept-Language", "fr")]).body, b"fr #2", "fr stored")
    en = start_clients(t, p, url, 1, [("Accept-Language", "en")])  # revalidates, held
    o.wait_requests(3)
    r = t.get(p, url, [("Accept-Language", "fr")])
    A.eq((r.body, o.requests[-1].header("If-None-Match")), (b"fr #2", '"fr"'), "revalidated")
    A.contains(cs(r), "stored", "and stored again")
    r = t.get(p, url, [("Accept-Language", "fr")])
    A.contains(cs(r), "; hit", "fr: a hit now")
    go.set()
    A.eq(en[0].read_response().body, b"en #1", "en revalidated")
    A.contains(cs(t.get(p, url, [("Accept-Language", "en")])), "; hit", "en: a hit now")
    A.eq(len(o.requests), 4, "requests at origin")


def test_cache053_a_request_after_an_invalidation_does_not_join_the_fetch_it_overtook(t):
    # A fetch in flight when a POST invalidated the URL may bring the old
    # body: a request made after the POST goes to the origin itself, and
    # its answer is the one stored.
    p = t.sluice()
    o, go = held_first_get_origin(t)
    url = o.url("/doc")
    first = start_clients(t, p, url, 1)
    o.wait_requests(1)
    A.eq(t.get(p, url, method="POST", body=b"new").body, b"posted", "POST")
    later = start_clients(t, p, url, 1)
    o.wait_requests(3)  # not collapsed on the first fetch
    r = later[0].read_response()
    A.eq(r.body, b"version #3", "the request after the POST: a new answer")
    A.eq("collapsed" in cs(r), False, "not collapsed")
    go.set()
    A.eq(first[0].read_response().body, b"version #1", "the first fetch answers its client")
    r = t.get(p, url)
    A.eq(r.body, b"version #3", "the answer stored is the one after the POST")
    A.contains(cs(r), "; hit", "a hit")
    A.eq(len(o.requests), 3, "requests at origin")


def test_cache054_waiters_of_other_variants_collapse_on_one_fetch_per_variant(t):
    # Ten requests wait on a fetch whose answer turns out to be the "en"
    # variant (Vary: Accept-Language): the "fr" and "de" ones do not each
    # go to the origin, the first of each variant fetches it for the rest.
    p = t.sluice()
    o, go = collapsing_origin(t, [("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
                              [b"english"])
    first = start_clients(t, p, o.url("/v"), 1, [("Accept-Language", "en")])
    o.wait_requests(1)
    fr = start_clients(t, p, o.url("/v"), 4, [("Accept-Language", "fr")])
    de = start_clients(t, p, o.url("/v"), 3, [("Accept-Language", "de")])
    en = start_clients(t, p, o.url("/v"), 2, [("Accept-Language", "en")])
    time.sleep(0.3)
    go.set()
    A.eq(first[0].read_response().body, b"english", "leader")
    for c in en:
        A.eq(c.read_response().body, b"english", "same variant: collapsed")
    frb = [c.read_response().body for c in fr]
    deb = [c.read_response().body for c in de]
    A.eq(len(set(frb)), 1, "every fr request got the one fr answer: %r" % frb)
    A.eq(len(set(deb)), 1, "every de request got the one de answer: %r" % deb)
    A.eq(sorted([frb[0], deb[0]]), [b"later #2", b"later #3"], "each from a fetch of its own")
    A.eq(len(o.requests), 3, "requests at origin: one per variant")
    A.eq(sorted(r.header("Accept-Language") for r in o.requests), ["de", "en", "fr"],
         "what the origin was asked for")


def store_meanwhile(t, p, url, headers, body):
    """While others wait on a fetch of url, store the variant headers select
    with a conditional request (never collapsed); it answers body."""
    c = t.client(p, timeout=10)
    c.send(build_request("GET", url, headers + [("If-None-Match", '"zz"')]))
    A.eq(c.read_response().body, body, "stored meanwhile")


def test_cache055_a_waiter_that_finds_its_variant_stale_revalidates_it(t):
    # Waiters of variant "b" find, when the fetch they waited on turns out
    # to be "a", a stale "b" stored meanwhile: each revalidates it (the
    # validators go into the request as forwarded, whatever its size).
    p = t.sluice()
    go = threading.Event()
    t.defer(go.set)
    etag = '"' + "b" * 200 + '"'

    def h(req, c):
        hdrs = [("Vary", "X-V"), ("Cache-Control", "max-age=0"), ("ETag", etag)]
        if req.header("X-V") == "a":
            go.wait(10)
            c.respond(200, b"AAA", [("Vary", "X-V"), ("Cache-Control", "max-age=60")])
        elif req.header("If-None-Match") == etag:
            c.respond(304, b"", hdrs)
        else:
            c.respond(200, b"BBB", hdrs)
    o = t.origin(h)
    first = start_clients(t, p, o.url("/v"), 1, [("X-V", "a")])
    o.wait_requests(1)
    waiters = []
    for pad in range(0, 400, 40):  # requests as forwarded of many sizes
        waiters += start_clients(t, p, o.url("/v"), 1, [("X-V", "b"), ("X-Pad", "p" * pad)])
    time.sleep(0.3)
    store_meanwhile(t, p, o.url("/v"), [("X-V", "b")], b"BBB")  # stale
    go.set()
    A.eq(first[0].read_response().body, b"AAA", "leader")
    for c in waiters:
        r = c.read_response()
        A.status(r, 200)
        A.eq(r.body, b"BBB", "b, revalidated")
    revals = [r for r in o.requests if r.header("If-None-Match") == etag]
    A.eq(len(revals), len(waiters), "each waiter revalidated the stale b")


def variants_side_by_side(t, vary):
    """After the fetch they waited on turns out to be "en", the fr, de and
    es waiters each fetch their variant at once, not one after another:
    the origin holds each answer until it has all three requests."""
    p = t.sluice()
    go = threading.Event()
    t.defer(go.set)
    seen = set()
    cv = threading.Condition()
    hdrs = [("Vary", v) for v in vary] + [("Cache-Control", "max-age=60")]

    def h(req, c):
        lang = req.header("Accept-Language")
        if lang == "en":
            go.wait(10)
            c.respond(200, b"en", hdrs)
            return
        with cv:
            seen.add(lang)
            cv.notify_all()
            together = cv.wait_for(lambda: len(seen) >= 3, timeout=3)
        c.respond(200, lang.encode() + (b" together" if together else b" alone"), hdrs)
    o = t.origin(h)
    first = start_clients(t, p, o.url("/v"), 1, [("Accept-Language", "en")])
    o.wait_requests(1)
    ws = {lang: start_clients(t, p, o.url("/v"), 2, [("Accept-Language", lang)])
          for lang in ("fr", "de", "es")}
    time.sleep(0.3)
    go.set()
    A.eq(first[0].read_response().body, b"en", "leader")
    for lang, cs_ in ws.items():
        for c in cs_:
            A.eq(c.read_response().body, lang.encode() + b" together", lang)
    A.eq(len(o.requests), 4, "requests at origin: one per variant")


def test_cache056_the_variants_of_a_url_are_fetched_side_by_side(t):
    variants_side_by_side(t, ["Accept-Language"])


def test_cache057_a_waiter_waits_read_timeout_in_all_then_asks_the_origin(t):
    # Two "fr" requests wait on a fetch that turns out to be "en" after
    # 1.5 s; then one leads a fetch of "fr" (held) and the other waits on
    # it. That one's read_timeout (2 s) counts from when it began to wait,
    # not from its second wait.
    p = t.sluice("read_timeout 2s\n")
    go_en, go_fr = threading.Event(), threading.Event()
    t.defer(go_en.set)
    t.defer(go_fr.set)

    def h(req, c):
        hdrs = [("Vary", "Accept-Language"), ("Cache-Control", "max-age=60")]
        if req.header("Accept-Language") == "en":
            go_en.wait(10)
        elif [r.header("Accept-Language") for r in c.origin.requests].count("fr") == 1:
            go_fr.wait(10)  # the first "fr" fetch
        c.respond(200, b"for " + req.header("X-Client").encode(), hdrs)
    o = t.origin(h)
    first = start_clients(t, p, o.url("/v"), 1, [("Accept-Language", "en"), ("X-Client", "en")])
    o.wait_requests(1)
    t0 = time.monotonic()
    fr = {n: start_clients(t, p, o.url("/v"), 1, [("Accept-Language", "fr"), ("X-Client", n)])[0]
          for n in ("fr1", "fr2")}
    time.sleep(1.5)
    go_en.set()
    A.eq(first[0].read_response().body, b"for en", "leader")
    o.wait_requests(3, timeout=5)
    lead, own = [r.header("X-Client") for r in o.requests[1:3]]
    A.eq(sorted([lead, own]), ["fr1", "fr2"], "each fr asked the origin once")
    waited = o.requests[2].time - t0
    A.eq(1.7 < waited < 2.9, True, "%s gave up waiting after %.2f s (read_timeout 2s)"
         % (own, waited))
    r = fr[own].read_response()
    A.eq(r.body, b"for " + own.encode(), "its own answer")
    A.eq("collapsed" in cs(r), False, "not collapsed")
    go_fr.set()
    A.eq(fr[lead].read_response().body, b"for " + lead.encode(), "the first fr's answer")


def outgrowing_origin(t):
    """An origin answering 20 KiB, fresh for a minute, in 1 KiB chunks
    with pauses: it outgrows a cache_max_object of 4k as it comes. Its
    `cut` list holds the targets of answers the proxy stopped reading."""
    def h(req, c):
        try:
            c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
            if req.method == "HEAD":
                return None
            for i in range(20):
                c.send(b"400\r\n%s\r\n" % (b"%d" % (i % 10) * 1024))
                time.sleep(0.01)
            c.send(b"0\r\n\r\n")
        except OSError:
            o.cut.append(req.target)
            return CLOSE
    o = t.origin(h)
    o.cut = []
    return o


def test_cache058_a_chunked_answer_that_outgrows_the_store_ends_with_its_last_chunk(t):
    o = outgrowing_origin(t)
    p = t.sluice("cache_max_object 4k\n")
    c = t.client(p)
    for _ in range(2):
        c.send(build_request("GET", o.url("/big")))
        r = c.read_response()
        A.eq(r.body, b"".join(b"%d" % (i % 10) * 1024 for i in range(20)), "the whole body")
        A.eq(r.complete, True, "ended by its last chunk")
    A.eq(len(o.requests), 2, "not stored")


def test_cache059_so_they_are_under_a_long_vary_or_one_of_several_lines(t):
    variants_side_by_side(t, [", ".join(["Accept-Language"] +
                                        ["X-Pad-%03d" % i for i in range(120)])])
    variants_side_by_side(t, ["X-A", "Accept-Language", "", "X-B, X-C"])


def test_cache060_a_fetch_whose_variant_cannot_be_told_is_joined_by_none(t):
    # The URL's Vary is known (a fetch of "a" has its head) when a request
    # whose secondary key is too long to store leads a fetch: the "b"
    # requests that come next do not wait on it, the first leads theirs.
    p = t.sluice()
    go_a, go_big = threading.Event(), threading.Event()
    t.defer(go_a.set)
    t.defer(go_big.set)

    def h(req, c):
        v = req.header("X-V")
        if v == "a":
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nVary: X-V\r\n"
                   b"Cache-Control: max-age=60\r\n\r\n")
            go_a.wait(10)
            c.send(b"a")
            return
        if len(v) > 100:
            go_big.wait(10)
        c.respond(200, b"b #%d" % len(c.origin.requests),
                  [("Vary", "X-V"), ("Cache-Control", "max-age=60")])
    o = t.origin(h)
    first = start_clients(t, p, o.url("/v"), 1, [("X-V", "a")])
    o.wait_requests(1)
    time.sleep(0.2)  # the head of "a" is in
    big = start_clients(t, p, o.url("/v"), 1, [("X-V", "x" * 9000)])
    o.wait_requests(2)
    bs = start_clients(t, p, o.url("/v"), 5, [("X-V", "b")])
    o.wait_requests(3)  # not held back by the long one
    bodies = {c.read_response().body for c in bs}
    A.eq(bodies, {b"b #3"}, "the b requests share one fetch")
    go_big.set()
    A.status(big[0].read_response(), 200)
    go_a.set()
    A.eq(first[0].read_response().body, b"a", "the first")
    A.eq(sum(1 for r in o.requests if r.header("X-V") == "b"), 1, "origin requests for b")


def test_cache061_a_waiter_that_finds_its_variant_stored_meanwhile_gets_a_hit(t):
    p = t.sluice()
    go = threading.Event()
    t.defer(go.set)

    def h(req, c):
        if req.header("X-V") == "a":
            go.wait(10)
        c.respond(200, req.header("X-V").encode() * 3,
                  [("Vary", "X-V"), ("Cache-Control", "max-age=60")])
    o = t.origin(h)
    first = start_clients(t, p, o.url("/v"), 1, [("X-V", "a")])
    o.wait_requests(1)
    ws = start_clients(t, p, o.url("/v"), 3, [("X-V", "b")])
    for _ in range(2):  # HTTP/1.0 waiters too
        c = t.client(p, timeout=10)
        c.send(build_request("GET", o.url("/v"), [("X-V", "b")], version="HTTP/1.0"))
        ws.append(c)
    time.sleep(0.3)
    store_meanwhile(t, p, o.url("/v"), [("X-V", "b")], b"bbb")
    go.set()
    A.eq(first[0].read_response().body, b"aaa", "the first")
    for c in ws:
        r = c.read_response()
        A.eq(r.body, b"bbb", "b")
        A.contains(cs(r), "; hit", "Cache-Status")
    A.eq(len(o.requests), 2, "requests at origin")
    p.wait_log(lambda l: sum(1 for x in p.access_lines() if "TCP_MEM_HIT/200" in x) == 5,
               what="five TCP_MEM_HIT lines")


def head_origin(t, head_etag, head_len=None):
    """An origin whose GET answers "body" with ETag "v1", stale at once,
    and whose HEAD answers 200 (conditional or not) with head_etag, fresh
    for a minute, and X-Head: 1."""
    def h(req, c):
        if req.method == "HEAD":
            c.send(b"HTTP/1.1 200 OK\r\nETag: %s\r\nContent-Length: %d\r\n"
                   b"Cache-Control: max-age=60\r\nX-Head: 1\r\n\r\n"
                   % (head_etag.encode(), head_len if head_len is not None else 4))
            return
        c.respond(200, b"body", [("ETag", '"v1"'), ("Cache-Control", "max-age=0")])
    return t.origin(h)


def test_cache062_a_head_200_that_matches_refreshes_the_stored_get(t):
    # RFC 9111 §4.3.5: same ETag and length: the stored response takes the
    # HEAD's fields and freshness, and the next GET is a hit.
    p = t.sluice()
    o = head_origin(t, '"v1"')
    A.eq(t.get(p, o.url("/h")).body, b"body", "stored")
    r = t.get(p, o.url("/h"), method="HEAD")
    A.eq((r.status, r.body, r.header("X-Head")), (200, b"", "1"), "the HEAD's answer")
    A.contains(cs(r), "fwd=stale; fwd-status=200; stored", "Cache-Status")
    r = t.get(p, o.url("/h"))
    A.eq((r.body, r.header("X-Head")), (b"body", "1"), "the stored body, refreshed")
    A.contains(cs(r), "; hit", "a hit")
    A.eq([x.method for x in o.requests], ["GET", "HEAD"], "requests at origin")


def test_cache063_a_head_200_that_differs_drops_the_stored_get(t):
    for etag, length in (('"v2"', 4), ('"v1"', 5)):
        p = t.sluice()
        o = head_origin(t, etag, length)
        t.get(p, o.url("/h"))
        A.status(t.get(p, o.url("/h"), method="HEAD"), 200)
        r = t.get(p, o.url("/h"))
        A.eq(r.body, b"body", "from the origin again")
        A.eq("fwd=uri-miss" in cs(r), True, "a miss: %s" % cs(r))
        A.eq([x.method for x in o.requests], ["GET", "HEAD", "GET"], "requests at origin")


def test_cache064_a_head_200_does_not_refresh_a_stored_404(t):
    def h(req, c):
        if len(c.origin.requests) == 1:
            c.respond(404, b"abc", [("Cache-Control", "max-age=1"), ("ETag", '"e"')])
        elif req.method == "HEAD":
            c.send(b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 3\r\n"
                   b"Cache-Control: max-age=60\r\n\r\n")
        else:
            c.respond(200, b"abc", [("Cache-Control", "max-age=60"), ("ETag", '"e"')])
    o = t.origin(h)
    p = t.sluice()
    A.status(t.get(p, o.url("/x")), 404)
    time.sleep(2.1)  # stale
    A.status(t.get(p, o.url("/x"), method="HEAD"), 200)
    A.status(t.get(p, o.url("/x")), 200)


def test_cache065_a_head_200_refreshes_a_stored_get_without_validators(t):
    # §4.3.5: nothing to compare but the length, which agrees. (In reverse
    # mode the HEAD is fetched as a GET, whose answer is stored instead.)
    def h(req, c):
        c.respond(200, b"" if req.method == "HEAD" else b"body",
                  [("Cache-Control", "max-age=1" if len(c.origin.requests) == 1 else
                    "max-age=60")] + ([("Content-Length", "4")] if req.method == "HEAD" else []))
    o = t.origin(h)
    p = t.sluice()
    A.eq(t.get(p, o.url("/nv")).body, b"body", "stored")
    time.sleep(2.1)  # stale, and nothing to revalidate it with
    A.status(t.get(p, o.url("/nv"), method="HEAD"), 200)
    r = t.get(p, o.url("/nv"))
    A.eq(r.body, b"body", "the stored body")
    A.contains(cs(r), "; hit", "fresh again: a hit")
    A.eq(len(o.requests), 2, "requests at origin")


def test_cache066_waiters_get_all_of_a_chunked_answer_too_big_to_store(t):
    # It outgrows cache_max_object while three requests stream it: it is
    # not stored, but finished for them rather than cut off.
    p = t.sluice("cache_max_object 4k\n")
    parts = [b"%d" % i * 4096 for i in range(5)]
    o, go = collapsing_origin(t, [("Cache-Control", "max-age=60")], parts, chunked=True)
    first, rest = leader_and_waiters(t, p, o, o.url("/big"), 3)
    go.set()
    for c in [first] + rest:
        r = c.read_response()
        A.eq((r.body, r.complete), (b"".join(parts), True), "the whole body")
    A.eq(len(o.requests), 1, "requests at origin")
    A.eq(t.get(p, o.url("/big")).body, b"later #2", "not stored")


def test_cache067_a_fill_finished_for_its_waiters_leaves_others_their_room(t):
    # /a (never to be stored: past cache_max_object) goes on for its
    # waiter, its room past 128K from a budget of its own (an eighth of
    # cache_mem), while /b (100K, storable) is being filled: both whole.
    p = t.sluice("cache_max_object 128K\ncache_mem 2M\n")
    go_a, go_a2, go_b = threading.Event(), threading.Event(), threading.Event()
    for e in (go_a, go_a2, go_b):
        t.defer(e.set)
    def h(req, c):
        if req.target.endswith("/b") and len(c.origin.requests) == 1:
            c.send(CHUNKED_HEAD + chunk(b"b" * 10240))
            go_b.wait(10)
            for _ in range(9):
                c.send(chunk(b"b" * 10240))
                time.sleep(0.01)
            c.send(b"0\r\n\r\n")
        elif req.target.endswith("/a"):
            go_a.wait(10)
            c.send(CHUNKED_HEAD)
            for _ in range(18):
                c.send(chunk(b"a" * 10240))
                time.sleep(0.01)
            go_a2.wait(10)
            c.send(b"0\r\n\r\n")
        else:
            c.respond(200, b"later", [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    b = start_clients(t, p, o.url("/b"), 1)
    o.wait_requests(1)
    b += start_clients(t, p, o.url("/b"), 1)
    a = start_clients(t, p, o.url("/a"), 1)
    o.wait_requests(2)
    a += start_clients(t, p, o.url("/a"), 1)
    time.sleep(0.3)
    go_a.set()
    time.sleep(1.0)  # /a is 180K in, past cache_max_object, held open
    go_b.set()
    A.eq([(len(r.body), r.complete) for r in (c.read_response() for c in b)],
         [(102400, True)] * 2, "/b whole to both")
    go_a2.set()
    A.eq([(len(r.body), r.complete) for r in (c.read_response() for c in a)],
         [(18 * 10240, True)] * 2, "/a whole to both")
    A.contains(cs(t.get(p, o.url("/b"))), "; hit", "/b stored")


def test_cache068_readers_of_unstored_answers_do_not_keep_others_from_being_stored(t):
    # Four answers too large to store are finished for a waiter each that
    # then reads no more: what their objects hold must not take the room
    # of the fills that will be stored.
    p = t.sluice("cache_max_object 4M\ncache_mem 64M\n")
    part = b"z" * (1 << 20)
    seen = {}

    def h(req, c):
        seen[req.target] = seen.get(req.target, 0) + 1
        if "/a" in req.target and seen[req.target] == 1:
            time.sleep(0.5)
            c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
            for _ in range(6):
                c.send(b"%x\r\n%s\r\n" % (len(part), part))
            c.send(b"0\r\n\r\n")
            return
        c.respond(200, b"b" * (1 << 20), [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    for i in range(4):
        url = o.url("/a%d" % i)
        first = start_clients(t, p, url, 1)[0]
        time.sleep(0.2)
        start_clients(t, p, url, 1)  # never reads: holds the object
        A.eq(first.read_response(timeout=20).complete, True, "the first client's whole answer")
    t.get(p, o.url("/b"))
    A.contains(cs(t.get(p, o.url("/b"))), "; hit", "/b stored")


def test_cache069_waiters_are_not_cut_off_when_fills_have_no_room_left(t):
    # cache_mem 1M leaves fills 256K. /b (chunked) holds 192K of it while
    # /a (chunked, 160K, a waiter on it) grows: /a cannot be stored, but it
    # is finished for its waiter from the transient budget, not cut off.
    p = t.sluice("cache_mem 1M\ncache_max_object 512K\n")
    go_a, go_b = threading.Event(), threading.Event()
    for e in (go_a, go_b):
        t.defer(e.set)
    def h(req, c):
        n = sum(1 for q in c.origin.requests if q.target == req.target)
        if n > 1:
            c.respond(200, b"later", [("Cache-Control", "max-age=60")])
        elif req.target.endswith("/b"):
            c.send(CHUNKED_HEAD + chunk(b"b" * 190000))
            go_b.wait(10)
            c.send(chunk(b"b" * 10000) + b"0\r\n\r\n")
        else:  # 50K (within its first 64K step), then on once the waiter is in
            c.send(CHUNKED_HEAD + chunk(b"a" * 51200))
            go_a.wait(10)
            for _ in range(11):
                c.send(chunk(b"a" * 10240))
                time.sleep(0.01)
            c.send(b"0\r\n\r\n")
    o = t.origin(h)
    b = start_clients(t, p, o.url("/b"), 1)
    o.wait_requests(1)
    time.sleep(0.3)  # /b is 190K in
    a = start_clients(t, p, o.url("/a"), 1)
    o.wait_requests(2)
    a += start_clients(t, p, o.url("/a"), 1)
    time.sleep(0.5)  # the waiter has joined /a's fetch
    go_a.set()  # /a grows past the room /b left it
    for c in a:
        r = c.read_response()
        A.eq((r.body, r.complete), (b"a" * 10240 * 16, True), "/a whole")
    go_b.set()
    A.eq(b[0].read_response().body, b"b" * 200000, "/b whole")
    A.eq(len(o.requests), 2, "requests at origin: one each")
    A.contains(cs(t.get(p, o.url("/b"))), "; hit", "/b stored")
    A.eq(t.get(p, o.url("/a")).body, b"later", "/a not stored")


def test_cache070_a_304_naming_another_etag_does_not_relabel_the_stored_body(t):
    # RFC 9111 §4.3.4: a 304 whose strong validator matches no stored
    # response must not update one. The request goes again without the
    # validators, and its whole answer replaces the stored one.
    p = t.sluice()

    def h(req, c):
        if req.header("If-None-Match"):
            c.send(b'HTTP/1.1 304 Not Modified\r\nETag: "b"\r\nCache-Control: no-cache\r\n\r\n')
            return None
        tag = '"a"' if len(c.origin.requests) == 1 else '"b"'
        c.respond(200, b"body " + tag.encode(), [("ETag", tag), ("Cache-Control", "no-cache")])
    o = t.origin(h)
    A.eq(t.get(p, o.url("/e")).body, b'body "a"', "first")
    r = t.get(p, o.url("/e"))
    A.status(r, 200)
    A.eq((r.body, r.header("ETag")), (b'body "b"', '"b"'), "the body its ETag names")
    A.eq([q.header("If-None-Match") for q in o.requests], [None, '"a"', None],
         "conditional, then again without validators")
    A.contains(cs(r), "fwd=stale; fwd-status=200; stored", "Cache-Status")
    r = t.get(p, o.url("/e"))  # the new copy is what is stored and revalidated now
    A.eq((r.body, r.header("ETag")), (b'body "b"', '"b"'), "third")
    A.eq(o.requests[3].header("If-None-Match"), '"b"', "revalidated with the new tag")


def test_cache071_answers_without_date_are_dated_on_receipt(t):
    # RFC 9110 §6.6.1: a proxy with a clock that forwards or caches a
    # response without Date adds one; a 304 without Date freshens the
    # stored copy as of its receipt (RFC 9111 §4.3.4).
    p = t.sluice()

    def h(req, c):
        if req.header("If-None-Match") == '"a"':
            c.send(b'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\n\r\n')
            return None
        c.send(b'HTTP/1.1 200 OK\r\nETag: "a"\r\nCache-Control: max-age=2\r\n'
               b'Content-Length: 1\r\n\r\nA')
    o = t.origin(h)
    r = t.get(p, o.url("/d"))
    A.eq(r.header("Date") is not None, True, "a forwarded answer has a Date")
    r = t.get(p, o.url("/d"))
    A.contains(cs(r), "; hit", "a hit")
    A.eq(r.header("Date") is not None, True, "so has a hit")
    time.sleep(2.2)
    r = t.get(p, o.url("/d"))
    A.contains(cs(r), "fwd=stale; fwd-status=304", "revalidated")
    A.eq(r.header("Age"), "0", "refreshed as of the 304's receipt")
    r = t.get(p, o.url("/d"))
    A.contains(cs(r), "; hit", "fresh again after the 304")
    A.eq(len(o.requests), 2, "requests at the origin")


def test_cache072_a_revalidation_the_client_asked_for_says_fwd_request(t):
    # RFC 9211 §2.2: a fresh response the client's no-cache kept from use
    # is fwd=request, whatever the origin's 304 then says.
    p = t.sluice()

    def h(req, c):
        if req.header("If-None-Match") == '"a"':
            c.send(b'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\n\r\n')
            return None
        c.respond(200, b"A", [("ETag", '"a"'), ("Cache-Control", "max-age=60")])
    o = t.origin(h)
    t.get(p, o.url("/q"))
    r = t.get(p, o.url("/q"), [("Cache-Control", "no-cache")])
    A.eq(o.requests[1].header("If-None-Match"), '"a"', "revalidated")
    A.contains(cs(r), "fwd=request; fwd-status=304", "Cache-Status")


def test_cache073_a_get_with_content_length_0_is_served_from_cache(t):
    p = t.sluice()
    o = t.origin(counting([("Cache-Control", "max-age=60")]))
    t.get(p, o.url("/cl0"))
    r = t.get(p, o.url("/cl0"), [("Content-Length", "0")])
    A.contains(cs(r), "; hit", "Cache-Status of a GET with Content-Length: 0")


def test_cache074_an_unsafe_method_offering_an_upgrade_still_invalidates(t):
    # RFC 9111 §4.4: the origin ignores the Upgrade offer (curl --http2
    # sends one) and answers the DELETE; the stored copy must go.
    p = t.sluice()

    def h(req, c):
        if req.method == "DELETE":
            c.respond(204, b"")
            return None
        c.respond(200, b"doc #%d" % len(c.origin.requests), [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    A.eq(t.get(p, o.url("/doc")).body, b"doc #1", "stored")
    r = t.get(p, o.url("/doc"), [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                                 ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")],
              method="DELETE")
    A.status(r, 204)
    A.eq(t.get(p, o.url("/doc")).body, b"doc #3", "not the copy stored before the DELETE")


def test_cache075_revalidations_share_the_stored_body_instead_of_copying_it(t):
    # An 8 MiB response revalidated by every request (max-age=0): each 304
    # makes a new stored head for the same body. Twenty slow readers of
    # twenty refreshed copies hold one body between them, not twenty.
    size = 8 << 20
    body = bytes(range(256)) * (size // 256)

    def h(req, c):
        if req.header("If-None-Match") == '"x"':
            c.send(b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n'
                   b"Cache-Control: max-age=0\r\n\r\n")
            return None
        c.respond(200, body, [("ETag", '"x"'), ("Cache-Control", "max-age=0")])
    o = t.origin(h)
    p = t.sluice("cache_mem 64M\ncache_max_object 12M\n")
    A.eq(len(t.get(p, o.url("/big"), timeout=20).body), size, "first answer")
    base = p.rss_kb()
    readers = []
    for _ in range(20):
        c = t.client(p, timeout=20)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send(build_request("GET", o.url("/big")))
        readers.append(c)
    wait_until(lambda: len(o.requests) >= 21, 10, "the revalidations")
    time.sleep(0.5)
    grown = (p.rss_kb() - base) // 1024
    A.eq(grown < 40, True, f"memory grown with 20 refreshed readers: {grown} MiB")
    for c in readers:
        c.close()
    r = t.get(p, o.url("/big"), timeout=20)
    A.eq((r.status, len(r.body), r.body == body), (200, size, True), "a whole refreshed body")
    A.contains(cs(r), "fwd=stale; fwd-status=304", "Cache-Status")


def test_cache076_another_variant_stored_is_a_vary_miss(t):
    # RFC 9211 §2.2: the most specific reason; uri-miss only when nothing
    # of the URL is stored.
    p = t.sluice()

    def h(req, c):
        c.respond(200, b"v", [("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")])
    o = t.origin(h)
    A.contains(cs(t.get(p, o.url("/v"), [("Accept-Encoding", "gzip")])), "fwd=uri-miss",
               "nothing stored yet")
    r = t.get(p, o.url("/v"), [("Accept-Encoding", "br")])
    A.contains(cs(r), "fwd=vary-miss; fwd-status=200; stored", "another variant stored")
    A.contains(cs(t.get(p, o.url("/v"), [("Accept-Encoding", "br")])), "; hit", "then a hit")


def test_cache077_fields_the_client_names_in_connection_are_no_part_of_the_decision(t):
    # They are hop-by-hop: not forwarded, and no part of how the request is
    # judged, whether the stored response has a Vary or not.
    p = t.sluice()
    plain = t.origin(counting([("Cache-Control", "max-age=60")]))
    varied = t.origin(counting([("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")]))
    hdrs = [("Connection", "Range"), ("Range", "bytes=0-1")]
    A.status(t.get(p, plain.url("/r")), 200)
    A.status(t.get(p, varied.url("/r")), 200)
    rp = t.get(p, plain.url("/r"), headers=hdrs)
    rv = t.get(p, varied.url("/r"), headers=hdrs)
    A.eq((rp.status, rv.status), (200, 200), "(plain, Vary) hits: the Range was the hop's")
    A.contains(cs(rp), "; hit", "a hit")

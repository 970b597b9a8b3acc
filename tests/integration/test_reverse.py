"""Reverse (accelerator) mode: origin-form requests routed to backends by
host and path, balanced over their servers, with passive health checks and
retries; what the backend receives and what the client gets back."""
import re
import subprocess
import threading
import time

from lib import asserts as A
from lib.client import build_request
from lib.origin import CLOSE
from lib.util import bin_path, scale, wait_until
from test_cache import outgrowing_origin


def named(name):
    """A handler answering 200 with the server's name and request count."""
    def h(req, c):
        c.respond(200, f"{name} #{len(c.origin.requests)} {req.target}".encode())
    return h


def rget(t, p, path, host="www.example", headers=(), method="GET", body=None):
    return t.get(p, path, [("Host", host)] + list(headers), method=method, body=body)


def test_reverse001_routed_request_reaches_backend_with_forwarding_fields(t):
    o = t.origin(named("web"))
    p = t.sluice(f"backend web {o.hostport}\nroute /  web\n")
    r = rget(t, p, "/index.html?x=1", host="www.example:8080",
             headers=[("X-Forwarded-Proto", "https"), ("X-Forwarded-For", "10.9.8.7"),
                      ("Forwarded", "for=6.6.6.6;proto=https"),
                      ("X-Forwarded-Host", "evil.example")])
    A.status(r, 200)
    A.eq(r.body, b"web #1 /index.html?x=1", "body from the backend")
    req = o.requests[0]
    A.eq(req.target, "/index.html?x=1", "target sent to the backend")
    A.eq(req.headers_named("Host"), ["www.example:8080"], "Host passed through")
    A.eq(req.headers_named("X-Forwarded-For"), ["10.9.8.7, 127.0.0.1"],
         "X-Forwarded-For keeps the chain and adds the client, on one line")
    A.eq(req.headers_named("X-Forwarded-Proto"), ["http"],
         "X-Forwarded-Proto: the client's own is replaced")
    A.eq(req.headers_named("Forwarded"), ['for=127.0.0.1;host="www.example:8080";proto=http'],
         "Forwarded: the client's own is replaced")
    A.eq(req.headers_named("X-Forwarded-Host"), [], "X-Forwarded-Host: the client's is dropped")
    A.contains(req.header("Via") or "", "testhost", "Via")
    line = p.wait_log(lambda l: "/index.html" in l, what="access log line")
    A.contains(line, "TCP_MISS/200", "access log status")
    A.contains(line, " GET http://www.example:8080/index.html?x=1 ", "access log URL")


def test_reverse002_most_specific_route_wins(t):
    names = ["api", "site", "static", "any"]
    o = {n: t.origin(named(n)) for n in names}
    p = t.sluice(f"backend api {o['api'].hostport}\n"
                 f"backend site {o['site'].hostport}\n"
                 f"backend static {o['static'].hostport}\n"
                 f"backend any {o['any'].hostport}\n"
                 "route /api api\n"
                 "route www.example site\n"
                 "route WWW.example/static static\n"
                 "route / any\n")
    for host, path, want in (("www.example", "/static/a.css", "static"),
                             ("www.example", "/static", "static"),
                             ("www.example", "/staticx", "site"),
                             ("www.example", "/api/v1", "site"),
                             ("other.example", "/api/v1", "api"),
                             ("other.example", "/api?q=1", "api"),
                             ("other.example", "/apis", "any"),
                             ("Other.Example:81", "/", "any")):
        r = rget(t, p, path, host=host)
        A.status(r, 200)
        A.eq(r.body.split(b" ")[0].decode(), want, f"backend for {host}{path}")


def test_reverse003_unrouted_requests_get_404_or_421(t):
    o = t.origin(named("web"))
    p = t.sluice(f"backend web {o.hostport}\nroute www.example/app web\n"
                 f"route api.example:8080 web\n")
    A.proxy_error(rget(t, p, "/other", host="www.example"), 404, "no route for this path")
    A.proxy_error(rget(t, p, "/app", host="elsewhere.example"), 421,
                  "does not serve that host")
    A.proxy_error(rget(t, p, "/", host="api.example:8081"), 421)
    A.status(rget(t, p, "/x", host="api.example:8080"), 200)
    A.status(rget(t, p, "/app/x", host="www.example"), 200)
    A.eq(len(o.requests), 2, "requests at the backend")


def test_reverse004_host_header_required_once(t):
    o = t.origin(named("web"))
    p = t.sluice(f"backend web {o.hostport}\nroute / web\n")
    c = t.client(p)
    c.send(b"GET / HTTP/1.1\r\n\r\n")
    A.proxy_error(c.read_response(), 400, "exactly one Host")
    c = t.client(p)
    c.send(b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n")
    A.proxy_error(c.read_response(), 400, "exactly one Host")
    c = t.client(p)
    c.send(b"GET / HTTP/1.1\r\nHost: a.example/x\r\n\r\n")
    A.proxy_error(c.read_response(), 400, "invalid Host")
    A.eq(len(o.requests), 0, "nothing reached the backend")


def test_reverse005_roundrobin_spreads_requests(t):
    a, b = t.origin(named("a")), t.origin(named("b"))
    p = t.sluice(f"backend web {a.hostport} {b.hostport}\nroute / web\n", threads=1)
    seen = [rget(t, p, f"/{i}").body.split(b" ")[0] for i in range(6)]
    A.eq(sorted(seen), [b"a"] * 3 + [b"b"] * 3, "three requests each")
    A.eq(seen[0] != seen[1], True, "alternating")


def test_reverse006_refused_server_is_skipped_and_request_retried(t):
    good = t.origin(named("good"))
    dead = t.origin(named("dead"))
    dead_addr = dead.hostport
    dead.stop()
    p = t.sluice(f"backend web {dead_addr} {good.hostport}\nroute / web\n", threads=1)
    for i in range(4):
        r = rget(t, p, f"/{i}", method="POST", body=b"data")
        A.status(r, 200)
        A.contains(r.body.decode(), "good", f"request {i} answered by the live server")
    A.eq(len(good.requests), 4, "all at the live server")
    A.eq(good.requests[0].body, b"data", "the body came through once")
    text = wait_until(lambda: "server " + dead_addr + " failed" in p.stderr_text() and
                      p.stderr_text(), 3, "health log line")
    A.eq(text.count("server " + dead_addr + " failed"), 1,
         "the dead server is tried once, then skipped")


def test_reverse007_silent_server_times_out_idempotent_retried_post_not(t):
    hold = threading.Event()
    t.defer(hold.set)

    def silent(req, c):
        hold.wait(10)
        return CLOSE
    slow = t.origin(silent)
    good = t.origin(named("good"))
    p = t.sluice(f"read_timeout 1s\nbackend_fail_timeout 30s\n"
                 f"backend web {slow.hostport} {good.hostport}\nroute / web\n", threads=1)
    # Round robin starts at the silent server for the first request.
    r = rget(t, p, "/get")
    A.status(r, 200)
    A.contains(r.body.decode(), "good", "GET retried on the next server")
    A.eq(len(slow.heads), 1, "the silent server got it first")
    # It is now skipped: a POST goes straight to the good one.
    r = rget(t, p, "/post", method="POST", body=b"x")
    A.status(r, 200)
    A.eq(len(slow.heads), 1, "the silent server is skipped while down")


def test_reverse008_post_not_retried_after_it_was_sent(t):
    hold = threading.Event()
    t.defer(hold.set)

    def silent(req, c):
        hold.wait(10)
        return CLOSE
    slow = t.origin(silent)
    p = t.sluice(f"read_timeout 1s\nbackend web {slow.hostport}\nroute / web\n")
    r = rget(t, p, "/post", method="POST", body=b"x")
    A.proxy_error(r, 504, "no response")
    A.eq(len(slow.heads), 1, "sent once, not again")


def post_on_a_kept_connection(t, fail):
    """Backends a and b in round robin: a GET to each, then a POST that goes
    on a's kept connection, where fail(c) meets it. Returns the proxy, a,
    the POST's answer, and who answered four GETs after it."""
    def h(req, c):
        if req.method == "POST":
            fail(c)
            return CLOSE
        c.respond(200, f"a {req.target}".encode())
    a, b = t.origin(h), t.origin(named("b"))
    p = t.sluice(f"backend web {a.hostport} {b.hostport}\nroute / web\n", threads=1)
    A.eq(rget(t, p, "/1").body, b"a /1", "round robin starts at a")
    A.eq(rget(t, p, "/2").body.split(b" ")[0], b"b", "then b")
    r = rget(t, p, "/3", method="POST", body=b"x")
    A.eq(a.accepted, 1, "the POST went on a's kept connection")
    seen = [rget(t, p, f"/{i}").body.split(b" ")[0] for i in range(4, 8)]
    return p, a, r, seen


def test_reverse029_a_reset_kept_connection_does_not_mark_its_server_down(t):
    # A POST on a kept connection that the server resets (as when it closes
    # the connection as idle while the request is on its way) cannot be
    # sent again: 502. But it says nothing of the server's health.
    p, a, r, seen = post_on_a_kept_connection(t, lambda c: c.reset())
    A.proxy_error(r, 502, "reset")
    A.eq(sorted(seen), [b"a"] * 2 + [b"b"] * 2, "a still takes its turn")
    A.eq("failed" in p.stderr_text(), False, "no health warning")
    A.contains(p.stderr_text(), "a kept connection ended before the answer",
               "the error log names what happened")


def test_reverse030_a_kept_connection_reset_mid_head_still_marks_its_server_down(t):
    # Part of an answer says the server took the request: that failure
    # counts, kept connection or not.
    def half_then_reset(c):
        c.send(b"HTTP/1.1 200 OK\r\nContent-Le")
        time.sleep(0.1)
        c.reset()
    p, a, r, seen = post_on_a_kept_connection(t, half_then_reset)
    A.status(r, 502)
    A.eq(seen, [b"b"] * 4, "a is skipped while down")
    A.contains(p.stderr_text(), "server " + a.hostport + " failed", "health warning")


def test_reverse009_leastconn_avoids_a_busy_server(t):
    hold = threading.Event()
    t.defer(hold.set)

    def busy(req, c):
        if req.target == "/slow":
            hold.wait(10)
        c.respond(200, b"busy")
    a, b = t.origin(busy), t.origin(named("idle"))
    p = t.sluice(f"backend web {a.hostport} {b.hostport} balance leastconn\nroute / web\n",
                 threads=1)
    # Make one request stick on whichever server takes /slow.
    c = t.client(p)
    c.send(b"GET /slow HTTP/1.1\r\nHost: w\r\n\r\n")
    deadline = time.time() + 5
    while not a.heads and not b.heads and time.time() < deadline:
        time.sleep(0.02)
    if b.heads:
        # /slow went to the named server: it answers at once, so retry.
        A.eq(c.read_response().status, 200, "slow on b")
        c = t.client(p)
        c.send(b"GET /slow HTTP/1.1\r\nHost: w\r\n\r\n")
        deadline = time.time() + 5
        while not a.heads and time.time() < deadline:
            time.sleep(0.02)
    A.eq(len(a.heads), 1, "one request held at the busy server")
    for i in range(4):
        A.eq(rget(t, p, f"/{i}", host="w").body.split(b" ")[0], b"idle",
             f"request {i} goes to the idle server")
    hold.set()
    A.eq(c.read_response().body, b"busy", "the held request completes")


def test_reverse010_hash_keeps_a_url_on_one_server(t):
    a, b = t.origin(named("a")), t.origin(named("b"))
    p = t.sluice(f"backend web {a.hostport} {b.hostport} balance hash\nroute / web\n")
    first = {}
    for rnd in range(2):
        for i in range(16):
            who = rget(t, p, f"/obj{i}").body.split(b" ")[0]
            if rnd == 0:
                first[i] = who
            else:
                A.eq(who, first[i], f"/obj{i} stays on its server")
    A.eq(set(first.values()), {b"a", b"b"}, "URLs spread over both servers")


def test_reverse011_forward_off_routes_absolute_form_and_refuses_connect(t):
    o = t.origin(named("web"))
    p = t.sluice(f"forward off\nbackend web {o.hostport}\nroute www.example web\n")
    r = t.get(p, "http://www.example/abs")
    A.status(r, 200)
    A.eq(o.requests[0].header("Host"), "www.example", "Host from the absolute URL")
    A.proxy_error(t.get(p, "http://not-routed.example/"), 421)
    c = t.client(p)
    c.send(b"CONNECT www.example:443 HTTP/1.1\r\nHost: www.example:443\r\n\r\n")
    A.proxy_error(c.read_response(), 403, "forward proxying is off")
    A.eq(len(o.requests), 1, "requests at the backend")


def test_reverse012_routes_open_to_all_forwarding_only_to_allowed(t):
    o = t.origin(named("web"))
    p = t.sluice(f"allow none\nbackend web {o.hostport}\nroute www.example web\n")
    A.status(rget(t, p, "/", host="www.example"), 200)
    A.proxy_error(t.get(p, o.url("/direct")), 403, "client address not allowed")
    A.eq(len(o.requests), 1, "only the routed request arrived")


def test_reverse013_cache_serves_hits_in_front_of_the_backend(t):
    def h(req, c):
        c.respond(200, f"v{len(c.origin.requests)}".encode(),
                  [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    p = t.sluice(f"backend web {o.hostport}\nroute / web\n")
    r1 = rget(t, p, "/page", host="www.example")
    A.contains(r1.header("Cache-Status") or "", "stored", "first Cache-Status")
    r2 = rget(t, p, "/page", host="WWW.EXAMPLE")
    A.eq(r2.body, b"v1", "second from cache")
    A.contains(r2.header("Cache-Status") or "", "hit", "second Cache-Status")
    A.eq(rget(t, p, "/page", host="other.example").body, b"v2",
         "another host is another URL")
    # A POST invalidates the URL it names.
    A.status(rget(t, p, "/page", host="www.example", method="POST", body=b""), 200)
    A.eq(rget(t, p, "/page", host="www.example").body, b"v4", "after POST: from the backend")
    A.eq(len(o.requests), 4, "requests at the backend")


def test_reverse014_backend_connections_are_reused(t):
    o = t.origin(named("web"))
    p = t.sluice(f"backend web {o.hostport}\nroute / web\ncache off\n")
    c = t.client(p)
    for i in range(3):
        c.send(f"GET /k{i} HTTP/1.1\r\nHost: w\r\n\r\n".encode())
        A.status(c.read_response(), 200)
    A.eq(o.accepted, 1, "one backend connection for three requests")


def test_reverse015_config_errors_name_file_and_line(t):
    for text, line, why in (
            ("backend web 127.0.0.1:1\nroute / nosuch\n", 2, "route: no backend named"),
            ("backend web\n", 1, "expected at least 2 arguments"),
            ("backend web 127.0.0.1\n", 1, "expected HOST:PORT"),
            ("backend web a:1 balance random\n", 1, "expected roundrobin, leastconn or hash"),
            ("backend web a:1\nbackend web b:1\n", 2, "defined twice"),
            ("backend web a:1\nroute x?y web\n", 2, "expected HOST"),
            ("backend web a:1\nroute /a web\nroute /a web\n", 3, "routed twice")):
        path = t.path("bad.conf")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([bin_path(), "-t", "-c", "bad.conf"], cwd=t.tmpdir,
                           capture_output=True, timeout=10 * scale(), text=True)
        A.eq(r.returncode, 1, f"exit status of -t for {text!r} (stderr {r.stderr!r})")
        if not re.search(rf"(^|\n)bad\.conf:{line}: .*{re.escape(why)}", r.stderr):
            raise AssertionError(f"stderr for {text!r} should say 'bad.conf:{line}: ...{why}', "
                                 f"got {r.stderr!r}")


def test_reverse016_stale_while_revalidate_refreshes_through_the_route(t):
    state = {"v": 1}

    def h(req, c):
        c.respond(200, b"v%d" % state["v"],
                  [("Cache-Control", "max-age=%d, stale-while-revalidate=30" %
                    (1 if state["v"] == 1 else 60))])
    o = t.origin(h)
    p = t.sluice(f"forward off\nbackend web {o.hostport}\nroute www.example web\n")
    A.eq(rget(t, p, "/s", host="www.example").body, b"v1", "stored")
    time.sleep(2.1)
    state["v"] = 2
    A.eq(rget(t, p, "/s", host="www.example").body, b"v1", "stale at once")
    wait_until(lambda: rget(t, p, "/s", host="www.example").body == b"v2", 5,
               "the refreshed copy")
    A.eq(o.requests[1].header("Host"), "www.example", "the refresh keeps the Host")
    A.eq(len(o.requests), 2, "requests at the backend")


def test_reverse017_a_head_miss_is_fetched_as_a_get_and_stored(t):
    def h(req, c):
        n = len(c.origin.requests)
        cc = "private" if req.target.startswith("/priv") else "max-age=60"
        body = f"{req.target} v{n} ".encode() * 100
        if req.target.startswith("/chunked"):
            c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            return
        c.respond(200, b"" if req.method == "HEAD" else body, [("Cache-Control", cc)] +
                  ([("Content-Length", str(len(body)))] if req.method == "HEAD" else []))
    o = t.origin(h)
    p = t.sluice(f"backend web {o.hostport}\nroute / web\n")
    c = t.client(p)
    c.send(b"HEAD /page HTTP/1.1\r\nHost: w\r\n\r\n")
    r = c.read_response(method="HEAD")
    A.status(r, 200)
    A.eq(r.body, b"", "a HEAD gets no body")
    A.eq(r.header("Content-Length"), str(len(b"/page v1 " * 100)), "the length a GET gets")
    A.contains(r.header("Cache-Status") or "", "fwd=uri-miss", "Cache-Status")
    A.contains(r.header("Cache-Status") or "", "stored", "Cache-Status")
    A.eq(o.requests[0].method, "GET", "the backend was asked a GET")
    # The same connection goes on; a GET, then a HEAD, are hits.
    c.send(b"GET /page HTTP/1.1\r\nHost: w\r\n\r\n")
    r = c.read_response()
    A.eq(r.body, b"/page v1 " * 100, "the body the HEAD's fetch stored")
    A.contains(r.header("Cache-Status") or "", "hit", "a hit")
    c.send(b"HEAD /page HTTP/1.1\r\nHost: w\r\n\r\n")
    A.contains(c.read_response(method="HEAD").header("Cache-Status") or "", "hit", "HEAD hit")
    A.eq(len(o.requests), 1, "requests at the backend")
    # A chunked answer is stored the same way.
    c.send(b"HEAD /chunked HTTP/1.1\r\nHost: w\r\n\r\n")
    r = c.read_response(method="HEAD")
    A.eq((r.status, r.body), (200, b""), "HEAD of a chunked answer")
    c.send(b"GET /chunked HTTP/1.1\r\nHost: w\r\n\r\n")
    A.eq(c.read_response().body, b"/chunked v2 " * 100, "chunked body from the store")
    A.eq(len(o.requests), 2, "requests at the backend")
    # Not storable: the HEAD still gets its head, the body is left unread,
    # and the client's connection carries on.
    for i in (3, 4):
        c.send(b"HEAD /priv HTTP/1.1\r\nHost: w\r\n\r\n")
        r = c.read_response(method="HEAD")
        A.eq((r.status, r.body, r.header("Content-Length")), (200, b"", str(len(b"/priv vN " * 100))), "private HEAD")
        A.eq(len(o.requests), i, "each private HEAD asks the backend")
    A.eq([r.method for r in o.requests], ["GET"] * 4, "methods at the backend")
    line = p.wait_log(lambda l: "HEAD" in l and "/priv" in l, what="access log line")
    A.contains(line, "TCP_MISS/200", "logged")


def test_reverse018_a_forwarded_head_stays_a_head(t):
    o = t.origin(named("web"))
    p = t.sluice(f"backend web {o.hostport}\nroute www.example web\n")
    A.status(t.get(p, o.url("/f"), method="HEAD"), 200)
    A.eq(o.requests[0].method, "HEAD", "forward proxying does not turn HEAD into GET")


def test_reverse019_a_head_fetch_too_big_to_store_is_cut_short(t):
    # A chunked answer that outgrows cache_max_object while a HEAD's GET
    # fetches it: the rest is not read, the client's connection goes on.
    o = outgrowing_origin(t)
    p = t.sluice(f"backend web {o.hostport}\nroute / web\ncache_max_object 4k\n")
    c = t.client(p)
    c.send(b"HEAD /big HTTP/1.1\r\nHost: w\r\n\r\n")
    r = c.read_response(method="HEAD")
    A.eq((r.status, r.body), (200, b""), "the HEAD's answer")
    c.send(b"GET /big HTTP/1.1\r\nHost: w\r\n\r\n")
    r = c.read_response()
    A.eq(len(r.body), 20 * 1024, "the GET's whole body")
    A.eq(len(o.requests), 2, "not stored: the GET asked the backend again")
    A.eq(o.cut, ["/big"], "the HEAD's fetch was cut, the GET's was not")


def cut_origin(t, hold=None):
    """A backend whose /cut sends 1000 of 100000 bytes, then stops (closes,
    or first waits on hold); anything else is answered "other"."""
    def h(req, c):
        if req.target != "/cut":
            c.respond(200, b"other", [("Cache-Control", "no-store")])
            return None
        c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
               b"Content-Length: 100000\r\n\r\n" + b"x" * 1000)
        if hold:
            hold.wait(10)
        time.sleep(0.2)
        return CLOSE
    return t.origin(h)


def test_reverse021_a_head_fetch_that_fails_after_the_head_keeps_the_client(t):
    # The client has its whole answer when the head is out: the backend
    # closing mid-body, or stalling past read_timeout, ends the fetch, not
    # the client's connection.
    hold = threading.Event()
    t.defer(hold.set)
    for conf, origin in (("", cut_origin(t)), ("read_timeout 1s\n", cut_origin(t, hold))):
        p = t.sluice(f"backend web {origin.hostport}\nroute / web\n" + conf)
        c = t.client(p, timeout=10)
        c.send(b"HEAD /cut HTTP/1.1\r\nHost: w\r\n\r\nGET /other HTTP/1.1\r\nHost: w\r\n\r\n")
        r = c.read_response(method="HEAD")
        A.eq((r.status, r.header("Content-Length")), (200, "100000"), "the HEAD's answer")
        r = c.read_response()
        A.eq((r.status, r.body), (200, b"other"), "the next request on the connection")
        wait_until(lambda: "/cut ended short" in p.stderr_text(), 5, "the fetch's end")
        c.send(b"HEAD /cut HTTP/1.1\r\nHost: w\r\n\r\n")
        A.status(c.read_response(method="HEAD"), 200)
        A.eq([x.target for x in origin.requests], ["/cut", "/other", "/cut"],
             "nothing was stored: the backend is asked again")


def test_reverse020_heads_and_gets_of_a_cold_url_make_one_backend_request(t):
    go = threading.Event()
    t.defer(go.set)
    body = b"x" * 50000

    def h(req, c):
        go.wait(10)
        c.respond(200, body, [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    p = t.sluice(f"backend web {o.hostport}\nroute / web\n")
    cs_ = []
    for m in ("HEAD", "GET", "HEAD", "GET"):
        c = t.client(p, timeout=10)
        c.send(f"{m} /cold HTTP/1.1\r\nHost: w\r\n\r\n".encode())
        cs_.append((m, c))
        if len(cs_) == 1:
            o.wait_requests(1)
    time.sleep(0.3)
    go.set()
    for m, c in cs_:
        r = c.read_response(method=m)
        A.eq((r.status, r.body), (200, b"" if m == "HEAD" else body), m)
        A.eq(r.header("Content-Length"), str(len(body)), m + " Content-Length")
    A.eq([r.method for r in o.requests], ["GET"], "one GET at the backend")


def test_reverse022_a_head_refetch_replaces_a_stale_copy_without_validators(t):
    # Nothing to revalidate with: the HEAD goes as a GET, and its answer
    # (a GET's, not a HEAD's: no §4.3.5 judging) is stored.
    # The first answer goes stale in a second, the next stays fresh (a
    # slow machine must not see it stale too before the GET comes).
    o = t.origin(lambda req, c: c.respond(
        200, b"v%d" % len(c.origin.requests),
        [("Cache-Control", "max-age=1" if len(c.origin.requests) == 1 else "max-age=60")]))
    p = t.sluice(f"backend web {o.hostport}\nroute / web\n")
    c = t.client(p)
    c.send(b"GET /nv HTTP/1.1\r\nHost: w\r\n\r\n")
    A.eq(c.read_response().body, b"v1", "stored")
    time.sleep(2.1)  # stale
    c.send(b"HEAD /nv HTTP/1.1\r\nHost: w\r\n\r\n")
    A.status(c.read_response(method="HEAD"), 200)
    c.send(b"GET /nv HTTP/1.1\r\nHost: w\r\n\r\n")
    r = c.read_response()
    A.eq(r.body, b"v2", "the body the HEAD's fetch stored")
    A.contains(r.header("Cache-Status") or "", "; hit", "a hit")
    A.eq([x.method for x in o.requests], ["GET", "GET"], "requests at the backend")


def test_reverse023_a_head_refetch_of_a_stale_404_keeps_the_backend_in_step(t):
    # A stale stored 404 with an ETag is not revalidated (only 200s are):
    # the HEAD goes as a GET, whose 200 has a body that must be read, not
    # left on a pooled connection for the next request to find.
    evil = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: no-store\r\n\r\nEVIL!"

    def h(req, c):
        if req.target == "/other":
            c.respond(200, b"other", [("Cache-Control", "no-store")])
        elif len(c.origin.requests) == 1:
            c.respond(404, b"n" * len(evil), [("Cache-Control", "max-age=1"), ("ETag", '"e"')])
        else:
            c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nETag: \"e\"\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(evil))
            time.sleep(0.5)
            c.send(evil)
    o = t.origin(h)
    p = t.sluice(f"backend web {o.hostport}\nroute / web\nthreads 1\n")
    c = t.client(p)
    c.send(b"GET /nf HTTP/1.1\r\nHost: w\r\n\r\n")
    A.status(c.read_response(), 404)
    time.sleep(2.1)  # stale
    c.send(b"HEAD /nf HTTP/1.1\r\nHost: w\r\n\r\n")
    A.status(c.read_response(method="HEAD"), 200)
    c.send(b"GET /other HTTP/1.1\r\nHost: w\r\n\r\n")
    A.eq(c.read_response().body, b"other", "the backend's answer to /other")
    c.send(b"GET /nf HTTP/1.1\r\nHost: w\r\n\r\n")
    A.eq(c.read_response().body, evil, "the 200 the HEAD's fetch stored")


def test_reverse024_a_head_decided_twice_holds_one_stored_copy(t):
    # A HEAD of a stale variant (no validators) waits on a GET's fetch of
    # it, which turns out to vary on another field: the HEAD is decided
    # again, finding the stale variant again. (Under the sanitizer build a
    # second reference held would show as a leak.)
    go = threading.Event()
    t.defer(go.set)

    def h(req, c):
        n = len(c.origin.requests)
        if n == 1:
            c.respond(200, b"a1", [("Cache-Control", "max-age=1"), ("Vary", "X")])
            return
        if n == 2:
            go.wait(10)
        c.respond(200, b"b%d" % n, [("Cache-Control", "max-age=60"), ("Vary", "Y")])
    o = t.origin(h)
    p = t.sluice(f"backend web {o.hostport}\nroute / web\n")
    c = t.client(p)
    c.send(b"GET /v HTTP/1.1\r\nHost: w\r\nX: a\r\n\r\n")
    A.eq(c.read_response().body, b"a1", "stored")
    time.sleep(2.1)  # stale
    g = t.client(p, timeout=10)
    g.send(b"GET /v HTTP/1.1\r\nHost: w\r\nX: a\r\nY: 1\r\n\r\n")
    o.wait_requests(2)
    hd = t.client(p, timeout=10)
    hd.send(b"HEAD /v HTTP/1.1\r\nHost: w\r\nX: a\r\nY: 2\r\n\r\n")
    time.sleep(0.3)
    go.set()
    A.eq(g.read_response().body, b"b2", "the GET")
    A.status(hd.read_response(method="HEAD"), 200)
    A.eq(len(o.requests), 3, "the HEAD fetched its own variant")


def test_reverse025_a_head_client_does_not_wait_for_its_fetch(t):
    # The body comes slowly; the HEAD's client has its answer with the head
    # and its next request is served while the fetch goes on elsewhere.
    done = threading.Event()

    def h(req, c):
        if req.target != "/slow":
            c.respond(200, b"other", [("Cache-Control", "no-store")])
            return
        c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 20000\r\n\r\n")
        for _ in range(20):
            c.send(b"x" * 1000)
            time.sleep(0.05)
        done.set()
    o = t.origin(h)
    p = t.sluice(f"backend web {o.hostport}\nroute / web\n")
    c = t.client(p)
    c.send(b"HEAD /slow HTTP/1.1\r\nHost: w\r\n\r\nGET /other HTTP/1.1\r\nHost: w\r\n\r\n")
    A.eq(c.read_response(method="HEAD").header("Content-Length"), "20000", "the HEAD's answer")
    A.eq(c.read_response().body, b"other", "the next request")
    A.eq(done.is_set(), False, "answered before the HEAD's fetch was over")
    done.wait(5)
    stored = lambda: t.get(p, "/slow", [("Host", "w"), ("Cache-Control", "only-if-cached")])  # noqa: E731
    wait_until(lambda: stored().status == 200, 5, "the fetch to be stored")
    c.send(b"GET /slow HTTP/1.1\r\nHost: w\r\n\r\n")
    r = c.read_response()
    A.eq(r.body, b"x" * 20000, "the body the fetch stored")
    A.contains(r.header("Cache-Status") or "", "; hit", "a hit")
    A.eq(len(o.requests), 2, "backend requests: the HEAD's fetch and /other")


def test_reverse027_a_head_is_logged_when_answered_not_when_its_fetch_ends(t):
    go = threading.Event()
    t.defer(go.set)

    def h(req, c):
        c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 2000\r\n\r\n")
        c.send(b"x" * 1000)
        go.wait(10)
        c.send(b"x" * 1000)
    o = t.origin(h)
    p = t.sluice(f"backend web {o.hostport}\nroute / web\n")
    r = t.get(p, "/held", [("Host", "w")], method="HEAD")
    A.eq(r.header("Content-Length"), "2000", "the HEAD's answer")
    # (The fetch cannot end before go is set.)
    line = p.wait_log(lambda l: " HEAD " in l and "/held" in l, what="the HEAD's line")
    A.contains(line, "TCP_MISS/200", "the HEAD's status")
    go.set()
    stored = lambda: t.get(p, "/held", [("Host", "w"), ("Cache-Control", "only-if-cached")])  # noqa: E731
    wait_until(lambda: stored().status == 200, 5, "the fetch to be stored")
    A.eq(len([l for l in p.access_lines() if " HEAD " in l]), 1, "one line for the HEAD")


def test_reverse028_a_flood_of_heads_leaves_room_for_background_refreshes(t):
    # Each HEAD's fetch is held by the backend: at most a few of them go on
    # without their clients, and a stale-while-revalidate refresh still
    # gets its turn.
    go = threading.Event()
    t.defer(go.set)

    def h(req, c):
        if req.target == "/swr":
            n = sum(1 for q in c.origin.requests if q.target == "/swr")
            c.respond(200, b"copy #%d" % n,
                      [("Cache-Control", "max-age=1, stale-while-revalidate=60"),
                       ("ETag", '"e%d"' % n)])
            return
        c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 10\r\n\r\n")
        go.wait(20)
        c.send(b"y" * 10)
    o = t.origin(h)
    p = t.sluice(f"backend web {o.hostport}\nroute / web\n", threads=1)
    A.eq(rget(t, p, "/swr").body, b"copy #1", "stored")
    time.sleep(2.1)  # stale, within stale-while-revalidate
    heads = []
    for i in range(80):
        c = t.client(p, timeout=10)
        c.send(b"HEAD /h/%d HTTP/1.1\r\nHost: w\r\n\r\n" % i)
        heads.append(c)
    for c in heads:
        A.eq(c.read_response(method="HEAD").status, 200, "a HEAD's answer")
    r = rget(t, p, "/swr")
    A.eq(r.body, b"copy #1", "the stale copy")
    A.contains(r.header("Cache-Status") or "", "stale-while-revalidate", "answered stale")
    wait_until(lambda: sum(1 for q in o.requests if q.target == "/swr") == 2, 5,
               "the background refresh to reach the backend")
    go.set()


def test_reverse026_a_get_pipelined_behind_a_head_gets_its_whole_body(t):
    # Of unknown length, the HEAD's fetch may yet be dropped for its size:
    # it stays in the client's session, and the GET behind it is not
    # collapsed on it (which would cut it off when the fill is dropped).
    o = outgrowing_origin(t)
    p = t.sluice(f"backend web {o.hostport}\nroute / web\ncache_max_object 4k\n")
    c = t.client(p, timeout=10)
    c.send(b"HEAD /big HTTP/1.1\r\nHost: w\r\n\r\nGET /big HTTP/1.1\r\nHost: w\r\n\r\n")
    A.eq(c.read_response(method="HEAD").status, 200, "the HEAD")
    r = c.read_response()
    A.eq((len(r.body), r.complete), (20 * 1024, True), "the GET's whole body")


def test_reverse034_hits_take_no_turn_of_the_round_robin(t):
    # A hit, cached or collapsed, goes to no server: it neither moves the
    # round robin nor counts as a request in flight for leastconn.
    def h(name):
        def f(req, c):
            cc = "max-age=600" if req.target == "/static" else "no-store"
            c.respond(200, f"{name} {req.target}".encode(), [("Cache-Control", cc)])
        return f
    a, b = t.origin(h("a")), t.origin(h("b"))
    p = t.sluice(f"backend web {a.hostport} {b.hostport}\nroute / web\n")
    served = []
    for i in range(10):
        A.status(rget(t, p, "/static"), 200)
        served.append(rget(t, p, f"/dyn{i}").body.split()[0])
    A.eq(sorted(served), [b"a"] * 5 + [b"b"] * 5, f"dynamic requests alternate: {served}")
    A.eq(len(a.requests) + len(b.requests), 11, "backend requests: /static once")


def expect_then(t, body_part):
    """Two servers that read a whole body before answering; a POST of 10
    bytes with Expect: 100-continue, then body_part and nothing more.
    Returns the proxy (read_timeout 1s) and what the client got."""
    a, b = t.origin(named("a")), t.origin(named("b"))
    p = t.sluice(f"backend web {a.hostport} {b.hostport}\nroute / web\nread_timeout 1s\n")
    c = t.client(p, timeout=10)
    c.send(b"POST /up HTTP/1.1\r\nHost: www.example\r\nExpect: 100-continue\r\n"
           b"Content-Length: 10\r\n\r\n" + body_part)
    return p, c.read_response(method="POST")


def test_reverse035_a_client_waiting_for_100_continue_is_no_fault_of_the_server(t):
    # The client sends Expect: 100-continue and waits; the backend waits for
    # the body. After read_timeout the client gets a 504, and the server is
    # not marked down: a client could otherwise take every server out.
    p, r = expect_then(t, b"")
    A.proxy_error(r, 504, detail="no 100 Continue or response from backend web in time")
    A.not_contains(p.stderr_text(), "skipped for", "error log: no server marked down")
    A.eq(any("backend web: server 127.0.0.1:" in l and ": no 100 Continue or response" in l
             for l in p.stderr_text().splitlines()), True, "error log: the server named")
    served = sorted(rget(t, p, f"/n{i}").body.split()[0] for i in range(4))
    A.eq(served, [b"a", b"a", b"b", b"b"], "both servers take their turns at once")


def test_reverse036_dot_segments_cannot_leave_a_route(t):
    # Only /public is routed: no spelling of a path that a server behind
    # would resolve to somewhere else gets through; equivalent spellings of
    # a routed path are routed.
    o = t.origin(named("pub"))
    p = t.sluice(f"backend pub {o.hostport}\nroute www.example/public pub\n")
    for path in ["/public/../admin", "/public/%2e%2e/admin", "/public/..%2fadmin",
                 "/public/..;/admin", "/public/./x"]:
        A.proxy_error(rget(t, p, path), 400, detail='dot segment ("." or "..") in the path')
    A.status(rget(t, p, "/admin"), 404)
    A.eq(rget(t, p, "/%70ublic/x").body, b"pub #1 /%70ublic/x", "an encoded letter, as sent")
    A.eq(rget(t, p, "/public;s=1").body, b"pub #2 /public;s=1", "path parameters")
    A.eq(len(o.requests), 2, "backend requests")


def test_reverse037_error_pages_name_the_backend_not_its_servers(t):
    from lib.util import free_port
    port = free_port()
    p = t.sluice(f"backend web 127.0.0.1:{port}\nroute / web\n")
    r = rget(t, p, "/")
    A.proxy_error(r, 502, detail="cannot connect to backend web: Connection refused",
                  proxy_status="connection_refused")
    A.not_contains(r.body.decode(), str(port), "the error page")
    A.contains(p.stderr_text(), f"server 127.0.0.1:{port} failed", "the error log names it")
    A.eq(p.stderr_text().count(f"server 127.0.0.1:{port}"), 1, "once")


def test_reverse040_an_invalid_answer_names_its_server_in_the_error_log(t):
    # Not a failure held against the server (it answered), but the page
    # names only the backend: the log says which server it was.
    from lib import origin as O
    o = t.origin(O.garbage())
    p = t.sluice(f"backend web {o.hostport}\nroute / web\n")
    r = rget(t, p, "/g")
    A.proxy_error(r, 502, detail="invalid response from origin")
    A.not_contains(r.body.decode(), str(o.port), "the error page")
    wait_until(lambda: f"backend web: server {o.hostport}: invalid response" in p.stderr_text(),
               3, "the error log line naming the server")


def test_reverse038_trailing_dot_and_ipv6_literal_hosts_match_their_routes(t):
    o = t.origin(named("web"))
    p = t.sluice(f"backend web {o.hostport}\nroute www.example web\nroute [::1] web\n")
    A.eq(rget(t, p, "/a", host="www.example.").body, b"web #1 /a", "trailing dot")
    A.eq(rget(t, p, "/b", host="[0:0::1]").body, b"web #2 /b", "another spelling of ::1")
    A.eq(rget(t, p, "/c", host="[::1]:8080").body, b"web #3 /c", "any port")
    A.status(rget(t, p, "/d", host="[::2]"), 421)


def test_reverse039_a_client_that_stops_mid_body_after_expect_gets_408(t):
    # It asked for a 100 Continue, then sent part of the body and stopped:
    # it is the one late, not the server.
    p, r = expect_then(t, b"abc")
    A.proxy_error(r, 408, detail="request body not received in time")
    A.not_contains(p.stderr_text(), "skipped for", "error log: no server marked down")


def test_reverse041_a_trailing_dot_host_is_one_cache_entry_for_hits_and_purge(t):
    def h(req, c):
        c.respond(200, f"#{len(c.origin.requests)} {req.header('Host')}".encode(),
                  [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    p = t.sluice(f"backend web {o.hostport}\nroute www.example web\n"
                 "cache_purge_allow 127.0.0.1\n")
    A.eq(rget(t, p, "/a", host="www.example.").body, b"#1 www.example.", "miss")
    r = rget(t, p, "/a", host="WWW.example")
    A.eq(r.body, b"#1 www.example.", "the same URL without the root's dot is a hit")
    A.contains(r.header("Cache-Status"), "; hit", "Cache-Status")
    r = rget(t, p, "/a", host="www.example", method="PURGE")
    A.status(r, 200)
    A.contains(r.body.decode(), "purged 1 stored response", "PURGE answer")
    A.eq(rget(t, p, "/a", host="www.example.").body, b"#2 www.example.",
         "the spelling with the dot was purged too")
    # A POST invalidates the URL however the Location spells its host.
    def post(req, c):
        c.respond(201, b"made", [("Location", f"http://www.example./a")])
    o.handler = post
    A.status(rget(t, p, "/new", method="POST", body=b"x"), 201)
    o.handler = h
    A.eq(rget(t, p, "/a", host="www.example").body, b"#4 www.example", "invalidated")


def test_reverse042_variants_are_selected_by_the_request_as_forwarded(t):
    # Answers are stored under the request the backend got, which has the
    # fields this proxy writes: a lookup must read those too. A Vary on
    # X-Forwarded-Proto then hits, and a client cannot pick another
    # client's X-Forwarded-For variant by sending its forwarded value.
    def h(req, c):
        vary = "X-Forwarded-Proto" if req.target == "/p" else "X-Forwarded-For"
        c.respond(200, f"#{len(c.origin.requests)} {req.header('X-Forwarded-For')}".encode(),
                  [("Cache-Control", "max-age=60"), ("Vary", vary)])
    o = t.origin(h)
    p = t.sluice(f"backend web {o.hostport}\nroute / web\n")
    rget(t, p, "/p")
    r = rget(t, p, "/p")
    A.contains(r.header("Cache-Status"), "; hit", "a Vary on X-Forwarded-Proto hits")
    A.eq(rget(t, p, "/f").body, b"#2 127.0.0.1", "the first client's variant")
    c = t.client(p, source="127.0.0.2")
    r = c.request(build_request("GET", "/f", [("Host", "www.example"),
                                              ("X-Forwarded-For", "127.0.0.1")]))
    A.eq(r.body, b"#3 127.0.0.1, 127.0.0.2", "its own variant, from the backend")

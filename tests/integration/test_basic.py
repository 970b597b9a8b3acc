"""Forwarding basics: methods, target and Host rewriting, hop-by-hop headers,
Via, X-Forwarded-For, HTTP/1.0 on either side, OPTIONS, curl -x."""
import socket

from lib import asserts as A
from lib import origin as O
from lib.client import build_request

VIA = "1.1 testhost (sluice)"


def test_basic001_get(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"hello world\n"))
    r = t.get(p, o.url("/a/b?c=d&e"))
    A.status(r, 200)
    A.eq(r.body, b"hello world\n", "body")
    A.eq(r.header("Content-Type"), "text/plain", "Content-Type from origin")
    req = o.wait_requests(1)[0]
    A.eq(req.method, "GET", "method at origin")
    A.eq(req.target, "/a/b?c=d&e", "origin-form target")
    A.eq(req.version, "HTTP/1.1", "version at origin")
    A.eq(req.headers_named("Host"), [f"127.0.0.1:{o.port}"], "Host at origin")


def test_basic002_head(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"0123456789"))
    c = t.client(p)
    r = c.request(build_request("HEAD", o.url("/h")))
    A.status(r, 200)
    A.eq(r.header("Content-Length"), "10", "Content-Length of HEAD response")
    A.eq(o.requests[0].method, "HEAD", "method at origin")
    # No body follows: the next response on the connection starts right away.
    r2 = c.request(build_request("GET", o.url("/g")))
    A.status(r2, 200)
    A.eq(r2.body, b"0123456789", "GET after HEAD")


def test_basic003_post(t):
    p = t.sluice()
    o = t.origin(O.echo())
    body = bytes(range(256)) * 10
    r = t.get(p, o.url("/post"), method="POST", body=body,
              headers=[("Content-Type", "application/octet-stream")])
    A.status(r, 200)
    A.eq(r.body, body, "echoed body")
    req = o.requests[0]
    A.eq((req.method, req.target), ("POST", "/post"), "request at origin")
    A.eq(req.raw_body, body, "body bytes at origin")
    A.eq(req.header("Content-Length"), str(len(body)), "Content-Length at origin")


def test_basic004_put(t):
    p = t.sluice()
    o = t.origin(O.echo())
    r = t.get(p, o.url("/res/1"), method="PUT", body=b"new contents")
    A.status(r, 200)
    A.eq(r.body, b"new contents", "echoed body")
    A.eq((o.requests[0].method, o.requests[0].body), ("PUT", b"new contents"), "at origin")


def test_basic005_delete(t):
    p = t.sluice()
    o = t.origin(O.respond(204, b"", headers=()))
    c = t.client(p)
    r = c.request(build_request("DELETE", o.url("/res/1")))
    A.status(r, 204)
    A.eq(r.body, b"", "204 body")
    A.eq((o.requests[0].method, o.requests[0].target), ("DELETE", "/res/1"), "at origin")


def test_basic006_unknown_method(t):
    p = t.sluice()
    o = t.origin(O.echo())
    r = t.get(p, o.url("/x"), method="FROBNICATE", body=b"abc")
    A.status(r, 200)
    A.eq(r.header("X-Method"), "FROBNICATE", "method seen by origin")
    A.eq(o.requests[0].body, b"abc", "body at origin")


def test_basic007_host_replaced(t):
    p = t.sluice()
    o = t.origin()
    r = t.get(p, o.url("/"), headers=[("Host", "wrong.example:1234")])
    A.status(r, 200)
    A.eq(o.requests[0].headers_named("Host"), [f"127.0.0.1:{o.port}"], "Host lines at origin")


def test_basic008_host_port80_omitted(t):
    p = t.sluice()
    try:
        o = t.origin(O.respond(body=b"port80"), port=80)
    except OSError as e:
        raise AssertionError(f"cannot bind 127.0.0.1:80 for this test: {e}") from None
    r = t.get(p, "http://127.0.0.1:80/eighty")
    A.status(r, 200)
    A.eq(r.body, b"port80", "body")
    A.eq(o.requests[0].headers_named("Host"), ["127.0.0.1"], "Host without :80")


def test_basic009_empty_path_and_query(t):
    p = t.sluice()
    o = t.origin()
    for url, want in ((f"http://127.0.0.1:{o.port}", "/"),
                      (f"http://127.0.0.1:{o.port}?q=1", "/?q=1")):
        c = t.client(p)
        r = c.request(build_request("GET", url))
        if r.status != 200:
            raise AssertionError(f"GET {url}: {r.status_line!r} {r.body!r}")
        A.eq(o.requests[-1].target, want, f"origin-form target for {url}")


HOP_REQ = [("Connection", "keep-alive, X-Foo"), ("X-Foo", "bar"),
           ("Proxy-Connection", "keep-alive"), ("Keep-Alive", "timeout=5"),
           ("TE", "trailers"), ("Trailer", "X-Trailer"), ("Upgrade", "foo/1"),
           ("Proxy-Authorization", "Basic dXNlcjpwYXNz"), ("X-Keep", "yes")]


def test_basic010_hop_by_hop_request(t):
    p = t.sluice()
    o = t.origin()
    A.status(t.get(p, o.url("/"), headers=HOP_REQ), 200)
    req = o.requests[0]
    for name in ("X-Foo", "Proxy-Connection", "Keep-Alive", "TE", "Trailer", "Upgrade",
                 "Proxy-Authorization"):
        if req.has(name):
            raise AssertionError(f"hop-by-hop {name} forwarded to origin: {req.raw_head!r}")
    for v in req.headers_named("Connection"):
        A.not_contains(v.lower(), "x-foo", "Connection at origin")
    A.eq(req.header("X-Keep"), "yes", "end-to-end header at origin")


def test_basic011_hop_by_hop_response(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"ok", headers=[
        ("Connection", "X-Bar"), ("X-Bar", "1"), ("Keep-Alive", "timeout=5, max=100"),
        ("Proxy-Connection", "keep-alive"), ("TE", "trailers"), ("Trailer", "X-T"),
        ("Upgrade", "foo/2"), ("Proxy-Authenticate", 'Basic realm="x"'), ("X-Keep", "yes")]))
    r = t.get(p, o.url("/"))
    A.status(r, 200)
    A.eq(r.body, b"ok", "body")
    for name in ("X-Bar", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade",
                 "Proxy-Authenticate"):
        if r.has(name):
            raise AssertionError(f"hop-by-hop {name} forwarded to client: {r.raw_head!r}")
    A.not_contains(r.connection_tokens(), "x-bar", "Connection tokens at client")
    A.eq(r.header("X-Keep"), "yes", "end-to-end header at client")


def test_basic012_via_request(t):
    p = t.sluice()
    o = t.origin()
    A.status(t.get(p, o.url("/")), 200)
    A.eq(o.requests[0].headers_named("Via"), [VIA], "Via at origin")
    A.status(t.get(p, o.url("/"), headers=[("Via", "1.0 upstream-client")]), 200)
    A.eq(o.requests[1].headers_named("Via"), ["1.0 upstream-client", VIA],
         "Via lines at origin (ours last)")


def test_basic013_via_response(t):
    p = t.sluice()
    o = t.origin(O.Sequence(O.respond(body=b"a"),
                            O.respond(body=b"b", headers=[("Via", "1.1 cdn")])))
    c = t.client(p)
    r = c.request(build_request("GET", o.url("/1")))
    A.eq(r.headers_named("Via"), [VIA], "Via at client")
    r = c.request(build_request("GET", o.url("/2")))
    A.eq(r.headers_named("Via"), ["1.1 cdn", VIA], "Via lines at client (ours last)")


def test_basic014_via_off(t):
    p = t.sluice("via off")
    o = t.origin()
    r = t.get(p, o.url("/"))
    A.status(r, 200)
    A.eq(r.headers_named("Via"), [], "Via at client with via off")
    A.eq(o.requests[0].headers_named("Via"), [], "Via at origin with via off")


def test_basic015_via_loop_508(t):
    p = t.sluice()
    o = t.origin()
    c = t.client(p)
    r = c.request(build_request("GET", o.url("/"), headers=[("Via", "1.1 other, 1.1 testhost (sluice)")]))
    A.proxy_error(r, 508)
    A.eq(len(o.heads), 0, "requests forwarded to origin")


def test_basic016_x_forwarded_for(t):
    p = t.sluice("forwarded_for on")
    o = t.origin()
    A.status(t.get(p, o.url("/")), 200)
    A.eq(o.requests[0].headers_named("X-Forwarded-For"), ["127.0.0.1"], "X-Forwarded-For")


def test_basic017_no_x_forwarded_for_by_default(t):
    p = t.sluice()
    o = t.origin()
    A.status(t.get(p, o.url("/")), 200)
    A.eq(o.requests[0].headers_named("X-Forwarded-For"), [], "X-Forwarded-For (default off)")


def test_basic018_http10_client_closes(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"for 1.0"))
    c = t.client(p)
    c.send(build_request("GET", o.url("/old"), version="HTTP/1.0"))
    r = c.read_response()
    A.status(r, 200)
    A.eq(r.body, b"for 1.0", "body")
    A.eq(o.requests[0].target, "/old", "target at origin")
    if not c.is_closed(3):
        raise AssertionError("HTTP/1.0 client connection without keep-alive left open")


def test_basic019_http10_client_keepalive(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"ka"))
    c = t.client(p)
    for i in range(2):
        c.send(build_request("GET", o.url(f"/{i}"), [("Connection", "keep-alive")],
                             version="HTTP/1.0"))
        r = c.read_response()
        A.status(r, 200)
        A.eq(r.body, b"ka", "body")
        A.eq(r.close_delimited, False, "response framed (not close-delimited)")
    A.eq(len(o.requests), 2, "requests at origin")


def test_basic020_http10_origin(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"from 1.0 origin", version="HTTP/1.0", close=True))
    c = t.client(p)
    for i in range(2):
        r = c.request(build_request("GET", o.url(f"/{i}")))
        A.status(r, 200)
        A.eq(r.version, "HTTP/1.1", "version in status line sent by the proxy")
        A.eq(r.body, b"from 1.0 origin", "body")
    A.eq(o.accepted, 2, "upstream connections (origin closes each)")


def test_basic021_options_star(t):
    p = t.sluice()
    o = t.origin(O.respond(200, b"", headers=[("Allow", "GET, HEAD, OPTIONS")]))
    r = t.get(p, f"http://127.0.0.1:{o.port}", method="OPTIONS")
    A.status(r, 200)
    A.eq(r.header("Allow"), "GET, HEAD, OPTIONS", "Allow from origin")
    A.eq((o.requests[0].method, o.requests[0].target), ("OPTIONS", "*"), "OPTIONS target")


def test_basic022_options_path(t):
    p = t.sluice()
    o = t.origin(O.respond(200, b""))
    A.status(t.get(p, o.url("/some"), method="OPTIONS"), 200)
    A.eq(o.requests[0].target, "/some", "OPTIONS with a path keeps it")


def test_basic023_max_forwards_zero(t):
    p = t.sluice()
    o = t.origin()
    r = t.get(p, o.url("/"), method="OPTIONS", headers=[("Max-Forwards", "0")])
    A.status(r, 200)
    A.eq(o.accepted, 0, "connections to origin (proxy must answer itself)")


def test_basic027_trace_max_forwards_zero_reflected(t):
    p = t.sluice()
    o = t.origin()
    r = t.get(p, o.url("/t"), method="TRACE",
              headers=[("Max-Forwards", "0"), ("X-Echo", "yes"), ("Cookie", "secret=1")])
    A.status(r, 200)
    A.eq(r.header("Content-Type"), "message/http", "Content-Type")
    A.eq(o.accepted, 0, "connections to origin (proxy must answer itself)")
    A.contains(r.body.decode(), f"TRACE {o.url('/t')} HTTP/1.1\r\n", "reflected request line")
    A.contains(r.body.decode(), "X-Echo: yes\r\n", "reflected field")
    if b"secret" in r.body:
        raise AssertionError("Cookie must not be reflected")


def test_basic028_max_forwards_decremented(t):
    p = t.sluice()
    o = t.origin()
    r = t.get(p, o.url("/m"), method="OPTIONS", headers=[("Max-Forwards", "5")])
    A.status(r, 200)
    A.eq(o.requests[0].header("Max-Forwards"), "4", "Max-Forwards at origin")
    r = t.get(p, o.url("/m"), method="OPTIONS", headers=[("Max-Forwards", "x")])
    A.status(r, 400)


def test_basic024_curl_x(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"through curl\n"))
    r = t.curl(["-x", p.proxy_url, o.url("/curl")])
    A.eq(r.rc, 0, f"curl exit code ({r.stderr.strip()})")
    A.eq(r.status, 200, "status")
    A.eq(r.body, b"through curl\n", "body")
    A.contains(r.head, f"Via: {VIA}", "response head")
    A.eq(o.requests[0].target, "/curl", "target at origin")


def test_basic025_origin_form_rejected(t):
    p = t.sluice()
    o = t.origin()
    c = t.client(p)
    r = c.request(f"GET /x HTTP/1.1\r\nHost: 127.0.0.1:{o.port}\r\n\r\n")
    A.proxy_error(r, 400)
    A.eq(len(o.heads), 0, "requests forwarded")


def test_basic026_error_status_passed_through(t):
    p = t.sluice()
    o = t.origin(O.respond(404, b"no such thing\n", headers=[("Content-Type", "text/html")]))
    c = t.client(p)
    r = c.request(build_request("GET", o.url("/missing")))
    A.status(r, 404)
    A.eq(r.body, b"no such thing\n", "origin's 404 body")
    A.eq(r.header("Content-Type"), "text/html", "origin's Content-Type")
    A.status(c.request(build_request("GET", o.url("/again"))), 404)


def test_basic029_options_star_to_the_proxy_itself(t):
    # RFC 9110 §9.3.7: about this server; RFC 9112 §3.2: an HTTP/1.1
    # request without its one Host gets a 400. Allow names CONNECT only
    # where it is served.
    p = t.sluice()
    r = t.client(p).request("OPTIONS * HTTP/1.1\r\nHost: proxy\r\n\r\n", method="OPTIONS")
    A.status(r, 200)
    A.contains(r.header("Allow") or "", "CONNECT", "Allow")
    A.proxy_error(t.client(p).request("OPTIONS * HTTP/1.1\r\n\r\n", method="OPTIONS"), 400,
                  detail="exactly one Host")
    A.status(t.client(p).request("OPTIONS * HTTP/1.0\r\n\r\n", method="OPTIONS"), 200)
    q = t.sluice("forward off\nbackend b 127.0.0.1:9\nroute / b\n")
    r = t.client(q).request("OPTIONS * HTTP/1.1\r\nHost: www\r\n\r\n", method="OPTIONS")
    A.status(r, 200)
    A.not_contains(r.header("Allow") or "", "CONNECT", "Allow with forward off")

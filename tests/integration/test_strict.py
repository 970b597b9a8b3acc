"""Strict parsing of client requests: every ambiguous or malformed request
gets a proxy-made error, the connection is closed, nothing reaches the origin,
and the next connection works."""
from lib import asserts as A
from lib import origin as O
from lib.client import build_request

LIMITS = "max_request_line 1K\nmax_header_size 4K\nmax_headers 20"


def reject(t, make, code, body_error=False):
    """Send make(url, hostport) on a fresh connection; expect `code`."""
    p = t.sluice(LIMITS)
    o = t.origin(O.echo())
    c = t.client(p)
    data = make(o.url("/x"), f"127.0.0.1:{o.port}")
    c.send(data.encode("latin-1") if isinstance(data, str) else data)
    r = c.read_response()
    A.proxy_error(r, code, close=True if code < 500 else None)
    if not c.is_closed(3):
        raise AssertionError("connection left open after the error response")
    if body_error:
        A.eq(o.requests, [], "complete requests that reached the origin")
    else:
        A.eq(o.heads, [], "requests that reached the origin")
    c2 = t.client(p)
    r = c2.request(build_request("GET", o.url("/ok")))
    A.status(r, 200)
    return r


def test_strict001_cl_and_te(t):
    reject(t, lambda u, h: f"POST {u} HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n"
           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)


def test_strict002_two_different_cl(t):
    reject(t, lambda u, h: f"POST {u} HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n"
           "Content-Length: 6\r\n\r\nhello!", 400)


def test_strict003_cl_not_a_number(t):
    reject(t, lambda u, h: f"POST {u} HTTP/1.1\r\nHost: {h}\r\nContent-Length: abc\r\n\r\n", 400)


def test_strict004_te_chunked_then_identity(t):
    reject(t, lambda u, h: f"POST {u} HTTP/1.1\r\nHost: {h}\r\n"
           "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400)


def test_strict005_te_gzip_without_chunked(t):
    reject(t, lambda u, h: f"POST {u} HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: gzip\r\n\r\n"
           "xxxx", 400)


def test_strict006_te_unknown_coding(t):
    reject(t, lambda u, h: f"POST {u} HTTP/1.1\r\nHost: {h}\r\n"
           "Transfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n", 501)


def test_strict007_bad_chunk_size(t):
    reject(t, lambda u, h: f"POST {u} HTTP/1.1\r\nHost: {h}\r\n"
           "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400, body_error=True)


def test_strict008_chunk_ext_too_long(t):
    reject(t, lambda u, h: f"POST {u} HTTP/1.1\r\nHost: {h}\r\n"
           "Transfer-Encoding: chunked\r\n\r\n5;" + "e" * 5000 + "\r\nhello\r\n0\r\n\r\n",
           400, body_error=True)


def test_strict009_obs_fold(t):
    reject(t, lambda u, h: f"GET {u} HTTP/1.1\r\nHost: {h}\r\nX-Folded: first\r\n"
           " second\r\n\r\n", 400)


def test_strict010_bare_cr_in_header(t):
    reject(t, lambda u, h: f"GET {u} HTTP/1.1\r\nHost: {h}\r\nX-Cr: a\rb\r\n\r\n", 400)


def test_strict011_nul_in_header_value(t):
    reject(t, lambda u, h: f"GET {u} HTTP/1.1\r\nHost: {h}\r\nX-Nul: a\x00b\r\n\r\n", 400)


def test_strict012_space_before_colon(t):
    reject(t, lambda u, h: f"GET {u} HTTP/1.1\r\nHost: {h}\r\nX-Space : a\r\n\r\n", 400)


def test_strict013_request_line_too_long_414(t):
    reject(t, lambda u, h: f"GET {u}?{'q' * 2000} HTTP/1.1\r\nHost: {h}\r\n\r\n", 414)


def test_strict014_head_too_large_431(t):
    reject(t, lambda u, h: f"GET {u} HTTP/1.1\r\nHost: {h}\r\n" +
           "".join(f"X-Big-{i}: {'v' * 600}\r\n" for i in range(10)) + "\r\n", 431)


def test_strict015_too_many_headers_431(t):
    reject(t, lambda u, h: f"GET {u} HTTP/1.1\r\nHost: {h}\r\n" +
           "".join(f"X-H{i}: {i}\r\n" for i in range(30)) + "\r\n", 431)


def test_strict016_http2_version_505(t):
    reject(t, lambda u, h: f"GET {u} HTTP/2.0\r\nHost: {h}\r\n\r\n", 505)


def test_strict017_limits_not_hit_by_normal_request(t):
    # The same limits admit a request just under them (guards against a
    # proxy that rejects everything).
    p = t.sluice(LIMITS)
    o = t.origin()
    hdrs = [(f"X-H{i}", "v" * 100) for i in range(15)]
    r = t.get(p, o.url("/" + "p" * 900), headers=hdrs)
    A.status(r, 200)
    A.eq(o.requests[0].header("X-H14"), "v" * 100, "header at origin")

"""Misbehaving origins: refused, garbage, truncated, reset, silent, lying
about framing, slow."""
import socket
import time

from lib import asserts as A
from lib import origin as O
from lib.client import build_request
from lib.util import pattern_sha256, scale


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_origin001_connection_refused_502(t):
    p = t.sluice()
    port = closed_port()
    r = t.get(p, f"http://127.0.0.1:{port}/")
    A.proxy_error(r, 502, proxy_status="connection_refused")


def test_origin002_garbage_response_502(t):
    p = t.sluice()
    o = t.origin(O.garbage())
    r = t.get(p, o.url("/"))
    A.proxy_error(r, 502, proxy_status="http_protocol_error")


def incomplete_to_client(t, reset):
    p = t.sluice()
    o = t.origin(O.truncated(100000, 3000, reset=reset))
    c = t.client(p)
    c.send(build_request("GET", o.url("/t")))
    r = c.read_response(timeout=10)
    if r.status == 502:
        A.proxy_error(r, 502)
        return
    A.status(r, 200)
    if r.complete:
        raise AssertionError(f"client got a complete-looking response ({len(r.body)} body bytes, "
                             f"chunked={r.chunked}) for a body cut at 3000 of 100000")
    if len(r.body) >= 100000:
        raise AssertionError("client got the full declared length")
    if not c.eof:
        raise AssertionError("client connection not closed")


def test_origin003_truncated_body(t):
    incomplete_to_client(t, reset=False)


def test_origin004_reset_mid_body(t):
    incomplete_to_client(t, reset=True)


def test_origin005_never_answers_504(t):
    p = t.sluice("read_timeout 1s")
    o = t.origin(O.never())
    c = t.client(p, timeout=10)
    t0 = time.monotonic()
    c.send(build_request("GET", o.url("/silent")))
    r = c.read_response()
    dt = time.monotonic() - t0
    A.proxy_error(r, 504, proxy_status="http_response_timeout")
    if dt < 0.9 or dt > 4 * scale():
        raise AssertionError(f"504 after {dt:.2f}s, read_timeout is 1s")


def test_origin006_response_cl_and_te_502(t):
    p = t.sluice()
    o = t.origin(O.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
                       b"\r\n5\r\nhello\r\n0\r\n\r\n"))
    r = t.get(p, o.url("/"))
    A.proxy_error(r, 502, proxy_status="http_protocol_error")


def test_origin007_slow_drip_complete(t):
    p = t.sluice()
    total = 64 * 1024
    o = t.origin(O.drip(total, 4096, 30))
    c = t.client(p, timeout=10)
    c.send(build_request("GET", o.url("/slow")))
    r = c.read_head()
    A.status(r, 200)
    A.eq(c.read_body_sha256(total), (total, pattern_sha256(total)), "(bytes, sha256)")


def test_origin008_content_length_shorter_than_sent(t):
    p = t.sluice()
    o = t.origin(O.Sequence(O.wrong_length(5, b"helloEXTRA-BYTES"), O.respond(body=b"second")))
    c = t.client(p)
    r = c.request(build_request("GET", o.url("/1")))
    A.status(r, 200)
    A.eq(r.body, b"hello", "body cut at Content-Length")
    r = c.request(build_request("GET", o.url("/2")))
    A.status(r, 200)
    A.eq(r.body, b"second", "next response (the extra bytes must not leak into it)")


def test_origin009_ipv6_literal_origin(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"over v6"), host="::1")
    r = t.get(p, f"http://[::1]:{o.port}/six")
    A.status(r, 200)
    A.eq(r.body, b"over v6", "body")
    A.eq(o.requests[0].header("Host"), f"[::1]:{o.port}", "Host at origin")


def test_origin010_bad_status_line_502(t):
    p = t.sluice()
    o = t.origin(O.raw(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"))
    A.proxy_error(t.get(p, o.url("/")), 502)


def test_origin011_origin_closes_without_response_502(t):
    p = t.sluice()
    o = t.origin(O.raw(b"", close=True))
    r = t.get(p, o.url("/"))
    A.proxy_error(r, 502)


def test_origin012_other_clients_unaffected(t):
    p = t.sluice("read_timeout 2s")
    bad = t.origin(O.never())
    good = t.origin(O.respond(body=b"fine"))
    c = t.client(p, timeout=10)
    c.send(build_request("GET", bad.url("/hang")))
    bad.wait_requests(1)
    for i in range(5):
        r = t.get(p, good.url(f"/{i}"))
        A.status(r, 200)
        A.eq(r.body, b"fine", "body")


def test_origin013_connect_timeout_504(t):
    # A listener whose accept queue is full and never accepted: the kernel
    # drops further SYNs, so a connect to it times out.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = [lst]
    t.defer(lambda: [s.close() for s in fillers])
    for _ in range(4):
        s = socket.socket()
        s.settimeout(0.3)
        fillers.append(s)
        try:
            s.connect(("127.0.0.1", port))
        except socket.timeout:
            break
    else:
        raise AssertionError("could not fill the accept queue (test setup)")
    p = t.sluice("connect_timeout 1s")
    c = t.client(p, timeout=10)
    t0 = time.monotonic()
    c.send(build_request("GET", f"http://127.0.0.1:{port}/"))
    r = c.read_response()
    dt = time.monotonic() - t0
    A.proxy_error(r, 504, proxy_status="connection_timeout")
    if dt < 0.9 or dt > 4 * scale():
        raise AssertionError(f"504 after {dt:.2f}s, connect_timeout is 1s")


def test_origin014_response_two_different_cl_502(t):
    p = t.sluice()
    o = t.origin(O.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello!!"))
    A.proxy_error(t.get(p, o.url("/")), 502, proxy_status="http_protocol_error")


def test_origin015_error_to_head_has_no_body(t):
    p = t.sluice()
    good = t.origin(O.respond(body=b"good"))
    c = t.client(p)
    r = c.request(build_request("HEAD", f"http://127.0.0.1:{closed_port()}/"))
    A.status(r, 502)
    A.eq(r.header("Proxy-Status"), "testhost; error=connection_refused", "Proxy-Status")
    if not c.eof:
        # Whatever follows on this connection must be the next response, not
        # the body of the 502.
        r = c.request(build_request("GET", good.url("/")))
        A.status(r, 200)
        A.eq(r.body, b"good", "response after the 502 to HEAD")


def test_origin016_slow_steady_long_body_is_not_timed_out(t):
    """A long body that trickles in (1 KiB every 200 ms) keeps moving: no
    read_timeout while bytes flow, and the client gets them as they come."""
    p = t.sluice("read_timeout 3s\n", threads=1)
    o = t.origin(O.drip(1 << 20, 1024, 200))
    c = t.client(p, timeout=20)
    c.send(build_request("GET", o.url("/slow")))
    A.status(c.read_head(timeout=5), 200)
    got, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 8:
        d = c.recv_some(timeout=5)
        if not d:
            break
        got += len(d)
    A.eq(c.eof, False, f"connection cut after {time.monotonic() - t0:.1f}s with {got} bytes")
    if got < 20 * 1024:
        raise AssertionError(f"only {got} body bytes in 8 s at 5 KiB/s")


def test_origin017_bad_chunked_body_in_the_first_read_is_a_502(t):
    p = t.sluice()
    o = t.origin(O.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"))
    r = t.get(p, o.url("/bad"))
    A.proxy_error(r, 502)


def test_origin018_origin_silent_after_expect_continue_is_504(t):
    p = t.sluice("read_timeout 2s\n")
    o = t.origin(O.never())
    c = t.client(p, timeout=15)
    c.send(build_request("POST", o.url("/up"), [("Expect", "100-continue"),
                                                 ("Content-Length", "5")]))
    r = c.read_response(timeout=10)
    A.status(r, 504)


def test_origin019_a_trickled_response_head_must_be_whole_within_read_timeout(t):
    # One header line each half read_timeout would keep the answer (and a
    # fetch others wait on) going for ever: the head as a whole gets
    # read_timeout from its first byte, as a request head does.
    def trickle(req, c):
        c.send(b"HTTP/1.1 200 OK\r\n")
        for i in range(16):
            time.sleep(0.5)
            try:
                c.send(f"X-Slow-{i}: x\r\n".encode())
            except OSError:
                return
        c.send(b"Content-Length: 2\r\n\r\nok")
    p = t.sluice("read_timeout 1s")
    o = t.origin(trickle)
    c = t.client(p, timeout=15)
    t0 = time.monotonic()
    r = c.request(build_request("GET", o.url("/slow-head")))
    took = time.monotonic() - t0
    A.proxy_error(r, 504, detail="in time")
    A.eq(took < 1 + 2 * scale(), True, f"answered {took:.1f} s after the head's first byte")

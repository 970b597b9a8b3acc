"""Connection limits (max_connections, max_connections_per_client) and a
request head that never completes (read_timeout -> 408)."""
import socket
import time

from lib import asserts as A
from lib.client import ConnClosed, build_request
from lib.util import scale, wait_until


def path_echo(req, c):
    c.respond(200, req.target.encode(), [("Content-Type", "text/plain")])


def try_request(t, p, o, path, source=None):
    """A new connection (from `source`) and one request on it: the client,
    kept open, if the request got its 200; None if the proxy refused or
    closed the connection without a response."""
    try:
        c = t.client(p, source=source)
        r = c.request(build_request("GET", o.url(path)))
    except (ConnClosed, ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
        return None
    A.status(r, 200)
    A.eq(r.body, path.encode(), "body")
    return c


def served(t, p, o, path, source=None, within=3):
    """A connection that gets served, waiting (bounded) for the proxy to
    release connections that were closed just before."""
    return wait_until(lambda: try_request(t, p, o, path, source), within,
                      f"a connection{' from ' + source if source else ''} to be served ({path})",
                      interval=0.05)


def rejected(t, p, o, source=None):
    """A connection over the limit is refused, or closed by the proxy
    without a single byte of response (the request sent on it is ignored)."""
    try:
        c = t.client(p, source=source)
    except ConnectionRefusedError:
        return
    try:
        c.send(build_request("GET", o.url("/over-the-limit")))
    except (ConnectionResetError, BrokenPipeError):
        return
    try:
        data = c.read_until_close(timeout=3)
    except socket.timeout:
        raise AssertionError("a connection over the limit was still open after 3s") from None
    A.eq(data, b"", "bytes the proxy sent on a connection over the limit")


def test_limits001_max_connections(t):
    p = t.sluice("max_connections 5\nmax_connections_per_client 0")
    o = t.origin(path_echo)
    held = [served(t, p, o, f"/held{i}") for i in range(5)]
    rejected(t, p, o)
    for i, c in enumerate(held):
        r = c.request(build_request("GET", o.url(f"/again{i}")))
        A.status(r, 200)
        A.eq(r.body, f"/again{i}".encode(), f"body on held connection {i}")
    held[0].close()
    held[1].close()
    held = held[2:] + [served(t, p, o, "/after-close-a"), served(t, p, o, "/after-close-b")]
    rejected(t, p, o)  # five open again: the limit holds
    A.eq(any("/over-the-limit" in q.target for q in o.requests), False,
         "a request from a rejected connection reached the origin")


def test_limits002_max_connections_per_client(t):
    p = t.sluice("max_connections_per_client 2\nallow 127.0.0.0/8")
    o = t.origin(path_echo)
    held = [served(t, p, o, f"/one{i}", source="127.0.0.1") for i in range(2)]
    rejected(t, p, o, source="127.0.0.1")
    others = [try_request(t, p, o, f"/two{i}", source="127.0.0.2") for i in range(2)]
    A.eq([c is not None for c in others], [True, True],
         "connections from 127.0.0.2 served while 127.0.0.1 is at its limit")
    line = p.wait_log(o.url("/two0"))
    A.contains(line, " 127.0.0.2 ", "client address in the access log")
    for i, c in enumerate(held):
        r = c.request(build_request("GET", o.url(f"/again{i}")))
        A.status(r, 200)
    held[0].close()
    served(t, p, o, "/one-after-close", source="127.0.0.1")


def test_limits003_partial_head_408(t):
    p = t.sluice("read_timeout 1s")
    o = t.origin(path_echo)
    c = t.client(p, timeout=10)
    t0 = time.monotonic()
    c.send(f"GET {o.url('/partial')} HTTP/1.1\r\nHost: {o.hostport}\r\nUser-Agent: hal".encode())
    r = c.read_response()
    dt = time.monotonic() - t0
    A.status(r, 408)
    if dt < 0.9 or dt > 4 * scale():
        raise AssertionError(f"408 after {dt:.2f}s, read_timeout is 1s")
    if not c.is_closed(2):
        raise AssertionError("connection still open after the 408")
    A.eq(o.accepted, 0, "connections made to the origin for a head that never completed")
    # A request after it marks the point in the log by which a line for the
    # 408 would have been written.
    A.status(t.get(p, o.url("/marker")), 200)
    p.wait_log(o.url("/marker"))
    time.sleep(0.1)
    lines = [l for l in p.access_lines() if o.url("/marker") not in l]
    bogus = [l for l in lines if "/408 " not in l]
    if bogus or len(lines) > 1:
        raise AssertionError(f"access log for the timed-out head should be nothing or one 408 "
                             f"line, got {lines!r}")
    # The 408 itself has the shape of every response sluice makes.
    A.proxy_error(r, 408, close=True)


def trickle(c, data, every, stop_after):
    """Send data a byte at a time, one every `every` s, for at most
    stop_after s or until the connection fails. Returns bytes sent."""
    n, t0 = 0, time.monotonic()
    try:
        while n < len(data) and time.monotonic() - t0 < stop_after:
            c.send(data[n:n + 1])
            n += 1
            time.sleep(every)
    except OSError:
        pass
    return n


def test_limits004_trickled_head_408(t):
    # A head sent a byte at a time keeps the connection busy but never
    # completes: read_timeout counts from its first byte, not the last one.
    p = t.sluice("read_timeout 1s")
    o = t.origin(path_echo)
    c = t.client(p, timeout=10)
    head = f"GET {o.url('/slow')} HTTP/1.1\r\nHost: {o.hostport}\r\nX-Pad: {'p' * 200}\r\n"
    t0 = time.monotonic()
    sent = trickle(c, head.encode(), 0.2, 6 * scale())
    r = c.read_response()
    dt = time.monotonic() - t0
    A.proxy_error(r, 408, detail="request head not received", close=True)
    if dt > 3 * scale():
        raise AssertionError(f"408 after {dt:.2f}s ({sent} bytes trickled), read_timeout is 1s")
    A.eq(o.accepted, 0, "connections made to the origin")


def test_limits005_stalled_request_body_408(t):
    # The client sends a head and part of its body, then nothing: that is
    # the client's delay (408), not the origin's (504).
    p = t.sluice("read_timeout 1s")
    o = t.origin(path_echo)
    c = t.client(p, timeout=10)
    c.send(f"POST {o.url('/stall')} HTTP/1.1\r\nHost: {o.hostport}\r\n"
           f"Content-Length: 100\r\n\r\n0123456789".encode())
    t0 = time.monotonic()
    r = c.read_response(method="POST")
    dt = time.monotonic() - t0
    A.proxy_error(r, 408, detail="request body not received in time", close=True)
    if dt < 0.9 or dt > 4 * scale():
        raise AssertionError(f"408 after {dt:.2f}s, read_timeout is 1s")
    assert c.is_closed(8), "connection still open after the 408"


def test_limits006_client_chatter_does_not_extend_response_timeout(t):
    # The origin never answers. Bytes the client keeps sending meanwhile
    # (pipelined or not) are not progress of this exchange, so the 504
    # comes read_timeout after the request went out.
    def silent(s):
        s.settimeout(8)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass

    o = t.stream_server(silent)
    p = t.sluice("read_timeout 1s")
    c = t.client(p, timeout=10)
    url = f"http://127.0.0.1:{o.port}/never"
    c.send(build_request("GET", url))
    t0 = time.monotonic()
    done = []

    def chatter():
        trickle(c, build_request("GET", url + "2"), 0.2, 6 * scale())
        done.append(1)

    import threading
    th = threading.Thread(target=chatter, daemon=True)
    th.start()
    r = c.read_response()
    dt = time.monotonic() - t0
    A.proxy_error(r, 504, proxy_status="http_response_timeout")
    if dt > 3 * scale():
        raise AssertionError(f"504 after {dt:.2f}s with the client sending, read_timeout is 1s")
    th.join(10)
    assert done, "the chattering client thread failed"


def test_limits007_clients_outside_allow_take_no_slots_and_get_their_403_soon(t):
    # A forward proxy (no routes): 127.0.0.2 is not allowed. Its idle
    # connections do not take the slots of max_connections, each is closed
    # within OUTSIDER_WAIT_MS (5 s) of saying nothing, and one that asks
    # still gets its 403 with the reason, and a closed connection.
    p = t.sluice("max_connections 4\nmax_connections_per_client 0\nallow 127.0.0.1\n"
                 "client_idle_timeout 60s")
    o = t.origin(path_echo)
    idle = [t.client(p, source="127.0.0.2", timeout=10) for _ in range(6)]
    time.sleep(0.3)
    c = try_request(t, p, o, "/allowed", source="127.0.0.1")
    A.eq(c is not None, True, "an allowed client served beside 6 idle outsiders")
    asking = t.client(p, source="127.0.0.2")
    r = asking.request(build_request("GET", o.url("/not-for-you")))
    A.proxy_error(r, 403, detail="client address not allowed", close=True)
    p.wait_log(o.url("/not-for-you"))
    t0 = time.monotonic()
    for k in idle:
        A.eq(k.read_until_close(timeout=8 * scale()), b"", "an idle outsider gets no bytes")
    A.eq(time.monotonic() - t0 < 7 * scale(), True, "idle outsiders closed within ~5 s")


def test_limits008_outsiders_are_bounded_per_worker(t):
    p = t.sluice("threads 1\nallow 127.0.0.1")
    o = t.origin(path_echo)
    idle = [t.client(p, source="127.0.0.2", timeout=5) for _ in range(64)]
    time.sleep(0.3)
    rejected(t, p, o, source="127.0.0.2")
    wait_until(lambda: "refused: not allowed, and too many such connections open"
               in p.stderr_text(), 3, "the error log line")
    A.eq(try_request(t, p, o, "/allowed", source="127.0.0.1") is not None, True,
         "an allowed client is served")
    del idle


def test_limits009_a_flood_of_refused_connections_is_one_error_line_a_second(t):
    p = t.sluice("max_connections 1")
    o = t.origin(path_echo)
    held = try_request(t, p, o, "/held")
    A.eq(held is not None, True, "first connection served")
    t0 = time.monotonic()
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", p.port), timeout=2).close()
        except OSError:
            pass
    took = time.monotonic() - t0
    time.sleep(1.1)
    rejected(t, p, o)  # one more, a second later: its line counts the rest
    err = p.stderr_text()
    n = err.count("refused: connection limit reached")
    A.eq(1 <= n <= took + 3, True, f"lines for 301 refused connections in {took:.1f}s: {n}")
    A.contains(err, "more refused since the last such line)", "the count of those held back")


def test_limits010_one_address_holds_at_most_a_quarter_of_the_slots_by_default(t):
    p = t.sluice("max_connections 16\nallow 127.0.0.0/8")
    o = t.origin(path_echo)
    held = [served(t, p, o, f"/one{i}", source="127.0.0.2") for i in range(4)]
    rejected(t, p, o, source="127.0.0.2")
    A.eq(try_request(t, p, o, "/other", source="127.0.0.1") is not None, True,
         "another address is served")
    del held


def test_limits011_an_outsider_is_closed_after_any_answer(t):
    # Answers given before the allow check (OPTIONS *, a CONNECT to a port
    # not allowed, an unsupported scheme) close an outsider's connection
    # too: it cannot keep one open outside max_connections by asking again.
    p = t.sluice("max_connections 4\nmax_connections_per_client 0\nallow 127.0.0.1")
    reqs = [b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT example.com:25 HTTP/1.1\r\nHost: example.com:25\r\n\r\n",
            b"GET ftp://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"]
    kept = []
    for raw in reqs:
        c = t.client(p, source="127.0.0.2", timeout=5)
        r = c.request(raw)
        if "close" not in r.connection_tokens() or not c.is_closed(timeout=2):
            kept.append(f"{raw.split(b' ')[0].decode()} -> {r.status}")
    A.eq(kept, [], "answers after which an outsider's connection stays open")


def test_limits012_outsiders_from_before_a_reload_that_adds_routes_are_closed_after_an_answer(t):
    # Accepted as outsiders, they stay outside max_connections after a
    # reload adds routes (which serve anyone): each is served once, then
    # closed, and new connections count as any.
    p = t.sluice("threads 1\nmax_connections 2\nmax_connections_per_client 0\n"
                 "allow 127.0.0.1")
    o = t.origin(path_echo)
    outs = [t.client(p, source="127.0.0.2", timeout=5) for _ in range(6)]
    time.sleep(0.3)
    p.reload(f"threads 1\nmax_connections 2\nmax_connections_per_client 0\n"
             f"allow 127.0.0.1\nbackend web {o.hostport}\nroute / web\n")
    wait_until(lambda: "reloaded" in p.stderr_text(), 3, "the reload")
    held = []
    for i in range(2):
        c = t.client(p, source="127.0.0.2", timeout=5)
        A.status(c.request(f"GET /new{i} HTTP/1.1\r\nHost: www.example\r\n\r\n".encode()),
                 200)
        held.append(c)
    rejected(t, p, o, source="127.0.0.2")
    for i, c in enumerate(outs):
        r = c.request(f"GET /old{i} HTTP/1.1\r\nHost: www.example\r\n\r\n".encode())
        A.status(r, 200)
    A.eq(sum(1 for c in outs if not c.is_closed(timeout=0.5)), 0,
         "outsiders still open after their answer")
    del held

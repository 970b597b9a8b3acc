"""Persistent connections on both sides, pipelining, close, idle timeouts,
and reuse of pooled upstream connections."""
import os
import resource
import time

from lib import asserts as A
from lib import origin as O
from lib.client import build_request
from lib.util import scale, wait_until


def path_echo(req, c):
    c.respond(200, req.target.encode(), [("Content-Type", "text/plain")])


def test_keepalive001_ten_sequential_one_upstream(t):
    p = t.sluice()
    o = t.origin(path_echo)
    c = t.client(p)
    for i in range(10):
        r = c.request(build_request("GET", o.url(f"/seq/{i}")))
        A.status(r, 200)
        A.eq(r.body, f"/seq/{i}".encode(), f"body {i}")
    A.eq(len(o.requests), 10, "requests at origin")
    A.eq(o.accepted, 1, "upstream connections")


def test_keepalive002_two_clients_reuse_upstream(t):
    p = t.sluice(threads=1)
    o = t.origin(path_echo)
    c1 = t.client(p)
    A.status(c1.request(build_request("GET", o.url("/a"))), 200)
    c1.close()
    time.sleep(0.1)
    c2 = t.client(p)
    A.status(c2.request(build_request("GET", o.url("/b"))), 200)
    A.eq(o.accepted, 1, "upstream connections for two clients in turn")


def test_keepalive003_pipelined_in_order(t):
    p = t.sluice()
    o = t.origin(path_echo)
    c = t.client(p)
    c.send(b"".join(build_request("GET", o.url(f"/pipe/{i}")) for i in range(5)))
    for i in range(5):
        r = c.read_response()
        A.status(r, 200)
        A.eq(r.body, f"/pipe/{i}".encode(),
             f"response {i} in order (origin saw {[q.target for q in o.requests]})")


def test_keepalive004_connection_close_honoured(t):
    p = t.sluice()
    o = t.origin(path_echo)
    c = t.client(p)
    r = c.request(build_request("GET", o.url("/last"), [("Connection", "close")]))
    A.status(r, 200)
    A.eq(r.body, b"/last", "body")
    if not c.is_closed(3):
        raise AssertionError("proxy kept the connection open after Connection: close")


def test_keepalive005_client_idle_timeout(t):
    p = t.sluice("client_idle_timeout 1s")
    o = t.origin(path_echo)
    c = t.client(p, timeout=10)
    A.status(c.request(build_request("GET", o.url("/"))), 200)
    t0 = time.monotonic()
    if c.is_closed(0.5 / scale()):  # the lower bound is not scaled: the proxy's clock is real
        raise AssertionError(f"closed after {time.monotonic() - t0:.2f}s, idle timeout is 1s")
    if not c.is_closed(4):
        raise AssertionError("idle client connection still open 4.5s after client_idle_timeout 1s")
    dt = time.monotonic() - t0
    if dt > 3.5 * scale():
        raise AssertionError(f"idle connection closed only after {dt:.2f}s")


def test_keepalive006_idle_timeout_spares_busy_client(t):
    p = t.sluice("client_idle_timeout 1s")
    o = t.origin(path_echo)
    c = t.client(p, timeout=10)
    for i in range(5):  # 2 s of activity, a request every 0.4 s
        A.status(c.request(build_request("GET", o.url(f"/{i}"))), 200)
        time.sleep(0.4)


def test_keepalive007_upstream_closed_idle_connection_retried(t):
    p = t.sluice()

    def respond_then_close(req, c):
        c.respond(200, req.target.encode())  # keep-alive response...
        time.sleep(0.05)
        return O.CLOSE                       # ...then the origin closes the idle connection

    o = t.origin(respond_then_close)
    c = t.client(p)
    A.status(c.request(build_request("GET", o.url("/1"))), 200)
    time.sleep(0.3)
    r = c.request(build_request("GET", o.url("/2")))
    A.status(r, 200)
    A.eq(r.body, b"/2", "second response")
    A.eq(o.accepted, 2, "upstream connections")


def test_keepalive008_many_requests_different_origins(t):
    p = t.sluice()
    o1 = t.origin(path_echo)
    o2 = t.origin(path_echo)
    c = t.client(p)
    for i in range(6):
        o = (o1, o2)[i % 2]
        r = c.request(build_request("GET", o.url(f"/o{i}")))
        A.eq(r.body, f"/o{i}".encode(), f"response {i}")
    A.eq((o1.accepted, o2.accepted), (1, 1), "upstream connections per origin")


def test_keepalive009_pooled_connection_closed_at_reuse_retried(t):
    # The origin answers the first request on each connection, then closes
    # when the next request arrives on it (the race a pool must survive).
    def first_only(req, c):
        n = getattr(c, "served", 0)
        c.served = n + 1
        if n >= 1:
            return O.CLOSE
        c.respond(200, req.target.encode())

    p = t.sluice(threads=1)
    o = t.origin(first_only)
    c = t.client(p)
    A.status(c.request(build_request("GET", o.url("/1"))), 200)
    time.sleep(0.1)
    r = c.request(build_request("GET", o.url("/2")))
    A.status(r, 200)
    A.eq(r.body, b"/2", "second response (retried on a fresh connection)")
    A.eq(o.accepted, 2, "upstream connections")


def test_keepalive010_upstream_idle_timeout(t):
    p = t.sluice("upstream_idle_timeout 1s")
    o = t.origin(path_echo)
    c = t.client(p)
    A.status(c.request(build_request("GET", o.url("/"))), 200)
    t0 = time.monotonic()
    from lib.util import wait_until
    wait_until(lambda: o.peer_closed >= 1, 4, "the proxy to close its idle upstream connection")
    dt = time.monotonic() - t0
    if dt < 0.5:
        raise AssertionError(f"upstream connection closed after {dt:.2f}s, idle timeout is 1s")
    # The client connection is unaffected and the next request opens a new one.
    r = c.request(build_request("GET", o.url("/again")))
    A.eq(r.body, b"/again", "request after the pooled connection expired")
    A.eq(o.accepted, 2, "upstream connections")


def test_keepalive011_answer_before_whole_head_sent_not_pooled(t):
    # The origin answers after the first bytes of a large request head and
    # reads the rest only later. The proxy's write of that head is partial
    # when the answer arrives; pooling the connection then would glue the
    # next request onto half a head (request smuggling). The next request
    # must go on a fresh connection, and no connection may carry a request
    # line in the middle of the large head.
    import socket as S
    from lib.util import private_netns
    private_netns(1500)
    seen = []

    def early(s):
        data = s.recv(1024)
        if data.startswith(b"GET /second"):
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo")
            seen.append(data)
            return
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(0.5)
        s.settimeout(1)
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
                if b"/second" in data:
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo")
        except (S.timeout, OSError):
            pass
        seen.append(data)

    o = t.stream_server(early, rcvbuf=2048)
    p = t.sluice("max_header_size 64K", threads=1)
    c = t.client(p)
    url = f"http://127.0.0.1:{o.port}"
    r = c.request(build_request("GET", url + "/first", [("X-Big", "a" * 60000)]))
    A.status(r, 200)
    A.eq(r.body, b"ok", "first response")
    r = c.request(build_request("GET", url + "/second"))
    A.status(r, 200)
    A.eq(r.body, b"two", "second response")
    A.eq(o.accepted, 2, "upstream connections (the half-written one not reused)")
    from lib.util import wait_until
    wait_until(lambda: len(seen) == 2, 5, "both origin connections to finish")
    for data in seen:
        if b"GET /first" in data and b"/second" in data:
            raise AssertionError("the second request went on the connection whose head was cut")


def test_keepalive012_pooled_after_a_long_body(t):
    # A long body arriving in pieces makes the proxy ask to be woken only
    # for large amounts of it (SO_RCVLOWAT). The connection must go back to
    # the pool reporting every byte again: a small answer on it must come
    # through at once.
    big = bytes(range(256)) * 4096  # 1 MiB

    def h(req, c):
        if req.target.endswith("/big"):
            data = O.build_response(200, big, [("Content-Type", "application/octet-stream")])
            for i in range(0, len(data), 96 * 1024):
                c.send(data[i:i + 96 * 1024])
                time.sleep(0.02)
        else:
            c.respond(200, b"ok", [("Content-Type", "text/plain")])

    p = t.sluice(threads=1)
    o = t.origin(h)
    c = t.client(p, timeout=3)
    r = c.request(build_request("GET", o.url("/big")), timeout=10)
    A.status(r, 200)
    A.eq(r.sha256(), __import__("hashlib").sha256(big).hexdigest(), "1 MiB body checksum")
    t0 = time.monotonic()
    r = c.request(build_request("GET", o.url("/small")))
    A.status(r, 200)
    A.eq(r.body, b"ok", "small body")
    A.eq(o.accepted, 1, "upstream connections (the pooled one reused)")
    if time.monotonic() - t0 > 1 * scale():
        raise AssertionError(f"small answer took {time.monotonic() - t0:.2f}s")


def test_keepalive013_bytes_after_a_response_never_reach_the_next_client(t):
    """An origin that sends more than the response (a stray second response in
    the same write, the first filling the proxy's read buffer exactly): the
    connection must not be pooled, or the next client reads the stray bytes."""
    def h(req, c):
        if len(c.origin.requests) == 1:
            for body_len in range(16384 - 100, 16384):
                head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % body_len
                if len(head) + body_len == 16384:
                    break
            c.send(head + b"a" * body_len +
                   b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTRAY")
        else:
            c.respond(200, req.target.encode())
    p = t.sluice(threads=1)
    o = t.origin(h)
    r = t.get(p, o.url("/first"))
    A.status(r, 200)
    A.eq(len(r.body) > 16000, True, "first body")
    time.sleep(0.2)
    r2 = t.get(p, o.url("/second"))
    A.eq(r2.body, b"/second", "second client's body")
    A.eq(o.accepted, 2, "upstream connections (the first one not reused)")


def test_keepalive014_origin_fin_during_a_response_is_not_pooled(t):
    """The origin half-closes right after a long response while the proxy is
    still sending it to a slow client: that connection must not go back to
    the pool, or the next request waits for an answer that never comes."""
    import socket as _s
    from lib.client import Client

    def h(req, c):
        if len(c.origin.requests) == 1:
            c.send(O.build_response(200, b"z" * (10 << 20)))
            c.sock.shutdown(_s.SHUT_WR)  # FIN, but it keeps reading
        else:
            c.respond(200, req.target.encode())
    p = t.sluice("read_timeout 4s\n", threads=1)
    o = t.origin(h)
    c1 = Client(p.addr, timeout=20, connect=False)
    c1.sock = _s.socket(_s.AF_INET, _s.SOCK_STREAM)
    c1.sock.setsockopt(_s.SOL_SOCKET, _s.SO_RCVBUF, 4096)
    c1.sock.connect(p.addr)
    t._clients.append(c1)
    c1.send(build_request("GET", o.url("/big")))
    time.sleep(2.0)  # the FIN arrives while the transaction owns the connection
    A.status(c1.read_response(timeout=20), 200)
    time.sleep(0.2)
    t0 = time.monotonic()
    r2 = t.get(p, o.url("/second"), timeout=15)
    dt = time.monotonic() - t0
    A.status(r2, 200)
    A.eq(r2.body, b"/second", "second body")
    if dt > 2.0 * scale():
        raise AssertionError(f"second request took {dt:.1f}s (a dead pooled connection?)")


def _fds(p):
    """The proxy's descriptor numbers, and how many are sockets."""
    d = f"/proc/{p.proc.pid}/fd"
    used, socks = set(), 0
    for x in os.listdir(d):
        try:
            socks += os.readlink(f"{d}/{x}").startswith("socket:")
        except OSError:
            continue
        used.add(int(x))
    return used, socks


def test_keepalive015_idle_origin_connections_are_given_back_when_descriptors_run_out(t):
    # Three origins asked in turn leave three idle pooled connections; then
    # a descriptor limit just past the highest number in use, and clients
    # that say nothing in every number below it. Out of descriptors, the
    # worker closes the longest-idle pooled connections and accepts on,
    # rather than pause its accepts until something else closes: a client
    # that connects then and asks a fourth origin gets its answer.
    origins = [t.origin(O.respond(body=b"o%d" % i)) for i in range(4)]
    p = t.sluice("threads 1")
    for o in origins[:3]:
        c = t.client(p)
        A.status(c.request(build_request("GET", o.url("/"))), 200)
        c.close()
    # The listener and three pooled connections: no client left.
    wait_until(lambda: _fds(p)[1] == 1 + 3, 3, "three pooled connections, no client")
    used = _fds(p)[0]
    limit = max(used) + 1
    resource.prlimit(p.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
    holes = [i for i in range(limit) if i not in used]
    idle = [t.client(p, timeout=5) for _ in holes]
    wait_until(lambda: _fds(p)[0] >= set(holes), 3, "the idle clients accepted")
    r = t.get(p, origins[3].url("/new"))
    A.status(r, 200)
    A.eq(r.body, b"o3", "body")
    A.contains(p.stderr_text(), "idle origin connections closed", "the error log says so")
    del idle


def test_keepalive016_a_connect_out_of_descriptors_takes_one_from_the_pool(t):
    # The process is brought to its descriptor limit by a connect, not by
    # an accept (whose EMFILE would trim first): the next connect, to
    # another origin, closes an idle pooled connection and goes on.
    origins = [t.origin(O.respond(body=b"o%d" % i)) for i in range(5)]
    p = t.sluice("threads 1")
    c = t.client(p)
    for o in origins[:3]:
        A.status(c.request(build_request("GET", o.url("/"))), 200)
    # The listener, this client and three pooled connections.
    wait_until(lambda: _fds(p)[1] == 1 + 1 + 3, 3, "three pooled connections")
    used = _fds(p)[0]
    limit = max(used) + 2  # one number free above the highest
    resource.prlimit(p.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
    holes = [i for i in range(limit) if i not in used]
    idle = [t.client(p, timeout=5) for _ in holes[:-1]]
    wait_until(lambda: len(_fds(p)[0]) == limit - 1, 3, "all but one descriptor used")
    # The last number goes to a connect; its connection is pooled after.
    A.status(c.request(build_request("GET", origins[3].url("/"))), 200)
    r = c.request(build_request("GET", origins[4].url("/new")))
    A.status(r, 200)
    A.eq(r.body, b"o4", "body")
    del idle

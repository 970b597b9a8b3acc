"""Clients that hang up before their answer: the request ends at once (the
origin's connection is let go, the access log says _ABORTED), a fetch
others wait on goes on for them, and half_closed_clients keeps a client
that only shut down its sending side."""
import re
import socket
import threading
import time

from lib import asserts as A
from lib import origin as O
from lib.client import build_request
from lib.util import scale, wait_until


def held_origin(t, answer_after=None):
    """An origin that does not answer; `closed` gets, per request, the
    seconds until the proxy closed the connection (None: it never did
    within 8 s, after which the origin answers)."""
    closed = []

    def h(req, c):
        t0 = time.monotonic()
        c.sock.settimeout(8 if answer_after is None else answer_after)
        try:
            gone = c.sock.recv(1) == b""
        except socket.timeout:
            gone = False
        except OSError:
            gone = True  # reset
        closed.append(time.monotonic() - t0 if gone else None)
        if not gone:
            c.respond(200, b"late answer", [("Content-Type", "text/plain")])
        return O.CLOSE
    return t.origin(h), closed


def line_with(p, needle):
    return p.wait_log(needle, timeout=5)


def test_abort001_client_gone_before_the_answer_frees_the_origin_connection(t):
    p = t.sluice()
    o, closed = held_origin(t)
    c = t.client(p)
    c.send(build_request("GET", o.url("/slow")))
    o.wait_requests(1)
    t0 = time.monotonic()
    c.close()
    wait_until(lambda: closed, 10, "the origin's connection ended")
    if closed[0] is None or time.monotonic() - t0 > 2 * scale():
        raise AssertionError(f"the origin's connection stayed open ({closed})")
    line = line_with(p, o.url("/slow"))
    A.contains(line, " TCP_MISS_ABORTED/000 0 GET ", "access log line")


def test_abort002_combined_log_says_499_in_reverse_mode(t):
    o, closed = held_origin(t)
    p = t.sluice(f"backend web {o.hostport}\nroute / web\n", log_format="combined")
    c = t.client(p)
    c.send(b"GET /r HTTP/1.1\r\nHost: www.test\r\n\r\n")
    o.wait_requests(1)
    c.close()
    wait_until(lambda: closed, 10, "the backend's connection ended")
    A.eq(closed[0] is not None, True, "the proxy closed the backend connection")
    line = line_with(p, "/r HTTP/1.1")
    A.contains(line, '"GET http://www.test/r HTTP/1.1" 499 0 ', "access log line")


def test_abort003_a_client_fin_alone_ends_the_request_by_default(t):
    # As in Squid (half_closed_clients off) and nginx: a FIN cannot be told
    # from a close, so a request still waiting ends.
    p = t.sluice()
    o, closed = held_origin(t)
    c = t.client(p, timeout=10)
    c.send(build_request("GET", o.url("/fin")))
    o.wait_requests(1)
    c.shutdown_write()
    A.eq(c.read_until_close(timeout=5), b"", "no answer after the FIN")
    wait_until(lambda: closed, 10, "the origin's connection ended")
    A.eq(closed[0] is not None, True, "the proxy closed the origin connection")
    A.contains(line_with(p, o.url("/fin")), "TCP_MISS_ABORTED/000", "access log line")


def test_abort004_half_closed_clients_on_still_get_their_answer(t):
    p = t.sluice("half_closed_clients on\n")
    o, closed = held_origin(t, answer_after=1.0)
    c = t.client(p, timeout=10)
    c.send(build_request("GET", o.url("/half")))
    o.wait_requests(1)
    c.shutdown_write()
    r = c.read_response()
    A.status(r, 200)
    A.eq(r.body, b"late answer", "body")
    A.eq(closed, [None], "the origin's connection was kept until it answered")
    line = line_with(p, o.url("/half"))
    A.contains(line, " TCP_MISS/200 ", "access log line")
    # A reset is a client gone, half_closed_clients or not.
    c2 = t.client(p, timeout=10)
    c2.send(build_request("GET", o.url("/reset")))
    o.wait_requests(2)
    c2.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c2.sock.close()
    wait_until(lambda: len(closed) == 2, 10, "the second origin connection ended")
    A.eq(closed[1] is not None, True, "a reset ends the request")
    A.contains(line_with(p, o.url("/reset")), "TCP_MISS_ABORTED/000", "access log line")


def test_abort005_a_client_gone_during_the_name_lookup(t):
    # The name server never answers: the request waits in the lookup, and
    # its client's leaving is seen there, long before the lookup's timeout.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    t.defer(silent.close)
    p = t.sluice(f"dns_servers 127.0.0.1:{silent.getsockname()[1]}", threads=1)
    c = t.client(p, timeout=10)
    c.send("GET http://never.test/ HTTP/1.1\r\nHost: never.test\r\n\r\n")
    silent.settimeout(5)
    silent.recvfrom(512)  # the lookup is in flight
    c.close()
    line = line_with(p, "http://never.test/")
    A.contains(line, " TCP_MISS_ABORTED/000 0 GET ", "access log line")
    A.contains(line, " HIER_NONE/- ", "no origin was reached")


def leader_and_waiters(t, path, body, n):
    """A proxy, an origin holding its first answer (cacheable) until go is
    set, the client whose request fetches it and n whose requests wait on
    that fetch."""
    p = t.sluice()
    go = threading.Event()
    t.defer(go.set)

    def h(req, c):
        if len(c.origin.requests) == 1:
            go.wait(10)
        c.respond(200, body, [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    url = o.url(path)
    lead = t.client(p, timeout=10)
    lead.send(build_request("GET", url))
    o.wait_requests(1)
    waiters = [t.client(p, timeout=10) for _ in range(n)]
    for w in waiters:
        w.send(build_request("GET", url))
    time.sleep(0.3)  # all n wait on the first one's fetch
    return p, o, go, url, lead, waiters


def test_abort006_a_waiter_that_leaves_is_let_go_at_once(t):
    p, o, go, url, lead, waiters = leader_and_waiters(t, "/w", b"shared" * 1000, 3)
    waiters[0].close()
    # Logged while the fetch is still held: seen while waiting.
    A.contains(line_with(p, url), " TCP_MISS_ABORTED/000 0 GET ", "the leaving waiter's line")
    go.set()
    for c in [lead] + waiters[1:]:
        r = c.read_response()
        A.status(r, 200)
        A.eq(r.body, b"shared" * 1000, "body")
    A.eq(len(o.requests), 1, "requests at origin")


def test_abort007_a_leader_that_leaves_is_logged_once_its_fetch_ends(t):
    # The fetch goes on, in a session of its own, for those waiting on it;
    # the line of the client that left says so.
    p, o, go, url, lead, waiters = leader_and_waiters(t, "/l", b"kept" * 1000, 2)
    lead.close()
    time.sleep(0.3)
    go.set()
    for w in waiters:
        A.eq(w.read_response().body, b"kept" * 1000, "a waiter's body")
    A.eq(len(o.requests), 1, "requests at origin")
    A.contains(t.get(p, url).header("Cache-Status") or "", "; hit", "the fetch was stored")
    lines = [l for l in p.access_lines() if url in l]
    left = [l for l in lines if "_ABORTED" in l]
    A.eq(len(left), 1, f"one line says aborted: {lines}")
    A.contains(left[0], " TCP_MISS_ABORTED/000 0 GET ", "the leader's line")


def test_abort008_cut_off_mid_body_is_logged_with_the_bytes_sent(t):
    p = t.sluice()
    o = t.origin(O.drip(400000, 20000, 100))
    c = t.client(p, timeout=10)
    c.send(build_request("GET", o.url("/drip")))
    c.read_head()
    c.recv_some()
    c.close()
    line = line_with(p, o.url("/drip"))
    m = re.search(r" TCP_MISS_ABORTED/200 (\d+) GET ", line)
    if not m:
        raise AssertionError(f"not an aborted 200: {line!r}")
    if not 0 < int(m.group(1)) < 400000:
        raise AssertionError(f"bytes {m.group(1)} are not part of the body")


def test_abort009_a_fin_after_a_request_answered_without_waiting_gets_the_answer(t):
    # An answer the proxy has at once after the lookup began (a failure
    # the DNS cache holds), a CONNECT whose FIN is part of the stream it
    # tunnels, and a read from the disk tier (local and short) are not
    # ended by the FIN that follows their request.
    from test_disk import objects, restart
    srv = t.stream_server(O.sink_then_reply)
    d = t.path("cache")
    dns = t.dns({})
    p = t.sluice(f"connect_ports {srv.port}\ncache_dir {d} 64M\n"
                 f"dns_servers {dns.server_text}\n", threads=1)
    nx = build_request("GET", "http://nx.test/")
    A.proxy_error(t.client(p).request(nx), 502, proxy_status="dns_error")
    asked = dns.count("nx.test")
    c = t.client(p, timeout=10)
    c.send(nx)
    c.shutdown_write()
    A.proxy_error(c.read_response(), 502, proxy_status="dns_error")
    A.eq(dns.count("nx.test"), asked, "queries: the second answer came from the DNS cache")

    c = t.client(p, timeout=10)
    c.send(f"CONNECT 127.0.0.1:{srv.port} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\nearly")
    c.shutdown_write()
    A.status(c.read_response(method="CONNECT"), 200)
    data = c.read_until_close()
    A.eq(data.split(b" ")[0], b"5", "the tunnel passed the early bytes and the FIN")

    o = t.origin(O.respond(body=b"from disk", headers=[("Cache-Control", "max-age=600")]))
    t.get(p, o.url("/d"))
    wait_until(lambda: objects(d), 5, "the object file")
    restart(p)
    c = t.client(p, timeout=10)
    c.send(build_request("GET", o.url("/d")))
    c.shutdown_write()
    r = c.read_response()
    A.eq(r.body, b"from disk", "body")
    p.wait_log(lambda l: " TCP_HIT/200 " in l and o.url("/d") in l, what="a disk hit's line")
    A.eq(len(o.requests), 1, "requests at origin")


def unix_sockets(pid):
    import os
    with open("/proc/net/unix") as f:
        inodes = {l.split()[6] for l in f.read().splitlines()[1:]}
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            n += 1
    return n


def test_abort010_a_leader_carried_on_through_a_retry_ends_its_session(t):
    # The leader's request goes out on a pooled connection; after its client
    # left and the fetch moved to a session of its own, the origin closes
    # that connection without answering: the fetch is retried on a new one.
    # The session carrying it closes when the fetch is in, not when it
    # idles out.
    moved = threading.Event()
    t.defer(moved.set)

    def h(req, c):
        n = len(c.origin.requests)
        if n == 2:  # the leader's, on the pooled connection
            moved.wait(10)
            return O.CLOSE
        c.respond(200, b"#%d" % n, [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    p = t.sluice("client_idle_timeout 60s\n", threads=1)
    A.eq(t.get(p, o.url("/warm")).body, b"#1", "the connection to be pooled")
    base = unix_sockets(p.pid)
    lead = t.client(p, timeout=10)
    lead.send(build_request("GET", o.url("/x")))
    o.wait_requests(2)
    waiter = t.client(p, timeout=10)
    waiter.send(build_request("GET", o.url("/x")))
    time.sleep(0.2 * scale())
    lead.close()
    # The side session and the far end of its socket pair.
    wait_until(lambda: unix_sockets(p.pid) == base + 2, 5, "the fetch moved aside")
    moved.set()
    A.eq(waiter.read_response().body, b"#3", "the waiter's answer, from the retry")
    wait_until(lambda: unix_sockets(p.pid) == base, 3, "the side session closed")
    A.contains(line_with(p, o.url("/x")), " TCP_MISS_ABORTED/000 0 GET ", "the leader's line")
    A.eq(len(o.requests), 3, "requests at origin: the retry made the third")

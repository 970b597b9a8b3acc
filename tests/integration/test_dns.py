"""Name resolution through `dns_servers` with a fake DNS server: lookups,
NXDOMAIN, the cache, IPv6-only names."""
import time

from lib import asserts as A
from lib import origin as O
from lib.dns import A as QA, AAAA as QAAAA


def setup(t, ttl=60):
    d = t.dns({"origin.test": ["127.0.0.1"], "v6.test": ["::1"]}, ttl=ttl)
    p = t.sluice(f"dns_servers {d.server_text}")
    return d, p


def test_dns001_name_resolved(t):
    d, p = setup(t)
    o = t.origin(O.respond(body=b"by name"))
    r = t.get(p, f"http://origin.test:{o.port}/n")
    A.status(r, 200)
    A.eq(r.body, b"by name", "body")
    A.eq(o.requests[0].header("Host"), f"origin.test:{o.port}", "Host at origin")
    if d.count("origin.test") < 1:
        raise AssertionError(f"fake DNS server saw no query for origin.test: {d.queries}")


def test_dns002_unknown_name_502(t):
    d, p = setup(t)
    r = t.get(p, "http://nosuch.test:8080/", timeout=10)
    A.proxy_error(r, 502, detail="DNS lookup failed for nosuch.test", proxy_status="dns_error")
    if d.count("nosuch.test") < 1:
        raise AssertionError(f"fake DNS server saw no query for nosuch.test: {d.queries}")


def test_dns003_cached_within_ttl(t):
    d, p = setup(t, ttl=60)
    o = t.origin()
    A.status(t.get(p, f"http://origin.test:{o.port}/1"), 200)
    n = d.count("origin.test")
    for i in range(3):
        A.status(t.get(p, f"http://origin.test:{o.port}/{i + 2}"), 200)
    A.eq(d.count("origin.test"), n, "DNS queries for origin.test after repeats within TTL")


def test_dns004_aaaa_only_name(t):
    d, p = setup(t)
    o = t.origin(O.respond(body=b"v6 only"), host="::1")
    r = t.get(p, f"http://v6.test:{o.port}/", timeout=10)
    A.status(r, 200)
    A.eq(r.body, b"v6 only", "body from the ::1 origin")
    if d.count("v6.test", QAAAA) < 1:
        raise AssertionError(f"no AAAA query for v6.test: {d.queries}")


def test_dns005_requeried_after_ttl(t):
    d, p = setup(t, ttl=1)
    o = t.origin()
    A.status(t.get(p, f"http://origin.test:{o.port}/1"), 200)
    n = d.count("origin.test", QA)
    time.sleep(2.2)
    A.status(t.get(p, f"http://origin.test:{o.port}/2"), 200)
    if d.count("origin.test", QA) <= n:
        raise AssertionError(f"no new A query after the 1s TTL expired: {d.queries}")


def test_dns006_connect_by_name(t):
    d = t.dns({"tunnel.test": ["127.0.0.1"]})
    srv = t.stream_server(lambda s: s.sendall(b"hi"))
    p = t.sluice(f"dns_servers {d.server_text}\nconnect_ports {srv.port}")
    c = t.client(p)
    c.send(f"CONNECT tunnel.test:{srv.port} HTTP/1.1\r\nHost: tunnel.test:{srv.port}\r\n\r\n")
    r = c.read_response(method="CONNECT")
    A.status(r, 200)
    A.eq(c.recv_exact(2), b"hi", "tunnel bytes")


def test_dns007_servers_changed_under_a_lookup(t):
    # A lookup is waiting on a server that never answers when a reload
    # points dns_servers at one that does. The waiting request is answered
    # through the new server (well before the old one's timeout), and the
    # change is not refused for having queries in flight.
    import socket
    from lib.util import wait_until
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    t.defer(silent.close)
    d = t.dns({"origin.test": ["127.0.0.1"]})
    p = t.sluice(f"dns_servers 127.0.0.1:{silent.getsockname()[1]}", threads=1)
    o = t.origin(O.respond(body=b"after the change"))
    c = t.client(p, timeout=10)
    c.send(f"GET http://origin.test:{o.port}/ HTTP/1.1\r\nHost: origin.test:{o.port}\r\n\r\n")
    silent.settimeout(5)
    silent.recvfrom(512)  # the lookup is in flight at the silent server
    t0 = time.monotonic()
    p.reload(f"dns_servers {d.server_text}")
    r = c.read_response()
    A.status(r, 200)
    A.eq(r.body, b"after the change", "body")
    if time.monotonic() - t0 > 1.5:
        raise AssertionError("answered only after the old server's timeout")
    wait_until(lambda: d.count("origin.test") >= 1, 2, "a query at the new server")
    A.not_contains(p.stderr_text(), "keeping the previous servers", "log")

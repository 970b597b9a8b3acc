"""Name resolution through `dns_servers` with a fake DNS server: lookups,
NXDOMAIN, the cache, IPv6-only names."""
import socket
import time

from lib import asserts as A
from lib import origin as O
from lib.dns import A as QA, AAAA as QAAAA
from lib.origin import CLOSE
from lib.util import timeout, wait_until


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


def test_dns008_a_cname_ttl_bounds_the_cached_answer(t):
    # www.test is a CNAME (TTL 1 s) to edge1.test (TTL 3600 s): once the
    # CNAME's TTL is over, the name is asked again and its new target used.
    def h(req, c):  # no pooled connection to carry the old address over
        c.respond(200, b"edge", [("Connection", "close")])
        return CLOSE
    o = t.origin(h, host="127.0.0.1")
    d = t.flexdns({"www.test": [("CNAME", "edge1.test", 1)],
                   "edge1.test": [("A", "127.0.0.1", 3600)],
                   "edge2.test": [("A", "127.0.0.3", 3600)]})
    p = t.sluice(f"dns_servers {d.server_text}", threads=1)
    A.status(t.get(p, f"http://www.test:{o.port}/a"), 200)
    with d.lock:
        d.flex["www.test"] = [("CNAME", "edge2.test", 1)]
    time.sleep(2.2)
    n = d.count("www.test", QA)
    r = t.get(p, f"http://www.test:{o.port}/b", timeout=10)
    A.eq(d.count("www.test", QA) > n, True, "asked again after the CNAME's TTL")
    A.proxy_error(r, 502, detail="connect")  # nothing listens at the new target


def test_dns009_many_records_of_one_family_do_not_hide_the_other(t):
    # Eight IPv4 addresses that refuse, one IPv6 address that works, the
    # AAAA answer a little after the A one: both families are kept.
    o = t.origin(O.respond(body=b"over v6"), host="::1")
    recs = [("A", f"127.0.0.{i}", 60) for i in range(2, 10)] + [("AAAA", "::1", 60)]
    d = t.flexdns({"many.test": recs}, delay={QAAAA: 0.05})
    p = t.sluice(f"dns_servers {d.server_text}")
    r = t.get(p, f"http://many.test:{o.port}/x", timeout=10)
    A.status(r, 200)
    A.eq(r.body, b"over v6", "body")


@timeout(40)
def test_dns010_an_answer_missing_a_timed_out_family_is_kept_briefly(t):
    # The A query goes unanswered, the AAAA one names ::1 where nothing
    # listens. That answer is kept seconds, not its records' hour: once the
    # server answers A again, the name works.
    o = t.origin(O.respond(body=b"over v4"), host="127.0.0.1")
    d = t.flexdns({"part.test": [("A", "127.0.0.1", 3600), ("AAAA", "::1", 3600)]},
                  drop={("part.test", QA)})
    p = t.sluice(f"dns_servers {d.server_text}", threads=1)
    A.status(t.get(p, f"http://part.test:{o.port}/1", timeout=20), 502)
    with d.lock:
        d.drop.clear()
    time.sleep(5.5)  # DNS_PARTIAL_TTL_S
    r = t.get(p, f"http://part.test:{o.port}/2", timeout=20)
    A.status(r, 200)
    A.eq(r.body, b"over v4", "body")


@timeout(40)
def test_dns011_a_dns_timeout_is_a_504_with_dns_timeout(t):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    t.defer(s.close)
    p = t.sluice(f"dns_servers 127.0.0.1:{s.getsockname()[1]}")
    r = t.get(p, "http://quiet.test:8080/", timeout=20)
    A.proxy_error(r, 504, detail="quiet.test", proxy_status="dns_timeout")


def test_dns012_a_reload_to_other_servers_forgets_the_old_ones_answers(t):
    good = t.origin(O.respond(body=b"right"), host="127.0.0.1")
    bad_dns = t.dns({"svc.test": ["127.0.0.3"]}, ttl=3600)
    good_dns = t.dns({"svc.test": ["127.0.0.1"]}, ttl=3600)
    p = t.sluice(f"dns_servers {bad_dns.server_text}", threads=1)
    A.status(t.get(p, f"http://svc.test:{good.port}/1", timeout=10), 502)
    p.reload(f"dns_servers {good_dns.server_text}")
    wait_until(lambda: "reloaded" in p.stderr_text(), 3, "the reload")
    r = t.get(p, f"http://svc.test:{good.port}/2", timeout=10)
    A.status(r, 200)
    A.eq(good_dns.count("svc.test") > 0, True, "the new server was asked")


def test_dns013_ipv6_is_tried_first_when_both_families_answer(t):
    # RFC 8305 §4 (with RFC 6724): IPv6 first, whichever answer came first.
    o4 = t.origin(O.respond(body=b"v4"), host="127.0.0.1")
    t.origin(O.respond(body=b"v6"), host="::1", port=o4.port)
    d = t.flexdns({"dual.test": [("A", "127.0.0.1", 60), ("AAAA", "::1", 60)]},
                  delay={QAAAA: 0.05})
    p = t.sluice(f"dns_servers {d.server_text}")
    r = t.get(p, f"http://dual.test:{o4.port}/", timeout=10)
    A.eq(r.body, b"v6", "the family used first")

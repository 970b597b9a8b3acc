"""Happy Eyeballs (RFC 8305): a name with both an AAAA and an A record where
the origin listens on only one of the two addresses; the request succeeds
either way and the access log names the address actually used."""
import re
import socket
import time

from lib import asserts as A
from lib import origin as O
from lib.dns import A as QA, AAAA as QAAAA
from lib.util import scale

COMBINED = re.compile(r'^(?P<ip>\S+) - - \[(?P<date>[^\]]+)\] "(?P<method>\S+) (?P<url>\S+) '
                      r'(?P<ver>HTTP/1\.[01])" (?P<status>\d{3}) (?P<bytes>\d+) '
                      r'"(?P<ref>[^"]*)" "(?P<ua>[^"]*)" (?P<dur>\d+) (?P<peer>\S+)$')


def refusing(t, host, port):
    """Hold `port` on `host` bound but not listening, for the whole test: a
    connection to it is refused, and nothing else can take the port."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, port))
    t.defer(s.close)
    return s


def one_family_origin(t, listen_host, other_host, body):
    """An origin on listen_host whose port is refused on other_host."""
    for _ in range(20):
        o = t.origin(O.respond(body=body), host=listen_host)
        try:
            refusing(t, other_host, o.port)
            return o
        except OSError:
            continue  # the port is taken on the other family: try another
    raise AssertionError("no port free on both 127.0.0.1 and ::1 (test setup)")


def fetch_dual(t, o, body):
    d = t.dns({"dual.test": ["::1", "127.0.0.1"]})
    p = t.sluice(f"dns_servers {d.server_text}", log_format="combined")
    url = f"http://dual.test:{o.port}/he"
    t0 = time.monotonic()
    r = t.get(p, url, timeout=10)
    dt = time.monotonic() - t0
    A.status(r, 200)
    A.eq(r.body, body, "body")
    A.eq(len(o.requests), 1, "requests at the origin")
    A.eq(o.requests[0].header("Host"), f"dual.test:{o.port}", "Host at origin")
    if d.count("dual.test", QA) < 1 or d.count("dual.test", QAAAA) < 1:
        raise AssertionError(f"expected both A and AAAA queries for dual.test: {d.queries}")
    # A refused attempt moves on at once: no connect timeout, no long delay.
    if dt > 2 * scale():
        raise AssertionError(f"request took {dt:.2f}s with one address refusing")
    line = p.wait_log(url)
    m = COMBINED.match(line)
    if not m:
        raise AssertionError(f"not a combined-format line: {line!r}")
    return m


def test_eyeballs001_v6_refused_falls_back_to_v4(t):
    o = one_family_origin(t, "127.0.0.1", "::1", b"over v4")
    m = fetch_dual(t, o, b"over v4")
    A.eq((m["status"], m["peer"]), ("200", f"127.0.0.1:{o.port}"),
         "status and upstream address in the access log")


def test_eyeballs002_v4_refused_uses_v6(t):
    o = one_family_origin(t, "::1", "127.0.0.1", b"over v6")
    m = fetch_dual(t, o, b"over v6")
    A.eq((m["status"], m["peer"]), ("200", f"[::1]:{o.port}"),
         "status and upstream address in the access log")


def hanging(t, host, port):
    """A listener on host:port whose accept queue is full: the kernel drops
    further SYNs, so a connection attempt neither succeeds nor fails."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind((host, port))
    ls.listen(0)
    t.defer(ls.close)
    filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    filler.settimeout(2)
    filler.connect((host, port))
    t.defer(filler.close)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(0.3)
    try:
        probe.connect((host, port))
        raise AssertionError(f"{host}:{port} still accepts connections (test setup)")
    except socket.timeout:
        pass
    finally:
        probe.close()


def test_eyeballs003_two_hanging_addresses_then_a_good_one(t):
    # The first two addresses swallow the SYN. A new attempt starts every
    # 250 ms whatever is still pending, so the third address answers within
    # a second instead of after the connect timeout.
    for _ in range(20):
        o = t.origin(O.respond(body=b"third"), host="127.0.0.1")
        try:
            hanging(t, "127.0.0.2", o.port)
            hanging(t, "127.0.0.3", o.port)
            break
        except OSError:
            continue
    else:
        raise AssertionError("no port free on 127.0.0.1-3 (test setup)")
    d = t.dns({"slow.test": ["127.0.0.2", "127.0.0.3", "127.0.0.1"]})
    p = t.sluice(f"dns_servers {d.server_text}", log_format="combined")
    url = f"http://slow.test:{o.port}/third"
    t0 = time.monotonic()
    r = t.get(p, url, timeout=8)
    dt = time.monotonic() - t0
    A.status(r, 200)
    A.eq(r.body, b"third", "body")
    if dt > 2 * scale():
        raise AssertionError(f"request took {dt:.2f}s with two addresses hanging")
    m = COMBINED.match(p.wait_log(url))
    A.eq(m["peer"] if m else None, f"127.0.0.1:{o.port}", "upstream address in the access log")

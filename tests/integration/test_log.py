"""The access log: squid and combined formats, one line per request, and
reopening on SIGUSR1."""
import calendar
import os
import re
import signal
import time

from lib import asserts as A
from lib import origin as O
from lib.client import build_request
from lib.util import scale

SQUID = re.compile(r"^(?P<secs>\d+)\.(?P<ms>\d{3}) (?P<dur> *\d+) (?P<ip>\S+) "
                   r"(?P<tag>[A-Z_]+)/(?P<status>\d{3}) (?P<bytes>\d+) (?P<method>\S+) "
                   r"(?P<url>\S+) - (?P<hier>[A-Z_]+)/(?P<peer>\S+) (?P<ctype>.+)$")
COMBINED = re.compile(r'^(?P<ip>\S+) - - \[(?P<date>[^\]]+)\] "(?P<method>\S+) (?P<url>\S+) '
                      r'(?P<ver>HTTP/1\.[01])" (?P<status>\d{3}) (?P<bytes>\d+) '
                      r'"(?P<ref>[^"]*)" "(?P<ua>[^"]*)" (?P<dur>\d+) (?P<peer>\S+)$')


def squid_line(p, needle):
    line = p.wait_log(needle)
    m = SQUID.match(line)
    if not m:
        raise AssertionError(f"not a squid-format line: {line!r}")
    return m


def check_time_and_duration(m):
    now = time.time()
    if abs(int(m["secs"]) - now) > 10:
        raise AssertionError(f"timestamp {m['secs']} is not now ({now:.0f})")
    if len(m["dur"]) < 6:
        raise AssertionError(f"duration {m['dur']!r} not right-aligned in 6 columns")


def test_log001_squid_miss(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"logged body\n", headers=[("Content-Type", "text/plain")]))
    url = o.url("/logged?x=1")
    c = t.client(p)
    r = c.request(build_request("GET", url))
    A.status(r, 200)
    m = squid_line(p, url)
    check_time_and_duration(m)
    A.eq((m["ip"], m["tag"], m["status"], m["method"], m["url"]),
         ("127.0.0.1", "TCP_MISS", "200", "GET", url), "fields")
    A.eq((m["hier"], m["peer"]), ("HIER_DIRECT", "127.0.0.1"), "hierarchy/upstream")
    A.eq(m["ctype"], "text/plain", "content type")
    A.eq(int(m["bytes"]), len(r.raw_head) + len(r.raw_body), "bytes sent to the client")


def test_log002_squid_error_before_forwarding(t):
    p = t.sluice()
    c = t.client(p)
    r = c.request("POST http://127.0.0.1:9/x HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"
                  "Content-Length: abc\r\n\r\n")
    A.status(r, 400)
    m = squid_line(p, "/400 ")
    A.eq((m["ip"], m["tag"], m["status"], m["hier"], m["peer"]),
         ("127.0.0.1", "NONE_NONE", "400", "HIER_NONE", "-"), "fields")
    A.eq(int(m["bytes"]), len(r.raw_head) + len(r.raw_body), "bytes sent to the client")


def test_log003_squid_tunnel(t):
    tls = t.tls_origin(O.respond(body=b"tunnelled"))
    p = t.sluice(f"connect_ports {tls.port}")
    r = t.curl(["-p", "-x", p.proxy_url, "--cacert", tls.cert, f"https://127.0.0.1:{tls.port}/"])
    A.eq((r.rc, r.body), (0, b"tunnelled"), f"curl result ({r.stderr.strip()})")
    m = squid_line(p, "CONNECT ")
    A.eq((m["tag"], m["status"], m["method"], m["url"], m["hier"], m["peer"]),
         ("TCP_TUNNEL", "200", "CONNECT", f"127.0.0.1:{tls.port}", "HIER_DIRECT", "127.0.0.1"),
         "fields")
    if int(m["bytes"]) < len(b"tunnelled"):
        raise AssertionError(f"tunnel bytes {m['bytes']} less than the body alone")


def test_log004_squid_denied_connect(t):
    p = t.sluice()
    c = t.client(p)
    r = c.request("CONNECT 127.0.0.1:25 HTTP/1.1\r\nHost: 127.0.0.1:25\r\n\r\n", method="CONNECT")
    A.status(r, 403)
    m = squid_line(p, "CONNECT 127.0.0.1:25")
    A.eq((m["tag"], m["status"], m["hier"], m["peer"]),
         ("TCP_DENIED", "403", "HIER_NONE", "-"), "fields")


def test_log005_combined(t):
    p = t.sluice(log_format="combined")
    o = t.origin(O.respond(body=b"c" * 123))
    url = o.url("/comb")
    c = t.client(p)
    r = c.request(build_request("GET", url, [("Referer", "http://ref.example/page"),
                                             ("User-Agent", "itest/1.0 (x)")]))
    A.status(r, 200)
    line = p.wait_log(url)
    m = COMBINED.match(line)
    if not m:
        raise AssertionError(f"not a combined-format line: {line!r}")
    A.eq((m["ip"], m["method"], m["url"], m["ver"], m["status"]),
         ("127.0.0.1", "GET", url, "HTTP/1.1", "200"), "fields")
    A.eq((m["ref"], m["ua"]), ("http://ref.example/page", "itest/1.0 (x)"), "Referer/User-Agent")
    A.eq(m["peer"], f"127.0.0.1:{o.port}", "upstream address")
    A.eq(int(m["bytes"]), len(r.raw_head) + len(r.raw_body), "bytes sent to the client")
    ts = calendar.timegm(time.strptime(m["date"], "%d/%b/%Y:%H:%M:%S +0000"))
    if abs(ts - time.time()) > 10:
        raise AssertionError(f"date {m['date']!r} is not now")


def test_log006_combined_dashes(t):
    p = t.sluice(log_format="combined")
    c = t.client(p)
    r = c.request("CONNECT 127.0.0.1:25 HTTP/1.1\r\nHost: 127.0.0.1:25\r\n\r\n", method="CONNECT")
    A.status(r, 403)
    line = p.wait_log("127.0.0.1:25")
    m = COMBINED.match(line)
    if not m:
        raise AssertionError(f"not a combined-format line: {line!r}")
    A.eq((m["method"], m["url"], m["status"], m["ref"], m["ua"], m["peer"]),
         ("CONNECT", "127.0.0.1:25", "403", "-", "-", "-"), "fields")


def test_log007_one_line_per_request(t):
    p = t.sluice()
    o = t.origin()
    c = t.client(p)
    for i in range(5):
        A.status(c.request(build_request("GET", o.url(f"/line{i}"))), 200)
    p.wait_log("/line4")
    time.sleep(0.3)
    lines = p.access_lines()
    for i in range(5):
        A.eq(sum(1 for l in lines if f"/line{i} " in l), 1, f"lines for /line{i}")


def test_log008_sigusr1_reopens(t):
    p = t.sluice()
    o = t.origin()
    A.status(t.get(p, o.url("/before")), 200)
    p.wait_log("/before")
    old = p.log_path + ".1"
    os.rename(p.log_path, old)
    p.signal(signal.SIGUSR1)
    from lib.util import wait_until
    # The new file exists a moment before it takes the old one's place:
    # the log line says when it has.
    wait_until(lambda: "access log reopened" in p.stderr_text(), 3, "the reopen")
    A.eq(os.path.exists(p.log_path), True, "a new access.log after SIGUSR1")
    A.status(t.get(p, o.url("/after")), 200)
    p.wait_log("/after")
    old_lines = p.access_lines(old)
    if not any("/before" in l for l in old_lines):
        raise AssertionError(f"renamed file lost the earlier line: {old_lines}")
    if any("/after" in l for l in old_lines):
        raise AssertionError("line for the request after SIGUSR1 went to the renamed file")


def test_log009_flushed_promptly(t):
    p = t.sluice()
    o = t.origin()
    A.status(t.get(p, o.url("/prompt")), 200)
    t0 = time.monotonic()
    p.wait_log("/prompt", timeout=1)
    dt = time.monotonic() - t0
    if dt > 0.5 * scale():
        raise AssertionError(f"log line appeared only after {dt:.2f}s (flush every 100 ms)")


def test_log010_ipv6_client_address(t):
    p = t.sluice(host="::1")
    o = t.origin()
    url = o.url("/v6client")
    A.status(t.get(p, url), 200)
    m = squid_line(p, url)
    A.eq(m["ip"], "::1", "client address")


def test_log011_combined_tunnel(t):
    tls = t.tls_origin(O.respond(body=b"tunnelled"))
    p = t.sluice(f"connect_ports {tls.port}", log_format="combined")
    r = t.curl(["-p", "-x", p.proxy_url, "--cacert", tls.cert, "-A", "curl-itest",
                f"https://127.0.0.1:{tls.port}/"])
    A.eq((r.rc, r.body), (0, b"tunnelled"), f"curl result ({r.stderr.strip()})")
    line = p.wait_log("CONNECT ")
    m = COMBINED.match(line)
    if not m:
        raise AssertionError(f"not a combined-format line: {line!r}")
    A.eq((m["ip"], m["method"], m["url"], m["status"], m["peer"]),
         ("127.0.0.1", "CONNECT", f"127.0.0.1:{tls.port}", "200", f"127.0.0.1:{tls.port}"),
         "fields")

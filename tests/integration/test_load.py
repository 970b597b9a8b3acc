"""Load and resources: 1,000 concurrent clients, a slow reader of a big
response (bounded memory), an IPv6 listener."""
import hashlib
import os
import resource
import threading
import time

from lib import asserts as A
from lib import origin as O
from lib.client import Client, build_request
from lib.util import pattern_sha256, serial, timeout, wait_until


def path_echo(req, c):
    c.respond(200, req.target.encode() * 3, [("Content-Type", "text/plain")])


@serial
@timeout(90)
def test_load001_thousand_concurrent_clients(t):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    p = t.sluice()
    o = t.origin(path_echo)
    n = 1000
    clients = []
    for i in range(n):
        c = Client(p.addr, timeout=30)
        t._clients.append(c)
        clients.append(c)
    for i, c in enumerate(clients):
        c.send(build_request("GET", o.url(f"/client/{i}")))
    bad = []
    for i, c in enumerate(clients):
        try:
            r = c.read_response()
            if r.status != 200 or r.body != f"/client/{i}".encode() * 3:
                bad.append((i, r.status_line, r.body[:60]))
        except AssertionError as e:
            bad.append((i, str(e)[:100]))
    if bad:
        raise AssertionError(f"{len(bad)} of {n} clients failed, first: {bad[:3]}")
    A.eq(p.alive(), True, "sluice alive")


@serial
@timeout(120)
def test_load002_slow_reader_bounded_memory(t):
    size = 200 << 20
    p = t.sluice()
    small = t.origin(O.respond(body=b"warm"))
    big = t.origin(O.large(size))
    A.status(t.get(p, small.url("/warm")), 200)  # warm up pools and threads
    rss0 = p.rss_kb()
    c = t.client(p, timeout=60)
    c.send(build_request("GET", big.url("/huge")))
    r = c.read_head()
    A.status(r, 200)
    h = hashlib.sha256()
    first = c.recv_exact(1 << 20, timeout=10)
    h.update(first)
    got = len(first)
    time.sleep(2.0)  # the client stops reading; the origin keeps sending
    rss1 = p.rss_kb()
    growth_mib = (rss1 - rss0) / 1024
    if growth_mib >= 16:
        raise AssertionError(f"proxy RSS grew by {growth_mib:.1f} MiB while the client "
                             f"did not read ({rss0} kB -> {rss1} kB)")
    rest_n = 0
    while got + rest_n < size:
        d = c.recv_some(timeout=30)
        if not d:
            break
        h.update(d[:size - got - rest_n])
        rest_n += len(d)
    A.eq(got + rest_n, size, "bytes received")
    A.eq(h.hexdigest(), pattern_sha256(size), "sha256 of the whole body")


def test_load003_ipv6_listener(t):
    p = t.sluice(host="::1")
    o = t.origin(O.respond(body=b"v6 client"))
    c = t.client(p)
    A.eq(c.sock.getpeername()[0], "::1", "connected over ::1")
    r = c.request(build_request("GET", o.url("/six")))
    A.status(r, 200)
    A.eq(r.body, b"v6 client", "body")
    A.eq(o.requests[0].header("Host"), f"127.0.0.1:{o.port}", "Host at origin")


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_over(pid, secs):
    """CPU seconds the process used over the next secs of wall time."""
    before = cpu_seconds(pid)
    time.sleep(secs)
    return cpu_seconds(pid) - before


@serial
def test_load004_busy_poll_serves_naps_while_busy_then_sleeps(t):
    """busy_poll: 20 keep-alive clients at once, each answer checked. After a
    request a worker naps 20 us at a time for the window (1 s here), which
    shows as CPU time, then sleeps (none); a reload to off stops the naps.
    An idle worker asleep costs nothing, one napping 20 us at a time about
    0.4 s of CPU per second on the machine this was written on (a nap is a
    timer, two context switches and two system calls)."""
    o = t.origin(path_echo)
    p = t.sluice("busy_poll 20us 1s\n", threads=1)
    bad = []

    def client(i):
        c = Client(p.addr, timeout=10)
        t._clients.append(c)
        for k in range(25):
            r = c.request(build_request("GET", o.url(f"/bp/{i}/{k}")))
            if r.status != 200 or r.body != f"/bp/{i}/{k}".encode() * 3:
                bad.append((i, k, r.status_line, r.body[:60]))
                return

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    A.eq(bad, [], "answers with busy_poll on")
    A.eq(len(o.requests), 500, "requests the origin saw")
    napping = cpu_over(p.pid, 0.7)
    time.sleep(0.6)  # past the 1 s window
    asleep = cpu_over(p.pid, 1.0)
    assert napping >= 0.03, f"CPU in the window after the last request: {napping:.2f} s"
    assert asleep < 0.03, f"CPU once the window is over: {asleep:.2f} s"
    k = p.stderr_text().count("reloaded ")
    p.reload("busy_poll off\n")
    wait_until(lambda: p.stderr_text().count("reloaded ") > k, 5, "the reload")
    r = t.get(p, o.url("/after-reload"))
    A.eq((r.status, r.body), (200, b"/after-reload" * 3), "(status, body) after the reload")
    off = cpu_over(p.pid, 1.0)
    assert off < 0.03, f"CPU in the second after a request with busy_poll off: {off:.2f} s"

"""Many clients at once, every cache path mixed: hits, misses, Vary variants,
revalidation, uncacheable answers, bodies of unknown length, slow and cut
bodies, Range, HEAD, conditionals, PURGE and POST, over a memory store too
small for the set (so objects are evicted and read back from disk). Every
answer each client gets is checked byte for byte against what the backend
sent for that URL and variant."""
import random
import threading
import time

from lib import asserts as A
from lib.client import ConnClosed
from lib.origin import CLOSE

NPATHS = 48
KINDS = ["plain", "vary", "reval", "nostore", "close", "slow", "cut", "notfound"]


def kind(i):
    return KINDS[i % len(KINDS)]


def size(i):
    """Up to 190K; four times that from /s/100 on (bodies kept in mappings
    of their own, sent with sendfile when that is on)."""
    n = (i * 7919) % 190000 if i % 5 else 0
    return n * 4 if i >= 100 else n


def body(i, var, ver):
    unit = b"%d|%s|%d;" % (i, var.encode(), ver)
    n = size(i)
    return (unit * (n // len(unit) + 1))[:n]


class Backend:
    def __init__(self):
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.count = {}

    def ver(self, i):
        if kind(i) == "reval":
            return int((time.monotonic() - self.t0) * 2)  # a new version each half second
        return 0

    def __call__(self, req, c):
        if req.method == "POST":
            c.respond(200, b"posted", [("Cache-Control", "no-store")])
            return
        i = int(req.target.rsplit("/", 1)[1])
        k = kind(i)
        with self.lock:
            n = self.count[i] = self.count.get(i, 0) + 1
        ver = self.ver(i)
        var = (req.header("Accept-Encoding") or "-") if k == "vary" else "-"
        data = body(i, var, ver) if req.method != "HEAD" else b""
        h = [("X-Ver", str(ver)), ("X-Var", var)]
        if k == "notfound":
            c.respond(404, b"not here %d" % i if req.method != "HEAD" else b"",
                      [("Cache-Control", "max-age=30")])
            return
        if k == "reval":
            etag = '"%d-%d"' % (i, ver)
            h += [("Cache-Control", "max-age=1"), ("ETag", etag)]
            if req.header("If-None-Match") == etag:
                c.respond(304, b"", h)
                return
        elif k == "nostore":
            h.append(("Cache-Control", "no-store"))
        else:
            h.append(("Cache-Control", "max-age=60"))
        if k == "vary":
            h.append(("Vary", "Accept-Encoding"))
        head = "HTTP/1.1 200 OK\r\n" + "".join(f"{a}: {b}\r\n" for a, b in h)
        if req.method == "HEAD":  # the head a GET would have, no body
            frame = "Transfer-Encoding: chunked" if k == "vary" else "Content-Length: %d" % size(i)
            c.send(head.encode() + frame.encode() + b"\r\n\r\n")
            return
        if k == "vary":
            c.send(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n")
            for j in range(0, len(data), 50000):
                part = data[j:j + 50000]
                c.send(b"%x\r\n%s\r\n" % (len(part), part))
            c.send(b"0\r\n\r\n")
            return
        if k == "close":
            c.send(head.encode() + b"Connection: close\r\n\r\n" + data)
            return CLOSE
        c.send(head.encode() + b"Content-Length: %d\r\n\r\n" % len(data))
        if k == "slow":
            for j in range(4):
                c.send(data[j * len(data) // 4:(j + 1) * len(data) // 4])
                time.sleep(0.02)
            return
        if k == "cut" and n % 3 == 0 and data:
            # (An empty body is whole: closing after it without a
            # "Connection: close" would race a request the proxy may send
            # on the connection meanwhile.)
            c.send(data[:len(data) // 2])
            return CLOSE
        c.send(data)


class Checker:
    """One client: a kept connection (a new one when it closes), random
    requests, every answer checked."""

    def __init__(self, t, p, seed, deadline, base=0, forward_to=None):
        self.t, self.p, self.rnd, self.deadline = t, p, random.Random(seed), deadline
        self.base = base              # paths /s/base .. /s/base+NPATHS-1
        self.forward_to = forward_to  # the origin, asked for through the proxy
        self.http10 = seed % 4 == 3  # a few speak HTTP/1.0 (no chunked)
        self.c = None
        self.etags = {}
        self.ops = self.hits = 0
        self.error = None

    def conn(self):
        if self.c is None:
            self.c = self.t.client(self.p, timeout=15)
        return self.c

    def fail(self, what, i, r):
        raise AssertionError(f"/s/{i} ({kind(i)}): {what}: {r!r}")

    def check_full(self, i, r, ae, whole=True):
        var = r.header("X-Var")
        want_var = (ae or "-") if kind(i) == "vary" else "-"
        if var != want_var:
            self.fail(f"variant {var!r}, asked for {want_var!r}", i, r)
        want = body(i, var, int(r.header("X-Ver")))
        if whole and r.complete:
            if r.body != want:
                self.fail("body differs from the backend's", i, r)
        elif not want.startswith(r.body):
            self.fail("a cut body that is not a prefix of the backend's", i, r)
        elif kind(i) != "cut":
            self.fail("cut short", i, r)

    def one(self):
        rnd = self.rnd
        i = self.base + rnd.randrange(NPATHS)
        k = kind(i)
        ae = rnd.choice(["gzip", "br", None]) if k == "vary" else None
        host = self.forward_to.hostport if self.forward_to else "soak.example"
        hdrs = [("Host", host)] + ([("Accept-Encoding", ae)] if ae else [])
        op = rnd.choice(["get"] * 12 + ["head", "range", "range", "cond", "purge", "post"])
        method = {"head": "HEAD", "purge": "PURGE", "post": "POST"}.get(op, "GET")
        rng = None
        if op == "range" and size(i) > 0:
            a = rnd.randrange(size(i))
            rng = (a, min(size(i) - 1, a + rnd.randrange(1, 70000)))
            hdrs.append(("Range", "bytes=%d-%d" % rng))
        if op == "cond" and i in self.etags:
            hdrs.append(("If-None-Match", self.etags[i]))
        target = ("http://" + host if self.forward_to else "") + "/s/%d" % i
        req = "%s %s HTTP/1.%d\r\n" % (method, target, 0 if self.http10 else 1)
        if self.http10:
            hdrs.append(("Connection", "keep-alive"))
        req += "".join("%s: %s\r\n" % h for h in hdrs)
        if method == "POST":
            req += "Content-Length: 3\r\n\r\nabc"
        else:
            req += "\r\n"
        c = self.conn()
        try:
            c.send(req.encode())
            r = c.read_response(method=method)
        except (ConnClosed, OSError):
            if k == "cut":  # the fetch was cut before the answer began
                self.c = None
                return
            raise
        self.ops += 1
        if "hit" in (r.header("Cache-Status") or ""):
            self.hits += 1
        if not r.complete or r.close_delimited or "close" in r.connection_tokens() or \
                (self.http10 and "keep-alive" not in r.connection_tokens()):
            c.close()
            self.c = None
        if method == "PURGE":
            if r.status not in (200, 404):
                self.fail("PURGE answered", i, r)
        elif method == "POST":
            if (r.status, r.body) != (200, b"posted"):
                self.fail("POST answered", i, r)
        elif k == "notfound":
            if r.status != 404 or (method == "GET" and r.body != b"not here %d" % i):
                self.fail("not the 404", i, r)
        elif r.status == 502 and k == "cut":
            pass  # the fetch was cut before anything reached this client
        elif method == "HEAD":
            if r.status != 200 or r.header("X-Var") is None:
                self.fail("HEAD answered", i, r)
            cl = r.header("Content-Length")
            if cl is not None and int(cl) != size(i):
                self.fail("HEAD's Content-Length", i, r)
        elif r.status == 304:
            if op != "cond" or r.header("ETag") != self.etags.get(i):
                self.fail("a 304 not asked for", i, r)
        elif r.status == 206:
            if rng is None or r.header("Content-Range") != "bytes %d-%d/%d" % (rng + (size(i),)):
                self.fail("Content-Range", i, r)
            want = body(i, r.header("X-Var"), int(r.header("X-Ver")))
            if r.body != want[rng[0]:rng[1] + 1]:
                self.fail("206 body differs from the slice", i, r)
        elif r.status == 200:
            self.check_full(i, r, ae)
            if r.header("ETag"):
                self.etags[i] = r.header("ETag")
        else:
            self.fail("status", i, r)

    def run(self):
        try:
            while time.monotonic() < self.deadline:
                self.one()
        except Exception as e:  # reported by the test
            self.error = e


def soak(t, p, o, base=0, forward=False):
    deadline = time.monotonic() + 8
    clients = [Checker(t, p, seed, deadline, base, o if forward else None)
               for seed in range(12)]
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    for th in threads:
        th.start()
    for th in threads:
        th.join(40)
    A.eq([th.is_alive() for th in threads], [False] * len(threads), "every client finished")
    errors = [c.error for c in clients if c.error is not None]
    if errors:
        raise AssertionError(f"{len(errors)} clients saw a wrong answer; first: {errors[0]!r}")
    ops = sum(c.ops for c in clients)
    hits = sum(c.hits for c in clients)
    if ops < 200 or hits < ops // 10:
        raise AssertionError(f"too little done to tell: {ops} answers, {hits} hits")
    A.eq(p.alive(), True, "sluice still running")
    A.eq(o.errors, [], "backend handler errors")


def test_soak001_many_clients_mixing_every_cache_path_get_the_backends_bytes(t):
    o = t.origin(Backend())
    d = t.path("cache")
    p = t.sluice(f"backend web {o.hostport}\nroute / web\ncache_mem 2M\n"
                 f"cache_dir {d} 64M\ncache_max_object 150k\n"
                 "cache_purge_allow 127.0.0.1/32\n", threads=2)
    soak(t, p, o)
    A.eq(any(" TCP_HIT/" in l for l in p.access_lines()), True,
         "some answers read back from the disk tier")
    # And a plain request afterwards is answered as ever.
    A.status(t.get(p, "/s/1", [("Host", "soak.example")]), 200)


def test_soak002_the_same_forward_with_large_bodies_sent_by_sendfile(t):
    o = t.origin(Backend())
    d = t.path("cache")
    p = t.sluice(f"cache_mem 8M\ncache_dir {d} 64M\ncache_max_object 600k\n"
                 "sendfile on\ncache_purge_allow 127.0.0.1/32\n", threads=2)
    soak(t, p, o, base=100, forward=True)
    A.eq(any(" TCP_HIT/" in l for l in p.access_lines()), True,
         "some answers read back from the disk tier")

"""The cache and disk tests of test_cache.py and test_disk.py, run again in
reverse (accelerator) mode: every origin a test starts becomes a backend
with a route for its host:port, and every request for http://HOST:PORT/PATH
is sent in origin form, "GET /PATH" with "Host: HOST:PORT", as a browser
sends it to a web server. Each test asserts the same bytes, statuses and
headers as in forward mode. (A probe request per reload, PURGE
/-route-probe, shows in their access logs.)"""
import functools
import re

import test_cache
import test_disk
from lib import client as _client
from lib.util import wait_until

ABS = re.compile(rb"^([A-Z]+) http://([^/\s]+)(/\S*)? (HTTP/1\.[01])\r\n")


def to_origin_form(data):
    """An absolute-form request head -> origin form with a Host field
    naming the URL's authority (replacing any Host the test set)."""
    m = ABS.match(data)
    if not m:
        return data
    method, auth, path, ver = m.group(1), m.group(2), m.group(3) or b"/", m.group(4)
    head, sep, body = data[m.end():].partition(b"\r\n\r\n")
    lines = [l for l in head.split(b"\r\n") if l and not l.lower().startswith(b"host:")]
    return b"\r\n".join([method + b" " + path + b" " + ver, b"Host: " + auth] + lines) + \
        b"\r\n\r\n" + body


class ReverseClient:
    def __init__(self, c):
        self._c = c

    def __getattr__(self, name):
        return getattr(self._c, name)

    def send(self, data):
        return self._c.send(to_origin_form(data))


class ReverseContext:
    """A TestContext whose sluice is a reverse proxy in front of the test's
    origins: its config names a backend and a route for each, and is
    reloaded when the test starts another."""

    def __init__(self, t):
        self._t = t
        self._p = None
        self._extra = ""
        self._origins = []

    def __getattr__(self, name):
        return getattr(self._t, name)

    def _conf(self):
        lines = [self._extra]
        for i, o in enumerate(self._origins):
            lines += [f"backend o{i} {o.hostport}", f"route {o.hostport} o{i}"]
        return "\n".join(lines) + "\n"

    def sluice(self, conf="", start=True, **kw):
        self._extra = conf
        self._p = self._t.sluice(self._conf(), start=False, **kw)
        real_start = self._p.start

        def start_with_routes(wait=True):
            self._p.write_conf(self._conf())
            return real_start(wait)
        self._p.start = start_with_routes
        if start:
            self._p.start()
        return self._p

    def origin(self, handler=None, **kw):
        o = self._t.origin(handler, **kw)
        self._origins.append(o)
        p = self._p
        if p is not None and p.proc is not None and p.alive():
            n = p.stderr_text().count("reloaded ")
            p.reload(self._conf())
            wait_until(lambda: p.stderr_text().count("reloaded ") > n, 5, "the reload")
            # Workers take the new config on their next wakeup: wait until a
            # request for the new origin's host is routed (not a 421).
            wait_until(lambda: self._routed(o), 5, "the new route")
        return o

    def _routed(self, o):
        c = _client.Client(self._p.addr, timeout=5)
        try:
            c.send(b"PURGE /-route-probe HTTP/1.1\r\nHost: " + o.hostport.encode() +
                   b"\r\n\r\n")
            return c.read_response().status != 421
        finally:
            c.close()

    def client(self, target, timeout=5, source=None):
        return ReverseClient(self._t.client(target, timeout, source))

    def get(self, proxy, url, headers=(), method="GET", body=None, version="HTTP/1.1",
            timeout=5):
        c = self.client(proxy, timeout)
        c.send(_client.build_request(method, url, headers, body, version))
        return c.read_response(method=method)


def reverse(fn):
    @functools.wraps(fn)
    def run(t):
        ctx = ReverseContext(t)
        fn(ctx)
        # Every request an origin got was routed to it (a forwarded one
        # would carry no Forwarded field): the test ran in reverse mode.
        for o in ctx._origins:
            for r in o.requests:
                if r.header("Forwarded") is None:
                    raise AssertionError(f"a request reached {o.hostport} without being "
                                         f"routed: {r!r}")
    run.__module__ = __name__
    return run


for _mod, _prefix in ((test_cache, "test_cache"), (test_disk, "test_disk")):
    for _name, _fn in sorted(vars(_mod).items()):
        if _name.startswith(_prefix) and callable(_fn):
            _w = reverse(_fn)
            _w.__name__ = "test_reverse_" + _name[len("test_"):]
            globals()[_w.__name__] = _w

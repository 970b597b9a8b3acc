"""The per-test context `t`: starts what a test needs, remembers it, and
tears it all down afterwards (clients, then sluice with the sanitizer check,
then origins and DNS)."""
import os
import shutil
import tempfile

from . import client as _client
from .dns import DNSServer, FlexDNSServer
from .origin import Origin, StreamServer, respond
from .sluice import Sluice
from .tls import TLSOrigin


class TestContext:
    def __init__(self, name="test"):
        self.tmpdir = tempfile.mkdtemp(prefix=f"sluice-it-{name[:40]}-")
        self._sluices = []
        self._servers = []
        self._clients = []
        self._deferred = []
        self._n = 0

    def _subdir(self, kind):
        self._n += 1
        d = os.path.join(self.tmpdir, f"{kind}{self._n}")
        os.makedirs(d, exist_ok=True)
        return d

    def path(self, name):
        return os.path.join(self.tmpdir, name)

    def sluice(self, conf="", start=True, **kw):
        """Start sluice with base config + `conf`; see Sluice."""
        s = Sluice(self._subdir("sluice"), conf, **kw)
        self._sluices.append(s)
        if start:
            s.start()
        return s

    def origin(self, handler=None, **kw):
        o = Origin(handler or respond(), **kw)
        self._servers.append(o)
        return o

    def tls_origin(self, handler=None, **kw):
        o = TLSOrigin(self._subdir("tls"), handler or respond(), **kw)
        self._servers.append(o)
        return o

    def stream_server(self, handler, **kw):
        o = StreamServer(handler, **kw)
        self._servers.append(o)
        return o

    def dns(self, table, ttl=60):
        d = DNSServer(table, ttl)
        self._servers.append(d)
        return d

    def flexdns(self, table, drop=(), delay=None):
        d = FlexDNSServer(table, drop, delay)
        self._servers.append(d)
        return d

    def client(self, target, timeout=5, source=None):
        """A raw client connected to a Sluice or an (host, port); `source`
        binds the client socket to that local address first."""
        addr = target.addr if hasattr(target, "addr") else target
        c = _client.Client(addr, timeout=timeout, source=source)
        self._clients.append(c)
        return c

    def get(self, proxy, url, headers=(), method="GET", body=None, version="HTTP/1.1",
            timeout=5):
        """One request on a new connection; returns the Response."""
        c = self.client(proxy, timeout)
        c.send(_client.build_request(method, url, headers, body, version))
        return c.read_response(method=method)

    def curl(self, args, max_time=10):
        return _client.curl(args, self._subdir("curl"), max_time)

    def defer(self, fn):
        self._deferred.append(fn)

    def cleanup(self, keep=False):
        """Tear down; returns a list of problems that fail the test."""
        problems = []
        for fn in reversed(self._deferred):
            try:
                fn()
            except Exception as e:
                problems.append(f"deferred cleanup failed: {e!r}")
        for c in self._clients:
            c.close()
        for s in self._sluices:
            if s.proc is None:
                continue
            died = s.proc.poll()
            if died is not None and not s.stopped_by_test:
                problems.append(f"sluice (pid {s.pid}) exited during the test with status {died}")
            s.stop(by_test=False)
            if s.killed:
                problems.append(f"sluice (pid {s.pid}) did not exit within the bound after "
                                f"SIGTERM and was killed")
            rep = s.sanitizer_report()
            if rep:
                problems.append(f"sanitizer report in sluice stderr:\n{rep}")
        for o in self._servers:
            try:
                o.stop()
            except Exception as e:
                problems.append(f"stopping {o!r}: {e!r}")
        for o in self._servers:
            errs = getattr(o, "errors", None)
            if errs:
                problems.append(f"origin handler errors (test bug?): {errs[:3]}")
        if not keep and not problems:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        return problems

    def stderr_tails(self):
        return [(s.pid if s.proc else None, s.stderr_tail()) for s in self._sluices]

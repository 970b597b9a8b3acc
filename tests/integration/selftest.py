#!/usr/bin/env python3
"""Self-test of lib/ without the proxy: origins, DNS, TLS and the raw client
against each other. `python3 tests/integration/selftest.py`."""
import hashlib
import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import origin as O  # noqa: E402
from lib.client import Client, build_request  # noqa: E402
from lib.ctx import TestContext  # noqa: E402
from lib.dns import A, AAAA, resolve  # noqa: E402
from lib.util import pattern_bytes, pattern_sha256  # noqa: E402


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def main():
    t = TestContext("selftest")
    try:
        # normal + keep-alive + recording
        o = t.origin(O.respond(body=b"hello"))
        c = t.client(o.addr)
        for i in range(3):
            r = c.request(build_request("GET", f"/x{i}", host="a.b"))
            check(r.status == 200 and r.body == b"hello", r)
        check(o.accepted == 1 and len(o.requests) == 3, (o.accepted, o.requests))
        check(o.requests[2].target == "/x2" and o.requests[2].header("host") == "a.b", o.requests)
        r = c.request(build_request("HEAD", "/", host="a"))
        check(r.body == b"" and r.header("Content-Length") == "5", r)
        # request body CL and chunked
        oe = t.origin(O.echo())
        c = t.client(oe.addr)
        r = c.request(build_request("POST", "/p", body=b"abc", host="h"))
        check(r.body == b"abc", r)
        c.send(b"PUT /q HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
        r = c.read_response()
        check(r.body == b"abcde" and oe.requests[-1].chunked, (r, oe.requests[-1].raw_body))
        # chunked response
        oc = t.origin(O.chunked([b"ab", b"cde"], trailers=[("X-T", "1")]))
        r = t.client(oc.addr).request(build_request("GET", "/", host="h"))
        check(r.chunked and r.body == b"abcde" and r.trailers == [("X-T", "1")], r)
        # close delimited
        od = t.origin(O.close_delimited(b"to the end"))
        r = t.client(od.addr).request(build_request("GET", "/", host="h"))
        check(r.close_delimited and r.body == b"to the end" and r.complete, r)
        # truncated / reset
        for reset in (False, True):
            ot = t.origin(O.truncated(100, 10, reset=reset))
            r = t.client(ot.addr).request(build_request("GET", "/", host="h"))
            check(not r.complete and len(r.body) == 10, r)
        # drip
        ev = threading.Event()
        op = t.origin(O.drip(1000, 100, 20, finished=ev))
        c = t.client(op.addr)
        t0 = time.monotonic()
        c.send(build_request("GET", "/", host="h"))
        r = c.read_head()
        check(not ev.is_set(), "drip finished before head was read")
        r = c.read_body_sha256(1000)
        check(r == (1000, pattern_sha256(1000)), r)
        check(time.monotonic() - t0 > 0.15, "drip too fast")
        # large
        ol = t.origin(O.large(8 << 20))
        c = t.client(ol.addr)
        c.send(build_request("GET", "/", host="h"))
        c.read_head()
        check(c.read_body_sha256(8 << 20) == (8 << 20, pattern_sha256(8 << 20)), "large sha")
        check(hashlib.sha256(pattern_bytes(3 << 20)).hexdigest() == pattern_sha256(3 << 20), "pattern")
        # never / garbage
        on = t.origin(O.never())
        c = t.client(on.addr)
        c.send(build_request("GET", "/", host="h"))
        check(not c.is_closed(0.3), "never() closed")
        og = t.origin(O.garbage())
        c = t.client(og.addr)
        c.send(build_request("GET", "/", host="h"))
        try:
            c.read_response()
            raise RuntimeError("garbage parsed")
        except AssertionError:
            pass
        # 100-continue
        o1 = t.origin(O.echo(), on_head=O.continue_on_head)
        c = t.client(o1.addr)
        c.send(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        r = c.read_response(skip_interim=False)
        check(r.status == 100, r)
        c.send(b"xyz")
        r = c.read_response()
        check(r.status == 200 and r.body == b"xyz", r)
        # IPv6 origin
        o6 = t.origin(O.respond(body=b"six"), host="::1")
        r = t.client(o6.addr).request(build_request("GET", "/", host="h"))
        check(r.body == b"six", r)
        # DNS
        d = t.dns({"origin.test": ["127.0.0.1"], "v6.test": ["::1"]}, ttl=5)
        check(resolve(d, "origin.test") == (0, ["127.0.0.1"]), "A")
        check(resolve(d, "v6.test", AAAA) == (0, ["::1"]), "AAAA")
        check(resolve(d, "v6.test", A) == (0, []), "no A")
        check(resolve(d, "nosuch.test")[0] == 3, "nxdomain")
        check(d.count("origin.test") == 1 and d.count("v6.test") == 2, d.queries)
        # TLS
        ts = t.tls_origin(O.respond(body=b"secret"))
        ctx = ssl.create_default_context(cafile=ts.cert)
        s = ctx.wrap_socket(socket.create_connection(ts.addr, timeout=5), server_hostname="127.0.0.1")
        s.sendall(build_request("GET", "/", host="h"))
        data = b""
        while not data.endswith(b"secret"):
            data += s.recv(4096)
        s.close()
        # curl directly to an origin
        r = t.curl([o.url("/c")])
        check(r.rc == 0 and r.status == 200 and r.body == b"hello", r)
        print("selftest ok")
    finally:
        probs = t.cleanup()
        if probs:
            print("cleanup problems:", probs)


if __name__ == "__main__":
    main()

"""Message framing through the proxy: request bodies by Content-Length and
chunked, responses by Content-Length, chunked and close; bodiless responses;
de-chunking for HTTP/1.0 clients; streaming; 100-continue."""
import threading
import time

from lib import asserts as A
from lib import origin as O
from lib.client import build_request
from lib.util import pattern_bytes, pattern_sha256


def test_framing001_request_cl_body(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"stored"))
    body = pattern_bytes(300 * 1024)
    r = t.get(p, o.url("/up"), method="POST", body=body)
    A.status(r, 200)
    req = o.requests[0]
    A.eq(req.header("Content-Length"), str(len(body)), "Content-Length at origin")
    if req.body != body:
        raise AssertionError(f"body at origin differs: {len(req.body)} bytes vs {len(body)}")


def test_framing002_request_chunked_body(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"stored"))
    parts = [b"a" * 1, b"hello world", pattern_bytes(70000), b"\r\n\r\nend"]
    wire = b"".join(b"%x\r\n" % len(x) + x + b"\r\n" for x in parts) + b"0\r\n\r\n"
    c = t.client(p)
    c.send(f"POST {o.url('/chunked')} HTTP/1.1\r\nHost: 127.0.0.1:{o.port}\r\n"
           "Transfer-Encoding: chunked\r\n\r\n".encode() + wire)
    r = c.read_response()
    A.status(r, 200)
    req = o.requests[0]
    if req.body != b"".join(parts):
        raise AssertionError(f"decoded body at origin differs ({len(req.body)} bytes)")
    if not req.chunked:
        A.eq(req.header("Content-Length"), str(len(b"".join(parts))), "re-framed length")
    # Still usable afterwards: the chunked body was consumed exactly.
    A.status(c.request(build_request("GET", o.url("/after"))), 200)
    A.eq(o.requests[1].target, "/after", "next request on the same connection")


def test_framing003_response_content_length(t):
    p = t.sluice()
    body = pattern_bytes(100000)
    o = t.origin(O.respond(body=body, headers=[("Content-Type", "application/x-test")]))
    r = t.get(p, o.url("/cl"))
    A.status(r, 200)
    A.eq(r.header("Content-Length"), "100000", "Content-Length")
    A.eq(r.body == body, True, "body intact")


def test_framing004_response_chunked(t):
    p = t.sluice()
    chunks = [b"first,", b"second,", pattern_bytes(40000), b"last"]
    o = t.origin(O.chunked(chunks))
    c = t.client(p)
    r = c.request(build_request("GET", o.url("/ch")))
    A.status(r, 200)
    A.eq(r.complete, True, "response complete")
    A.eq(r.body == b"".join(chunks), True, "de-chunked body equals origin's")
    A.status(c.request(build_request("GET", o.url("/ch2"))), 200)


def test_framing005_response_close_delimited(t):
    p = t.sluice()
    body = pattern_bytes(50000)
    o = t.origin(O.close_delimited(body))
    c = t.client(p)
    r = c.request(build_request("GET", o.url("/cd")))
    A.status(r, 200)
    A.eq(r.complete, True, "response complete")
    A.eq(len(r.body), len(body), "body length")
    A.eq(r.body == body, True, "body intact")


def test_framing006_head_response_bodiless(t):
    p = t.sluice()
    o = t.origin(O.bodiless(200, [("Content-Length", "1000"), ("Content-Type", "text/plain")]))
    c = t.client(p)
    r = c.request(build_request("HEAD", o.url("/big")))
    A.status(r, 200)
    A.eq(r.header("Content-Length"), "1000", "Content-Length in HEAD response")
    o2 = t.origin(O.respond(body=b"next"))
    r = c.request(build_request("GET", o2.url("/n")))
    A.status(r, 200)
    A.eq(r.body, b"next", "response after HEAD on the same connection")


def test_framing007_204_bodiless(t):
    p = t.sluice()
    o = t.origin(O.Sequence(O.bodiless(204), O.respond(body=b"after 204")))
    c = t.client(p)
    r = c.request(build_request("GET", o.url("/204")))
    A.status(r, 204)
    r = c.request(build_request("GET", o.url("/next")))
    A.status(r, 200)
    A.eq(r.body, b"after 204", "response after 204")


def test_framing008_304_bodiless(t):
    p = t.sluice()
    o = t.origin(O.Sequence(O.bodiless(304, [("ETag", '"v1"'), ("Content-Length", "500")]),
                            O.respond(body=b"after 304")))
    c = t.client(p)
    r = c.request(build_request("GET", o.url("/304"), [("If-None-Match", '"v1"')]))
    A.status(r, 304)
    A.eq(r.header("ETag"), '"v1"', "ETag")
    r = c.request(build_request("GET", o.url("/next")))
    A.status(r, 200)
    A.eq(r.body, b"after 304", "response after 304")


def test_framing009_chunked_to_http10_client(t):
    p = t.sluice()
    chunks = [b"one ", b"two ", b"three"]
    o = t.origin(O.chunked(chunks))
    c = t.client(p)
    c.send(build_request("GET", o.url("/x"), version="HTTP/1.0"))
    r = c.read_response()
    A.status(r, 200)
    te = r.header("Transfer-Encoding")
    if te is not None:
        raise AssertionError(f"Transfer-Encoding {te!r} sent to an HTTP/1.0 client")
    A.eq(r.body, b"one two three", "body as received by the HTTP/1.0 client")
    A.eq(r.complete, True, "complete")


def test_framing010_streaming_first_byte_early(t):
    p = t.sluice()
    finished = threading.Event()
    total = 20 * 500
    o = t.origin(O.drip(total, 500, 100, finished=finished))  # ~2 s in all
    c = t.client(p)
    c.send(build_request("GET", o.url("/drip")))
    r = c.read_head()
    A.status(r, 200)
    first = c.recv_some(timeout=5)
    if not first:
        raise AssertionError("connection closed before any body byte")
    if finished.is_set():
        raise AssertionError("first body byte arrived only after the origin had sent everything "
                             "(response buffered, not streamed)")
    got, digest = c.read_body_sha256(total - len(first), timeout=10)
    A.eq(got + len(first), total, "bytes received")


def test_framing011_expect_100_continue(t):
    p = t.sluice()
    o = t.origin(O.echo(), on_head=O.continue_on_head)
    c = t.client(p)
    c.send(f"PUT {o.url('/100')} HTTP/1.1\r\nHost: 127.0.0.1:{o.port}\r\n"
           "Expect: 100-continue\r\nContent-Length: 11\r\n\r\n".encode())
    r = c.read_response(skip_interim=False, timeout=3)
    A.eq(r.status, 100, "interim status before the body is sent")
    c.send(b"hello 100-c")
    r = c.read_response()
    A.status(r, 200)
    A.eq(r.body, b"hello 100-c", "echoed body")


def test_framing012_large_body_64mib(t):
    p = t.sluice()
    size = 64 << 20
    o = t.origin(O.large(size))
    c = t.client(p, timeout=30)
    c.send(build_request("GET", o.url("/big")))
    r = c.read_head()
    A.status(r, 200)
    A.eq(r.header("Content-Length"), str(size), "Content-Length")
    A.eq(c.read_body_sha256(size), (size, pattern_sha256(size)), "(bytes, sha256)")


def test_framing013_pipelined_post_bodies(t):
    p = t.sluice()
    o = t.origin(O.echo())
    reqs = b"".join(build_request("POST", o.url(f"/{i}"), body=f"body-{i}".encode() * (i + 1))
                    for i in range(3))
    c = t.client(p)
    c.send(reqs)
    for i in range(3):
        r = c.read_response()
        A.status(r, 200)
        A.eq(r.body, f"body-{i}".encode() * (i + 1), f"response {i}")


def _early_413(s):
    # Refuse an upload from its head alone, then close with the body
    # unread: what many origins do with a request that is too large.
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            return
        data += d
    s.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 5\r\n"
              b"Connection: close\r\n\r\nlarge")


def _feed_body(c, size):
    """Send size body bytes from a thread, as a client uploading would;
    stops quietly if the connection fails."""
    def feed():
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent < size:
                c.sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass

    th = threading.Thread(target=feed, daemon=True)
    th.start()
    return th


def test_framing014_origin_refuses_upload_early(t):
    # The origin answers 413 and closes while the client is still sending
    # an 8 MiB body. The client must get that 413, not a 502 or a reset:
    # the proxy reads the origin's answer after its write fails, and drains
    # the client's remaining body before closing (lingering close).
    o = t.stream_server(_early_413)
    p = t.sluice()
    c = t.client(p, timeout=10)
    size = 8 * 1024 * 1024
    c.send(build_request("POST", f"http://127.0.0.1:{o.port}/upload",
                         [("Content-Length", str(size))]))

    th = _feed_body(c, size)
    r = c.read_response(method="POST")
    A.status(r, 413)
    A.eq(r.body, b"large", "origin's answer body")
    A.contains(r.connection_tokens(), "close", "Connection tokens")
    th.join(15)
    assert not th.is_alive(), "client body sender still blocked"
    c.shutdown_write()
    assert c.is_closed(10), "proxy did not close after the client finished"


def test_framing015_local_error_during_upload_reaches_client(t):
    # The proxy answers an upload itself (origin port refused) long before
    # the 8 MiB body is in. The 502 must reach the client intact: closing
    # with the body unread would reset the connection under it.
    from lib.util import free_port
    port = free_port()
    p = t.sluice()
    c = t.client(p, timeout=10)
    size = 8 * 1024 * 1024
    c.send(build_request("POST", f"http://127.0.0.1:{port}/upload",
                         [("Content-Length", str(size))]))
    th = _feed_body(c, size)
    r = c.read_response(method="POST")
    A.proxy_error(r, 502, proxy_status="connection_refused", close=True)
    th.join(15)
    assert not th.is_alive(), "client body sender still blocked"
    c.shutdown_write()
    assert c.is_closed(10), "proxy did not close after the client finished"

"""Protocol upgrades (WebSocket style): the Upgrade handshake through the
proxy, bytes relayed both ways after a 101, close propagation, a 101 nobody
asked for, and Upgrade without Connection: upgrade (hop-by-hop)."""
import hashlib
import threading

from lib import asserts as A
from lib import origin as O
from lib.client import build_request
from lib.util import pattern_bytes, pattern_sha256, timeout, wait_until

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
WS_HEADERS = [("Connection", "Upgrade"), ("Upgrade", "websocket"),
              ("Sec-WebSocket-Key", WS_KEY), ("Sec-WebSocket-Version", "13")]
SWITCH = (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
          b"Sec-WebSocket-Accept: " + WS_ACCEPT.encode() + b"\r\n\r\n")
LOOKS_LIKE_HTTP = (b"GET http://127.0.0.1:1/evil HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                   b"0\r\n\r\n", b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", b"\x00\xff\r\n")


def switch_then(after, first=b""):
    """Handler: answer 101 (plus `first`, in the same write), then run
    after(conn) with the leftover bytes already read in conn.buf; closes
    when it returns. conn.ended is set once the peer's EOF was seen."""
    def h(req, c):
        c.ended = threading.Event()
        c.send(SWITCH + first)
        try:
            after(c)
        finally:
            c.ended.set()
        return O.CLOSE
    return h


def echo_until_eof(c):
    if c.buf:
        c.send(c.buf)
        c.buf = b""
    while True:
        try:
            d = c.sock.recv(262144)
        except OSError:
            d = b""
        if not d:
            c.origin.echo_eof = True
            return
        c.send(d)


def upgrade(t, p, o, path="/ws"):
    """Send the upgrade request; returns (response, client)."""
    c = t.client(p, timeout=10)
    c.send(build_request("GET", o.url(path), WS_HEADERS))
    return c.read_response(), c


def tokens(values):
    return [x.strip().lower() for v in values for x in v.split(",") if x.strip()]


def test_upgrade001_handshake_headers(t):
    p = t.sluice()
    o = t.origin(switch_then(echo_until_eof))
    r, c = upgrade(t, p, o)
    req = o.wait_requests(1)[0]
    A.eq((req.method, req.target), ("GET", "/ws"), "request line at origin")
    A.eq(req.header("Upgrade"), "websocket", "Upgrade at origin")
    A.contains(tokens(req.headers_named("Connection")), "upgrade", "Connection tokens at origin")
    A.eq(req.header("Sec-WebSocket-Key"), WS_KEY, "Sec-WebSocket-Key at origin")
    A.eq(req.header("Sec-WebSocket-Version"), "13", "Sec-WebSocket-Version at origin")
    A.eq(r.status_line, "HTTP/1.1 101 Switching Protocols", "status line to the client")
    A.eq(r.header("Upgrade"), "websocket", "Upgrade to the client")
    A.contains(r.connection_tokens(), "upgrade", "Connection tokens to the client")
    A.eq(r.header("Sec-WebSocket-Accept"), WS_ACCEPT, "Sec-WebSocket-Accept to the client")
    A.eq(r.has("Content-Length") or r.has("Transfer-Encoding"), False,
         f"framing header on the 101 ({r.headers!r})")
    A.eq(bytes(c.buf), b"", "bytes after the 101 before anyone spoke")


def test_upgrade002_bytes_both_ways_unchanged(t):
    p = t.sluice()
    o = t.origin(switch_then(echo_until_eof))
    r, c = upgrade(t, p, o)
    A.status(r, 101)
    for i, msg in enumerate(LOOKS_LIKE_HTTP):
        c.send(msg)
        A.eq(c.recv_exact(len(msg)), msg, f"echo of message {i}")
    blob = b"".join(LOOKS_LIKE_HTTP) * 50
    c.send(blob)
    A.eq(c.recv_exact(len(blob)), blob, "echo of the concatenated messages")
    A.eq(len(o.requests), 1, f"requests the origin parsed ({o.requests!r})")


def test_upgrade003_server_speaks_first(t):
    # The origin's first frame arrives in the same segment as its 101, and
    # looks like an HTTP response: it is tunnel data, not a second response.
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + b"\x82\x03abc"
    p = t.sluice()
    o = t.origin(switch_then(echo_until_eof, first=first))
    r, c = upgrade(t, p, o)
    A.status(r, 101)
    A.eq(c.recv_exact(len(first)), first, "server-first bytes after the 101")
    c.send(b"ping")
    A.eq(c.recv_exact(4), b"ping", "echo after the server-first bytes")


@timeout(40)
def test_upgrade004_1mib_echo_sha256(t):
    size = 1 << 20
    p = t.sluice()
    o = t.origin(switch_then(echo_until_eof))
    r, c = upgrade(t, p, o)
    A.status(r, 101)
    data = pattern_bytes(size)
    errs = []

    def writer():
        try:
            c.send(data)
        except OSError as e:
            errs.append(repr(e))
    w = threading.Thread(target=writer, daemon=True)
    w.start()
    got = c.read_body_sha256(size, timeout=20)
    w.join(10)
    A.eq(errs, [], "errors sending the blob")
    A.eq(got, (size, pattern_sha256(size)), "echoed (bytes, sha256)")
    A.eq(hashlib.sha256(data).hexdigest(), pattern_sha256(size), "sha256 of what was sent")


def test_upgrade005_client_close_ends_origin_side(t):
    p = t.sluice()
    o = t.origin(switch_then(echo_until_eof))
    o.echo_eof = False
    r, c = upgrade(t, p, o)
    A.status(r, 101)
    c.send(b"last words")
    A.eq(c.recv_exact(10), b"last words", "echo")
    c.close()
    wait_until(lambda: o.echo_eof, 3, "the origin to see the end of the upgraded connection")
    line = p.wait_log(o.url("/ws"))
    A.contains(line, "/101 ", "access log line of the upgraded request")


def test_upgrade006_origin_close_ends_client_side(t):
    def say_bye(c):
        c.send(b"bye from origin")
    p = t.sluice()
    o = t.origin(switch_then(say_bye))
    r, c = upgrade(t, p, o)
    A.status(r, 101)
    A.eq(c.read_until_close(timeout=3), b"bye from origin",
         "bytes, then the close, after the origin closed")


def test_upgrade007_unsolicited_101_is_502(t):
    p = t.sluice()
    good = t.origin(O.respond(body=b"good"))
    o = t.origin(O.raw(SWITCH + b"tunnel bytes nobody asked for", close=False))
    c = t.client(p)
    r = c.request(build_request("GET", o.url("/plain")))
    A.proxy_error(r, 502)
    A.not_contains(r.body, b"tunnel bytes", "502 body")
    if not c.eof:
        # Whatever follows on this connection must be the next response,
        # not the origin's bytes.
        r = c.request(build_request("GET", good.url("/")))
        A.status(r, 200)
        A.eq(r.body, b"good", "response after the 502")


def test_upgrade008_upgrade_without_connection_token_is_hop_by_hop(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"no switch"))
    r = t.get(p, o.url("/ws"), [("Upgrade", "websocket"), ("Sec-WebSocket-Key", WS_KEY),
                                ("Sec-WebSocket-Version", "13")])
    A.status(r, 200)
    A.eq(r.body, b"no switch", "body")
    req = o.wait_requests(1)[0]
    A.eq(req.has("Upgrade"), False, f"Upgrade header at origin ({req.raw_head!r})")
    A.not_contains(tokens(req.headers_named("Connection")), "upgrade",
                   "Connection tokens at origin")


def test_upgrade009_early_101_relay_waits_for_whole_head(t):
    # The origin answers 101 after the first bytes of a large request head.
    # The client's first relayed bytes must reach the origin after the whole
    # head, never inside it.
    import socket as S
    import time
    from lib.util import private_netns
    private_netns(1500)
    got = []

    def early(s):
        data = s.recv(1024)
        s.sendall(SWITCH)
        time.sleep(0.5)
        s.settimeout(1)
        try:
            while b"PING" not in data:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except (S.timeout, OSError):
            pass
        got.append(data)

    o = t.stream_server(early, rcvbuf=2048)
    p = t.sluice("max_header_size 64K")
    c = t.client(p)
    big = "b" * 60000
    c.send(build_request("GET", f"http://127.0.0.1:{o.port}/ws", WS_HEADERS + [("X-Big", big)]))
    r = c.read_response(skip_interim=False)
    A.status(r, 101)
    c.send(b"PING")
    wait_until(lambda: got, 5, "the origin to read the relayed bytes")
    head, sep, rest = got[0].partition(b"\r\n\r\n")
    A.eq(sep, b"\r\n\r\n", "end of the request head at the origin")
    A.contains(head, big.encode(), "the large header, whole")
    A.eq(rest, b"PING", "bytes after the head")

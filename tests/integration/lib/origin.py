"""Scripted origin servers on loopback, one thread per connection.

An Origin listens on 127.0.0.1 (or ::1) on a kernel-chosen port. For each
request it reads (head and body, per Content-Length or chunked) it records a
Request and calls handler(req, conn); the handler writes the response with
conn.send() and returns None to keep the connection open or CLOSE to close it.
The factories below build handlers for the behaviours tests need."""
import socket
import struct
import threading
import time

from .util import pattern_chunks

CLOSE = "close"
MAX_HEAD = 1 << 20


class Request:
    def __init__(self, raw_head, method, target, version, headers):
        self.raw_head = raw_head      # bytes, request line to the final CRLFCRLF
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers        # [(name, value)] as received
        self.body = b""              # decoded body
        self.raw_body = b""          # body bytes as on the wire
        self.chunked = False
        self.time = time.monotonic()

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def headers_named(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def has(self, name):
        return any(k.lower() == name.lower() for k, _ in self.headers)

    def __repr__(self):
        return f"<Request {self.raw_head!r}>"


class Closed(Exception):
    pass


class OriginConn:
    """The server side of one accepted connection."""

    def __init__(self, sock, origin):
        self.sock = sock
        self.origin = origin
        self.buf = b""
        self.eof = False

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            d = b""
        if not d:
            self.eof = True
            raise Closed()
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise Closed()
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_head(self):
        """Read one request head; None at a clean EOF before any byte."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise Closed()
            try:
                self._fill()
            except Closed:
                if self.buf:
                    self.origin.partial.append(self.buf)
                return None
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        raw += b"\r\n\r\n"
        lines = raw[:-4].split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ")
        method, target, version = (parts + ["", "", ""])[:3]
        headers = []
        for l in lines[1:]:
            k, _, v = l.decode("latin-1").partition(":")
            headers.append((k, v.strip(" \t")))
        req = Request(raw, method, target, version, headers)
        with self.origin.lock:
            self.origin.heads.append(req)
        return req

    def read_body(self, req):
        te = req.header("Transfer-Encoding")
        if te is not None and "chunked" in te.lower():
            req.chunked = True
            raw, body = [], []
            while True:
                line = self._line()
                raw.append(line + b"\r\n")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise Closed() from None
                if size == 0:
                    while True:
                        t = self._line()
                        raw.append(t + b"\r\n")
                        if t == b"":
                            break
                    break
                d = self._exact(size + 2)
                raw.append(d)
                body.append(d[:-2])
            req.raw_body = b"".join(raw)
            req.body = b"".join(body)
        elif req.header("Content-Length") is not None:
            try:
                n = int(req.header("Content-Length"))
            except ValueError:
                raise Closed() from None
            req.body = req.raw_body = self._exact(n)

    def send(self, data):
        self.sock.sendall(data)

    def respond(self, status=200, body=b"", headers=(), reason=None, version="HTTP/1.1"):
        self.send(build_response(status, body, headers, reason, version))

    def reset(self):
        """Close with RST (SO_LINGER 0)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()

    def wait_closed(self, timeout=60):
        """Block until the peer closes or timeout; discards what arrives."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass


REASONS = {100: "Continue", 200: "OK", 201: "Created", 204: "No Content",
           304: "Not Modified", 404: "Not Found", 500: "Internal Server Error"}


def build_response(status=200, body=b"", headers=(), reason=None, version="HTTP/1.1",
                   content_length=True):
    reason = reason or REASONS.get(status, "Whatever")
    h = [f"{version} {status} {reason}"]
    h += [f"{k}: {v}" for k, v in headers]
    if content_length and not any(k.lower() in ("content-length", "transfer-encoding")
                                  for k, _ in headers):
        h.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(h) + "\r\n\r\n").encode("latin-1") + body


class Origin:
    def __init__(self, handler, host="127.0.0.1", on_head=None, tls_context=None,
                 read_bodies=True, name="origin", port=0):
        self.handler = handler
        self.on_head = on_head
        self.tls_context = tls_context
        self.read_bodies = read_bodies
        self.host = host
        self.name = name
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(2048)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = 0
        self.requests = []   # every complete Request (head and body), in order
        self.heads = []      # every request head, recorded as soon as it is read
        self.partial = []    # bytes of heads cut short by EOF
        self.errors = []     # exceptions in connection threads (test bugs)
        self.peer_closed = 0 # connections the peer closed between requests
        self._conns = set()
        self._threads = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._accept_loop, daemon=True, name=name)
        self._t.start()

    @property
    def addr(self):
        return (self.host, self.port)

    @property
    def hostport(self):
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def url(self, path="/"):
        return f"http://{self.hostport}{path}"

    def _accept_loop(self):
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                s, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            s.settimeout(None)
            with self.lock:
                self.accepted += 1
                self._conns.add(s)
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, s):
        c = None
        try:
            if self.tls_context is not None:
                s.settimeout(10)
                s = self.tls_context.wrap_socket(s, server_side=True)
                s.settimeout(None)
                with self.lock:
                    self._conns.add(s)
            c = OriginConn(s, self)
            while not self._stop.is_set():
                req = c.read_head()
                if req is None:
                    with self.lock:
                        self.peer_closed += 1  # the client (the proxy) closed first
                    break
                if self.on_head is not None:
                    self.on_head(req, c)
                if self.read_bodies:
                    c.read_body(req)
                with self.lock:
                    self.requests.append(req)
                if self.handler(req, c) == CLOSE:
                    break
        except (Closed, ConnectionError, BrokenPipeError, socket.timeout):
            pass
        except OSError as e:
            if not self._stop.is_set() and e.errno not in (9, 104, 32):
                self.errors.append(repr(e))
        except Exception as e:  # a bug in a handler: visible to the test
            self.errors.append(repr(e))
        finally:
            try:
                s.close()
            except OSError:
                pass

    def wait_requests(self, n, timeout=3):
        from .util import wait_until
        wait_until(lambda: len(self.requests) >= n, timeout, f"{n} request(s) at {self.name}")
        return self.requests

    def stop(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self._t.join(2)
        for t in self._threads:
            t.join(0.5)


# --- handler factories -------------------------------------------------

def respond(status=200, body=b"hello\n", headers=(("Content-Type", "text/plain"),),
            reason=None, close=False, version="HTTP/1.1"):
    """A fixed response with Content-Length; keep-alive unless close."""
    data = build_response(status, body, headers, reason, version)
    head = data[:len(data) - len(body)]

    def h(req, c):
        c.send(head if req.method == "HEAD" else data)
        return CLOSE if close else None
    return h


def bodiless(status, headers=()):
    """A 204/304 (or any) response without body and without Content-Length;
    for HEAD: the headers of `respond`."""
    data = build_response(status, b"", headers, content_length=False)

    def h(req, c):
        c.send(data)
    return h


def raw(data, close=True):
    """Send exactly `data` and optionally close."""
    def h(req, c):
        c.send(data)
        return CLOSE if close else None
    return h


def chunked(chunks, trailers=(), headers=(("Content-Type", "text/plain"),)):
    def h(req, c):
        head = build_response(200, b"", tuple(headers) + (("Transfer-Encoding", "chunked"),))
        out = [head]
        for ch in chunks:
            out.append(b"%x\r\n" % len(ch) + ch + b"\r\n")
        out.append(b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in trailers) + b"\r\n")
        c.send(b"".join(out))
    return h


def close_delimited(body, version="HTTP/1.0", status=200):
    """No Content-Length, no chunking: the body ends when the origin closes."""
    def h(req, c):
        c.send(f"{version} {status} OK\r\nContent-Type: text/plain\r\n\r\n".encode() + body)
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return CLOSE
    return h


def drip(total, step, interval_ms, content_length=True, started=None, finished=None):
    """Send `total` pattern bytes, `step` bytes every interval_ms.
    `started`/`finished` (threading.Event or list) are set when the first and
    the last bytes are sent."""
    def h(req, c):
        hdrs = [("Content-Type", "application/octet-stream")]
        if content_length:
            hdrs.append(("Content-Length", str(total)))
        c.send(build_response(200, b"", hdrs, content_length=False))
        first = True
        for piece in pattern_chunks(total, step):
            c.send(piece)
            if first and started is not None:
                started.set()
            first = False
            time.sleep(interval_ms / 1000.0)
        if finished is not None:
            finished.set()
        if not content_length:
            return CLOSE
    return h


def large(size, chunk=1 << 20):
    """`size` pattern bytes with Content-Length (see util.pattern_sha256)."""
    def h(req, c):
        c.send(build_response(200, b"", [("Content-Type", "application/octet-stream"),
                                         ("Content-Length", str(size))], content_length=False))
        for piece in pattern_chunks(size, chunk):
            c.send(piece)
    return h


def truncated(declared, sent, reset=False):
    """Declare Content-Length `declared`, send `sent` bytes, then close (FIN,
    or RST with reset=True)."""
    def h(req, c):
        c.send(build_response(200, b"", [("Content-Type", "text/plain"),
                                         ("Content-Length", str(declared))],
                              content_length=False) + b"x" * sent)
        time.sleep(0.05)
        if reset:
            c.reset()
        return CLOSE
    return h


def wrong_length(declared, body):
    """Content-Length `declared` but `body` (any length) sent, then close."""
    def h(req, c):
        c.send(build_response(200, body, [("Content-Length", str(declared))]))
        return CLOSE
    return h


def never():
    """Read the request and never answer; wait until the peer goes away."""
    def h(req, c):
        c.wait_closed(120)
        return CLOSE
    return h


def garbage(data=b"\x00\x01\x02 this is not HTTP at all\r\n\r\n"):
    return raw(data, close=True)


def continue_on_head(req, c):
    """on_head hook: answer Expect: 100-continue before the body is read."""
    e = req.header("Expect")
    if e is not None and e.lower() == "100-continue":
        c.send(b"HTTP/1.1 100 Continue\r\n\r\n")


def echo(close=False):
    """200 whose body is the request body (decoded), with X-Method/X-Target."""
    def h(req, c):
        c.respond(200, req.body, [("Content-Type", "application/octet-stream"),
                                  ("X-Method", req.method), ("X-Target", req.target)])
        return CLOSE if close else None
    return h


class Sequence:
    """Handlers used in turn, one per request (the last repeats)."""

    def __init__(self, *handlers):
        self.handlers = list(handlers)
        self.i = 0
        self.lock = threading.Lock()

    def __call__(self, req, c):
        with self.lock:
            h = self.handlers[min(self.i, len(self.handlers) - 1)]
            self.i += 1
        return h(req, c)


class StreamServer:
    """A plain TCP server: handler(sock) runs in a thread per connection
    (for CONNECT tunnel tests). The socket is closed when it returns."""

    def __init__(self, handler, host="127.0.0.1", rcvbuf=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:
            # Inherited by accepted sockets: a small window makes the
            # proxy's writes to this server partial.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.handler = handler
        self.accepted = 0
        self.errors = []
        self._conns = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True, name="stream")
        self._t.start()

    @property
    def addr(self):
        return (self.host, self.port)

    def _loop(self):
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                s, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            s.settimeout(30)
            self.accepted += 1
            self._conns.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            self.handler(s)
        except (OSError, socket.timeout):
            pass
        except Exception as e:
            self.errors.append(repr(e))
        finally:
            try:
                s.close()
            except OSError:
                pass

    def stop(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        for s in self._conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self._t.join(2)


def sink_then_reply(s):
    """Read until EOF, then send "<n> <sha256>\n" and more bytes, then close:
    tests half-close through a tunnel."""
    import hashlib
    h = hashlib.sha256()
    n = 0
    while True:
        d = s.recv(262144)
        if not d:
            break
        h.update(d)
        n += len(d)
    s.sendall(f"{n} {h.hexdigest()}\n".encode() + b"after-eof-bytes" * 1000)

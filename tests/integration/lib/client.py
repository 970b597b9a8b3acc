"""A raw HTTP/1.1 client over a socket (exact bytes out, full response in),
and a curl wrapper."""
import hashlib
import os
import socket
import subprocess
import time

from .util import scale


class ConnClosed(AssertionError):
    """The peer closed (or reset) before a complete status line and head."""


class Response:
    def __init__(self):
        self.version = self.reason = ""
        self.status = 0
        self.status_line = ""
        self.headers = []         # [(name, value)]
        self.raw_head = b""
        self.body = b""           # decoded body
        self.raw_body = b""       # as on the wire
        self.chunked = False
        self.complete = True      # False: EOF/reset before the framing said the end
        self.close_delimited = False
        self.interim = []         # 1xx responses seen before this one
        self.trailers = []

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def headers_named(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def has(self, name):
        return any(k.lower() == name.lower() for k, _ in self.headers)

    def connection_tokens(self):
        toks = []
        for v in self.headers_named("Connection"):
            toks += [t.strip().lower() for t in v.split(",") if t.strip()]
        return toks

    def sha256(self):
        return hashlib.sha256(self.body).hexdigest()

    def __repr__(self):
        return f"<Response {self.status_line!r} {self.headers!r} body[{len(self.body)}]={self.body[:200]!r}>"


class Client:
    def __init__(self, addr, timeout=5, connect=True, source=None):
        self.addr = addr
        self.timeout = timeout
        self.source = source      # local address to bind before connecting, or None
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.sock = None
        if connect:
            self.connect()

    def connect(self):
        host, port = self.addr
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout * scale())
        if self.source is not None:
            self.sock.bind((self.source, 0))
        self.sock.connect((host, port))
        return self

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    # --- reading ------------------------------------------------------
    def _fill(self, deadline):
        """Read more into buf. False at EOF/reset; raises socket.timeout."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("read deadline passed")
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(262144)
        except socket.timeout:
            raise socket.timeout(f"nothing more from {self.addr[0]}:{self.addr[1]} within the "
                                 f"deadline; buffered {len(self.buf)} bytes: "
                                 f"{bytes(self.buf[:120])!r}") from None
        except ConnectionResetError:
            self.reset = True
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def _deadline(self, timeout):
        return time.monotonic() + (self.timeout if timeout is None else timeout) * scale()

    def recv_some(self, timeout=None):
        """Whatever arrives next (b"" at EOF)."""
        dl = self._deadline(timeout)
        if not self.buf:
            self._fill(dl)
        d, self.buf = bytes(self.buf), bytearray()
        return d

    def recv_exact(self, n, timeout=None):
        dl = self._deadline(timeout)
        while len(self.buf) < n:
            if not self._fill(dl):
                raise ConnClosed(f"closed after {len(self.buf)} of {n} bytes")
        d, self.buf = bytes(self.buf[:n]), self.buf[n:]
        return d

    def read_until_close(self, timeout=None):
        dl = self._deadline(timeout)
        while self._fill(dl):
            pass
        d, self.buf = bytes(self.buf), bytearray()
        return d

    def is_closed(self, timeout=2):
        """True if the peer closes (EOF or RST) within timeout s (scaled),
        discarding any bytes that arrive first; False if still open."""
        dl = self._deadline(timeout)
        try:
            while self._fill(dl):
                self.buf = bytearray()
            return True
        except socket.timeout:
            return False

    def _line(self, dl):
        while b"\r\n" not in self.buf:
            if not self._fill(dl):
                raise EOFError
        line, self.buf = self.buf.split(b"\r\n", 1)
        return bytes(line)

    def read_head(self, timeout=None):
        dl = self._deadline(timeout)
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(dl):
                raise ConnClosed(f"connection closed{' (reset)' if self.reset else ''} "
                                 f"before a complete response head; got {self.buf[:300]!r}")
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        raw = bytes(raw)
        r = Response()
        r.raw_head = raw + b"\r\n\r\n"
        lines = raw.split(b"\r\n")
        r.status_line = lines[0].decode("latin-1")
        parts = r.status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise AssertionError(f"bad status line {r.status_line!r}")
        r.version, r.status = parts[0], int(parts[1])
        r.reason = parts[2] if len(parts) > 2 else ""
        for l in lines[1:]:
            k, _, v = l.decode("latin-1").partition(":")
            r.headers.append((k, v.strip(" \t")))
        return r

    def read_response(self, method="GET", timeout=None, skip_interim=True):
        """Read one response, body framed per RFC 9112 §6.3. An EOF before
        the framing's end gives complete=False (never an exception)."""
        dl = self._deadline(timeout)
        interim = []
        while True:
            r = self.read_head(timeout=max(0.001, (dl - time.monotonic()) / scale()))
            if 100 <= r.status < 200 and r.status != 101 and skip_interim:
                interim.append(r)
                continue
            break
        r.interim = interim
        if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200 or \
                (method == "CONNECT" and 200 <= r.status < 300):
            return r
        te = r.header("Transfer-Encoding")
        cl = r.header("Content-Length")
        try:
            if te is not None and te.lower().split(",")[-1].strip() == "chunked":
                r.chunked = True
                raw, body = [], []
                while True:
                    line = self._line(dl)
                    raw.append(line + b"\r\n")
                    size = int(line.split(b";")[0].strip(), 16)
                    if size == 0:
                        while True:
                            t = self._line(dl)
                            raw.append(t + b"\r\n")
                            if t == b"":
                                break
                            k, _, v = t.decode("latin-1").partition(":")
                            r.trailers.append((k, v.strip()))
                        break
                    while len(self.buf) < size + 2:
                        if not self._fill(dl):
                            body.append(bytes(self.buf))
                            raw.append(bytes(self.buf))
                            self.buf = bytearray()
                            raise EOFError
                    d, self.buf = bytes(self.buf[:size + 2]), self.buf[size + 2:]
                    raw.append(d)
                    body.append(d[:-2])
                r.raw_body = b"".join(raw)
                r.body = b"".join(body)
            elif cl is not None:
                n = int(cl)
                while len(self.buf) < n:
                    if not self._fill(dl):
                        raise EOFError
                r.body, self.buf = bytes(self.buf[:n]), self.buf[n:]
                r.raw_body = r.body
            else:
                r.close_delimited = True
                while self._fill(dl):
                    pass
                r.body, self.buf = bytes(self.buf), bytearray()
                r.raw_body = r.body
        except EOFError:
            r.complete = False
            if r.chunked:
                r.raw_body = b"".join(raw)
                r.body = b"".join(body)
            else:
                r.body, self.buf = bytes(self.buf), bytearray()
                r.raw_body = r.body
        return r

    def read_body_sha256(self, n, timeout=None, chunk_cb=None):
        """Read exactly n body bytes (after read_head), hashing as we go,
        without keeping them. Returns (bytes_read, hexdigest)."""
        dl = self._deadline(timeout)
        h = hashlib.sha256()
        got = 0
        while got < n:
            if not self.buf and not self._fill(dl):
                break
            d = bytes(self.buf[:n - got])
            del self.buf[:len(d)]
            h.update(d)
            got += len(d)
            if chunk_cb:
                chunk_cb(got)
        return got, h.hexdigest()

    def request(self, data, method=None, timeout=None):
        """Send raw bytes and read one response."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.send(data)
        if method is None:
            method = data.split(b" ", 1)[0].decode()
        return self.read_response(method=method, timeout=timeout)


def get(proxy_addr, url, headers=(), method="GET", body=None, version="HTTP/1.1", timeout=5):
    """One request on a fresh connection through the proxy; returns
    (response, client). The caller closes the client (or the context does)."""
    c = Client(proxy_addr, timeout=timeout)
    c.send(build_request(method, url, headers, body, version))
    return c.read_response(method=method), c


def build_request(method, target, headers=(), body=None, version="HTTP/1.1", host=None):
    lines = [f"{method} {target} {version}"]
    names = {k.lower() for k, _ in headers}
    if "host" not in names:
        if host is None and "://" in target:
            host = target.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
        if host:
            lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        data += body
    return data


class CurlResult:
    def __init__(self, rc, status, head, body, stderr):
        self.rc, self.status, self.head, self.body, self.stderr = rc, status, head, body, stderr

    def __repr__(self):
        return f"<curl rc={self.rc} status={self.status} head={self.head[-400:]!r} stderr={self.stderr[-400:]!r}>"


def curl(args, workdir, max_time=10):
    """Run curl with `args`; body to a file, head to a file, status via -w."""
    n = len(os.listdir(workdir))
    body_f = os.path.join(workdir, f"curl-body-{n}")
    head_f = os.path.join(workdir, f"curl-head-{n}")
    mt = max_time * scale()
    cmd = ["curl", "-sS", "--max-time", f"{mt:.1f}", "-o", body_f, "-D", head_f,
           "-w", "%{http_code}"] + list(args)
    p = subprocess.run(cmd, capture_output=True, timeout=mt + 10)
    try:
        body = open(body_f, "rb").read()
    except OSError:
        body = b""
    try:
        head = open(head_f, "rb").read().decode("latin-1")
    except OSError:
        head = ""
    status = p.stdout.decode().strip()
    return CurlResult(p.returncode, int(status) if status.isdigit() else 0, head, body,
                      p.stderr.decode("utf-8", "replace"))

"""CONNECT tunnels: TLS through curl -p, port policy, bulk transfer,
half-close."""
import hashlib
import socket
import ssl

from lib import asserts as A
from lib import origin as O
from lib.util import pattern_bytes, pattern_sha256, timeout


def connect(t, p, target, timeout=5):
    c = t.client(p, timeout=timeout)
    c.send(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    r = c.read_response(method="CONNECT")
    return r, c


def test_connect001_curl_proxytunnel_tls(t):
    tls = t.tls_origin(O.respond(body=b"secret over tls\n"))
    p = t.sluice(f"connect_ports 443 {tls.port}")
    r = t.curl(["-p", "-x", p.proxy_url, "--cacert", tls.cert,
                f"https://127.0.0.1:{tls.port}/tls"])
    A.eq(r.rc, 0, f"curl exit code ({r.stderr.strip()})")
    A.eq(r.status, 200, "status")
    A.eq(r.body, b"secret over tls\n", "body")
    A.contains(r.head, "HTTP/1.1 200 Connection Established", "CONNECT response")
    A.eq(tls.requests[0].target, "/tls", "target at TLS origin")


def test_connect002_raw_tunnel_status_line(t):
    tls = t.tls_origin(O.respond(body=b"raw tls"))
    p = t.sluice(f"connect_ports {tls.port}")
    r, c = connect(t, p, f"127.0.0.1:{tls.port}")
    A.eq(r.status_line, "HTTP/1.1 200 Connection Established", "status line")
    A.eq(c.buf, b"", "bytes after the CONNECT response before the server spoke")
    ctx = ssl.create_default_context(cafile=tls.cert)
    s = ctx.wrap_socket(c.sock, server_hostname="127.0.0.1")
    s.sendall(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while not data.endswith(b"raw tls"):
        d = s.recv(4096)
        if not d:
            break
        data += d
    A.contains(data, b"raw tls", "response through the tunnel")


def test_connect003_port_not_allowed_403(t):
    p = t.sluice()
    srv = t.stream_server(lambda s: s.sendall(b"220 smtp\r\n"))
    r, c = connect(t, p, "127.0.0.1:25")
    A.proxy_error(r, 403, detail="CONNECT to port 25 not allowed")
    r, c = connect(t, p, f"127.0.0.1:{srv.port}")  # default connect_ports is 443 only
    A.proxy_error(r, 403, detail=f"CONNECT to port {srv.port} not allowed")
    A.eq(srv.accepted, 0, "connections made to the denied port")


def test_connect004_port_range_allowed(t):
    srv = t.stream_server(lambda s: s.sendall(b"banner\r\n"))
    p = t.sluice(f"connect_ports 443 {srv.port - 5}-{srv.port + 5}")
    r, c = connect(t, p, f"127.0.0.1:{srv.port}")
    A.status(r, 200)
    A.eq(c.recv_exact(8), b"banner\r\n", "server bytes through the tunnel")


@timeout(60)
def test_connect005_10mib_download_tls(t):
    size = 10 << 20
    tls = t.tls_origin(O.large(size))
    p = t.sluice(f"connect_ports {tls.port}")
    r = t.curl(["-p", "-x", p.proxy_url, "--cacert", tls.cert,
                f"https://127.0.0.1:{tls.port}/big"], max_time=40)
    A.eq(r.rc, 0, f"curl exit code ({r.stderr.strip()})")
    A.eq(len(r.body), size, "bytes received")
    A.eq(hashlib.sha256(r.body).hexdigest(), pattern_sha256(size), "sha256")


@timeout(60)
def test_connect006_10mib_upload_and_half_close(t):
    srv = t.stream_server(O.sink_then_reply)
    p = t.sluice(f"connect_ports {srv.port}")
    r, c = connect(t, p, f"127.0.0.1:{srv.port}", timeout=30)
    A.status(r, 200)
    size = 10 << 20
    c.send(pattern_bytes(size))
    c.shutdown_write()  # the server answers only after it sees our EOF
    data = c.read_until_close()
    line, _, rest = data.partition(b"\n")
    A.eq(line.decode(), f"{size} {pattern_sha256(size)}", "server's count and sha256 of upload")
    A.eq(rest, b"after-eof-bytes" * 1000, "bytes the server sent after our half-close")


def test_connect007_half_close_small(t):
    srv = t.stream_server(O.sink_then_reply)
    p = t.sluice(f"connect_ports {srv.port}")
    r, c = connect(t, p, f"127.0.0.1:{srv.port}")
    A.status(r, 200)
    c.send(b"ping")
    c.shutdown_write()
    data = c.read_until_close()
    A.eq(data.split(b"\n")[0].decode(), f"4 {hashlib.sha256(b'ping').hexdigest()}", "reply")
    A.eq(data.endswith(b"after-eof-bytes"), True, "tail of reply after half-close")


def test_connect008_refused_502(t):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = t.sluice(f"connect_ports {port}")
    r, c = connect(t, p, f"127.0.0.1:{port}")
    A.proxy_error(r, 502, proxy_status="connection_refused")


def test_connect009_server_closes_tunnel(t):
    srv = t.stream_server(lambda s: s.sendall(b"bye"))
    p = t.sluice(f"connect_ports {srv.port}")
    r, c = connect(t, p, f"127.0.0.1:{srv.port}")
    A.status(r, 200)
    A.eq(c.read_until_close(), b"bye", "bytes then close through the tunnel")


def test_connect010_tunnel_idle_timeout(t):
    import time
    from lib.util import scale
    srv = t.stream_server(lambda s: s.recv(1))  # accepts, then stays silent
    p = t.sluice(f"connect_ports {srv.port}\ntunnel_idle_timeout 1s")
    r, c = connect(t, p, f"127.0.0.1:{srv.port}", timeout=10)
    A.status(r, 200)
    t0 = time.monotonic()
    if c.is_closed(0.5 / scale()):
        raise AssertionError("idle tunnel closed before tunnel_idle_timeout 1s")
    if not c.is_closed(4):
        raise AssertionError("idle tunnel still open ~4.5s after tunnel_idle_timeout 1s")
    dt = time.monotonic() - t0
    if dt > 3.5 * scale():
        raise AssertionError(f"idle tunnel closed only after {dt:.2f}s")


def test_connect011_a_failed_connect_closes_instead_of_reading_tunnel_bytes_as_requests(t):
    # A client sends its first tunnel bytes right behind the CONNECT head;
    # the CONNECT fails (DNS). Those bytes were meant for the tunnel: the
    # connection closes after the 502, and they are never read as a request.
    o = t.origin(O.respond(body=b"smuggled"))
    d = t.dns({})
    p = t.sluice(f"dns_servers {d.server_text}\nconnect_ports 443")
    c = t.client(p, timeout=5)
    inner = f"GET http://127.0.0.1:{o.port}/inner HTTP/1.1\r\nHost: x\r\n\r\n"
    c.send(f"CONNECT nosuch.test:443 HTTP/1.1\r\nHost: nosuch.test:443\r\n\r\n{inner}".encode())
    r = c.read_response(method="CONNECT")
    A.proxy_error(r, 502, proxy_status="dns_error", close=True)
    A.eq(c.is_closed(timeout=3), True, "closed after the answer")
    A.eq(len(o.requests), 0, "requests made of the bytes meant for the tunnel")

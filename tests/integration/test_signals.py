"""Signals and the command line: SIGHUP reload (good and bad configs),
SIGTERM/SIGINT graceful drain, -t config check, --help/--version."""
import os
import re
import signal
import socket
import subprocess
import time

from lib import asserts as A
from lib import origin as O
from lib.client import build_request
from lib.util import bin_path, free_port, pattern_sha256, scale, wait_until, timeout

DRIP_TOTAL = 40 * 8192


def slow_download(t, p, o):
    c = t.client(p, timeout=15)
    c.send(build_request("GET", o.url("/slow")))
    r = c.read_head()
    A.status(r, 200)
    return c


def finish_download(c):
    A.eq(c.read_body_sha256(DRIP_TOTAL, timeout=15), (DRIP_TOTAL, pattern_sha256(DRIP_TOTAL)),
         "in-flight download (bytes, sha256)")


def test_signals001_hup_adds_listener_keeps_inflight(t):
    p = t.sluice()
    slow = t.origin(O.drip(DRIP_TOTAL, 8192, 50))  # ~2 s
    fast = t.origin(O.respond(body=b"via new listener"))
    c = slow_download(t, p, slow)
    port2 = free_port()
    p.reload(f"listen 127.0.0.1:{p.port}\nlisten 127.0.0.1:{port2}")
    p.wait_listening("127.0.0.1", port2, timeout=3)
    r = t.get(("127.0.0.1", port2), fast.url("/n"))
    A.status(r, 200)
    A.eq(r.body, b"via new listener", "body via the new listener")
    A.status(t.get(p, fast.url("/o")), 200)
    finish_download(c)
    A.eq(p.alive(), True, "sluice running")


def test_signals002_hup_invalid_config_keeps_old(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"still here"))
    bad = p.conf + "no_such_directive 1\n"
    line_no = bad.count("\n")
    p.reload(raw=bad)
    wait_until(lambda: f"sluice.conf:{line_no}:" in p.stderr_text(), 3,
               f"an error naming sluice.conf:{line_no} on stderr")
    A.eq(p.alive(), True, "sluice running after a bad reload")
    r = t.get(p, o.url("/"))
    A.status(r, 200)
    A.eq(r.body, b"still here", "body")


def test_signals003_hup_applies_new_config(t):
    p = t.sluice()
    o = t.origin()
    r = t.get(p, o.url("/1"))
    A.eq(r.headers_named("Via"), ["1.1 testhost (sluice)"], "Via before reload")
    p.reload("via off")

    def no_via():
        return t.get(p, o.url("/2")).headers_named("Via") == []
    wait_until(no_via, 3, "`via off` to take effect after SIGHUP", interval=0.1)


@timeout(40)
def test_signals004_term_drains_then_exits_0(t):
    p = t.sluice("shutdown_timeout 10s")
    o = t.origin(O.drip(DRIP_TOTAL, 8192, 50))
    c = slow_download(t, p, o)
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)

    def refused():
        try:
            s = socket.create_connection(p.addr, timeout=0.3)
            s.close()
            return False
        except (ConnectionRefusedError, ConnectionResetError):
            # A connect racing the listener's close is reset by the kernel.
            return True
        except socket.timeout:
            # Or its SYN is lost with the listener closing under it (it
            # would be sent again after a second): try again.
            return False
    wait_until(refused, 3, "new connections to be refused after SIGTERM", interval=0.05)
    finish_download(c)
    rc = p.wait_exit(5)
    p.stopped_by_test = True
    A.eq(rc, 0, "exit status after SIGTERM")
    if time.monotonic() - t0 > 8 * scale():
        raise AssertionError("exit took longer than the in-flight request needed")


def test_signals005_int_exits_0(t):
    p = t.sluice()
    o = t.origin()
    A.status(t.get(p, o.url("/")), 200)
    p.signal(signal.SIGINT)
    rc = p.wait_exit(5)
    p.stopped_by_test = True
    A.eq(rc, 0, "exit status after SIGINT")


def test_signals006_term_drain_deadline(t):
    p = t.sluice("shutdown_timeout 1s")
    o = t.origin(O.never())
    c = t.client(p, timeout=10)
    c.send(build_request("GET", o.url("/stuck")))
    o.wait_requests(1)
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)
    rc = p.wait_exit(5)
    p.stopped_by_test = True
    A.eq(rc, 0, "exit status after the drain deadline")
    dt = time.monotonic() - t0
    if dt < 0.8:
        raise AssertionError(f"exited after {dt:.2f}s without waiting for the in-flight request")


def run_check(t, text, name):
    path = t.path(name)
    with open(path, "w") as f:
        f.write(text)
    return subprocess.run([bin_path(), "-t", "-c", name], cwd=t.tmpdir, capture_output=True,
                          timeout=10 * scale(), text=True)


def test_signals007_check_bad_config(t):
    r = run_check(t, "# a comment\nlisten 127.0.0.1:3128\nthreads lots\nvia on\n", "bad.conf")
    A.eq(r.returncode, 1, f"exit status of -t (stderr {r.stderr!r})")
    if not re.search(r"(^|\n)bad\.conf:3: \S", r.stderr):
        raise AssertionError(f"stderr should have 'bad.conf:3: message', got {r.stderr!r}")


def test_signals008_check_unknown_directive(t):
    r = run_check(t, "listen 127.0.0.1:3128\n\nfrobnicate yes\n", "bad.conf")
    A.eq(r.returncode, 1, f"exit status of -t (stderr {r.stderr!r})")
    if not re.search(r"(^|\n)bad\.conf:3: \S", r.stderr):
        raise AssertionError(f"stderr should have 'bad.conf:3: message', got {r.stderr!r}")


def test_signals009_check_good_config(t):
    r = run_check(t, "# good\nlisten 127.0.0.1:3128\nthreads 2\nvisible_hostname testhost\n"
                  "allow 127.0.0.0/8 ::1\nconnect_ports 443 8000-8100\nvia off\n"
                  "read_timeout 30s\nmax_header_size 16K\n", "good.conf")
    A.eq(r.returncode, 0, f"exit status of -t on a good config (stderr {r.stderr!r})")


def test_signals010_help_and_version(t):
    for flag in ("--help", "--version"):
        r = subprocess.run([bin_path(), flag], capture_output=True, text=True,
                           timeout=10 * scale())
        A.eq(r.returncode, 0, f"exit status of {flag}")
        if not (r.stdout + r.stderr).strip():
            raise AssertionError(f"{flag} printed nothing")
    r = subprocess.run([bin_path(), "--version"], capture_output=True, text=True, timeout=10)
    A.contains((r.stdout + r.stderr).lower(), "sluice", "--version output")

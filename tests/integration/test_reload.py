"""SIGHUP reloads that take things away or move them: a removed listen
address, a narrowed allow list, a new access_log path."""
import os
import socket

from lib import asserts as A
from lib.client import build_request
from lib.util import free_port, wait_until


def path_echo(req, c):
    c.respond(200, req.target.encode(), [("Content-Type", "text/plain")])


def refused(addr):
    try:
        s = socket.create_connection(addr, timeout=1)
    except (ConnectionRefusedError, ConnectionResetError):
        # A connect racing the listener's close is reset by the kernel.
        return True
    s.close()
    return False


def test_reload001_removed_listener_stops_accepting(t):
    p = t.sluice(start=False)
    port2 = free_port()
    p.write_conf(f"listen {p.listen_text}\nlisten 127.0.0.1:{port2}")
    p.start()
    p.wait_listening("127.0.0.1", port2)
    o = t.origin(path_echo)
    kept = t.client(("127.0.0.1", port2))
    r = kept.request(build_request("GET", o.url("/before")))
    A.eq((r.status, r.body), (200, b"/before"), "(status, body) on the port to be removed")
    p.reload(f"listen {p.listen_text}")
    wait_until(lambda: refused(("127.0.0.1", port2)), 3,
               f"connections to the removed 127.0.0.1:{port2} to be refused", interval=0.05)
    r = t.get(p, o.url("/remaining"))
    A.eq((r.status, r.body), (200, b"/remaining"), "(status, body) on the remaining port")
    # The keep-alive connection accepted on the removed port is not dropped.
    r = kept.request(build_request("GET", o.url("/after")))
    A.eq((r.status, r.body), (200, b"/after"),
         "(status, body) on a connection established on the removed port")
    A.eq(p.alive(), True, "sluice running")


def test_reload002_allow_narrowed_gives_403(t):
    p = t.sluice()
    o = t.origin(path_echo)
    A.status(t.get(p, o.url("/allowed")), 200)
    p.reload("allow 10.0.0.0/8")

    n = [0]

    def denied():
        n[0] += 1  # requests answered before the reload took effect get their 200
        r = t.get(p, o.url(f"/probe{n[0]}"))
        return r if r.status == 403 else None
    r = wait_until(denied, 3, "a 403 for 127.0.0.1 after the reload", interval=0.1)
    A.proxy_error(r, 403)
    r = t.get(p, o.url("/denied"))
    A.proxy_error(r, 403)
    A.eq([q.target for q in o.requests if q.target in (f"/probe{n[0]}", "/denied")], [],
         "requests from a denied client that reached the origin")
    line = p.wait_log(o.url("/denied"))
    A.contains(line, "TCP_DENIED/403", "access log line of the denied request")


def test_reload003_access_log_moves(t):
    p = t.sluice()
    o = t.origin(path_echo)
    A.status(t.get(p, o.url("/before")), 200)
    p.wait_log("/before")
    new = t.path("moved-access.log")
    p.reload(f"access_log {new} squid")
    wait_until(lambda: os.path.exists(new), 3, f"{new} to be created after SIGHUP")
    n = [0]

    def logged_in_new():
        n[0] += 1
        A.status(t.get(p, o.url(f"/probe{n[0]}")), 200)
        return any(f"/probe{n[0]} " in l for l in p.access_lines(new))
    wait_until(logged_in_new, 3, "a request to be logged in the new file", interval=0.1)
    A.status(t.get(p, o.url("/after")), 200)
    p.wait_log("/after", path=new)
    old = p.access_lines()
    if not any("/before " in l for l in old):
        raise AssertionError(f"the old log lost its line: {old!r}")
    if any("/after " in l for l in old):
        raise AssertionError(f"a request after the reload was logged to the old file: {old!r}")
    A.eq(sum(1 for l in p.access_lines(new) if "/after " in l), 1, "lines for /after in the new log")


def test_reload004_with_cache_off_an_invalidation_still_reaches_the_kept_store(t):
    # The memory store outlives a reload to `cache off`, to serve again
    # after one back to `cache on`: a POST in between must still
    # invalidate what it keeps (RFC 9111 §4.4).
    p = t.sluice()

    def h(req, c):
        n = len(c.origin.requests)
        if req.method == "POST":
            c.respond(200, b"posted")
            return None
        c.respond(200, b"version #%d" % n, [("Cache-Control", "max-age=60")])
    o = t.origin(h)
    A.eq(t.get(p, o.url("/doc")).body, b"version #1", "stored")
    A.contains(t.get(p, o.url("/doc")).header("Cache-Status") or "", "; hit", "a hit")
    n = [0]

    def reload(extra, cache_on):
        k = p.stderr_text().count("reloaded ")
        p.reload(extra)
        wait_until(lambda: p.stderr_text().count("reloaded ") > k, 5, "the reload")

        def seen():  # a connection made from now on has the new config
            n[0] += 1
            r = t.get(p, o.url(f"/probe{n[0]}"))
            return (r.header("Cache-Status") is not None) == cache_on
        wait_until(seen, 5, f"cache {'on' if cache_on else 'off'}", interval=0.05)
    reload("cache off", False)
    A.eq(t.get(p, o.url("/doc"), method="POST", body=b"new").body, b"posted", "POST")
    reload("", True)
    r = t.get(p, o.url("/doc"))
    A.eq(r.body.startswith(b"version #"), True, "a body from the origin")
    A.eq(r.body != b"version #1", True, "not the copy stored before the POST")
    A.contains(r.header("Cache-Status"), "fwd=uri-miss", "a miss")


def test_reload005_an_access_log_that_cannot_open_keeps_the_old_file_and_format(t):
    p = t.sluice()  # access_log FILE squid
    o = t.origin(path_echo)
    A.status(t.get(p, o.url("/before")), 200)
    p.wait_log("/before")
    p.reload(f"access_log {t.path('no-such-dir')}/access.log combined")
    wait_until(lambda: "access log unchanged" in p.stderr_text(), 3,
               "the reload to report the access log unchanged")
    A.status(t.get(p, o.url("/after")), 200)
    line = p.wait_log("/after")
    A.contains(line, "TCP_MISS/200", "the old file keeps its squid format")
    A.not_contains(line, '"GET ', "no combined-format line in it")


def test_reload006_settings_taken_only_at_start_are_named_when_a_reload_changes_them(t):
    p = t.sluice("cache_mem 8M\n")
    p.reload(f"cache_mem 64M\ndns_cache_size 10\ncache_dir {t.path('d')} 10M\n")
    wait_until(lambda: "reloaded" in p.stderr_text(), 3, "the reload")
    err = p.stderr_text()
    A.contains(err, "'cache_mem' changes only at restart (running 8388608 bytes)", "cache_mem")
    A.contains(err, "'dns_cache_size' changes only at restart (running 4096)", "dns_cache_size")
    A.contains(err, "'cache_dir' changes only at restart (running none)", "cache_dir")
    A.not_contains(err, "'threads'", "threads unchanged")
    # Reloading to what runs says nothing more.
    k = err.count("reloaded")
    p.reload("cache_mem 8M\n")
    wait_until(lambda: p.stderr_text().count("reloaded") > k, 3, "the second reload")
    A.eq(p.stderr_text().count("changes only at restart"), 3, "no new warning")

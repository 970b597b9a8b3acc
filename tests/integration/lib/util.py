"""Shared helpers: where the binary is, timeouts scaled for sanitizer builds,
bounded waiting, free ports and deterministic test data."""
import functools
import hashlib
import os
import random
import socket
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))


def bin_path():
    """The sluice binary under test: $SLUICE_BIN (default build/sluice),
    relative to the current directory or, failing that, the repository."""
    p = os.environ.get("SLUICE_BIN", "build/sluice")
    if os.path.isabs(p) or os.path.exists(p):
        return os.path.abspath(p)
    return os.path.join(ROOT, p)


@functools.lru_cache(maxsize=None)
def is_sanitized():
    """True if the binary is built with ASan (it links __asan_init)."""
    try:
        with open(bin_path(), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def scale():
    """Multiplier for every timeout: 3 for a sanitizer build, else 1;
    $SLUICE_TIMEOUT_SCALE overrides."""
    s = os.environ.get("SLUICE_TIMEOUT_SCALE")
    if s:
        return float(s)
    return 3.0 if is_sanitized() else 1.0


def wait_until(pred, timeout, what="condition", interval=0.02):
    """Poll pred() until it returns a true value (returned) or timeout seconds
    (scaled) pass: then AssertionError naming `what`."""
    deadline = time.monotonic() + timeout * scale()
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout * scale():.1f}s waiting for {what}")
        time.sleep(interval)


# Ports for listeners we must name before the process binds them (sluice's
# `listen`). Each parallel runner slot owns a 500-port block below the
# kernel's ephemeral range, so concurrent tests never pick the same port and
# outgoing connections never sit on it.
_SLOT = int(os.environ.get("SLUICE_TEST_SLOT", str(random.randrange(40)))) % 40
_next = random.randrange(500)


def free_port(host="127.0.0.1"):
    global _next
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    base = 10000 + _SLOT * 500
    for _ in range(500):
        port = base + _next % 500
        _next += 1
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port in slot block")


# Deterministic data: 1 MiB pseudo-random block, each MiB of the stream is the
# block rotated by a different amount, so offsets are distinguishable.
_BLOCK_SIZE = 1 << 20
_BLOCK = random.Random(20261202).randbytes(_BLOCK_SIZE)


def pattern_chunks(size, chunk=_BLOCK_SIZE):
    """Yield `size` deterministic bytes in pieces of at most `chunk`."""
    off = 0
    while off < size:
        i, r = divmod(off, _BLOCK_SIZE)
        k = (i * 40993) % _BLOCK_SIZE
        seg = _BLOCK[k:] + _BLOCK[:k]
        piece = seg[r:r + min(chunk, size - off)]
        yield piece
        off += len(piece)


def pattern_bytes(size):
    return b"".join(pattern_chunks(size))


@functools.lru_cache(maxsize=None)
def pattern_sha256(size):
    h = hashlib.sha256()
    for p in pattern_chunks(size):
        h.update(p)
    return h.hexdigest()


def timeout(seconds):
    """Decorator: this test may run for `seconds` (before scaling)."""
    def deco(fn):
        fn._timeout = seconds
        return fn
    return deco


def serial(fn):
    """Decorator: run this test alone (heavy load, timing-sensitive)."""
    fn._serial = True
    return fn


def private_netns(mtu=1500):
    """Move the calling thread (the test's main thread, before it starts any
    server) into a network namespace of its own with loopback up at `mtu`.
    Servers and the proxy started afterwards live in it. A real-network MTU
    keeps the kernel's send buffers small, so partial writes happen as they
    do off loopback. Needs root (CAP_SYS_ADMIN)."""
    import ctypes
    import fcntl
    import struct
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:  # CLONE_NEWNET
        raise AssertionError(f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}"
                             " (the test needs root)")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(s, 0x8922, struct.pack("16si12x", b"lo", mtu))  # SIOCSIFMTU
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, struct.pack("16sH14x", b"lo", 0)))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))  # IFF_UP
    finally:
        s.close()

"""Run the sluice binary under test: write a config, start it, wait for its
port, signal it, read its access log and stderr, stop it."""
import os
import signal
import socket
import subprocess
import time

from .util import bin_path, free_port, scale, wait_until

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                   "WARNING: ThreadSanitizer",
                   # sluice's own checks (SL_ASSERT), e.g. at exit
                   "sluice: assertion failed",
                   # valgrind memcheck (make valgrind)
                   "Invalid read", "Invalid write", "Invalid free", "uninitialised",
                   "definitely lost", "indirectly lost", "Mismatched free")


def directive_names(text):
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split()[0])
    return names


class Sluice:
    """One sluice process.

    conf: extra config lines. The base lines (listen, threads,
    visible_hostname, access_log, shutdown_timeout) are only added for
    directives that `conf` does not set itself.
    """

    def __init__(self, workdir, conf="", threads=2, host="127.0.0.1", log_format="squid",
                 access_log=True):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.host = host
        self.port = free_port(host)
        self.conf_path = os.path.join(self.dir, "sluice.conf")
        self.log_path = os.path.join(self.dir, "access.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.threads = threads
        self.log_format = log_format
        self.access_log = access_log
        self.proc = None
        self.stopped_by_test = False
        self.killed = False
        self.returncode = None
        self.write_conf(conf)

    # --- config -------------------------------------------------------
    @property
    def listen_text(self):
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def conf_text(self, extra=""):
        have = directive_names(extra)
        base = []
        if "listen" not in have:
            base.append(f"listen {self.listen_text}")
        if "threads" not in have:
            base.append(f"threads {self.threads}")
        if "visible_hostname" not in have:
            base.append("visible_hostname testhost")
        if "access_log" not in have and self.access_log:
            base.append(f"access_log {self.log_path} {self.log_format}")
        if "shutdown_timeout" not in have:
            base.append("shutdown_timeout 2s")
        return "\n".join(base) + "\n" + extra.strip("\n") + "\n"

    def write_conf(self, extra="", raw=None):
        """Write the config file (base + extra, or `raw` verbatim)."""
        self.conf = raw if raw is not None else self.conf_text(extra)
        with open(self.conf_path, "w") as f:
            f.write(self.conf)

    # --- process ------------------------------------------------------
    def start(self, wait=True):
        exe = bin_path()
        if not os.access(exe, os.X_OK):
            raise AssertionError(f"sluice binary {exe} missing or not executable")
        self._err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([exe, "-c", self.conf_path], stdin=subprocess.DEVNULL,
                                     stdout=self._err, stderr=self._err, cwd=self.dir)
        if wait:
            self.wait_listening(self.host, self.port)
        return self

    def wait_listening(self, host, port, timeout=10):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"sluice exited with {self.proc.returncode} during start; "
                                     f"stderr: {self.stderr_tail()}")
            try:
                s = socket.create_connection((host, port), timeout=1)
                s.close()
                return True
            except OSError:
                return False
        wait_until(up, timeout, f"sluice to accept on {host}:{port}", interval=0.02)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, extra="", raw=None):
        self.write_conf(extra, raw)
        self.signal(signal.SIGHUP)

    def wait_exit(self, timeout):
        """Wait up to timeout (scaled) s; return the exit code or None."""
        try:
            return self.proc.wait(timeout=timeout * scale())
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=6, by_test=True):
        """SIGTERM, then SIGKILL after `timeout` (scaled) s. Returns the exit
        code (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if by_test:
            self.stopped_by_test = True
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait_exit(timeout) is None:
                self.killed = True
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.returncode = self.proc.returncode
        try:
            self._err.close()
        except Exception:
            pass
        return self.returncode

    # --- observation --------------------------------------------------
    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, n=15):
        return "\n".join(self.stderr_text().splitlines()[-n:])

    def sanitizer_report(self):
        text = self.stderr_text()
        for m in SANITIZER_MARKS:
            i = text.find(m)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None

    def access_lines(self, path=None):
        try:
            with open(path or self.log_path, "rb") as f:
                return [l.decode("utf-8", "replace") for l in f.read().splitlines()]
        except OSError:
            return []

    def wait_log(self, pred, timeout=3, path=None, what=None):
        """Poll the access log for a line for which pred(line) is true (pred
        may be a substring). Returns the line."""
        if isinstance(pred, str):
            sub = pred
            pred = lambda l: sub in l  # noqa: E731
            what = what or f"access log line containing {sub!r}"

        def find():
            for l in self.access_lines(path):
                if pred(l):
                    return l
            return None
        try:
            return wait_until(find, timeout, what or "access log line")
        except AssertionError as e:
            lines = self.access_lines(path)
            raise AssertionError(f"{e}; log has {len(lines)} lines: {lines[-5:]!r}") from None

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    @property
    def addr(self):
        return (self.host, self.port)

    @property
    def proxy_url(self):
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}"

#!/usr/bin/env python3
"""Integration test runner for sluice.

    python3 tests/integration/run.py [-k SUBSTRING] [-j N] [--keep]

Discovers tests/integration/test_*.py and runs every function named test_*
(taking the context `t`, see lib/ctx.py) in its own child process and
process group, with a hard timeout (30 s by default, @timeout(N) for more;
times 3 for a sanitizer build). After each test the child stops every sluice
it started with SIGTERM and fails the test on a sanitizer report in its
stderr; the parent then kills whatever is left in the group. Tests marked
@serial run alone after the others. Output: one line per test, then
"N passed, N failed"; exit status 1 if any failed.
The binary under test is $SLUICE_BIN (default build/sluice)."""
import argparse
import concurrent.futures
import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lib import util  # noqa: E402

DEFAULT_TIMEOUT = 30
LIVE = set()          # child Popen objects running now
LIVE_LOCK = threading.Lock()
STOPPING = threading.Event()


def load_module(fname):
    path = os.path.join(HERE, fname)
    spec = importlib.util.spec_from_file_location(fname[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class SoftTimeout(Exception):
    pass


def child(fname, name, result_path, timeout):
    """Run one test in this process; write a JSON result."""
    from lib.ctx import TestContext
    res = {"ok": False, "reason": "", "tb": []}
    t0 = time.monotonic()
    ctx = None

    def on_alarm(signum, frame):
        raise SoftTimeout(f"test timed out after {timeout:.0f}s")
    signal.signal(signal.SIGALRM, on_alarm)
    try:
        mod = load_module(fname)
        fn = getattr(mod, name)
        ctx = TestContext(name)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            if fn.__code__.co_argcount >= 1:
                fn(ctx)
            else:
                fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        res["ok"] = True
    except BaseException as e:  # noqa: B902 - everything is a failure here
        res["reason"] = f"{type(e).__name__}: {e}".splitlines()[0][:400] if str(e) else type(e).__name__
        tb = traceback.format_exception(type(e), e, e.__traceback__.tb_next or e.__traceback__)
        res["tb"] = [l for chunk in tb for l in chunk.rstrip("\n").splitlines()]
    if ctx is not None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            problems = ctx.cleanup(keep=not res["ok"] or os.environ.get("SLUICE_KEEP") == "1")
        except BaseException as e:  # noqa: B902
            problems = [f"cleanup raised {e!r}"]
        if problems:
            if res["ok"]:
                res["ok"] = False
                res["reason"] = problems[0].splitlines()[0]
            for p in problems:
                res["tb"] += p.splitlines()
        if not res["ok"]:
            for pid, tail in ctx.stderr_tails():
                if tail:
                    res["tb"].append(f"sluice pid {pid} stderr tail:")
                    res["tb"] += ["  " + l for l in tail.splitlines()]
        if not res["ok"]:
            res["tb"].append(f"(files kept in {ctx.tmpdir})")
    res["elapsed"] = time.monotonic() - t0
    with open(result_path, "w") as f:
        json.dump(res, f)


def discover(ksub):
    tests, broken = [], []
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        try:
            mod = load_module(fname)
        except BaseException as e:  # noqa: B902
            broken.append((fname, e))
            continue
        for name, fn in vars(mod).items():
            if name.startswith("test_") and callable(fn) and getattr(fn, "__module__", None) == mod.__name__:
                tid = f"{fname}::{name}"
                if ksub and ksub not in tid:
                    continue
                tests.append((fname, name, getattr(fn, "_timeout", DEFAULT_TIMEOUT),
                              getattr(fn, "_serial", False), fn.__code__.co_firstlineno))
    tests.sort(key=lambda x: (x[0], x[4]))
    return tests, broken


def run_one(fname, name, tmo, slot, tmpdir):
    """Run a test in a child process group; returns (ok, reason, lines, secs)."""
    result_path = os.path.join(tmpdir, f"{fname}-{name}.json")
    env = dict(os.environ, SLUICE_TEST_SLOT=str(slot), PYTHONDONTWRITEBYTECODE="1")
    soft = tmo * util.scale()
    hard = soft + 10 * util.scale()
    t0 = time.monotonic()
    if STOPPING.is_set():
        return False, "not run (runner interrupted)", [], 0.0
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", fname, name,
                          result_path, str(soft)], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    with LIVE_LOCK:
        LIVE.add(p)
    out = b""
    hard_killed = False
    try:
        out, _ = p.communicate(timeout=hard)
    except subprocess.TimeoutExpired:
        hard_killed = True
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = p.communicate()
    # Anything the test left in its process group (sluice, curl) goes now.
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    with LIVE_LOCK:
        LIVE.discard(p)
    secs = time.monotonic() - t0
    output = out.decode("utf-8", "replace").splitlines()
    try:
        with open(result_path) as f:
            res = json.load(f)
        os.unlink(result_path)
    except (OSError, ValueError):
        reason = (f"hard timeout: killed after {hard:.0f}s" if hard_killed
                  else f"test process exited with {p.returncode} without a result")
        return False, reason, output[-30:], secs
    lines = list(res["tb"])
    if not res["ok"] and output:
        lines += ["test output:"] + ["  " + l for l in output[-20:]]
    return res["ok"], res["reason"], lines, secs


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, fname, name, result_path, tmo = sys.argv
        child(fname, name, result_path, float(tmo))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="run tests whose file::name contains this")
    ap.add_argument("-j", type=int, default=4, help="tests run in parallel (default 4)")
    ap.add_argument("--keep", action="store_true", help="keep temp dirs of passing tests too")
    args = ap.parse_args()
    if args.keep:
        os.environ["SLUICE_KEEP"] = "1"
    tests, broken = discover(args.k)
    import tempfile
    rdir = tempfile.mkdtemp(prefix="sluice-it-results-")
    passed = failed = 0
    lock = threading.Lock()

    def report(tid, ok, reason, lines, secs):
        nonlocal passed, failed
        with lock:
            if ok:
                passed += 1
                print(f"ok   {tid} ({secs:.2f}s)", flush=True)
            else:
                failed += 1
                print(f"FAIL {tid}: {reason}", flush=True)
                for l in lines:
                    print("    " + l, flush=True)

    for fname, e in broken:
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        report(f"{fname}::<import>", False, f"{type(e).__name__}: {e}",
               [l for c in tb for l in c.rstrip("\n").splitlines()], 0.0)

    slots = queue.Queue()
    for i in range(max(1, args.j)):
        slots.put(i)

    def job(test):
        fname, name, tmo, _serial, _line = test
        slot = slots.get()
        try:
            ok, reason, lines, secs = run_one(fname, name, tmo, slot, rdir)
        except Exception as e:  # the runner itself must not die
            ok, reason, lines, secs = False, f"runner error: {e!r}", [], 0.0
        finally:
            slots.put(slot)
        report(f"{fname}::{name}", ok, reason, lines, secs)

    parallel = [t for t in tests if not t[3]]
    serial = [t for t in tests if t[3]]
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.j))
    try:
        list(ex.map(job, parallel))
        ex.shutdown(wait=True)
        for t in serial:
            job(t)
    except KeyboardInterrupt:
        STOPPING.set()
        with LIVE_LOCK:
            for p in LIVE:  # each child leads its own process group
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        ex.shutdown(wait=True, cancel_futures=True)
        print("interrupted", flush=True)
        failed += 1
    try:
        os.rmdir(rdir)
    except OSError:
        pass
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Turn bench/run.sh raw results (JSON lines) into a Markdown report.

Each measured run is one JSON object; a cell that could not be measured is
one object with a "status" text. Every figure in a table is the median over
the runs of that cell, taken metric by metric.
"""
import argparse
import json
import re
import statistics
import sys

MiB = 1024 * 1024

LABEL = {
    "direct": "direct (wrk → origin)",
    "sluice": "sluice",
    "trafficserver": "trafficserver",
    "squid": "squid",
    "tinyproxy": "tinyproxy",
    "nginx": "nginx (reverse proxy)",
}

TITLE = {
    1: "Scenario 1 — 1 KiB GET, 50 keep-alive connections",
    2: "Scenario 2 — 1 MiB GET, 8 keep-alive connections",
    3: "Scenario 3 — CONNECT tunnel, 64 MiB GET inside, 4 tunnels in parallel",
    4: "Scenario 4 — 1 KiB GET, a new client connection per request",
    5: "Scenario 5 — memory per idle keep-alive client",
}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f(x, digits=0):
    if x is None:
        return "—"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def throughput(s, r):
    if s in (1, 4):
        return r["requests"] / r["seconds"]
    return r["bytes"] / r["seconds"] / MiB


def metrics(s, runs):
    """Median figures of one cell."""
    m = {"n": len(runs)}
    if s == 5:
        per = []
        per_pss = []
        for r in runs:
            n = max(r["idle"], 1)
            per.append((r["rss_after"] - r["rss_before"]) / n)
            per_pss.append((r["pss_after"] - r["pss_before"]) / n)
        m["kib_rss"] = med(per)
        m["kib_pss"] = med(per_pss)
        m["rss_before"] = med([r["rss_before"] / 1024 for r in runs])
        m["rss_after"] = med([r["rss_after"] / 1024 for r in runs])
        m["idle"] = med([r["idle"] for r in runs])
        m["failed"] = max(r["failed"] for r in runs)
        m["closed"] = max(r["closed_after"] for r in runs)
        return m
    m["tput"] = med([throughput(s, r) for r in runs])
    m["p99"] = med([r["p99_ms"] for r in runs])
    m["errors"] = sum(r["errors"] for r in runs)
    m["closes"] = any(r.get("err_read", 0) > 0.5 * r.get("requests", 0) > 0 for r in runs)
    m["core"] = med([r["cpu_s"] / r["seconds"] * 100 for r in runs])
    m["busy_p"] = med([r.get("busy_proxy_cpu") for r in runs])
    m["busy_l"] = med([r.get("busy_load_cpu") for r in runs])
    if s == 3:
        m["cpu_unit"] = med([r["cpu_s"] * 1e6 / (r["bytes"] / MiB) if r["bytes"] else None
                             for r in runs])
        m["objects"] = med([r["objects"] for r in runs])
    else:
        m["cpu_unit"] = med([r["cpu_s"] * 1e6 / r["requests"] if r["requests"] else None
                             for r in runs])
        m["origin"] = med([r["origin_requests"] / r["requests"] if r["requests"] else None
                           for r in runs])
        m["accepts"] = med([r["origin_accepts"] / r["requests"] if r["requests"] else None
                            for r in runs])
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    for opt in ("date", "quick", "duration", "runs", "warm", "idle", "elapsed", "cpu",
                "kernel", "nproc", "nofile", "proxy-cpu", "load-cpu", "sluice",
                "targets", "scenarios", "versions"):
        ap.add_argument("--" + opt, default="")
    a = ap.parse_args()

    rows = [json.loads(line) for line in open(a.results) if line.strip()]
    targets = a.targets.split(",")
    scenarios = [int(s) for s in a.scenarios.split(",")]
    cells = {}
    status = {}
    for r in rows:
        key = (r["scenario"], r["target"])
        if "status" in r:
            status.setdefault(key, []).append(r["status"])
        else:
            cells.setdefault(key, []).append(r)
    # A run during which the proxy crashed does not count; the runs before
    # it still do (the note says so).
    for key, msgs in status.items():
        for msg in msgs:
            mt = re.match(r"crashed during run (\d+)", msg)
            if mt and key in cells:
                bad = int(mt.group(1))
                cells[key] = [r for r in cells[key] if r["run"] != bad]
                if not cells[key]:
                    del cells[key]

    out = []
    w = out.append
    w(f"# sluice benchmark — {a.date}{' (quick smoke run)' if a.quick == '1' else ''}")
    w("")
    w(f"- Machine: {a.nproc} CPUs ({a.cpu}), Linux {a.kernel}, RLIMIT_NOFILE {a.nofile}.")
    w(f"- Proxy under test pinned to CPU {a.proxy_cpu}; origin nginx (1 worker) and the "
      f"load generator pinned to CPU {a.load_cpu}. All traffic on 127.0.0.1.")
    w(f"- Each cell: {a.warm} s warm-up, then {a.runs} run(s) of {a.duration} s; "
      f"figures are medians over the runs. Scenario 5: {a.idle} clients, "
      f"{a.runs} run(s), each on a freshly started proxy.")
    w(f"- sluice at commit {a.sluice}. Packages: "
      + ", ".join(v.replace(" ", " ") for v in a.versions.strip().splitlines()) + ".")
    w(f"- Whole run took {a.elapsed} s. Method and caveats: docs/benchmarks.md.")
    w("")

    def why(key):
        msgs = status.get(key)
        return "; ".join(dict.fromkeys(msgs)) if msgs else None

    def unmeasured(key, ncols):
        """Cells for a row that has no runs: the reason, in every cell if it is
        'not measured yet', else in the note column."""
        reason = why(key) or "no result"
        if reason.startswith("not measured yet"):
            return ["not measured yet"] * (ncols - 1) + [reason]
        return ["—"] * (ncols - 1) + [reason]

    # Summary table.
    w("## Summary")
    w("")
    hdr = ["proxy"]
    for s in scenarios:
        hdr.append({1: "S1 req/s vs direct", 2: "S2 MiB/s vs direct", 3: "S3 MiB/s vs direct",
                    4: "S4 req/s vs direct", 5: "S5 KiB per idle client (RSS)"}[s])
    w("| " + " | ".join(hdr) + " |")
    w("|" + "---|" * len(hdr))
    direct = {s: metrics(s, cells[(s, "direct")]) for s in scenarios if (s, "direct") in cells}
    for t in targets:
        row = [LABEL.get(t, t)]
        for s in scenarios:
            key = (s, t)
            if key not in cells:
                reason = why(key) or "no result"
                row.append("not measured yet" if reason.startswith("not measured yet")
                           else ("n/a" if reason.startswith("n/a")
                                 else ("crashed" if reason.startswith("crashed")
                                       else "failed, see below")))
                continue
            m = metrics(s, cells[key])
            if s == 5:
                row.append(f(m["kib_rss"], 1))
            elif t == "direct":
                row.append("1.00 (" + f(m["tput"]) + ")")
            elif why(key) and why(key).startswith("crashed"):
                row.append(f(m["tput"] / direct[s]["tput"], 2) + " (crashed in a later run)"
                           if s in direct and direct[s]["tput"] else "crashed")
            elif s in direct and direct[s]["tput"]:
                row.append(f(m["tput"] / direct[s]["tput"], 2))
            else:
                row.append("—")
        w("| " + " | ".join(row) + " |")
    w("")

    for s in scenarios:
        w(f"## {TITLE[s]}")
        w("")
        if s == 5:
            hdr = ["proxy", "idle clients", "RSS before (MiB)", "RSS after (MiB)",
                   "KiB/client (RSS)", "KiB/client (Pss)", "failed / dropped", "note"]
        elif s == 3:
            hdr = ["proxy", "MiB/s", "vs direct", "p99 per object (ms)", "proxy CPU µs/MiB",
                   f"core use: proxy / CPU{a.proxy_cpu} / CPU{a.load_cpu}", "objects/run", "errors", "note"]
        else:
            unit = "req/s" if s in (1, 4) else "MiB/s"
            hdr = ["proxy", unit, "vs direct", "p99 (ms)", "proxy CPU µs/req",
                   f"core use: proxy / CPU{a.proxy_cpu} / CPU{a.load_cpu}", "origin req/req", "errors", "note"]
            if s == 4:
                hdr.insert(7, "upstream conn/req")
        w("| " + " | ".join(hdr) + " |")
        w("|" + "---|" * len(hdr))
        for t in targets:
            key = (s, t)
            if key not in cells:
                w("| " + " | ".join([LABEL.get(t, t)] + unmeasured(key, len(hdr) - 1)) + " |")
                continue
            m = metrics(s, cells[key])
            note = why(key) or ""
            if s != 5 and m.get("closes"):
                note = (note + "; " if note else "") + (
                    "it closed the client connection after each response without "
                    "'Connection: close' (no client keep-alive): wrk counts each as a "
                    "read error and reconnects")
            if m["n"] < int(a.runs or 1):
                note = (note + "; " if note else "") + f"only {m['n']} of {a.runs} runs"
            if s == 5:
                note2 = note
                if t == "direct":
                    note2 = (note + "; " if note else "") + "the origin nginx itself, as a server"
                row = [f(m["idle"]), f(m["rss_before"], 1), f(m["rss_after"], 1),
                       f(m["kib_rss"], 1), f(m["kib_pss"], 1),
                       f"{m['failed']} / {m['closed']}", note2]
            else:
                d = direct.get(s)
                ratio = (f(m["tput"] / d["tput"], 2) if d and d["tput"] and t != "direct"
                         else ("1.00" if t == "direct" else "—"))
                is_direct = t == "direct"
                cpu = "—" if is_direct else f(m["cpu_unit"], 1)
                core = ("—" if is_direct else f(m["core"])) + " / " + f(m["busy_p"]) + \
                    " / " + f(m["busy_l"]) + " %"
                if s == 3:
                    row = [f(m["tput"]), ratio, f(m["p99"], 1), cpu, core,
                           f(m["objects"]), str(m["errors"]), note]
                else:
                    row = [f(m["tput"]), ratio, f(m["p99"], 2), cpu, core,
                           f(m["origin"], 2), str(m["errors"]), note]
                    if s == 4:
                        row.insert(6, f(m["accepts"], 2))
            w("| " + " | ".join([LABEL.get(t, t)] + row) + " |")
        w("")

    w("Columns: *vs direct* is the proxy's throughput divided by the direct figure. "
      "*proxy CPU* is the proxy's utime+stime (from /proc/PID/stat, summed over its "
      "processes) during a run, divided by the requests (or MiB) the client completed. "
      f"*core use*: the proxy's CPU time over the run's wall time, then how busy CPU {a.proxy_cpu} (the "
      f"proxy's) and CPU {a.load_cpu} (origin + client) were in all, from /proc/stat: the proxy's CPU busy well "
      "above the proxy's share means other work on the machine took the proxy's core; the load CPU "
      "at 100 % with the proxy below 100 % means the client side was the limit. *origin req/req* is the "
      "origin's request counter (nginx stub_status) over the client's count: ≈1.00 means "
      "every request really went to the origin. *upstream conn/req* is the origin's new "
      "connections per request (below 1: the proxy pools upstream connections). "
      "Scenario 5: (RSS or Pss with the clients idle − before they connected) ÷ idle clients.")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())

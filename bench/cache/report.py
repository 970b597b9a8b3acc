#!/usr/bin/env python3
"""Turn bench/cache.sh raw results (JSON lines) into a Markdown report.

Rows of the results file:
  a measured run       {"scenario", "target", "run", "requests", "bytes", ...}
  a cell not measured  {"scenario", "target", "status": why}
  the hit probe        {"scenario", "target", "probe_first", "probe_second"}
  memory after a run   {"scenario", "target", "run", "rss_kib", "pss_kib"}
Every figure in a table is the median over the runs (rounds) of that cell,
metric by metric; a ratio is the median of the per-round ratios. A
cache-hit cell (C1, C3) where the origin served most of the requests is not
a cache measurement: it is marked invalid and left out of the comparison
with the targets.
"""
import argparse
import json
import re
import statistics
import sys

MiB = 1024 * 1024

LABEL = {
    "direct": "direct (client → origin)",
    "sluice": "sluice (reverse mode)",
    "sluice-sf": "sluice, sendfile on",
    "sluice-bp": "sluice, busy_poll 20us",
    "varnish": "Varnish",
    "trafficserver": "Traffic Server",
    "squid": "Squid (accel)",
    "haproxy": "HAProxy",
    "nginx": "nginx (proxy_pass)",
}

TITLE = {
    1: "C1 — 1 KiB cache hits, 50 keep-alive connections",
    2: "C2 — reverse proxy with the cache off, 1 KiB, 50 keep-alive connections",
    3: "C3 — 1 MiB cache hits, 8 keep-alive connections",
    4: "C3b — 1 MiB cache hits, 8 keep-alive connections, lean client (connect_bulk -k)",
}
NAME = {1: "C1", 2: "C2", 3: "C3", 4: "C3b"}
UNIT = {1: "req/s", 2: "req/s", 3: "MiB/s", 4: "MiB/s"}
CACHED = {1: True, 2: False, 3: True, 4: True}
# Above this share of requests served by the origin, a cache-hit cell is
# invalid; above NOTE_SHARE it gets a note.
INVALID_SHARE = 0.5
NOTE_SHARE = 0.01


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f(x, digits=0):
    if x is None:
        return "—"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def pct(x):
    if x is None:
        return "—"
    if x and x < 0.001:
        return "<0.1 %"
    return f"{x * 100:.1f} %"


def throughput(s, r):
    if s in (1, 2):
        return r["requests"] / r["seconds"]
    return r["bytes"] / r["seconds"] / MiB


def metrics(s, runs):
    m = {"n": len(runs)}
    m["tput"] = med([throughput(s, r) for r in runs])
    m["p99"] = med([r["p99_ms"] for r in runs])
    m["errors"] = sum(r["errors"] for r in runs)
    m["err_status"] = sum(r.get("err_status", 0) for r in runs)
    m["core"] = med([r["cpu_s"] / r["seconds"] * 100 for r in runs])
    m["busy_p"] = med([r.get("busy_proxy_cpu") for r in runs])
    m["busy_l"] = med([r.get("busy_load_cpu") for r in runs])
    unit = [r["requests"] if s in (1, 2) else r["bytes"] / MiB for r in runs]
    m["cpu_unit"] = med([r["cpu_s"] * 1e6 / u if u else None for r, u in zip(runs, unit)])
    m["origin_total"] = sum(r["origin_requests"] for r in runs)
    m["origin_share"] = med([r["origin_requests"] / r["requests"] if r["requests"] else None
                             for r in runs])
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    for opt in ("date", "quick", "duration", "runs", "warm", "elapsed", "cpu", "kernel",
                "nproc", "nofile", "proxy-cpu", "load-cpu", "sluice", "targets",
                "varnish-params", "versions"):
        ap.add_argument("--" + opt, default="")
    a = ap.parse_args()

    rows = [json.loads(line) for line in open(a.results) if line.strip()]
    order = []  # [(scenario, [targets])]
    for part in a.targets.split(";"):
        if part:
            s, ts = part.split(":")
            order.append((int(s), ts.split(",")))
    cells, status, probe, mem = {}, {}, {}, {}
    for r in rows:
        key = (r["scenario"], r["target"])
        if "status" in r:
            status.setdefault(key, []).append(r["status"])
        elif "probe_second" in r:
            probe[key] = r
        elif "rss_kib" in r:
            mem[key] = r
        else:
            cells.setdefault(key, []).append(r)
    for key, msgs in status.items():
        for msg in msgs:
            mt = re.match(r"crashed during run (\d+)", msg)
            if mt and key in cells:
                cells[key] = [r for r in cells[key] if r["run"] != int(mt.group(1))]
                if not cells[key]:
                    del cells[key]

    def why(key):
        msgs = status.get(key)
        return "; ".join(dict.fromkeys(msgs)) if msgs else None

    M = {key: metrics(key[0], runs) for key, runs in cells.items()}

    def validity(key):
        """None if the cell measures what it should, else the reason."""
        s, t = key
        m = M.get(key)
        if m is None or t == "direct" or m["origin_share"] is None:
            return None
        if CACHED[s] and m["origin_share"] > INVALID_SHARE:
            return (f"INVALID: the origin served {pct(m['origin_share'])} of the requests, "
                    "so these were not cache hits")
        if not CACHED[s] and m["origin_share"] < 1 - INVALID_SHARE:
            return (f"INVALID: the origin saw only {pct(m['origin_share'])} of the requests, "
                    "so the proxy did not forward them (cached?)")
        return None

    def round_ratios(key, base):
        """key's throughput over base's, round by round (rounds both have)."""
        s = key[0]
        b = {r["run"]: throughput(s, r) for r in cells.get(base, [])}
        return [throughput(s, r) / b[r["run"]] for r in cells.get(key, [])
                if b.get(r["run"])]

    def ratio(key, base=None):
        """The median of key's per-round ratios to base (direct by default):
        each round measures every target once, so a round's ratio compares
        runs made minutes apart, not a whole scenario apart."""
        base = base or (key[0], "direct")
        if key not in M or base not in M:
            return None
        return med(round_ratios(key, base))

    def rounds_met(key, base, bound):
        rs = round_ratios(key, base)
        return f"{sum(1 for x in rs if x >= bound)} of {len(rs)} rounds"

    out = []
    w = out.append
    smoke = a.quick == "1"
    w(f"# sluice cache and reverse-proxy benchmark — {a.date}"
      f"{' (quick smoke run)' if smoke else ''}")
    w("")
    w(f"- Machine: {a.nproc} CPUs ({a.cpu}), Linux {a.kernel}, RLIMIT_NOFILE {a.nofile}.")
    w(f"- Proxy under test pinned to CPU {a.proxy_cpu}; origin nginx (1 worker) and wrk "
      f"pinned to CPU {a.load_cpu}. All traffic on 127.0.0.1. Every proxy is a reverse "
      "proxy for the one origin; wrk sends `GET /1k HTTP/1.1` (`/1m` in C3; C3b sends the "
      "same with connect_bulk -k, which drops the body in the kernel) with "
      "`Host: bench.local`. The origin sends `Cache-Control: max-age=3600`.")
    w(f"- {a.runs} round(s); in each, every target of a scenario in turn (the order rotated by "
      f"one per round): a freshly started proxy, two probe GETs, {a.warm} s warm-up, one "
      f"measured run of {a.duration} s. Throughput, latency and CPU figures are medians over "
      "the rounds; a ratio is the median of the per-round ratios (each round's run against "
      "the direct run, or the best peer's run, of the same round). RSS is read after the "
      "last round's run.")
    w(f"- sluice at commit {a.sluice}. Packages: "
      + ", ".join(a.versions.strip().splitlines()) + ".")
    w(f"- Varnish parameters: `{a.varnish_params}`, `-s malloc,256m`.")
    w(f"- Whole run took {a.elapsed} s. Method, peer configs and caveats: docs/benchmarks.md, "
      "\"Cache and reverse-proxy benchmark\".")
    if smoke:
        w("- **A smoke run** (one short run per cell): it shows the harness works, its "
          "figures are not for quoting.")
    w("")

    # Targets.
    def target_row(s, sk, best, best_txt):
        if sk not in M:
            sl_txt, res = (why(sk) or "no result"), "not measured"
        elif validity(sk):
            sl_txt, res = validity(sk), "invalid"
        else:
            r = ratio(sk)
            sl_txt = f"{f(M[sk]['tput'])} {UNIT[s]} ({f(r, 2)} × direct)"
            if s in (1, 2):
                bound = 1.40 if s == 1 else 0.95
                ok = r is not None and r >= bound
                rounds = rounds_met(sk, (s, "direct"), bound)
            elif best:
                rb = ratio(sk, best)
                ok = rb is not None and rb >= 1.0
                sl_txt += f", {f(rb, 2)} × best peer"
                rounds = rounds_met(sk, best, 1.0)
            else:
                ok, rounds = True, ""
            res = ("met" if ok else "not met") + (f" ({rounds})" if rounds else "")
        tgt = {1: "≥ 1.40 × direct", 2: "≥ 0.95 × direct", 3: "≥ best peer",
               4: "≥ best peer"}[s]
        name = NAME[s] + {"sluice-sf": " (sendfile on)",
                          "sluice-bp": " (busy_poll 20us)"}.get(sk[1], "")
        w(f"| {name} | {tgt} | {sl_txt} | {best_txt} | {res}{' (smoke run)' if smoke else ''} |")

    w("## Against the targets")
    w("")
    w("| scenario | target | sluice | best peer | result |")
    w("|---|---|---|---|---|")
    for s, ts in order:
        peers = [t for t in ts if t != "direct" and not t.startswith("sluice")]
        best = None
        for t in peers:
            k = (s, t)
            if k in M and validity(k) is None and (best is None or M[k]["tput"] > M[best]["tput"]):
                best = k
        best_txt = (f"{LABEL[best[1]]} {f(M[best]['tput'])} {UNIT[s]} ({f(ratio(best), 2)} × direct)"
                    if best else "—")
        for who in ("sluice", "sluice-sf", "sluice-bp"):
            if who in ts:
                target_row(s, (s, who), best, best_txt)
    w("")

    # Summary.
    w("## Summary")
    w("")
    hdr = ["proxy"] + [f"{NAME[s]} {UNIT[s]} vs direct" for s, _ in order]
    w("| " + " | ".join(hdr) + " |")
    w("|" + "---|" * len(hdr))
    allt = []
    for _, ts in order:
        allt += [t for t in ts if t not in allt]
    for t in allt:
        row = [LABEL.get(t, t)]
        for s, ts in order:
            k = (s, t)
            if t not in ts:
                row.append("")
            elif k not in M:
                reason = why(k) or "no result"
                row.append("not measured yet" if reason.startswith("not measured yet")
                           else ("crashed" if reason.startswith("crashed") else "failed, see below"))
            elif validity(k):
                row.append("invalid, see below")
            elif t == "direct":
                row.append(f"1.00 ({f(M[k]['tput'])})")
            else:
                row.append(f(ratio(k), 2))
        w("| " + " | ".join(row) + " |")
    w("")

    for s, ts in order:
        w(f"## {TITLE[s]}")
        w("")
        hdr = ["proxy", UNIT[s], "vs direct", "p99 (ms)", "p99 vs direct", "RSS after (MiB)",
               "proxy CPU " + ("µs/req" if s in (1, 2) else "µs/MiB"),
               f"core use: proxy / CPU{a.proxy_cpu} / CPU{a.load_cpu}",
               "origin requests (share)", "2nd probe GET", "errors", "note"]
        w("| " + " | ".join(hdr) + " |")
        w("|" + "---|" * len(hdr))
        d = M.get((s, "direct"))
        for t in ts:
            k = (s, t)
            if k not in M:
                w("| " + " | ".join([LABEL.get(t, t)] + ["—"] * (len(hdr) - 2)
                                    + [why(k) or "no result"]) + " |")
                continue
            m = M[k]
            notes = [x for x in (why(k), validity(k)) if x]
            if t != "direct" and m["origin_share"] is not None:
                if CACHED[s] and NOTE_SHARE < m["origin_share"] <= INVALID_SHARE:
                    notes.append(f"the origin served {pct(m['origin_share'])} of the "
                                 "requests: not all were hits")
                if not CACHED[s] and 1 - INVALID_SHARE <= m["origin_share"] < 0.99:
                    notes.append(f"the origin saw only {pct(m['origin_share'])} of the requests")
            pr = probe.get(k, {})
            second = pr.get("probe_second", "")
            if t.startswith("sluice") and CACHED[s] and not re.search(r"cache-status:[^;]*;.*\bhit\b",
                                                              second, re.I):
                notes.append("the 2nd GET was not a Cache-Status hit")
            if m["err_status"]:
                notes.append(f"{m['err_status']} non-2xx responses")
            if m["n"] < int(a.runs or 1):
                notes.append(f"only {m['n']} of {a.runs} runs")
            is_direct = t == "direct"
            r = "1.00" if is_direct else ("invalid" if validity(k) else f(ratio(k), 2))
            p99r = "1.00" if is_direct else (f(m["p99"] / d["p99"], 2) if d and d["p99"] else "—")
            mm = mem.get(k)
            rss = "—" if is_direct or not mm else f(mm["rss_kib"] / 1024, 1)
            core = ("—" if is_direct else f(m["core"])) + " / " + f(m["busy_p"]) + \
                " / " + f(m["busy_l"]) + " %"
            origin = "—" if is_direct else f"{f(m['origin_total'])} ({pct(m['origin_share'])})"
            if is_direct:
                probe_txt = "—"
            else:
                po = pr.get("probe_origin")
                probe_txt = ("" if po is None else
                             ("hit (origin not asked)" if po == 0 else f"origin asked ({po})"))
                fields = second.replace("|", "/") or "no cache fields"
                probe_txt = f"{probe_txt}; {fields}" if probe_txt else fields
                if CACHED[s] and po:
                    notes.append("the 2nd probe GET went to the origin")
            row = [LABEL.get(t, t), f(m["tput"]), r, f(m["p99"], 2), p99r, rss,
                   "—" if is_direct else f(m["cpu_unit"], 1), core, origin, probe_txt,
                   str(m["errors"]), "; ".join(notes)]
            w("| " + " | ".join(row) + " |")
        w("")

    w("Columns: *vs direct* is the median over the rounds of the proxy's throughput divided "
      "by the direct figure of the same round (wrk straight to the origin); *p99 vs direct* "
      "the ratio of the medians of wrk's 99th-percentile latency. *RSS after*: VmRSS summed "
      "over the proxy's processes, read after the last round's run (the cache's objects are "
      "in it). *proxy CPU*: the proxy's "
      "utime+stime during a run over the requests (MiB) completed. *core use*: the proxy's "
      f"CPU time over the wall time, then how busy CPU {a.proxy_cpu} and CPU {a.load_cpu} were "
      "in all (/proc/stat). *origin requests*: what the origin's request counter (nginx "
      "stub_status) grew by during the measured runs, and its share of the requests wrk "
      "completed: in C1 and C3 about 0 (every request a hit), in C2 about 100 %. A C1/C3 "
      f"cell above {INVALID_SHARE * 100:.0f} % (or a C2 cell below it) is marked invalid. "
      "*2nd probe GET*: before the warm-up, two GETs of the scenario's object; of the "
      "second one, whether the origin's counter moved (\"hit (origin not asked)\" if not) "
      "and its `Cache-Status`, `X-Cache`, `X-Varnish` and `Age` fields (a hit shows as "
      "`Cache-Status: ...; hit`, `X-Cache: HIT` or two ids in `X-Varnish`; Traffic Server "
      "sends `Age` on misses too).")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())

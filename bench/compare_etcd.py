#!/usr/bin/env python3
"""Helpers of bench/compare-etcd.sh (Python 3 standard library only, except `plot`).

  leader etcd|raftkv FILE   the leader's endpoint and the highest term, from
                            `etcdctl endpoint status -w json` or `raftkv status --output json`
  report RAW OUT.md         the table of medians, printed and written as markdown
  plot RAW OUT.png          latency over time across a leader kill (needs matplotlib)

RAW is the directory of raw results the script writes: `<system>-<mix>-<clients>-run<r>.json`
(each load generator's JSON summary), `leaders.tsv`, `failover-<system>-run<r>.{json,csv,kill}`,
`rss-<system>.tsv` and `meta.json`.
"""

import csv
import glob
import json
import os
import statistics
import sys

SYSTEMS = ("etcd", "raftkv")


def leader(system, path):
    """Prints `<leader endpoint or -> <highest term>`."""
    with open(path) as f:
        text = f.read().strip()
    try:
        rows = json.loads(text) if text else []
    except json.JSONDecodeError:
        rows = []
    endpoint, term = "-", 0
    if system == "etcd":
        for row in rows:
            status = row.get("Status", {})
            header = status.get("header", {})
            term = max(term, int(header.get("raft_term", 0)))
            if header.get("member_id") is not None and header.get("member_id") == status.get("leader"):
                endpoint = row["Endpoint"]
    else:
        for row in rows:
            status = row.get("status")
            if not status:
                continue
            term = max(term, int(status.get("term", 0)))
            if status.get("role") == "leader":
                endpoint = row["endpoint"]
    print(endpoint, term)


def load_json(path):
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if digits == 0 or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratio(a, b):
    """b / a, as "1.23x"."""
    if a in (None, 0) or b is None:
        return "n/a"
    return f"{b / a:.2f}x"


def points(raw, meta):
    """(mix, clients) in the order the script ran them."""
    result = [("writes", int(c)) for c in meta["clients_put"].split()]
    result += [("reads", int(c)) for c in meta["clients_read"].split()]
    return result


def point_medians(raw, system, mix, clients):
    """Median ops/s, p50, p99 over the runs, and how many runs succeeded/failed."""
    summaries, failed = [], 0
    for path in sorted(glob.glob(os.path.join(raw, f"{system}-{mix}-{clients}-run*.json"))):
        summary = load_json(path)
        if summary is None or "operations" not in summary:
            failed += 1
            continue
        summaries.append(summary)
    kind = "put" if mix == "writes" else "get"
    ops = [s["operations"][kind]["ops_per_sec"] for s in summaries]
    p50 = [s["operations"][kind]["latency_ms"]["p50"] for s in summaries]
    p99 = [s["operations"][kind]["latency_ms"]["p99"] for s in summaries]
    errors = sum(s["operations"][kind]["errors"] for s in summaries)
    return median(ops), median(p50), median(p99), len(summaries), failed, errors


def killed_at(raw, system, run, summary):
    """When the leader was killed, in ms since the load generator's start: the script's
    clock read right before `kill -9` (bash's $EPOCHREALTIME in seconds; an older run wrote
    Unix milliseconds)."""
    try:
        with open(os.path.join(raw, f"failover-{system}-run{run}.kill")) as f:
            value = float(f.read().split()[0].replace(",", "."))
    except (OSError, ValueError, IndexError):
        return None
    if summary is None or "start_unix_ms" not in summary:
        return None
    unix_ms = value if value > 1e11 else value * 1000.0
    return unix_ms - summary["start_unix_ms"]


def failover_times(raw, system, run):
    """(ms from the kill to the first put acknowledged after the outage, ms without any
    acknowledgement, errors seen, errors that took the whole deadline) for one run, from
    the latency log and the kill's time.

    The outage is the longest silence between two consecutive acknowledgements that ends
    after the kill: an answer the old leader sent just before it died can still arrive a
    moment after the kill's timestamp, and must not count as the new leader's first."""
    summary = load_json(os.path.join(raw, f"failover-{system}-run{run}.json"))
    kill_ms = killed_at(raw, system, run, summary)
    if kill_ms is None:
        return None
    acks, errors, deadlines = [], 0, 0
    with open(os.path.join(raw, f"failover-{system}-run{run}.csv")) as f:
        for row in csv.DictReader(f):
            done = float(row["start_ms"]) + int(row["latency_us"]) / 1000.0
            if row["ok"] == "1":
                acks.append(done)
            else:
                errors += 1
                # Both generators run with a 5 s deadline (--timeout-ms 5000).
                deadlines += int(row["latency_us"]) >= 4_900_000
    acks.sort()
    best = None
    for before, after in zip(acks, acks[1:]):
        if after > kill_ms and (best is None or after - before > best[1] - best[0]):
            best = (before, after)
    if best is None:
        return None
    return best[1] - kill_ms, best[1] - best[0], errors, deadlines


def rss(raw, system, stage):
    """(sum, max) of the members' VmRSS in MiB at `stage` (fresh or loaded)."""
    values = []
    try:
        with open(os.path.join(raw, f"rss-{system}.tsv")) as f:
            for line in f:
                cells = line.split()
                if len(cells) == 3 and cells[0] == stage and cells[2].isdigit():
                    values.append(int(cells[2]) / 1024.0)
    except OSError:
        return None, None
    if not values:
        return None, None
    return sum(values), max(values)


def leader_changes(raw, system):
    """(throughput runs whose leader or term changed, runs checked)."""
    changed = checked = 0
    try:
        with open(os.path.join(raw, "leaders.tsv")) as f:
            for line in f:
                cells = line.split()
                if len(cells) != 7 or cells[0] != system:
                    continue
                checked += 1
                if cells[3:5] != cells[5:7]:
                    changed += 1
    except OSError:
        pass
    return changed, checked


def report(raw, out):
    with open(os.path.join(raw, "meta.json")) as f:
        meta = json.load(f)
    rows = []
    notes = []
    for mix, clients in points(raw, meta):
        e = point_medians(raw, "etcd", mix, clients)
        r = point_medians(raw, "raftkv", mix, clients)
        name = f"put, {clients} client{'s' if clients > 1 else ''}" if mix == "writes" \
            else f"linearizable get, {clients} clients"
        rows.append([
            name,
            fmt(e[0], 0), fmt(r[0], 0), ratio(e[0], r[0]),
            f"{fmt(e[1], 2)} / {fmt(e[2], 2)}", f"{fmt(r[1], 2)} / {fmt(r[2], 2)}",
        ])
        for system, medians in (("etcd", e), ("raftkv", r)):
            if medians[4]:
                notes.append(f"{system} {name}: {medians[4]} of {medians[3] + medians[4]} runs failed "
                             f"(see raw/{system}-{mix}-{clients}-run*.json)")
            if medians[5]:
                notes.append(f"{system} {name}: {medians[5]} request errors in the measured runs")
    runs = int(meta["runs"])
    failover = {}
    for system in SYSTEMS:
        results = [failover_times(raw, system, run) for run in range(1, runs + 1)]
        good = [x for x in results if x is not None]
        failover[system] = (
            median([x[0] for x in good]),
            median([x[1] for x in good]),
            sum(x[2] for x in good),
            len(good),
            [x[0] for x in good],
            sum(x[3] for x in good),
        )
        if len(good) < runs:
            notes.append(f"{system} failover: {runs - len(good)} of {runs} runs gave no figure")
    fc = meta["failover_clients"]
    e, r = failover["etcd"], failover["raftkv"]
    rows.append([
        f"failover: kill -9 of the leader to the first acknowledged put, ms ({fc} clients putting)",
        fmt(e[0], 0), fmt(r[0], 0), ratio(e[0], r[0]), "", "",
    ])
    rows.append([
        "failover: longest time without an acknowledged put, ms",
        fmt(e[1], 0), fmt(r[1], 0), ratio(e[1], r[1]), "", "",
    ])
    ce, ne = leader_changes(raw, "etcd")
    cr, nr = leader_changes(raw, "raftkv")
    rows.append([
        "throughput runs with a leader change (spurious elections)",
        f"{ce} of {ne}", f"{cr} of {nr}", "", "", "",
    ])
    puts = meta["puts_for_rss"]
    for stage, label in (("fresh", "RSS of a fresh cluster"), ("loaded", f"RSS after {puts:,} puts")):
        es, em = rss(raw, "etcd", stage)
        rs, rm = rss(raw, "raftkv", stage)
        rows.append([f"{label}, sum of 3 members, MiB", fmt(es), fmt(rs), ratio(es, rs), "", ""])
        rows.append([f"{label}, largest member, MiB", fmt(em), fmt(rm), ratio(em, rm), "", ""])

    header = ["workload", "etcd ops/s", "raftkv ops/s", "raftkv/etcd",
              "etcd p50 / p99 ms", "raftkv p50 / p99 ms"]
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ) + " |"

    table = [line(header), "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2))
                                          for i, w in enumerate(widths)) + "|"]
    table += [line(row) for row in rows]

    failover_runs = ", ".join(
        f"{system} {' / '.join(fmt(x, 0) for x in failover[system][4]) or 'none'}" for system in SYSTEMS)
    text = [
        f"# raftkv vs etcd {meta['etcd_version']} ({meta['started']})",
        "",
        *table,
        "",
        f"- Medians of {runs} interleaved run(s) (etcd, raftkv, etcd, ...) per point; "
        f"{meta['duration']} s measured after a {meta['warmup']} s warm-up; closed loop, each client "
        f"one connection and one request in flight; {meta['value_bytes']}-byte values, uniform random "
        f"keys among {meta['keys']:,}; gets preceded by writing every key once. Ratio: raftkv / etcd "
        f"(above 1: raftkv has more ops/s, or more ms/MiB).",
        "- Both clusters: 3 members on loopback, each in its own temp data dir, fsync on (etcd's "
        "defaults: heartbeat 100 ms, election 1000 ms, no auto-compaction; raftkv-node's defaults: "
        "tick 10 ms, election 15-30 ticks, heartbeat 3 ticks, snapshot every 100,000 entries as etcd). "
        "Both without TLS: etcd on plain HTTP, raftkv-node --insecure. raftkv's reads: "
        + ("under a leader lease (LEASE_READS=1, --lease-reads)" if meta.get("lease_reads") else
           "ReadIndex, a heartbeat round per batch of reads, as etcd's")
        + ("; gets spread over every node (SPREAD_READS=1)." if meta.get("spread_reads") else
           "; gets sent to the leader."),
        "- Load generators: `raftkv bench` (the raftkv client sends to the leader it finds; with "
        "SPREAD_READS=1, `--spread-reads`: gets to each node in turn, followers answering through "
        "the leader's ReadIndex) and "
        "`bench/etcd-load` (etcd-client crate; each client balances over the 3 members, "
        "followers forward puts to the leader, gets are linearizable Range RPCs).",
        f"- Failover: {fc} clients putting, kill -9 of the leader a few seconds in, restarted after; "
        f"per run (ms): {failover_runs}. Request errors during the failover runs: "
        f"etcd {failover['etcd'][2]}, raftkv {failover['raftkv'][2]} (a failed request is retried after "
        "10 ms; etcd-client keeps the killed member in its balance list, whose requests fail at once "
        "with 'connection refused' until it is back; the raftkv client moves to the new leader). "
        f"Of those, requests that ran into the generators' 5 s deadline: etcd {failover['etcd'][5]}, "
        f"raftkv {failover['raftkv'][5]} (a put in flight through a follower when the leader dies "
        "gets no answer: with few clients, the first acknowledgement can wait for the deadline). "
        "Plot: latency-across-failover.png.",
        f"- RSS: VmRSS of each member from /proc, in fresh clusters, after {puts:,} puts by 64 clients.",
        f"- Load average (1 min) before / after: {meta.get('load_before', '?')} / "
        f"{meta.get('load_after', '?')} on {meta.get('cores', '?')} cores (a shared machine: "
        "figures are noisy when other work ran).",
    ]
    text += [f"- {note}" for note in notes]
    document = "\n".join(text) + "\n"
    with open(out, "w") as f:
        f.write(document)
    print(document, end="")


def plot(raw, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(13, 7), sharex=True)
    for axis, system in zip(axes, SYSTEMS):
        summary = load_json(os.path.join(raw, f"failover-{system}-run1.json"))
        kill_ms = killed_at(raw, system, 1, summary)
        if kill_ms is None:
            axis.set_title(f"{system}: no failover run")
            continue
        oks, errs = ([], []), ([], [])
        with open(os.path.join(raw, f"failover-{system}-run1.csv")) as f:
            for row in csv.DictReader(f):
                done_s = (float(row["start_ms"]) + int(row["latency_us"]) / 1000.0 - kill_ms) / 1000.0
                target = oks if row["ok"] == "1" else errs
                target[0].append(done_s)
                target[1].append(max(int(row["latency_us"]) / 1000.0, 0.01))
        axis.scatter(oks[0], oks[1], s=2, label="acknowledged put")
        if errs[0]:
            axis.scatter(errs[0], errs[1], s=12, marker="x", color="red", label="failed put")
        axis.axvline(0, color="black", linestyle="--", linewidth=1, label="kill -9 of the leader")
        times = failover_times(raw, system, 1)
        if times:
            axis.axvline(times[0] / 1000.0, color="green", linestyle=":", linewidth=1,
                         label=f"first ack after the outage (+{times[0]:.0f} ms)")
        axis.set_yscale("log")
        axis.set_ylabel("latency (ms)")
        axis.set_title(f"{system}: put latency by completion time, {summary.get('clients')} clients")
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        axis.grid(True, which="both", alpha=0.3)
    axes[-1].set_xlabel("seconds since the leader was killed")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "leader" and len(sys.argv) == 4:
        leader(sys.argv[2], sys.argv[3])
    elif command == "report" and len(sys.argv) == 4:
        report(sys.argv[2], sys.argv[3])
    elif command == "plot" and len(sys.argv) == 4:
        plot(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

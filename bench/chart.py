#!/usr/bin/env python3
"""Reads bench/results/*.jsonl and writes summary.md (results and the ratios against the
targets of BENCHMARKS.md) and the charts: throughput and p99 against concurrency
(concurrency.png), latency percentiles per scenario (latency.png), ours against the Express peer
(side_by_side.png).

usage: chart.py RESULTS_DIR
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as lines:
        return [json.loads(line) for line in lines if line.strip()]


def micro_median_us(path, name):
    """The median of a criterion result in micro.txt, in µs (None if absent)."""
    if not os.path.exists(path):
        return None
    lines = open(path).read().splitlines()
    for index, line in enumerate(lines):
        if name in line:
            for candidate in lines[index:index + 2]:
                if "time:" in candidate:
                    values = candidate.split("[")[1].split("]")[0].split()
                    median, unit = float(values[2]), values[3]
                    return median * {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3}[unit]
    return None


def find(items, label, scenario_prefix):
    for row in items:
        if row.get("label") == label and row["scenario"].startswith(scenario_prefix):
            return row
    return None


def main():
    out = sys.argv[1]
    scenarios = rows(os.path.join(out, "scenarios.jsonl"))
    side = rows(os.path.join(out, "side_by_side.jsonl"))
    lines = ["# Benchmark summary", ""]

    lines += ["## Load scenarios (loadgen bench)", "",
              "| backend | scenario | callers | requests/s | p50 ms | p99 ms | p99.9 ms | service CPU µs/call | outcomes |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in scenarios:
        outcomes = ", ".join(f"{k} {v}" for k, v in row["outcomes"].items())
        cpu = "" if row.get("service_cpu_us") is None else f"{row['service_cpu_us']:.1f}"
        lines.append(f"| {row['label']} | {row['scenario']} | {row['concurrency']} | {row['rps']:.0f} | "
                     f"{row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {row['p999_ms']:.3f} | {cpu} | {outcomes} |")
    lines += ["", "## Side by side (h2load, same machine, same connections)", "",
              "| who | what | requests/s | p50 ms | p99 ms | p99.9 ms | ok | errors |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in side:
        lines.append(f"| {row['label']} | {row['scenario']} | {row['rps']:.0f} | {row['p50_ms']:.3f} | "
                     f"{row['p99_ms']:.3f} | {row['p999_ms']:.3f} | {row['ok']} | {row['errors']} |")

    targets = []
    ours_access = find(side, "sqlite", "Verify, access token")
    peer_tuned = find(side, "express-peer", "/profile-tuned")
    if ours_access and peer_tuned:
        ratio = ours_access["rps"] / max(peer_tuned["rps"], 1)
        targets.append(("Verify (access token) vs /profile-tuned, requests/s", f"{ratio:.2f}x", ">= 4x",
                        ratio >= 4))
        targets.append(("... p99", f"{ours_access['p99_ms']:.2f} ms vs {peer_tuned['p99_ms']:.2f} ms", "lower",
                        ours_access["p99_ms"] < peer_tuned["p99_ms"]))
    ours_session = find(side, "postgres+redis", "Verify, session token")
    peer_session = find(side, "express-peer", "/session/profile")
    if ours_session and peer_session:
        ratio = ours_session["rps"] / max(peer_session["rps"], 1)
        targets.append(("Verify (session token, PostgreSQL + Redis) vs /session/profile", f"{ratio:.2f}x",
                        ">= 5x", ratio >= 5))
    for label in ("sqlite", "postgres+redis"):
        cold = find(scenarios, label, "verify-cold")
        if cold:
            targets.append((f"cold Verify ({label}), requests/s", f"{cold['rps']:.0f}", ">= 15000",
                            cold["rps"] >= 15000))
    # The cost of a cold Verify against an empty handler plus one Ed25519 verify, both as the
    # service's own CPU time per call (loadgen --service-pid), the signature from criterion.
    health = find(scenarios, "sqlite", "health")
    cold = find(scenarios, "sqlite", "verify-cold")
    ed25519 = micro_median_us(os.path.join(out, "micro.txt"), "raw Ed25519 verify")
    if health and cold and ed25519 and health.get("service_cpu_us") and cold.get("service_cpu_us"):
        bound = health["service_cpu_us"] + ed25519
        ratio = cold["service_cpu_us"] / bound
        targets.append(("cold Verify (sqlite), service CPU per call / (empty handler + Ed25519)",
                        f"{cold['service_cpu_us']:.1f} µs / ({health['service_cpu_us']:.1f} + {ed25519:.1f} µs) = {ratio:.2f}x",
                        "<= 1.3x", ratio <= 1.3))
    order = find(scenarios, "sqlite", "order")
    peer_hybrid = find(side, "express-peer", "/profile-hybrid")
    if order and peer_hybrid:
        targets.append(("demo order path (loadgen, 50 callers) vs /profile-hybrid (h2load, 50 connections), requests/s",
                        f"{order['rps']:.0f} vs {peer_hybrid['rps']:.0f}", "faster",
                        order["rps"] > peer_hybrid["rps"]))
    plain = find(scenarios, "sqlite", "verify-access")
    storm = find(scenarios, "sqlite", "login-storm: verify")
    if plain and storm:
        ratio = storm["p99_ms"] / max(plain["p99_ms"], 1e-9)
        targets.append(("Verify p99 during a login storm / without", f"{ratio:.2f}x", "<= 2x", ratio <= 2))
    lines += ["", "## Targets", "", "| target | measured | wanted | met |", "|---|---|---|---|"]
    for name, measured, wanted, met in targets:
        lines.append(f"| {name} | {measured} | {wanted} | {'yes' if met else '**no**'} |")
    with open(os.path.join(out, "summary.md"), "w") as summary:
        summary.write("\n".join(lines) + "\n")

    sweep = sorted((r for r in scenarios if r.get("label") == "sweep"), key=lambda r: r["concurrency"])
    if sweep:
        figure, throughput = plt.subplots(figsize=(7, 4))
        xs = [r["concurrency"] for r in sweep]
        throughput.plot(xs, [r["rps"] for r in sweep], "o-", color="tab:blue", label="requests/s")
        throughput.set_xscale("log", base=2)
        throughput.set_xlabel("concurrent callers (4 HTTP/2 connections)")
        throughput.set_ylabel("Verify requests/s", color="tab:blue")
        latency = throughput.twinx()
        latency.plot(xs, [r["p99_ms"] for r in sweep], "s--", color="tab:red", label="p99")
        latency.set_ylabel("p99 latency, ms", color="tab:red")
        throughput.set_title("Verify (access tokens, SQLite): throughput and p99 against concurrency")
        figure.tight_layout()
        figure.savefig(os.path.join(out, "concurrency.png"), dpi=110)

    measured = [r for r in scenarios if r.get("label") in ("sqlite", "postgres+redis")]
    if measured:
        figure, axis = plt.subplots(figsize=(9, 4.5))
        names = [f"{r['scenario'].split(' (')[0]}\n{r['label']}" for r in measured]
        width = 0.27
        positions = range(len(measured))
        for offset, (key, title) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"))):
            axis.bar([p + (offset - 1) * width for p in positions], [max(r[key], 1e-3) for r in measured],
                     width, label=title)
        axis.set_yscale("log")
        axis.set_ylabel("latency, ms (log)")
        axis.set_xticks(list(positions))
        axis.set_xticklabels(names, fontsize=7, rotation=30, ha="right")
        axis.legend()
        axis.set_title("Latency distribution per scenario (loadgen bench)")
        figure.tight_layout()
        figure.savefig(os.path.join(out, "latency.png"), dpi=110)

    if side:
        figure, axis = plt.subplots(figsize=(8, 4))
        names = [f"{r['label']}\n{r['scenario'].split(' (')[0]}" for r in side]
        colors = ["tab:orange" if r["label"] == "express-peer" else "tab:blue" for r in side]
        axis.bar(range(len(side)), [r["rps"] for r in side], color=colors)
        axis.set_xticks(range(len(side)))
        axis.set_xticklabels(names, fontsize=7, rotation=30, ha="right")
        axis.set_ylabel("requests/s")
        axis.set_title("h2load, same connections: auth service (blue) and the Express peer (orange)")
        figure.tight_layout()
        figure.savefig(os.path.join(out, "side_by_side.png"), dpi=110)


if __name__ == "__main__":
    main()

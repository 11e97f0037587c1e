#!/usr/bin/env python3
"""Runs h2load once and prints one JSON line: requests/s, latency percentiles (from h2load's
per-request log, which its summary lacks) and how many answers were really successes.

h2load counts a gRPC error as a success (it is HTTP 200 with grpc-status in the trailers). For
gRPC, pass --expect-bytes: the framed size of one successful answer. A failed call carries no
message, so the data bytes received tell how many calls succeeded.

usage: h2load.py --label LABEL --name NAME [--expect-bytes N] -- <h2load arguments>
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, int(round(q * len(sorted_values) + 0.5)) - 1))
    return sorted_values[index]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--expect-bytes", type=int, default=0)
    parser.add_argument("--json", help="append the JSON line to this file too")
    parser.add_argument("--tolerate-errors", action="store_true",
                        help="report failed calls without failing (for the peer, whose errors are its own)")
    parser.add_argument("h2load", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [a for a in args.h2load if a != "--"]
    with tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log", delete=False) as log:
        log_path = log.name
    try:
        run = subprocess.run(
            ["h2load", *command, "--log-file", log_path],
            capture_output=True,
            text=True,
        )
        out = run.stdout
        if run.returncode != 0:
            sys.stderr.write(out + run.stderr)
            sys.exit(run.returncode)
        durations = []
        with open(log_path) as lines:
            for line in lines:
                fields = line.split("\t")
                if len(fields) >= 3:
                    durations.append(int(fields[2]) / 1000.0)
    finally:
        os.unlink(log_path)
    durations.sort()
    finished = re.search(r"finished in ([0-9.]+)(m?s), ([0-9.]+) req/s", out)
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", out)
    status_2xx = re.search(r"status codes: (\d+) 2xx", out)
    data = re.search(r"traffic: .*?, .*? headers .*?, .*?\((\d+)\) data", out)
    requests = int(done.group(3)) if done else len(durations)
    ok = int(status_2xx.group(1)) if status_2xx else 0
    # "status codes" also counts the warm-up's answers; "done" does not.
    ok = min(ok, requests)
    if args.expect_bytes and data:
        # Successful gRPC answers carry exactly expect_bytes of data each; errors none.
        ok = min(ok, int(data.group(1)) // args.expect_bytes)
    row = {
        "label": args.label,
        "scenario": args.name,
        "requests": requests,
        "rps": float(finished.group(3)) if finished else 0.0,
        "p50_ms": percentile(durations, 0.50),
        "p99_ms": percentile(durations, 0.99),
        "p999_ms": percentile(durations, 0.999),
        "max_ms": durations[-1] if durations else 0.0,
        "ok": ok,
        "errors": requests - ok,
        "command": "h2load " + " ".join(command),
    }
    line = json.dumps(row)
    print(line)
    if args.json:
        with open(args.json, "a") as sink:
            sink.write(line + "\n")
    if row["errors"]:
        sys.stderr.write(f"{args.name}: {row['errors']} of {requests} calls failed\n")
        if not args.tolerate_errors:
            sys.exit(1)


if __name__ == "__main__":
    main()

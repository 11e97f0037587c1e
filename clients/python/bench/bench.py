#!/usr/bin/env python3
"""The Python verifier's numbers for BENCHMARKS.md (run by clients/bench/run.sh).

- seen: LocalVerifier.verify of a token verified before (the cache hit: expiry and
  revocations checked, no signature), one call at a time;
- first sight: the full check (header, Ed25519 signature, claims), measured with the
  verified-token cache turned off so every call is one;
- revocation: the method of `loadgen propagation` (loadtest/src/faults.rs): the verifier follows
  replica A (through a TCP proxy), a fresh session is logged in and out on replica B, and the
  interval runs from just before Logout is sent until the verifier refuses the token, checked
  after every feed event it applies.

Prints one JSON object. Settings: AUTH_A, AUTH_B (host:port), BENCH_COUNT (revocations, 300).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.proxy import CuttableProxy  # noqa: E402

from auth_verifier import SESSION_REVOKED, LocalVerifier, VerifyError  # noqa: E402
from auth_verifier._proto import auth_pb2, auth_pb2_grpc  # noqa: E402

PASSWORD = "correct horse battery staple"


def quantiles(samples, scale):
    samples = sorted(samples)
    at = lambda q: samples[min(max(math.ceil(q * len(samples)), 1), len(samples)) - 1] * scale  # noqa: E731
    return {"count": len(samples), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": samples[-1] * scale}


def timed(verifier, token, n):
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        verifier.verify(token)
        samples.append(time.perf_counter_ns() - start)
    return samples


def main() -> None:
    a, b = os.environ["AUTH_A"], os.environ["AUTH_B"]
    count = int(os.environ.get("BENCH_COUNT", "300"))
    host, port = a.rsplit(":", 1)
    proxy = CuttableProxy((host, int(port)))
    channel_b = grpc.insecure_channel(b)
    auth_b = auth_pb2_grpc.AuthServiceStub(channel_b)
    email = f"bench-py-{uuid.uuid4().hex}@example.com"
    auth_b.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD), timeout=10)
    login = lambda: auth_b.Login(  # noqa: E731
        auth_pb2.LoginRequest(email=email, password=PASSWORD, kind=auth_pb2.CREDENTIAL_KIND_TOKENS), timeout=10
    ).tokens.access_token
    verifier = LocalVerifier(proxy.addr, audience="api", feed_silence_limit=1.0)
    uncached = LocalVerifier(proxy.addr, audience="api", verified_cache_capacity=0)
    token = login()
    timed(verifier, token, 2000)  # warm-up
    timed(uncached, token, 200)
    seen = timed(verifier, token, 50_000)
    first = timed(uncached, token, 5_000)
    uncached.close()

    revocations = []
    for _ in range(count):
        token = login()
        verifier.verify(token)
        applied = verifier.feed_events_applied
        started = time.perf_counter_ns()
        answered = auth_b.Logout.future(auth_pb2.LogoutRequest(token=token), timeout=10)
        while True:
            try:
                verifier.verify(token)
            except VerifyError as error:
                if error.reason != SESSION_REVOKED:
                    raise
                revocations.append(time.perf_counter_ns() - started)
                break
            if not verifier.wait_for_feed_event(10, after=applied):
                raise SystemExit("a revoked token was still accepted after 10 s")
            applied = verifier.feed_events_applied
        answered.result()
    verifier.close()
    proxy.close()
    channel_b.close()
    print(json.dumps({
        "language": "Python",
        "runtime": f"CPython {sys.version.split()[0]}, grpcio {grpc.__version__}",
        "seen_us": quantiles(seen, 1e-3),
        "first_sight_us": quantiles(first, 1e-3),
        "revocation_ms": quantiles(revocations, 1e-6),
    }))


if __name__ == "__main__":
    main()

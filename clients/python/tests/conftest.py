"""Where the shared conformance files are, and the live auth-service the live tests use."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

CONFORMANCE = Path(os.environ.get("CONFORMANCE_DIR", Path(__file__).resolve().parents[3] / "conformance"))


def load(name: str) -> dict:
    return json.loads((CONFORMANCE / name).read_text())


@pytest.fixture
def auth_addr() -> str:
    """host:port of a running auth-service (clients/run.sh starts one). Without AUTH_ADDR the
    live tests skip, except under CI, where they fail: a run that tested nothing must not pass."""
    addr = os.environ.get("AUTH_ADDR")
    if not addr:
        if os.environ.get("CI"):
            pytest.fail("AUTH_ADDR is not set (run clients/run.sh)")
        pytest.skip("AUTH_ADDR is not set (run clients/run.sh)")
    return addr

"""Who a verified token speaks for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple


@dataclass(frozen=True)
class Principal:
    """The caller: ``user_id`` (``sub``), ``session_id`` (``sid``) and ``roles``. ``claims`` holds
    every verified claim of a local check (None from a RemoteVerifier); ``email`` is only known
    to a RemoteVerifier."""

    user_id: str
    session_id: str
    roles: Tuple[str, ...]
    email: str = ""
    claims: Optional[Any] = None

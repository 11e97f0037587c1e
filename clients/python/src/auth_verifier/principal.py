"""Who a verified token speaks for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple


#: :attr:`Principal.kind` of a user.
USER = "user"
#: :attr:`Principal.kind` of a service client (a token from ``IssueServiceToken``).
SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """The caller: ``user_id`` (``sub``), ``session_id`` (``sid``) and ``roles``. ``kind`` is
    :data:`USER` or :data:`SERVICE` (then ``user_id`` is the service client's id). ``actors`` is
    the chain of services a delegated token came through (RFC 8693 ``act``), the one that
    exchanged it first; empty when the principal presents its own token. ``claims`` holds every
    verified claim of a local check (None from a RemoteVerifier); ``email`` is only known to a
    RemoteVerifier."""

    user_id: str
    session_id: str
    roles: Tuple[str, ...]
    email: str = ""
    claims: Optional[Any] = None
    kind: str = USER
    actors: Tuple[str, ...] = ()

    @property
    def is_service(self) -> bool:
        """Whether the caller is a service client rather than a user."""
        return self.kind == SERVICE

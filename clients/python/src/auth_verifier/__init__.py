"""Verify auth-service (auth.v1) access tokens inside a Python service.

- :class:`LocalVerifier` checks tokens in-process with the published keys and follows the
  revocation feed: no network call per check, a revocation seen within milliseconds, fail
  closed after ``max_feed_outage`` (auth-api's Rust ``LocalVerifier``, same rules and defaults).
- :class:`RemoteVerifier` asks the auth service (``Verify``) on every check.
- :class:`AuthInterceptor` / :class:`AsyncAuthInterceptor` plug either into a grpcio server;
  :func:`current_principal` gives the handler the caller. For HTTP frameworks call
  ``verifier.verify(token)`` (and :func:`bearer_token` on the headers).

Refusals raise :class:`VerifyError`, whose ``reason`` is one of the auth service's ErrorInfo
reasons (``TOKEN_INVALID``, ``TOKEN_EXPIRED``, ``SESSION_REVOKED``, ``AUTH_UNAVAILABLE``, ...).
"""

from .errors import (
    AUTH_UNAVAILABLE,
    CREDENTIAL_MISSING,
    ERROR_DOMAIN,
    PERMISSION_DENIED,
    SESSION_REVOKED,
    TOKEN_EXPIRED,
    TOKEN_INVALID,
    VerifyError,
    reason_of,
)
from .interceptor import AsyncAuthInterceptor, AuthInterceptor, bearer_token, current_principal
from .local import LocalVerifier
from .principal import SERVICE, USER, Principal
from .remote import RemoteVerifier

__all__ = [
    "AUTH_UNAVAILABLE",
    "CREDENTIAL_MISSING",
    "ERROR_DOMAIN",
    "PERMISSION_DENIED",
    "SERVICE",
    "SESSION_REVOKED",
    "TOKEN_EXPIRED",
    "TOKEN_INVALID",
    "USER",
    "AsyncAuthInterceptor",
    "AuthInterceptor",
    "LocalVerifier",
    "Principal",
    "RemoteVerifier",
    "VerifyError",
    "bearer_token",
    "current_principal",
    "reason_of",
]

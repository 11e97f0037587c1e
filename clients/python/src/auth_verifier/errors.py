"""Why a credential was refused, with the reasons the auth service and auth-api use.

Each :class:`VerifyError` carries the ``google.rpc.ErrorInfo`` reason (domain ``auth.v1``) and
the gRPC status code the Rust ``AuthLayer`` answers with, so a Python service refuses a call
exactly as a Rust one does.
"""

from __future__ import annotations

from typing import Optional

import grpc

#: The gRPC error domain of every ErrorInfo the auth service and its verifiers send.
ERROR_DOMAIN = "auth.v1"

CREDENTIAL_MISSING = "CREDENTIAL_MISSING"
TOKEN_INVALID = "TOKEN_INVALID"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
SESSION_REVOKED = "SESSION_REVOKED"
PERMISSION_DENIED = "PERMISSION_DENIED"
#: Revocations cannot be known (feed down for too long, or the auth service unreachable).
AUTH_UNAVAILABLE = "AUTH_UNAVAILABLE"


class VerifyError(Exception):
    """A refused credential: ``reason`` (one of the constants above), ``code``, ``message``."""

    def __init__(self, reason: str, code: grpc.StatusCode, message: str, status: Optional[grpc.Status] = None):
        super().__init__(message)
        self.reason = reason
        self.code = code
        self.message = message
        #: The auth service's own answer, passed on unchanged (RemoteVerifier).
        self.remote_status = status

    @classmethod
    def missing(cls) -> "VerifyError":
        return cls(CREDENTIAL_MISSING, grpc.StatusCode.UNAUTHENTICATED, "no credential was presented")

    @classmethod
    def invalid(cls) -> "VerifyError":
        return cls(TOKEN_INVALID, grpc.StatusCode.UNAUTHENTICATED, "the token is invalid")

    @classmethod
    def expired(cls) -> "VerifyError":
        return cls(TOKEN_EXPIRED, grpc.StatusCode.UNAUTHENTICATED, "the token has expired")

    @classmethod
    def revoked(cls) -> "VerifyError":
        return cls(SESSION_REVOKED, grpc.StatusCode.UNAUTHENTICATED, "the session has been revoked")

    @classmethod
    def missing_role(cls) -> "VerifyError":
        return cls(PERMISSION_DENIED, grpc.StatusCode.PERMISSION_DENIED, "the caller lacks the required role")

    @classmethod
    def unavailable(cls) -> "VerifyError":
        return cls(AUTH_UNAVAILABLE, grpc.StatusCode.UNAVAILABLE, "authentication is temporarily unavailable")

    def to_status(self) -> grpc.Status:
        """The status to answer with: code, message and an ErrorInfo in the status details."""
        if self.remote_status is not None:
            return self.remote_status
        from google.protobuf import any_pb2
        from google.rpc import error_details_pb2, status_pb2
        from grpc_status import rpc_status

        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN))
        status = status_pb2.Status(code=self.code.value[0], message=self.message, details=[detail])
        return rpc_status.to_status(status)

    def __repr__(self) -> str:
        return f"VerifyError({self.reason})"


def reason_of(error: grpc.RpcError) -> Optional[str]:
    """The ErrorInfo reason of a failed call, if the server sent one."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except (ValueError, AttributeError):
        return None
    for detail in status.details if status is not None else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return None

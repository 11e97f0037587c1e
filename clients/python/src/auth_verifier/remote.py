"""Verification by asking the auth service: one ``Verify`` call per check. Accepts session tokens
as well as access tokens and sees a revocation the instant it is made (auth-api's
``RemoteVerifier``)."""

from __future__ import annotations

from typing import Optional, Union

import grpc

from ._proto import auth_pb2, auth_pb2_grpc
from .errors import VerifyError, reason_of
from .principal import SERVICE, USER, Principal

# The auth service cannot be reached: fail closed, as retryable (same codes as auth-api).
_UNREACHABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
)


class RemoteVerifier:
    """``RemoteVerifier("127.0.0.1:50051", audience="api")``; ``audience`` empty for the auth
    service's own. Thread-safe."""

    def __init__(
        self,
        target: Union[str, grpc.Channel],
        audience: str = "",
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        timeout: float = 5.0,
    ):
        if isinstance(target, str):
            target = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
        self._stub = auth_pb2_grpc.AuthServiceStub(target)
        self._audience = audience
        self._timeout = timeout

    def verify(self, token: str) -> Principal:
        try:
            response = self._stub.Verify(auth_pb2.VerifyRequest(token=token, audience=self._audience), timeout=self._timeout)
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            if code in _UNREACHABLE:
                raise VerifyError.unavailable() from None
            details = error.details() or ""  # type: ignore[attr-defined]
            status = None
            try:
                from grpc_status import rpc_status

                if rpc_status.from_call(error) is not None:  # type: ignore[arg-type]
                    status = _PassedOn(code, details, error.trailing_metadata())  # type: ignore[attr-defined]
            except ValueError:
                pass
            raise VerifyError(reason_of(error) or code.name, code, details, status) from None
        if not response.HasField("principal"):
            raise VerifyError.invalid()
        p = response.principal
        return Principal(
            user_id=p.user_id,
            session_id=p.session_id,
            roles=tuple(p.roles),
            email=p.email,
            kind=SERVICE if p.kind == auth_pb2.PRINCIPAL_KIND_SERVICE else USER,
            actors=tuple(p.actors),
        )


class _PassedOn(grpc.Status):
    def __init__(self, code, details, trailing_metadata):
        self.code = code
        self.details = details
        self.trailing_metadata = tuple(
            (key, value) for key, value in trailing_metadata or () if key == "grpc-status-details-bin"
        )

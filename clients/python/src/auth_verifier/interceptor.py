"""Server interceptors for grpcio that authenticate every call, as auth-api's ``AuthLayer`` does
for tonic: the bearer token of the ``authorization`` metadata is checked with a verifier, the
principal is available to the handler through :func:`current_principal`, and anything else is
answered UNAUTHENTICATED (PERMISSION_DENIED without a required role, UNAVAILABLE when failing
closed) with the same ``google.rpc.ErrorInfo`` reason a Rust service sends.

    server = grpc.server(pool, interceptors=[AuthInterceptor(verifier, require_role="billing")])
    server = grpc.aio.server(interceptors=[AsyncAuthInterceptor(verifier)])
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from typing import Any, Callable, Optional, Protocol, Sequence, Tuple

import grpc

from .errors import VerifyError
from .principal import Principal

_PRINCIPAL: "contextvars.ContextVar[Optional[Principal]]" = contextvars.ContextVar("auth_verifier_principal", default=None)


class Verifier(Protocol):
    def verify(self, token: str) -> Principal: ...


def bearer_token(metadata: Optional[Sequence[Tuple[str, Any]]]) -> Optional[str]:
    """The token of an ``authorization: Bearer <token>`` entry, if any (scheme case-insensitive)."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    return None


def current_principal() -> Principal:
    """The principal the interceptor verified for the call being handled; raises
    :class:`VerifyError` (CREDENTIAL_MISSING) outside an authenticated call."""
    principal = _PRINCIPAL.get()
    if principal is None:
        raise VerifyError.missing()
    return principal


def authorize(verifier: Verifier, metadata: Optional[Sequence[Tuple[str, Any]]], required_role: Optional[str]) -> Principal:
    """The check both interceptors make; raises :class:`VerifyError`."""
    token = bearer_token(metadata)
    if token is None:
        raise VerifyError.missing()
    principal = verifier.verify(token)
    if required_role is not None and required_role not in principal.roles:
        raise VerifyError.missing_role()
    return principal


def _refusal(handler: grpc.RpcMethodHandler, error: VerifyError) -> grpc.RpcMethodHandler:
    status = error.to_status()

    def abort(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
        context.abort_with_status(status)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


def _with_principal(handler: grpc.RpcMethodHandler, principal: Principal) -> grpc.RpcMethodHandler:
    def wrap(behavior: Optional[Callable[..., Any]], streaming: bool) -> Optional[Callable[..., Any]]:
        if behavior is None:
            return None
        if streaming:

            @functools.wraps(behavior)
            def stream(request: Any, context: Any) -> Any:
                reset = _PRINCIPAL.set(principal)
                try:
                    yield from behavior(request, context)
                finally:
                    _PRINCIPAL.reset(reset)

            return stream

        @functools.wraps(behavior)
        def unary(request: Any, context: Any) -> Any:
            reset = _PRINCIPAL.set(principal)
            try:
                return behavior(request, context)
            finally:
                _PRINCIPAL.reset(reset)

        return unary

    return handler._replace(
        unary_unary=wrap(handler.unary_unary, False),
        unary_stream=wrap(handler.unary_stream, True),
        stream_unary=wrap(handler.stream_unary, False),
        stream_stream=wrap(handler.stream_stream, True),
    )


class AuthInterceptor(grpc.ServerInterceptor):
    """For ``grpc.server``: verifies every call with ``verifier`` (a LocalVerifier or a
    RemoteVerifier); ``require_role`` also demands that role."""

    def __init__(self, verifier: Verifier, require_role: Optional[str] = None):
        self._verifier = verifier
        self._required_role = require_role

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        try:
            principal = authorize(self._verifier, handler_call_details.invocation_metadata, self._required_role)
        except VerifyError as error:
            return _refusal(handler, error)
        return _with_principal(handler, principal)


class AsyncAuthInterceptor(grpc.aio.ServerInterceptor):
    """For ``grpc.aio.server``: the same check, off the event loop (a RemoteVerifier makes a
    network call; a LocalVerifier may refetch the keys)."""

    def __init__(self, verifier: Verifier, require_role: Optional[str] = None):
        self._verifier = verifier
        self._required_role = require_role

    async def intercept_service(self, continuation: Callable[..., Any], handler_call_details: grpc.HandlerCallDetails) -> Any:
        try:
            principal = await asyncio.get_running_loop().run_in_executor(
                None, authorize, self._verifier, handler_call_details.invocation_metadata, self._required_role
            )
        except VerifyError as error:
            handler = await continuation(handler_call_details)
            return None if handler is None else _async_refusal(handler, error)
        # The handler's task inherits this context: current_principal() works inside it.
        _PRINCIPAL.set(principal)
        return await continuation(handler_call_details)


def _async_refusal(handler: grpc.RpcMethodHandler, error: VerifyError) -> grpc.RpcMethodHandler:
    status = error.to_status()

    async def abort(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(status.code, status.details, status.trailing_metadata)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)

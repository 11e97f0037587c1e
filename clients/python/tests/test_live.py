"""The live scenario of conformance/scenario.json against a real auth-service (AUTH_ADDR), the
feed cut with a TCP proxy the test controls; and the interceptor and RemoteVerifier on it."""

from __future__ import annotations

import time
from concurrent import futures

import grpc
import pytest

from auth_verifier import (
    AUTH_UNAVAILABLE,
    PERMISSION_DENIED,
    SESSION_REVOKED,
    AuthInterceptor,
    LocalVerifier,
    RemoteVerifier,
    VerifyError,
    current_principal,
)
from auth_verifier.errors import reason_of

from .live import SCENARIO, Account
from .proxy import CuttableProxy


def reason(verifier, token: str) -> str:
    try:
        verifier.verify(token)
    except VerifyError as error:
        return error.reason
    return "OK"


def wait_for(condition, within_s: float) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within_s:
            raise AssertionError(f"not within {within_s} s")
        time.sleep(0.005)
    return time.monotonic() - start


def test_the_live_scenario_revoke_cut_fail_closed_recover(auth_addr):
    host, port = auth_addr.rsplit(":", 1)
    proxy = CuttableProxy((host, int(port)))
    account = Account(auth_addr)
    a, b, c = account.login(), account.login(), account.login()
    outage_s = SCENARIO["max_feed_outage_ms"] / 1000
    verifier = LocalVerifier(proxy.addr, audience=SCENARIO["audience"], max_feed_outage=outage_s)
    try:
        principal = verifier.verify(a)
        assert principal.user_id and principal.session_id

        account.logout(a)
        took = wait_for(lambda: reason(verifier, a) == SESSION_REVOKED, SCENARIO["refusal_within_ms"] / 1000)
        print(f"revocation refused after {took * 1000:.1f} ms")
        assert reason(verifier, b) == "OK"

        cut_at = time.monotonic()
        proxy.cut()
        account.logout(c)
        time.sleep(SCENARIO["accepted_until_ms"] / 1000 - (time.monotonic() - cut_at))
        assert reason(verifier, b) == "OK", "failed closed before the outage bound"
        wait_for(lambda: reason(verifier, b) == AUTH_UNAVAILABLE, outage_s + 1.0)
        assert time.monotonic() - cut_at > outage_s
        assert reason(verifier, c) == AUTH_UNAVAILABLE

        proxy.restore()
        wait_for(verifier.feed_is_live, SCENARIO["recovery_within_ms"] / 1000)
        assert reason(verifier, b) == "OK"
        # Revoked while the feed was cut: resumed from its cursor, the verifier missed nothing.
        assert reason(verifier, c) == SESSION_REVOKED
    finally:
        verifier.close()
        proxy.close()
        account.close()


def _who_am_i_server(verifier, **options):
    def who(request: bytes, context) -> bytes:
        return current_principal().user_id.encode()

    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(who)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=[AuthInterceptor(verifier, **options)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return server, channel, channel.unary_unary("/test.Echo/Who")


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_the_interceptor_hands_the_principal_to_the_handler_and_refuses_with_the_reason(auth_addr, kind):
    account = Account(auth_addr)
    token = account.login()
    verifier = LocalVerifier(auth_addr, audience="api") if kind == "local" else RemoteVerifier(auth_addr)
    server, channel, who = _who_am_i_server(verifier)
    try:
        user_id = who(b"", metadata=[("authorization", f"Bearer {token}")], timeout=5).decode()
        assert user_id == verifier.verify(token).user_id
        for metadata, code, expected in [
            ([], grpc.StatusCode.UNAUTHENTICATED, "CREDENTIAL_MISSING"),
            ([("authorization", "Bearer not-a-token")], grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"),
        ]:
            with pytest.raises(grpc.RpcError) as refused:
                who(b"", metadata=metadata, timeout=5)
            assert refused.value.code() == code
            assert reason_of(refused.value) == expected
        account.logout(token)
        if kind == "local":
            wait_for(lambda: reason(verifier, token) == SESSION_REVOKED, 2)
        with pytest.raises(grpc.RpcError) as refused:
            who(b"", metadata=[("authorization", f"Bearer {token}")], timeout=5)
        assert reason_of(refused.value) == SESSION_REVOKED
    finally:
        server.stop(None)
        channel.close()
        if kind == "local":
            verifier.close()
        account.close()


def test_a_required_role_the_caller_lacks_is_permission_denied(auth_addr):
    account = Account(auth_addr)
    token = account.login()
    with LocalVerifier(auth_addr, audience="api") as verifier:
        server, channel, who = _who_am_i_server(verifier, require_role="billing")
        try:
            with pytest.raises(grpc.RpcError) as refused:
                who(b"", metadata=[("authorization", f"Bearer {token}")], timeout=5)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert reason_of(refused.value) == PERMISSION_DENIED
        finally:
            server.stop(None)
            channel.close()
            account.close()


def test_a_local_verifier_that_cannot_reach_the_auth_service_refuses_to_start():
    with pytest.raises(VerifyError) as refused:
        LocalVerifier("127.0.0.1:1", audience="api", connect_timeout=1)
    assert refused.value.reason == AUTH_UNAVAILABLE


def test_a_remote_verifier_that_cannot_reach_the_auth_service_fails_closed():
    verifier = RemoteVerifier("127.0.0.1:1", timeout=1)
    with pytest.raises(VerifyError) as refused:
        verifier.verify("a.b.c")
    assert refused.value.reason == AUTH_UNAVAILABLE


def test_the_async_interceptor_hands_the_principal_to_an_aio_handler_and_refuses_with_the_reason(auth_addr):
    import asyncio

    from auth_verifier import AsyncAuthInterceptor

    account = Account(auth_addr)
    token = account.login()

    async def scenario():
        async def who(request: bytes, context) -> bytes:
            return current_principal().user_id.encode()

        with LocalVerifier(auth_addr, audience="api") as verifier:
            server = grpc.aio.server(interceptors=[AsyncAuthInterceptor(verifier)])
            server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler("test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(who)}),)
            )
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    call = channel.unary_unary("/test.Echo/Who")
                    user_id = await call(b"", metadata=[("authorization", f"Bearer {token}")], timeout=5)
                    assert user_id.decode() == verifier.verify(token).user_id
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await call(b"", metadata=[("authorization", "Bearer x.y.z")], timeout=5)
                    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
                    assert reason_of(refused.value) == "TOKEN_INVALID"
            finally:
                await server.stop(None)

    try:
        asyncio.run(scenario())
    finally:
        account.close()

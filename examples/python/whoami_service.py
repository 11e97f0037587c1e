#!/usr/bin/env python3
"""A small grpcio service that authenticates its callers with auth-verifier (clients/python).

`serve()` is the whole service: a LocalVerifier (keys from GetJwks, revocations from the
WatchRevocations feed, no call to the auth service per request), an AuthInterceptor that
refuses calls without a valid access token, and a handler that reads the caller with
current_principal(): who it is, whether a user or a service, and which services the token came
through (the RFC 8693 `act` chain). The service is WhoAmIService
(examples/proto/whoami/v1/whoami.proto): it answers with that principal.

`main()` then calls it the way its clients would, and checks each answer:

 1. a user's own access token: kind "user", no actors;
 2. no token: UNAUTHENTICATED with the reason CREDENTIAL_MISSING;
 3. with an admin account (AUTH_ADMIN_EMAIL, AUTH_ADMIN_PASSWORD; examples/run.sh makes one):
    a service client's own token: kind "service"; then the user's token exchanged by that
    service (ExchangeToken): kind "user", actors [the service];
 4. the user logs out: the same token is refused with SESSION_REVOKED a few milliseconds later,
    heard on the revocation feed.

It exits with 0 if every answer is the expected one, 1 otherwise.

Settings (environment):
  AUTH_ADDR            the auth service, host:port (default 127.0.0.1:50051)
  AUTH_AUDIENCE        the audience this service accepts, the auth service's AUTH_AUDIENCE
                       (default "api")
  AUTH_ADMIN_EMAIL, AUTH_ADMIN_PASSWORD
                       an admin account, to create a service client (step 3; skipped unset)
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from auth_verifier import AuthInterceptor, LocalVerifier, current_principal, reason_of

HERE = Path(__file__).resolve().parent
TIMEOUT = 10  # seconds; every call has a deadline


def load_stubs(out: Path):
    """Generates the Python stubs of whoami.proto and auth.v1 (for the client side) with
    grpcio-tools, as a project would at build time, and imports them."""
    from grpc_tools import protoc

    protos = [HERE.parent / "proto", HERE.parent.parent / "proto"]
    files = ["whoami/v1/whoami.proto", "auth/v1/auth.proto", "auth/v1/admin.proto"]
    include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", *(f"-I{p}" for p in [*protos, include]), f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + files) != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, str(out))
    names = ["whoami.v1.whoami_pb2", "whoami.v1.whoami_pb2_grpc", "auth.v1.auth_pb2", "auth.v1.auth_pb2_grpc"]
    names += ["auth.v1.admin_pb2", "auth.v1.admin_pb2_grpc"]
    return [importlib.import_module(name) for name in names]


def serve(auth_addr: str, audience: str, whoami_pb2, whoami_grpc):
    """The service: every call authenticated locally; the handler reads the principal."""
    verifier = LocalVerifier(auth_addr, audience=audience)

    class WhoAmI(whoami_grpc.WhoAmIServiceServicer):
        def WhoAmI(self, request, context):
            who = current_principal()  # set by the interceptor
            return whoami_pb2.WhoAmIResponse(
                user_id=who.user_id,
                kind=who.kind,  # "user" or "service"
                actors=who.actors,  # e.g. ("order-service",) for a token it exchanged
                roles=who.roles,
                session_id=who.session_id,
            )

    server = grpc.server(ThreadPoolExecutor(max_workers=4), interceptors=[AuthInterceptor(verifier)])
    whoami_grpc.add_WhoAmIServiceServicer_to_server(WhoAmI(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, verifier, f"127.0.0.1:{port}"


def bearer(token: str):
    return [("authorization", f"Bearer {token}")]


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {message}")
    print(f"    ok: {message}", flush=True)


def main() -> int:
    auth_addr = os.environ.get("AUTH_ADDR", "127.0.0.1:50051")
    audience = os.environ.get("AUTH_AUDIENCE", "api")
    with tempfile.TemporaryDirectory() as out:
        whoami_pb2, whoami_grpc, pb, pb_grpc, admin_pb2, admin_grpc = load_stubs(Path(out))
        server, verifier, addr = serve(auth_addr, audience, whoami_pb2, whoami_grpc)
        print(f"WhoAmIService on {addr}, verifying for audience {audience!r} with auth-service at {auth_addr}")
        auth_channel = grpc.insecure_channel(auth_addr)
        auth = pb_grpc.AuthServiceStub(auth_channel)
        whoami = whoami_grpc.WhoAmIServiceStub(grpc.insecure_channel(addr))

        def who(token: str):
            return whoami.WhoAmI(whoami_pb2.WhoAmIRequest(), metadata=bearer(token), timeout=TIMEOUT)

        print("==> a user calls with its own access token")
        email, password = f"whoami-py-{uuid.uuid4().hex[:12]}@example.com", "correct horse battery"
        auth.Register(pb.RegisterRequest(email=email, password=password), timeout=TIMEOUT)
        login = auth.Login(pb.LoginRequest(email=email, password=password), timeout=TIMEOUT)
        user_token = login.tokens.access_token
        answer = who(user_token)
        check(answer.user_id == login.user_id and answer.kind == "user", f"user {answer.user_id}, kind {answer.kind}")
        check(list(answer.actors) == [], "no actors: the user presents its own token")

        print("==> a call without a token")
        try:
            whoami.WhoAmI(whoami_pb2.WhoAmIRequest(), timeout=TIMEOUT)
            check(False, "a call without a token was answered")
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode.UNAUTHENTICATED, f"{error.code().name}, reason {reason_of(error)}")
            check(reason_of(error) == "CREDENTIAL_MISSING", "reason CREDENTIAL_MISSING")

        admin_email, admin_password = os.environ.get("AUTH_ADMIN_EMAIL"), os.environ.get("AUTH_ADMIN_PASSWORD")
        if admin_email and admin_password:
            print("==> a service calls with its own token, then with the user's token it exchanged")
            admin_login = auth.Login(
                pb.LoginRequest(email=admin_email, password=admin_password, management=True), timeout=TIMEOUT
            )
            admin = admin_grpc.AdminServiceStub(auth_channel)
            name = f"gateway-py-{uuid.uuid4().hex[:8]}"
            created = admin.CreateServiceClient(
                admin_pb2.CreateServiceClientRequest(name=name, audiences=[audience], exchange_audiences=[audience]),
                metadata=bearer(admin_login.tokens.access_token),
                timeout=TIMEOUT,
            )
            service_token = auth.IssueServiceToken(
                pb.IssueServiceTokenRequest(client_id=name, client_secret=created.client_secret, audience=audience),
                timeout=TIMEOUT,
            ).access_token
            answer = who(service_token)
            check(answer.user_id == name and answer.kind == "service", f"{answer.user_id}, kind {answer.kind}")
            exchanged = auth.ExchangeToken(
                pb.ExchangeTokenRequest(subject_token=user_token, audience=audience),
                metadata=bearer(service_token),
                timeout=TIMEOUT,
            ).access_token
            answer = who(exchanged)
            check(answer.user_id == login.user_id and answer.kind == "user", f"user {answer.user_id}, kind user")
            check(list(answer.actors) == [name], f"actors {list(answer.actors)}: it came through {name}")
        else:
            print("==> (service principals skipped: set AUTH_ADMIN_EMAIL and AUTH_ADMIN_PASSWORD)")

        print("==> the user logs out; the service refuses the token once the feed tells it")
        auth.Logout(pb.LogoutRequest(token=login.tokens.refresh_token), timeout=TIMEOUT)
        started, reason = time.monotonic(), None
        while reason is None and time.monotonic() - started < 5:
            try:
                who(user_token)
                time.sleep(0.001)
            except grpc.RpcError as error:
                reason = reason_of(error)
        elapsed_ms = (time.monotonic() - started) * 1000
        check(reason == "SESSION_REVOKED", f"reason {reason}, {elapsed_ms:.1f} ms after Logout returned")

        server.stop(grace=None)
        verifier.close()
    print("all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

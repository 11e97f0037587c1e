#!/usr/bin/env python3
"""A Python client of auth-service (auth.v1), with grpcio.

Walks through one token-pair session and prints each step:

 1. Register a new user (a unique email).
 2. Login: a JWT access token plus a refresh token.
 3. Verify the access token with the service; the principal must be the new user.
 4. GetJwks, then check the access token locally with PyJWT (EdDSA, typ at+jwt,
    issuer "auth", audience "api"), the way a service that does not call Verify would.
    Then the same check with the keys from the HTTP listener, the way most JWT libraries
    and gateways get them: the discovery document names the JWKS URL, PyJWKClient fetches
    the key the token names (when AUTH_HTTP_URL is set).
 5. Refresh: a new token pair, different from the first.
 6. Logout.
 7. Verify again: it must fail with UNAUTHENTICATED and the ErrorInfo reason
    SESSION_REVOKED, read from the google.rpc.Status in the grpc-status-details-bin trailer.

It exits with 0 if every step behaves as expected, 1 otherwise.

Settings (environment):
  AUTH_ADDR       the server, host:port (default 127.0.0.1:50051)
  AUTH_HTTP_URL   the server's HTTP listener (AUTH_HTTP_ADDR), e.g. http://127.0.0.1:8080
                  (unset: the key discovery step is skipped)
  AUTH_PROTO_DIR  the folder holding auth/v1/auth.proto (default: the repository's proto/)
  AUTH_ISSUER     the `iss` access tokens must carry (default "auth", the server's default)
  AUTH_AUDIENCE   the `aud` access tokens must carry (default "api", the server's default)

The stubs are generated from the .proto files at start-up into a temporary folder, so the
client always matches the contract in this repository. A real project would run the same
`grpc_tools.protoc` command once, at build time.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType

import grpc
import jwt  # PyJWT
from google.rpc import error_details_pb2
from grpc_status import rpc_status

# The domain of every ErrorInfo this service sends (see README.md, "Error reasons").
ERROR_DOMAIN = "auth.v1"
# Every call gets a deadline: a client should never wait forever. Login and Register hash a
# password (argon2id), which takes a fraction of a second.
TIMEOUT_SECONDS = 10
# Clock skew tolerated when checking exp/iat locally (the server's AUTH_TOKEN_LEEWAY default).
LEEWAY_SECONDS = 5


class StepFailed(Exception):
    """A step did not behave as expected."""


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def ok(message: str) -> None:
    print(f"    ok: {message}", flush=True)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


def generate_stubs(proto_dir: Path, out_dir: Path) -> tuple[ModuleType, ModuleType]:
    """Compiles auth/v1/auth.proto into out_dir and imports the generated modules.

    grpcio-tools ships protoc and the well-known types (google/protobuf/timestamp.proto), so
    nothing else needs to be installed.
    """
    from grpc_tools import protoc  # imported here: only this start-up step needs it

    well_known = Path(protoc.__file__).parent / "_proto"
    exit_code = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={proto_dir}",
            f"--proto_path={well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(proto_dir / "auth" / "v1" / "auth.proto"),
        ]
    )
    if exit_code != 0:
        raise StepFailed(f"protoc failed on {proto_dir}/auth/v1/auth.proto (exit {exit_code})")
    sys.path.insert(0, str(out_dir))
    # `auth` and `auth.v1` are namespace packages: protoc writes no __init__.py.
    return (
        importlib.import_module("auth.v1.auth_pb2"),
        importlib.import_module("auth.v1.auth_pb2_grpc"),
    )


def error_reason(error: grpc.RpcError) -> str | None:
    """The ErrorInfo reason of a failed call, from the grpc-status-details-bin trailer."""
    status = rpc_status.from_call(error)  # None when the trailer is absent
    if status is None:
        return None
    for detail in status.details:  # google.protobuf.Any values
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == ERROR_DOMAIN:
                return info.reason
    return None


def verify_locally(access_token: str, jwks_json: str, issuer: str, audience: str) -> dict:
    """Checks an access token against the JWKS, as a service that never calls Verify would.

    What this cannot see: a session revoked before the token expires. Such a service also
    follows KeyService.WatchRevocations (not shown here).
    """
    header = jwt.get_unverified_header(access_token)
    # RFC 9068: access tokens are typed, so an ID token or another JWT is not taken for one.
    expect(header.get("typ") == "at+jwt", f"typ is {header.get('typ')!r}, expected 'at+jwt'")
    expect(header.get("alg") == "EdDSA", f"alg is {header.get('alg')!r}, expected 'EdDSA'")
    key_set = jwt.PyJWKSet.from_json(jwks_json)
    try:
        key = key_set[header["kid"]]  # the key the token names; a rotation adds keys
    except KeyError as missing:
        raise StepFailed(f"the JWKS has no key {header.get('kid')!r}") from missing
    return decode(access_token, key, issuer, audience)


def decode(access_token: str, key: jwt.PyJWK, issuer: str, audience: str) -> dict:
    """The checks every local verifier makes, whichever way it got the key."""
    return jwt.decode(
        access_token,
        key=key,
        algorithms=["EdDSA"],  # never take the algorithm from the token
        issuer=issuer,
        audience=audience,
        leeway=LEEWAY_SECONDS,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )


def verify_through_url(access_token: str, http_url: str, issuer: str, audience: str) -> dict:
    """Checks an access token with the keys served over HTTP: the discovery document names the
    JWKS URL, and PyJWKClient fetches (and caches) the key the token's `kid` names."""
    discovery_url = f"{http_url.rstrip('/')}/.well-known/openid-configuration"
    with urllib.request.urlopen(discovery_url, timeout=TIMEOUT_SECONDS) as response:
        discovery = json.load(response)
    expect(
        discovery.get("issuer") == issuer,
        f"the discovery document names issuer {discovery.get('issuer')!r}, expected {issuer!r}",
    )
    header = jwt.get_unverified_header(access_token)
    expect(header.get("typ") == "at+jwt", f"typ is {header.get('typ')!r}, expected 'at+jwt'")
    keys = jwt.PyJWKClient(discovery["jwks_uri"], cache_keys=True, timeout=TIMEOUT_SECONDS)
    key = keys.get_signing_key_from_jwt(access_token)
    return decode(access_token, key, issuer, audience)


def run(addr: str, http_url: str | None, proto_dir: Path, issuer: str, audience: str) -> None:
    with tempfile.TemporaryDirectory(prefix="auth-stubs-") as stubs_dir:
        pb, pb_grpc = generate_stubs(proto_dir, Path(stubs_dir))

        # Plaintext gRPC, as the server speaks it (keep it on a private network, or behind TLS).
        with grpc.insecure_channel(
            addr, options=[("grpc.primary_user_agent", "auth-example-python")]
        ) as channel:
            auth = pb_grpc.AuthServiceStub(channel)
            keys = pb_grpc.KeyServiceStub(channel)

            email = f"py-{uuid.uuid4().hex[:12]}@example.com"
            password = "correct horse battery staple"

            step(f"Register {email}")
            registered = auth.Register(
                pb.RegisterRequest(email=email, password=password), timeout=TIMEOUT_SECONDS
            )
            expect(bool(registered.user_id), "Register returned no user id")
            ok(f"user id {registered.user_id}")

            step("Login (token pair)")
            login = auth.Login(
                pb.LoginRequest(
                    email=email, password=password, kind=pb.CREDENTIAL_KIND_TOKENS
                ),
                timeout=TIMEOUT_SECONDS,
            )
            expect(login.WhichOneof("credential") == "tokens", "Login returned no token pair")
            expect(login.user_id == registered.user_id, "Login names another user")
            tokens = login.tokens
            ok(
                f"session {login.session_id}; access token expires at "
                f"{tokens.access_expires_at.ToJsonString()}, refresh token at "
                f"{tokens.refresh_expires_at.ToJsonString()}"
            )

            step("Verify the access token")
            verified = auth.Verify(
                pb.VerifyRequest(token=tokens.access_token), timeout=TIMEOUT_SECONDS
            )
            principal = verified.principal
            expect(
                principal.user_id == registered.user_id,
                f"Verify says the token belongs to {principal.user_id!r}, "
                f"expected {registered.user_id!r}",
            )
            expect(principal.session_id == login.session_id, "Verify names another session")
            expect(verified.kind == pb.CREDENTIAL_KIND_TOKENS, "Verify: not an access token")
            ok(f"user {principal.user_id} ({principal.email}), session {principal.session_id}")

            step("GetJwks, then check the access token locally with PyJWT")
            jwks = keys.GetJwks(pb.GetJwksRequest(), timeout=TIMEOUT_SECONDS)
            claims = verify_locally(tokens.access_token, jwks.jwks_json, issuer, audience)
            expect(claims["sub"] == registered.user_id, "the token's sub is another user")
            expect(claims.get("sid") == login.session_id, "the token's sid is another session")
            kid = jwt.get_unverified_header(tokens.access_token)["kid"]
            ok(
                f"signature (key {kid}), typ, iss, aud, exp valid; sub {claims['sub']}, "
                f"sid {claims['sid']}, roles {claims.get('roles', [])}"
            )

            if http_url:
                step(f"The same check with the keys from {http_url} (discovery, PyJWKClient)")
                claims = verify_through_url(tokens.access_token, http_url, issuer, audience)
                expect(claims["sub"] == registered.user_id, "the token's sub is another user")
                ok(f"jwks_uri from the discovery document; key {kid} fetched; claims valid")
            else:
                step("Key discovery over HTTP: skipped (AUTH_HTTP_URL is not set)")

            step("Refresh")
            refreshed = auth.Refresh(
                pb.RefreshRequest(refresh_token=tokens.refresh_token), timeout=TIMEOUT_SECONDS
            ).tokens
            expect(
                refreshed.access_token != tokens.access_token,
                "Refresh returned the same access token",
            )
            expect(
                refreshed.refresh_token != tokens.refresh_token,
                "Refresh returned the same refresh token",
            )
            ok("a new access token and a new refresh token (the old refresh token is spent)")

            step("Logout")
            auth.Logout(pb.LogoutRequest(token=refreshed.access_token), timeout=TIMEOUT_SECONDS)
            ok("session ended")

            step("Verify the access token again: must fail with SESSION_REVOKED")
            try:
                auth.Verify(
                    pb.VerifyRequest(token=refreshed.access_token), timeout=TIMEOUT_SECONDS
                )
            except grpc.RpcError as error:
                reason = error_reason(error)
                expect(
                    error.code() == grpc.StatusCode.UNAUTHENTICATED
                    and reason == "SESSION_REVOKED",
                    f"expected UNAUTHENTICATED / SESSION_REVOKED, got {error.code().name} / "
                    f"{reason} ({error.details()})",
                )
                ok(f"{error.code().name}, reason {reason}: {error.details()}")
            else:
                raise StepFailed("Verify accepted an access token of a logged-out session")


def main() -> int:
    addr = os.environ.get("AUTH_ADDR", "127.0.0.1:50051")
    http_url = os.environ.get("AUTH_HTTP_URL") or None
    default_proto_dir = Path(__file__).resolve().parent.parent.parent / "proto"
    proto_dir = Path(os.environ.get("AUTH_PROTO_DIR", default_proto_dir))
    issuer = os.environ.get("AUTH_ISSUER", "auth")
    audience = os.environ.get("AUTH_AUDIENCE", "api")
    print(f"auth-service at {addr}")
    try:
        run(addr, http_url, proto_dir, issuer, audience)
    except StepFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    except grpc.RpcError as error:
        reason = error_reason(error)
        code = error.code().name + (f", reason {reason}" if reason else "")
        print(f"FAILED: unexpected {code}: {error.details()}", file=sys.stderr)
        return 1
    except jwt.PyJWTError as error:
        print(f"FAILED: local token check: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # urllib's URLError and HTTPError are OSErrors
        print(f"FAILED: key discovery over HTTP: {error}", file=sys.stderr)
        return 1
    print("all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

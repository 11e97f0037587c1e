"""The access token rules of auth-api's ``access_token.rs``, in Python.

Access tokens are JWTs (RFC 9068 profile) signed with Ed25519. Verification follows RFC 8725:
nothing in the header is trusted but ``kid``, and only to pick among known keys; the algorithm
is fixed to EdDSA (s3.1); keys are never taken from ``jku``/``jwk``/``x5u``/``x5c`` (s3.10);
``typ`` must be ``at+jwt`` (s3.11, RFC 9068 s4); a ``crit`` header is refused since no extension
is understood (RFC 7515 s4.1.11); ``iss``, ``aud``, ``sub``, ``exp`` and ``iat`` are required
(s3.8-3.9), with the claim types the Rust verifier demands. Times are unix seconds with a
leeway. Every function here is pure: the caller passes the clock, so the conformance vectors
(``conformance/vectors/tokens.json``) pin each verdict.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import VerifyError

#: Larger inputs are refused before any parsing: real tokens are about 340 bytes.
MAX_ACCESS_TOKEN_BYTES = 4096
_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
_KEY_HINTS = ("jku", "jwk", "x5u", "x5c", "crit")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_I64 = (-(2**63), 2**63 - 1)
_HEADER_FIELDS = ("alg", "typ", "cty", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "crit")
_CLAIM_FIELDS = (
    "iss", "sub", "aud", "sid", "iat", "exp", "jti", "roles", "nbf", "auth_time", "exchanged", "service", "act",
)
#: Actor chains (``act``, RFC 8693 s4.1) deeper than this are refused, as in auth-api.
MAX_ACTOR_DEPTH = 8


@dataclass(frozen=True)
class Claims:
    """The claims of a verified access token."""

    iss: str
    sub: str
    aud: str
    sid: str
    iat: int
    exp: int
    jti: str
    roles: Tuple[str, ...]
    nbf: Optional[int] = None
    auth_time: Optional[int] = None
    exchanged: Optional[bool] = None
    #: True on a service token (``IssueServiceToken``): ``sub`` is a service client.
    service: Optional[bool] = None
    #: The actor chain of a delegated token (nested ``act.sub``), current actor first.
    actors: Tuple[str, ...] = ()


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding: no padding, no other alphabet, canonical last bits."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise ValueError("non-canonical base64url")
    return raw


def _reject_constant(_: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _object(raw: bytes, known: Tuple[str, ...]) -> Dict[str, Any]:
    """A JSON object, parsed as strictly as serde_json parses it into a struct."""

    def pairs(items: List[Tuple[str, Any]]) -> Dict[str, Any]:
        seen: Dict[str, Any] = {}
        for key, value in items:
            if key in seen and key in known:
                raise ValueError(f"duplicate field {key}")
            seen[key] = value
        return seen

    value = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=_reject_constant)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and _I64[0] <= value <= _I64[1]


def _split(token: str) -> Tuple[str, str, str]:
    if len(token.encode("utf-8", "surrogatepass")) > MAX_ACCESS_TOKEN_BYTES:
        raise VerifyError.invalid()
    parts = token.split(".")
    if len(parts) != 3:
        raise VerifyError.invalid()
    return parts[0], parts[1], parts[2]


def key_id(token: str) -> str:
    """Checks the header and returns the ``kid`` to verify with."""
    header_b64, _, _ = _split(token)
    try:
        header = _object(b64url_decode(header_b64), _HEADER_FIELDS)
    except ValueError:
        raise VerifyError.invalid() from None
    for field in ("typ", "cty", "kid", "x5u", "jku", "x5t", "x5t#S256"):
        if header.get(field) is not None and not isinstance(header[field], str):
            raise VerifyError.invalid()
    typ = header.get("typ")
    typ_ok = isinstance(typ, str) and typ.lower() in _TOKEN_TYPES and typ.isascii()
    carries_key_hints = any(header.get(hint) is not None for hint in _KEY_HINTS)
    if header.get("alg") != "EdDSA" or not typ_ok or carries_key_hints:
        raise VerifyError.invalid()
    kid = header.get("kid")
    if kid is None:
        raise VerifyError.invalid()
    return kid


def check_times(claims: Claims, leeway: int, now: int) -> None:
    """Not expired, not issued or valid only in the future, within ``leeway`` seconds."""
    if claims.exp + leeway <= now:
        raise VerifyError.expired()
    if claims.iat - leeway > now or (claims.nbf is not None and claims.nbf - leeway > now):
        raise VerifyError.invalid()


def _claims(payload: Dict[str, Any]) -> Claims:
    for field in ("iss", "sub", "aud", "sid", "jti"):
        if not isinstance(payload.get(field), str):
            raise ValueError(field)
    for field in ("iat", "exp"):
        if not _int(payload.get(field)):
            raise ValueError(field)
    roles = payload.get("roles")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise ValueError("roles")
    for field in ("nbf", "auth_time"):
        if payload.get(field) is not None and not _int(payload[field]):
            raise ValueError(field)
    exchanged = payload.get("exchanged")
    if exchanged is not None and not isinstance(exchanged, bool):
        raise ValueError("exchanged")
    service = payload.get("service")
    if service is not None and not isinstance(service, bool):
        raise ValueError("service")
    return Claims(
        iss=payload["iss"],
        sub=payload["sub"],
        aud=payload["aud"],
        sid=payload["sid"],
        iat=payload["iat"],
        exp=payload["exp"],
        jti=payload["jti"],
        roles=tuple(roles),
        nbf=payload.get("nbf"),
        auth_time=payload.get("auth_time"),
        exchanged=exchanged,
        service=service,
        actors=_actors(payload.get("act")),
    )


def _actors(act: Any) -> Tuple[str, ...]:
    """The ``act`` claim as a chain, current actor first: each level an object with a string
    ``sub`` and an optional nested ``act`` (null counts as absent)."""
    chain: List[str] = []
    while act is not None:
        if not isinstance(act, dict) or not isinstance(act.get("sub"), str):
            raise ValueError("act")
        chain.append(act["sub"])
        act = act.get("act")
    return tuple(chain)


def verify(token: str, key: Ed25519PublicKey, *, issuer: str, audience: str, leeway: int, now: int) -> Claims:
    """Verifies signature and claims of a token whose header passed :func:`key_id`."""
    header_b64, payload_b64, signature_b64 = _split(token)
    try:
        signature = b64url_decode(signature_b64)
    except ValueError:
        raise VerifyError.invalid() from None
    # Exactly 64 bytes: anything else is refused before any curve arithmetic.
    if len(signature) != 64:
        raise VerifyError.invalid()
    try:
        key.verify(signature, f"{header_b64}.{payload_b64}".encode("ascii"))
    except (InvalidSignature, UnicodeEncodeError):
        raise VerifyError.invalid() from None
    try:
        claims = _claims(_object(b64url_decode(payload_b64), _CLAIM_FIELDS))
    except (ValueError, UnicodeDecodeError):
        raise VerifyError.invalid() from None
    if claims.iss != issuer or claims.aud != audience:
        raise VerifyError.invalid()
    check_times(claims, leeway, now)
    if not claims.sub or not claims.sid or len(claims.actors) > MAX_ACTOR_DEPTH or not all(claims.actors):
        raise VerifyError.invalid()
    return claims


def key_from_jwk(jwk: Any) -> Optional[Tuple[str, Ed25519PublicKey]]:
    """A public key from a JWKS entry, if it is an Ed25519 signing key (RFC 8037)."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        return None
    if ("use" in jwk and jwk["use"] != "sig") or ("alg" in jwk and jwk["alg"] != "EdDSA"):
        return None
    kid, x = jwk.get("kid"), jwk.get("x")
    if not isinstance(kid, str) or not isinstance(x, str):
        return None
    try:
        return kid, Ed25519PublicKey.from_public_bytes(b64url_decode(x))
    except ValueError:
        return None


def keys_from_jwks(jwks_json: str) -> Optional[Dict[str, Ed25519PublicKey]]:
    """The usable keys of a JWKS document; ``None`` if it is not JSON at all (keys unchanged)."""
    try:
        jwks = json.loads(jwks_json)
    except ValueError:
        return None
    entries = jwks.get("keys") if isinstance(jwks, dict) else None
    keys: Dict[str, Ed25519PublicKey] = {}
    for entry in entries if isinstance(entries, list) else []:
        found = key_from_jwk(entry)
        if found is not None:
            keys[found[0]] = found[1]
    return keys

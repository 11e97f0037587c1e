"""What a local verifier knows, and the check it makes with it, apart from any network.

Mirrors the Rust ``LocalVerifier``'s shared state (``local_verifier.rs``, ``revoked_set.rs``,
``verified_tokens.rs``): the published keys, keys revoked as compromised, revoked sessions and
users for as long as one of their tokens could be unexpired, and a bounded cache of verified
tokens (by SHA-256, never the token itself) so a repeat check skips the signature but never the
expiry or the revocation lists. :class:`~auth_verifier.LocalVerifier` feeds it from the auth
service; the conformance runner feeds it from ``conformance/vectors/sequences.json``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Callable, Dict, Optional, Set, Tuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import rules
from .errors import VerifyError
from .principal import SERVICE, USER, Principal

#: How long a revocation of all of a user's sessions is kept: longer than any token lives.
USER_REVOCATION_KEPT = 24 * 3600
_FOREVER = 2**63 - 1


class VerifierState:
    """Thread-safe; every method may be called from any thread."""

    def __init__(self, *, audience: str, issuer: str = "auth", leeway: int = 5, cache_capacity: int = 100_000):
        self.audience = audience
        self.issuer = issuer
        self.leeway = int(leeway)
        self._lock = threading.Lock()
        self._keys: Dict[str, Ed25519PublicKey] = {}
        self._revoked_keys: Set[str] = set()
        # Revoked session id -> last second one of its tokens may be unexpired.
        self._sessions: Dict[str, int] = {}
        # User id -> (tokens issued before this second are revoked, last second that matters).
        self._users: Dict[str, Tuple[int, int]] = {}
        self._capacity = cache_capacity
        self._verified: "OrderedDict[bytes, Tuple[str, rules.Claims]]" = OrderedDict()
        self._generation = 0

    # Feed events -------------------------------------------------------------------------

    def replace_keys(self, jwks_json: str) -> None:
        """A new key set (GetJwks or KeysChanged); keys revoked earlier stay out."""
        keys = rules.keys_from_jwks(jwks_json)
        if keys is None:
            return
        with self._lock:
            self._keys = {kid: key for kid, key in keys.items() if kid not in self._revoked_keys}
            # A key may have been withdrawn: tokens signed with it must not live on in the cache.
            self._clear_cache()

    def revoke_key(self, kid: str) -> None:
        """Refuses ``kid`` from now on, whatever key set arrives later (SigningKeyRevoked)."""
        with self._lock:
            self._keys.pop(kid, None)
            self._revoked_keys.add(kid)
            self._clear_cache()

    def revoke_session(self, session_id: str, tokens_live_until: Optional[int]) -> None:
        # A verifier with more leeway than the server accepts tokens longer: count its own.
        until = _FOREVER if tokens_live_until is None else tokens_live_until + self.leeway + 1
        with self._lock:
            self._sessions[session_id] = max(self._sessions.get(session_id, until), until)

    def revoke_user(self, user_id: str, revoked_before: Optional[int]) -> None:
        before = _FOREVER if revoked_before is None else revoked_before
        until = min(before + USER_REVOCATION_KEPT + self.leeway, _FOREVER)
        with self._lock:
            old_before, old_until = self._users.get(user_id, (before, until))
            self._users[user_id] = (max(old_before, before), max(old_until, until))

    def forget_expired(self, now: int) -> None:
        """Drops revocations whose tokens have all expired (on each heartbeat)."""
        with self._lock:
            self._sessions = {sid: until for sid, until in self._sessions.items() if until >= now}
            self._users = {uid: entry for uid, entry in self._users.items() if entry[1] >= now}

    # Checks ------------------------------------------------------------------------------

    def check(self, token: str, now: int, refetch_keys: Optional[Callable[[], None]] = None) -> Principal:
        """Verifies ``token`` at ``now`` (unix seconds); ``refetch_keys`` is called (it may
        decline) when the token names a key not known yet. Raises :class:`VerifyError`."""
        if len(token.encode("utf-8", "surrogatepass")) > rules.MAX_ACCESS_TOKEN_BYTES:
            raise VerifyError.invalid()
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            cached = self._verified.get(digest) if self._capacity else None
            # A verdict counts only while the key that signed the token is still published.
            if cached is not None and cached[0] not in self._keys:
                cached = None
            generation = self._generation
        if cached is not None:
            kid, claims = cached
            rules.check_times(claims, self.leeway, now)
        else:
            kid = rules.key_id(token)
            key = self._keys.get(kid)
            if key is None and refetch_keys is not None:
                # A key rotated in since the last key set: refetch (rate-limited by the caller).
                refetch_keys()
                key = self._keys.get(kid)
            if key is None:
                raise VerifyError.invalid()
            claims = rules.verify(token, key, issuer=self.issuer, audience=self.audience, leeway=self.leeway, now=now)
            self._remember(generation, digest, kid, claims)
        with self._lock:
            # Checked on every call: a token verified before its key was revoked is refused too.
            if kid in self._revoked_keys:
                raise VerifyError.invalid()
            revoked = claims.sid in self._sessions or (
                claims.sub in self._users and claims.iat < self._users[claims.sub][0]
            )
        if revoked:
            raise VerifyError.revoked()
        return Principal(
            user_id=claims.sub,
            session_id=claims.sid,
            roles=claims.roles,
            claims=claims,
            kind=SERVICE if claims.service else USER,
            actors=claims.actors,
        )

    def knows_key(self, kid: str) -> bool:
        return kid in self._keys

    def _remember(self, generation: int, digest: bytes, kid: str, claims: rules.Claims) -> None:
        if not self._capacity:
            return
        with self._lock:
            # Cleared meanwhile (the keys changed): the verdict was reached with the old keys.
            if self._generation != generation or digest in self._verified:
                return
            while len(self._verified) >= self._capacity:
                self._verified.popitem(last=False)
            self._verified[digest] = (kid, claims)

    def _clear_cache(self) -> None:
        self._verified.clear()
        self._generation += 1

"""Verification inside a Python service, as auth-api's Rust ``LocalVerifier`` does it: access
tokens are checked in-process with the auth service's published keys (``GetJwks``), and
revocations arrive over the ``WatchRevocations`` feed, so a check costs no network call and still
refuses a revoked session within milliseconds.

A background thread keeps the feed open, reconnecting with jittered exponential backoff (50 ms
doubling to 5 s) and resuming from the last cursor, so no revocation is missed. A feed silent
for ``feed_silence_limit`` (no event, no heartbeat) is treated as broken. Once the feed has been
down for longer than ``max_feed_outage``, every check fails closed with ``AUTH_UNAVAILABLE``
(unless ``fail_closed=False``): an unknown revocation must never let a token through.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Optional, Union

import grpc

from ._proto import auth_pb2, auth_pb2_grpc
from .errors import VerifyError
from .principal import Principal
from .state import VerifierState

_FIRST_RECONNECT_DELAY = 0.05
_MAX_RECONNECT_DELAY = 5.0


class LocalVerifier:
    """``LocalVerifier("127.0.0.1:50051", audience="payments")`` fetches the keys, opens the feed
    and waits for its snapshot (up to ``connect_timeout``; raises :class:`VerifyError` with
    ``AUTH_UNAVAILABLE`` if it does not come). Thread-safe; share one per process and
    :meth:`close` it at shutdown. Durations are in seconds; the defaults are auth-api's."""

    def __init__(
        self,
        target: Union[str, grpc.Channel],
        audience: str,
        *,
        issuer: str = "auth",
        leeway: int = 5,
        max_feed_outage: float = 30.0,
        fail_closed: bool = True,
        feed_silence_limit: float = 15.0,
        jwks_refetch_interval: float = 1.0,
        connect_timeout: float = 10.0,
        verified_cache_capacity: int = 100_000,
        credentials: Optional[grpc.ChannelCredentials] = None,
    ):
        self._own_channel = isinstance(target, str)
        if isinstance(target, str):
            target = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
        self._channel = target
        self._stub = auth_pb2_grpc.KeyServiceStub(target)
        self.state = VerifierState(audience=audience, issuer=issuer, leeway=leeway, cache_capacity=verified_cache_capacity)
        self._max_feed_outage = max_feed_outage
        self._fail_closed = fail_closed
        self._silence_limit = feed_silence_limit
        self._refetch_interval = jwks_refetch_interval
        self._lock = threading.Lock()
        self._live = threading.Event()
        self._closed = threading.Event()
        self._down_since: Optional[float] = time.monotonic()
        self._last_jwks_fetch: Optional[float] = None
        self._call = None
        self._last_message = time.monotonic()
        self._applied = threading.Condition(self._lock)
        self._applied_count = 0
        try:
            self._fetch_jwks(timeout=connect_timeout)
        except grpc.RpcError:
            self.close()
            raise VerifyError.unavailable() from None
        self._follower = threading.Thread(target=self._follow, name="auth-verifier-feed", daemon=True)
        self._follower.start()
        self._watchdog = threading.Thread(target=self._watch_silence, name="auth-verifier-watchdog", daemon=True)
        self._watchdog.start()
        if not self._live.wait(connect_timeout):
            self.close()
            raise VerifyError.unavailable()

    # Checks ------------------------------------------------------------------------------

    def verify(self, token: str) -> Principal:
        """Signature, claims, audience, and that the session has not been revoked. No network
        call unless the token names a key not seen yet; a token verified before skips the
        signature check (expiry and revocation are checked every time). Raises
        :class:`VerifyError` (``TOKEN_INVALID``, ``TOKEN_EXPIRED``, ``SESSION_REVOKED``,
        ``AUTH_UNAVAILABLE``)."""
        self._ensure_feed_trustworthy()
        return self.state.check(token, int(time.time()), self._refetch_jwks)

    def feed_is_live(self) -> bool:
        """Whether the feed is connected and its snapshot received."""
        return self._live.is_set()

    @property
    def feed_events_applied(self) -> int:
        """How many feed events have been applied so far (for :meth:`wait_for_feed_event`)."""
        return self._applied_count

    def wait_for_feed_event(self, timeout: float, after: Optional[int] = None) -> bool:
        """Blocks until a feed event (revocation, key change or heartbeat) is applied after
        this call, or after the ``after``-th event (:attr:`feed_events_applied`); False on
        timeout."""
        with self._applied:
            seen = self._applied_count if after is None else after
            return self._applied.wait_for(lambda: self._applied_count != seen, timeout)

    def close(self) -> None:
        """Stops following the feed (and closes the channel if this verifier opened it)."""
        self._closed.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()
        if self._own_channel:
            self._channel.close()

    def __enter__(self) -> "LocalVerifier":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _ensure_feed_trustworthy(self) -> None:
        if not self._fail_closed:
            return
        down_since = self._down_since
        if down_since is not None and time.monotonic() - down_since > self._max_feed_outage:
            raise VerifyError.unavailable()

    # Keys --------------------------------------------------------------------------------

    def _fetch_jwks(self, timeout: float) -> None:
        response = self._stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=timeout)
        self.state.replace_keys(response.jwks_json)

    def _refetch_jwks(self) -> None:
        """At most once per ``jwks_refetch_interval``; a failure leaves the keys as they were."""
        with self._lock:
            now = time.monotonic()
            if self._last_jwks_fetch is not None and now - self._last_jwks_fetch < self._refetch_interval:
                return
            self._last_jwks_fetch = now
        try:
            self._fetch_jwks(timeout=2.0)
        except grpc.RpcError:
            pass

    # The feed ----------------------------------------------------------------------------

    def _set_live(self, live: bool) -> None:
        with self._lock:
            if live:
                self._down_since = None
                self._live.set()
            else:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                self._live.clear()

    def _apply(self, event: auth_pb2.RevocationEvent) -> None:
        kind = event.WhichOneof("event")
        state = self.state
        if kind == "session_revoked":
            revoked = event.session_revoked
            until = revoked.tokens_live_until.seconds if revoked.HasField("tokens_live_until") else None
            state.revoke_session(revoked.session_id, until)
        elif kind == "user_sessions_revoked":
            revoked = event.user_sessions_revoked
            before = revoked.revoked_before.seconds if revoked.HasField("revoked_before") else None
            state.revoke_user(revoked.user_id, before)
        elif kind == "keys_changed":
            state.replace_keys(event.keys_changed.jwks_json)
        elif kind == "signing_key_revoked":
            state.revoke_key(event.signing_key_revoked.kid)
        elif kind == "snapshot_complete":
            self._set_live(True)
        elif kind == "heartbeat":
            state.forget_expired(int(time.time()))
        with self._applied:
            self._applied_count += 1
            self._applied.notify_all()

    def _follow(self) -> None:
        cursor = ""
        delay = _FIRST_RECONNECT_DELAY
        while not self._closed.is_set():
            try:
                call = self._stub.WatchRevocations(auth_pb2.WatchRevocationsRequest(after_cursor=cursor))
                with self._lock:
                    self._call = call
                    self._last_message = time.monotonic()
                if self._closed.is_set():
                    call.cancel()
                for event in call:
                    self._last_message = time.monotonic()
                    if event.cursor:
                        cursor = event.cursor
                    self._apply(event)
                    delay = _FIRST_RECONNECT_DELAY
            except grpc.RpcError:
                pass
            with self._lock:
                self._call = None
            self._set_live(False)
            # Jittered, so a fleet of verifiers does not reconnect in step after an outage.
            if self._closed.wait(delay * random.uniform(0.5, 1.0)):
                return
            delay = min(delay * 2, _MAX_RECONNECT_DELAY)

    def _watch_silence(self) -> None:
        """Hangs up a feed that has been silent too long (a half-open connection)."""
        period = min(1.0, self._silence_limit / 4)
        while not self._closed.wait(period):
            with self._lock:
                call = self._call
                silent = time.monotonic() - self._last_message
            if call is not None and silent > self._silence_limit:
                call.cancel()

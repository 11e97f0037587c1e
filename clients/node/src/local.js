// Verification inside a Node service, as auth-api's Rust LocalVerifier does it: access tokens
// are checked in-process with the auth service's published keys (GetJwks), and revocations
// arrive over the WatchRevocations feed, so a check costs no network call and still refuses a
// revoked session within milliseconds.
//
// The feed is kept open in the background, reconnecting with jittered exponential backoff
// (50 ms doubling to 5 s) and resuming from the last cursor, so no revocation is missed. A feed
// silent for feedSilenceLimitMs (no event, no heartbeat) is treated as broken. Once the feed has
// been down for longer than maxFeedOutageMs, every check fails closed with AUTH_UNAVAILABLE
// (unless failClosed is false): an unknown revocation must never let a token through.
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';

import { VerifyError } from './errors.js';
import { authV1, client } from './proto.js';
import { VerifierState } from './state.js';

const FIRST_RECONNECT_DELAY_MS = 50;
const MAX_RECONNECT_DELAY_MS = 5000;

export const LOCAL_VERIFIER_DEFAULTS = Object.freeze({
  issuer: 'auth',
  leewaySeconds: 5,
  maxFeedOutageMs: 30_000,
  failClosed: true,
  feedSilenceLimitMs: 15_000,
  jwksRefetchIntervalMs: 1000,
  connectTimeoutMs: 10_000,
  verifiedCacheCapacity: 100_000,
});

const unixNow = () => Math.floor(Date.now() / 1000);
const seconds = (timestamp) => (timestamp ? Number(timestamp.seconds) : undefined);

export class LocalVerifier {
  /**
   * Fetches the keys, opens the feed and waits for its snapshot; rejects with a VerifyError
   * (AUTH_UNAVAILABLE) if they do not come within connectTimeoutMs.
   * @param {string|object} target host:port, or a grpc-js Channel
   */
  static async connect(target, options) {
    const verifier = new LocalVerifier(target, options);
    try {
      await verifier.start();
    } catch (error) {
      verifier.close();
      throw error instanceof VerifyError ? error : VerifyError.unavailable();
    }
    return verifier;
  }

  constructor(target, { audience, credentials, ...options }) {
    if (typeof audience !== 'string') throw new TypeError('audience is required');
    this.config = { ...LOCAL_VERIFIER_DEFAULTS, ...options };
    this.keysClient = client(authV1().KeyService, target, credentials);
    this.state = new VerifierState({
      audience,
      issuer: this.config.issuer,
      leeway: this.config.leewaySeconds,
      cacheCapacity: this.config.verifiedCacheCapacity,
    });
    this.downSince = performance.now();
    this.lastJwksFetch = undefined;
    this.live = false;
    this.closed = false;
    this.events = new EventEmitter();
    this.events.setMaxListeners(0);
  }

  /**
   * Signature, claims, audience, and that the session has not been revoked. No network call
   * unless the token names a key not seen yet; a token verified before skips the signature
   * check (expiry and revocation are checked every time).
   * @returns {Promise<{userId: string, sessionId: string, roles: readonly string[], email: string, claims: object}>}
   */
  async verify(token) {
    this.ensureFeedTrustworthy();
    return this.state.check(token, unixNow(), () => this.refetchJwks());
  }

  /** Whether the feed is connected and its snapshot received. */
  feedIsLive() {
    return this.live;
  }

  /** Resolves after the next feed event (revocation, key change or heartbeat) is applied. */
  nextFeedEvent() {
    return new Promise((resolve) => this.events.once('applied', resolve));
  }

  /** Stops following the feed and closes the client. */
  close() {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.silenceTimer);
    this.call?.cancel();
    this.keysClient.close();
  }

  ensureFeedTrustworthy() {
    if (!this.config.failClosed) return;
    if (this.downSince !== undefined && performance.now() - this.downSince > this.config.maxFeedOutageMs) {
      throw VerifyError.unavailable();
    }
  }

  async start() {
    await this.fetchJwks(this.config.connectTimeoutMs);
    const live = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(VerifyError.unavailable()), this.config.connectTimeoutMs);
      this.events.once('live', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.follow('', FIRST_RECONNECT_DELAY_MS);
    await live;
  }

  fetchJwks(timeoutMs) {
    return new Promise((resolve, reject) => {
      this.keysClient.GetJwks({}, { deadline: Date.now() + timeoutMs }, (error, response) => {
        if (error) return reject(error);
        this.state.replaceKeys(response.jwks_json);
        resolve();
      });
    });
  }

  /** At most once per jwksRefetchIntervalMs; a failure leaves the keys as they were. */
  async refetchJwks() {
    const now = performance.now();
    if (this.lastJwksFetch !== undefined && now - this.lastJwksFetch < this.config.jwksRefetchIntervalMs) return;
    this.lastJwksFetch = now;
    await this.fetchJwks(2000).catch(() => {});
  }

  setLive(live) {
    if (live) {
      this.downSince = undefined;
      if (!this.live) {
        this.live = true;
        this.events.emit('live');
      }
    } else {
      this.downSince ??= performance.now();
      this.live = false;
    }
  }

  apply(event) {
    const state = this.state;
    switch (event.event) {
      case 'session_revoked':
        state.revokeSession(event.session_revoked.session_id, seconds(event.session_revoked.tokens_live_until));
        break;
      case 'user_sessions_revoked':
        state.revokeUser(event.user_sessions_revoked.user_id, seconds(event.user_sessions_revoked.revoked_before));
        break;
      case 'keys_changed':
        state.replaceKeys(event.keys_changed.jwks_json);
        break;
      case 'signing_key_revoked':
        state.revokeKey(event.signing_key_revoked.kid);
        break;
      case 'snapshot_complete':
        this.setLive(true);
        break;
      case 'heartbeat':
        state.forgetExpired(unixNow());
        break;
      default:
        break;
    }
    this.events.emit('applied');
  }

  /** Opens the feed from `cursor`; on its end, reconnects after a jittered `delay`. */
  follow(cursor, delay) {
    if (this.closed) return;
    const call = this.keysClient.WatchRevocations({ after_cursor: cursor });
    this.call = call;
    let ended = false;
    const armSilence = () => {
      clearTimeout(this.silenceTimer);
      // A silent feed (a half-open connection) is hung up and reopened.
      this.silenceTimer = setTimeout(() => call.cancel(), this.config.feedSilenceLimitMs);
    };
    armSilence();
    call.on('data', (event) => {
      armSilence();
      if (event.cursor) cursor = event.cursor;
      this.apply(event);
      delay = FIRST_RECONNECT_DELAY_MS;
    });
    const reconnect = () => {
      if (ended) return;
      ended = true;
      clearTimeout(this.silenceTimer);
      this.setLive(false);
      if (this.closed) return;
      // Jittered, so a fleet of verifiers does not reconnect in step after an outage.
      const wait = delay * (0.5 + Math.random() / 2);
      const next = Math.min(delay * 2, MAX_RECONNECT_DELAY_MS);
      this.reconnectTimer = setTimeout(() => this.follow(cursor, next), wait);
    };
    call.on('error', reconnect);
    call.on('end', reconnect);
  }
}

// What a local verifier knows, and the check it makes with it, apart from any network.
//
// Mirrors the Rust LocalVerifier's shared state (local_verifier.rs, revoked_set.rs,
// verified_tokens.rs): the published keys, keys revoked as compromised, revoked sessions and
// users for as long as one of their tokens could be unexpired, and a bounded cache of verified
// tokens (by SHA-256, never the token itself) so a repeat check skips the signature but never the
// expiry or the revocation lists. LocalVerifier feeds it from the auth service; the conformance
// test feeds it from conformance/vectors/sequences.json.
import { createHash } from 'node:crypto';

import { VerifyError } from './errors.js';
import * as rules from './rules.js';

/** How long a revocation of all of a user's sessions is kept: longer than any token lives. */
export const USER_REVOCATION_KEPT = 24 * 3600;
const FOREVER = Number.MAX_SAFE_INTEGER;

export class VerifierState {
  constructor({ audience, issuer = 'auth', leeway = 5, cacheCapacity = 100_000 }) {
    this.audience = audience;
    this.issuer = issuer;
    this.leeway = leeway;
    this.keys = new Map();
    this.revokedKeys = new Set();
    /** Revoked session id -> last second one of its tokens may be unexpired. */
    this.sessions = new Map();
    /** User id -> [tokens issued before this second are revoked, last second that matters]. */
    this.users = new Map();
    this.capacity = cacheCapacity;
    this.verified = new Map();
    this.generation = 0;
  }

  /** A new key set (GetJwks or KeysChanged); keys revoked earlier stay out. */
  replaceKeys(jwksJson) {
    const keys = rules.keysFromJwks(jwksJson);
    if (!keys) return;
    for (const kid of this.revokedKeys) keys.delete(kid);
    this.keys = keys;
    // A key may have been withdrawn: tokens signed with it must not live on in the cache.
    this.clearCache();
  }

  /** Refuses `kid` from now on, whatever key set arrives later (SigningKeyRevoked). */
  revokeKey(kid) {
    this.keys.delete(kid);
    this.revokedKeys.add(kid);
    this.clearCache();
  }

  revokeSession(sessionId, tokensLiveUntil) {
    // A verifier with more leeway than the server accepts tokens longer: count its own.
    const until = tokensLiveUntil == null ? FOREVER : tokensLiveUntil + this.leeway + 1;
    this.sessions.set(sessionId, Math.max(this.sessions.get(sessionId) ?? until, until));
  }

  revokeUser(userId, revokedBefore) {
    const before = revokedBefore == null ? FOREVER : revokedBefore;
    const until = Math.min(before + USER_REVOCATION_KEPT + this.leeway, FOREVER);
    const [oldBefore, oldUntil] = this.users.get(userId) ?? [before, until];
    this.users.set(userId, [Math.max(oldBefore, before), Math.max(oldUntil, until)]);
  }

  /** Drops revocations whose tokens have all expired (on each heartbeat). */
  forgetExpired(now) {
    for (const [sid, until] of this.sessions) if (until < now) this.sessions.delete(sid);
    for (const [uid, [, until]] of this.users) if (until < now) this.users.delete(uid);
  }

  /**
   * Verifies `token` at `now` (unix seconds); `refetchKeys` (async, may decline) is called when
   * the token names a key not known yet. Rejects with a VerifyError.
   */
  async check(token, now, refetchKeys) {
    if (typeof token !== 'string' || Buffer.byteLength(token, 'utf8') > rules.MAX_ACCESS_TOKEN_BYTES) throw VerifyError.invalid();
    const digest = createHash('sha256').update(token, 'utf8').digest('base64');
    let cached = this.capacity ? this.verified.get(digest) : undefined;
    // A verdict counts only while the key that signed the token is still published.
    if (cached && !this.keys.has(cached.kid)) cached = undefined;
    let kid;
    let claims;
    if (cached) {
      ({ kid, claims } = cached);
      rules.checkTimes(claims, this.leeway, now);
    } else {
      const generation = this.generation;
      kid = rules.keyId(token);
      let key = this.keys.get(kid);
      if (!key && refetchKeys) {
        // A key rotated in since the last key set: refetch (rate-limited by the caller).
        await refetchKeys();
        key = this.keys.get(kid);
      }
      if (!key) throw VerifyError.invalid();
      claims = await rules.verify(token, key, { issuer: this.issuer, audience: this.audience, leeway: this.leeway, now });
      this.remember(generation, digest, kid, claims);
    }
    // Checked on every call: a token verified before its key was revoked is refused too.
    if (this.revokedKeys.has(kid)) throw VerifyError.invalid();
    const user = this.users.get(claims.sub);
    if (this.sessions.has(claims.sid) || (user && claims.iat < user[0])) throw VerifyError.revoked();
    return Object.freeze({
      userId: claims.sub,
      sessionId: claims.sid,
      roles: claims.roles,
      email: '',
      kind: claims.service ? 'service' : 'user',
      actors: claims.actors,
      claims,
    });
  }

  remember(generation, digest, kid, claims) {
    // Cleared meanwhile (the keys changed): the verdict was reached with the old keys.
    if (!this.capacity || this.generation !== generation || this.verified.has(digest)) return;
    while (this.verified.size >= this.capacity) this.verified.delete(this.verified.keys().next().value);
    this.verified.set(digest, { kid, claims });
  }

  clearCache() {
    this.verified.clear();
    this.generation += 1;
  }
}

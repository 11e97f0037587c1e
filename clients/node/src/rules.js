// The access token rules of auth-api's access_token.rs, in JavaScript.
//
// Access tokens are JWTs (RFC 9068 profile) signed with Ed25519. Verification follows RFC 8725:
// nothing in the header is trusted but `kid`, and only to pick among known keys; the algorithm
// is fixed to EdDSA (s3.1); keys are never taken from jku/jwk/x5u/x5c (s3.10); `typ` must be
// at+jwt (s3.11, RFC 9068 s4); a `crit` header is refused since no extension is understood
// (RFC 7515 s4.1.11); iss, aud, sub, exp and iat are required (s3.8-3.9), with the claim types
// the Rust verifier demands (integers as integers, not 1.8e9 nor "1800000000"). Times are unix
// seconds with a leeway; the caller passes the clock, so conformance/vectors/tokens.json pins
// each verdict. Signatures are checked with jose (EdDSA only).
import { createPublicKey } from 'node:crypto';

import { compactVerify } from 'jose';

import { VerifyError } from './errors.js';

/** Larger inputs are refused before any parsing: real tokens are about 340 bytes. */
export const MAX_ACCESS_TOKEN_BYTES = 4096;
const TOKEN_TYPES = ['at+jwt', 'application/at+jwt'];
const KEY_HINTS = ['jku', 'jwk', 'x5u', 'x5c', 'crit'];
const HEADER_FIELDS = ['alg', 'typ', 'cty', 'jku', 'jwk', 'kid', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'crit'];
const CLAIM_FIELDS = ['iss', 'sub', 'aud', 'sid', 'iat', 'exp', 'jti', 'roles', 'nbf', 'auth_time', 'exchanged', 'service', 'act'];
const ACTOR_FIELDS = ['sub', 'act'];
/** Actor chains (`act`, RFC 8693 s4.1) deeper than this are refused, as in auth-api. */
export const MAX_ACTOR_DEPTH = 8;
const INTEGER = /^-?(0|[1-9][0-9]*)$/;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const B64URL = /^[A-Za-z0-9_-]*$/;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strict base64url without padding: no padding, no other alphabet, canonical last bits. */
export function b64urlDecode(text) {
  if (!B64URL.test(text) || text.length % 4 === 1) throw new Error('not base64url');
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) throw new Error('non-canonical base64url');
  return bytes;
}

/** The members of the top-level JSON object `text` (already valid JSON): key and raw value. */
function members(text) {
  const found = [];
  let i = 0;
  const ws = () => { while (' \t\r\n'.includes(text[i]) && i < text.length) i++; };
  const string = () => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const skipValue = () => {
    const start = i;
    let depth = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === '"') { string(); continue; }
      if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') { if (depth === 0) break; depth--; }
      else if (c === ',' && depth === 0) break;
      i++;
    }
    return text.slice(start, i).trim();
  };
  ws();
  i++; // {
  ws();
  while (text[i] === '"') {
    const key = string();
    ws();
    i++; // :
    ws();
    found.push([key, skipValue()]);
    ws();
    if (text[i] === ',') { i++; ws(); }
  }
  return found;
}

/** A JSON object parsed as strictly as serde_json parses it into a struct with `known` fields. */
function object(bytes, known) {
  const text = utf8.decode(bytes);
  const value = JSON.parse(text);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
  const raw = new Map();
  for (const [key, rawValue] of members(text)) {
    if (known.includes(key) && raw.has(key)) throw new Error(`duplicate field ${key}`);
    raw.set(key, rawValue);
  }
  return { value, raw };
}

function isI64(rawValue) {
  if (!INTEGER.test(rawValue ?? '')) return false;
  const n = BigInt(rawValue);
  return n >= I64_MIN && n <= I64_MAX;
}

function split(token) {
  if (typeof token !== 'string' || Buffer.byteLength(token, 'utf8') > MAX_ACCESS_TOKEN_BYTES) throw VerifyError.invalid();
  const parts = token.split('.');
  if (parts.length !== 3) throw VerifyError.invalid();
  return parts;
}

const present = (value) => value !== undefined && value !== null;

/** Checks the header and returns the `kid` to verify with. */
export function keyId(token) {
  const [headerB64] = split(token);
  let header;
  try {
    header = object(b64urlDecode(headerB64), HEADER_FIELDS).value;
  } catch {
    throw VerifyError.invalid();
  }
  for (const field of ['typ', 'cty', 'kid', 'x5u', 'jku', 'x5t', 'x5t#S256']) {
    if (present(header[field]) && typeof header[field] !== 'string') throw VerifyError.invalid();
  }
  const typ = header.typ;
  const typOk = typeof typ === 'string' && /^[\x00-\x7f]*$/.test(typ) && TOKEN_TYPES.includes(typ.toLowerCase());
  const carriesKeyHints = KEY_HINTS.some((hint) => present(header[hint]));
  if (header.alg !== 'EdDSA' || !typOk || carriesKeyHints || !present(header.kid)) throw VerifyError.invalid();
  return header.kid;
}

/** Not expired, not issued or valid only in the future, within `leeway` seconds. */
export function checkTimes(claims, leeway, now) {
  if (claims.exp + leeway <= now) throw VerifyError.expired();
  if (claims.iat - leeway > now || (present(claims.nbf) && claims.nbf - leeway > now)) throw VerifyError.invalid();
}

function claimsOf({ value, raw }) {
  for (const field of ['iss', 'sub', 'aud', 'sid', 'jti']) {
    if (typeof value[field] !== 'string') throw new Error(field);
  }
  for (const field of ['iat', 'exp']) {
    if (!isI64(raw.get(field))) throw new Error(field);
  }
  for (const field of ['nbf', 'auth_time']) {
    if (present(value[field]) && !isI64(raw.get(field))) throw new Error(field);
  }
  if (!Array.isArray(value.roles) || !value.roles.every((role) => typeof role === 'string')) throw new Error('roles');
  if (present(value.exchanged) && typeof value.exchanged !== 'boolean') throw new Error('exchanged');
  if (present(value.service) && typeof value.service !== 'boolean') throw new Error('service');
  return Object.freeze({
    ...value,
    roles: Object.freeze([...value.roles]),
    nbf: value.nbf ?? undefined,
    auth_time: value.auth_time ?? undefined,
    exchanged: value.exchanged ?? undefined,
    service: value.service ?? undefined,
    actors: actorChain(raw.get('act')),
  });
}

/**
 * The `act` claim (its raw JSON text) as a chain, current actor first: each level an object with
 * a string `sub` and an optional nested `act` (null counts as absent), no field twice.
 */
function actorChain(rawAct) {
  const chain = [];
  let rawText = rawAct;
  while (rawText !== undefined && rawText !== 'null') {
    const { value, raw } = object(Buffer.from(rawText, 'utf8'), ACTOR_FIELDS);
    if (typeof value.sub !== 'string') throw new Error('act');
    chain.push(value.sub);
    rawText = raw.get('act');
  }
  return Object.freeze(chain);
}

/**
 * Verifies signature and claims of a token whose header passed keyId().
 * @returns {Promise<object>} the claims
 */
export async function verify(token, key, { issuer, audience, leeway, now }) {
  const [, payloadB64, signatureB64] = split(token);
  let signature;
  try {
    signature = b64urlDecode(signatureB64);
  } catch {
    throw VerifyError.invalid();
  }
  // Exactly 64 bytes: anything else is refused before any curve arithmetic.
  if (signature.length !== 64) throw VerifyError.invalid();
  try {
    await compactVerify(token, key, { algorithms: ['EdDSA'] });
  } catch {
    throw VerifyError.invalid();
  }
  let claims;
  try {
    claims = claimsOf(object(b64urlDecode(payloadB64), CLAIM_FIELDS));
  } catch {
    throw VerifyError.invalid();
  }
  if (claims.iss !== issuer || claims.aud !== audience) throw VerifyError.invalid();
  checkTimes(claims, leeway, now);
  const { actors } = claims;
  if (!claims.sub || !claims.sid || actors.length > MAX_ACTOR_DEPTH || actors.some((actor) => !actor)) throw VerifyError.invalid();
  return claims;
}

/** A public key from a JWKS entry, if it is an Ed25519 signing key (RFC 8037): [kid, key]. */
export function keyFromJwk(jwk) {
  if (jwk === null || typeof jwk !== 'object' || jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') return undefined;
  if (('use' in jwk && jwk.use !== 'sig') || ('alg' in jwk && jwk.alg !== 'EdDSA')) return undefined;
  if (typeof jwk.kid !== 'string' || typeof jwk.x !== 'string') return undefined;
  try {
    if (b64urlDecode(jwk.x).length !== 32) return undefined;
    return [jwk.kid, createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' })];
  } catch {
    return undefined;
  }
}

/** The usable keys of a JWKS document; undefined if it is not JSON at all (keys unchanged). */
export function keysFromJwks(jwksJson) {
  let jwks;
  try {
    jwks = JSON.parse(jwksJson);
  } catch {
    return undefined;
  }
  const entries = jwks !== null && typeof jwks === 'object' && Array.isArray(jwks.keys) ? jwks.keys : [];
  const keys = new Map();
  for (const entry of entries) {
    const found = keyFromJwk(entry);
    if (found) keys.set(found[0], found[1]);
  }
  return keys;
}

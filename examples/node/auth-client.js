#!/usr/bin/env node
// A Node.js client of auth-service (auth.v1), with @grpc/grpc-js.
//
// Walks through one token-pair session and prints each step:
//
//  1. Register a new user (a unique email).
//  2. Login: a JWT access token plus a refresh token.
//  3. Verify the access token with the service; the principal must be the new user.
//  4. GetJwks, then check the access token locally with jose (EdDSA, typ at+jwt, issuer
//     "auth", audience "api"), the way a service that does not call Verify would.
//     Then the same check with the keys from the HTTP listener, the way most JWT libraries and
//     gateways get them: the discovery document names the JWKS URL, createRemoteJWKSet fetches
//     it (when AUTH_HTTP_URL is set).
//  5. Refresh: a new token pair, different from the first.
//  6. Logout.
//  7. Verify again: it must fail with UNAUTHENTICATED and the ErrorInfo reason
//     SESSION_REVOKED, read from the google.rpc.Status in the grpc-status-details-bin trailer.
//
// It exits with 0 if every step behaves as expected, 1 otherwise.
//
// Settings (environment):
//   AUTH_ADDR       the server, host:port (default 127.0.0.1:50051)
//   AUTH_HTTP_URL   the server's HTTP listener (AUTH_HTTP_ADDR), e.g. http://127.0.0.1:8080
//                   (unset: the key discovery step is skipped)
//   AUTH_PROTO_DIR  the folder holding auth/v1/auth.proto (default: the repository's proto/)
//   AUTH_ISSUER     the `iss` access tokens must carry (default "auth", the server's default)
//   AUTH_AUDIENCE   the `aud` access tokens must carry (default "api", the server's default)
//
// The .proto files are loaded at run time with @grpc/proto-loader: no generated code.

import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import protobuf from 'protobufjs';

const here = path.dirname(fileURLToPath(import.meta.url));

const ADDR = process.env.AUTH_ADDR || '127.0.0.1:50051';
const HTTP_URL = process.env.AUTH_HTTP_URL || '';
const PROTO_DIR = process.env.AUTH_PROTO_DIR || path.resolve(here, '..', '..', 'proto');
const ISSUER = process.env.AUTH_ISSUER || 'auth';
const AUDIENCE = process.env.AUTH_AUDIENCE || 'api';

// The domain of every ErrorInfo this service sends (see README.md, "Error reasons").
const ERROR_DOMAIN = 'auth.v1';
// Every call gets a deadline: a client should never wait forever. Login and Register hash a
// password (argon2id), which takes a fraction of a second.
const TIMEOUT_MS = 10_000;
// Clock skew tolerated when checking exp/iat locally (the server's AUTH_TOKEN_LEEWAY default).
const LEEWAY_SECONDS = 5;

/** A step did not behave as expected. */
class StepFailed extends Error {}

const step = (message) => console.log(`==> ${message}`);
const ok = (message) => console.log(`    ok: ${message}`);

function expect(condition, message) {
  if (!condition) throw new StepFailed(message);
}

/** Loads auth.v1 from the repository's proto/ folder. proto-loader ships the well-known types
 * (google/protobuf/timestamp.proto), so only the folder of our own files is needed. */
function loadAuthPackage() {
  const definition = protoLoader.loadSync('auth/v1/auth.proto', {
    includeDirs: [PROTO_DIR],
    keepCase: false, // lowerCamelCase field names: userId, accessToken, ...
    longs: String, // int64 (Timestamp.seconds) as a string, without precision loss
    enums: String, // 'CREDENTIAL_KIND_TOKENS' rather than 1
    defaults: true,
    oneofs: true, // sets `credential: 'tokens' | 'session'` on LoginResponse
  });
  return grpc.loadPackageDefinition(definition).auth.v1;
}

/** google.rpc.Status and google.rpc.ErrorInfo, from the two .proto files vendored in ./proto
 * (protobufjs ships the google/protobuf/any.proto and duration.proto they import). */
function loadErrorTypes() {
  const root = protobuf.loadSync([
    path.join(here, 'proto', 'google', 'rpc', 'status.proto'),
    path.join(here, 'proto', 'google', 'rpc', 'error_details.proto'),
  ]);
  return {
    Status: root.lookupType('google.rpc.Status'),
    ErrorInfo: root.lookupType('google.rpc.ErrorInfo'),
  };
}

const errorTypes = loadErrorTypes();

/** The ErrorInfo reason of a failed call, from the grpc-status-details-bin trailer: a
 * serialized google.rpc.Status whose `details` are google.protobuf.Any values. */
function errorReason(error) {
  const [bytes] = error.metadata?.get('grpc-status-details-bin') ?? [];
  if (!bytes) return undefined;
  const status = errorTypes.Status.decode(bytes);
  for (const detail of status.details) {
    // `type_url`, not `typeUrl`: protobufjs's bundled google.protobuf.Any keeps the proto name.
    if (detail.type_url.endsWith('/google.rpc.ErrorInfo')) {
      const info = errorTypes.ErrorInfo.decode(detail.value);
      if (info.domain === ERROR_DOMAIN) return info.reason;
    }
  }
  return undefined;
}

/** Calls a unary method with a deadline, as a promise. */
function call(client, method, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + TIMEOUT_MS);
    client[method](request, { deadline }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

/** A google.protobuf.Timestamp as proto-loader returns it ({seconds: '…', nanos}), in ISO 8601. */
const isoTime = ({ seconds, nanos }) =>
  new Date(Number(seconds) * 1000 + Math.floor(nanos / 1e6)).toISOString();

/** Checks an access token against the JWKS, as a service that never calls Verify would.
 * What this cannot see: a session revoked before the token expires. Such a service also
 * follows KeyService.WatchRevocations (not shown here). */
async function verifyLocally(accessToken, jwksJson) {
  // Picks the key by the token's `kid`; a rotation adds keys to the set.
  return verifyWith(accessToken, createLocalJWKSet(JSON.parse(jwksJson)));
}

/** The checks every local verifier makes, whichever way it gets the keys. */
async function verifyWith(accessToken, keySet) {
  const { payload, protectedHeader } = await jwtVerify(accessToken, keySet, {
    algorithms: ['EdDSA'], // never take the algorithm from the token
    typ: 'at+jwt', // RFC 9068: an ID token or another JWT is not taken for an access token
    issuer: ISSUER,
    audience: AUDIENCE,
    clockTolerance: LEEWAY_SECONDS,
    requiredClaims: ['exp', 'iat', 'iss', 'aud', 'sub'],
  });
  return { payload, protectedHeader };
}

/** Checks an access token with the keys served over HTTP: the discovery document names the
 * JWKS URL; createRemoteJWKSet fetches it, caches it, and refetches for an unknown `kid`. */
async function verifyThroughUrl(accessToken, httpUrl) {
  const discoveryUrl = new URL('/.well-known/openid-configuration', httpUrl);
  const response = await fetch(discoveryUrl, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  expect(response.ok, `${discoveryUrl}: HTTP ${response.status}`);
  const discovery = await response.json();
  expect(
    discovery.issuer === ISSUER,
    `the discovery document names issuer '${discovery.issuer}', expected '${ISSUER}'`,
  );
  const keySet = createRemoteJWKSet(new URL(discovery.jwks_uri), { timeoutDuration: TIMEOUT_MS });
  return verifyWith(accessToken, keySet);
}

async function run(auth, keys) {
  const email = `node-${randomUUID().replaceAll('-', '').slice(0, 12)}@example.com`;
  const password = 'correct horse battery staple';

  step(`Register ${email}`);
  const registered = await call(auth, 'Register', { email, password });
  expect(registered.userId, 'Register returned no user id');
  ok(`user id ${registered.userId}`);

  step('Login (token pair)');
  const login = await call(auth, 'Login', { email, password, kind: 'CREDENTIAL_KIND_TOKENS' });
  expect(login.credential === 'tokens', 'Login returned no token pair');
  expect(login.userId === registered.userId, 'Login names another user');
  const { tokens } = login;
  ok(
    `session ${login.sessionId}; access token expires at ${isoTime(tokens.accessExpiresAt)}, ` +
      `refresh token at ${isoTime(tokens.refreshExpiresAt)}`,
  );

  step('Verify the access token');
  const verified = await call(auth, 'Verify', { token: tokens.accessToken });
  const { principal } = verified;
  expect(
    principal.userId === registered.userId,
    `Verify says the token belongs to '${principal.userId}', expected '${registered.userId}'`,
  );
  expect(principal.sessionId === login.sessionId, 'Verify names another session');
  expect(verified.kind === 'CREDENTIAL_KIND_TOKENS', 'Verify: not an access token');
  ok(`user ${principal.userId} (${principal.email}), session ${principal.sessionId}`);

  step('GetJwks, then check the access token locally with jose');
  const { jwksJson } = await call(keys, 'GetJwks', {});
  const { payload, protectedHeader } = await verifyLocally(tokens.accessToken, jwksJson);
  expect(payload.sub === registered.userId, "the token's sub is another user");
  expect(payload.sid === login.sessionId, "the token's sid is another session");
  ok(
    `signature (key ${protectedHeader.kid}), typ, iss, aud, exp valid; sub ${payload.sub}, ` +
      `sid ${payload.sid}, roles ${JSON.stringify(payload.roles ?? [])}`,
  );

  if (HTTP_URL) {
    step(`The same check with the keys from ${HTTP_URL} (discovery, createRemoteJWKSet)`);
    const remote = await verifyThroughUrl(tokens.accessToken, HTTP_URL);
    expect(remote.payload.sub === registered.userId, "the token's sub is another user");
    ok(`jwks_uri from the discovery document; key ${remote.protectedHeader.kid} fetched; claims valid`);
  } else {
    step('Key discovery over HTTP: skipped (AUTH_HTTP_URL is not set)');
  }

  step('Refresh');
  const { tokens: refreshed } = await call(auth, 'Refresh', { refreshToken: tokens.refreshToken });
  expect(refreshed.accessToken !== tokens.accessToken, 'Refresh returned the same access token');
  expect(
    refreshed.refreshToken !== tokens.refreshToken,
    'Refresh returned the same refresh token',
  );
  ok('a new access token and a new refresh token (the old refresh token is spent)');

  step('Logout');
  await call(auth, 'Logout', { token: refreshed.accessToken });
  ok('session ended');

  step('Verify the access token again: must fail with SESSION_REVOKED');
  let rejection;
  try {
    await call(auth, 'Verify', { token: refreshed.accessToken });
  } catch (error) {
    if (error.code === undefined) throw error; // not a gRPC error
    rejection = error;
  }
  expect(rejection, 'Verify accepted an access token of a logged-out session');
  const reason = errorReason(rejection);
  const codeName = grpc.status[rejection.code];
  expect(
    rejection.code === grpc.status.UNAUTHENTICATED && reason === 'SESSION_REVOKED',
    `expected UNAUTHENTICATED / SESSION_REVOKED, ` +
      `got ${codeName} / ${reason} (${rejection.details})`,
  );
  ok(`${codeName}, reason ${reason}: ${rejection.details}`);
}

async function main() {
  console.log(`auth-service at ${ADDR}`);
  const authV1 = loadAuthPackage();
  // Plaintext gRPC, as the server speaks it (keep it on a private network, or behind TLS).
  const credentials = grpc.credentials.createInsecure();
  const options = { 'grpc.primary_user_agent': 'auth-example-node' };
  const auth = new authV1.AuthService(ADDR, credentials, options);
  const keys = new authV1.KeyService(ADDR, credentials, options);
  try {
    await run(auth, keys);
    console.log('all steps passed');
    return 0;
  } catch (error) {
    if (error instanceof StepFailed) {
      console.error(`FAILED: ${error.message}`);
    } else if (error instanceof joseErrors.JOSEError) {
      console.error(`FAILED: local token check: ${error.code}: ${error.message}`);
    } else if (error.code !== undefined && error.metadata) {
      const reason = errorReason(error);
      const codeName = grpc.status[error.code] + (reason ? `, reason ${reason}` : '');
      console.error(`FAILED: unexpected ${codeName}: ${error.details}`);
    } else {
      throw error;
    }
    return 1;
  } finally {
    auth.close();
    keys.close();
  }
}

process.exitCode = await main();

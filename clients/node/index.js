// Verify auth-service (auth.v1) access tokens inside a Node service.
//
// - LocalVerifier checks tokens in-process with the published keys and follows the revocation
//   feed: no network call per check, a revocation seen within milliseconds, fail closed after
//   maxFeedOutageMs (auth-api's Rust LocalVerifier: same rules, same defaults).
// - RemoteVerifier asks the auth service (Verify) on every check.
// - authenticate() wraps a @grpc/grpc-js service implementation; the handler reads
//   call.principal. For HTTP frameworks: await verifier.verify(bearerToken(req.headers.authorization)).
// Refusals reject with a VerifyError whose `reason` is the auth service's ErrorInfo reason.
export {
  AUTH_UNAVAILABLE,
  CREDENTIAL_MISSING,
  ERROR_DOMAIN,
  PERMISSION_DENIED,
  SESSION_REVOKED,
  TOKEN_EXPIRED,
  TOKEN_INVALID,
  VerifyError,
  reasonOf,
} from './src/errors.js';
export { LocalVerifier, LOCAL_VERIFIER_DEFAULTS } from './src/local.js';
export { RemoteVerifier } from './src/remote.js';
export { authenticate, authorize, bearerToken } from './src/server.js';
export { authV1 } from './src/proto.js';

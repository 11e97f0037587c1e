// Authentication for @grpc/grpc-js servers, as auth-api's AuthLayer does it for tonic: wrap a
// service implementation so every call's bearer token (`authorization` metadata) is checked with
// a verifier before the handler runs. The handler finds the principal on `call.principal`;
// anything else is answered UNAUTHENTICATED (PERMISSION_DENIED without a required role,
// UNAVAILABLE when failing closed) with the same google.rpc.ErrorInfo reason a Rust service sends.
//
//   server.addService(PaymentService.service, authenticate(PaymentService.service, impl, verifier));
import { VerifyError } from './errors.js';

/** The token of an `authorization: Bearer <token>` value, if any (scheme case-insensitive). */
export function bearerToken(authorization) {
  const value = Array.isArray(authorization) ? authorization[0] : authorization;
  if (typeof value !== 'string') return undefined;
  const space = value.indexOf(' ');
  if (space < 0 || value.slice(0, space).toLowerCase() !== 'bearer') return undefined;
  const token = value.slice(space + 1).trim();
  return token || undefined;
}

/** The check the wrapper makes: resolves to the principal or rejects with a VerifyError. */
export async function authorize(verifier, metadata, requireRole) {
  const token = bearerToken(metadata?.get('authorization'));
  if (!token) throw VerifyError.missing();
  const principal = await verifier.verify(token);
  if (requireRole !== undefined && !principal.roles.includes(requireRole)) throw VerifyError.missingRole();
  return principal;
}

/**
 * A copy of `implementation` whose every handler runs only for an authenticated caller.
 * @param service the grpc-js service definition (`Client.service`), to tell streaming methods
 * @param verifier a LocalVerifier or RemoteVerifier
 * @param options.requireRole also demand this role
 */
export function authenticate(service, implementation, verifier, { requireRole } = {}) {
  const wrapped = {};
  for (const [name, handler] of Object.entries(implementation)) {
    const method = service[name] ?? Object.values(service).find((m) => m.originalName === name);
    if (typeof handler !== 'function' || !method) {
      wrapped[name] = handler;
      continue;
    }
    const refuse = (call, callback, error) => {
      const status = error instanceof VerifyError ? error.toStatus() : VerifyError.unavailable().toStatus();
      if (callback) callback(status);
      else call.destroy(Object.assign(new Error(status.details), status));
    };
    const unaryResponse = !method.responseStream;
    wrapped[name] = (call, callback) => {
      authorize(verifier, call.metadata, requireRole).then(
        (principal) => {
          call.principal = principal;
          handler(call, callback);
        },
        (error) => refuse(call, unaryResponse ? callback : undefined, error),
      );
    };
  }
  return wrapped;
}

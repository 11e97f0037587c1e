// Why a credential was refused, with the reasons the auth service and auth-api use: each
// VerifyError carries the google.rpc.ErrorInfo reason (domain auth.v1) and the gRPC status code
// the Rust AuthLayer answers with, so a Node service refuses a call exactly as a Rust one does.
import grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

export const ERROR_DOMAIN = 'auth.v1';
export const CREDENTIAL_MISSING = 'CREDENTIAL_MISSING';
export const TOKEN_INVALID = 'TOKEN_INVALID';
export const TOKEN_EXPIRED = 'TOKEN_EXPIRED';
export const SESSION_REVOKED = 'SESSION_REVOKED';
export const PERMISSION_DENIED = 'PERMISSION_DENIED';
/** Revocations cannot be known (feed down for too long, or the auth service unreachable). */
export const AUTH_UNAVAILABLE = 'AUTH_UNAVAILABLE';

// google.rpc.Status and ErrorInfo, for the grpc-status-details-bin trailer.
const root = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: { nested: { Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } } } },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: 'int32', id: 1 },
                message: { type: 'string', id: 2 },
                details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 },
              },
            },
            ErrorInfo: {
              fields: {
                reason: { type: 'string', id: 1 },
                domain: { type: 'string', id: 2 },
                metadata: { keyType: 'string', type: 'string', id: 3 },
              },
            },
          },
        },
      },
    },
  },
});
const Status = root.lookupType('google.rpc.Status');
const ErrorInfo = root.lookupType('google.rpc.ErrorInfo');
const ERROR_INFO_URL = 'type.googleapis.com/google.rpc.ErrorInfo';

export class VerifyError extends Error {
  /** @param {string} reason @param {number} code a grpc.status @param {string} message */
  constructor(reason, code, message, metadata) {
    super(message);
    this.name = 'VerifyError';
    this.reason = reason;
    this.code = code;
    /** The auth service's own trailers, passed on unchanged (RemoteVerifier). */
    this.remoteMetadata = metadata;
  }

  static missing() { return new VerifyError(CREDENTIAL_MISSING, grpc.status.UNAUTHENTICATED, 'no credential was presented'); }
  static invalid() { return new VerifyError(TOKEN_INVALID, grpc.status.UNAUTHENTICATED, 'the token is invalid'); }
  static expired() { return new VerifyError(TOKEN_EXPIRED, grpc.status.UNAUTHENTICATED, 'the token has expired'); }
  static revoked() { return new VerifyError(SESSION_REVOKED, grpc.status.UNAUTHENTICATED, 'the session has been revoked'); }
  static missingRole() { return new VerifyError(PERMISSION_DENIED, grpc.status.PERMISSION_DENIED, 'the caller lacks the required role'); }
  static unavailable() { return new VerifyError(AUTH_UNAVAILABLE, grpc.status.UNAVAILABLE, 'authentication is temporarily unavailable'); }

  /** The error to hand grpc-js: code, details and an ErrorInfo in grpc-status-details-bin. */
  toStatus() {
    if (this.remoteMetadata) return { code: this.code, details: this.message, metadata: this.remoteMetadata };
    const info = ErrorInfo.encode({ reason: this.reason, domain: ERROR_DOMAIN }).finish();
    const status = Status.encode({ code: this.code, message: this.message, details: [{ type_url: ERROR_INFO_URL, value: info }] }).finish();
    const metadata = new grpc.Metadata();
    metadata.set('grpc-status-details-bin', Buffer.from(status));
    return { code: this.code, details: this.message, metadata };
  }
}

/** The ErrorInfo reason of a failed call (a grpc-js ServiceError), if the server sent one. */
export function reasonOf(error) {
  const [bytes] = error?.metadata?.get('grpc-status-details-bin') ?? [];
  if (!bytes) return undefined;
  try {
    const status = Status.decode(bytes);
    for (const detail of status.details) {
      if (detail.type_url === ERROR_INFO_URL) return ErrorInfo.decode(detail.value).reason;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

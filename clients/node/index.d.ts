// Types of auth-verifier (see index.js).
import type { ChannelCredentials, Metadata, ServiceDefinition, ServiceError, UntypedServiceImplementation } from '@grpc/grpc-js';

export declare const ERROR_DOMAIN: 'auth.v1';
export declare const CREDENTIAL_MISSING: 'CREDENTIAL_MISSING';
export declare const TOKEN_INVALID: 'TOKEN_INVALID';
export declare const TOKEN_EXPIRED: 'TOKEN_EXPIRED';
export declare const SESSION_REVOKED: 'SESSION_REVOKED';
export declare const PERMISSION_DENIED: 'PERMISSION_DENIED';
export declare const AUTH_UNAVAILABLE: 'AUTH_UNAVAILABLE';

export type Reason =
  | typeof CREDENTIAL_MISSING
  | typeof TOKEN_INVALID
  | typeof TOKEN_EXPIRED
  | typeof SESSION_REVOKED
  | typeof PERMISSION_DENIED
  | typeof AUTH_UNAVAILABLE;

/** The verified claims of an access token. */
export interface AccessClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string;
  readonly sid: string;
  readonly iat: number;
  readonly exp: number;
  readonly jti: string;
  readonly roles: readonly string[];
  readonly nbf?: number;
  readonly auth_time?: number;
  readonly exchanged?: boolean;
  /** True on a service token (IssueServiceToken): `sub` is a service client. */
  readonly service?: boolean;
  /** The `act` chain of a delegated token, current actor first (parsed from the nested `act`). */
  readonly actors: readonly string[];
  readonly [claim: string]: unknown;
}

export interface Principal {
  readonly userId: string;
  readonly sessionId: string;
  readonly roles: readonly string[];
  /** Known to a RemoteVerifier only; '' from a local check. */
  readonly email: string;
  /** 'service' for a service client's token (then userId is the client's id), else 'user'. */
  readonly kind: 'user' | 'service';
  /**
   * The services a delegated token came through (RFC 8693 `act`), the one that exchanged it
   * first; empty when the principal presents its own token.
   */
  readonly actors: readonly string[];
  /** Every verified claim (local checks only). */
  readonly claims?: AccessClaims;
}

export declare class VerifyError extends Error {
  /** An auth service ErrorInfo reason: one of the constants above, or the server's own. */
  readonly reason: Reason | string;
  /** The gRPC status code to answer with (grpc.status). */
  readonly code: number;
  toStatus(): { code: number; details: string; metadata: Metadata };
}

/** The ErrorInfo reason of a failed call, if the server sent one. */
export declare function reasonOf(error: ServiceError): string | undefined;

export interface Verifier {
  verify(token: string): Promise<Principal>;
}

export interface LocalVerifierOptions {
  /** The audience this service accepts tokens for (`aud`). */
  audience: string;
  /** The auth service's issuer (`iss`); default "auth". */
  issuer?: string;
  /** Clock skew tolerated on exp, nbf and iat; default 5. */
  leewaySeconds?: number;
  /** How long the feed may be down before checks fail closed; default 30000. */
  maxFeedOutageMs?: number;
  /** Fail closed after maxFeedOutageMs (default true). */
  failClosed?: boolean;
  /** A feed silent this long is treated as broken; default 15000. */
  feedSilenceLimitMs?: number;
  /** At most one key set refetch per interval on an unknown kid; default 1000. */
  jwksRefetchIntervalMs?: number;
  /** How long connect() waits for the keys and the revocation snapshot; default 10000. */
  connectTimeoutMs?: number;
  /** Verified tokens remembered (a repeat check skips the signature); 0 turns it off. Default 100000. */
  verifiedCacheCapacity?: number;
  credentials?: ChannelCredentials;
}

export declare const LOCAL_VERIFIER_DEFAULTS: Readonly<Required<Omit<LocalVerifierOptions, 'audience' | 'credentials'>>>;

export declare class LocalVerifier implements Verifier {
  static connect(target: string, options: LocalVerifierOptions): Promise<LocalVerifier>;
  verify(token: string): Promise<Principal>;
  feedIsLive(): boolean;
  /** Resolves after the next feed event (revocation, key change or heartbeat) is applied. */
  nextFeedEvent(): Promise<void>;
  close(): void;
}

export declare class RemoteVerifier implements Verifier {
  constructor(target: string, options?: { audience?: string; credentials?: ChannelCredentials; timeoutMs?: number });
  verify(token: string): Promise<Principal>;
  close(): void;
}

export declare function bearerToken(authorization: string | string[] | Buffer[] | undefined): string | undefined;
export declare function authorize(verifier: Verifier, metadata: Metadata, requireRole?: string): Promise<Principal>;
/** A copy of `implementation` whose handlers run only for an authenticated caller (call.principal). */
export declare function authenticate<T extends UntypedServiceImplementation>(
  service: ServiceDefinition,
  implementation: T,
  verifier: Verifier,
  options?: { requireRole?: string },
): T;
/** The auth.v1 package loaded with @grpc/proto-loader (AuthService, KeyService clients). */
export declare function authV1(): any;

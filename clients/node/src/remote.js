// Verification by asking the auth service: one Verify call per check. Accepts session tokens as
// well as access tokens and sees a revocation the instant it is made (auth-api's RemoteVerifier).
import grpc from '@grpc/grpc-js';

import { VerifyError, reasonOf } from './errors.js';
import { authV1, client } from './proto.js';

// The auth service cannot be reached: fail closed, as retryable (same codes as auth-api).
const UNREACHABLE = [grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.UNKNOWN, grpc.status.CANCELLED];

export class RemoteVerifier {
  /** @param audience the audience access tokens must carry; '' for the auth service's own */
  constructor(target, { audience = '', credentials, timeoutMs = 5000 } = {}) {
    this.client = client(authV1().AuthService, target, credentials);
    this.audience = audience;
    this.timeoutMs = timeoutMs;
  }

  verify(token) {
    return new Promise((resolve, reject) => {
      this.client.Verify({ token, audience: this.audience }, { deadline: Date.now() + this.timeoutMs }, (error, response) => {
        if (error) {
          if (UNREACHABLE.includes(error.code)) return reject(VerifyError.unavailable());
          // The auth service's own answer, passed on with its reason and trailers.
          return reject(new VerifyError(reasonOf(error) ?? grpc.status[error.code], error.code, error.details, error.metadata));
        }
        const p = response.principal;
        if (!p) return reject(VerifyError.invalid());
        resolve(
          Object.freeze({
            userId: p.user_id,
            sessionId: p.session_id,
            roles: Object.freeze([...p.roles]),
            email: p.email,
            kind: p.kind === 'PRINCIPAL_KIND_SERVICE' ? 'service' : 'user',
            actors: Object.freeze([...p.actors]),
          }),
        );
      });
    });
  }

  close() {
    this.client.close();
  }
}

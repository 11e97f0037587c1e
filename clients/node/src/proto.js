// The auth.v1 services for @grpc/grpc-js, loaded with @grpc/proto-loader from the package's
// proto/ (copied in by `npm pack`) or, installed from the repository, the repository's proto/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const PROTO_DIR = [process.env.AUTH_PROTO_DIR, join(here, 'proto'), join(here, '../../proto')]
  .find((dir) => dir && existsSync(join(dir, 'auth/v1/auth.proto')));

let loaded;

/** The generated `auth.v1` namespace: AuthService and KeyService client constructors. */
export function authV1() {
  if (!loaded) {
    if (!PROTO_DIR) throw new Error('auth-verifier: auth/v1/auth.proto not found (set AUTH_PROTO_DIR)');
    const definition = protoLoader.loadSync('auth/v1/auth.proto', {
      includeDirs: [PROTO_DIR],
      keepCase: true,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    loaded = grpc.loadPackageDefinition(definition).auth.v1;
  }
  return loaded;
}

/** A target string becomes a client; a grpc.Client-compatible channel is used as given. */
export function client(Service, target, credentials) {
  if (typeof target === 'string') return new Service(target, credentials ?? grpc.credentials.createInsecure());
  return new Service(null, null, { channelOverride: target });
}

// A small @grpc/grpc-js service that authenticates its callers with auth-verifier (clients/node).
//
// serve() is the whole service: a LocalVerifier (keys from GetJwks, revocations from the
// WatchRevocations feed, no call to the auth service per request), authenticate() around the
// implementation so calls without a valid access token are refused, and a handler that reads the
// caller from call.principal: who it is, whether a user or a service, and which services the
// token came through (the RFC 8693 `act` chain). The service is WhoAmIService
// (examples/proto/whoami/v1/whoami.proto): it answers with that principal.
//
// main() then calls it the way its clients would, and checks each answer:
//  1. a user's own access token: kind "user", no actors;
//  2. no token: UNAUTHENTICATED with the reason CREDENTIAL_MISSING;
//  3. with an admin account (AUTH_ADMIN_EMAIL, AUTH_ADMIN_PASSWORD; examples/run.sh makes one):
//     a service client's own token: kind "service"; then the user's token exchanged by that
//     service (ExchangeToken): kind "user", actors [the service];
//  4. the user logs out: the same token is refused with SESSION_REVOKED a few milliseconds
//     later, heard on the revocation feed.
// It exits with 0 if every answer is the expected one, 1 otherwise.
//
// Settings (environment): AUTH_ADDR (default 127.0.0.1:50051), AUTH_AUDIENCE (the audience this
// service accepts, the auth service's AUTH_AUDIENCE; default "api"), AUTH_ADMIN_EMAIL and
// AUTH_ADMIN_PASSWORD (step 3; skipped unset).
import { randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { LocalVerifier, authenticate, reasonOf } from 'auth-verifier';

const here = dirname(fileURLToPath(import.meta.url));
const TIMEOUT_MS = 10_000; // every call has a deadline

function load() {
  const definition = protoLoader.loadSync(['whoami/v1/whoami.proto', 'auth/v1/auth.proto', 'auth/v1/admin.proto'], {
    includeDirs: [join(here, '../proto'), join(here, '../../proto')],
    keepCase: true,
    defaults: true,
    enums: String,
  });
  const root = grpc.loadPackageDefinition(definition);
  return { WhoAmIService: root.whoami.v1.WhoAmIService, auth: root.auth.v1 };
}

/** The service: every call authenticated locally; the handler reads the principal. */
async function serve(authAddr, audience, WhoAmIService) {
  const verifier = await LocalVerifier.connect(authAddr, { audience });
  const implementation = {
    WhoAmI(call, callback) {
      const who = call.principal; // set by authenticate()
      callback(null, {
        user_id: who.userId,
        kind: who.kind, // 'user' or 'service'
        actors: who.actors, // e.g. ['order-service'] for a token it exchanged
        roles: who.roles,
        session_id: who.sessionId,
      });
    },
  };
  const server = new grpc.Server();
  server.addService(WhoAmIService.service, authenticate(WhoAmIService.service, implementation, verifier));
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { server, verifier, addr: `127.0.0.1:${port}` };
}

const call = (client, method, request, token) =>
  new Promise((resolve, reject) => {
    const metadata = new grpc.Metadata();
    if (token) metadata.set('authorization', `Bearer ${token}`);
    client[method](request, metadata, { deadline: Date.now() + TIMEOUT_MS }, (error, response) => (error ? reject(error) : resolve(response)));
  });

function check(condition, message) {
  if (!condition) throw new Error(`FAILED: ${message}`);
  console.log(`    ok: ${message}`);
}

async function main() {
  const authAddr = process.env.AUTH_ADDR ?? '127.0.0.1:50051';
  const audience = process.env.AUTH_AUDIENCE ?? 'api';
  const { WhoAmIService, auth } = load();
  const { server, verifier, addr } = await serve(authAddr, audience, WhoAmIService);
  console.log(`WhoAmIService on ${addr}, verifying for audience '${audience}' with auth-service at ${authAddr}`);
  const insecure = grpc.credentials.createInsecure();
  const authService = new auth.AuthService(authAddr, insecure);
  const whoami = new WhoAmIService(addr, insecure);
  const who = (token) => call(whoami, 'WhoAmI', {}, token);

  console.log('==> a user calls with its own access token');
  const email = `whoami-node-${randomUUID().slice(0, 12)}@example.com`;
  const password = 'correct horse battery';
  await call(authService, 'Register', { email, password });
  const login = await call(authService, 'Login', { email, password });
  const userToken = login.tokens.access_token;
  let answer = await who(userToken);
  check(answer.user_id === login.user_id && answer.kind === 'user', `user ${answer.user_id}, kind ${answer.kind}`);
  check(answer.actors.length === 0, 'no actors: the user presents its own token');

  console.log('==> a call without a token');
  const refusal = await who(undefined).then(() => undefined, (error) => error);
  check(refusal?.code === grpc.status.UNAUTHENTICATED, `UNAUTHENTICATED, reason ${refusal && reasonOf(refusal)}`);
  check(reasonOf(refusal) === 'CREDENTIAL_MISSING', 'reason CREDENTIAL_MISSING');

  const { AUTH_ADMIN_EMAIL: adminEmail, AUTH_ADMIN_PASSWORD: adminPassword } = process.env;
  if (adminEmail && adminPassword) {
    console.log("==> a service calls with its own token, then with the user's token it exchanged");
    const adminLogin = await call(authService, 'Login', { email: adminEmail, password: adminPassword, management: true });
    const admin = new auth.AdminService(authAddr, insecure);
    const name = `gateway-node-${randomUUID().slice(0, 8)}`;
    const created = await call(
      admin,
      'CreateServiceClient',
      { name, audiences: [audience], exchange_audiences: [audience] },
      adminLogin.tokens.access_token,
    );
    const issued = await call(authService, 'IssueServiceToken', { client_id: name, client_secret: created.client_secret, audience });
    answer = await who(issued.access_token);
    check(answer.user_id === name && answer.kind === 'service', `${answer.user_id}, kind ${answer.kind}`);
    const exchanged = await call(authService, 'ExchangeToken', { subject_token: userToken, audience }, issued.access_token);
    answer = await who(exchanged.access_token);
    check(answer.user_id === login.user_id && answer.kind === 'user', `user ${answer.user_id}, kind user`);
    check(answer.actors.length === 1 && answer.actors[0] === name, `actors [${answer.actors}]: it came through ${name}`);
    admin.close();
  } else {
    console.log('==> (service principals skipped: set AUTH_ADMIN_EMAIL and AUTH_ADMIN_PASSWORD)');
  }

  console.log('==> the user logs out; the service refuses the token once the feed tells it');
  await call(authService, 'Logout', { token: login.tokens.refresh_token });
  const started = performance.now();
  let reason;
  while (reason === undefined && performance.now() - started < 5000) {
    reason = await who(userToken).then(
      () => new Promise((resolve) => setTimeout(() => resolve(undefined), 1)),
      (error) => reasonOf(error) ?? 'none',
    );
  }
  check(reason === 'SESSION_REVOKED', `reason ${reason}, ${(performance.now() - started).toFixed(1)} ms after Logout returned`);

  whoami.close();
  authService.close();
  verifier.close();
  server.forceShutdown();
  console.log('all steps passed');
}

main().catch((error) => {
  console.error(error.message ?? error);
  process.exit(1);
});

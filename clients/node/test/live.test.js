// The live scenario of conformance/scenario.json against a real auth-service (AUTH_ADDR), the
// feed cut with a TCP proxy the test controls; and the server wrapper and RemoteVerifier on it.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import grpc from '@grpc/grpc-js';

import { AUTH_UNAVAILABLE, LocalVerifier, RemoteVerifier, SESSION_REVOKED, authenticate, reasonOf } from '../index.js';
import { Account, CuttableProxy, SCENARIO, authAddr, reason, waitFor } from './helpers.js';

const addr = authAddr();
const live = { skip: addr ? false : 'AUTH_ADDR is not set (run clients/run.sh)' };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('the live scenario: revoke, cut the feed, fail closed, recover', live, async () => {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  const proxy = await CuttableProxy.start(host, port);
  const account = await Account.create(addr);
  const [a, b, c] = [await account.login(), await account.login(), await account.login()];
  const verifier = await LocalVerifier.connect(proxy.addr, { audience: SCENARIO.audience, maxFeedOutageMs: SCENARIO.max_feed_outage_ms });
  try {
    const principal = await verifier.verify(a);
    assert.ok(principal.userId && principal.sessionId);

    await account.logout(a);
    const took = await waitFor(async () => (await reason(verifier, a)) === SESSION_REVOKED, SCENARIO.refusal_within_ms);
    console.log(`revocation refused after ${took.toFixed(1)} ms`);
    assert.equal(await reason(verifier, b), 'OK');

    const cutAt = performance.now();
    proxy.cut();
    await account.logout(c);
    await sleep(SCENARIO.accepted_until_ms - (performance.now() - cutAt));
    assert.equal(await reason(verifier, b), 'OK', 'failed closed before the outage bound');
    await waitFor(async () => (await reason(verifier, b)) === AUTH_UNAVAILABLE, SCENARIO.max_feed_outage_ms + 1000);
    assert.ok(performance.now() - cutAt > SCENARIO.max_feed_outage_ms);
    assert.equal(await reason(verifier, c), AUTH_UNAVAILABLE);

    proxy.restore();
    await waitFor(async () => verifier.feedIsLive(), SCENARIO.recovery_within_ms);
    assert.equal(await reason(verifier, b), 'OK');
    // Revoked while the feed was cut: resumed from its cursor, the verifier missed nothing.
    assert.equal(await reason(verifier, c), SESSION_REVOKED);
  } finally {
    verifier.close();
    proxy.close();
    account.close();
  }
});

/** A server with one method, `test.Echo/Who`, answering the caller's user id. */
async function whoAmIServer(verifier, options) {
  const service = {
    Who: {
      path: '/test.Echo/Who',
      requestStream: false,
      responseStream: false,
      requestSerialize: (b) => b,
      requestDeserialize: (b) => b,
      responseSerialize: (b) => b,
      responseDeserialize: (b) => b,
    },
  };
  const server = new grpc.Server();
  server.addService(service, authenticate(service, { Who: (call, callback) => callback(null, Buffer.from(call.principal.userId)) }, verifier, options));
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  const Client = grpc.makeGenericClientConstructor(service, 'Echo');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const who = (token) =>
    new Promise((resolve, reject) => {
      const metadata = new grpc.Metadata();
      if (token) metadata.set('authorization', `Bearer ${token}`);
      client.Who(Buffer.alloc(0), metadata, { deadline: Date.now() + 5000 }, (error, response) => (error ? reject(error) : resolve(response.toString())));
    });
  return { server, client, who };
}

for (const kind of ['local', 'remote']) {
  test(`the server wrapper hands the principal to the handler and refuses with the reason (${kind})`, live, async () => {
    const account = await Account.create(addr);
    const token = await account.login();
    const verifier = kind === 'local' ? await LocalVerifier.connect(addr, { audience: 'api' }) : new RemoteVerifier(addr);
    const { server, client, who } = await whoAmIServer(verifier);
    try {
      assert.equal(await who(token), (await verifier.verify(token)).userId);
      for (const [sent, expected] of [[undefined, 'CREDENTIAL_MISSING'], ['not-a-token', 'TOKEN_INVALID']]) {
        const refused = await who(sent).then(() => assert.fail('accepted'), (error) => error);
        assert.equal(refused.code, grpc.status.UNAUTHENTICATED);
        assert.equal(reasonOf(refused), expected);
      }
      await account.logout(token);
      if (kind === 'local') await waitFor(async () => (await reason(verifier, token)) === SESSION_REVOKED, 2000);
      const refused = await who(token).then(() => assert.fail('accepted'), (error) => error);
      assert.equal(reasonOf(refused), SESSION_REVOKED);
    } finally {
      client.close();
      server.forceShutdown();
      verifier.close();
      account.close();
    }
  });
}

test('a required role the caller lacks is PERMISSION_DENIED', live, async () => {
  const account = await Account.create(addr);
  const token = await account.login();
  const verifier = await LocalVerifier.connect(addr, { audience: 'api' });
  const { server, client, who } = await whoAmIServer(verifier, { requireRole: 'billing' });
  try {
    const refused = await who(token).then(() => assert.fail('accepted'), (error) => error);
    assert.equal(refused.code, grpc.status.PERMISSION_DENIED);
    assert.equal(reasonOf(refused), 'PERMISSION_DENIED');
  } finally {
    client.close();
    server.forceShutdown();
    verifier.close();
    account.close();
  }
});

test('a local verifier that cannot reach the auth service refuses to start', async () => {
  await assert.rejects(LocalVerifier.connect('127.0.0.1:1', { audience: 'api', connectTimeoutMs: 1000 }), { reason: AUTH_UNAVAILABLE });
});

test('a remote verifier that cannot reach the auth service fails closed', async () => {
  const verifier = new RemoteVerifier('127.0.0.1:1', { timeoutMs: 1000 });
  await assert.rejects(verifier.verify('a.b.c'), { reason: AUTH_UNAVAILABLE });
  verifier.close();
});

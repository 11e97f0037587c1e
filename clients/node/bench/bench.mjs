// The Node verifier's numbers for BENCHMARKS.md (run by clients/bench/run.sh); the same three
// measurements as bench.py: seen (cache hit), first sight (cache off: header, Ed25519 signature,
// claims), and revocation -> refusal by the method of `loadgen propagation` (verifier fed by
// replica A through a TCP proxy, Logout on replica B, checked after every feed event). Prints
// one JSON object. Settings: AUTH_A, AUTH_B (host:port), BENCH_COUNT (revocations, 300).
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

import grpc from '@grpc/grpc-js';

import { LocalVerifier, SESSION_REVOKED, VerifyError, authV1 } from '../index.js';
import { CuttableProxy } from '../test/helpers.js';

const PASSWORD = 'correct horse battery staple';
const [a, b] = [process.env.AUTH_A, process.env.AUTH_B];
const count = Number(process.env.BENCH_COUNT ?? 300);

function quantiles(samples, scale) {
  samples.sort((x, y) => x - y);
  const at = (q) => samples[Math.min(Math.max(Math.ceil(q * samples.length), 1), samples.length) - 1] * scale;
  return { count: samples.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: samples.at(-1) * scale };
}

async function timed(verifier, token, n) {
  const samples = [];
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    await verifier.verify(token);
    samples.push(Number(process.hrtime.bigint() - start));
  }
  return samples;
}

const call = (client, method, request) =>
  new Promise((resolve, reject) =>
    client[method](request, { deadline: Date.now() + 10_000 }, (error, response) => (error ? reject(error) : resolve(response))),
  );

const proxy = await CuttableProxy.start(a.slice(0, a.lastIndexOf(':')), Number(a.slice(a.lastIndexOf(':') + 1)));
const authB = new (authV1().AuthService)(b, grpc.credentials.createInsecure());
const email = `bench-node-${randomUUID()}@example.com`;
await call(authB, 'Register', { email, password: PASSWORD });
const login = async () => (await call(authB, 'Login', { email, password: PASSWORD, kind: 'CREDENTIAL_KIND_TOKENS' })).tokens.access_token;
const verifier = await LocalVerifier.connect(proxy.addr, { audience: 'api', feedSilenceLimitMs: 1000 });
const uncached = await LocalVerifier.connect(proxy.addr, { audience: 'api', verifiedCacheCapacity: 0 });
let token = await login();
await timed(verifier, token, 2000); // warm-up
await timed(uncached, token, 200);
const seen = await timed(verifier, token, 50_000);
const first = await timed(uncached, token, 5_000);
uncached.close();

const revocations = [];
for (let i = 0; i < count; i++) {
  token = await login();
  await verifier.verify(token);
  const started = process.hrtime.bigint();
  const answered = call(authB, 'Logout', { token });
  for (;;) {
    const next = verifier.nextFeedEvent();
    try {
      await verifier.verify(token);
    } catch (error) {
      if (!(error instanceof VerifyError) || error.reason !== SESSION_REVOKED) throw error;
      revocations.push(Number(process.hrtime.bigint() - started));
      break;
    }
    await next;
  }
  await answered;
}
verifier.close();
proxy.close();
authB.close();
const require = createRequire(import.meta.url);
console.log(JSON.stringify({
  language: 'Node',
  runtime: `Node ${process.versions.node}, @grpc/grpc-js ${require('@grpc/grpc-js/package.json').version}`,
  seen_us: quantiles(seen, 1e-3),
  first_sight_us: quantiles(first, 1e-3),
  revocation_ms: quantiles(revocations, 1e-6),
}));

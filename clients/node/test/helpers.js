// The shared conformance files, the live auth-service (AUTH_ADDR), and a TCP proxy the live
// test cuts: the feed going away as one verifier sees it, while the service keeps running.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';

import { VerifyError, authV1 } from '../index.js';

const CONFORMANCE = process.env.CONFORMANCE_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '../../../conformance');
export const load = (name) => JSON.parse(readFileSync(join(CONFORMANCE, name), 'utf8'));
export const SCENARIO = load('scenario.json');

/** host:port of a running auth-service, or undefined (the live tests skip; under CI they fail). */
export function authAddr() {
  const addr = process.env.AUTH_ADDR;
  if (!addr && process.env.CI) throw new Error('AUTH_ADDR is not set (run clients/run.sh)');
  return addr;
}

export async function reason(verifier, token) {
  try {
    await verifier.verify(token);
    return 'OK';
  } catch (error) {
    if (error instanceof VerifyError) return error.reason;
    throw error;
  }
}

/** Polls `condition` (async) until true; rejects after `withinMs`. Resolves to the ms taken. */
export async function waitFor(condition, withinMs) {
  const start = performance.now();
  while (!(await condition())) {
    if (performance.now() - start > withinMs) throw new Error(`not within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return performance.now() - start;
}

const call = (client, method, request) =>
  new Promise((resolve, reject) =>
    client[method](request, { deadline: Date.now() + 10_000 }, (error, response) => (error ? reject(error) : resolve(response))),
  );

/** A fresh user of the real auth-service: its logins and logouts. */
export class Account {
  static async create(addr) {
    const account = new Account(addr);
    await call(account.auth, 'Register', { email: account.email, password: SCENARIO.password });
    return account;
  }

  constructor(addr) {
    this.auth = new (authV1().AuthService)(addr, grpc.credentials.createInsecure());
    this.email = `node-${randomUUID()}@example.com`;
  }

  async login() {
    const response = await call(this.auth, 'Login', { email: this.email, password: SCENARIO.password, kind: 'CREDENTIAL_KIND_TOKENS' });
    return response.tokens.access_token;
  }

  logout(token) {
    return call(this.auth, 'Logout', { token });
  }

  close() {
    this.auth.close();
  }
}

export class CuttableProxy {
  static async start(upstreamHost, upstreamPort) {
    const proxy = new CuttableProxy(upstreamHost, upstreamPort);
    await new Promise((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.addr = `127.0.0.1:${proxy.server.address().port}`;
    return proxy;
  }

  constructor(host, port) {
    this.open = true;
    this.sockets = new Set();
    this.server = net.createServer((client) => {
      if (!this.open) return client.destroy(); // the client sees the connection refused
      const upstream = net.connect(port, host);
      for (const [from, to] of [[client, upstream], [upstream, client]]) {
        this.sockets.add(from);
        from.pipe(to);
        from.on('error', () => to.destroy());
        from.on('close', () => { this.sockets.delete(from); to.destroy(); });
      }
    });
  }

  cut() {
    this.open = false;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  restore() {
    this.open = true;
  }

  close() {
    this.cut();
    this.server.close();
  }
}

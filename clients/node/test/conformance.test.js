// The conformance vectors (conformance/vectors/), which the Rust and Python verifiers run too.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { VerifierState } from '../src/state.js';
import { load, reason } from './helpers.js';

const TOKENS = load('vectors/tokens.json');
const SEQUENCES = load('vectors/sequences.json');

describe('token vectors', () => {
  for (const vector of TOKENS.cases) {
    test(vector.name, async () => {
      const state = new VerifierState({ audience: TOKENS.audience, issuer: TOKENS.issuer, leeway: TOKENS.leeway_seconds });
      state.replaceKeys(JSON.stringify(TOKENS.jwks));
      const checker = { verify: (token) => state.check(token, TOKENS.now) };
      assert.equal(await reason(checker, vector.token), vector.expect);
      if (vector.principal) {
        const principal = await checker.verify(vector.token);
        assert.equal(principal.userId, vector.principal.user_id);
        assert.equal(principal.sessionId, vector.principal.session_id);
        assert.deepEqual([...principal.roles], vector.principal.roles);
        assert.equal(principal.kind, vector.principal.kind);
        assert.deepEqual([...principal.actors], vector.principal.actors);
      }
      // A second check of the same text (from the verified-token cache) gives the same verdict.
      assert.equal(await reason(checker, vector.token), vector.expect);
    });
  }
});

function apply(state, step) {
  if (step.keys_changed) state.replaceKeys(JSON.stringify(step.keys_changed));
  else if (step.signing_key_revoked) state.revokeKey(step.signing_key_revoked);
  else if (step.session_revoked) state.revokeSession(step.session_revoked.session_id, step.session_revoked.tokens_live_until);
  else if (step.user_sessions_revoked) state.revokeUser(step.user_sessions_revoked.user_id, step.user_sessions_revoked.revoked_before);
  else throw new Error(`unknown step ${JSON.stringify(step)}`);
}

describe('feed sequences', () => {
  for (const sequence of SEQUENCES.sequences) {
    test(sequence.name, async () => {
      const state = new VerifierState({ audience: SEQUENCES.audience, issuer: SEQUENCES.issuer });
      let published = JSON.stringify(sequence.jwks);
      state.replaceKeys(published);
      for (const step of sequence.snapshot ?? []) apply(state, step);
      const checker = { verify: (token) => state.check(token, Math.floor(Date.now() / 1000), async () => state.replaceKeys(published)) };
      for (const [index, step] of sequence.steps.entries()) {
        if (step.publish) published = JSON.stringify(step.publish);
        else if (step.verify) assert.equal(await reason(checker, step.verify), step.expect, `step ${index}`);
        else {
          if (step.keys_changed) published = JSON.stringify(step.keys_changed);
          apply(state, step);
        }
      }
    });
  }
});

/**
 * The pure hom3/homN computations (src/core/chain.ts, SPEC.md §5.4) for every scheme, without
 * processes: setup through k blinders, requests through the chain, the manager's answer and the
 * appliance's finish give exactly S_i = M ⊛ Q_i; what the blinders and the manager see is blinded.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { equalBytes } from '../src/core/bytes.ts';
import { chainMode } from '../src/core/chain.ts';
import { type ItemRef, shareSeed } from '../src/core/protocol.ts';
import { getScheme } from '../src/core/schemes/index.ts';
import type { SchemeId } from '../src/core/schemes/scheme.ts';
import { nodeGeneratePrime } from '../src/platform/node-primes.ts';

const RUNS: Record<SchemeId, number> = { 'ec-elgamal': 25, paillier: 2, rsa: 3, gm: 2 };

for (const id of ['ec-elgamal', 'paillier', 'rsa', 'gm'] as const) {
  test(`chain round trip, ${id}: S_i = M ⊛ Q_i through 1 to 3 blinders`, () => {
    const s = getScheme(id);
    const { publicKey: pk, secretKey: sk } = s.generateKeyPair({
      generatePrime: nodeGeneratePrime,
    });
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 1, max: 3 }),
        (seed, k) => {
          const m = s.plaintextFromSeed(pk, seed);
          const es = Array.from({ length: k }, () => s.sampleUnknown(pk));
          // Setup: the blinders only see Enc(M ⊕ T ⊕ …), never Enc(M).
          const { ciphertext: c0, t } = chainMode.setupRequest(s, pk, s.encrypt(pk, m));
          assert.ok(!s.equalPlaintext(s.decrypt(sk, c0), m), 'the setup ciphertext is T-blinded');
          let c = c0;
          for (const e of es) c = chainMode.blinderSetup(s, pk, c, e);
          const concealed = chainMode.setupFinish(s, pk, c, t);
          // C_A = Enc(M ⊕ R).
          let r = s.identity(pk);
          for (const e of es) r = s.op(pk, r, s.decrypt(sk, e));
          assert.ok(s.equalPlaintext(s.decrypt(sk, concealed), s.op(pk, m, r)));

          const shareKey = new Uint8Array(randomBytes(32));
          const ref: ItemRef = {
            keyring: 'k',
            itemId: new Uint8Array(randomBytes(16)),
            masterVersion: 1,
            managerVersion: 1,
            entropy: new Uint8Array(16),
          };
          const q = s.shareFromSeed(pk, shareSeed(shareKey, ref));
          const expected = s.secretBytes(pk, s.applyShare(pk, m, q));
          const seen: unknown[] = [];
          for (let i = 0; i < 2; i++) {
            const req = chainMode.request(s, pk, concealed);
            let x = req.ciphertext;
            for (const e of es) x = chainMode.blinderForward(s, pk, x, e);
            const atManager = s.decrypt(sk, x);
            assert.ok(!s.equalPlaintext(atManager, m), 'the manager sees M ⊕ T, not M');
            seen.push(atManager);
            const answer = chainMode.answer(s, sk, pk, x, req.aux, shareKey, ref);
            assert.ok(equalBytes(chainMode.finish(s, pk, req.blind, answer), expected));
          }
          assert.ok(!s.equalPlaintext(seen[0], seen[1]), 'fresh T per request (T4)');
        },
      ),
      { numRuns: RUNS[id] },
    );
  });
}

test('chain answer: aux is required for ec-elgamal and refused otherwise', () => {
  const s = getScheme('ec-elgamal');
  const { publicKey: pk, secretKey: sk } = s.generateKeyPair();
  const ref: ItemRef = {
    keyring: 'k',
    itemId: new Uint8Array(16),
    masterVersion: 1,
    managerVersion: 1,
    entropy: new Uint8Array(0),
  };
  const c = s.encrypt(pk, s.randomPlaintext(pk));
  assert.throws(() => chainMode.answer(s, sk, pk, c, undefined, new Uint8Array(32), ref), {
    code: 'ERR_INVALID_ARGUMENT',
  });
  assert.throws(() => chainMode.answer(s, sk, pk, c, new Uint8Array(32), new Uint8Array(32), ref), {
    code: 'ERR_IDENTITY',
  });
  assert.throws(() => chainMode.finish(s, pk, { t: s.randomPlaintext(pk) }, new Uint8Array(32)), {
    code: 'ERR_DECODE',
  });
});

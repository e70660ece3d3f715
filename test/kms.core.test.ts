/**
 * The pure KMS parts (src/core/kms.ts, SPEC.md §5.8, §11.3, §11.4): the canonical context
 * encoding (order-free, injective, strict decoding), the ciphertext blob (round trip and every
 * refusal), and the client-blinded algebra: manager → appliance → client gives exactly the KEK of
 * the item secret, and nobody on the way holds it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { concat, equalBytes } from '../src/core/bytes.ts';
import { encodePoint, mul, randomPoint, randomScalar, scalarInvert } from '../src/core/group.ts';
import {
  blobItemRef,
  clientKeyFromCiphertext,
  clientKeyPair,
  contextHash,
  decodeBlob,
  decodeClientKey,
  decodeContext,
  encodeBlobPrefix,
  encodeContext,
  encryptToClient,
  kmsEntropy,
  unblindForClient,
} from '../src/core/kms.ts';
import { itemKek } from '../src/core/protocol.ts';

const ctxArb = fc.dictionary(
  fc.string({ minLength: 1, maxLength: 12 }),
  fc.string({ maxLength: 20 }),
  { maxKeys: 16 },
);

describe('encryption context', () => {
  test('canonical: independent of insertion order; decode inverts encode', () => {
    fc.assert(
      fc.property(ctxArb, (ctx) => {
        const reversed = Object.fromEntries(Object.entries(ctx).reverse());
        assert.deepEqual(encodeContext(reversed), encodeContext(ctx));
        assert.deepEqual(decodeContext(encodeContext(ctx)), { ...ctx });
      }),
      { numRuns: 200 },
    );
  });

  test('different contexts, different hashes', () => {
    fc.assert(
      fc.property(ctxArb, ctxArb, (a, b) => {
        const same =
          JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
        assert.equal(equalBytes(contextHash(a), contextHash(b)), same);
      }),
      { numRuns: 200 },
    );
    assert.notDeepEqual(contextHash({ a: 'bc' }), contextHash({ ab: 'c' }));
    assert.notDeepEqual(contextHash({}), contextHash({ a: '' }));
    // "__proto__" is a key like any other (found by the property above).
    const proto = JSON.parse('{"__proto__": "x"}') as Record<string, string>;
    assert.deepEqual(Object.keys(decodeContext(encodeContext(proto))), ['__proto__']);
    assert.notDeepEqual(contextHash(proto), contextHash({}));
  });

  test('limits and strict decoding', () => {
    assert.throws(() => encodeContext({ '': 'x' }), { code: 'ERR_INVALID_ARGUMENT' });
    assert.throws(() => encodeContext({ k: 'v'.repeat(1025) }), { code: 'ERR_INVALID_ARGUMENT' });
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, '']));
    assert.throws(() => encodeContext(many), { code: 'ERR_INVALID_ARGUMENT' });
    const ok = encodeContext({ a: '1', b: '2' });
    assert.throws(() => decodeContext(concat(ok, Uint8Array.of(0))), { code: 'ERR_DECODE' });
    assert.throws(() => decodeContext(ok.subarray(0, ok.length - 1)), { code: 'ERR_DECODE' });
    // pairs out of order
    const swapped = concat(Uint8Array.of(0, 2), ok.subarray(8), ok.subarray(2, 8));
    assert.throws(() => decodeContext(swapped), { code: 'ERR_DECODE' });
  });
});

describe('KMS ciphertext blob', () => {
  const fields = {
    kind: 'data-key' as const,
    scheme: 0x01,
    mode: 0x03,
    keyring: 'orders',
    masterVersion: 2,
    managerVersion: 3,
    itemId: new Uint8Array(16).fill(7),
    nonce: new Uint8Array(16).fill(9),
    ticket: new Uint8Array(105).fill(1),
  };

  test('round trip; the item entropy is nonce ‖ contextHash', () => {
    const prefix = encodeBlobPrefix(fields);
    const blob = concat(prefix, new Uint8Array(12 + 32 + 16));
    const d = decodeBlob(blob);
    assert.equal(d.kind, 'data-key');
    assert.equal(d.keyring, 'orders');
    assert.deepEqual(d.prefix, prefix);
    assert.equal(d.sealed.length, 60);
    const ref = blobItemRef(d, contextHash({ a: 'b' }));
    assert.deepEqual(ref.entropy, kmsEntropy(fields.nonce, contextHash({ a: 'b' })));
    const cb = decodeBlob(encodeBlobPrefix({ ...fields, kind: 'client-blinded' }));
    assert.equal(cb.kind, 'client-blinded');
  });

  test('refusals', () => {
    const prefix = encodeBlobPrefix(fields);
    const full = concat(prefix, new Uint8Array(60));
    const bad = (b: Uint8Array, code: string) => assert.throws(() => decodeBlob(b), { code });
    bad(concat(Uint8Array.of(0x58), full.subarray(1)), 'ERR_DECODE'); // magic
    bad(concat(full.subarray(0, 3), Uint8Array.of(2), full.subarray(4)), 'ERR_UNSUPPORTED_VERSION');
    bad(concat(full.subarray(0, 4), Uint8Array.of(9), full.subarray(5)), 'ERR_DECODE'); // kind
    bad(prefix, 'ERR_DECODE'); // data-key without payload
    bad(
      concat(encodeBlobPrefix({ ...fields, kind: 'client-blinded' }), Uint8Array.of(1)),
      'ERR_DECODE',
    );
    bad(full.subarray(0, 20), 'ERR_DECODE'); // truncated
    bad(new Uint8Array(9000), 'ERR_DECODE'); // too long
    const upper = Uint8Array.from(full);
    upper[9] = 0x4f; // 'O' in the keyring: outside the charset
    bad(upper, 'ERR_DECODE');
  });
});

describe('client-blinded algebra (SPEC.md §5.8)', () => {
  test('Enc_U(Y) at the manager, unblinded by ρ on the ciphertext, opens to KEK(ρ⁻¹·Y) at the client', () => {
    for (let i = 0; i < 20; i++) {
      const S = randomPoint(); // the item secret q_i·M
      const rho = randomScalar();
      const Y = mul(rho, S); // what the manager computes: q_i·ρ·M
      const { u, U } = clientKeyPair();
      const Up = decodeClientKey(U);
      const answer = encryptToClient(Y, Up);
      const forClient = unblindForClient(answer, rho, Up);
      assert.equal(forClient.length, 64);
      assert.ok(!equalBytes(forClient.subarray(32), encodePoint(S)), 'the appliance never holds S');
      const ref = {
        keyring: 'k',
        itemId: new Uint8Array(16).fill(i),
        masterVersion: 1,
        managerVersion: 1,
        entropy: kmsEntropy(new Uint8Array(16), contextHash({})),
      };
      assert.deepEqual(clientKeyFromCiphertext(forClient, u, ref), itemKek(encodePoint(S), ref));
      // A wrong u opens something else.
      const { u: u2 } = clientKeyPair();
      assert.notDeepEqual(
        clientKeyFromCiphertext(forClient, u2, ref),
        itemKek(encodePoint(S), ref),
      );
      // Re-randomized: two unblindings of the same answer differ.
      assert.ok(!equalBytes(unblindForClient(answer, rho, Up), forClient));
      assert.ok(equalBytes(mul(scalarInvert(rho), Y), S));
    }
  });

  test('client keys: the identity and non-canonical encodings are refused', () => {
    assert.throws(() => decodeClientKey(new Uint8Array(32)), { code: 'ERR_IDENTITY' });
    assert.throws(() => decodeClientKey(new Uint8Array(32).fill(0xff)), { code: 'ERR_DECODE' });
    assert.throws(() => decodeClientKey(new Uint8Array(31)), { code: 'ERR_DECODE' });
  });
});

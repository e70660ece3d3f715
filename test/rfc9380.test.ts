/**
 * RFC 9380 expand_message_xmd (SHA-512) and the ristretto255 hashes of src/core/h2c.ts:
 *   - RFC 9380 Appendix K.3 vectors (DST "QUUX-V01-CS02-with-expander-SHA512-256"), all of them;
 *   - RFC 9497 Appendix A.1.1 (OPRF(ristretto255, SHA-512), mode 0x00): BlindedElement =
 *     Blind · HashToGroup(Input), EvaluationElement = skSm · BlindedElement, and
 *     skSm = DeriveKeyPair(Seed, KeyInfo), which is one HashToScalar call;
 *   - a cross-check against @noble/curves on random inputs.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { expand_message_xmd } from '@noble/curves/abstract/hash-to-curve.js';
import { ristretto255_hasher } from '@noble/curves/ed25519.js';
import { sha512 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { concat, fromHex, toHex, u8, u16be, utf8 } from '../src/core/bytes.ts';
import { isBlindfoldError } from '../src/core/errors.ts';
import { decodePoint, decodeScalar, mul, scalarToBigInt } from '../src/core/group.ts';
import {
  blindfoldDst,
  DST_MAX_LEN,
  expandMessageXmd,
  hashToGroup,
  hashToScalar,
  XMD_MAX_LEN,
} from '../src/core/h2c.ts';

const K3_DST = 'QUUX-V01-CS02-with-expander-SHA512-256';
const Q128 = `q128_${'q'.repeat(128)}`;
const A512 = `a512_${'a'.repeat(512)}`;

/** RFC 9380 K.3: [msg, len_in_bytes, uniform_bytes]. */
const K3: [string, number, string][] = [
  ['', 0x20, '6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba'],
  ['abc', 0x20, '0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc'],
  ['abcdef0123456789', 0x20, '087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58'],
  [Q128, 0x20, '7336234ee9983902440f6bc35b348352013becd88938d2afec44311caf8356b3'],
  [A512, 0x20, '57b5f7e766d5be68a6bfe1768e3c2b7f1228b3e4b3134956dd73a59b954c66f4'],
  [
    '',
    0x80,
    '41b037d1734a5f8df225dd8c7de38f851efdb45c372887be655212d07251b921b052b62eaed99b46f72f2ef4cc96bfaf254ebbbec091e1a3b9e4fb5e5b619d2e0c5414800a1d882b62bb5cd1778f098b8eb6cb399d5d9d18f5d5842cf5d13d7eb00a7cff859b605da678b318bd0e65ebff70bec88c753b159a805d2c89c55961',
  ],
  [
    'abc',
    0x80,
    '7f1dddd13c08b543f2e2037b14cefb255b44c83cc397c1786d975653e36a6b11bdd7732d8b38adb4a0edc26a0cef4bb45217135456e58fbca1703cd6032cb1347ee720b87972d63fbf232587043ed2901bce7f22610c0419751c065922b488431851041310ad659e4b23520e1772ab29dcdeb2002222a363f0c2b1c972b3efe1',
  ],
  [
    'abcdef0123456789',
    0x80,
    '3f721f208e6199fe903545abc26c837ce59ac6fa45733f1baaf0222f8b7acb0424814fcb5eecf6c1d38f06e9d0a6ccfbf85ae612ab8735dfdf9ce84c372a77c8f9e1c1e952c3a61b7567dd0693016af51d2745822663d0c2367e3f4f0bed827feecc2aaf98c949b5ed0d35c3f1023d64ad1407924288d366ea159f46287e61ac',
  ],
  [
    Q128,
    0x80,
    'b799b045a58c8d2b4334cf54b78260b45eec544f9f2fb5bd12fb603eaee70db7317bf807c406e26373922b7b8920fa29142703dd52bdf280084fb7ef69da78afdf80b3586395b433dc66cde048a258e476a561e9deba7060af40adf30c64249ca7ddea79806ee5beb9a1422949471d267b21bc88e688e4014087a0b592b695ed',
  ],
  [
    A512,
    0x80,
    '05b0bfef265dcee87654372777b7c44177e2ae4c13a27f103340d9cd11c86cb2426ffcad5bd964080c2aee97f03be1ca18e30a1f14e27bc11ebbd650f305269cc9fb1db08bf90bfc79b42a952b46daf810359e7bc36452684784a64952c343c52e5124cd1f71d474d5197fefc571a92929c9084ffe1112cf5eea5192ebff330b',
  ],
];

describe('RFC 9380 K.3: expand_message_xmd(SHA-512)', () => {
  test('the messages have the lengths the RFC names them by', () => {
    assert.equal(Q128.length, 133);
    assert.equal(A512.length, 517);
    assert.equal(K3.length, 10);
  });

  for (const [msg, len, expected] of K3) {
    test(`msg ${JSON.stringify(msg.slice(0, 16))}${msg.length > 16 ? '…' : ''}, len 0x${len.toString(16)}`, () => {
      assert.equal(toHex(expandMessageXmd(utf8(msg), K3_DST, len)), expected);
      // The DST may be given as bytes too.
      assert.equal(toHex(expandMessageXmd(utf8(msg), utf8(K3_DST), len)), expected);
    });
  }
});

describe('expand_message_xmd limits (RFC 9380 §5.3.1 step 2, §3.1)', () => {
  const bad = (f: () => unknown) =>
    assert.throws(f, (e) => isBlindfoldError(e, 'ERR_INVALID_ARGUMENT'));

  test('len_in_bytes must be 1 .. 255·64', () => {
    assert.equal(expandMessageXmd(utf8('x'), K3_DST, XMD_MAX_LEN).length, 255 * 64);
    assert.equal(expandMessageXmd(utf8('x'), K3_DST, 1).length, 1);
    bad(() => expandMessageXmd(utf8('x'), K3_DST, XMD_MAX_LEN + 1));
    bad(() => expandMessageXmd(utf8('x'), K3_DST, 0));
    bad(() => expandMessageXmd(utf8('x'), K3_DST, 1.5));
  });

  test('the DST must be 1 .. 255 bytes', () => {
    assert.equal(expandMessageXmd(utf8('x'), 'D'.repeat(DST_MAX_LEN), 32).length, 32);
    bad(() => expandMessageXmd(utf8('x'), 'D'.repeat(DST_MAX_LEN + 1), 32));
    bad(() => expandMessageXmd(utf8('x'), '', 32));
    bad(() => hashToGroup(utf8('x'), new Uint8Array(256)));
  });

  test('the longest output and a 255-byte DST agree with @noble/curves', () => {
    const dst = 'D'.repeat(255);
    assert.deepEqual(
      expandMessageXmd(utf8('msg'), dst, XMD_MAX_LEN),
      expand_message_xmd(utf8('msg'), dst, XMD_MAX_LEN, sha512),
    );
  });
});

/** RFC 9497 A.1.1, OPRF(ristretto255, SHA-512), mode 0x00. */
const CONTEXT = concat(utf8('OPRFV1-'), u8(0), utf8('-ristretto255-SHA512'));
const SEED = fromHex('a3'.repeat(32));
const KEY_INFO = fromHex('74657374206b6579');
const SK_SM = '5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e';
const BLIND = '64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706';
const OPRF: { input: string; blinded: string; evaluated: string }[] = [
  {
    input: '00',
    blinded: '609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c',
    evaluated: '7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e',
  },
  {
    input: '5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a',
    blinded: 'da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418',
    evaluated: 'b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25',
  },
];

describe('RFC 9497 A.1.1: HashToGroup and HashToScalar of ristretto255-SHA512', () => {
  test('DeriveKeyPair(Seed, KeyInfo) = HashToScalar(Seed ‖ lp16(info) ‖ 0x00) = skSm', () => {
    const deriveInput = concat(SEED, u16be(KEY_INFO.length), KEY_INFO, u8(0));
    const sk = hashToScalar(deriveInput, concat(utf8('DeriveKeyPair'), CONTEXT));
    assert.equal(toHex(sk), SK_SM);
  });

  for (const v of OPRF) {
    test(`Blind · HashToGroup(${v.input}) = BlindedElement, skSm · it = EvaluationElement`, () => {
      const h = hashToGroup(fromHex(v.input), concat(utf8('HashToGroup-'), CONTEXT));
      const blinded = mul(decodeScalar(fromHex(BLIND)), h);
      assert.equal(toHex(blinded), v.blinded);
      const evaluated = mul(decodeScalar(fromHex(SK_SM)), decodePoint(fromHex(v.blinded)));
      assert.equal(toHex(evaluated), v.evaluated);
    });
  }
});

describe('hashToGroup / hashToScalar against @noble/curves (random inputs)', () => {
  test('hashToGroup = ristretto255_hasher.hashToCurve, hashToScalar = .hashToScalar', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.string({ minLength: 1, maxLength: 60 }),
        (msg, label) => {
          const dst = blindfoldDst(label);
          assert.ok(toHex(dst).startsWith(toHex(utf8('blindfold/v1/'))));
          const ours = hashToGroup(msg, dst);
          const theirs = ristretto255_hasher.hashToCurve(msg, { DST: dst }).toBytes();
          assert.equal(toHex(ours), toHex(theirs));
          const s = hashToScalar(msg, dst);
          const ts = ristretto255_hasher.hashToScalar(msg, { DST: dst });
          assert.equal(scalarToBigInt(s), ts);
        },
      ),
      { numRuns: 150 },
    );
  });

  test('different DSTs separate: same message, different points', () => {
    const m = utf8('same message');
    assert.notEqual(
      toHex(hashToGroup(m, blindfoldDst('a'))),
      toHex(hashToGroup(m, blindfoldDst('b'))),
    );
  });
});

import assert from 'node:assert/strict';
import { createDecipheriv } from 'node:crypto';
import { describe, test } from 'node:test';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { nodeAesGcm } from '../src/appliance/stream.ts';
import { bigToBytes, concat, lp16, u32be, utf8 } from '../src/core/bytes.ts';
import { isBlindfoldError } from '../src/core/errors.ts';
import {
  CHUNK_SIZE,
  chunkCount,
  chunkNonce,
  chunkPlainLength,
  chunksForRange,
  ciphertextSize,
  decodeHeader,
  encodeHeader,
  HEADER_FIXED_SIZE,
  HEADER_MAX_SIZE,
  type HeaderFields,
  headerAad,
  openHeader,
  payloadKey,
  plainSizeFromCiphertext,
  SEALED_CHUNK_SIZE,
  sealHeader,
} from '../src/core/format.ts';

const code = (c: string) => (e: unknown) => isBlindfoldError(e) && e.code === c;

const fields: HeaderFields = {
  scheme: 1,
  mode: 2,
  keyring: 'prod.payments',
  masterVersion: 3,
  managerKeyVersion: 4,
  itemId: Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i),
  itemData: utf8('opaque protocol bytes'),
  ticket: new Uint8Array(113).fill(7),
  fileNonce: new Uint8Array(16).fill(0x5f),
};
const wrap = {
  wrapNonce: new Uint8Array(12).fill(0x33),
  wrappedDek: new Uint8Array(48).fill(0x44),
};

/** Rewrites the headerLength field (bytes 8..11). */
function setLength(h: Uint8Array, len: number): Uint8Array {
  const out = h.slice();
  out.set(u32be(len), 8);
  return out;
}

describe('header encoding', () => {
  test('layout: every field at its documented offset', () => {
    const h = encodeHeader(fields, wrap);
    const expected = concat(
      utf8('BLNDFLD'),
      Uint8Array.of(1),
      u32be(h.length),
      Uint8Array.of(1, 2),
      lp16(utf8('prod.payments')),
      u32be(3),
      u32be(4),
      fields.itemId,
      lp16(fields.itemData),
      lp16(fields.ticket),
      fields.fileNonce,
      wrap.wrapNonce,
      wrap.wrappedDek,
    );
    assert.deepEqual(h, expected);
    assert.equal(h.length, HEADER_FIXED_SIZE + 13 + fields.itemData.length + 113);
    assert.deepEqual(headerAad(fields, wrap.wrapNonce), h.subarray(0, h.length - 48));
  });

  test('round trip, also with payload bytes after the header', () => {
    const h = encodeHeader(fields, wrap);
    for (const input of [h, concat(h, new Uint8Array(1000).fill(9))]) {
      const d = decodeHeader(input);
      assert.deepEqual(d.fields, fields);
      assert.deepEqual(d.wrap, wrap);
      assert.equal(d.headerLength, h.length);
      assert.deepEqual(d.aad, h.subarray(0, h.length - 48));
    }
  });

  test('random fields round trip', () => {
    const arb = fc.record({
      scheme: fc.integer({ min: 0, max: 255 }),
      mode: fc.integer({ min: 0, max: 255 }),
      keyring: fc.stringMatching(/^[a-z0-9._-]{1,64}$/),
      masterVersion: fc.integer({ min: 0, max: 0xffffffff }),
      managerKeyVersion: fc.integer({ min: 0, max: 0xffffffff }),
      itemId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      itemData: fc.uint8Array({ maxLength: 300 }),
      ticket: fc.uint8Array({ maxLength: 300 }),
      fileNonce: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    });
    const arbWrap = fc.record({
      wrapNonce: fc.uint8Array({ minLength: 12, maxLength: 12 }),
      wrappedDek: fc.uint8Array({ minLength: 48, maxLength: 48 }),
    });
    fc.assert(
      fc.property(arb, arbWrap, (f, w) => {
        const d = decodeHeader(encodeHeader(f, w));
        // fast-check records have a null prototype; compare as plain objects
        assert.deepEqual(d.fields, { ...f });
        assert.deepEqual(d.wrap, { ...w });
      }),
      { numRuns: 200 },
    );
  });

  test('maximal header (64-char keyring, 65535-byte itemData and ticket) decodes', () => {
    const big = {
      ...fields,
      keyring: 'k'.repeat(64),
      itemData: new Uint8Array(0xffff),
      ticket: new Uint8Array(0xffff),
    };
    const h = encodeHeader(big, wrap);
    assert.equal(h.length, HEADER_MAX_SIZE);
    assert.equal(decodeHeader(h).headerLength, HEADER_MAX_SIZE);
  });

  test('encode rejects bad fields with ERR_INVALID_ARGUMENT', () => {
    const bad: Partial<HeaderFields>[] = [
      { scheme: 256 },
      { mode: -1 },
      { keyring: '' },
      { keyring: 'Upper' },
      { keyring: 'x'.repeat(65) },
      { keyring: 'é' },
      { masterVersion: 2 ** 32 },
      { managerKeyVersion: 0.5 },
      { itemId: new Uint8Array(17) },
      { itemData: new Uint8Array(0x10000) },
      { ticket: new Uint8Array(0x10000) },
      { fileNonce: new Uint8Array(15) },
    ];
    for (const b of bad) {
      assert.throws(
        () => encodeHeader({ ...fields, ...b }, wrap),
        code('ERR_INVALID_ARGUMENT'),
        JSON.stringify(Object.keys(b)),
      );
    }
    assert.throws(
      () => encodeHeader(fields, { ...wrap, wrapNonce: new Uint8Array(11) }),
      code('ERR_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => encodeHeader(fields, { ...wrap, wrappedDek: new Uint8Array(32) }),
      code('ERR_INVALID_ARGUMENT'),
    );
  });
});

describe('header decoding rejects malformed input', () => {
  const h = encodeHeader(fields, wrap);
  const kOff = 12 + 2; // keyring length prefix
  const itemDataOff = kOff + 2 + 13 + 4 + 4 + 16; // itemData length prefix
  const ticketOff = itemDataOff + 2 + fields.itemData.length;

  const cases: [string, Uint8Array, string][] = [
    ['empty', new Uint8Array(0), 'ERR_TRUNCATED'],
    ['shorter than the prefix', h.subarray(0, 11), 'ERR_TRUNCATED'],
    ['cut inside the header', h.subarray(0, h.length - 1), 'ERR_TRUNCATED'],
    ['bad magic', concat(utf8('BLNDFLX'), h.subarray(7)), 'ERR_DECODE'],
    ['age file', utf8('age-encryption.org/v1\n-> X25519 ...'), 'ERR_DECODE'],
    [
      'version 0',
      concat(h.subarray(0, 7), Uint8Array.of(0), h.subarray(8)),
      'ERR_UNSUPPORTED_VERSION',
    ],
    [
      'version 2',
      concat(h.subarray(0, 7), Uint8Array.of(2), h.subarray(8)),
      'ERR_UNSUPPORTED_VERSION',
    ],
    ['headerLength below minimum', setLength(h, HEADER_FIXED_SIZE), 'ERR_DECODE'],
    ['headerLength above maximum', setLength(h, HEADER_MAX_SIZE + 1), 'ERR_DECODE'],
    ['headerLength 2^32−1', setLength(h, 0xffffffff), 'ERR_DECODE'],
    ['headerLength one short (fields overrun it)', setLength(h, h.length - 1), 'ERR_DECODE'],
    [
      'trailing byte inside headerLength',
      setLength(concat(h, Uint8Array.of(0)), h.length + 1),
      'ERR_DECODE',
    ],
    [
      'keyring length 0',
      (() => {
        const b = h.slice();
        b.set([0, 0], kOff);
        return b;
      })(),
      'ERR_DECODE',
    ],
    [
      'keyring length 65',
      (() => {
        const b = h.slice();
        b.set([0, 65], kOff);
        return b;
      })(),
      'ERR_DECODE',
    ],
    [
      'keyring upper case',
      (() => {
        const b = h.slice();
        b[kOff + 2] = 0x50; // 'P'
        return b;
      })(),
      'ERR_DECODE',
    ],
    [
      'keyring invalid UTF-8',
      (() => {
        const b = h.slice();
        b[kOff + 2] = 0xff;
        return b;
      })(),
      'ERR_DECODE',
    ],
    [
      'itemData length overruns',
      (() => {
        const b = h.slice();
        b.set([0xff, 0xff], itemDataOff);
        return b;
      })(),
      'ERR_DECODE',
    ],
    [
      'ticket length overruns',
      (() => {
        const b = h.slice();
        b.set(u32be(h.length).subarray(2), ticketOff);
        return b;
      })(),
      'ERR_DECODE',
    ],
    [
      'ticket length short (leaves trailing bytes)',
      (() => {
        const b = h.slice();
        b.set([0, fields.ticket.length - 1], ticketOff);
        return b;
      })(),
      'ERR_DECODE',
    ],
  ];
  for (const [name, bytes, c] of cases) {
    test(`${name} → ${c}`, () => {
      assert.throws(() => decodeHeader(bytes), code(c));
    });
  }

  test('every truncation of a valid header is ERR_TRUNCATED', () => {
    for (let n = 0; n < h.length; n++)
      assert.throws(() => decodeHeader(h.subarray(0, n)), code('ERR_TRUNCATED'), `n=${n}`);
  });
});

describe('envelope and payload key', () => {
  const kek = new Uint8Array(32).fill(1);
  const dek = new Uint8Array(32).fill(2);

  test('sealHeader wraps the DEK with AES-256-GCM, aad = header bytes before wrappedDek', () => {
    const h = sealHeader(nodeAesGcm, fields, kek, dek, (n) => new Uint8Array(n).fill(0x77));
    const d = decodeHeader(h);
    assert.deepEqual(d.wrap.wrapNonce, new Uint8Array(12).fill(0x77));
    // independent check with a raw decipher
    const dc = createDecipheriv('aes-256-gcm', kek, d.wrap.wrapNonce);
    dc.setAAD(h.subarray(0, h.length - 48));
    dc.setAuthTag(d.wrap.wrappedDek.subarray(32));
    assert.deepEqual(
      new Uint8Array(Buffer.concat([dc.update(d.wrap.wrappedDek.subarray(0, 32)), dc.final()])),
      dek,
    );
    assert.deepEqual(new Uint8Array(openHeader(nodeAesGcm, d, kek)), dek);
    assert.throws(() => openHeader(nodeAesGcm, d, new Uint8Array(32)), code('ERR_DECRYPT'));
    assert.throws(() => openHeader(nodeAesGcm, d, new Uint8Array(16)), code('ERR_DECRYPT'));
  });

  test('payloadKey = HKDF-SHA256(ikm = DEK, salt = fileNonce, info = "blindfold/v1/payload" ‖ 0x00) (noble cross-check)', () => {
    const info = concat(utf8('blindfold/v1/payload'), Uint8Array.of(0));
    assert.deepEqual(
      payloadKey(dek, fields.fileNonce),
      hkdf(sha256, dek, fields.fileNonce, info, 32),
    );
  });
});

describe('layout math', () => {
  test('chunk nonce = 11-byte big-endian counter ‖ last flag', () => {
    assert.deepEqual(chunkNonce(0, false), new Uint8Array(12));
    assert.deepEqual(chunkNonce(1, true), Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1));
    assert.deepEqual(
      chunkNonce(0x0102030405, false),
      Uint8Array.of(0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 0),
    );
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.boolean(), (i, last) => {
        assert.deepEqual(
          chunkNonce(i, last),
          concat(bigToBytes(BigInt(i), 11), Uint8Array.of(last ? 1 : 0)),
        );
      }),
    );
    assert.throws(() => chunkNonce(-1, false), RangeError);
  });

  test('sizes: examples', () => {
    assert.equal(ciphertextSize(0, 200), 216);
    assert.equal(ciphertextSize(1, 200), 200 + 1 + 16);
    assert.equal(ciphertextSize(CHUNK_SIZE, 200), 200 + SEALED_CHUNK_SIZE);
    assert.equal(ciphertextSize(CHUNK_SIZE + 1, 200), 200 + SEALED_CHUNK_SIZE + 17);
    assert.equal(chunkCount(0), 1);
    assert.equal(chunkCount(CHUNK_SIZE), 1);
    assert.equal(chunkCount(CHUNK_SIZE + 1), 2);
  });

  test('impossible sizes', () => {
    assert.throws(() => plainSizeFromCiphertext(199, 200), code('ERR_TRUNCATED'));
    assert.throws(() => plainSizeFromCiphertext(200, 200), code('ERR_TRUNCATED'));
    assert.throws(() => plainSizeFromCiphertext(215, 200), code('ERR_TRUNCATED'));
    assert.equal(plainSizeFromCiphertext(216, 200), 0);
    assert.throws(
      () => plainSizeFromCiphertext(200 + SEALED_CHUNK_SIZE + 15, 200),
      code('ERR_TRUNCATED'),
    );
    assert.throws(
      () => plainSizeFromCiphertext(200 + SEALED_CHUNK_SIZE + 16, 200),
      code('ERR_DECODE'),
    );
    assert.equal(plainSizeFromCiphertext(200 + SEALED_CHUNK_SIZE + 17, 200), CHUNK_SIZE + 1);
    assert.throws(() => plainSizeFromCiphertext(-1, 200), code('ERR_INVALID_ARGUMENT'));
  });

  test('plainSizeFromCiphertext inverts ciphertextSize', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 45 }),
        fc.integer({ min: 121, max: HEADER_MAX_SIZE }),
        (p, h) => {
          const s = ciphertextSize(p, h);
          assert.equal(plainSizeFromCiphertext(s, h), p);
          assert.equal(s, h + p + chunkCount(p) * 16);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('every file size is either impossible or the size of exactly one plaintext', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 121, max: 1000 }),
        (s, h) => {
          let p: number;
          try {
            p = plainSizeFromCiphertext(s, h);
          } catch (e) {
            assert.ok(isBlindfoldError(e, 'ERR_TRUNCATED') || isBlindfoldError(e, 'ERR_DECODE'));
            return;
          }
          assert.equal(ciphertextSize(p, h), s);
        },
      ),
      { numRuns: 2000 },
    );
    // dense check near chunk boundaries
    for (let k = 0; k < 4; k++) {
      for (let r = -20; r <= 20; r++) {
        const s = 150 + k * SEALED_CHUNK_SIZE + r;
        try {
          assert.equal(ciphertextSize(plainSizeFromCiphertext(s, 150), 150), s);
        } catch (e) {
          if (!isBlindfoldError(e)) throw e;
        }
      }
    }
  });

  test('chunk plaintext lengths add up: all full but the last, last empty only for the empty file', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 * CHUNK_SIZE }), (p) => {
        const n = chunkCount(p);
        let sum = 0;
        for (let i = 0; i < n; i++) {
          const len = chunkPlainLength(i, p);
          if (i < n - 1) assert.equal(len, CHUNK_SIZE);
          else assert.ok(len > 0 || p === 0);
          sum += len;
        }
        assert.equal(sum, p);
      }),
    );
  });

  test('chunksForRange covers exactly the chunks holding [start, end)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 36 }), fc.nat(), fc.nat(), (p, a, b) => {
        const start = p === 0 ? 0 : a % (p + 1);
        const end = start + (b % (p - start + 1));
        const r = chunksForRange(start, end, p);
        if (start === end) {
          assert.equal(r.endChunk - r.first, 0);
          return;
        }
        assert.ok(r.first * CHUNK_SIZE <= start && start < (r.first + 1) * CHUNK_SIZE);
        assert.ok((r.endChunk - 1) * CHUNK_SIZE < end && end <= r.endChunk * CHUNK_SIZE);
        assert.equal(r.skip, start - r.first * CHUNK_SIZE);
        assert.ok(r.endChunk <= chunkCount(p));
      }),
      { numRuns: 1000 },
    );
    assert.throws(() => chunksForRange(5, 4, 10), code('ERR_INVALID_ARGUMENT'));
    assert.throws(() => chunksForRange(0, 11, 10), code('ERR_INVALID_ARGUMENT'));
    assert.throws(() => chunksForRange(-1, 1, 10), code('ERR_INVALID_ARGUMENT'));
  });
});

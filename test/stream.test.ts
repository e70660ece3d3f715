import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import {
  decryptRange,
  decryptStream,
  encryptStream,
  type FileRef,
  readFileHeader,
  readHeader,
  rewrapHeader,
  sealFileHeader,
  unwrapDek,
} from '../src/appliance/stream.ts';
import { concat } from '../src/core/bytes.ts';
import { isBlindfoldError } from '../src/core/errors.ts';
import {
  CHUNK_SIZE,
  ciphertextSize,
  decodeHeader,
  freshFileSecrets,
  SEALED_CHUNK_SIZE,
} from '../src/core/format.ts';
import { createAtomicWriteStream } from '../src/util/atomic.ts';
import { baseFields, kek, Sink } from './helpers/file-fixtures.ts';

const code = (c: string) => (e: unknown) => isBlindfoldError(e) && e.code === c;

/** Yields `data` in pieces of random sizes (1..maxPiece), seeded for reproducibility. */
async function* pieces(data: Uint8Array, maxPiece = 100_000, seed = 1): AsyncGenerator<Uint8Array> {
  let s = seed;
  for (let o = 0; o < data.length; ) {
    s = (s * 1103515245 + 12345) >>> 0;
    const n = 1 + (s % maxPiece);
    yield data.subarray(o, o + n);
    o += n;
  }
}

async function encrypt(
  plain: Uint8Array,
  maxPiece?: number,
  seed?: number,
): Promise<{ file: Buffer; dek: Uint8Array }> {
  const { dek, fileNonce } = freshFileSecrets();
  const header = sealFileHeader({ ...baseFields, fileNonce }, kek, dek);
  const sink = new Sink();
  const r = await encryptStream(pieces(plain, maxPiece, seed), sink, { header, dek, fileNonce });
  const file = sink.bytes;
  assert.equal(r.plainSize, plain.length);
  assert.equal(r.fileSize, file.length);
  assert.equal(file.length, ciphertextSize(plain.length, header.length));
  return { file, dek };
}

/** Decrypts a whole file given as bytes; returns what reached the output, and the error if any. */
async function decrypt(
  file: Uint8Array,
  k = kek,
  maxPiece = 70_000,
): Promise<{ out: Buffer; error?: unknown }> {
  const sink = new Sink();
  try {
    const { header, payload } = await readHeader(pieces(file, maxPiece, 7));
    const dek = unwrapDek(header, k);
    await decryptStream(payload, sink, { dek, fileNonce: header.fields.fileNonce });
    return { out: sink.bytes };
  } catch (error) {
    return { out: sink.bytes, error };
  }
}

/** The safety property: whatever was output is the plaintext of whole chunks before chunk `bad`. */
function assertOnlyVerified(out: Buffer, plain: Uint8Array, bad: number): void {
  assert.ok(
    out.length % CHUNK_SIZE === 0 && out.length <= bad * CHUNK_SIZE,
    `output ${out.length} bytes`,
  );
  assert.deepEqual(out, Buffer.from(plain.subarray(0, out.length)));
}

describe('round trips', () => {
  for (const size of [0, 1, 65535, 65536, 65537, 3 * 65536 + 5]) {
    test(`size ${size}`, async () => {
      const plain = randomBytes(size);
      for (const maxPiece of [1000, 65536, 200_000]) {
        const { file } = await encrypt(plain, maxPiece);
        const { out, error } = await decrypt(file);
        assert.equal(error, undefined);
        assert.deepEqual(out, plain);
      }
    });
  }

  test('random sizes and random input splits', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 5 * CHUNK_SIZE }),
        fc.integer({ min: 500, max: 150_000 }),
        async (size, maxPiece) => {
          const plain = randomBytes(size);
          const { file } = await encrypt(plain, maxPiece, size + 1);
          const { out, error } = await decrypt(file, kek, maxPiece);
          assert.equal(error, undefined);
          assert.deepEqual(out, plain);
        },
      ),
      { numRuns: 25 },
    );
  });

  test('tiny input and ciphertext pieces (1..7 bytes) across chunk boundaries', async () => {
    const plain = randomBytes(CHUNK_SIZE + 100);
    const { file } = await encrypt(plain, 7);
    const { out, error } = await decrypt(file, kek, 7);
    assert.equal(error, undefined);
    assert.deepEqual(out, plain);
  });

  test('a plain array of buffers works as input to encryptStream and readHeader', async () => {
    const plain = randomBytes(CHUNK_SIZE + 3);
    const { dek, fileNonce } = freshFileSecrets();
    const header = sealFileHeader({ ...baseFields, fileNonce }, kek, dek);
    const sink = new Sink();
    await encryptStream([plain.subarray(0, 5), plain.subarray(5)], sink, {
      header,
      dek,
      fileNonce,
    });
    const { header: h, payload } = await readHeader([sink.bytes]);
    const out = new Sink();
    await decryptStream(payload, out, { dek: unwrapDek(h, kek), fileNonce: h.fields.fileNonce });
    assert.deepEqual(out.bytes, plain);
  });

  test('a Readable input, and strings are refused', async () => {
    const { Readable } = await import('node:stream');
    const plain = randomBytes(100_000);
    const { dek, fileNonce } = freshFileSecrets();
    const header = sealFileHeader({ ...baseFields, fileNonce }, kek, dek);
    const sink = new Sink();
    await encryptStream(Readable.from([plain.subarray(0, 10), plain.subarray(10)]), sink, {
      header,
      dek,
      fileNonce,
    });
    assert.deepEqual((await decrypt(sink.bytes)).out, plain);
    await assert.rejects(
      encryptStream(Readable.from(['text']), new Sink(), { header, dek, fileNonce }),
      code('ERR_INVALID_ARGUMENT'),
    );
    await assert.rejects(
      encryptStream(Readable.from([plain]), new Sink(), {
        header,
        dek,
        fileNonce: new Uint8Array(16),
      }),
      code('ERR_INVALID_ARGUMENT'),
    );
  });
});

describe('tampering', () => {
  const plain = randomBytes(3 * CHUNK_SIZE + 5);
  let file: Buffer;
  let hlen: number;
  const off = (i: number) => hlen + i * SEALED_CHUNK_SIZE;
  before(async () => {
    file = (await encrypt(plain)).file;
    hlen = decodeHeader(file).headerLength;
  });

  test('any changed header byte fails before any plaintext is output', async () => {
    // Layout for baseFields (keyring "test", itemData 3 bytes, empty ticket), SPEC.md §6:
    // 0-6 magic, 7 version, 8-11 headerLength, 12 scheme, 13 mode, 14-15 keyring length,
    // 16-19 keyring, 20-23 masterVersion, 24-27 managerKeyVersion, 28-43 itemId,
    // 44-45 itemData length, 46-48 itemData, 49-50 ticket length, 51-66 fileNonce,
    // 67-78 wrapNonce, 79-126 wrappedDek.
    assert.equal(hlen, 127);
    const structural = new Set([0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 14, 15, 44, 45, 49, 50]);
    for (let i = 0; i < hlen; i++) {
      const bad = Buffer.from(file);
      bad[i]! ^= 0x01;
      const { out, error } = await decrypt(bad);
      assert.equal(out.length, 0);
      // structure is checked first (precise codes); every other byte is authenticated by the wrap AEAD
      const expected =
        i === 7 ? 'ERR_UNSUPPORTED_VERSION' : structural.has(i) ? 'ERR_DECODE' : 'ERR_DECRYPT';
      assert.ok(
        isBlindfoldError(error, expected as never),
        `byte ${i}: expected ${expected}, got ${String(error)}`,
      );
    }
  });

  test('a changed byte in any chunk (ciphertext or tag) is ERR_DECRYPT; earlier verified chunks only', async () => {
    for (let c = 0; c < 4; c++) {
      const len = c < 3 ? SEALED_CHUNK_SIZE : 5 + 16;
      for (const pos of [0, len - 17, len - 16, len - 1]) {
        const bad = Buffer.from(file);
        bad[off(c) + pos]! ^= 0x80;
        const { out, error } = await decrypt(bad);
        assert.ok(isBlindfoldError(error, 'ERR_DECRYPT'), `chunk ${c} pos ${pos}`);
        assertOnlyVerified(out, plain, c);
      }
    }
  });

  test('swapping two chunks is ERR_DECRYPT', async () => {
    const bad = concat(
      file.subarray(0, off(0)),
      file.subarray(off(1), off(2)),
      file.subarray(off(0), off(1)),
      file.subarray(off(2)),
    );
    const { out, error } = await decrypt(bad);
    assert.ok(isBlindfoldError(error, 'ERR_DECRYPT'));
    assertOnlyVerified(out, plain, 0);
  });

  test('dropping the final chunk is ERR_TRUNCATED (the new last chunk lacks the last flag)', async () => {
    const { out, error } = await decrypt(file.subarray(0, off(3)));
    assert.ok(isBlindfoldError(error, 'ERR_TRUNCATED'), String(error));
    assertOnlyVerified(out, plain, 2);
    // and dropping all but the first: still truncated
    const one = await decrypt(file.subarray(0, off(1)));
    assert.ok(isBlindfoldError(one.error, 'ERR_TRUNCATED'));
    assert.equal(one.out.length, 0);
  });

  test('appending a chunk or bytes after the final chunk is ERR_DECRYPT', async () => {
    for (const extra of [
      file.subarray(off(0), off(1)),
      file.subarray(off(3)),
      Buffer.alloc(1),
      Buffer.alloc(16),
      randomBytes(70_000),
    ]) {
      const { out, error } = await decrypt(concat(file, extra));
      assert.ok(isBlindfoldError(error, 'ERR_DECRYPT'), `+${extra.length}: ${String(error)}`);
      assertOnlyVerified(out, plain, 3);
    }
    // a file whose final chunk is full, with a chunk appended
    const full = randomBytes(2 * CHUNK_SIZE);
    const f2 = (await encrypt(full)).file;
    const h2 = decodeHeader(f2).headerLength;
    const { out, error } = await decrypt(concat(f2, f2.subarray(h2, h2 + SEALED_CHUNK_SIZE)));
    assert.ok(isBlindfoldError(error, 'ERR_DECRYPT'));
    assertOnlyVerified(out, full, 1);
  });

  test('truncation: mid-chunk is ERR_DECRYPT, inside a tag or at the header end is ERR_TRUNCATED', async () => {
    const cases: [number, string, number][] = [
      [off(1) + 1000, 'ERR_DECRYPT', 1],
      [off(3) + 20, 'ERR_DECRYPT', 3],
      [off(3) + 4, 'ERR_TRUNCATED', 3],
      [off(3) - 1, 'ERR_DECRYPT', 2],
      [off(2) + 15, 'ERR_TRUNCATED', 2],
      [off(2) + 16, 'ERR_DECODE', 2], // an empty final chunk after full ones is not a layout we write
      [off(0) + 10, 'ERR_TRUNCATED', 0],
      [off(0), 'ERR_TRUNCATED', 0],
      [hlen - 1, 'ERR_TRUNCATED', 0],
      [5, 'ERR_TRUNCATED', 0],
    ];
    for (const [len, c, bad] of cases) {
      const { out, error } = await decrypt(file.subarray(0, len));
      assert.ok(
        isBlindfoldError(error, c as never),
        `cut at ${len}: expected ${c}, got ${String(error)}`,
      );
      assertOnlyVerified(out, plain, bad);
    }
  });

  test('wrong KEK, or a header from another file: ERR_DECRYPT, nothing output', async () => {
    const wrong = await decrypt(file, new Uint8Array(32));
    assert.ok(isBlindfoldError(wrong.error, 'ERR_DECRYPT'));
    assert.equal(wrong.out.length, 0);
    const other = (await encrypt(plain)).file;
    const hOther = decodeHeader(other).headerLength;
    const mixed = await decrypt(concat(other.subarray(0, hOther), file.subarray(hlen)));
    assert.ok(isBlindfoldError(mixed.error, 'ERR_DECRYPT'));
    assert.equal(mixed.out.length, 0);
  });

  test('rewrap: new header under a new KEK + the same chunks decrypts; the old KEK no longer opens it', async () => {
    const kek2 = new Uint8Array(32).fill(0x99);
    const header2 = rewrapHeader(file.subarray(0, hlen), kek, kek2, {
      masterVersion: 2,
      ticket: new Uint8Array([9, 9]),
    });
    const rotated = concat(header2, file.subarray(hlen));
    const d = decodeHeader(rotated);
    assert.equal(d.fields.masterVersion, 2);
    assert.deepEqual(d.fields.fileNonce, decodeHeader(file).fields.fileNonce);
    assert.deepEqual((await decrypt(rotated, kek2)).out, plain);
    assert.ok(isBlindfoldError((await decrypt(rotated, kek)).error, 'ERR_DECRYPT'));
    assert.throws(() => rewrapHeader(file.subarray(0, hlen), kek2, kek), code('ERR_DECRYPT'));
  });
});

describe('decryptRange', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bf-range-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function fileOf(
    plain: Uint8Array,
    name: string,
  ): Promise<{ path: string; dek: Uint8Array }> {
    const { file, dek } = await encrypt(plain);
    const path = join(dir, name);
    await writeFile(path, file);
    return { path, dek };
  }

  test('random ranges equal the slice (path, fd and FileHandle)', async () => {
    const plain = randomBytes(4 * CHUNK_SIZE + 777);
    const { path, dek } = await fileOf(plain, 'a.bf');
    const header = await readFileHeader(path);
    const fh = await open(path, 'r');
    try {
      const refs: FileRef[] = [path, fh.fd, fh];
      await fc.assert(
        fc.asyncProperty(fc.nat(plain.length), fc.nat(plain.length), fc.nat(2), async (a, b, r) => {
          const [s, e] = a <= b ? [a, b] : [b, a];
          const got = await decryptRange(refs[r]!, s, e, dek, header);
          assert.deepEqual(Buffer.from(got), plain.subarray(s, e));
        }),
        { numRuns: 150 },
      );
      for (const [s, e] of [
        [0, 0],
        [0, plain.length],
        [CHUNK_SIZE - 1, CHUNK_SIZE + 1],
        [plain.length - 1, plain.length],
        [4 * CHUNK_SIZE, plain.length],
      ] as const) {
        assert.deepEqual(
          Buffer.from(await decryptRange(fh, s, e, dek, header)),
          plain.subarray(s, e),
        );
      }
      await assert.rejects(
        decryptRange(path, 0, plain.length + 1, dek, header),
        code('ERR_INVALID_ARGUMENT'),
      );
    } finally {
      await fh.close();
    }
  });

  test('small files: empty, one byte, exactly one chunk', async () => {
    for (const size of [0, 1, CHUNK_SIZE]) {
      const plain = randomBytes(size);
      const { path, dek } = await fileOf(plain, `s${size}.bf`);
      const header = await readFileHeader(path);
      assert.deepEqual(Buffer.from(await decryptRange(path, 0, size, dek, header)), plain);
    }
  });

  test('reads only the chunks of the range, plus the final chunk', async () => {
    const plain = randomBytes(10 * CHUNK_SIZE + 3);
    const { path, dek } = await fileOf(plain, 'b.bf');
    const header = await readFileHeader(path);
    const fh = await open(path, 'r');
    const reads: number[] = [];
    // A FileHandle that records the positions read.
    const spy = {
      stat: () => fh.stat(),
      read: (buf: Buffer, o: number, len: number, pos: number) => {
        reads.push(pos);
        return fh.read(buf, o, len, pos);
      },
    } as unknown as FileRef;
    try {
      const s = 3 * CHUNK_SIZE + 10;
      const got = await decryptRange(spy, s, s + CHUNK_SIZE, dek, header);
      assert.deepEqual(Buffer.from(got), plain.subarray(s, s + CHUNK_SIZE));
      const chunksRead = [
        ...new Set(reads.map((p) => Math.floor((p - header.headerLength) / SEALED_CHUNK_SIZE))),
      ].sort((x, y) => x - y);
      assert.deepEqual(chunksRead, [3, 4, 10]);
    } finally {
      await fh.close();
    }
  });

  test('tampered, truncated and extended files are refused', async () => {
    const plain = randomBytes(3 * CHUNK_SIZE + 100);
    const { path, dek } = await fileOf(plain, 'c.bf');
    const header = await readFileHeader(path);
    const good = await readFile(path);
    const h = header.headerLength;
    const variants: [string, Buffer, string][] = [
      [
        'chunk 1 flipped',
        (() => {
          const b = Buffer.from(good);
          b[h + SEALED_CHUNK_SIZE + 5]! ^= 1;
          return b;
        })(),
        'ERR_DECRYPT',
      ],
      [
        'final chunk flipped',
        (() => {
          const b = Buffer.from(good);
          b[b.length - 1]! ^= 1;
          return b;
        })(),
        'ERR_DECRYPT',
      ],
      ['final chunk dropped', good.subarray(0, h + 3 * SEALED_CHUNK_SIZE), 'ERR_TRUNCATED'],
      [
        'cut inside the final tag',
        good.subarray(0, h + 3 * SEALED_CHUNK_SIZE + 10),
        'ERR_TRUNCATED',
      ],
      ['cut mid final chunk', good.subarray(0, good.length - 20), 'ERR_DECRYPT'],
      ['one byte appended', concat(good, Uint8Array.of(0)) as Buffer, 'ERR_DECRYPT'],
    ];
    for (const [name, bytes, c] of variants) {
      const p = join(dir, 'bad.bf');
      await writeFile(p, bytes);
      // a range in chunk 1 (untouched in most variants) still fails: the final chunk is checked
      await assert.rejects(
        decryptRange(p, CHUNK_SIZE + 1, CHUNK_SIZE + 2, dek, header),
        code(c),
        name,
      );
    }
    await assert.rejects(decryptRange(join(dir, 'missing.bf'), 0, 1, dek, header), code('ERR_IO'));
  });
});

describe('files and memory', () => {
  test('100 MB through files: round trip, constant memory', { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bf-big-'));
    const block = randomBytes(1 << 20);
    const encPath = join(dir, 'big.bf');
    const decPath = join(dir, 'big.out');
    /** Encrypts `mb` MiB to a file and decrypts it to another, both through atomic writes. */
    async function roundTrip(
      mb: number,
    ): Promise<{ inHash: string; headerLength: number; tEnc: number; tDec: number }> {
      const inHash = createHash('sha256');
      async function* source(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < mb; i++) {
          block.writeUInt32BE(i, 0); // every MiB differs
          inHash.update(block);
          yield block;
        }
      }
      const { dek, fileNonce } = freshFileSecrets();
      const header = sealFileHeader({ ...baseFields, fileNonce }, kek, dek);
      const t0 = performance.now();
      const enc = await createAtomicWriteStream(encPath);
      await encryptStream(source(), enc.stream, { header, dek, fileNonce });
      await enc.commit();
      const t1 = performance.now();
      const dec = await createAtomicWriteStream(decPath);
      const { header: h, payload } = await readHeader(
        createReadStream(encPath, { highWaterMark: 1 << 20 }),
      );
      try {
        await decryptStream(payload, dec.stream, {
          dek: unwrapDek(h, kek),
          fileNonce: h.fields.fileNonce,
        });
        await dec.commit();
      } catch (e) {
        await dec.abort();
        throw e;
      }
      return {
        inHash: inHash.digest('hex'),
        headerLength: header.length,
        tEnc: t1 - t0,
        tDec: performance.now() - t1,
      };
    }
    try {
      // A first, smaller run brings the heap and the allocator to their steady state (about
      // 40 MiB of one-time growth here); what must not happen is growth with the file size.
      await roundTrip(16);
      let peak = 0;
      const base = process.memoryUsage.rss();
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage.rss());
      }, 5);
      const r = await roundTrip(100);
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage.rss());

      assert.equal((await stat(encPath)).size, ciphertextSize(100 << 20, r.headerLength));
      const outHash = createHash('sha256');
      for await (const c of createReadStream(decPath)) outHash.update(c);
      assert.equal(outHash.digest('hex'), r.inHash);
      assert.deepEqual((await readdir(dir)).sort(), ['big.bf', 'big.out']);
      const growth = (peak - base) / 2 ** 20;
      const mbs = (ms: number) => (100 / (ms / 1000)).toFixed(0);
      console.log(
        `# 100 MiB with fsync: encrypt→file ${mbs(r.tEnc)} MB/s, file→decrypt→file ${mbs(r.tDec)} MB/s, RSS growth ${growth.toFixed(1)} MiB`,
      );
      assert.ok(growth < 30, `RSS grew by ${growth.toFixed(1)} MiB`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a failed decryption through an atomic stream leaves no output file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bf-fail-'));
    try {
      const plain = randomBytes(3 * CHUNK_SIZE);
      const { file } = await encrypt(plain);
      file[file.length - 1]! ^= 1; // the final chunk fails after two chunks were written
      const src = join(dir, 'x.bf');
      await writeFile(src, file);
      const out = await createAtomicWriteStream(join(dir, 'x.out'));
      const { header, payload } = await readHeader(createReadStream(src));
      await assert.rejects(
        decryptStream(payload, out.stream, {
          dek: unwrapDek(header, kek),
          fileNonce: header.fields.fileNonce,
        }),
        code('ERR_DECRYPT'),
      );
      await out.abort();
      assert.deepEqual(await readdir(dir), ['x.bf']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

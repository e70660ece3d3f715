/**
 * The positional file path (src/appliance/positional.ts, issue #9): with both ends regular files,
 * every thread reads and writes its own segments. It must write byte for byte the file
 * encryptStream writes (SPEC.md §6); decryptFileAt must give what decryptStream gives, and fail
 * with the same error class on the same damaged file; a failed decryption must never have
 * written unverified plaintext; an input that changes size, an input that is not a regular file
 * and an unwritable output must fail with a clear error.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { type ChunkPool, createChunkPool } from '../src/appliance/chunks.ts';
import { decryptFileAt, encryptFileAt } from '../src/appliance/positional.ts';
import { decryptStream, encryptStream } from '../src/appliance/stream.ts';
import { isBlindfoldError } from '../src/core/errors.ts';
import { CHUNK_SIZE, SEALED_CHUNK_SIZE } from '../src/core/format.ts';
import { fileSecrets, Sink } from './helpers/file-fixtures.ts';

const SEG = 16 * CHUNK_SIZE;

const secrets = fileSecrets;

/** Runs `f` with `path` open for reading and a fresh `out` open for writing. */
async function withFiles<T>(
  path: string,
  out: string,
  f: (fin: number, fout: number) => Promise<T>,
): Promise<T> {
  await rm(out, { force: true });
  const fin = openSync(path, 'r');
  const fout = openSync(out, 'wx');
  try {
    return await f(fin, fout);
  } finally {
    closeSync(fin);
    closeSync(fout);
  }
}

/** decryptStream's outcome on `sealed`: the plaintext, or the error code. */
async function streamOutcome(
  sealed: Buffer,
  headerLen: number,
  s: ReturnType<typeof secrets>,
): Promise<Buffer | string> {
  const sink = new Sink();
  try {
    await decryptStream([sealed.subarray(headerLen)], sink, s);
    return sink.bytes;
  } catch (e) {
    return isBlindfoldError(e) ? e.code : `unexpected ${String(e)}`;
  }
}

let dir: string;
let pool1: ChunkPool;
let pool2: ChunkPool;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-positional-'));
  pool1 = await createChunkPool(1);
  pool2 = await createChunkPool(2);
});
after(async () => {
  await pool1.close();
  await pool2.close();
  await rm(dir, { recursive: true, force: true });
});

describe('encryptFileAt / decryptFileAt', () => {
  test('write the bytes encryptStream writes, and decrypt them back, at every boundary', async () => {
    const sizes = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, SEG, SEG + 1];
    sizes.push(3 * SEG + 5 * CHUNK_SIZE + 123, 5 * SEG);
    for (const pool of [pool1, pool2]) {
      for (const size of sizes) {
        const data = randomBytes(size);
        const s = secrets();
        const plain = join(dir, 'plain');
        await writeFile(plain, data);
        const sink = new Sink();
        await encryptStream([data], sink, s);
        const r = await withFiles(plain, join(dir, 'enc'), (fin, fout) =>
          encryptFileAt(fin, fout, { ...s, pool }),
        );
        const enc = await readFile(join(dir, 'enc'));
        assert.ok(enc.equals(sink.bytes), `size ${size}, ${pool.size} worker(s): bytes differ`);
        assert.equal(r.fileSize, enc.length);
        assert.equal(r.plainSize, size);
        const d = await withFiles(join(dir, 'enc'), join(dir, 'dec'), (fin, fout) =>
          decryptFileAt(fin, s.header.length, fout, { ...s, pool }),
        );
        assert.equal(d.plainSize, size);
        assert.ok((await readFile(join(dir, 'dec'))).equals(data), `size ${size}: round trip`);
      }
    }
  });

  test('segments go to the worker and to the calling thread; progress reaches the size', async () => {
    const data = randomBytes(8 * SEG + 7);
    const s = secrets();
    await writeFile(join(dir, 'p2'), data);
    const before_ = pool1.stats();
    const seen: number[] = [];
    await withFiles(join(dir, 'p2'), join(dir, 'p2.bf'), (fin, fout) =>
      encryptFileAt(fin, fout, { ...s, pool: pool1, onProgress: (n) => seen.push(n) }),
    );
    const st = pool1.stats();
    assert.equal(st.segments - before_.segments, 8, 'every whole segment is counted once');
    assert.ok(st.local - before_.local < 8, 'the worker sealed some segments');
    assert.ok(seen.length >= 2 && seen.at(-1) === data.length, `progress ${seen}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! >= seen[i - 1]!);
  });

  test('a damaged file fails as decryptStream fails, and no unverified plaintext is written', async () => {
    const data = randomBytes(4 * SEG + 3 * CHUNK_SIZE + 777);
    const s = secrets();
    const sink = new Sink();
    await encryptStream([data], sink, s);
    const sealed = sink.bytes;
    const H = s.header.length;
    const payload = sealed.length - H;
    type Damage =
      | { kind: 'flip'; at: number; bit: number }
      | { kind: 'cut'; len: number }
      | { kind: 'append'; extra: number }
      | { kind: 'swap'; a: number; b: number };
    const chunksIn = Math.ceil(payload / SEALED_CHUNK_SIZE);
    const damage = fc.oneof(
      fc.record({
        kind: fc.constant('flip' as const),
        at: fc.integer({ min: 0, max: payload - 1 }),
        bit: fc.integer({ min: 0, max: 7 }),
      }),
      fc.record({
        kind: fc.constant('cut' as const),
        len: fc.integer({ min: 0, max: payload - 1 }),
      }),
      fc.record({
        kind: fc.constant('cut' as const),
        len: fc.integer({ min: 1, max: chunksIn - 1 }).map((k) => k * SEALED_CHUNK_SIZE),
      }),
      fc.record({
        kind: fc.constant('append' as const),
        extra: fc.integer({ min: 1, max: 70000 }),
      }),
      fc.record({
        kind: fc.constant('swap' as const),
        a: fc.integer({ min: 0, max: chunksIn - 2 }),
        b: fc.integer({ min: 0, max: chunksIn - 2 }),
      }),
    );
    const apply = (d: Damage): Buffer => {
      const b = Buffer.from(sealed);
      switch (d.kind) {
        case 'flip':
          b[H + d.at]! ^= 1 << d.bit;
          return b;
        case 'cut':
          return b.subarray(0, H + d.len);
        case 'append':
          return Buffer.concat([b, randomBytes(d.extra)]);
        case 'swap': {
          const ca = Buffer.from(
            b.subarray(H + d.a * SEALED_CHUNK_SIZE, H + (d.a + 1) * SEALED_CHUNK_SIZE),
          );
          b.copy(
            b,
            H + d.a * SEALED_CHUNK_SIZE,
            H + d.b * SEALED_CHUNK_SIZE,
            H + (d.b + 1) * SEALED_CHUNK_SIZE,
          );
          ca.copy(b, H + d.b * SEALED_CHUNK_SIZE);
          return b;
        }
      }
    };
    await fc.assert(
      fc.asyncProperty(damage, async (d) => {
        const damaged = apply(d);
        const expected = await streamOutcome(damaged, H, s);
        const path = join(dir, 'damaged.bf');
        await writeFile(path, damaged);
        let got: Buffer | string;
        try {
          await withFiles(path, join(dir, 'damaged.out'), (fin, fout) =>
            decryptFileAt(fin, H, fout, { ...s, pool: pool1 }),
          );
          got = await readFile(join(dir, 'damaged.out'));
        } catch (e) {
          got = isBlindfoldError(e) ? e.code : `unexpected ${String(e)}`;
        }
        if (typeof expected !== 'string') {
          assert.ok(Buffer.isBuffer(got) && got.equals(expected), `${JSON.stringify(d)}`);
          return;
        }
        assert.equal(got, expected, JSON.stringify(d));
        // What was written before the failure: each chunk's place holds its true plaintext or
        // nothing (zeros of a hole, or beyond the end), never anything else.
        const out = await readFile(join(dir, 'damaged.out'));
        for (let o = 0; o < out.length; o += CHUNK_SIZE) {
          const part = out.subarray(o, o + CHUNK_SIZE);
          const truth = data.subarray(o, o + part.length);
          assert.ok(
            part.equals(truth) || part.every((x) => x === 0),
            `${JSON.stringify(d)}: chunk at ${o} holds bytes that are not its plaintext`,
          );
        }
      }),
      { numRuns: 40 },
    );
  });

  test('an input that is not a regular file, or that changes size, fails with a clear error', async () => {
    const s = secrets();
    await assert.rejects(
      withFiles('/dev/null', join(dir, 'null.bf'), (fin, fout) =>
        encryptFileAt(fin, fout, { ...s, pool: pool1 }),
      ),
      (e: unknown) => isBlindfoldError(e) && e.code === 'ERR_INVALID_ARGUMENT',
    );
    const grow = join(dir, 'grows');
    await writeFile(grow, randomBytes(4 * SEG));
    let appended = false;
    await assert.rejects(
      withFiles(grow, join(dir, 'grows.bf'), (fin, fout) =>
        encryptFileAt(fin, fout, {
          ...s,
          pool: pool1,
          onProgress: () => {
            if (!appended) {
              appended = true;
              appendFileSync(grow, 'more'); // before the final size check, whatever the timing
            }
          },
        }),
      ),
      (e: unknown) => isBlindfoldError(e) && e.code === 'ERR_IO' && /changed size/.test(e.message),
    );
  });

  test('an output that cannot be written fails with ERR_IO, encrypting and decrypting', async () => {
    const s = secrets();
    const data = randomBytes(6 * SEG);
    await writeFile(join(dir, 'ro-in'), data);
    const sink = new Sink();
    await encryptStream([data], sink, s);
    await writeFile(join(dir, 'ro-in.bf'), sink.bytes);
    await writeFile(join(dir, 'ro-out'), '');
    const isIo = (e: unknown) => isBlindfoldError(e) && e.code === 'ERR_IO';
    for (const [input, run] of [
      ['ro-in', (fin: number, fout: number) => encryptFileAt(fin, fout, { ...s, pool: pool1 })],
      [
        'ro-in.bf',
        (fin: number, fout: number) =>
          decryptFileAt(fin, s.header.length, fout, { ...s, pool: pool1 }),
      ],
    ] as const) {
      const fin = openSync(join(dir, input), 'r');
      const fout = openSync(join(dir, 'ro-out'), 'r'); // read-only: every write fails (EBADF)
      try {
        await assert.rejects(run(fin, fout), isIo, input);
      } finally {
        closeSync(fin);
        closeSync(fout);
      }
    }
  });
});

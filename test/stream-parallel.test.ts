/**
 * Parallel stream encryption (src/appliance/chunks.ts, issue #9): with worker threads,
 * encryptStream writes byte for byte the file the serial path writes (SPEC.md §6), in order,
 * whatever the input's piece sizes; decryptStream opens it either way; tampering, reordering and
 * truncation, inside a segment handled by a worker or at the end handled on the calling thread,
 * are still detected before any unverified plaintext is written; and memory stays constant.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { type ChunkPool, createChunkPool, SEGMENT_SEALED } from '../src/appliance/chunks.ts';
import {
  decryptStream,
  encryptStream,
  readFilePieces,
  readHeader,
  unwrapDek,
} from '../src/appliance/stream.ts';
import { equalBytes } from '../src/core/bytes.ts';
import { isBlindfoldError } from '../src/core/errors.ts';
import { CHUNK_SIZE, ciphertextSize, SEALED_CHUNK_SIZE } from '../src/core/format.ts';
import { RELEASES_WRITTEN_CHUNKS } from '../src/util/atomic.ts';
import { fileSecrets, kek, Sink } from './helpers/file-fixtures.ts';

const SEG = 16 * CHUNK_SIZE;

function* pieces(data: Uint8Array, maxPiece: number, seed = 1): Generator<Uint8Array> {
  let s = seed;
  for (let o = 0; o < data.length; ) {
    s = (s * 1103515245 + 12345) >>> 0;
    const n = 1 + (s % maxPiece);
    yield data.subarray(o, o + n);
    o += n;
  }
}

let pool: ChunkPool;
/** One worker (window 2): the calling thread takes segments itself from the third one on. */
let one: ChunkPool;
// The pools live for the whole file: terminating workers between tests could leave the event
// loop without a handle while the runner moves on to the next test, which it then cancels
// ("Promise resolution is still pending but the event loop has already resolved", seen in
// about half the runs when a test closed a pool of its own).
before(async () => {
  pool = await createChunkPool(2);
  one = await createChunkPool(1);
});
after(async () => {
  await pool?.close();
  await one?.close();
});

const secrets = fileSecrets;

async function enc(
  plain: Uint8Array,
  s: ReturnType<typeof secrets>,
  parallel: boolean,
  maxPiece = 300_000,
) {
  const sink = new Sink();
  const r = await encryptStream(pieces(plain, maxPiece, plain.length + 3), sink, {
    ...s,
    parallel: parallel ? pool : undefined,
  });
  assert.equal(r.plainSize, plain.length);
  assert.equal(r.fileSize, sink.bytes.length);
  return sink.bytes;
}

async function dec(file: Uint8Array, parallel: boolean, maxPiece = 250_000) {
  const sink = new Sink();
  try {
    const { header, payload } = await readHeader(pieces(file, maxPiece, 9));
    const dek = unwrapDek(header, kek);
    const r = await decryptStream(payload, sink, {
      dek,
      fileNonce: header.fields.fileNonce,
      parallel: parallel ? pool : undefined,
    });
    assert.equal(r.plainSize, sink.bytes.length);
    return { out: sink.bytes };
  } catch (error) {
    return { out: sink.bytes, error };
  }
}

const code = (e: unknown) => (isBlindfoldError(e) ? e.code : String(e));

describe('parallel streams', () => {
  const sizes = [
    0,
    1,
    CHUNK_SIZE - 1,
    CHUNK_SIZE,
    CHUNK_SIZE + 1,
    SEG - 1,
    SEG,
    SEG + 1,
    2 * SEG,
    3 * SEG + 17,
    5 * SEG + CHUNK_SIZE,
  ];
  test('byte-identical to the serial format, and both decrypt either way', async () => {
    for (const size of sizes) {
      const plain = randomBytes(size);
      const s = secrets();
      const serial = await enc(plain, s, false);
      const parallel = await enc(plain, s, true);
      assert.equal(parallel.length, ciphertextSize(size, s.header.length));
      assert.ok(serial.equals(parallel), `size ${size}: parallel output differs from serial`);
      for (const p of [true, false]) {
        const { out, error } = await dec(parallel, p);
        assert.equal(error, undefined, `size ${size}`);
        assert.ok(out.equals(plain), `size ${size}`);
      }
    }
  });

  test('property: any size and any input split give the serial bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 3 * SEG + 2 * CHUNK_SIZE }),
        fc.integer({ min: 1000, max: 2 * SEG }),
        async (size, maxPiece) => {
          const plain = randomBytes(size);
          const s = secrets();
          const a = await enc(plain, s, false, maxPiece);
          const b = await enc(plain, s, true, maxPiece);
          assert.ok(a.equals(b));
          const { out, error } = await dec(b, true, maxPiece);
          assert.equal(error, undefined);
          assert.ok(out.equals(plain));
        },
      ),
      { numRuns: 15 },
    );
  });

  test('the calling thread seals and opens segments too when the workers are busy: same bytes, same checks', async () => {
    // One worker (window 2): from the third full segment on, the calling thread takes segments
    // itself (issue #9: every core runs AES), in order with the worker's.
    {
      const plain = randomBytes(8 * SEG + 5);
      const s = secrets();
      const serial = await enc(plain, s, false);
      const before = one.stats();
      const sink = new Sink();
      await encryptStream(pieces(plain, 300_000, 7), sink, { ...s, parallel: one });
      const mid = one.stats();
      assert.ok(sink.bytes.equals(serial), 'mixed parallel output differs from serial');
      assert.equal(mid.segments - before.segments, 8);
      assert.ok(mid.local - before.local >= 1, 'the calling thread sealed no segment');
      assert.ok(mid.segments - mid.local - (before.segments - before.local) >= 1);
      const open = async (file: Uint8Array) => {
        const out = new Sink();
        try {
          const { header, payload } = await readHeader(pieces(file, 250_000, 9));
          await decryptStream(payload, out, {
            dek: unwrapDek(header, kek),
            fileNonce: header.fields.fileNonce,
            parallel: one,
          });
          return { out: out.bytes };
        } catch (error) {
          return { out: out.bytes, error };
        }
      };
      const ok = await open(serial);
      assert.equal(ok.error, undefined);
      assert.ok(ok.out.equals(plain));
      assert.ok(one.stats().local - mid.local >= 1, 'the calling thread opened no segment');
      // A flipped bit in every segment, worker's or the calling thread's: ERR_DECRYPT, and only
      // verified plaintext before the bad chunk was written.
      for (let seg = 0; seg < 8; seg++) {
        const bad = seg * 16 + 7;
        const t = Buffer.from(serial);
        t[s.header.length + bad * SEALED_CHUNK_SIZE + 50]! ^= 1;
        const { out, error } = await open(t);
        assert.equal(code(error), 'ERR_DECRYPT', `chunk ${bad}`);
        assert.ok(out.length % CHUNK_SIZE === 0 && out.length <= bad * CHUNK_SIZE);
        assert.ok(out.equals(plain.subarray(0, out.length)));
      }
    }
  });

  test('property: segments done on the calling thread, straight from any split of the input, give the serial bytes and the serial errors', async () => {
    // With one worker (window 2) the calling thread takes about every third segment, chunk by
    // chunk from the caller's pieces (a chunk cut across pieces is copied first). Any size, any
    // split, and any cut of the sealed file: the same bytes as the serial path, and on decryption
    // the same error code, with only verified plaintext written.
    const decWith = async (file: Uint8Array, parallel: ChunkPool | undefined, maxPiece: number) => {
      const sink = new Sink();
      try {
        const { header, payload } = await readHeader(pieces(file, maxPiece, maxPiece + 1));
        await decryptStream(payload, sink, {
          dek: unwrapDek(header, kek),
          fileNonce: header.fields.fileNonce,
          parallel,
        });
        return { out: sink.bytes, code: undefined };
      } catch (error) {
        return { out: sink.bytes, code: code(error) };
      }
    };
    const before = one.stats();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2 * SEG, max: 7 * SEG + 3 * CHUNK_SIZE }),
        fc.oneof(
          fc.integer({ min: 1000, max: 3 * CHUNK_SIZE }),
          fc.integer({ min: CHUNK_SIZE, max: 2 * SEG }),
        ),
        fc.double({ min: 0, max: 1, noNaN: true }),
        async (size, maxPiece, cutAt) => {
          const plain = randomBytes(size);
          const s = secrets();
          const serial = await enc(plain, s, false, maxPiece);
          const sink = new Sink();
          await encryptStream(pieces(plain, maxPiece, size), sink, { ...s, parallel: one });
          assert.ok(sink.bytes.equals(serial), 'parallel bytes differ from serial');
          const whole = await decWith(serial, one, maxPiece);
          assert.equal(whole.code, undefined);
          assert.ok(whole.out.equals(plain));
          const cut = serial.subarray(0, Math.floor(cutAt * serial.length));
          const a = await decWith(cut, undefined, maxPiece);
          const b = await decWith(cut, one, maxPiece);
          assert.equal(b.code, a.code, `cut at ${cut.length}`);
          assert.ok(b.out.equals(plain.subarray(0, b.out.length)), 'unverified output');
        },
      ),
      { numRuns: 12 },
    );
    // Pieces of a fixed size, ending exactly at chunk or segment boundaries (as a file read in
    // 1 MiB pieces is): the last whole chunk of the input must wait for the end to be known, even
    // when it fills a piece exactly.
    for (const pieceSize of [CHUNK_SIZE, SEG, SEALED_CHUNK_SIZE]) {
      for (const size of [3 * SEG, 4 * SEG, 5 * SEG + CHUNK_SIZE, 6 * SEG, 7 * SEG - CHUNK_SIZE]) {
        const plain = randomBytes(size);
        const s = secrets();
        const serial = await enc(plain, s, false);
        const fixed = function* (data: Uint8Array, n: number) {
          for (let o = 0; o < data.length; o += n) yield data.subarray(o, o + n);
        };
        const sink = new Sink();
        await encryptStream(fixed(plain, pieceSize), sink, { ...s, parallel: one });
        assert.ok(sink.bytes.equals(serial), `pieces of ${pieceSize}, size ${size}`);
        const out = new Sink();
        const { header, payload } = await readHeader(fixed(serial, pieceSize));
        await decryptStream(payload, out, {
          dek: unwrapDek(header, kek),
          fileNonce: header.fields.fileNonce,
          parallel: one,
        });
        assert.ok(out.bytes.equals(plain), `pieces of ${pieceSize}, size ${size}`);
      }
    }
    assert.ok(one.stats().local - before.local >= 12, 'the calling thread took no segment');
  });

  test('tampering, reordering and truncation are detected; nothing unverified is written', async () => {
    const plain = randomBytes(4 * SEG + 3 * CHUNK_SIZE + 99);
    const s = secrets();
    const file = await enc(plain, s, true);
    const h = s.header.length;
    const chunkAt = (i: number) => h + i * SEALED_CHUNK_SIZE;
    const onlyVerifiedPrefix = (out: Buffer, bad: number) => {
      assert.ok(out.length % CHUNK_SIZE === 0 && out.length <= bad * CHUNK_SIZE, `${out.length}`);
      assert.ok(out.equals(plain.subarray(0, out.length)));
    };
    // A flipped bit in chunk 20 (second segment, a worker's) and in chunk 66 (the tail, here).
    for (const bad of [5, 20, 66]) {
      const t = Buffer.from(file);
      t[chunkAt(bad) + 100]! ^= 1;
      const { out, error } = await dec(t, true);
      assert.equal(code(error), 'ERR_DECRYPT', `chunk ${bad}`);
      onlyVerifiedPrefix(out, bad);
    }
    // Two chunks swapped inside a segment, and across segments.
    for (const [i, j] of [
      [17, 18],
      [3, 35],
    ] as const) {
      const t = Buffer.from(file);
      file.copy(t, chunkAt(i), chunkAt(j), chunkAt(j) + SEALED_CHUNK_SIZE);
      file.copy(t, chunkAt(j), chunkAt(i), chunkAt(i) + SEALED_CHUNK_SIZE);
      const { out, error } = await dec(t, true);
      assert.equal(code(error), 'ERR_DECRYPT', `swap ${i} ${j}`);
      onlyVerifiedPrefix(out, i);
    }
    // Cut at a chunk boundary, and exactly at a segment boundary: truncation, not a short file.
    for (const cut of [chunkAt(66), h + 2 * SEGMENT_SEALED, h + 4 * SEGMENT_SEALED]) {
      const { out, error } = await dec(file.subarray(0, cut), true);
      assert.equal(code(error), 'ERR_TRUNCATED', `cut at ${cut}`);
      assert.ok(out.equals(plain.subarray(0, out.length)));
    }
    // Appended bytes.
    const { error } = await dec(Buffer.concat([file, Buffer.alloc(20)]), true);
    assert.equal(code(error), 'ERR_DECRYPT');
  });

  test('constant memory: 192 MiB through a slow destination stays within a few segments', async () => {
    const s = secrets();
    const piece = randomBytes(1 << 20);
    const total = 192;
    let maxBuffers = 0;
    const base = process.memoryUsage().arrayBuffers;
    const slow = new Writable({
      highWaterMark: 1 << 20,
      write(_c, _e, cb) {
        maxBuffers = Math.max(maxBuffers, process.memoryUsage().arrayBuffers - base);
        setImmediate(cb);
      },
    });
    await encryptStream(
      (function* () {
        for (let i = 0; i < total; i++) yield piece;
      })(),
      slow,
      { ...s, parallel: pool },
    );
    // window (4) segments in flight, their outputs, the destination's buffer: ~12 MiB, not 192.
    assert.ok(maxBuffers < 48 * 2 ** 20, `${(maxBuffers / 2 ** 20).toFixed(1)} MiB of buffers`);
  });
  test('file → file with recycled buffers (readFilePieces, fs.WriteStream) gives the serial bytes', async () => {
    // A file destination lets the parallel path reuse its output buffers, and readFilePieces
    // reuses its read buffers: 40 segments and a partial one through both, then back. The
    // encrypting destination buffers up to 64 MiB (writes return true before the bytes are out),
    // so a buffer reused before the file has it would show here.
    const dir = await mkdtemp(join(tmpdir(), 'bf-par-'));
    try {
      const plain = randomBytes(40 * SEG + 12345);
      const s = secrets();
      const serial = await enc(plain, s, false);
      await writeFile(join(dir, 'plain'), plain);
      await encryptStream(
        readFilePieces(join(dir, 'plain'), 300_001),
        createWriteStream(join(dir, 'enc'), { highWaterMark: 64 << 20 }),
        {
          ...s,
          parallel: pool,
        },
      );
      assert.ok(equalBytes(await readFile(join(dir, 'enc')), serial), 'parallel file bytes differ');
      const { header, payload } = await readHeader(readFilePieces(join(dir, 'enc'), 1 << 20));
      await decryptStream(payload, createWriteStream(join(dir, 'dec')), {
        dek: s.dek,
        fileNonce: header.fields.fileNonce,
        parallel: pool,
      });
      assert.ok(equalBytes(await readFile(join(dir, 'dec')), plain), 'round trip differs');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// A file destination with room for several writes (util/atomic.ts: 4 MiB) writes one buffer while
// the stream fills the next; the stream reuses a buffer only once the destination has written
// it (OutRing, docs/PERFORMANCE.md "perf6"). This destination takes its time over each write and
// copies the bytes only when the write completes: a buffer reused too early would show as wrong
// bytes, and the distinct buffers it saw show that buffers were reused at all.
class SlowFileSink extends Writable {
  readonly [RELEASES_WRITTEN_CHUNKS] = true;
  parts: Buffer[] = [];
  backings = new Set<ArrayBufferLike>();
  writes = 0;
  constructor() {
    super({ highWaterMark: 4 << 20 });
  }
  override _write(chunk: Buffer, _e: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.writes++;
    this.backings.add(chunk.buffer);
    setTimeout(() => {
      this.parts.push(Buffer.from(chunk));
      cb();
    }, 1);
  }
  get bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

test('a slow destination with room for several writes gets every buffer intact, and buffers are reused', async () => {
  const plain = randomBytes(24 << 20);
  const s = secrets();
  const want = await enc(plain, s, false);
  for (const parallel of [false, true]) {
    const sink = new SlowFileSink();
    await encryptStream(pieces(plain, 1 << 20, 5), sink, {
      ...s,
      parallel: parallel ? pool : undefined,
    });
    assert.ok(equalBytes(sink.bytes, want), `encrypt, parallel=${parallel}: bytes differ`);
    // (Reuse shows as one ArrayBuffer object several times only on this thread: a buffer that a
    // worker filled comes back as a new object over the same memory.)
    if (!parallel) {
      assert.ok(
        sink.backings.size < sink.writes - 4,
        `encrypt: ${sink.backings.size} buffers for ${sink.writes} writes`,
      );
    }
    const out = new SlowFileSink();
    const { header, payload } = await readHeader(pieces(want, 1 << 20, 7));
    await decryptStream(payload, out, {
      dek: unwrapDek(header, kek),
      fileNonce: header.fields.fileNonce,
      parallel: parallel ? pool : undefined,
    });
    assert.ok(equalBytes(out.bytes, plain), `decrypt, parallel=${parallel}: bytes differ`);
    if (!parallel) {
      assert.ok(out.backings.size < out.writes - 4, `decrypt: ${out.backings.size} buffers`);
    }
  }
});

/**
 * Streaming encryption and decryption of Blindfold files (SPEC.md §6; layout in core/format.ts),
 * with AES-256-GCM from node:crypto (OpenSSL).
 *
 * Memory is constant: the encryptor gathers its input into one reused 64 KiB buffer and the
 * decryptor into one reused 64 KiB + 16 buffer (a whole chunk that lies inside one input piece is
 * processed in place, without the copy); output is copied into ~1 MiB buffers, written whole and
 * recycled where the destination allows (see OutRing). A file of any
 * size goes through them. Backpressure comes from stream.pipeline: the generator that seals chunks
 * is suspended while the destination is full. A chunk is sealed as non-final only once a byte
 * after it has arrived, so the last flag is always right, whatever the input's piece sizes.
 *
 * Decryption verifies each chunk's tag before its plaintext leaves this module, so nothing
 * unverified is ever written. A damaged file is detected at the first bad chunk; plaintext of the
 * chunks before it (each authentic) may already have been written, so a caller that writes to a
 * file must write through util/atomic.ts and abort() on error — the temporary file, with those
 * verified chunks, is then deleted and the destination path never sees a partial file.
 *
 * node:crypto allocates a new Buffer for every `update()` (its output) and every tag (DESIGN.md
 * §5); everything else is reused: the chunk buffers, the nonce buffer, the output buffers (issue
 * #9, docs/PERFORMANCE.md perf5), and the key is turned into a KeyObject once per stream.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { fstat as fsFstat, read as fsRead, WriteStream } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { concat, equalBytes, zeroize } from '../core/bytes.ts';
import { BlindfoldError, decryptFailed, isBlindfoldError } from '../core/errors.ts';
import {
  type Aead,
  CHUNK_NONCE_SIZE,
  CHUNK_SIZE,
  chunkCount,
  chunkNonce,
  chunkOffset,
  chunksForRange,
  type DecodedHeader,
  decodeHeader,
  HEADER_PREFIX_SIZE,
  type HeaderFields,
  headerAad,
  openHeader,
  payloadKey,
  peekHeaderLength,
  plainSizeFromCiphertext,
  SEALED_CHUNK_SIZE,
  sealHeader,
  TAG_SIZE,
  WRAP_NONCE_SIZE,
} from '../core/format.ts';
import { type Rng, systemRng } from '../core/random.ts';
import { RELEASES_WRITTEN_CHUNKS } from '../util/atomic.ts';
import { collectStreamGarbage, keepFreedMemory } from '../util/memory.ts';
import {
  type ChunkPool,
  type ChunkReply,
  SEGMENT_CHUNKS,
  SEGMENT_PLAIN,
  SEGMENT_SEALED,
} from './chunks.ts';

const ALG = 'aes-256-gcm';
const EMPTY = Buffer.alloc(0);

/** AES-256-GCM over node:crypto, for the pure code in core/format.ts. */
export const nodeAesGcm: Aead = {
  seal(key, nonce, plaintext, aad) {
    const c = createCipheriv(ALG, key, nonce, { authTagLength: TAG_SIZE });
    if (aad) c.setAAD(aad);
    const ct = c.update(plaintext);
    c.final();
    return concat(ct, c.getAuthTag());
  },
  open(key, nonce, ciphertext, aad) {
    if (ciphertext.length < TAG_SIZE || key.length !== 32) throw decryptFailed();
    const n = ciphertext.length - TAG_SIZE;
    const d = createDecipheriv(ALG, key, nonce, { authTagLength: TAG_SIZE });
    d.setAuthTag(ciphertext.subarray(n));
    if (aad) d.setAAD(aad);
    const pt = d.update(ciphertext.subarray(0, n));
    try {
      d.final();
    } catch (cause) {
      pt.fill(0);
      throw decryptFailed(cause);
    }
    return pt;
  },
};

// ---------------------------------------------------------------------------------------------
// Header helpers (the envelope)

/** wrappedDek = AES-256-GCM(kek, wrapNonce, dek, aad): 48 bytes. aad = headerAad(fields, wrapNonce). */
export function wrapDek(
  kek: Uint8Array,
  dek: Uint8Array,
  aad: Uint8Array,
  wrapNonce: Uint8Array,
): Uint8Array {
  if (kek.length !== 32 || dek.length !== 32 || wrapNonce.length !== WRAP_NONCE_SIZE) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      'wrapDek needs a 32-byte KEK and DEK and a 12-byte nonce',
    );
  }
  return nodeAesGcm.seal(kek, wrapNonce, dek, aad);
}

/** Returns the DEK; ERR_DECRYPT for a wrong KEK or any changed header byte. */
export function unwrapDek(header: DecodedHeader | Uint8Array, kek: Uint8Array): Uint8Array {
  const h = header instanceof Uint8Array ? decodeHeader(header) : header;
  return openHeader(nodeAesGcm, h, kek);
}

/** A complete header for a new file: fresh wrap nonce, DEK wrapped under the KEK. */
export function sealFileHeader(
  fields: HeaderFields,
  kek: Uint8Array,
  dek: Uint8Array,
  rng: Rng = systemRng,
): Uint8Array {
  return sealHeader(nodeAesGcm, fields, kek, dek, rng);
}

/**
 * Rotation without re-encryption: unwrap under the old KEK, wrap under the new one with the given
 * field changes. The fileNonce is kept (it salts the payload key), so the chunks after the old
 * header stay valid: the caller writes the new header followed by the old file's bytes from
 * `header.headerLength` on.
 */
export function rewrapHeader(
  header: DecodedHeader | Uint8Array,
  oldKek: Uint8Array,
  newKek: Uint8Array,
  changes: Partial<Omit<HeaderFields, 'fileNonce'>> = {},
  rng: Rng = systemRng,
): Uint8Array {
  const h = header instanceof Uint8Array ? decodeHeader(header) : header;
  const dek = unwrapDek(h, oldKek);
  try {
    const fields: HeaderFields = { ...h.fields, ...changes, fileNonce: h.fields.fileNonce };
    return sealFileHeader(fields, newKek, dek, rng);
  } finally {
    zeroize(dek);
  }
}

/** headerAad re-exported for callers that build headers by hand with wrapDek. */
export { headerAad };

// ---------------------------------------------------------------------------------------------
// Streams

/** Where bytes come from: a Readable, an async generator, or a plain array/iterable of buffers. */
export type ByteSource = Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

function iteratorOf(input: ByteSource): AsyncIterator<unknown> | Iterator<unknown> {
  if (Symbol.asyncIterator in input)
    return (input as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  if (Symbol.iterator in input) return (input as Iterable<unknown>)[Symbol.iterator]();
  throw new BlindfoldError(
    'ERR_INVALID_ARGUMENT',
    'stream input must be a Readable or an iterable of bytes',
  );
}

function asBytes(piece: unknown): Uint8Array {
  if (piece instanceof Uint8Array) return piece;
  throw new BlindfoldError(
    'ERR_INVALID_ARGUMENT',
    'stream input must yield bytes (Uint8Array/Buffer), not strings',
  );
}

/**
 * Output buffers, written whole: a stream writes about 1 MiB at a time. Writing 64 KiB + 16
 * bytes per chunk makes a file destination wait for one write round trip per chunk (pipe() pauses
 * on every write above the destination's highWaterMark), which measured ~7x slower than 1 MiB
 * writes. Sealed or opened chunks are copied into these buffers (node:crypto has no in-place API).
 *
 * The buffers are recycled once the destination has written them (issue #9: a fresh buffer per
 * write is garbage that V8 collects only after tens of MB, and each fresh buffer's pages are
 * faulted in again: copying into a fresh 1 MiB buffer measured ~0.1-0.16 CPU s per GB against
 * ~0.02 into a reused one, docs/PERFORMANCE.md "perf5"). Only for destinations known to drop a
 * chunk once written (a file: fs.WriteStream, util/atomic.ts, marked RELEASES_WRITTEN_CHUNKS);
 * others (a PassThrough hands the very buffer on) get a fresh buffer each time.
 *
 * A destination writes in order, so a buffer is free once the bytes written (all bytes handed
 * over, `flow.queued`, less those still buffered, `writableLength`) reach its end. A destination
 * whose highWaterMark holds several writes (util/atomic.ts: 4 MiB) thus writes one buffer while
 * the stream fills the next, and each buffer comes back as soon as its own write is done
 * (docs/PERFORMANCE.md "perf6": waiting for the destination to drain completely serialized
 * sealing and writing).
 */
class OutRing {
  readonly #output: Writable;
  readonly #size: number;
  readonly #recycle: boolean;
  readonly #flow: Flow;
  readonly #free: Buffer[] = [];
  readonly #lent: { buf: Buffer; end: number }[] = [];
  constructor(output: Writable, size: number, flow: Flow) {
    this.#output = output;
    this.#size = size;
    this.#flow = flow;
    this.#recycle =
      output instanceof WriteStream ||
      (output as unknown as Record<symbol, unknown>)[RELEASES_WRITTEN_CHUNKS] === true;
  }
  /** A buffer for a worker's result, or undefined (the worker allocates one). */
  take(): Uint8Array | undefined {
    return this.#recycle ? this.next() : undefined;
  }
  /** A buffer of `size` bytes (contents undefined) for the next write. */
  next(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.#size);
  }
  /** `b` was just handed to the destination (written: call right after its yield) or came back unused. */
  lend(b: Uint8Array | undefined, written: boolean): void {
    if (!this.#recycle || !b || b.byteLength !== this.#size) return;
    const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    if (written) this.#lent.push({ buf, end: this.#flow.queued });
    else this.#free.push(buf);
  }
  /** Call when the producer resumes: the buffers the destination has written are free again. */
  settle(): void {
    if (!this.#recycle) return;
    const written = this.#flow.queued - this.#output.writableLength;
    while (this.#lent.length > 0 && this.#lent[0]!.end <= written) {
      this.#free.push(this.#lent.shift()!.buf);
    }
  }
  wipe(): void {
    for (const b of this.#free) b.fill(0);
  }
}

/** Bytes a stream has handed to its destination so far (counted by `counted`). */
interface Flow {
  queued: number;
}

/** Wraps a stage so that every byte it hands on is counted in `flow` (see OutRing). */
function counted(
  flow: Flow,
  stage: (source: AsyncIterable<unknown>) => AsyncGenerator<Buffer>,
): (source: AsyncIterable<unknown>) => AsyncGenerator<Buffer> {
  return async function* (source) {
    for await (const b of stage(source)) {
      flow.queued += b.length;
      yield b;
    }
  };
}

/** Default size of the writes to the output (see OutRing). */
export const DEFAULT_WRITE_SIZE = 1 << 20;

/** The stream's AES-256-GCM key (SPEC.md §6.2) as a KeyObject; the derived bytes are wiped. */
function payloadKeyObject(dek: Uint8Array, fileNonce: Uint8Array): KeyObject {
  const k = payloadKey(dek, fileNonce);
  try {
    return createSecretKey(k);
  } finally {
    zeroize(k);
  }
}

/** A segment in flight: sealed or opened here (`out`), or by a worker (`reply`). */
interface Ahead {
  out?: Buffer;
  reply?: Promise<ChunkReply>;
  /** The result is there: writing it now costs no wait. */
  ready: boolean;
}

function aheadOf(reply: Promise<ChunkReply>): Ahead {
  const a: Ahead = { reply, ready: false };
  reply.then(
    () => {
      a.ready = true;
    },
    () => {
      a.ready = true;
    },
  );
  return a;
}

/**
 * Segments in flight at the workers, as far as this thread knows: a reply is seen only when the
 * event loop turns (at the latest when the stream waits for the oldest segment).
 */
function atWorkers(ahead: Ahead[]): number {
  let n = 0;
  for (const a of ahead) if (a.reply && !a.ready) n++;
  return n;
}

/**
 * Segments the calling thread may seal or open itself, beyond the workers' window, before it
 * waits for the oldest worker segment (see parallelSealer; measured in docs/PERFORMANCE.md perf5).
 */
const LOCAL_AHEAD = 2;

/** What encryptStream and decryptStream tell the shared parallel path (segmentsInOrder). */
interface SegmentStage {
  pool: ChunkPool;
  outs: OutRing;
  /** Bytes of a full input segment: SEGMENT_PLAIN to seal, SEGMENT_SEALED to open. */
  inSize: number;
  /** Bytes of one input chunk: CHUNK_SIZE to seal, SEALED_CHUNK_SIZE to open. */
  inChunk: number;
  /** Bytes of one output chunk: SEALED_CHUNK_SIZE to seal, CHUNK_SIZE to open. */
  outChunk: number;
  /** Hands a full segment to a worker (the caller numbers its chunks and counts them). */
  toWorker(seg: Uint8Array, out: Uint8Array | undefined): Promise<ChunkReply>;
  /**
   * Seals or opens the next non-final chunk on this thread into `out` at `at` (throws on a bad
   * tag; nothing unverified reaches `out`). Chunks come in order, numbered by the caller.
   */
  chunkHere(chunk: Uint8Array, out: Buffer, at: number): void;
  /** This thread finished a whole segment of `bytes` input bytes (stats, garbage). */
  segmentHere(bytes: number): void;
  /** A worker's result came back: count it. */
  collected?(out: Uint8Array): void;
  /** The error for a segment a worker could not seal or open. */
  failed(): Error;
}

/**
 * The parallel path of both directions (issue #9): the input is cut into segments of `inSize`
 * bytes. When a segment starts, it is given to a worker if the workers have fewer than `window`
 * in flight, else it is done on this thread (so every core runs AES). A worker's segment is copied
 * into a segment buffer and sent once it is full and more input follows it (so it holds no final
 * chunk, SPEC.md §6). A segment done here is sealed or opened chunk by chunk, each straight from
 * the caller's piece when a whole chunk with more bytes after it is there (as the serial path
 * does), and only a chunk cut across two pieces is copied, into the segment buffer (perf9: the
 * copy of every segment was 14 % of this thread's time). Results are yielded in order, at most
 * window + LOCAL_AHEAD segments in flight (constant memory), each output buffer lent back to the
 * ring once handed on.
 *
 * Returns the input not yet sealed or opened (at most a segment, holding the final chunk) for the
 * caller to finish on this thread; from then on the caller owns that buffer. Segment buffers that
 * come back from the workers are reused, and wiped when the stream ends; a result not yet written
 * when an error ends the stream is wiped.
 */
async function* segmentsInOrder(
  source: AsyncIterable<unknown>,
  st: SegmentStage,
): AsyncGenerator<Buffer, { seg: Uint8Array; fill: number }> {
  const { pool, outs, inSize, inChunk, outChunk } = st;
  const free: Uint8Array[] = [];
  const ahead: Ahead[] = [];
  const maxAhead = pool.window + LOCAL_AHEAD;
  let seg: Uint8Array = new Uint8Array(inSize);
  // Input bytes of the current segment taken so far (copied into `seg`, or, for a segment done
  // here, done straight from the piece).
  let fill = 0;
  // A segment done here: its output, and its input bytes sealed or opened so far (`done` ≤ fill;
  // seg[done, fill) is a chunk cut across pieces, waiting to know that more input follows).
  let local: { out: Buffer; done: number } | undefined;
  let handedOver = false;
  const collect = async (a: Ahead): Promise<Buffer> => {
    if (a.out) return a.out;
    const r = await a.reply!;
    free.push(r.data); // reused for a later segment; wiped when the stream ends
    if (!('out' in r) || 'failed' in r) {
      outs.lend(r.out, false);
      throw st.failed();
    }
    st.collected?.(r.out);
    return Buffer.from(r.out.buffer, r.out.byteOffset, r.out.byteLength);
  };
  // Writes what is ready, in order; waits for the oldest only when too much is in flight, or
  // for everything (`all`) when the input has ended.
  async function* drain(all = false): AsyncGenerator<Buffer> {
    while (ahead.length > 0 && (all || ahead[0]!.ready || ahead.length >= maxAhead)) {
      const out = await collect(ahead.shift()!);
      yield out;
      outs.lend(out, true);
    }
  }
  // The chunk at seg[done, done + inChunk) of the segment done here, once more input follows it.
  const localChunk = (l: { out: Buffer; done: number }, chunk: Uint8Array) => {
    st.chunkHere(chunk, l.out, (l.done / inChunk) * outChunk);
    l.done += inChunk;
  };
  try {
    for await (const raw of source) {
      const piece = asBytes(raw);
      let off = 0;
      while (off < piece.length) {
        // From here on, more input follows everything taken so far.
        if (local && fill - local.done === inChunk)
          localChunk(local, seg.subarray(local.done, fill));
        if (local && local.done === inSize) {
          ahead.push({ out: local.out, ready: true });
          local = undefined;
          fill = 0;
          st.segmentHere(inSize);
          yield* drain();
        } else if (fill === inSize) {
          // A full worker segment with more bytes after it holds no final chunk.
          ahead.push(aheadOf(st.toWorker(seg, outs.take())));
          seg = free.pop() ?? new Uint8Array(inSize);
          fill = 0;
          yield* drain();
        }
        if (fill === 0 && !local) {
          // A new segment: a worker's, or this thread's when the workers have enough to do.
          outs.settle();
          if (atWorkers(ahead) >= pool.window) {
            // The workers' replies arrive as events, and a source that never waits (a buffer in
            // memory, a fast disk) never lets them land: the workers looked busy when they were
            // idle, and this thread sealed half of the segments. One turn of the event loop
            // first (perf7: this thread's share fell from 49.5 % to 41-43 %).
            await new Promise<void>((r) => setImmediate(r));
          }
          if (atWorkers(ahead) >= pool.window) local = { out: outs.next(), done: 0 };
        }
        if (local && fill === local.done && piece.length - off > inChunk && fill < inSize) {
          // A whole chunk inside the piece with more bytes after it: done in place, no copy.
          localChunk(local, piece.subarray(off, off + inChunk));
          fill += inChunk;
          off += inChunk;
          continue;
        }
        // Copy: a worker's segment, or (here) the rest of a chunk cut across pieces.
        const room = local ? local.done + inChunk - fill : inSize - fill;
        const n = Math.min(room, piece.length - off);
        seg.set(piece.subarray(off, off + n), fill);
        fill += n;
        off += n;
      }
    }
    yield* drain(true);
    if (local) {
      // The input ended inside a segment done here: its chunks done so far go out first, the
      // rest (one chunk or less, holding the final chunk) to the caller.
      const l = local;
      local = undefined;
      if (l.done > 0) {
        const out = l.out.subarray(0, (l.done / inChunk) * outChunk);
        yield out;
        outs.lend(l.out, true);
      } else {
        outs.lend(l.out, false);
      }
      seg.copyWithin(0, l.done, fill);
      fill -= l.done;
    }
    handedOver = true;
    return { seg, fill };
  } finally {
    for (const a of ahead) {
      // Abandoned on error: settle quietly; a worker's segment buffer that still comes back
      // (sealing: plaintext) is wiped.
      a.reply?.then(
        (r) => r.data.fill(0),
        () => {},
      );
      a.out?.fill(0); // done here, not written (an error came first)
    }
    local?.out.fill(0); // done here, not written
    if (!handedOver) seg.fill(0);
    for (const f of free) f.fill(0);
  }
}

export interface EncryptStreamOptions {
  /** The encoded header (sealFileHeader). Written first, unchanged. */
  header: Uint8Array;
  /** The DEK wrapped in `header`. */
  dek: Uint8Array;
  /** Must equal the header's fileNonce (checked). */
  fileNonce: Uint8Array;
  /** End `output` when done (default true, like stream.pipeline). */
  end?: boolean;
  /** Output is written in pieces of about this many bytes (default 1 MiB; ≤ 64 KiB = one per chunk). */
  writeSize?: number;
  /**
   * Seal on these worker threads (src/appliance/chunks.ts): every core for large inputs, the
   * same bytes as without. Output then leaves in 1 MiB segments whatever `writeSize` says.
   */
  parallel?: ChunkPool;
}

export interface StreamResult {
  plainSize: number;
  /** Bytes written to the output, header included. */
  fileSize: number;
}

/** The header an encryptor writes must be exactly one encoded header, for this fileNonce. */
export function checkHeaderFor(header: Uint8Array, fileNonce: Uint8Array): void {
  const decoded = decodeHeader(header);
  if (decoded.headerLength !== header.length) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'header has trailing bytes');
  }
  if (!equalBytes(decoded.fields.fileNonce, fileNonce)) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', "fileNonce does not match the header's");
  }
}

/** Encrypts `input` to `output` as a Blindfold file. Constant memory, one chunk buffer. */
export async function encryptStream(
  input: ByteSource,
  output: Writable,
  opts: EncryptStreamOptions,
): Promise<StreamResult> {
  checkHeaderFor(opts.header, opts.fileNonce);
  await keepFreedMemory(); // per-chunk garbage: reuse freed pages (util/memory.ts)
  const key = payloadKeyObject(opts.dek, opts.fileNonce);
  const buf = Buffer.allocUnsafe(CHUNK_SIZE);
  const nonce = Buffer.alloc(CHUNK_NONCE_SIZE);
  let fill = 0;
  let index = 0;
  let plainSize = 0;
  const flow: Flow = { queued: 0 };
  let fileSize = opts.header.length;

  // Seals `data` as chunk `index` into `out` at `at` (ciphertext, then tag); returns the bytes
  // written. update() copies out synchronously, so `data` is free again.
  const sealInto = (data: Uint8Array, last: boolean, out: Buffer, at: number): number => {
    const c = createCipheriv(ALG, key, chunkNonce(index, last, nonce), { authTagLength: TAG_SIZE });
    if (data.length > 0) out.set(c.update(data), at);
    c.final();
    out.set(c.getAuthTag(), at + data.length);
    index++;
    plainSize += data.length;
    fileSize += data.length + TAG_SIZE;
    return data.length + TAG_SIZE;
  };

  // Serial: sealed chunks gather in one output buffer of whole chunks (about writeSize bytes),
  // written when full; the buffers are recycled where the destination allows (OutRing).
  const perWrite = Math.max(1, Math.floor((opts.writeSize ?? DEFAULT_WRITE_SIZE) / CHUNK_SIZE));
  async function* sealer(source: AsyncIterable<unknown>): AsyncGenerator<Buffer> {
    const outs = new OutRing(output, perWrite * SEALED_CHUNK_SIZE, flow);
    yield Buffer.from(opts.header);
    let out = outs.next();
    let outFill = 0;
    for await (const raw of source) {
      const piece = asBytes(raw);
      let off = 0;
      while (off < piece.length) {
        // A full buffer is sealed as non-final only once we know more data follows.
        let whole: Uint8Array | undefined;
        if (fill === CHUNK_SIZE) {
          whole = buf;
          fill = 0;
        } else if (fill === 0 && piece.length - off > CHUNK_SIZE) {
          // Fast path: a whole chunk inside the piece, with more bytes after it, is sealed in place.
          whole = piece.subarray(off, off + CHUNK_SIZE);
          off += CHUNK_SIZE;
        }
        if (whole) {
          outFill += sealInto(whole, false, out, outFill);
          if (outFill === out.length) {
            collectStreamGarbage(outFill); // node:crypto's buffer per chunk (util/memory.ts)
            yield out;
            outs.lend(out, true);
            outs.settle();
            out = outs.next();
            outFill = 0;
          }
          continue;
        }
        const n = Math.min(CHUNK_SIZE - fill, piece.length - off);
        buf.set(piece.subarray(off, off + n), fill);
        fill += n;
        off += n;
      }
    }
    outFill += sealInto(buf.subarray(0, fill), true, out, outFill);
    fill = 0;
    yield out.subarray(0, outFill);
  }

  // Parallel: whole segments of non-final chunks are sealed by the workers and, when they have
  // enough in flight, by this thread too (so that every core runs AES, issue #9); results are
  // written in order, at most `maxAhead` segments in flight (constant memory). The last
  // segment's bytes (with the final chunk) are sealed here by `sealInto`.
  const pool = opts.parallel;
  async function* parallelSealer(source: AsyncIterable<unknown>): AsyncGenerator<Buffer> {
    const pk = payloadKey(opts.dek, opts.fileNonce);
    const session = pool!.session(pk);
    zeroize(pk);
    const outs = new OutRing(output, SEGMENT_SEALED, flow);
    let seg: Uint8Array | undefined;
    try {
      yield Buffer.from(opts.header);
      const last = yield* segmentsInOrder(source, {
        pool: pool!,
        outs,
        inSize: SEGMENT_PLAIN,
        inChunk: CHUNK_SIZE,
        outChunk: SEALED_CHUNK_SIZE,
        toWorker: (data, out) => {
          const reply = session.run('seal', index, data, SEGMENT_CHUNKS, out);
          index += SEGMENT_CHUNKS;
          plainSize += SEGMENT_PLAIN;
          fileSize += SEGMENT_SEALED;
          return reply;
        },
        chunkHere: (chunk, out, at) => {
          sealInto(chunk, false, out, at);
        },
        segmentHere: (bytes) => session.local(bytes),
        failed: () => new BlindfoldError('ERR_INTERNAL', 'sealing a segment failed'),
      });
      seg = last.seg;
      outs.settle();
      const out = outs.next();
      let outFill = 0;
      for (let o = 0; ; o += CHUNK_SIZE) {
        const isLast = o + CHUNK_SIZE >= last.fill;
        const chunk = seg.subarray(o, Math.min(o + CHUNK_SIZE, last.fill));
        outFill += sealInto(chunk, isLast, out, outFill);
        if (isLast) break;
      }
      yield out.subarray(0, outFill);
    } finally {
      session.end();
      seg?.fill(0);
    }
  }

  try {
    await pipeline(
      input as AsyncIterable<Uint8Array>,
      counted(flow, pool ? parallelSealer : sealer),
      output,
      {
        end: opts.end ?? true,
      },
    );
  } finally {
    buf.fill(0);
  }
  return { plainSize, fileSize };
}

export interface DecryptStreamOptions {
  dek: Uint8Array;
  /** From the file's (decoded) header. */
  fileNonce: Uint8Array;
  /** End `output` when done (default true). */
  end?: boolean;
  /** Plaintext is written in pieces of about this many bytes (default 1 MiB; ≤ 64 KiB = one per chunk). */
  writeSize?: number;
  /** Open on these worker threads (src/appliance/chunks.ts), verified as without. */
  parallel?: ChunkPool;
}

/** Opens one sealed chunk; returns its plaintext only if the tag verified, else undefined. */
export function openChunk(
  key: KeyObject,
  nonce: Buffer,
  sealed: Uint8Array,
  index: number,
  last: boolean,
): Buffer | undefined {
  const n = sealed.length - TAG_SIZE;
  const d = createDecipheriv(ALG, key, chunkNonce(index, last, nonce), { authTagLength: TAG_SIZE });
  d.setAuthTag(sealed.subarray(n));
  const pt = n > 0 ? d.update(sealed.subarray(0, n)) : EMPTY;
  try {
    d.final();
  } catch {
    pt.fill(0); // unverified plaintext never leaves this function
    return undefined;
  }
  return pt;
}

/**
 * The final chunk decides whether the stream is complete (SPEC.md §6): it must open with the last
 * flag set. A full-size final chunk that opens with the flag clear is an authentic chunk from the
 * middle of the stream, i.e. the file was truncated at a chunk boundary.
 */
export function openFinal(key: KeyObject, nonce: Buffer, sealed: Buffer, index: number): Buffer {
  const len = sealed.length;
  if (len < TAG_SIZE) throw new BlindfoldError('ERR_TRUNCATED', 'file ends before its final chunk');
  if (len === TAG_SIZE && index > 0) {
    throw new BlindfoldError(
      'ERR_DECODE',
      'invalid Blindfold payload: empty final chunk after full chunks',
    );
  }
  const pt = openChunk(key, nonce, sealed, index, true);
  if (pt) return pt;
  if (len === SEALED_CHUNK_SIZE) {
    const mid = openChunk(key, nonce, sealed, index, false);
    if (mid) {
      mid.fill(0);
      throw new BlindfoldError('ERR_TRUNCATED', 'file ends before its final chunk');
    }
  }
  throw decryptFailed();
}

/**
 * Decrypts a Blindfold payload (the bytes after the header: see readHeader) to `output`. Every
 * chunk is verified before its plaintext is written. Errors: ERR_DECRYPT (a chunk fails: wrong key,
 * tampering, reordering, appended data, a cut inside the final chunk), ERR_TRUNCATED (the stream
 * ends at a chunk boundary or inside a tag), ERR_DECODE (an impossible layout). On error the
 * output may hold verified plaintext of earlier chunks: discard it (util/atomic.ts abort()).
 */
export async function decryptStream(
  payload: ByteSource,
  output: Writable,
  opts: DecryptStreamOptions,
): Promise<{ plainSize: number }> {
  await keepFreedMemory(); // per-chunk garbage: reuse freed pages (util/memory.ts)
  const key = payloadKeyObject(opts.dek, opts.fileNonce);
  const buf = Buffer.allocUnsafe(SEALED_CHUNK_SIZE);
  const nonce = Buffer.alloc(CHUNK_NONCE_SIZE);
  let fill = 0;
  let index = 0;
  let plainSize = 0;
  const flow: Flow = { queued: 0 };

  // Opens the non-final chunk `index` into `out` at `at`; ERR_DECRYPT if its tag fails (nothing
  // unverified reaches `out`). The plaintext node:crypto returned is zeroed once copied.
  const openInto = (sealed: Uint8Array, out: Buffer, at: number): number => {
    const pt = openChunk(key, nonce, sealed, index, false);
    if (!pt) throw decryptFailed();
    out.set(pt, at);
    pt.fill(0);
    index++;
    plainSize += pt.length;
    return pt.length;
  };
  const finalInto = (sealed: Buffer, out: Buffer, at: number): number => {
    const pt = openFinal(key, nonce, sealed, index);
    out.set(pt, at);
    pt.fill(0);
    plainSize += pt.length;
    return pt.length;
  };

  const perWrite = Math.max(1, Math.floor((opts.writeSize ?? DEFAULT_WRITE_SIZE) / CHUNK_SIZE));
  async function* opener(source: AsyncIterable<unknown>): AsyncGenerator<Buffer> {
    const outs = new OutRing(output, perWrite * CHUNK_SIZE, flow);
    let out = outs.next();
    let outFill = 0;
    try {
      for await (const raw of source) {
        const piece = asBytes(raw);
        let off = 0;
        while (off < piece.length) {
          // A full sealed chunk followed by more bytes cannot be the final chunk.
          let sealed: Uint8Array | undefined;
          if (fill === SEALED_CHUNK_SIZE) {
            sealed = buf;
            fill = 0;
          } else if (fill === 0 && piece.length - off > SEALED_CHUNK_SIZE) {
            // Fast path: a whole sealed chunk inside the piece, with more bytes after it, is opened in place.
            sealed = piece.subarray(off, off + SEALED_CHUNK_SIZE);
            off += SEALED_CHUNK_SIZE;
          }
          if (sealed) {
            outFill += openInto(sealed, out, outFill);
            if (outFill === out.length) {
              collectStreamGarbage(outFill); // node:crypto's buffer per chunk (util/memory.ts)
              yield out;
              outs.lend(out, true);
              outs.settle();
              out = outs.next();
              outFill = 0;
            }
            continue;
          }
          const n = Math.min(SEALED_CHUNK_SIZE - fill, piece.length - off);
          buf.set(piece.subarray(off, off + n), fill);
          fill += n;
          off += n;
        }
      }
      outFill += finalInto(buf.subarray(0, fill), out, outFill);
    } catch (e) {
      out.fill(0, 0, outFill); // verified plaintext not written: the stream failed
      outs.wipe();
      throw e;
    }
    if (outFill > 0) yield out.subarray(0, outFill);
    outs.wipe(); // recycled plaintext buffers
  }

  // Parallel: whole segments of sealed chunks followed by more bytes (so none is final) go to the
  // workers or, when they have enough in flight, are opened here (every core runs AES); a segment
  // whose any tag fails ends the stream with ERR_DECRYPT before its plaintext is written. The
  // rest, final chunk included, is opened here exactly as by `opener`.
  const pool = opts.parallel;
  async function* parallelOpener(source: AsyncIterable<unknown>): AsyncGenerator<Buffer> {
    const pk = payloadKey(opts.dek, opts.fileNonce);
    const session = pool!.session(pk);
    zeroize(pk);
    const outs = new OutRing(output, SEGMENT_PLAIN, flow);
    let seg: Uint8Array | undefined;
    let tail: Buffer | undefined;
    try {
      const last = yield* segmentsInOrder(source, {
        pool: pool!,
        outs,
        inSize: SEGMENT_SEALED,
        inChunk: SEALED_CHUNK_SIZE,
        outChunk: CHUNK_SIZE,
        toWorker: (data, out) => {
          const reply = session.run('open', index, data, SEGMENT_CHUNKS, out);
          index += SEGMENT_CHUNKS;
          return reply;
        },
        chunkHere: (chunk, out, at) => {
          openInto(chunk, out, at);
        },
        segmentHere: (bytes) => session.local(bytes),
        collected: (out) => {
          plainSize += out.byteLength;
        },
        failed: decryptFailed,
      });
      seg = last.seg;
      outs.settle();
      tail = outs.next();
      let outFill = 0;
      let o = 0;
      // A full sealed chunk with more bytes after it cannot be the final chunk.
      for (; last.fill - o > SEALED_CHUNK_SIZE; o += SEALED_CHUNK_SIZE) {
        outFill += openInto(seg.subarray(o, o + SEALED_CHUNK_SIZE), tail, outFill);
      }
      outFill += finalInto(Buffer.from(seg.buffer, o, last.fill - o), tail, outFill);
      const out = tail;
      tail = undefined; // verified: it may be written
      if (outFill > 0) yield out.subarray(0, outFill);
    } finally {
      tail?.fill(0); // opened here, not written (an error came first)
      session.end();
      seg?.fill(0);
      outs.wipe(); // recycled plaintext buffers
    }
  }

  try {
    await pipeline(
      payload as AsyncIterable<Uint8Array>,
      counted(flow, pool ? parallelOpener : opener),
      output,
      {
        end: opts.end ?? true,
      },
    );
  } finally {
    buf.fill(0);
  }
  return { plainSize };
}

/**
 * Reads and decodes the header at the start of a byte stream. Returns the header and the rest of
 * the stream as `payload` (for decryptStream). The caller must consume or abandon `payload`.
 */
export async function readHeader(
  input: ByteSource,
): Promise<{ header: DecodedHeader; headerBytes: Uint8Array; payload: AsyncIterable<Uint8Array> }> {
  const it = iteratorOf(input);
  const parts: Uint8Array[] = [];
  let have = 0;
  let want = HEADER_PREFIX_SIZE;
  let got: Uint8Array = new Uint8Array(0);
  let header: DecodedHeader;
  try {
    for (;;) {
      while (have < want) {
        const r = await it.next();
        if (r.done)
          throw new BlindfoldError('ERR_TRUNCATED', 'file ends inside the Blindfold header');
        const piece = asBytes(r.value);
        parts.push(piece);
        have += piece.length;
      }
      got = parts.length === 1 ? parts[0]! : concat(...parts);
      parts.length = 0;
      parts.push(got);
      if (want !== HEADER_PREFIX_SIZE) break;
      want = peekHeaderLength(got);
    }
    header = decodeHeader(got);
  } catch (e) {
    await it.return?.();
    throw e;
  }
  const headerBytes = new Uint8Array(got.subarray(0, header.headerLength));
  const rest = got.subarray(header.headerLength);
  async function* payload(): AsyncGenerator<Uint8Array> {
    try {
      if (rest.length > 0) yield rest;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield asBytes(r.value);
      }
    } finally {
      await it.return?.();
    }
  }
  return { header, headerBytes, payload: payload() };
}

/**
 * Reads a file front to back in pieces of `pieceSize` bytes through three buffers used in turn,
 * so that reading a large file makes no garbage (issue #9: a fresh 1 MiB buffer per read, as
 * fs.createReadStream makes, is collected only after tens of MB), and reading one piece ahead:
 * the next read is under way while the consumer works on this piece, so reading and sealing
 * overlap (docs/PERFORMANCE.md "perf6"). A piece stays valid until the next-but-one is handed
 * out: for consumers that copy or use each piece before asking for more, as encryptStream,
 * decryptStream and readHeader do — not for one that keeps pieces (a PassThrough).
 */
export async function* readFilePieces(
  path: string,
  pieceSize = 1 << 20,
): AsyncGenerator<Uint8Array, void, undefined> {
  const fh = await open(path, 'r');
  const bufs = [0, 1, 2].map(() => Buffer.allocUnsafe(pieceSize));
  const read = (b: Buffer) => fh.read(b, 0, pieceSize, null);
  let pending: ReturnType<typeof read> | undefined = read(bufs[0]!);
  try {
    for (let turn = 0; ; turn = (turn + 1) % 3) {
      const { bytesRead } = await pending!;
      pending = undefined;
      if (bytesRead === 0) return;
      // The buffer read next is the one handed out two pieces ago: free by the contract above.
      pending = read(bufs[(turn + 1) % 3]!);
      yield bufs[turn]!.subarray(0, bytesRead);
    }
  } finally {
    // A read still under way must finish before its buffer is wiped and the file closed.
    await pending?.catch(() => {});
    for (const b of bufs) b.fill(0);
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Random access

/** A file to read at positions: a path (opened and closed here), a FileHandle or an fd (left open). */
export type FileRef = string | number | FileHandle;

interface Positional {
  size(): Promise<number>;
  read(buf: Buffer, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

const readFd = promisify(fsRead);
const fstatFd = promisify(fsFstat);

async function positional(file: FileRef): Promise<Positional> {
  if (typeof file === 'number') {
    return {
      size: async () => (await fstatFd(file)).size,
      read: async (buf, length, position) =>
        (await readFd(file, buf, 0, length, position)).bytesRead,
      close: async () => {},
    };
  }
  const owned = typeof file === 'string';
  let fh: FileHandle;
  try {
    fh = owned ? await open(file, 'r') : file;
  } catch (cause) {
    throw new BlindfoldError('ERR_IO', `cannot open ${String(file)}: ${(cause as Error).message}`, {
      cause,
    });
  }
  return {
    size: async () => (await fh.stat()).size,
    read: async (buf, length, position) => (await fh.read(buf, 0, length, position)).bytesRead,
    close: async () => {
      if (owned) await fh.close();
    },
  };
}

async function readExactly(
  f: Positional,
  buf: Buffer,
  length: number,
  position: number,
): Promise<Buffer> {
  let got = 0;
  while (got < length) {
    let n: number;
    try {
      n = await f.read(got === 0 ? buf : buf.subarray(got), length - got, position + got);
    } catch (cause) {
      throw new BlindfoldError('ERR_IO', `read failed: ${(cause as Error).message}`, { cause });
    }
    if (n === 0)
      throw new BlindfoldError(
        'ERR_TRUNCATED',
        'file ends before its final chunk (changed while reading?)',
      );
    got += n;
  }
  return buf.subarray(0, length);
}

/** Reads and decodes the header at the start of a file (not yet authenticated: see unwrapDek). */
export async function readFileHeader(file: FileRef): Promise<DecodedHeader> {
  const f = await positional(file);
  try {
    const size = await f.size();
    const prefix = await readExactly(
      f,
      Buffer.alloc(HEADER_PREFIX_SIZE),
      Math.min(size, HEADER_PREFIX_SIZE),
      0,
    );
    const len = peekHeaderLength(prefix);
    if (size < len)
      throw new BlindfoldError('ERR_TRUNCATED', 'file ends inside the Blindfold header');
    return decodeHeader(await readExactly(f, Buffer.alloc(len), len, 0));
  } finally {
    await f.close();
  }
}

/**
 * Decrypts plaintext bytes [start, end) of a Blindfold file, reading only the chunks that hold
 * them plus the final chunk, whose last flag (with the file size) proves that the file is not
 * truncated. `header` must be this file's header (readFileHeader) and `dek` its unwrapped DEK.
 * Errors: ERR_TRUNCATED / ERR_DECODE (size impossible or final chunk missing), ERR_DECRYPT (a
 * chunk fails), ERR_INVALID_ARGUMENT (range outside the plaintext), ERR_IO.
 */
export async function decryptRange(
  file: FileRef,
  start: number,
  end: number,
  dek: Uint8Array,
  header: Pick<DecodedHeader, 'headerLength'> & { fields: Pick<HeaderFields, 'fileNonce'> },
): Promise<Uint8Array> {
  const key = payloadKeyObject(dek, header.fields.fileNonce);
  const f = await positional(file);
  const buf = Buffer.allocUnsafe(SEALED_CHUNK_SIZE);
  const nonce = Buffer.alloc(CHUNK_NONCE_SIZE);
  try {
    const size = await f.size();
    const plainSize = plainSizeFromCiphertext(size, header.headerLength);
    const n = chunkCount(plainSize);
    const lastIndex = n - 1;
    const lastOff = chunkOffset(lastIndex, header.headerLength);
    const finalPt = openFinal(
      key,
      nonce,
      await readExactly(f, buf, size - lastOff, lastOff),
      lastIndex,
    );
    const { first, endChunk, skip } = chunksForRange(start, end, plainSize);
    const out = Buffer.allocUnsafe(end - start);
    let o = 0;
    let from = skip;
    for (let i = first; i < endChunk; i++) {
      let pt: Buffer | undefined;
      if (i === lastIndex) {
        pt = finalPt;
      } else {
        const sealed = await readExactly(
          f,
          buf,
          SEALED_CHUNK_SIZE,
          chunkOffset(i, header.headerLength),
        );
        pt = openChunk(key, nonce, sealed, i, false);
        if (!pt) throw decryptFailed();
      }
      const take = Math.min(pt.length - from, end - start - o);
      pt.copy(out, o, from, from + take);
      o += take;
      from = 0;
      if (pt !== finalPt) pt.fill(0);
    }
    finalPt.fill(0);
    return out;
  } catch (e) {
    if (isBlindfoldError(e)) throw e;
    throw new BlindfoldError('ERR_IO', `cannot read ${String(file)}: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    buf.fill(0);
    await f.close();
  }
}

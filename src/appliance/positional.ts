/**
 * File → file encryption and decryption at known positions (issue #9: the data path uses every
 * core). When both ends are regular files, every chunk's place is known before a byte is read:
 * plaintext chunk i lies at i × CHUNK_SIZE, sealed chunk i at header + i × SEALED_CHUNK_SIZE
 * (SPEC.md §6, core/format.ts). So each worker thread reads its own segment of the input with
 * pread, seals or opens it, and writes the result with pwrite at its own place in the output; no
 * bytes cross between threads, and nothing is copied by the calling thread. The output file is
 * the same, byte for byte, as encryptStream's (test/positional.test.ts).
 *
 * The calling thread hands out segments of SEGMENT_CHUNKS chunks (keeping each worker `window`
 * deep), takes a segment itself when the workers have enough queued, and does the final chunk,
 * the only one with the last flag, once every other chunk is done: so that, as in decryptStream,
 * a damaged chunk (ERR_DECRYPT) is reported before a truncated end (ERR_TRUNCATED, ERR_DECODE).
 *
 * Writes land out of order, so the output must not be visible until it is complete: callers
 * write into util/atomic.ts's temporary file, and abort() it on any error. A decryption writes
 * the plaintext of a segment only once every tag of the segment has verified; on error the
 * temporary file (holding only verified plaintext) is deleted. Plaintext in this module's and the
 * workers' buffers is overwritten by the next segment and wiped when the file is done, whatever
 * the outcome: hygiene, not a guarantee, since node:crypto keeps copies no API reaches (SPEC.md
 * §2.6).
 *
 * The input must not change while it is read: its size is taken at the start and checked at the
 * end (ERR_IO if it changed); a file that shrinks while read fails with ERR_IO (encrypting) or
 * ERR_TRUNCATED (decrypting).
 */
import { createCipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { fstat, readSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { zeroize } from '../core/bytes.ts';
import { BlindfoldError, decryptFailed } from '../core/errors.ts';
import {
  CHUNK_NONCE_SIZE,
  CHUNK_SIZE,
  chunkCount,
  chunkNonce,
  payloadKey,
  SEALED_CHUNK_SIZE,
  TAG_SIZE,
} from '../core/format.ts';
import { keepFreedMemory } from '../util/memory.ts';
import {
  type ChunkPool,
  type ChunkSession,
  type PositionalReply,
  SEGMENT_CHUNKS,
  SEGMENT_SEALED,
} from './chunks.ts';
import { checkHeaderFor, openChunk, openFinal, type StreamResult } from './stream.ts';

const fstatFd = promisify(fstat);

export interface PositionalOptions {
  /** The worker threads (chunks.ts); the calling thread works too. */
  pool: ChunkPool;
  /** Called as segments finish, with the input bytes done so far (for a progress bar). */
  onProgress?: (inputBytes: number) => void;
}

export interface EncryptFileOptions extends PositionalOptions {
  /** The encoded header (sealFileHeader), written at offset 0. */
  header: Uint8Array;
  dek: Uint8Array;
  fileNonce: Uint8Array;
}

export interface DecryptFileOptions extends PositionalOptions {
  dek: Uint8Array;
  /** From the file's header (readFileHeader). */
  fileNonce: Uint8Array;
}

/**
 * The payload key (SPEC.md §6.2), derived once: as a KeyObject for this thread and handed to the
 * pool's session for the workers; the derived bytes are wiped.
 */
function keyAndSession(opts: PositionalOptions & { dek: Uint8Array; fileNonce: Uint8Array }): {
  key: KeyObject;
  session: ChunkSession;
} {
  const pk = payloadKey(opts.dek, opts.fileNonce);
  try {
    return { key: createSecretKey(pk), session: opts.pool.session(pk) };
  } finally {
    zeroize(pk);
  }
}

/** The size of a regular file, or ERR_INVALID_ARGUMENT: positions need a file, not a pipe. */
async function regularFileSize(fd: number): Promise<number> {
  const st = await fstatFd(fd);
  if (!st.isFile()) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'positional input must be a regular file');
  }
  return st.size;
}

/** Reads `len` bytes at `pos` (fewer only at the end of the file). */
function readFull(fd: number, buf: Buffer, len: number, pos: number): number {
  let got = 0;
  while (got < len) {
    const n = readSync(fd, buf, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function writeFull(fd: number, buf: Uint8Array, len: number, pos: number): void {
  let done = 0;
  while (done < len) done += writeSync(fd, buf, done, len - done, pos + done);
}

function ioError(e: unknown): BlindfoldError {
  if (e instanceof BlindfoldError) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new BlindfoldError('ERR_IO', 'no space left on device', { cause: e });
  }
  return new BlindfoldError('ERR_IO', `file I/O failed: ${(e as Error).message}`, { cause: e });
}

interface JobPlan {
  pool: ChunkPool;
  session: ChunkSession;
  op: 'sealAt' | 'openAt';
  /** Non-final chunks, all done by runJobs. */
  chunks: number;
  fin: number;
  fout: number;
  inPos(chunk: number): number;
  outPos(chunk: number): number;
  /** Does `count` chunks from `first` on this thread (synchronously); throws on failure. */
  here(first: number, count: number): void;
  /** Input bytes of one chunk. */
  inChunk: number;
  /** What a worker's ESHORT means for this direction. */
  short(): BlindfoldError;
  onProgress?: (inputBytes: number) => void;
}

/**
 * Every non-final chunk, in segments: to the workers while they have fewer than `window` in
 * flight, else on this thread (then one event-loop turn, so that the workers' replies land and
 * they are fed again). Stops handing out work at the first failure, waits for what is in flight,
 * and throws that failure.
 */
async function runJobs(p: JobPlan): Promise<void> {
  const jobs = Math.ceil(p.chunks / SEGMENT_CHUNKS);
  let next = 0;
  let inFlight = 0;
  let done = 0;
  let failure: unknown;
  const pending = new Set<Promise<void>>();
  const finished = (count: number) => {
    done += count * p.inChunk;
    p.onProgress?.(done);
  };
  const settle = (r: PositionalReply, count: number) => {
    if ('done' in r) finished(count);
    else if ('failed' in r) failure ??= decryptFailed();
    else if (r.io === 'ESHORT') failure ??= p.short();
    else failure ??= new BlindfoldError('ERR_IO', `file I/O failed: ${r.io}: ${r.message}`);
  };
  const dispatch = (j: number) => {
    const first = j * SEGMENT_CHUNKS;
    const count = Math.min(SEGMENT_CHUNKS, p.chunks - first);
    inFlight++;
    const job = p.session
      .runAt(p.op, first, count, {
        fin: p.fin,
        inPos: p.inPos(first),
        fout: p.fout,
        outPos: p.outPos(first),
      })
      .then(
        (r) => settle(r, count),
        (e) => {
          failure ??= e;
        },
      )
      .finally(() => {
        inFlight--;
        pending.delete(job);
      });
    pending.add(job);
  };
  while (next < jobs && failure === undefined) {
    while (next < jobs && inFlight < p.pool.window) dispatch(next++);
    if (next >= jobs) break;
    const first = next++ * SEGMENT_CHUNKS;
    const count = Math.min(SEGMENT_CHUNKS, p.chunks - first);
    try {
      p.here(first, count);
      finished(count);
    } catch (e) {
      failure ??= e;
    }
    await new Promise<void>((r) => setImmediate(r));
  }
  while (pending.size > 0) await Promise.all([...pending]);
  if (failure !== undefined) throw failure;
}

/**
 * Encrypts the regular file open at `input` into `output` (a fresh file: util/atomic.ts's
 * temporary file) as a Blindfold file, header first. Both descriptors stay open.
 */
export async function encryptFileAt(
  input: number,
  output: number,
  opts: EncryptFileOptions,
): Promise<StreamResult> {
  checkHeaderFor(opts.header, opts.fileNonce);
  await keepFreedMemory(); // per-chunk garbage: reuse freed pages (util/memory.ts)
  const size = await regularFileSize(input);
  const n = chunkCount(size);
  const H = opts.header.length;
  const { key, session } = keyAndSession(opts);
  const nonce = Buffer.alloc(CHUNK_NONCE_SIZE);
  const plain = Buffer.allocUnsafeSlow(SEGMENT_CHUNKS * CHUNK_SIZE);
  const sealed = Buffer.allocUnsafeSlow(SEGMENT_SEALED);
  const short = () =>
    new BlindfoldError('ERR_IO', 'the input file ended early (changed while read)');
  // Seals `count` chunks of `plain` from index `first` into `sealed` (`last`: the final chunk).
  const seal = (first: number, count: number, last: boolean) => {
    for (let k = 0; k < count; k++) {
      const c = createCipheriv('aes-256-gcm', key, chunkNonce(first + k, last, nonce), {
        authTagLength: TAG_SIZE,
      });
      const len = last ? size - first * CHUNK_SIZE : CHUNK_SIZE;
      if (len > 0)
        sealed.set(
          c.update(plain.subarray(k * CHUNK_SIZE, k * CHUNK_SIZE + len)),
          k * SEALED_CHUNK_SIZE,
        );
      c.final();
      sealed.set(c.getAuthTag(), k * SEALED_CHUNK_SIZE + len);
    }
  };
  try {
    try {
      writeFull(output, opts.header, H, 0);
    } catch (e) {
      throw ioError(e);
    }
    await runJobs({
      pool: opts.pool,
      session,
      op: 'sealAt',
      chunks: n - 1,
      fin: input,
      fout: output,
      inPos: (i) => i * CHUNK_SIZE,
      outPos: (i) => H + i * SEALED_CHUNK_SIZE,
      inChunk: CHUNK_SIZE,
      short,
      onProgress: opts.onProgress,
      here: (first, count) => {
        try {
          const len = count * CHUNK_SIZE;
          // `plain` is overwritten by the next segment and wiped at the end (finally).
          if (readFull(input, plain, len, first * CHUNK_SIZE) !== len) throw short();
          seal(first, count, false);
          writeFull(output, sealed, count * SEALED_CHUNK_SIZE, H + first * SEALED_CHUNK_SIZE);
          session.local(len);
        } catch (e) {
          throw ioError(e);
        }
      },
    });
    // The final chunk (SPEC.md §6: the only one with the last flag), once all others are done.
    const last = n - 1;
    const len = size - last * CHUNK_SIZE;
    try {
      if (readFull(input, plain, len, last * CHUNK_SIZE) !== len) throw short();
      seal(last, 1, true);
      writeFull(output, sealed, len + TAG_SIZE, H + last * SEALED_CHUNK_SIZE);
    } catch (e) {
      throw ioError(e);
    }
    if ((await regularFileSize(input)) !== size) {
      throw new BlindfoldError('ERR_IO', 'the input file changed size while it was encrypted');
    }
    opts.onProgress?.(size);
    return { plainSize: size, fileSize: H + size + n * TAG_SIZE };
  } finally {
    session.end();
    plain.fill(0);
  }
}

/**
 * Decrypts the Blindfold file open at `input`, whose payload starts at `payloadStart` (the header's
 * length), into `output` (a fresh file: util/atomic.ts's temporary file). Errors as
 * decryptStream's: ERR_DECRYPT, ERR_TRUNCATED, ERR_DECODE, plus ERR_IO. On error `output` may hold
 * verified plaintext: the caller must discard it (abort()).
 */
export async function decryptFileAt(
  input: number,
  payloadStart: number,
  output: number,
  opts: DecryptFileOptions,
): Promise<{ plainSize: number }> {
  await keepFreedMemory();
  const size = await regularFileSize(input);
  const payload = Math.max(0, size - payloadStart);
  // As decryptStream reads it: every full sealed chunk with bytes after it is non-final; the
  // rest (1 to SEALED_CHUNK_SIZE bytes, or none) is the final chunk, judged by openFinal.
  const finalLen = payload > 0 ? ((payload - 1) % SEALED_CHUNK_SIZE) + 1 : 0;
  const chunks = (payload - finalLen) / SEALED_CHUNK_SIZE;
  const { key, session } = keyAndSession(opts);
  const nonce = Buffer.alloc(CHUNK_NONCE_SIZE);
  const sealed = Buffer.allocUnsafeSlow(SEGMENT_SEALED);
  const plain = Buffer.allocUnsafeSlow(SEGMENT_CHUNKS * CHUNK_SIZE);
  const short = () =>
    new BlindfoldError('ERR_TRUNCATED', 'file ends before its final chunk (changed while read?)');
  try {
    await runJobs({
      pool: opts.pool,
      session,
      op: 'openAt',
      chunks,
      fin: input,
      fout: output,
      inPos: (i) => payloadStart + i * SEALED_CHUNK_SIZE,
      outPos: (i) => i * CHUNK_SIZE,
      inChunk: SEALED_CHUNK_SIZE,
      short,
      onProgress: opts.onProgress,
      here: (first, count) => {
        const len = count * SEALED_CHUNK_SIZE;
        let got: number;
        try {
          got = readFull(input, sealed, len, payloadStart + first * SEALED_CHUNK_SIZE);
        } catch (e) {
          throw ioError(e);
        }
        if (got !== len) throw short();
        try {
          for (let k = 0; k < count; k++) {
            const at = k * SEALED_CHUNK_SIZE;
            const pt = openChunk(
              key,
              nonce,
              sealed.subarray(at, at + SEALED_CHUNK_SIZE),
              first + k,
              false,
            );
            if (!pt) throw decryptFailed();
            plain.set(pt, k * CHUNK_SIZE);
            pt.fill(0);
          }
          // Every tag of the segment verified: now, and only now, it may be written. `plain` is
          // overwritten by the next segment and wiped at the end (finally).
          writeFull(output, plain, count * CHUNK_SIZE, first * CHUNK_SIZE);
        } catch (e) {
          throw e instanceof BlindfoldError ? e : ioError(e);
        }
        session.local(len);
      },
    });
    let got: number;
    try {
      got = readFull(input, sealed, finalLen, payloadStart + chunks * SEALED_CHUNK_SIZE);
    } catch (e) {
      throw ioError(e);
    }
    if (got !== finalLen) throw short();
    const pt = openFinal(key, nonce, sealed.subarray(0, finalLen), chunks);
    try {
      writeFull(output, pt, pt.length, chunks * CHUNK_SIZE);
    } catch (e) {
      throw ioError(e);
    } finally {
      pt.fill(0);
    }
    if ((await regularFileSize(input)) !== size) {
      throw new BlindfoldError('ERR_IO', 'the input file changed size while it was decrypted');
    }
    opts.onProgress?.(size - payloadStart);
    return { plainSize: chunks * CHUNK_SIZE + pt.length };
  } finally {
    session.end();
    plain.fill(0);
  }
}

/**
 * A pool of worker threads that seal and open segments of chunks for encryptStream and
 * decryptStream (issue #9: the appliance's data path uses every core). The stream stays in charge
 * of order and framing: it cuts its input into segments of SEGMENT_CHUNKS whole chunks, hands
 * them round-robin to the workers, keeps at most `window` segments in flight (constant memory)
 * and writes the results in order. The final chunk (the only one with the last flag, SPEC.md §6)
 * and the rest of the last segment are sealed or opened on the calling thread, so that the
 * workers only ever see non-final chunks and the file format is byte for byte the serial one.
 *
 * What a worker receives: each chunk's nonce (computed here by format.ts), the stream's payload key (32 bytes, once per stream and worker, in a
 * transferred buffer the worker zeroes after making a KeyObject of it, forgotten at the end of the
 * stream) and the segments. A plaintext segment comes back as it went (the stream reuses the
 * buffer for its next segment, which overwrites it, and wipes its buffers when it ends: perf9, a
 * wipe per segment cost 7 % of a worker); an opened segment whose tag fails is zeroed and never
 * returned.
 *
 * For a file to a file (positional.ts), a worker gets no segment at all: only the nonces, two file
 * descriptors and two positions (`runAt`). It preads the segment into a buffer of its own, seals or
 * opens it and pwrites the result (an opened segment only once every tag in it verified). Its two
 * buffers are reused from job to job and wiped when the stream ends.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { BlindfoldError } from '../core/errors.ts';
import {
  CHUNK_NONCE_SIZE,
  CHUNK_SIZE,
  chunkNonce,
  SEALED_CHUNK_SIZE,
  TAG_SIZE,
} from '../core/format.ts';
import { collectStreamGarbage, GARBAGE_BYTES, keepFreedMemory } from '../util/memory.ts';

export interface ChunkJob {
  id: number;
  op: 'seal' | 'open';
  stream: number;
  /** The stream's payload key, with the first job a worker gets for the stream. */
  key?: Uint8Array;
  /** `count` chunk nonces of 12 bytes (SPEC.md §6.2, from format.ts chunkNonce). */
  nonces: Uint8Array;
  /** `count` plaintext chunks of CHUNK_SIZE (seal) or sealed chunks of CHUNK_SIZE + 16 (open). */
  data: Uint8Array;
  /** Where to write the result (transferred and returned): a released earlier `out`, if any. */
  out?: Uint8Array;
  count: number;
}

export type ChunkReply =
  | { id: number; out: Uint8Array; data: Uint8Array }
  | { id: number; failed: true; data: Uint8Array; out?: Uint8Array };

/**
 * A positional job (file → file, see positional.ts): the worker reads `count` chunks at `inPos` of
 * the file descriptor `fin`, seals or opens them, and writes the result at `outPos` of `fout`. No
 * data crosses the thread boundary, only the nonces and the positions.
 */
export interface PositionalJob {
  id: number;
  op: 'sealAt' | 'openAt';
  stream: number;
  key?: Uint8Array;
  nonces: Uint8Array;
  count: number;
  fin: number;
  inPos: number;
  fout: number;
  outPos: number;
}

/**
 * `done`: read, sealed or opened (every tag verified) and written. `failed`: a tag did not verify,
 * nothing of the job was written. `io`: a read or write failed (`code`: the errno name, or
 * 'ESHORT' when the input ended early), nothing more of the job was written.
 */
export type PositionalReply =
  | { id: number; done: true; bytes: number }
  | { id: number; failed: true; bytes: number }
  | { id: number; io: string; message: string; bytes: number };

/**
 * The worker: plain JavaScript over node:crypto only (no TypeScript loader, no libsodium: a worker
 * costs a few MB, not tens). It knows nothing of the format: the nonces come with the job.
 * A segment whose tag fails is zeroed, never returned; the plaintext node:crypto returns when
 * opening is zeroed once copied.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createCipheriv, createDecipheriv, createSecretKey } = require('node:crypto');
const { chunk: C, tag: T, gcBytes, segment: SEG } = workerData;
const S = C + T;
const keys = new Map();
// node:crypto returns a fresh buffer for every chunk; V8 frees such external memory only once it
// has grown by tens of MB per isolate, and then glibc keeps it. So the worker runs a collection
// every gcBytes bytes: its garbage stays under gcBytes instead of ~64 MB (issue #9, peak memory).
// A minor one (scavenge) suffices, as the buffers die young: measured on 2 cores (docs/
// PERFORMANCE.md, "Parallel file path") it keeps the same peak RSS as a full gc() at about half
// the extra CPU (a full collection per 8 MiB made the parallel path cost ~1 CPU s per GB more).
let collect;
if (gcBytes > 0) {
  collect = globalThis.gc;
  if (typeof collect !== 'function') {
    require('node:v8').setFlagsFromString('--expose-gc');
    collect = require('node:vm').runInNewContext('gc');
  }
}
let since = 0;
// Positional jobs (file → file): one input and one output buffer per worker, made at first use,
// overwritten by the next job and wiped when a stream ends (forget: one of them held plaintext;
// a wipe per job cost ~5 % of the worker, perf9).
const { readSync, writeSync } = require('node:fs');
let pin, pout;
function readFull(fd, buf, len, pos) {
  let got = 0;
  while (got < len) {
    const n = readSync(fd, buf, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}
function writeFull(fd, buf, len, pos) {
  let done = 0;
  while (done < len) done += writeSync(fd, buf, done, len - done, pos + done);
}
function positional(m, key, nonce) {
  const seal = m.op === 'sealAt';
  const inLen = m.count * (seal ? C : S);
  const outLen = m.count * (seal ? S : C);
  pin ??= Buffer.allocUnsafeSlow(SEG * S);
  pout ??= Buffer.allocUnsafeSlow(SEG * S);
  try {
    if (readFull(m.fin, pin, inLen, m.inPos) !== inLen) {
      return { id: m.id, io: 'ESHORT', message: 'the input ended early (changed while reading?)', bytes: inLen };
    }
    if (seal) {
      for (let i = 0; i < m.count; i++) {
        const c = createCipheriv('aes-256-gcm', key, nonce(i), { authTagLength: T });
        pout.set(c.update(pin.subarray(i * C, (i + 1) * C)), i * S);
        c.final();
        pout.set(c.getAuthTag(), i * S + C);
      }
    } else {
      for (let i = 0; i < m.count; i++) {
        const d = createDecipheriv('aes-256-gcm', key, nonce(i), { authTagLength: T });
        d.setAuthTag(pin.subarray(i * S + C, (i + 1) * S));
        const pt = d.update(pin.subarray(i * S, i * S + C));
        try {
          d.final();
        } catch {
          pt.fill(0);
          return { id: m.id, failed: true, bytes: inLen };
        }
        pout.set(pt, i * C);
        pt.fill(0);
      }
    }
    writeFull(m.fout, pout, outLen, m.outPos);
    return { id: m.id, done: true, bytes: inLen };
  } catch (e) {
    return { id: m.id, io: String((e && e.code) || 'EIO'), message: String((e && e.message) || e), bytes: inLen };
  } finally {
    since += inLen;
  }
}
parentPort.on('message', (m) => {
  if (m.op === 'forget') { keys.delete(m.stream); pin?.fill(0); pout?.fill(0); return; }
  if (m.key) { keys.set(m.stream, createSecretKey(m.key)); m.key.fill(0); }
  const key = keys.get(m.stream);
  if (m.op === 'sealAt' || m.op === 'openAt') {
    parentPort.postMessage(positional(m, key, (i) => m.nonces.subarray(i * 12, i * 12 + 12)));
    if (collect && since >= gcBytes) { since = 0; collect({ type: 'minor' }); }
    return;
  }
  const data = m.data;
  since += data.byteLength; // counted now: transferring data back detaches it
  const nonce = (i) => m.nonces.subarray(i * 12, i * 12 + 12);
  if (m.op === 'seal') {
    const out = m.out && m.out.byteLength >= m.count * S ? m.out.subarray(0, m.count * S) : new Uint8Array(m.count * S);
    for (let i = 0; i < m.count; i++) {
      const c = createCipheriv('aes-256-gcm', key, nonce(i), { authTagLength: T });
      out.set(c.update(data.subarray(i * C, (i + 1) * C)), i * S);
      c.final();
      out.set(c.getAuthTag(), i * S + C);
    }
    parentPort.postMessage({ id: m.id, out, data }, [out.buffer, data.buffer]);
  } else {
    const out = m.out && m.out.byteLength >= m.count * C ? m.out.subarray(0, m.count * C) : new Uint8Array(m.count * C);
    let ok = true;
    for (let i = 0; i < m.count; i++) {
      const d = createDecipheriv('aes-256-gcm', key, nonce(i), { authTagLength: T });
      d.setAuthTag(data.subarray(i * S + C, (i + 1) * S));
      const pt = d.update(data.subarray(i * S, i * S + C));
      try {
        d.final();
      } catch {
        pt.fill(0);
        out.fill(0);
        ok = false;
        break;
      }
      out.set(pt, i * C);
      pt.fill(0);
    }
    if (ok) parentPort.postMessage({ id: m.id, out, data }, [out.buffer, data.buffer]);
    else parentPort.postMessage({ id: m.id, failed: true, data, out }, [data.buffer, out.buffer]);
  }
  if (collect && since >= gcBytes) { since = 0; collect({ type: 'minor' }); }
});
parentPort.postMessage({ ready: true });
`;

function startChunkWorker(): Promise<Worker> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        chunk: CHUNK_SIZE,
        tag: TAG_SIZE,
        gcBytes: GARBAGE_BYTES,
        segment: SEGMENT_CHUNKS,
      },
      // A worker holds two segments at a time and a KeyObject: a small heap is plenty.
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 },
    });
    w.once('message', (m: { ready?: boolean }) =>
      m?.ready ? resolve(w) : reject(new Error('bad start')),
    );
    w.once('error', reject);
  });
}

/** Chunks per segment: 16 × 64 KiB = 1 MiB, the size of one output write. */
export const SEGMENT_CHUNKS = 16;
export const SEGMENT_PLAIN = SEGMENT_CHUNKS * CHUNK_SIZE;
export const SEGMENT_SEALED = SEGMENT_CHUNKS * SEALED_CHUNK_SIZE;

export interface ChunkSession {
  /**
   * Seals or opens `count` whole non-final chunks from index `first`. `data` is transferred and
   * comes back unchanged (the caller wipes it); `out`, if given, is transferred and filled with the result, so
   * that a stream can recycle its buffers instead of making garbage of one per segment.
   */
  run(
    op: 'seal' | 'open',
    first: number,
    data: Uint8Array,
    count: number,
    out?: Uint8Array,
  ): Promise<ChunkReply>;
  /**
   * Seals or opens `count` whole non-final chunks from index `first`, reading them at `inPos` of
   * the file descriptor `fin` and writing the result at `outPos` of `fout` (positional.ts). The
   * descriptors stay open and owned by the caller until the reply.
   */
  runAt(
    op: 'sealAt' | 'openAt',
    first: number,
    count: number,
    io: { fin: number; inPos: number; fout: number; outPos: number },
  ): Promise<PositionalReply>;
  /** The calling thread sealed or opened a segment of `bytes` input bytes itself (stats only). */
  local(bytes: number): void;
  /** The workers forget the stream's key. */
  end(): void;
}

export interface ChunkPool {
  readonly size: number;
  /**
   * Segments sealed or opened in parallel so far (by the workers or by a calling thread while
   * the workers were busy), their input bytes, and how many of them the calling threads did
   * (`local`): a debug metric.
   */
  stats(): { workers: number; segments: number; bytes: number; local: number };
  /** Segments in flight per stream that keep every worker busy. */
  readonly window: number;
  session(payloadKey: Uint8Array): ChunkSession;
  close(): Promise<void>;
}

let nextStream = 0;

/**
 * Segments queued per worker. The calling thread seals or opens a segment itself when the
 * workers have this many (stream.ts segmentsInOrder). 4 was tried in perf7 (docs/PERFORMANCE.md)
 * against this 2: no gain that stood above the noise in a fresh process, +4 MiB of peak memory.
 */
const WINDOW_PER_WORKER = 2;

/**
 * Workers per pool: one core is left to the calling thread, which reads, frames, copies segments
 * and writes (for a file that is about as much CPU as the sealing). Measured on 2 cores (docs/
 * PERFORMANCE.md, "Parallel file path"): one worker costs ~1.4 CPU s per GB against ~2.5 for two,
 * runs faster, and peaks ~20 MB lower (one isolate and a window of 2 segments, not 4).
 */
export function defaultWorkers(cores = os.availableParallelism()): number {
  return Math.max(1, cores - 1);
}

export async function createChunkPool(workers = defaultWorkers()): Promise<ChunkPool> {
  if (!Number.isInteger(workers) || workers < 1 || workers > 256) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'workers must be an integer from 1 to 256');
  }
  // The workers' collections free ~8 MiB at a time: keep it for reuse (util/memory.ts).
  await keepFreedMemory();
  const slots = await Promise.all(
    Array.from({ length: workers }, async () => {
      const worker = await startChunkWorker();
      const pending = new Map<
        number,
        { resolve: (r: ChunkReply | PositionalReply) => void; reject: (e: unknown) => void }
      >();
      worker.on('message', (m: ChunkReply | PositionalReply) => {
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        if (pending.size === 0) worker.unref();
        doneSegments++;
        doneBytes += 'bytes' in m ? m.bytes : m.data.byteLength;
        p.resolve(m);
      });
      const fail = (e: unknown) => {
        for (const p of pending.values()) {
          p.reject(
            new BlindfoldError('ERR_INTERNAL', 'an encryption worker stopped', { cause: e }),
          );
        }
        pending.clear();
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`exit ${code}`)));
      worker.unref();
      return { worker, pending };
    }),
  );
  let nextId = 0;
  let rr = 0;
  let doneSegments = 0;
  let doneBytes = 0;
  let localSegments = 0;
  const post = (w: Worker, m: unknown, transfer: ArrayBuffer[]) => w.postMessage(m, transfer);
  return {
    size: workers,
    stats: () => ({ workers, segments: doneSegments, bytes: doneBytes, local: localSegments }),
    window: WINDOW_PER_WORKER * workers,
    session(payloadKey: Uint8Array): ChunkSession {
      const stream = nextStream++;
      const keyed = new Set<number>();
      const key = payloadKey.slice();
      // Numbers the job, adds its chunk nonces (and the key, the first time a worker sees this
      // stream), and posts it round-robin.
      const send = (
        job: Omit<ChunkJob | PositionalJob, 'id' | 'stream' | 'nonces'>,
        first: number,
        transfer: ArrayBuffer[],
      ): Promise<ChunkReply | PositionalReply> => {
        const i = rr++ % slots.length;
        const slot = slots[i]!;
        const id = nextId++;
        const nonces = new Uint8Array(job.count * CHUNK_NONCE_SIZE);
        for (let k = 0; k < job.count; k++) {
          chunkNonce(
            first + k,
            false,
            nonces.subarray(k * CHUNK_NONCE_SIZE, (k + 1) * CHUNK_NONCE_SIZE),
          );
        }
        const full = { ...job, id, stream, nonces } as ChunkJob | PositionalJob;
        transfer.push(nonces.buffer as ArrayBuffer);
        if (!keyed.has(i)) {
          keyed.add(i);
          full.key = key.slice();
          transfer.push(full.key.buffer as ArrayBuffer);
        }
        return new Promise((resolve, reject) => {
          if (slot.pending.size === 0) slot.worker.ref();
          slot.pending.set(id, { resolve, reject });
          post(slot.worker, full, transfer);
        });
      };
      return {
        run(op, first, data, count, out) {
          const transfer = [data.buffer as ArrayBuffer];
          const job = { op, data, count } as ChunkJob;
          if (out && out.buffer !== data.buffer) {
            job.out = out;
            transfer.push(out.buffer as ArrayBuffer);
          }
          return send(job, first, transfer) as Promise<ChunkReply>;
        },
        runAt(op, first, count, io) {
          return send({ op, count, ...io }, first, []) as Promise<PositionalReply>;
        },
        local(bytes) {
          localSegments++;
          doneSegments++;
          doneBytes += bytes;
          // node:crypto's per-chunk buffers on this thread too (util/memory.ts)
          collectStreamGarbage(bytes);
        },
        end() {
          key.fill(0);
          for (const i of keyed) post(slots[i]!.worker, { op: 'forget', stream }, []);
        },
      };
    },
    async close() {
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}

let shared: Promise<ChunkPool> | undefined;

/** One pool per process, defaultWorkers() workers, started at first use (idle workers are unref'd). */
export function sharedChunkPool(): Promise<ChunkPool> {
  shared ??= createChunkPool();
  return shared;
}

/** Below this many bytes a stream is sealed on the calling thread (a segment hand-off costs more). */
export const PARALLEL_MIN_BYTES = 8 << 20;

/**
 * The shared pool for a stream of `size` bytes (undefined: unknown, e.g. stdin or a chunked HTTP
 * body), or undefined when the serial path is the better one: small inputs, a single core.
 */
export async function parallelFor(size: number | undefined): Promise<ChunkPool | undefined> {
  if (os.availableParallelism() < 2) return undefined;
  if (size !== undefined && size < PARALLEL_MIN_BYTES) return undefined;
  return sharedChunkPool();
}

/**
 * A pool of worker threads that seal and open segments of chunks for encryptStream and
 * decryptStream (issue #9: the appliance's data path uses every core). The stream stays in charge
 * of order and framing: it cuts its input into segments of SEGMENT_CHUNKS whole chunks, hands
 * them round-robin to the workers, keeps at most `window` segments in flight (constant memory)
 * and writes the results in order. The final chunk (the only one with the last flag, SPEC.md §6)
 * and the rest of the last segment are sealed or opened on the calling thread, so that the
 * workers only ever see non-final chunks and the file format is byte for byte the serial one.
 *
 * What a worker receives: the stream's payload key (32 bytes, once per stream and worker, in a
 * transferred buffer the worker zeroes after making a KeyObject of it, forgotten at the end of the
 * stream) and the segments. Plaintext buffers are zeroed by the worker after sealing; an opened
 * segment whose tag fails is zeroed and never returned.
 */
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { BlindfoldError } from '../core/errors.ts';
import { CHUNK_SIZE, SEALED_CHUNK_SIZE } from '../core/format.ts';
import { startModuleWorker } from '../util/ts-worker.ts';
import type { ChunkJob, ChunkReply } from './chunk-worker.ts';

/** Chunks per segment: 16 × 64 KiB = 1 MiB, the size of one output write. */
export const SEGMENT_CHUNKS = 16;
export const SEGMENT_PLAIN = SEGMENT_CHUNKS * CHUNK_SIZE;
export const SEGMENT_SEALED = SEGMENT_CHUNKS * SEALED_CHUNK_SIZE;

export interface ChunkSession {
  /** Seals or opens `count` whole non-final chunks from index `first`. */
  run(op: 'seal' | 'open', first: number, data: Uint8Array, count: number): Promise<ChunkReply>;
  /** The workers forget the stream's key. */
  end(): void;
}

export interface ChunkPool {
  readonly size: number;
  /** Segments in flight per stream that keep every worker busy. */
  readonly window: number;
  session(payloadKey: Uint8Array): ChunkSession;
  close(): Promise<void>;
}

let nextStream = 0;

export async function createChunkPool(workers = os.availableParallelism()): Promise<ChunkPool> {
  if (!Number.isInteger(workers) || workers < 1 || workers > 256) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'workers must be an integer from 1 to 256');
  }
  const url = new URL('./chunk-worker.ts', import.meta.url);
  const slots = await Promise.all(
    Array.from({ length: workers }, async () => {
      const worker = await startModuleWorker(url);
      const pending = new Map<
        number,
        { resolve: (r: ChunkReply) => void; reject: (e: unknown) => void }
      >();
      worker.on('message', (m: ChunkReply) => {
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        if (pending.size === 0) worker.unref();
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
  const post = (w: Worker, m: unknown, transfer: ArrayBuffer[]) => w.postMessage(m, transfer);
  return {
    size: workers,
    window: Math.max(2, 2 * workers),
    session(payloadKey: Uint8Array): ChunkSession {
      const stream = nextStream++;
      const keyed = new Set<number>();
      const key = payloadKey.slice();
      return {
        run(op, first, data, count) {
          const i = rr++ % slots.length;
          const slot = slots[i]!;
          const id = nextId++;
          const job: ChunkJob = { id, op, stream, first, data, count };
          const transfer = [data.buffer as ArrayBuffer];
          if (!keyed.has(i)) {
            keyed.add(i);
            job.key = key.slice();
            transfer.push(job.key.buffer as ArrayBuffer);
          }
          return new Promise<ChunkReply>((resolve, reject) => {
            if (slot.pending.size === 0) slot.worker.ref();
            slot.pending.set(id, { resolve, reject });
            post(slot.worker, job, transfer);
          });
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

/** One pool per process, one worker per core, started at first use (idle workers are unref'd). */
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

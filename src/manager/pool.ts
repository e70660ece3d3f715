/**
 * A pool of worker threads for the manager's group operations (issue #9: the manager uses every
 * core). The HTTP server, TLS, JSON, ticket checks, store and audit stay on the main thread; the
 * scalar multiplications (or modular exponentiations) of src/manager/group-ops.ts run on one
 * worker per core, each with its own libsodium instance (initialised when the worker loads
 * src/core/sodium.ts).
 *
 * What crosses the thread boundary is a GroupJob: only what its operation needs (group-ops.ts).
 * The jobs of one event-loop turn travel in one message per worker, packed into one transferred
 * buffer (group-ops.ts packJobs); this thread zeroes its copies of their secrets once packed, and
 * the worker zeroes the buffer after use.
 *
 * `workers: 0` runs the jobs inline (same results, same errors), e.g. on a single core. The
 * workers start in the background; jobs that come before them run inline too.
 */
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { zeroize } from '../core/bytes.ts';
import { BlindfoldError, ERROR_CODES, type ErrorCode } from '../core/errors.ts';
import { startModuleWorker } from '../util/ts-worker.ts';
import { type GroupJob, packJobs, runGroupJob, unpackReplies } from './group-ops.ts';

export interface GroupPool {
  run(job: GroupJob): Promise<Uint8Array>;
  /** Worker threads asked for (0: inline). */
  readonly size: number;
  /**
   * Settles once every worker asked for has started or failed to. Until then, jobs run on the
   * workers already up, or inline: same results, same errors, so nothing waits for it.
   */
  readonly ready: Promise<void>;
  /** Worker threads up now. */
  workersUp(): number;
  close(): Promise<void>;
}

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (y: Uint8Array) => void; reject: (e: unknown) => void }>;
  outbox: { id: number; job: GroupJob }[];
  scheduled: boolean;
}

/**
 * The default: one thread per core, the main thread counting as one, so cores − 1 workers (none
 * on a single core: the main thread does the group operations itself). The main thread is busy
 * too (TLS, HTTP, tickets, the store, the audit log: about half of a recovery's manager CPU), and
 * a worker per core on top of it oversubscribes the cores: measured on 2 cores (docs/
 * PERFORMANCE.md "perf6"), 2 workers cost 0.05-0.17 ms more manager CPU per recovery than none
 * and up to 0.09 ms more than one. The appliance's file path keeps cores − 1 workers for the
 * same reason (src/appliance/chunks.ts).
 */
export function defaultWorkers(): number {
  return Math.max(0, os.availableParallelism() - 1);
}

/**
 * `onStartError` hears of a worker that could not start (the pool then runs with fewer, inline
 * at worst); a worker that stops later is replaced.
 */
export async function createGroupPool(
  workers = defaultWorkers(),
  onStartError: (e: unknown) => void = () => {},
): Promise<GroupPool> {
  if (!Number.isInteger(workers) || workers < 0 || workers > 256) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'workers must be an integer from 0 to 256');
  }
  if (workers === 0) {
    return {
      size: 0,
      ready: Promise.resolve(),
      workersUp: () => 0,
      run: async (job) => runGroupJob(job),
      close: async () => {},
    };
  }
  let nextId = 0;
  let closed = false;
  const slots: Slot[] = [];

  const spawn = async (): Promise<Slot> => {
    const worker = await startModuleWorker(new URL('./group-worker.ts', import.meta.url));
    const slot: Slot = { worker, pending: new Map(), outbox: [], scheduled: false };
    worker.on('message', (packed: Uint8Array) => {
      for (const m of unpackReplies(packed)) {
        const p = slot.pending.get(m.id);
        if (!p) continue;
        slot.pending.delete(m.id);
        if (m.y) p.resolve(m.y);
        else p.reject(jobError(m.error));
      }
      if (slot.pending.size === 0) worker.unref();
    });
    const fail = (e: unknown) => {
      for (const p of slot.pending.values()) {
        p.reject(new BlindfoldError('ERR_INTERNAL', 'a group worker stopped', { cause: e }));
      }
      slot.pending.clear();
      // Replace it, so that one crash does not shrink the pool for good.
      const i = slots.indexOf(slot);
      if (i >= 0 && !closed) {
        spawn().then(
          (s) => {
            if (closed) void s.worker.terminate();
            else slots[i] = s;
          },
          () => slots.splice(slots.indexOf(slot), 1),
        );
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!closed) fail(new Error(`group worker exited with ${code}`));
    });
    // Idle workers must not keep the process alive (it ends when the server closes).
    worker.unref();
    return slot;
  };

  // The workers start in the background: each loads its modules and libsodium (0.35-0.6 s on 2
  // cores), which made up a third of a manager's start. Jobs that come first run inline.
  const ready = Promise.allSettled(
    Array.from({ length: workers }, () =>
      spawn().then(async (s) => {
        if (closed) await s.worker.terminate();
        else slots.push(s);
      }),
    ),
  ).then((started) => {
    for (const r of started) if (r.status === 'rejected') onStartError(r.reason);
  });

  // Jobs leave in one message per worker per event-loop turn: a batch recovery's items, or
  // concurrent requests, share the cost of postMessage (measured: ~0.3 ms per message).
  const flush = (slot: Slot) => {
    slot.scheduled = false;
    const jobs = slot.outbox;
    slot.outbox = [];
    if (jobs.length === 0) return;
    const packed = packJobs(jobs);
    // Packed into a buffer of their own, which is transferred: this thread's copies go now.
    for (const { job } of jobs) zeroize(job.q, job.sk, job.x);
    slot.worker.postMessage(packed, [packed.buffer as ArrayBuffer]);
  };

  return {
    size: workers,
    ready,
    workersUp: () => slots.length,
    run(job: GroupJob): Promise<Uint8Array> {
      if (closed || slots.length === 0) return Promise.resolve().then(() => runGroupJob(job));
      // Least loaded worker (ties: the first); jobs are small and uniform.
      let slot = slots[0]!;
      for (const s of slots) if (s.pending.size < slot.pending.size) slot = s;
      const id = nextId++;
      return new Promise((resolve, reject) => {
        // A worker with jobs keeps the process alive; an idle one does not.
        if (slot.pending.size === 0) slot.worker.ref();
        slot.pending.set(id, { resolve, reject });
        slot.outbox.push({ id, job });
        if (!slot.scheduled) {
          slot.scheduled = true;
          setImmediate(flush, slot);
        }
      });
    },
    async close() {
      closed = true;
      await ready.catch(() => {}); // a worker still starting is terminated as it comes up
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}

function jobError(e: { code: string; message: string } | undefined): BlindfoldError {
  const code: ErrorCode = (ERROR_CODES as readonly string[]).includes(e?.code ?? '')
    ? (e!.code as ErrorCode)
    : 'ERR_INTERNAL';
  return new BlindfoldError(code, e?.message ?? 'group operation failed');
}

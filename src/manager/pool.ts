/**
 * A pool of worker threads for the manager's group operations (issue #9: the manager uses every
 * core). The HTTP server, TLS, JSON, ticket checks, store and audit stay on the main thread; the
 * scalar multiplications (or modular exponentiations) of src/manager/group-ops.ts run on one
 * worker per core, each with its own libsodium instance (initialised when the worker loads
 * src/core/sodium.ts).
 *
 * What crosses the thread boundary is a GroupJob: only what its operation needs (group-ops.ts).
 * Its byte arrays are copied into fresh buffers that are transferred, not cloned, so no extra
 * copy of a secret stays behind on the main thread; the worker zeroes them after use.
 *
 * `workers: 0` runs the jobs inline (same results, same errors), e.g. on a single core.
 */
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { BlindfoldError, ERROR_CODES, type ErrorCode } from '../core/errors.ts';
import { startModuleWorker } from '../util/ts-worker.ts';
import { type GroupJob, runGroupJob } from './group-ops.ts';

export interface GroupPool {
  run(job: GroupJob): Promise<Uint8Array>;
  /** Worker threads in use (0: inline). */
  readonly size: number;
  close(): Promise<void>;
}

type Reply = { id: number; y?: Uint8Array; error?: { code: string; message: string } };

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (y: Uint8Array) => void; reject: (e: unknown) => void }>;
}

/** The default: one worker per core, none on a single core (the main thread does them). */
export function defaultWorkers(): number {
  const n = os.availableParallelism();
  return n > 1 ? n : 0;
}

export async function createGroupPool(workers = defaultWorkers()): Promise<GroupPool> {
  if (!Number.isInteger(workers) || workers < 0 || workers > 256) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'workers must be an integer from 0 to 256');
  }
  if (workers === 0) {
    return { size: 0, run: async (job) => runGroupJob(job), close: async () => {} };
  }
  let nextId = 0;
  let closed = false;
  const slots: Slot[] = [];

  const spawn = async (): Promise<Slot> => {
    const worker = await startModuleWorker(new URL('./group-worker.ts', import.meta.url));
    const slot: Slot = { worker, pending: new Map() };
    worker.on('message', (m: Reply) => {
      const p = slot.pending.get(m.id);
      if (!p) return;
      slot.pending.delete(m.id);
      if (slot.pending.size === 0) worker.unref();
      if (m.y) p.resolve(m.y);
      else p.reject(jobError(m.error));
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

  for (const s of await Promise.all(Array.from({ length: workers }, spawn))) slots.push(s);

  return {
    size: workers,
    run(job: GroupJob): Promise<Uint8Array> {
      if (closed || slots.length === 0) return Promise.resolve().then(() => runGroupJob(job));
      // Least loaded worker (ties: the first); jobs are small and uniform.
      let slot = slots[0]!;
      for (const s of slots) if (s.pending.size < slot.pending.size) slot = s;
      const id = nextId++;
      const moved: GroupJob = {
        op: job.op,
        scheme: job.scheme,
        pk: job.pk,
        q: own(job.q),
        sk: job.sk && own(job.sk),
        x: job.x && own(job.x),
        blinded: job.blinded && own(job.blinded),
      };
      const transfer = [moved.q, moved.sk, moved.x, moved.blinded]
        .filter((b): b is Uint8Array => b !== undefined)
        .map((b) => b.buffer as ArrayBuffer);
      return new Promise((resolve, reject) => {
        // A worker with jobs keeps the process alive; an idle one does not.
        if (slot.pending.size === 0) slot.worker.ref();
        slot.pending.set(id, { resolve, reject });
        slot.worker.postMessage({ id, job: moved }, transfer);
      });
    },
    async close() {
      closed = true;
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}

/** A copy in a buffer of its own (transferable); the original is zeroed by the caller. */
function own(b: Uint8Array): Uint8Array {
  const c = new Uint8Array(b.length);
  c.set(b);
  b.fill(0);
  return c;
}

function jobError(e: { code: string; message: string } | undefined): BlindfoldError {
  const code: ErrorCode = (ERROR_CODES as readonly string[]).includes(e?.code ?? '')
    ? (e!.code as ErrorCode)
    : 'ERR_INTERNAL';
  return new BlindfoldError(code, e?.message ?? 'group operation failed');
}

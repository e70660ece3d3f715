/**
 * The worker side of src/manager/pool.ts: runs GroupJobs (group-ops.ts) and answers with the
 * encoded result or {code, message}. Loaded by src/util/ts-worker.ts.
 */
import { parentPort } from 'node:worker_threads';
import { BlindfoldError } from '../core/errors.ts';
import { type JobReply, packReplies, runGroupJob, unpackJobs } from './group-ops.ts';

if (parentPort) {
  const port = parentPort;
  // A message is the jobs of one event-loop turn of the main thread; one reply answers them all.
  port.on('message', (packed: Uint8Array) => {
    const replies: JobReply[] = unpackJobs(packed).map((m) => {
      try {
        return { id: m.id, y: runGroupJob(m.job) };
      } catch (e) {
        return {
          id: m.id,
          error:
            e instanceof BlindfoldError
              ? { code: e.code, message: e.message }
              : { code: 'ERR_INTERNAL', message: 'group operation failed' },
        };
      }
    });
    packed.fill(0); // the jobs' secrets (runGroupJob zeroed them in place already)
    const out = packReplies(replies);
    port.postMessage(out, [out.buffer as ArrayBuffer]);
  });
  port.postMessage({ ready: true });
}

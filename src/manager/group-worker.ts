/**
 * The worker side of src/manager/pool.ts: runs GroupJobs (group-ops.ts) and answers with the
 * encoded result or {code, message}. Loaded by src/util/ts-worker.ts.
 */
import { parentPort } from 'node:worker_threads';
import { BlindfoldError } from '../core/errors.ts';
import { type GroupJob, runGroupJob } from './group-ops.ts';

if (parentPort) {
  const port = parentPort;
  port.on('message', (m: { id: number; job: GroupJob }) => {
    try {
      const y = runGroupJob(m.job);
      port.postMessage({ id: m.id, y }, [y.buffer as ArrayBuffer]);
    } catch (e) {
      port.postMessage({
        id: m.id,
        error:
          e instanceof BlindfoldError
            ? { code: e.code, message: e.message }
            : { code: 'ERR_INTERNAL', message: 'group operation failed' },
      });
    }
  });
  port.postMessage({ ready: true });
}

/**
 * Worker threads that run one of our TypeScript modules. The project runs from its sources
 * through tsx, and a worker inherits neither loader hooks registered at run time (bin/blindfold.mjs)
 * nor the parent's cwd-relative resolution, so the worker first registers tsx (resolved from here)
 * and then imports `moduleUrl`, which serves `parentPort` itself and posts {ready: true} last.
 * Each worker is its own isolate: libsodium (src/core/sodium.ts) initialises again in it.
 */
import { Worker } from 'node:worker_threads';

const SOURCE = `
const { workerData } = require('node:worker_threads');
(async () => {
  const { register } = await import(workerData.tsxUrl);
  register();
  await import(workerData.moduleUrl);
})().catch((e) => { console.error(e); process.exit(1); });
`;

/** Starts a worker running `moduleUrl`; resolves once it posted {ready: true}. */
export function startModuleWorker(moduleUrl: URL): Promise<Worker> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(SOURCE, {
      eval: true,
      workerData: { tsxUrl: import.meta.resolve('tsx/esm/api'), moduleUrl: moduleUrl.href },
    });
    const onMessage = (m: unknown) => {
      if ((m as { ready?: boolean })?.ready === true) {
        worker.off('message', onMessage);
        worker.off('error', reject);
        worker.off('exit', onExit);
        resolve(worker);
      }
    };
    const onExit = (code: number) => reject(new Error(`worker exited with ${code} before ready`));
    worker.on('message', onMessage);
    worker.once('error', reject);
    worker.once('exit', onExit);
  });
}

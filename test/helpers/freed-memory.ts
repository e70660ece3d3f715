/**
 * Child process of test/memory.test.ts. Makes the garbage the file path makes (a node:crypto
 * AES-GCM output buffer per 64 KiB chunk, a minor collection every 8 MiB, as src/util/memory.ts
 * and the chunk workers do), on the main thread and on a worker thread, and prints the minor page
 * faults per MiB of it as JSON {main, worker}. With argv[2] = 'keep' it loads util/memory.ts
 * (which calls keepFreedMemory() as it loads); with 'plain' it does not (the control). A fresh process each time: malloc's
 * thresholds are process-wide and only ever rise.
 */
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';

const CYCLES = 32;

// The same loop in both threads: plain JavaScript, as the chunk workers are.
const LOOP = `
const { createCipheriv, randomBytes } = require('node:crypto');
function measure(collect, garbageBytes, cycles) {
  const key = randomBytes(32);
  const chunk = randomBytes(65536);
  const nonce = Buffer.alloc(12);
  const cycle = () => {
    for (let i = 0; i < garbageBytes / chunk.length; i++) {
      const c = createCipheriv('aes-256-gcm', key, nonce);
      c.update(chunk);
      c.final();
    }
    collect();
  };
  for (let i = 0; i < 4; i++) cycle(); // the heaps reach their working size
  const f0 = process.resourceUsage().minorPageFault;
  for (let i = 0; i < cycles; i++) cycle();
  return (process.resourceUsage().minorPageFault - f0) / ((cycles * garbageBytes) / 1048576);
}
`;

// util/memory.ts raises the threshold as it loads: the control must not load it at all.
const keep = process.argv[2] === 'keep';
let GARBAGE_BYTES = 8 << 20; // util/memory.ts GARBAGE_BYTES
let minorCollection = () => {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as (o: { type: 'minor' }) => void)({ type: 'minor' });
};
if (keep) {
  const memory = await import('../../src/util/memory.ts');
  await memory.keepFreedMemory();
  GARBAGE_BYTES = memory.GARBAGE_BYTES;
  minorCollection = memory.minorCollection;
}
const measure = new Function('require', `${LOOP}; return measure;`)(
  createRequire(import.meta.url),
) as (collect: () => void, garbageBytes: number, cycles: number) => number;
// The worker's faults are counted after the main thread's loop, alone: resourceUsage() is
// per process.
const main = measure(minorCollection, GARBAGE_BYTES, CYCLES);
const worker = await new Promise<number>((resolve, reject) => {
  const w = new Worker(
    `${LOOP}
    require('node:v8').setFlagsFromString('--expose-gc');
    const collectGc = globalThis.gc ?? require('node:vm').runInNewContext('gc');
    const { parentPort, workerData } = require('node:worker_threads');
    parentPort.postMessage(
      measure(() => collectGc({ type: 'minor' }), workerData.bytes, workerData.cycles),
    );`,
    { eval: true, workerData: { bytes: GARBAGE_BYTES, cycles: CYCLES } },
  );
  w.once('message', resolve);
  w.once('error', reject);
});
console.log(JSON.stringify({ main, worker }));

/**
 * The file path reuses the memory it frees (src/util/memory.ts, issue #9; docs/PERFORMANCE.md
 * "perf7"). node:crypto makes a fresh buffer per 64 KiB chunk and the stream collects them every
 * 8 MiB; glibc handed those pages back to the kernel at once (its trim threshold starts at
 * 128 KiB) and the next chunks faulted them in again. Measured in fresh child processes
 * (test/helpers/freed-memory.ts), on the main thread and on a worker thread (another malloc
 * arena), against a control that does not call keepFreedMemory.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KEEP_FREED_BLOCK, keepFreedMemory } from '../src/util/memory.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header
  .glibcVersionRuntime;

function faultsPerMiB(mode: 'keep' | 'plain'): { main: number; worker: number } {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(HERE, 'helpers', 'freed-memory.ts'), mode],
    { cwd: join(HERE, '..'), encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('keepFreedMemory runs once per process and leaves no block behind', async () => {
  const before = process.memoryUsage().arrayBuffers;
  const first = keepFreedMemory();
  assert.equal(keepFreedMemory(), first);
  await first;
  assert.ok(process.memoryUsage().arrayBuffers < before + KEEP_FREED_BLOCK / 2);
});

test("the stream's garbage is reused, not faulted in again, on the main thread and in workers", {
  skip: glibc ? false : 'not glibc: its trim threshold is what this is about',
}, (t) => {
  const kept = faultsPerMiB('keep');
  // 2-4 per MiB measured (V8's own pages); 256 would be every freed page faulted in again.
  assert.ok(kept.main < 16, `main thread: ${kept.main} page faults per MiB`);
  assert.ok(kept.worker < 16, `worker thread: ${kept.worker} page faults per MiB`);
  const control = faultsPerMiB('plain');
  t.diagnostic(`faults per MiB: kept ${JSON.stringify(kept)}, control ${JSON.stringify(control)}`);
  // The control shows that the test measures something here (38-122 per MiB measured): on a
  // glibc configured to keep freed memory anyway (GLIBC_TUNABLES), there is nothing to show.
  if (Math.max(control.main, control.worker) < 16) {
    t.skip(`this malloc keeps freed memory anyway (control: ${JSON.stringify(control)})`);
  }
});

/**
 * SPEC.md §2.6: the file path's own plaintext buffers (a stream's copies for the workers, the
 * positional path's read buffers in every thread, the file reader's pieces) are wiped when the
 * file ends. Encrypting touches no plaintext buffer of node:crypto's own (its input is ours, its
 * output ciphertext), so after an encryption no byte of the file's plaintext may be left anywhere
 * in the process, workers included. A child encrypts a file of random bytes through each path;
 * the parent then scans the child's whole memory for samples of that plaintext.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { scanProcessMemory } from './helpers/deploy.ts';

const CHILD = join(import.meta.dirname, 'helpers', 'file-wipe-child.ts');
const linux = process.platform === 'linux';

for (const path of ['positional', 'stream'] as const) {
  test(`${path} path: no plaintext left in the process after encrypting`, {
    skip: !linux && 'reads /proc',
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bf-wipe-'));
    try {
      // 24 MiB: every segment is done by the worker or by the calling thread, both more than once.
      const plain = randomBytes(24 << 20);
      await writeFile(join(dir, 'in'), plain);
      // 64 samples of 48 bytes, spread over the file, none at a chunk boundary.
      const needles = Array.from({ length: 64 }, (_, i) => {
        const at = Math.floor((i + 0.5) * (plain.length / 64));
        return plain.subarray(at, at + 48);
      });
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', CHILD, path, join(dir, 'in'), join(dir, 'out')],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      try {
        await new Promise<void>((resolve, reject) => {
          child.stdout!.on('data', (d: Buffer) => d.toString().includes('done') && resolve());
          child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
        });
        assert.equal(await scanProcessMemory(child.pid!, needles), 0, 'plaintext left in memory');
        // The scan finds what is there: the parent holds the plaintext.
        assert.ok((await scanProcessMemory(process.pid, [needles[0]!])) > 0, 'the scan works');
      } finally {
        child.stdin!.end();
        if (child.exitCode === null) {
          await new Promise((r) => {
            const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
            child.once('exit', () => r(clearTimeout(t)));
          });
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

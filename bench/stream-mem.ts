/**
 * Peak memory and speed of encryptStream / decryptStream on a file, serial against parallel, in
 * the same run (issue #9: "peak memory under 150 MB while streaming a 1 GB file"). Each case runs
 * in its own child process (bench/child.ts encrypt|decrypt) that reports the kernel's high-water
 * mark of its resident set (VmHWM, all threads, reset once loaded), and where the main thread's
 * memory sat (V8 heap, external buffers). No manager is needed: the header is made with a random
 * KEK, which is all the stream functions see.
 *
 *   node --import tsx bench/stream-mem.ts [--size-mb 1024]
 */
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toB64u } from '../src/core/bytes.ts';
import { standaloneFileSecrets } from './lib.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHILD = join(HERE, 'child.ts');

export interface StreamMemRow {
  figure: string;
  value: number;
  unit: string;
  limit: string;
  limitValue: number;
  ratio: number;
  note: string;
}

export interface ChildResult {
  ms: number;
  bytes: number;
  rssAtStartKiB: number;
  streamPeakKiB: number;
  heapPeakKiB: number;
  externalPeakKiB: number;
  threads?: number;
  /** CPU time of the whole process (all threads) while streaming: less sensitive to load than ms. */
  cpuMs: number;
}

export function runStreamChild(
  job: 'encrypt' | 'decrypt',
  input: Record<string, unknown>,
): Promise<ChildResult> {
  const c = spawn(process.execPath, ['--import', 'tsx', CHILD, job], {
    cwd: resolve(HERE, '..'),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  c.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  c.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  c.stdin.end(JSON.stringify(input));
  return new Promise((res, rej) =>
    c.once('exit', (code) =>
      code === 0
        ? res(JSON.parse(out.trim().split('\n').pop()!) as ChildResult)
        : rej(new Error(`child exited with ${code}: ${err.trim()}`)),
    ),
  );
}

async function writeRandomFile(path: string, size: number): Promise<void> {
  const piece = Buffer.allocUnsafe(1 << 20);
  const ws = createWriteStream(path);
  for (let left = size; left > 0; left -= piece.length) {
    randomFillSync(piece);
    const n = Math.min(left, piece.length);
    if (!ws.write(Buffer.from(piece.subarray(0, n)))) {
      await new Promise<void>((r) => ws.once('drain', () => r()));
    }
  }
  await new Promise<void>((r, j) => ws.end((e?: Error | null) => (e ? j(e) : r())));
}

/** Serial and parallel, encrypt and decrypt, of a random file of `sizeMB` MB. */
export async function runStreamMemBench(
  opts: { sizeMB?: number; boundMB?: number; log?: (s: string) => void } = {},
): Promise<StreamMemRow[]> {
  const size = Math.round((opts.sizeMB ?? 256) * 1e6);
  const bound = opts.boundMB ?? 150;
  const log = opts.log ?? ((s: string) => console.log(s));
  const dir = await mkdtemp(join(os.tmpdir(), 'bf-stream-mem-'));
  const rows: StreamMemRow[] = [];
  try {
    const plain = join(dir, 'plain.bin');
    await writeRandomFile(plain, size);
    const { dek, fileNonce, header } = standaloneFileSecrets();
    for (const serial of [true, false]) {
      const path = serial ? 'serial' : `parallel (${os.availableParallelism()} cores)`;
      const enc = join(dir, 'plain.bf');
      const e = await runStreamChild('encrypt', {
        input: plain,
        output: enc,
        header: toB64u(header),
        dek: toB64u(dek),
        fileNonce: toB64u(fileNonce),
        serial,
      });
      const d = await runStreamChild('decrypt', {
        input: enc,
        output: join(dir, 'plain.out'),
        dek: toB64u(dek),
        serial,
      });
      await rm(join(dir, 'plain.out'), { force: true });
      await rm(enc, { force: true });
      for (const [what, r] of [
        ['encrypt', e],
        ['decrypt', d],
      ] as const) {
        const peak = r.streamPeakKiB / 1024;
        const mbs = r.bytes / 1e6 / (r.ms / 1000);
        const row: StreamMemRow = {
          figure: `peak RSS while streaming ${Math.round(size / 1e6)} MB file → file, ${what}, ${path}`,
          value: peak,
          unit: 'MB',
          limit: 'issue bound, MB',
          limitValue: bound,
          ratio: peak / bound,
          note: `${(r.rssAtStartKiB / 1024).toFixed(0)} MB at start; main thread peaks: heap ${(r.heapPeakKiB / 1024).toFixed(0)} MB, external ${(r.externalPeakKiB / 1024).toFixed(0)} MB; ${r.threads ?? '?'} threads; ${mbs.toFixed(0)} MB/s; CPU ${((r.cpuMs / 1000) * (1e9 / r.bytes)).toFixed(2)} s per GB`,
        };
        rows.push(row);
        log(
          `${row.figure}  ${peak.toFixed(0)} MB | limit ${bound} MB | ratio ${row.ratio.toFixed(2)} [${row.ratio <= 1 ? 'met' : 'NOT met'}]  (${row.note})`,
        );
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--size-mb');
  await runStreamMemBench({ sizeMB: i > 0 ? Number(process.argv[i + 1]) : 256 });
}

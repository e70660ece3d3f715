/**
 * Child processes of bench/run.ts, one job each (argv[2]); the parent talks to them over stdio.
 *
 *   scalarmult <ms>   prints "ready", waits for "go" on stdin, then runs group.ts `mul` for <ms>
 *                     and prints {rate} (mult/s). Several at once measure the cores together.
 *   aes-seal <ms> | aes-open <ms>   the same with lib.ts rawAes: {rate} in MB/s.
 *   probe             like scalarmult, but stays: each "go <ms>" line on stdin runs once more and
 *                     prints {rate}; one per core measures the limit next to each load point.
 *   mem <bytes> [ms]  memory → null (lib.ts memoryToNull: at least <bytes> and <ms> per direction),
 *                     serial and parallel, in this fresh process:
 *                     prints {serial, parallel: {seal, open: {mbs, cpuPerGB, faultsPerMiB}}, workers}.
 *   pcopy             reads {input, output, threads} as JSON on stdin and copies the file with
 *                     `threads` threads (this one and threads − 1 workers), each preading and
 *                     pwriting its own 1 MiB segments, no crypto: the I/O of the positional path
 *                     alone. Two passes; prints the faster as {mbs, cpuPerGB} (CPU of every thread).
 *   encrypt | decrypt reads {input, output, header|dek, fileNonce} (base64url) as JSON on stdin,
 *                     streams the file through encryptStream / decryptStream (with
 *                     {positional: 'true'}: encryptFileAt / decryptFileAt, the CLI's path for a
 *                     file to a file), and prints
 *                     {baselineMaxRssKiB, maxRssKiB, ms, bytes, rssAtStartKiB, streamPeakKiB}
 *                     (streamPeakKiB: the kernel's VmHWM, reset by clear_refs once loaded, so the true peak of every
 *                     thread while streaming; plus heap/external peaks of the main thread sampled
 *                     every 20 ms). With {serial: true} no worker pool. maxRSS is the process's peak
 *                     resident set since start (getrusage, KiB on Linux); the baseline is taken
 *                     after all imports (node + tsx + libsodium), before the stream starts.
 */
import {
  closeSync,
  createWriteStream,
  fstatSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { Worker } from 'node:worker_threads';
import { createChunkPool } from '../src/appliance/chunks.ts';
import { decryptFileAt, encryptFileAt } from '../src/appliance/positional.ts';
import {
  decryptStream,
  encryptStream,
  readFileHeader,
  readFilePieces,
  readHeader,
} from '../src/appliance/stream.ts';
import { fromB64u } from '../src/core/bytes.ts';
import { memoryToNull, rawAes, scalarMultLoop } from './lib.ts';

const baselineMaxRssKiB = process.resourceUsage().maxRSS;

/** A field of /proc/self/status as a number (kB for the Vm* fields), undefined off Linux. */
function statusKiB(field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s*(\\d+)`, 'm').exec(
      readFileSync('/proc/self/status', 'utf8'),
    );
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Resets the kernel's peak-RSS mark (VmHWM) to the current RSS; false where not possible. */
function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

async function readStdinJson<T>(): Promise<T> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return JSON.parse(Buffer.concat(parts).toString('utf8')) as T;
}

function waitForGo(): Promise<void> {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('go')) {
        process.stdin.off('data', onData);
        process.stdin.pause();
        resolve();
      }
    };
    process.stdin.on('data', onData);
  });
}

/**
 * The positional path's I/O without its crypto (job pcopy): `threads` threads, thread t copying
 * segments t, t + threads, … of 1 MiB with pread and pwrite, as positional.ts's threads do.
 */
const COPY_WORKER = `
const { parentPort, workerData: w } = require('node:worker_threads');
const { readSync, writeSync } = require('node:fs');
const buf = Buffer.allocUnsafeSlow(w.seg);
parentPort.once('message', () => {
  for (let i = w.t; i * w.seg < w.size; i += w.threads) {
    const pos = i * w.seg, len = Math.min(w.seg, w.size - pos);
    let got = 0;
    while (got < len) { const n = readSync(w.fin, buf, got, len - got, pos + got); if (n === 0) throw new Error('short read'); got += n; }
    let done = 0;
    while (done < len) done += writeSync(w.fout, buf, done, len - done, pos + done);
  }
  parentPort.postMessage('done');
});
parentPort.postMessage('ready');
`;

async function parallelCopy(
  input: string,
  output: string,
  threads: number,
): Promise<{ mbs: number; cpuPerGB: number }> {
  const fin = openSync(input, 'r');
  const fout = openSync(output, 'w');
  try {
    const size = fstatSync(fin).size;
    // Every thread copies (this one only waits), so `threads` cores are busy, as with
    // positional.ts's workers and calling thread. Timed from "go", once all have started.
    const workers = await Promise.all(
      Array.from({ length: threads }, async (_, t) => {
        const w = new Worker(COPY_WORKER, {
          eval: true,
          workerData: { fin, fout, size, t, threads, seg: 1 << 20 },
        });
        const next = () =>
          new Promise<void>((resolve, reject) => {
            w.once('message', () => resolve());
            w.once('error', reject);
          });
        await next(); // ready
        return { w, next };
      }),
    );
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const done = workers.map(({ w, next }) => {
      const d = next();
      w.postMessage('go');
      return d;
    });
    await Promise.all(done);
    const s = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    await Promise.all(workers.map(({ w }) => w.terminate()));
    return { mbs: size / 1e6 / s, cpuPerGB: ((c.user + c.system) / 1e6) * (1e9 / size) };
  } finally {
    closeSync(fin);
    closeSync(fout);
  }
}

async function main(): Promise<void> {
  const job = process.argv[2];
  if (job === 'probe') {
    // A long-lived limit probe: "go <ms>" runs scalarMultLoop and answers {rate}; stdin EOF ends.
    scalarMultLoop(200);
    process.stdout.write('ready\n');
    let buf = '';
    for await (const d of process.stdin) {
      buf += (d as Buffer).toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const m = /^go (\d+)$/.exec(buf.slice(0, nl).trim());
        buf = buf.slice(nl + 1);
        if (m) {
          const c0 = process.cpuUsage();
          const r = scalarMultLoop(Number(m[1]));
          const c = process.cpuUsage(c0);
          const cpuMs = (c.user + c.system) / 1000;
          // rate: per second of wall time; cpuRate: per second of CPU this process got.
          process.stdout.write(
            `${JSON.stringify({ rate: (r.ops / r.ms) * 1000, cpuRate: (r.ops / cpuMs) * 1000 })}\n`,
          );
        }
        nl = buf.indexOf('\n');
      }
    }
    return;
  }
  if (job === 'scalarmult') {
    scalarMultLoop(200); // warm-up (WASM tier-up)
    process.stdout.write('ready\n');
    await waitForGo();
    const r = scalarMultLoop(Number(process.argv[3] ?? 2000));
    process.stdout.write(`${JSON.stringify({ rate: (r.ops / r.ms) * 1000 })}\n`);
    return;
  }
  if (job === 'aes-seal' || job === 'aes-open') {
    const dir = job === 'aes-seal' ? 'seal' : 'open';
    rawAes(dir, 200); // warm-up
    process.stdout.write('ready\n');
    await waitForGo();
    const rate = rawAes(dir, Number(process.argv[3] ?? 1000));
    process.stdout.write(`${JSON.stringify({ rate })}\n`);
    return;
  }
  if (job === 'mem') {
    // memory → null in a process of its own, as the CLI runs a file and as the AES limit is
    // measured: serial, then with the pool the CLI uses (chunks.ts defaultWorkers).
    const bytes = Number(process.argv[3] ?? 128e6);
    const minMs = Number(process.argv[4] ?? 0);
    const serial = await memoryToNull(bytes, undefined, minMs);
    const pool = await createChunkPool();
    const parallel = await memoryToNull(bytes, pool, minMs);
    await pool.close();
    process.stdout.write(`${JSON.stringify({ serial, parallel, workers: pool.size })}\n`);
    return;
  }
  if (job === 'pcopy') {
    const o = await readStdinJson<{ input: string; output: string; threads: number }>();
    let best = { mbs: 0, cpuPerGB: 0 };
    for (let pass = 0; pass < 2; pass++) {
      const r = await parallelCopy(o.input, o.output, o.threads);
      rmSync(o.output, { force: true });
      if (r.mbs > best.mbs) best = r;
    }
    process.stdout.write(`${JSON.stringify(best)}\n`);
    return;
  }
  if (job === 'encrypt' || job === 'decrypt') {
    const o = await readStdinJson<{
      input: string;
      output: string;
      header?: string;
      dek: string;
      fileNonce?: string;
      serial?: boolean;
      /** 'true': the positional path (appliance/positional.ts), as the CLI runs a file to a file. */
      positional?: string;
    }>();
    const dek = fromB64u(o.dek);
    const positional = o.positional === 'true';
    const out = positional ? undefined : createWriteStream(o.output);
    // The pool the CLI uses for big files (chunks.ts defaultWorkers), unless asked for the serial path.
    const parallel = o.serial ? undefined : await createChunkPool();
    // The process's true peak while streaming: the kernel's high-water mark of the resident set
    // (VmHWM, every thread, between samples too), reset once everything is loaded (clear_refs 5),
    // so that the transient peak of loading node + tsx + libsodium is not counted.
    const rssAtStart = process.memoryUsage.rss();
    const hwmReset = resetPeakRss();
    // Where the memory is, sampled: V8 heap, external (Buffers/ArrayBuffers) of the main thread.
    let heapPeak = 0;
    let externalPeak = 0;
    let streamPeak = rssAtStart;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      streamPeak = Math.max(streamPeak, m.rss);
      heapPeak = Math.max(heapPeak, m.heapUsed);
      externalPeak = Math.max(externalPeak, m.external);
    }, 20);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    let bytes: number;
    if (positional) {
      const fin = openSync(o.input, 'r');
      const fout = openSync(o.output, 'w');
      try {
        if (job === 'encrypt') {
          bytes = (
            await encryptFileAt(fin, fout, {
              header: fromB64u(o.header!),
              dek,
              fileNonce: fromB64u(o.fileNonce!),
              pool: parallel!,
            })
          ).plainSize;
        } else {
          const header = await readFileHeader(fin);
          bytes = (
            await decryptFileAt(fin, header.headerLength, fout, {
              dek,
              fileNonce: header.fields.fileNonce,
              pool: parallel!,
            })
          ).plainSize;
        }
      } finally {
        closeSync(fin);
        closeSync(fout);
      }
    } else if (job === 'encrypt') {
      const r = await encryptStream(readFilePieces(o.input), out!, {
        header: fromB64u(o.header!),
        dek,
        fileNonce: fromB64u(o.fileNonce!),
        parallel,
      });
      bytes = r.plainSize;
    } else {
      const { header, payload } = await readHeader(readFilePieces(o.input));
      const r = await decryptStream(payload, out!, {
        dek,
        fileNonce: header.fields.fileNonce,
        parallel,
      });
      bytes = r.plainSize;
    }
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0); // every thread of the process: main and workers
    const cpuMs = (cpu.user + cpu.system) / 1000;
    clearInterval(sampler);
    streamPeak = Math.max(streamPeak, process.memoryUsage.rss());
    const hwm = statusKiB('VmHWM');
    if (hwmReset && hwm !== undefined) streamPeak = Math.max(streamPeak, hwm * 1024);
    const maxRssKiB = process.resourceUsage().maxRSS;
    await parallel?.close();
    process.stdout.write(
      `${JSON.stringify({ baselineMaxRssKiB, maxRssKiB, ms, bytes, rssAtStartKiB: rssAtStart / 1024, streamPeakKiB: streamPeak / 1024, hwmReset, heapPeakKiB: heapPeak / 1024, externalPeakKiB: externalPeak / 1024, threads: statusKiB('Threads'), cpuMs })}\n`,
    );
    return;
  }
  throw new Error(`unknown job ${job}`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});

/**
 * `npm run bench`: Blindfold's figures, each next to the limit it is bounded by, measured in the
 * same run on the same machine, and their ratio.
 *
 *   1. raw limit: crypto_scalarmult_ristretto255 (libsodium WASM, via group.ts `mul`) per second
 *      on one core, × the cores (and, as a check, measured with one process per core at once);
 *   2. blinded recoveries per second and p50/p99 latency at concurrency 1, 8, 32, over HTTPS
 *      keep-alive with mutual TLS, against a real manager process; the client is an in-process
 *      Appliance calling openItem round-robin over pre-created items. The appliance's own work
 *      (blind/unblind) runs in THIS process on the same cores as the manager: the figure is the
 *      whole system on one machine, not the manager alone. Ratio = recoveries/s ÷ scalar mults/s;
 *      its inverse is the cost of one recovery in scalar-multiplication equivalents;
 *   3. file encryption / decryption MB/s through encryptStream / decryptStream, file to file in a
 *      temp dir (page cache, no fsync), against raw AES-256-GCM of node:crypto on 64 KiB chunks
 *      (one cipher object per chunk, as the stream does) on one core;
 *   4. peak RSS of a child process that encrypts (and one that decrypts) a file;
 *   5. cluster (bench/cluster.ts): time to enroll a member (vouch + re-conceal) per mode, and
 *      recoveries per second with 1, 2 and 3 appliance processes against one manager;
 *   7. KMS API (bench/kms.ts): GenerateDataKey and Decrypt per second, p50/p99, concurrency 8,
 *      plain and client-blinded, against scalar mults/s.
 *
 * Default: short (≈1 min: 4 s per load point, 256 MB files). `--full`: 10 s per point, 1 GB files.
 * Overrides: `--seconds N` (per load point), `--size-mb N` (files).
 * Writes bench/out/report.json. Every child process and temp dir is removed at the end, on error
 * and on Ctrl-C too.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createSecretKey,
  randomBytes,
  randomFillSync,
} from 'node:crypto';
import { createReadStream, createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { mkdir, open, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Appliance } from '../src/appliance/appliance.ts';
import {
  decryptStream,
  encryptStream,
  readHeader,
  sealFileHeader,
  unwrapDek,
} from '../src/appliance/stream.ts';
import { equalBytes, toB64u } from '../src/core/bytes.ts';
import { freshFileSecrets } from '../src/core/format.ts';
import {
  cleanup,
  createKeyring,
  type ManagerProcess,
  newAppliance,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from '../test/helpers/deploy.ts';
import { quantile, scalarMultLoop } from './lib.ts';

const ROOT = resolve(import.meta.dirname, '..');
const CHILD = join(ROOT, 'bench', 'child.ts');
const OUT = join(ROOT, 'bench', 'out', 'report.json');

const argv = process.argv.slice(2);
const FULL = argv.includes('--full');
function numArg(name: string): number | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = Number(argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} needs a positive number`);
  return v;
}
const CFG = {
  smultMs: FULL ? 5000 : 2000,
  pointMs: (numArg('--seconds') ?? (FULL ? 10 : 4)) * 1000,
  warmMs: FULL ? 2000 : 1000,
  items: 64,
  concurrencies: [1, 8, 32],
  modes: [
    ['hom2', 'ec-elgamal'],
    ['hom2-opt', 'ec-elgamal'],
    ['split', 'xor'],
  ] as [string, string][],
  fileMB: numArg('--size-mb') ?? (FULL ? 1024 : 256),
  aesMs: FULL ? 3000 : 1500,
};
/** Scalar multiplications per recovery in each ec-elgamal mode (ec-elgamal.ts, protocol.ts). */
const SMULTS: Record<string, string> = {
  hom2: '5 (appliance: blind 2 + unblind 1; manager: decrypt 1 + share 1)',
  'hom2-opt': '2 (manager: share 1; appliance: unblind 1)',
  split: '0 (hashes and XOR only)',
};

// ---------------------------------------------------------------------------------------------
// Resources, always released

const children = new Set<ChildProcess>();
const dirs: string[] = [];
let manager: ManagerProcess | undefined;
let appliance: Appliance | undefined;
/** Set on Ctrl-C: the main flow's errors are then consequences of the stop, not failures. */
let interrupted = false;

/**
 * Our own direct node child processes still alive (Linux /proc: ppid == our pid). Catches a manager
 * that an interrupted startManagerProcess spawned but had not yet handed back to us.
 */
function strayChildPids(): number[] {
  const pids: number[] = [];
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const st = readFileSync(`/proc/${d}/stat`, 'utf8');
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        if (Number(f[1]) !== process.pid || f[0] === 'Z') continue;
        // Only the node processes we spawn (manager, bench/child.ts), not e.g. tsx's esbuild service.
        const argv0 = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')[0];
        if (argv0 === process.execPath) pids.push(Number(d));
      } catch {
        // the process ended meanwhile
      }
    }
  } catch {
    // no /proc: only the tracked processes are stopped
  }
  return pids;
}

async function releaseAll(): Promise<void> {
  appliance?.close();
  appliance = undefined;
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  if (manager) {
    const m = manager;
    manager = undefined;
    const timer = setTimeout(() => m.proc.kill('SIGKILL'), 5000);
    await m.stop();
    clearTimeout(timer);
  }
  // Child processes we started but do not hold a handle on (see strayChildPids): TERM, then KILL.
  let stray = strayChildPids();
  for (const pid of stray) process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 50 && stray.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    stray = strayChildPids();
  }
  for (const pid of stray) process.kill(pid, 'SIGKILL');
  // Only now: a manager still starting up could otherwise re-create its home after the rm.
  await cleanup(...dirs.splice(0));
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    interrupted = true;
    process.stderr.write(`\n${sig}: stopping children and removing temp files\n`);
    releaseAll().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Output

const fmt = (x: number, digits = 0) =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : String(x);
const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));

function line(label: string, figure: string, limit: string, ratio: string, note = ''): void {
  console.log(
    `${pad(label, 30)} ${pad(figure, 44)} | limit ${pad(limit, 26)} | ratio ${ratio}${note ? `  ${note}` : ''}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Child processes

function spawnChild(args: string[]): ChildProcess {
  const c = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

/** Resolves with the child's stdout when it exits with 0. */
function childOutput(c: ChildProcess): Promise<string> {
  let out = '';
  let err = '';
  c.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  c.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((res, rej) =>
    c.once('exit', (code, sig) =>
      code === 0 ? res(out) : rej(new Error(`child exited with ${code ?? sig}: ${err.trim()}`)),
    ),
  );
}

/** `n` processes multiply at the same time (each waits for "go" after its warm-up). */
async function parallelScalarMult(n: number, ms: number): Promise<number> {
  const cs = Array.from({ length: n }, () => spawnChild(['scalarmult', String(ms)]));
  const outs = cs.map(childOutput);
  await Promise.all(
    cs.map(
      (c) =>
        new Promise<void>((res, rej) => {
          let buf = '';
          const onData = (d: Buffer) => {
            buf += d.toString();
            if (buf.includes('ready')) {
              c.stdout!.off('data', onData);
              res();
            }
          };
          c.stdout!.on('data', onData);
          c.once('exit', () => rej(new Error('scalarmult child exited before ready')));
        }),
    ),
  );
  for (const c of cs) c.stdin!.end('go\n');
  let total = 0;
  for (const o of await Promise.all(outs)) {
    const last = o.trim().split('\n').pop()!;
    const r = JSON.parse(last) as { ops: number; ms: number };
    total += (r.ops / r.ms) * 1000;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// CPU accounting of the manager process (Linux /proc), to say where the cores went

let clkTck = 100;
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // keep 100, the Linux default
}

function procCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / clkTck; // utime + stime (fields 14, 15)
  } catch {
    return Number.NaN;
  }
}

/** Jiffies of the whole machine from /proc/stat: busy (user+nice+system+irq+softirq), steal, total. */
function machineJiffies(): { busy: number; steal: number; total: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
      f;
    const busy = user + nice + system + irq + softirq;
    return { busy, steal, total: busy + idle + iowait + steal };
  } catch {
    return { busy: Number.NaN, steal: Number.NaN, total: Number.NaN };
  }
}

/** CPU use of the whole machine between two samples, in % of ONE core (like the per-process figures). */
function machineCpuPct(a: ReturnType<typeof machineJiffies>, b: ReturnType<typeof machineJiffies>) {
  const dt = b.total - a.total;
  const cores = os.availableParallelism();
  return {
    busyPct: ((b.busy - a.busy) / dt) * cores * 100,
    stealPct: ((b.steal - a.steal) / dt) * cores * 100,
  };
}

function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

// ---------------------------------------------------------------------------------------------
// Figure 2: recoveries

interface Item {
  header: Uint8Array;
  kek: Uint8Array;
}

interface LoadPoint {
  concurrency: number;
  recoveries: number;
  errors: number;
  firstError?: string;
  seconds: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
  benchCpuPct: number;
  managerCpuPct: number;
  /** Whole machine, % of one core; othersCpuPct = machine − bench − manager (other processes). */
  machineCpuPct: number;
  othersCpuPct: number;
  stealPct: number;
}

async function makeItems(a: Appliance, keyring: string, n: number): Promise<Item[]> {
  const items: Item[] = [];
  for (let i = 0; i < n; i++) {
    const item = await a.newItem(keyring);
    const { dek, fileNonce } = freshFileSecrets();
    items.push({
      header: sealFileHeader({ ...item.fields, fileNonce }, item.kek, dek),
      kek: item.kek,
    });
  }
  return items;
}

async function load(
  a: Appliance,
  items: Item[],
  concurrency: number,
  ms: number,
): Promise<LoadPoint> {
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const lat: number[] = [];
  const cpu0 = selfCpuMs();
  const mgr0 = procCpuMs(manager?.proc.pid);
  const j0 = machineJiffies();
  const t0 = performance.now();
  const end = t0 + ms;
  const worker = async () => {
    while (performance.now() < end) {
      const it = items[next++ % items.length]!;
      const s = performance.now();
      try {
        await a.openItem(it.header);
        lat.push(performance.now() - s);
      } catch (e) {
        errors++;
        firstError ??= String((e as Error).message ?? e);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wall = performance.now() - t0;
  const mc = machineCpuPct(j0, machineJiffies());
  const benchCpuPct = ((selfCpuMs() - cpu0) / wall) * 100;
  const managerCpuPct = ((procCpuMs(manager?.proc.pid) - mgr0) / wall) * 100;
  lat.sort((x, y) => x - y);
  return {
    concurrency,
    recoveries: lat.length,
    errors,
    firstError,
    seconds: wall / 1000,
    perSecond: (lat.length / wall) * 1000,
    p50ms: quantile(lat, 0.5),
    p99ms: quantile(lat, 0.99),
    benchCpuPct,
    managerCpuPct,
    machineCpuPct: mc.busyPct,
    othersCpuPct: Math.max(0, mc.busyPct - benchCpuPct - managerCpuPct),
    stealPct: mc.stealPct,
  };
}

// ---------------------------------------------------------------------------------------------
// Figure 3: files

async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const f = await open(path, 'w');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let done = 0; done < bytes; done += buf.length) {
      randomFillSync(buf);
      await f.write(buf, 0, Math.min(buf.length, bytes - done));
    }
  } finally {
    await f.close();
  }
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

/** AES-256-GCM, one cipher object per 64 KiB chunk, like encryptStream: MB/s on one core. */
function rawAes(direction: 'seal' | 'open', ms: number): number {
  const key = createSecretKey(randomBytes(32));
  const chunk = randomBytes(65536);
  const nonce = Buffer.alloc(12);
  const c0 = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  const sealed = c0.update(chunk);
  c0.final();
  const tag = c0.getAuthTag();
  let bytes = 0;
  let i = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < ms) {
    for (let k = 0; k < 16; k++, i++) {
      if (direction === 'seal') {
        nonce.writeUInt32BE(i >>> 0, 8);
        const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
        c.update(chunk);
        c.final();
        c.getAuthTag();
      } else {
        const d = createDecipheriv('aes-256-gcm', key, Buffer.alloc(12), { authTagLength: 16 });
        d.setAuthTag(tag);
        d.update(sealed);
        d.final();
      }
      bytes += chunk.length;
    }
    now = performance.now();
  }
  return bytes / 1e6 / ((now - t0) / 1000);
}

async function runFileChild(
  job: 'encrypt' | 'decrypt',
  input: Record<string, string>,
): Promise<{ baselineMaxRssKiB: number; maxRssKiB: number; ms: number; bytes: number }> {
  const c = spawnChild([job]);
  const out = childOutput(c);
  c.stdin!.end(JSON.stringify(input));
  return JSON.parse((await out).trim().split('\n').pop()!);
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const cores = os.availableParallelism();
  const date = new Date().toISOString();
  const machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
  };
  const load0 = os.loadavg();
  const report: Record<string, unknown> = {
    date,
    loadAverageAtStart: load0,
    mode: FULL ? 'full' : 'default',
    machine,
    config: CFG,
  };

  console.log('Blindfold benchmark');
  console.log(`  date     ${date}`);
  console.log(
    `  machine  ${machine.cpu}, ${cores} cores (os.availableParallelism), ${machine.memGiB} GiB, ${machine.platform}`,
  );
  console.log(
    `  node     ${machine.node}; libsodium-wrappers-sumo (WASM) for ristretto255, OpenSSL (node:crypto) for AES`,
  );
  console.log(
    `  run      ${FULL ? '--full' : 'default (short; --full for 1 GB files and 10 s points)'}: ${CFG.pointMs / 1000} s per load point, ${CFG.fileMB} MB files`,
  );
  console.log(`  load     ${load0.map((x) => x.toFixed(2)).join(' ')} (1/5/15 min) at start`);
  if (load0[0]! > cores * 0.5) {
    console.log(
      `  WARNING  the machine is busy (load ${load0[0]!.toFixed(1)} on ${cores} cores): other processes compete for the CPU, so every figure is low and noisy, and ratios only partly cancel it (the load changes during the run).`,
    );
  }
  console.log('');

  // 1. Raw limit ---------------------------------------------------------------------------------
  scalarMultLoop(300); // warm-up
  const one = scalarMultLoop(CFG.smultMs);
  const smult1 = (one.ops / one.ms) * 1000;
  const smultN = smult1 * cores;
  const smultMeasuredN = await parallelScalarMult(cores, CFG.smultMs);
  report.scalarMult = {
    perSecond1Core: smult1,
    perSecondAllCoresComputed: smultN,
    perSecondAllCoresMeasured: smultMeasuredN,
    cores,
  };
  console.log('[1] raw limit: crypto_scalarmult_ristretto255 (group.ts mul)');
  line(
    '  1 core',
    `${fmt(smult1)} mult/s (${fmt(1e6 / smult1, 1)} µs each)`,
    '(this is the limit)',
    '1',
  );
  line(
    `  ×${cores} cores (computed)`,
    `${fmt(smultN)} mult/s`,
    `${fmt(smult1)} ×${cores}`,
    fmt(smultN / smult1, 2),
  );
  line(
    `  ${cores} processes at once`,
    `${fmt(smultMeasuredN)} mult/s (measured)`,
    `${fmt(smultN)} mult/s`,
    fmt(smultMeasuredN / smultN, 3),
    '(check of the ×cores assumption)',
  );
  console.log('');

  // 2. Recoveries --------------------------------------------------------------------------------
  console.log(
    `[2] blinded recoveries (openItem), real manager process over HTTPS+mTLS keep-alive, ${CFG.items} items round-robin, ${CFG.pointMs / 1000} s per point`,
  );
  console.log(
    `    the appliance (client) runs in this process: its blind/unblind work shares the ${cores} cores with the manager.`,
  );
  console.log(
    `    limit = ${fmt(smultN)} scalar mults/s (${cores} cores); 1/ratio = cost of one recovery in scalar mults.`,
  );
  const home = await tmpDir('bf-bench-mgr-');
  dirs.push(home);
  const adir = await tmpDir('bf-bench-app-');
  dirs.push(adir);
  manager = await startManagerProcess({ home, rootKey: newRootKey() });
  appliance = await newAppliance(manager, adir, 'bench');
  const recoveries: Record<string, unknown>[] = [];
  let fileKeyring = '';
  for (const [mode, scheme] of CFG.modes) {
    const keyring = `bench-${mode}-${scheme}`;
    await createKeyring(manager, keyring, mode, scheme);
    await appliance.initKeyring(keyring);
    if (mode === 'hom2') fileKeyring = keyring;
    const items = await makeItems(appliance, keyring, CFG.items);
    // Correctness: every item's recovered KEK is the one it was created with.
    for (const it of items) {
      const kek = await appliance.openItem(it.header);
      if (!equalBytes(kek, it.kek)) throw new Error(`${mode}/${scheme}: recovered KEK differs`);
    }
    await load(appliance, items, 8, CFG.warmMs); // warm-up (JIT, TLS sessions, sockets)
    console.log(`  ${mode} / ${scheme}: ${SMULTS[mode]} scalar mults per recovery`);
    for (const c of CFG.concurrencies) {
      const p = await load(appliance, items, c, CFG.pointMs);
      recoveries.push({ mode, scheme, ...p, ratio: p.perSecond / smultN });
      line(
        `    concurrency ${c}`,
        `${fmt(p.perSecond)} rec/s  p50 ${fmt(p.p50ms, 2)} ms  p99 ${fmt(p.p99ms, 2)} ms`,
        `${fmt(smultN)} mult/s`,
        `${fmt(p.perSecond / smultN, 4)} (1/${fmt(smultN / p.perSecond, 1)})`,
        `cpu: bench ${fmt(p.benchCpuPct)}%, manager ${fmt(p.managerCpuPct)}%, other processes ${fmt(p.othersCpuPct)}%${p.errors ? `  ERRORS ${p.errors}: ${p.firstError}` : ''}`,
      );
    }
  }
  report.recoveries = recoveries;
  console.log('');

  // 3. Files -------------------------------------------------------------------------------------
  const size = Math.round(CFG.fileMB * 1e6);
  console.log(
    `[3] file encryption, ${fmt(size / 1e6)} MB, file to file in ${os.tmpdir()} (page cache, no fsync), 64 KiB reads, keyring ${fileKeyring}`,
  );
  const fdir = await tmpDir('bf-bench-files-');
  dirs.push(fdir);
  const plain = join(fdir, 'plain.bin');
  const enc = join(fdir, 'plain.bin.bf');
  const dec = join(fdir, 'plain.out');
  await writeRandomFile(plain, size);
  const aesSeal = rawAes('seal', CFG.aesMs);
  const aesOpen = rawAes('open', CFG.aesMs);

  const item = await appliance.newItem(fileKeyring);
  const { dek, fileNonce } = freshFileSecrets();
  const header = sealFileHeader({ ...item.fields, fileNonce }, item.kek, dek);
  let t0 = performance.now();
  await encryptStream(createReadStream(plain, { highWaterMark: 1 << 16 }), createWriteStream(enc), {
    header,
    dek,
    fileNonce,
  });
  const encMs = performance.now() - t0;

  t0 = performance.now();
  const h = await readHeader(createReadStream(enc, { highWaterMark: 1 << 16 }));
  const dek2 = unwrapDek(h.headerBytes, await appliance.openItem(h.header)); // one recovery, ~ms
  await decryptStream(h.payload, createWriteStream(dec), {
    dek: dek2,
    fileNonce: h.header.fields.fileNonce,
  });
  const decMs = performance.now() - t0;
  const same = (await sha256File(plain)) === (await sha256File(dec));
  const encSize = (await stat(enc)).size;
  await rm(dec, { force: true });
  if (!same) throw new Error('decrypted file differs from the original');

  const encMBs = size / 1e6 / (encMs / 1000);
  const decMBs = size / 1e6 / (decMs / 1000);
  report.files = {
    bytes: size,
    encryptedBytes: encSize,
    encryptMBs: encMBs,
    decryptMBs: decMBs,
    rawAesGcmSealMBs1Core: aesSeal,
    rawAesGcmOpenMBs1Core: aesOpen,
    roundTripVerified: same,
  };
  line(
    '  raw AES-256-GCM seal',
    `${fmt(aesSeal)} MB/s (64 KiB chunks, 1 core)`,
    '(this is the limit)',
    '1',
  );
  line(
    '  raw AES-256-GCM open',
    `${fmt(aesOpen)} MB/s (64 KiB chunks, 1 core)`,
    '(this is the limit)',
    '1',
  );
  line(
    '  encryptStream file→file',
    `${fmt(encMBs)} MB/s (${fmt(encMs / 1000, 2)} s)`,
    `${fmt(aesSeal)} MB/s`,
    fmt(encMBs / aesSeal, 3),
  );
  line(
    '  decryptStream file→file',
    `${fmt(decMBs)} MB/s (${fmt(decMs / 1000, 2)} s)`,
    `${fmt(aesOpen)} MB/s`,
    fmt(decMBs / aesOpen, 3),
    'incl. header + 1 recovery; output sha256 = input',
  );
  console.log('');

  // 4. Peak memory -------------------------------------------------------------------------------
  console.log(
    `[4] peak RSS of a child process streaming a ${fmt(size / 1e6)} MB file${size < 1e9 ? ` (${fmt(size / 1e6)} MB, not 1 GB: use --full for 1 GB)` : ''}`,
  );
  const out2 = join(fdir, 'child.bf');
  const me = await runFileChild('encrypt', {
    input: plain,
    output: out2,
    header: toB64u(header),
    dek: toB64u(dek),
    fileNonce: toB64u(fileNonce),
  });
  await rm(out2, { force: true });
  const md = await runFileChild('decrypt', {
    input: enc,
    output: join(fdir, 'child.out'),
    dek: toB64u(dek),
  });
  await rm(join(fdir, 'child.out'), { force: true });
  const mb = (kib: number) => kib / 1024;
  report.memory = { fileBytes: size, encrypt: me, decrypt: md };
  for (const [what, r] of [
    ['encrypt', me],
    ['decrypt', md],
  ] as const) {
    line(
      `  ${what} (child process)`,
      `peak RSS ${fmt(mb(r.maxRssKiB), 1)} MB (+${fmt(mb(r.maxRssKiB - r.baselineMaxRssKiB), 1)} MB)`,
      `${fmt(mb(r.baselineMaxRssKiB), 1)} MB at start`,
      fmt(r.maxRssKiB / r.baselineMaxRssKiB, 2),
      `start = node+tsx+libsodium loaded; file ${fmt(size / 2 ** 20)} MiB; ${fmt(r.bytes / 1e6 / (r.ms / 1000))} MB/s`,
    );
  }
  console.log('');

  // 5. Cluster (issue #5): member enrollment, recoveries with 1-3 appliances (bench/cluster.ts).
  const { runClusterBench } = await import('./cluster.ts');
  report.cluster = await runClusterBench({ seconds: CFG.pointMs / 1000 });
  console.log('');

  // 6. Scale-out (issue #7): replicas on PostgreSQL vs one manager on SQLite; latency vs items.
  const { runReplicasBench } = await import('./replicas.ts');
  report.replicas = await runReplicasBench({ seconds: CFG.pointMs / 1000 });
  console.log('');

  // 7. N locations (issue #4): recoveries through 0-3 blinders vs hom2 (bench/locations.ts).
  const { runLocationsBench } = await import('./locations.ts');
  report.locations = await runLocationsBench({ seconds: CFG.pointMs / 1000 });
  // 8. KMS API (issue #6): GenerateDataKey / Decrypt, plain and client-blinded (bench/kms.ts).
  const { runKmsBench } = await import('./kms.ts');
  report.kms = await runKmsBench({ seconds: CFG.pointMs / 1000 });
  console.log('');

  report.loadAverageAtEnd = os.loadavg();
  console.log(
    `load at end: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} (1/5/15 min)`,
  );
  await mkdir(dirname(OUT), { recursive: true });
  await writeFile(OUT, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`report: ${OUT}`);
}

const started = performance.now();
try {
  await main();
} catch (e) {
  process.exitCode = 1;
  if (!interrupted) {
    console.error(`\nbenchmark failed: ${(e as Error).stack ?? e}`);
    if (manager) console.error(`manager stderr:\n${manager.stderr().slice(-2000)}`);
  }
} finally {
  await releaseAll();
  console.log(`(${fmt((performance.now() - started) / 1000, 1)} s)`);
}

/**
 * Threshold figures (issue #4, SPEC.md §5.6), measured in one run against real processes:
 * blinded recoveries per second and p50/p99 latency at concurrency 8 for 2-of-3 threshold
 * manager nodes (three manager processes, every request fanned out to all three, combined from
 * the first two answers that unwrap), next to the hom2 / ec-elgamal figure of one manager (the
 * 2-location mode) measured right before it on the same machine. Ratio = threshold ÷ hom2 (for
 * latencies: threshold ÷ hom2, so > 1 is slower). The appliance runs in this process on the same
 * cores as the managers: the figure is the whole system on one machine.
 *
 * Alone: `node --import tsx bench/threshold.ts [--seconds N]`.
 */
import type { Appliance } from '../src/appliance/appliance.ts';
import { sealFileHeader } from '../src/appliance/stream.ts';
import { freshFileSecrets } from '../src/core/format.ts';
import {
  cleanup,
  createKeyring,
  newAppliance,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from '../test/helpers/deploy.ts';
import { startThreshold } from '../test/helpers/threshold.ts';
import { quantile } from './lib.ts';

export interface BenchRow {
  figure: string;
  value: number;
  unit: string;
  limit: string;
  limitValue: number;
  ratio: number;
}

const CONCURRENCY = 8;

function fmt(n: number, d = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

async function headersFor(a: Appliance, n = 64): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const it = await a.newItem('default');
    const { dek, fileNonce } = freshFileSecrets();
    out.push(sealFileHeader({ ...it.fields, fileNonce }, it.kek, dek));
  }
  return out;
}

async function load(a: Appliance, headers: Uint8Array[], ms: number) {
  // Warm-up: connections, caches, JIT.
  for (const h of headers.slice(0, 16)) await a.openItem(h);
  const lat: number[] = [];
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const h = headers[next++ % headers.length]!;
        const s = performance.now();
        try {
          await a.openItem(h);
          lat.push(performance.now() - s);
        } catch {
          errors++;
        }
      }
    }),
  );
  const wall = performance.now() - t0;
  lat.sort((x, y) => x - y);
  return {
    perSecond: (lat.length / wall) * 1000,
    p50ms: quantile(lat, 0.5),
    p99ms: quantile(lat, 0.99),
    errors,
  };
}

async function hom2Figure(ms: number) {
  const home = await tmpDir('bf-bench-thr-h-');
  const adir = await tmpDir('bf-bench-thr-a-');
  const m = await startManagerProcess({ home, rootKey: newRootKey() });
  let a: Appliance | undefined;
  try {
    await createKeyring(m, 'default', 'hom2', 'ec-elgamal');
    a = await newAppliance(m, adir, 'bench');
    await a.initKeyring('default');
    return await load(a, await headersFor(a), ms);
  } finally {
    a?.close();
    await m.stop();
    await cleanup(home, adir);
  }
}

async function thresholdFigure(ms: number) {
  // The three nodes share this machine's cores with each other and with the appliance; each would
  // have a machine of its own in production. One thread per core in all (src/manager/pool.ts
  // defaultWorkers): the nodes run their group operations on their main threads. Measured on 2
  // cores (docs/PERFORMANCE.md "perf6"): 433-447 rec/s with a worker per node, 533-580 without.
  const d = await startThreshold(2, 3, 'default', undefined, ['--workers', '0']);
  try {
    return await load(d.appliance, await headersFor(d.appliance), ms);
  } finally {
    await d.close();
  }
}

export async function runThresholdBench(opts: { seconds: number }): Promise<BenchRow[]> {
  const ms = opts.seconds * 1000;
  console.log(
    `[10] threshold managers: 2-of-3 nodes vs hom2 (2 locations), ec-elgamal, concurrency ${CONCURRENCY}`,
  );
  const base = await hom2Figure(ms);
  const thr = await thresholdFigure(ms);
  const rows: BenchRow[] = [
    {
      figure: `threshold 2-of-3 recoveries (concurrency ${CONCURRENCY})`,
      value: thr.perSecond,
      unit: 'rec/s',
      limit: 'hom2 recoveries, 1 manager (same run)',
      limitValue: base.perSecond,
      ratio: thr.perSecond / base.perSecond,
    },
    {
      figure: 'threshold 2-of-3 recovery p50',
      value: thr.p50ms,
      unit: 'ms',
      limit: 'hom2 recovery p50 (same run)',
      limitValue: base.p50ms,
      ratio: thr.p50ms / base.p50ms,
    },
    {
      figure: 'threshold 2-of-3 recovery p99',
      value: thr.p99ms,
      unit: 'ms',
      limit: 'hom2 recovery p99 (same run)',
      limitValue: base.p99ms,
      ratio: thr.p99ms / base.p99ms,
    },
  ];
  console.log(
    `  hom2, 1 manager        ${fmt(base.perSecond)} rec/s  p50 ${fmt(base.p50ms, 2)} ms  p99 ${fmt(base.p99ms, 2)} ms | limit (this is the reference) | ratio 1${base.errors ? `  errors ${base.errors}` : ''}`,
  );
  console.log(
    `  threshold 2-of-3       ${fmt(thr.perSecond)} rec/s  p50 ${fmt(thr.p50ms, 2)} ms  p99 ${fmt(thr.p99ms, 2)} ms | limit ${fmt(base.perSecond)} rec/s (hom2) | ratio ${rows[0]!.ratio.toFixed(2)} (p50 ×${rows[1]!.ratio.toFixed(2)}, p99 ×${rows[2]!.ratio.toFixed(2)})${thr.errors ? `  errors ${thr.errors}` : ''}`,
  );
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--seconds');
  const seconds = i > 0 ? Number(process.argv[i + 1]) : 4;
  await runThresholdBench({ seconds });
}

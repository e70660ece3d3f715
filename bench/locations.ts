/**
 * N-location figures (issue #4, SPEC.md §5.4), measured in one run against real processes: a
 * manager and three blinders, one in-process appliance, ec-elgamal. Recoveries per second and
 * p50/p99 latency at concurrency 8 for 2 locations (hom2), 3 (hom3: one blinder), 4 and 5 (homN:
 * two and three blinders), each with its ratio to the 2-location figure of the same run.
 *
 * Rows {figure, value, unit, limit, limitValue, ratio}. Alone:
 * `node --import tsx bench/locations.ts [--seconds N]` (default 2 s per point).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeAesGcm } from '../src/appliance/stream.ts';
import {
  type DecodedHeader,
  decodeHeader,
  freshFileSecrets,
  sealHeader,
} from '../src/core/format.ts';
import {
  type BlinderProcess,
  registerBlinder,
  startBlinderProcess,
} from '../test/helpers/blinders.ts';
import {
  cleanup,
  newAppliance,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from '../test/helpers/deploy.ts';
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

export async function runLocationsBench(
  o: {
    seconds?: number;
    /** Locations per point (default 2, 3, 4 and 5). */
    locations?: readonly number[];
  } = {},
): Promise<BenchRow[]> {
  const ms = (o.seconds ?? 2) * 1000;
  const dir = await tmpDir('bf-bench-loc-');
  await mkdir(join(dir, 'manager'));
  const m = await startManagerProcess({ home: join(dir, 'manager'), rootKey: newRootKey() });
  const bs: BlinderProcess[] = [];
  const a = await newAppliance(m, join(dir, 'appliance'));
  try {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const home = join(dir, `b${i + 1}`);
      const id = await registerBlinder(m, home, `b${i + 1}`);
      ids.push(id);
      bs.push(await startBlinderProcess({ home, id }));
    }
    const points: { n: number; perSecond: number; p50: number; p99: number; errors: number }[] = [];
    for (const n of o.locations ?? [2, 3, 4, 5]) {
      const name = `loc${n}`;
      await m.op.request('POST', '/v1/keyrings', {
        name,
        mode: n === 2 ? 'hom2' : n === 3 ? 'hom3' : 'homN',
        ...(n > 2 ? { blinders: ids.slice(0, n - 2) } : {}),
      });
      await a.initKeyring(name);
      const headers: DecodedHeader[] = [];
      for (let i = 0; i < 16; i++) {
        const item = await a.newItem(name);
        const { dek, fileNonce } = freshFileSecrets();
        headers.push(
          decodeHeader(sealHeader(nodeAesGcm, { ...item.fields, fileNonce }, item.kek, dek)),
        );
      }
      for (const h of headers.slice(0, 4)) await a.openItem(h); // warm connections
      const lat: number[] = [];
      let errors = 0;
      const t0 = performance.now();
      const end = t0 + ms;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async (_, w) => {
          let k = w;
          while (performance.now() < end) {
            const s = performance.now();
            try {
              await a.openItem(headers[k++ % headers.length]!);
              lat.push(performance.now() - s);
            } catch {
              errors++;
            }
          }
        }),
      );
      const elapsed = performance.now() - t0;
      lat.sort((x, y) => x - y);
      points.push({
        n,
        perSecond: (lat.length / elapsed) * 1000,
        p50: quantile(lat, 0.5),
        p99: quantile(lat, 0.99),
        errors,
      });
    }
    const base = points[0]!;
    const rows: BenchRow[] = [];
    for (const p of points) {
      const mode = p.n === 2 ? 'hom2' : p.n === 3 ? 'hom3' : 'homN';
      const label = `${p.n} locations (${mode}, ec-elgamal, concurrency ${CONCURRENCY})`;
      rows.push(
        {
          figure: `recoveries/s, ${label}`,
          value: p.perSecond,
          unit: '1/s',
          limit: 'recoveries/s with 2 locations (hom2), same run',
          limitValue: base.perSecond,
          ratio: p.perSecond / base.perSecond,
        },
        {
          figure: `recovery p50, ${label}`,
          value: p.p50,
          unit: 'ms',
          limit: 'p50 with 2 locations, same run',
          limitValue: base.p50,
          ratio: p.p50 / base.p50,
        },
        {
          figure: `recovery p99, ${label}`,
          value: p.p99,
          unit: 'ms',
          limit: 'p99 with 2 locations, same run',
          limitValue: base.p99,
          ratio: p.p99 / base.p99,
        },
      );
      if (p.errors > 0) console.log(`  ${label}: ${p.errors} errors`);
    }
    console.log('N-location recoveries (issue #4):');
    for (const r of rows) {
      console.log(
        `  ${r.figure.padEnd(72)} ${r.value.toFixed(r.unit === 'ms' ? 2 : 0).padStart(8)} ${r.unit.padEnd(4)} ratio to 2 locations ${r.ratio.toFixed(2)}`,
      );
    }
    return rows;
  } finally {
    a.close();
    for (const b of bs) await b.stop();
    await m.stop();
    await cleanup(dir);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--seconds');
  const seconds = i > 0 ? Number(process.argv[i + 1]) : 2;
  await runLocationsBench({ seconds });
}

/**
 * Scale-out figures (issue #7), measured in one run against real manager processes:
 *
 *   1. blinded recoveries per second (hom2 / ec-elgamal, one in-process appliance, concurrency 16
 *      over HTTPS keep-alive) with 1 manager on SQLite and 1, 2 and 3 replicas on PostgreSQL; the
 *      ratio is to the 1-manager SQLite figure of the same run;
 *   2. recovery latency p50 (concurrency 1) with 10^3 and then 10^6 items stored: recovery never
 *      reads the item table (the share is derived, the ticket is a MAC), so it must stay flat.
 *
 * Needs PostgreSQL at $BLINDFOLD_TEST_PG (default postgres://postgres@127.0.0.1:5432/test); without
 * it those lines say so. Alone: `node --import tsx bench/replicas.ts [--seconds N] [--full]`.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Appliance } from '../src/appliance/appliance.ts';
import { sealFileHeader } from '../src/appliance/stream.ts';
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
import { quantile } from './lib.ts';

const PG = process.env.BLINDFOLD_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

interface Point {
  label: string;
  perSecond: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

export interface ReplicasBenchResult {
  recoveries: (Point & { replicas: number; store: string; ratioToSqlite: number })[];
  latency: { items: number; p50ms: number; p99ms: number }[];
  skipped?: string;
}

function fmt(n: number, d = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

async function load(a: Appliance, headers: Uint8Array[], concurrency: number, ms: number) {
  const lat: number[] = [];
  let errors = 0;
  let next = 0;
  const end = performance.now() + ms;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
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

async function deployment(o: { replicas: number; store?: string }) {
  const home = await tmpDir('bf-bench-rep-');
  const adir = await tmpDir('bf-bench-rep-a-');
  const rootKey = newRootKey();
  const managers: ManagerProcess[] = [];
  for (let i = 0; i < o.replicas; i++) {
    managers.push(
      await startManagerProcess({ home, rootKey, args: o.store ? ['--store', o.store] : [] }),
    );
  }
  await createKeyring(managers[0]!, 'default', 'hom2', 'ec-elgamal');
  const first = await newAppliance(managers[0]!, adir, 'bench');
  await first.initKeyring('default');
  first.close();
  const a = new Appliance({
    dir: adir,
    state: { ...first.state, managerUrl: managers.map((m) => m.url).join(',') },
  });
  const headers: Uint8Array[] = [];
  for (let i = 0; i < 64; i++) {
    const it = await a.newItem('default');
    const { dek, fileNonce } = freshFileSecrets();
    headers.push(sealFileHeader({ ...it.fields, fileNonce }, it.kek, dek));
  }
  return {
    a,
    managers,
    headers,
    async stop() {
      a.close();
      for (const m of managers) await m.stop();
      await cleanup(home, adir);
    },
  };
}

async function pgReachable(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: PG, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => {});
  }
}

export async function runReplicasBench(opts: {
  seconds: number;
  full?: boolean;
}): Promise<ReplicasBenchResult> {
  const ms = opts.seconds * 1000;
  const out: ReplicasBenchResult = { recoveries: [], latency: [] };
  console.log('[6] scale-out: manager replicas (hom2 / ec-elgamal, one appliance, concurrency 16)');
  const unreachable = await pgReachable();
  const sqlite = await deployment({ replicas: 1 });
  let base: number;
  try {
    const r = await load(sqlite.a, sqlite.headers, 16, ms);
    base = r.perSecond;
    out.recoveries.push({
      label: '1 manager, SQLite',
      replicas: 1,
      store: 'sqlite',
      ratioToSqlite: 1,
      ...r,
    });
    console.log(
      `  1 manager on SQLite         ${fmt(r.perSecond)} rec/s  p50 ${fmt(r.p50ms, 2)} ms  p99 ${fmt(r.p99ms, 2)} ms | limit (this is the reference) | ratio 1`,
    );
  } finally {
    await sqlite.stop();
  }
  if (unreachable) {
    out.skipped = `PostgreSQL not reachable at ${PG}: ${unreachable}`;
    console.log(`  PostgreSQL figures skipped: ${out.skipped}`);
    return out;
  }
  const db = `bf_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${db}`);
  const url = new URL(PG);
  url.pathname = `/${db}`;
  try {
    // The default run stops at 2 replicas and leaves the 10^6-row PostgreSQL fill to --full (the
    // items-count figure is measured on SQLite by run.ts either way): npm run bench in < 2 min.
    for (const n of opts.full ? [1, 2, 3] : [1, 2]) {
      // A schema per deployment: each has its own root key.
      const dep = new URL(url);
      dep.searchParams.set('schema', `rep${n}`);
      const d = await deployment({ replicas: n, store: dep.toString() });
      try {
        const r = await load(d.a, d.headers, 16, ms);
        out.recoveries.push({
          label: `${n} replica(s), PostgreSQL`,
          replicas: n,
          store: 'postgres',
          ratioToSqlite: r.perSecond / base,
          ...r,
        });
        console.log(
          `  ${n} replica${n > 1 ? 's' : ' '} on PostgreSQL      ${fmt(r.perSecond)} rec/s  p50 ${fmt(r.p50ms, 2)} ms  p99 ${fmt(r.p99ms, 2)} ms | limit ${fmt(base)} rec/s (1 on SQLite) | ratio ${(r.perSecond / base).toFixed(2)}${r.errors ? `  errors ${r.errors}` : ''}`,
        );
        if (n === 1 && opts.full) {
          // Latency against the number of stored items: 10^3, then 10^6 rows in `items`.
          const c = new pg.Client({ connectionString: url.toString() });
          await c.connect();
          await c.query(`SET search_path TO rep${n}`);
          try {
            for (const target of [1000, 1_000_000]) {
              const have = Number((await c.query('SELECT count(*) AS n FROM items')).rows[0].n);
              if (have < target) {
                await c.query(
                  `INSERT INTO items (keyring, item_id, master_version, manager_version, created_by, created_at)
                   SELECT 'bulk', decode(md5(g::text || $1), 'hex'), 1, 1, 'bench', 0
                   FROM generate_series(1, $2::int) AS g`,
                  [randomBytes(8).toString('hex'), target - have],
                );
              }
              const r2 = await load(d.a, d.headers, 1, ms);
              out.latency.push({ items: target, p50ms: r2.p50ms, p99ms: r2.p99ms });
            }
          } finally {
            await c.end();
          }
          const [small, large] = out.latency;
          console.log(
            `  recovery p50 with 10^3 items ${fmt(small!.p50ms, 2)} ms, with 10^6 items ${fmt(large!.p50ms, 2)} ms | limit ${fmt(small!.p50ms, 2)} ms (10^3) | ratio ${(large!.p50ms / small!.p50ms).toFixed(2)}`,
          );
        }
      } finally {
        await d.stop();
      }
    }
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {});
    await admin.end();
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--seconds');
  const seconds = i > 0 ? Number(process.argv[i + 1]) : process.argv.includes('--full') ? 10 : 3;
  await runReplicasBench({ seconds, full: process.argv.includes('--full') });
}

/**
 * KMS API figures (issue #6): GenerateDataKey and Decrypt per second and p50/p99 latency at
 * concurrency 8, plain and client-blinded, through the SDK over HTTP against a real manager
 * process and a real appliance process (bench/kms.ts; part of `npm run bench`).
 *
 * Limit, measured in the same run: crypto_scalarmult_ristretto255 per second × cores (group.ts
 * `mul`), the raw operation every ec-elgamal request is built from. 1/ratio = the cost of one KMS
 * call in scalar-multiplication equivalents, on this machine, with manager, appliance and client
 * sharing its cores.
 *
 * Standalone: node --import tsx bench/kms.ts [--seconds N]
 */
import os from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sealFileHeader } from '../src/appliance/stream.ts';
import { freshFileSecrets } from '../src/core/format.ts';
import { type KmsClient as Client, KmsClient } from '../src/sdk/node.ts';
import { cleanup, createKeyring, newAppliance, tmpDir } from '../test/helpers/deploy.ts';
import { type KmsDeployment, startKmsDeployment } from '../test/helpers/kms.ts';
import { quantile, scalarMultLoop } from './lib.ts';

export interface BenchRow {
  figure: string;
  value: number;
  unit: string;
  limit: string;
  limitValue: number;
  ratio: number;
  p50ms?: number;
  p99ms?: number;
  errors?: number;
}

const CONCURRENCY = 8;

async function loadPoint(
  op: () => Promise<unknown>,
  ms: number,
): Promise<{ perSecond: number; p50: number; p99: number; errors: number; first?: string }> {
  const lat: number[] = [];
  let errors = 0;
  let first: string | undefined;
  const t0 = performance.now();
  const end = t0 + ms;
  const worker = async () => {
    while (performance.now() < end) {
      const s = performance.now();
      try {
        await op();
        lat.push(performance.now() - s);
      } catch (e) {
        errors++;
        first ??= (e as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const wall = performance.now() - t0;
  lat.sort((a, b) => a - b);
  return {
    perSecond: (lat.length / wall) * 1000,
    p50: quantile(lat, 0.5),
    p99: quantile(lat, 0.99),
    errors,
    first,
  };
}

export async function runKmsBench(
  opts: {
    seconds?: number;
    /** Key modes, in order (default hom2-opt, the API's default, then hom2). */
    modes?: readonly ('hom2-opt' | 'hom2')[];
  } = {},
): Promise<BenchRow[]> {
  const ms = (opts.seconds ?? 3) * 1000;
  const modes = opts.modes ?? (['hom2-opt', 'hom2'] as const);
  const cores = os.availableParallelism();
  scalarMultLoop(300);
  const one = scalarMultLoop(Math.min(1500, Math.max(1000, 2 * ms)));
  const limitValue = (one.ops / one.ms) * 1000 * cores;
  const limit = `scalar mults/s × ${cores} cores`;
  console.log(
    `[kms] KMS API through the SDK, concurrency ${CONCURRENCY}, ${ms / 1000} s per point; limit ${Math.round(limitValue).toLocaleString('en-US')} ${limit}`,
  );
  const rows: BenchRow[] = [];
  let d: KmsDeployment | undefined;
  const prevRate = process.env.BLINDFOLD_KMS_RATE;
  // The bench measures throughput, not the rate limiter.
  process.env.BLINDFOLD_KMS_RATE = '1000000';
  try {
    d = await startKmsDeployment();
    const app = await d.newApp('bench', ['create-key', 'generate-data-key', 'decrypt']);
    const kms: Client = new KmsClient({ endpoint: d.url, token: app.token, retries: 0 });

    // Reference path in the same run: the plain hom2-opt recovery of an in-process appliance
    // (no KMS layer, no appliance HTTP hop): what a KMS Decrypt costs on top of it.
    const adir = await tmpDir('bf-bench-kms-raw-');
    const raw = await newAppliance(d.m, adir, 'bench-raw');
    try {
      await createKeyring(d.m, 'bench-raw', 'hom2-opt');
      await raw.initKeyring('bench-raw');
      const headers: Uint8Array[] = [];
      for (let k = 0; k < 32; k++) {
        const item = await raw.newItem('bench-raw');
        const { dek, fileNonce } = freshFileSecrets();
        headers.push(sealFileHeader({ ...item.fields, fileNonce }, item.kek, dek));
      }
      let j = 0;
      const op = () => raw.openItem(headers[j++ % headers.length]!);
      await loadPoint(op, Math.max(1500, ms)); // a new manager process: see the ops below
      const p = await loadPoint(op, ms);
      rows.push({
        figure: `plain hom2-opt recovery, in-process appliance (c=${CONCURRENCY})`,
        value: p.perSecond,
        unit: 'ops/s',
        limit,
        limitValue,
        ratio: p.perSecond / limitValue,
        p50ms: p.p50,
        p99ms: p.p99,
        errors: p.errors,
      });
      console.log(
        `  ${rows[0]!.figure.padEnd(48)} ${Math.round(p.perSecond).toString().padStart(6)} ops/s  p50 ${p.p50.toFixed(2)} ms  p99 ${p.p99.toFixed(2)} ms | ratio ${rows[0]!.ratio.toFixed(4)} (1/${(1 / rows[0]!.ratio).toFixed(1)})`,
      );
    } finally {
      raw.close();
      await cleanup(adir);
    }
    // The first KMS op of the run meets a new appliance process, which serves about half as fast
    // in its first seconds of load (run.ts CFG.warmFirstMs): its warm-up is 1.5 s.
    let firstOp = true;
    for (const mode of modes) {
      const keyId = `bench-${mode}`;
      await kms.createKey({ keyId, mode });
      const context = { bench: 'kms' };
      const plainBlobs = await Promise.all(
        Array.from({ length: 32 }, () => kms.generateDataKey({ keyId, context })),
      );
      const cbBlobs = await Promise.all(
        Array.from({ length: 32 }, () => kms.generateClientBlindedDataKey({ keyId, context })),
      );
      let i = 0;
      const ops: [string, () => Promise<unknown>][] = [
        ['GenerateDataKey', () => kms.generateDataKey({ keyId, context })],
        [
          'Decrypt',
          () => kms.decrypt({ ciphertextBlob: plainBlobs[i++ % 32]!.ciphertextBlob, context }),
        ],
        [
          'GenerateDataKey client-blinded',
          () => kms.generateClientBlindedDataKey({ keyId, context }),
        ],
        [
          'Decrypt client-blinded',
          () => kms.decrypt({ ciphertextBlob: cbBlobs[i++ % 32]!.ciphertextBlob, context }),
        ],
      ];
      for (const [name, op] of ops) {
        await loadPoint(op, firstOp ? Math.max(1500, ms) : Math.min(1000, ms / 2));
        firstOp = false;
        const p = await loadPoint(op, ms);
        const row: BenchRow = {
          figure: `kms ${name} (${mode}, c=${CONCURRENCY})`,
          value: p.perSecond,
          unit: 'ops/s',
          limit,
          limitValue,
          ratio: p.perSecond / limitValue,
          p50ms: p.p50,
          p99ms: p.p99,
          errors: p.errors,
        };
        rows.push(row);
        console.log(
          `  ${row.figure.padEnd(48)} ${Math.round(p.perSecond).toString().padStart(6)} ops/s  p50 ${p.p50.toFixed(2)} ms  p99 ${p.p99.toFixed(2)} ms | ratio ${row.ratio.toFixed(4)} (1/${(1 / row.ratio).toFixed(1)})${p.errors ? `  ERRORS ${p.errors}: ${p.first}` : ''}`,
        );
      }
    }
  } finally {
    if (prevRate === undefined) delete process.env.BLINDFOLD_KMS_RATE;
    else process.env.BLINDFOLD_KMS_RATE = prevRate;
    await d?.stop();
  }
  return rows;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--seconds');
  const seconds = i > 0 ? Number(process.argv[i + 1]) : undefined;
  const rows = await runKmsBench({ seconds });
  console.log(JSON.stringify(rows, null, 2));
}

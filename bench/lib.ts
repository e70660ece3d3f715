/** Measurement helpers shared by bench/run.ts and bench/child.ts. */
import { mul, randomPoint, randomScalar } from '../src/core/group.ts';

/**
 * crypto_scalarmult_ristretto255 (through group.ts `mul`) on one core for `ms` milliseconds:
 * the raw limit of the ec-elgamal modes. Each result feeds the next multiplication.
 */
export function scalarMultLoop(ms: number): { ops: number; ms: number } {
  const scalars = Array.from({ length: 16 }, () => randomScalar());
  let p = randomPoint();
  let ops = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < ms) {
    for (let i = 0; i < 64; i++) p = mul(scalars[i & 15]!, p);
    ops += 64;
    now = performance.now();
  }
  return { ops, ms: now - t0 };
}

/** The q-quantile (0..1) of an ascending array, nearest rank. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

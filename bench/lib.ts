/** Measurement helpers shared by bench/run.ts and bench/child.ts. */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from 'node:crypto';
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

/**
 * Raw AES-256-GCM of node:crypto on one core for `ms`: one cipher object per 64 KiB chunk, as
 * encryptStream does (SPEC.md §6 chunks). MB/s.
 */
export function rawAes(direction: 'seal' | 'open', ms: number): number {
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

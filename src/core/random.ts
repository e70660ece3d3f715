/**
 * Randomness for the core. Every function that draws randomness takes an optional `Rng` so that
 * the vector generator (test/vectors/generate.ts) can run it on a seeded stream; production code
 * uses the platform CSPRNG (`crypto.getRandomValues`, in Node and in browsers alike).
 */
import { hmacSha256 } from './hash.ts';

export type Rng = (n: number) => Uint8Array;

export const systemRng: Rng = (n) => {
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) {
    globalThis.crypto.getRandomValues(out.subarray(o, Math.min(n, o + 65536)));
  }
  return out;
};

/**
 * A deterministic byte stream from a 32-byte seed: HMAC-SHA256(seed, "blindfold/v1/rng" ‖ 0 ‖
 * u64 counter) blocks. Used for reproducible test vectors and to re-derive an appliance's stored
 * blinding (hom2-opt β_A) from the seed it keeps (SPEC.md §5.3). Never for fresh randomness.
 */
export function seededRng(seed: Uint8Array): Rng {
  let counter = 0n;
  let buf: Uint8Array = new Uint8Array(0);
  let off = 0;
  const label = new TextEncoder().encode('blindfold/v1/rng');
  return (n) => {
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      if (off >= buf.length) {
        const ctr = new Uint8Array(8);
        new DataView(ctr.buffer).setBigUint64(0, counter++);
        buf = hmacSha256(seed, label, Uint8Array.of(0), ctr);
        off = 0;
      }
      const take = Math.min(n - o, buf.length - off);
      out.set(buf.subarray(off, off + take), o);
      o += take;
      off += take;
    }
    return out;
  };
}

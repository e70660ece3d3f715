/**
 * Randomness for the core. Every function that draws randomness takes an optional `Rng` so that
 * the vector generator (test/vectors/generate.ts) can run it on a seeded stream; production code
 * uses the platform CSPRNG (`crypto.getRandomValues`, in Node and in browsers alike).
 */
export type Rng = (n: number) => Uint8Array;

export const systemRng: Rng = (n) => {
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) {
    globalThis.crypto.getRandomValues(out.subarray(o, Math.min(n, o + 65536)));
  }
  return out;
};

/**
 * Prime generation through OpenSSL (`crypto.generatePrimeSync`), about five times faster than the
 * pure BigInt generator in src/core/bigint.ts. The integer schemes take it as
 * `generateKeyPair({ generatePrime: nodeGeneratePrime })`; they keep only primes with the two
 * top bits set (OpenSSL sets just the top bit), so n = p·q has exactly the requested size.
 */
import { generatePrimeSync } from 'node:crypto';

export function nodeGeneratePrime(bits: number): bigint {
  return generatePrimeSync(bits, { bigint: true, safe: false });
}

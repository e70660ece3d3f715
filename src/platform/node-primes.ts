/**
 * Prime generation through OpenSSL (`crypto.generatePrimeSync`), two to four times faster than the
 * pure BigInt generator in src/core/bigint.ts. The integer schemes take it as
 * `generateKeyPair({ generatePrime: nodeGeneratePrime })`; they keep only primes with the two
 * top bits set, so n = p·q has exactly the requested size. (OpenSSL's generator sets both top
 * bits itself today, BN_RAND_TOP_TWO; Node documents only the bit length, so we check.)
 */
import { generatePrimeSync } from 'node:crypto';

export function nodeGeneratePrime(bits: number): bigint {
  return generatePrimeSync(bits, { bigint: true, safe: false });
}

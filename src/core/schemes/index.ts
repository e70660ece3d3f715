/**
 * The scheme registry (SPEC.md §3): every homomorphic scheme this build knows, by id. The
 * protocol layer looks schemes up here and sees only the `HomomorphicScheme` interface.
 */
import { BlindfoldError } from '../errors.ts';
import { ecElGamal } from './ec-elgamal.ts';
import { gm } from './gm.ts';
import { paillier } from './paillier.ts';
import { rsa } from './rsa.ts';
import type { HomomorphicScheme, SchemeId } from './scheme.ts';

export const schemes: Record<SchemeId, HomomorphicScheme> = {
  'ec-elgamal': ecElGamal,
  paillier,
  rsa,
  gm,
};

export function isSchemeId(id: unknown): id is SchemeId {
  return typeof id === 'string' && Object.hasOwn(schemes, id);
}

/** The scheme with this id; ERR_UNSUPPORTED_SCHEME for anything else (including "__proto__"). */
export function getScheme(id: string): HomomorphicScheme {
  if (!isSchemeId(id)) throw new BlindfoldError('ERR_UNSUPPORTED_SCHEME', `unknown scheme: ${id}`);
  return schemes[id];
}

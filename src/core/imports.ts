/**
 * Master-key import from the web console (SPEC.md §5.9). Pure: the browser bundle, the manager
 * and the appliance run the same code.
 *
 * The appliance owns an import key pair (X25519, libsodium crypto_box_seal) and publishes the
 * public half signed by its identity key. The console page generates or takes 32 bytes of key
 * material, conceals the master there (split: M ⊕ r_A with r_A going to the manager; hom modes:
 * Enc_{D_A}(M) under the appliance's key for the new version), and seals the concealment to the
 * import key. The manager relays the sealed blob only: it holds d_A (hom) or r_A (split), so it
 * must never see the concealment itself.
 */
import { concat, fromB64u, fromUtf8, lp16, toB64u, toHex, utf8, zeroize } from './bytes.ts';
import { BlindfoldError, decryptFailed } from './errors.ts';
import { sha256 } from './hash.ts';
import { getSplitOperator } from './operators.ts';
import { homMode, splitMode } from './protocol.ts';
import { getScheme } from './schemes/index.ts';
import { sodium } from './sodium.ts';

export const IMPORT_PUBLIC_KEY_BYTES = 32;

/** What the appliance's identity key signs to publish its import key. */
export function importKeyStatement(applianceId: string, publicKey: Uint8Array): Uint8Array {
  return concat(
    utf8('blindfold/v1/import-key'),
    Uint8Array.of(0),
    lp16(utf8(applianceId)),
    lp16(publicKey),
  );
}

/** The fingerprint an operator compares between the console and `blindfold appliance status`. */
export function importKeyFingerprint(publicKey: Uint8Array): string {
  return toHex(sha256(utf8('blindfold/v1/import-key-fpr'), Uint8Array.of(0), publicKey)).slice(
    0,
    32,
  );
}

export function generateImportKeyPair(): { publicKey: Uint8Array; secretKey: Uint8Array } {
  const kp = sodium.crypto_box_keypair();
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

/** The sealed payload (JSON), bound to the import's appliance, keyring and versions. */
export interface ImportPayload {
  v: 1;
  applianceId: string;
  keyring: string;
  mode: string;
  scheme: string;
  masterVersion: number;
  managerVersion: number;
  /** hom modes: encodePublicKey(D_A) the page concealed under. */
  publicKey?: string;
  /** split: M ⊕ r_A; hom: encodeCiphertext(Enc_{D_A}(M)). */
  concealed: string;
}

export interface ImportTarget {
  applianceId: string;
  keyring: string;
  mode: string;
  scheme: string;
  masterVersion: number;
  managerVersion: number;
  /** hom modes: the appliance's scheme public key for these versions (b64u), from the manager. */
  publicKey?: string;
}

/**
 * Conceals 32 bytes of key material for `target` and seals the concealment to the appliance's
 * import key. Returns the sealed blob and, in split mode, r_A for the manager. The key material,
 * M, and every intermediate value are wiped (BigInt plaintexts cannot be, SPEC.md §2.6).
 */
export function concealForImport(
  seed: Uint8Array,
  target: ImportTarget,
  importPublicKey: Uint8Array,
): { sealed: Uint8Array; r?: Uint8Array } {
  if (seed.length !== 32) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'master key material must be 32 bytes');
  }
  if (importPublicKey.length !== IMPORT_PUBLIC_KEY_BYTES) {
    throw new BlindfoldError('ERR_DECODE', 'the import public key must be 32 bytes');
  }
  const payload: ImportPayload = {
    v: 1,
    applianceId: target.applianceId,
    keyring: target.keyring,
    mode: target.mode,
    scheme: target.scheme,
    masterVersion: target.masterVersion,
    managerVersion: target.managerVersion,
    concealed: '',
  };
  let r: Uint8Array | undefined;
  if (target.mode === 'split') {
    const op = getSplitOperator(target.scheme);
    const master = op.fromSeed(seed);
    const c = splitMode.conceal(op, master);
    zeroize(master);
    payload.concealed = toB64u(c.blindedMaster);
    zeroize(c.blindedMaster);
    r = c.r;
  } else {
    const scheme = getScheme(target.scheme);
    if (!target.publicKey) {
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'hom modes need the appliance public key');
    }
    const pk = scheme.decodePublicKey(fromB64u(target.publicKey, 'publicKey'));
    const master = scheme.plaintextFromSeed(pk, seed);
    const ct = homMode.conceal(scheme, pk, master);
    if (master instanceof Uint8Array) zeroize(master);
    payload.publicKey = target.publicKey;
    payload.concealed = toB64u(scheme.encodeCiphertext(pk, ct));
  }
  const plain = utf8(JSON.stringify(payload));
  const sealed = sodium.crypto_box_seal(plain, importPublicKey);
  zeroize(plain);
  return r ? { sealed, r } : { sealed };
}

/** Opens a sealed import and checks it is for exactly this appliance, keyring and versions. */
export function openImport(
  sealed: Uint8Array,
  keyPair: { publicKey: Uint8Array; secretKey: Uint8Array },
  expect: Omit<ImportTarget, 'publicKey'>,
): ImportPayload {
  let plain: Uint8Array;
  try {
    plain = sodium.crypto_box_seal_open(sealed, keyPair.publicKey, keyPair.secretKey);
  } catch {
    throw decryptFailed();
  }
  let p: ImportPayload;
  try {
    p = JSON.parse(fromUtf8(plain)) as ImportPayload;
  } catch {
    throw new BlindfoldError('ERR_DECODE', 'the import payload is not valid JSON');
  } finally {
    zeroize(plain);
  }
  const same =
    p?.v === 1 &&
    p.applianceId === expect.applianceId &&
    p.keyring === expect.keyring &&
    p.mode === expect.mode &&
    p.scheme === expect.scheme &&
    p.masterVersion === expect.masterVersion &&
    p.managerVersion === expect.managerVersion &&
    typeof p.concealed === 'string';
  if (!same) {
    throw new BlindfoldError(
      'ERR_DECODE',
      'the import payload is not for this appliance, keyring and versions',
    );
  }
  return p;
}

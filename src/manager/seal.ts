/**
 * Sealing of the manager's secrets at rest (the CA key, scheme decryption keys, ticket MAC keys)
 * under a ROOT KEY that never enters the database: whoever copies the database without the root
 * key holds only ciphertext.
 *
 * Sealed blob (SPEC.md, sealing), all lengths fixed:
 *   u8 version = 1 ‖ key id (8) ‖ nonce (12, random) ‖ AES-256-GCM ciphertext ‖ tag (16)
 *   key id = HKDF-SHA256(ikm = root, salt = empty, info = "blindfold/v1/seal-key-id" ‖ 0x00, L = 8)
 *   key    = HKDF-SHA256(ikm = root, salt = empty, info = "blindfold/v1/seal" ‖ 0x00, L = 32)
 *   AAD    = utf8("blindfold/v1/seal") ‖ 0x00 ‖ utf8(name)
 * (both derivations are deriveKey(root, label, empty, L), SPEC.md §2.3). The AAD binds a blob to
 * the name it is stored under, so a blob cannot be moved to another record. The key id is public:
 * it lets `open` tell "sealed under a different root key" (an operator mistake worth a precise
 * message) from tampering (generic ERR_DECRYPT, no oracle).
 *
 * Random 96-bit nonces: NIST SP 800-38D §8.3 allows 2^32 messages per key; the manager seals a
 * handful of secrets per key rotation, far below that.
 *
 * Root key sources, in this order of preference for an operator: BLINDFOLD_ROOT_KEY (base64url,
 * 32 bytes), a key file (0600, base64url text or 32 raw bytes), or operator shares (src/core/shamir.ts)
 * given at unseal time (rootKeyFromShares).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fstatSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { concat, equalBytes, fromB64u, toB64u, toHex, utf8, zeroize } from '../core/bytes.ts';
import { BlindfoldError, decryptFailed } from '../core/errors.ts';
import { deriveKey } from '../core/hash.ts';
import { type Rng, systemRng } from '../core/random.ts';
import { combine, encodeShareText, split } from '../core/shamir.ts';
import { toIoError } from '../util/atomic.ts';

export const SEAL_VERSION = 1;
export const ROOT_KEY_ENV = 'BLINDFOLD_ROOT_KEY';
export const ROOT_KEY_LEN = 32;
const KEY_ID_LEN = 8;
const NONCE_LEN = 12;
const TAG_LEN = 16;
const HEADER_LEN = 1 + KEY_ID_LEN + NONCE_LEN;
const AAD_PREFIX = concat(utf8('blindfold/v1/seal'), Uint8Array.of(0));

export interface Sealer {
  /** Hex of the 8-byte root key id (public: safe to store and log). */
  readonly keyId: string;
  seal(name: string, plaintext: Uint8Array): Uint8Array;
  open(name: string, sealed: Uint8Array): Uint8Array;
  /** Wipes the derived key; later calls throw ERR_SEALED. */
  destroy(): void;
}

function checkRootKey(rootKey: Uint8Array): void {
  if (!(rootKey instanceof Uint8Array) || rootKey.length !== ROOT_KEY_LEN) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `the root key must be ${ROOT_KEY_LEN} bytes`);
  }
  if (rootKey.every((b) => b === 0)) {
    throw new BlindfoldError('ERR_PARAMS', 'the root key is all zeros: generate a random one');
  }
}

/** The public 8-byte identifier of a root key. */
export function rootKeyId(rootKey: Uint8Array): Uint8Array {
  checkRootKey(rootKey);
  return deriveKey(rootKey, 'seal-key-id', new Uint8Array(0), KEY_ID_LEN);
}

function checkName(name: string): Uint8Array {
  if (typeof name !== 'string')
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'the seal name must be a string');
  return concat(AAD_PREFIX, utf8(name));
}

export function createSealer(rootKey: Uint8Array): Sealer {
  const id = rootKeyId(rootKey);
  let key: Uint8Array | null = deriveKey(rootKey, 'seal', new Uint8Array(0), 32);
  const live = (): Uint8Array => {
    if (key === null) throw new BlindfoldError('ERR_SEALED', 'this sealer was destroyed');
    return key;
  };

  return {
    keyId: toHex(id),

    seal(name, plaintext) {
      const aad = checkName(name);
      if (!(plaintext instanceof Uint8Array)) {
        throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'the plaintext must be bytes');
      }
      const nonce = new Uint8Array(randomBytes(NONCE_LEN));
      const c = createCipheriv('aes-256-gcm', live(), nonce, { authTagLength: TAG_LEN });
      c.setAAD(aad);
      const body = c.update(plaintext);
      c.final(); // GCM produces no bytes here
      return concat(Uint8Array.of(SEAL_VERSION), id, nonce, body, c.getAuthTag());
    },

    open(name, sealed) {
      const aad = checkName(name);
      if (!(sealed instanceof Uint8Array) || sealed.length < HEADER_LEN + TAG_LEN) {
        throw new BlindfoldError('ERR_DECODE', 'invalid sealed data: too short');
      }
      if (sealed[0] !== SEAL_VERSION) {
        throw new BlindfoldError(
          'ERR_UNSUPPORTED_VERSION',
          `sealed data has unknown version ${sealed[0]}`,
        );
      }
      if (!equalBytes(sealed.subarray(1, 1 + KEY_ID_LEN), id)) {
        throw new BlindfoldError('ERR_SEALED', 'this data was sealed under a different root key');
      }
      const nonce = sealed.subarray(1 + KEY_ID_LEN, HEADER_LEN);
      const tag = sealed.subarray(sealed.length - TAG_LEN);
      const d = createDecipheriv('aes-256-gcm', live(), nonce, { authTagLength: TAG_LEN });
      d.setAAD(aad);
      d.setAuthTag(tag);
      const out = d.update(sealed.subarray(HEADER_LEN, sealed.length - TAG_LEN));
      try {
        d.final(); // verifies the tag
      } catch (cause) {
        out.fill(0);
        throw decryptFailed(cause);
      }
      return new Uint8Array(out.buffer, out.byteOffset, out.length);
    },

    destroy() {
      if (key) zeroize(key);
      key = null;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Root key sources.

const NO_ROOT_KEY = `no root key: set ${ROOT_KEY_ENV}, pass --root-key-file, or start sealed and unseal with operator shares`;

function parseRootKeyText(text: string, what: string): Uint8Array {
  let key: Uint8Array;
  try {
    key = fromB64u(text.trim(), what);
  } catch {
    // fromB64u's detail is fine, but say what the value must look like and never echo it.
    throw new BlindfoldError(
      'ERR_DECODE',
      `${what} is not base64url (expected ${ROOT_KEY_LEN} bytes, 43 characters)`,
    );
  }
  if (key.length !== ROOT_KEY_LEN) {
    zeroize(key);
    throw new BlindfoldError(
      'ERR_DECODE',
      `${what} must hold ${ROOT_KEY_LEN} bytes, not ${key.length}`,
    );
  }
  return key;
}

/**
 * Loads the root key from `env` (the value of BLINDFOLD_ROOT_KEY) or from `file`. Giving both is
 * an error: two sources that may disagree would turn a typo into "sealed under a different root
 * key" much later. A key file readable by group or others is refused (ERR_FORBIDDEN).
 */
export function loadRootKey(src: { env?: string; file?: string }): Uint8Array {
  const env = src.env?.trim() ? src.env : undefined;
  const file = src.file?.trim() ? src.file : undefined;
  if (env !== undefined && file !== undefined) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      `both ${ROOT_KEY_ENV} and a root key file are set: use one`,
    );
  }
  let key: Uint8Array;
  if (env !== undefined) {
    key = parseRootKeyText(env, ROOT_KEY_ENV);
  } else if (file !== undefined) {
    key = readRootKeyFile(file);
  } else {
    throw new BlindfoldError('ERR_SEALED', NO_ROOT_KEY);
  }
  checkRootKey(key);
  return key;
}

function readRootKeyFile(file: string): Uint8Array {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw toIoError(e, 'open root key file', file);
  }
  try {
    // fstat the open descriptor, not the path: what we check is what we read.
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new BlindfoldError('ERR_IO', `root key file ${file} is not a regular file`);
    if (process.platform !== 'win32' && st.mode & 0o077) {
      throw new BlindfoldError(
        'ERR_FORBIDDEN',
        `root key file ${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${file}`,
      );
    }
    if (st.size > 4096)
      throw new BlindfoldError('ERR_DECODE', `root key file ${file} is too large`);
    const raw = new Uint8Array(readFileSync(fd));
    if (raw.length === ROOT_KEY_LEN) return raw; // 32 raw bytes (base64url text is ≥ 43 bytes)
    const text = Buffer.from(raw).toString('latin1');
    zeroize(raw);
    return parseRootKeyText(text, `root key file ${file}`);
  } catch (e) {
    throw toIoError(e, 'read root key file', file);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some platforms cannot fsync a directory; the file itself is already durable.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Creates a new random root key file at `path` (base64url text and a newline, mode 0600) and
 * returns the key. Refuses to overwrite an existing file (ERR_CONFLICT): that would orphan every
 * secret sealed under the old key. Atomic and no-clobber: the key is written and fsynced to a
 * temporary file in the same directory, then hard-linked to `path` (link(2) fails if `path`
 * exists, where rename(2) would replace it).
 */
export function generateRootKeyFile(path: string, rng: Rng = systemRng): Uint8Array {
  const key = rng(ROOT_KEY_LEN);
  checkRootKey(key);
  const text = Buffer.from(`${toB64u(key)}\n`, 'latin1');
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temp, 'wx', 0o600);
    fchmodSync(fd, 0o600); // independent of the umask
    for (let off = 0; off < text.length; ) off += writeSync(fd, text, off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    try {
      linkSync(temp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new BlindfoldError(
          'ERR_CONFLICT',
          `root key file ${path} already exists: refusing to overwrite it`,
        );
      }
      throw e;
    }
    fsyncDir(dirname(path));
    return key;
  } catch (e) {
    zeroize(key);
    throw toIoError(e, 'create root key file', path);
  } finally {
    text.fill(0);
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {
      // already gone
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Operator shares.

/** Splits a root key into operator shares in text form ("bf-share-…"), any `threshold` of which unseal. */
export function splitRootKey(
  rootKey: Uint8Array,
  threshold: number,
  shares: number,
  rng: Rng = systemRng,
): string[] {
  checkRootKey(rootKey);
  return split(rootKey, threshold, shares, rng).map((s) => {
    const t = encodeShareText(s);
    s.fill(0);
    return t;
  });
}

/**
 * Reconstructs the root key from operator shares. Shares carry no MAC, so pass the expected key id
 * (Sealer.keyId, public, e.g. from the database): a wrong share then gives a clear ERR_SEALED
 * instead of a key that fails later.
 */
export function rootKeyFromShares(
  shares: (string | Uint8Array)[],
  expectedKeyId?: string,
): Uint8Array {
  const key = combine(shares);
  if (key.length !== ROOT_KEY_LEN) {
    zeroize(key);
    throw new BlindfoldError(
      'ERR_DECODE',
      `the shares hold ${key.length} bytes, not a ${ROOT_KEY_LEN}-byte root key`,
    );
  }
  if (expectedKeyId !== undefined && toHex(rootKeyId(key)) !== expectedKeyId.toLowerCase()) {
    zeroize(key);
    throw new BlindfoldError(
      'ERR_SEALED',
      'the shares reconstruct a different root key: a share is wrong or from another split',
    );
  }
  return key;
}

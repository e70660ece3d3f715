/**
 * One error class for the whole project, in the style of `jose`: a stable `code` that callers
 * switch on, a message a person can act on, and an optional `cause`.
 *
 * Cryptographic failures are deliberately vague (SPEC.md §2.4): a forged ticket, a wrong key and a
 * tampered chunk all say only that the operation failed, so that no error message becomes an
 * oracle. Structural problems that anyone can see without a key (wrong length, unknown version)
 * are reported precisely.
 */

export const ERROR_CODES = [
  // encodings and parameters (public information: precise messages are fine)
  'ERR_DECODE', // malformed bytes: wrong length, out of range, non-canonical encoding
  'ERR_IDENTITY', // the identity element where the spec forbids it
  'ERR_UNSUPPORTED_VERSION', // a version byte or format this build does not know
  'ERR_UNSUPPORTED_SCHEME', // a scheme id this build does not know, or a mode a scheme cannot do
  'ERR_PARAMS', // key or group parameters that fail the spec's checks (too small, not odd, ...)
  'ERR_INVALID_ARGUMENT', // a caller passed a value of the wrong type or range
  // cryptographic failures (generic messages: no oracle)
  'ERR_DECRYPT', // authentication failed: wrong key, tampered header or chunk, wrong context
  'ERR_TICKET_INVALID', // a ticket that does not verify for this request
  'ERR_TICKET_EXPIRED', // a ticket whose (public) expiry has passed
  'ERR_TRUNCATED', // a stream that ends before its authenticated final chunk
  // service level
  'ERR_UNAUTHENTICATED',
  'ERR_FORBIDDEN',
  'ERR_NOT_FOUND',
  'ERR_CONFLICT',
  'ERR_REVOKED',
  'ERR_RATE_LIMITED',
  'ERR_TOO_LARGE',
  'ERR_UNAVAILABLE', // a peer (manager, blinder, store) is down or answered garbage
  'ERR_SEALED', // the manager has not been given its root key yet
  'ERR_STORAGE', // the store refused a write (full disk, lost connection)
  'ERR_IO', // a local file could not be read or written
  'ERR_INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class BlindfoldError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BlindfoldError';
    this.code = code;
  }
}

export function isBlindfoldError(e: unknown, code?: ErrorCode): e is BlindfoldError {
  return e instanceof BlindfoldError && (code === undefined || e.code === code);
}

/** The one message for every authentication failure of ciphertexts (SPEC.md §2.4). */
export function decryptFailed(cause?: unknown): BlindfoldError {
  return new BlindfoldError('ERR_DECRYPT', 'decryption failed', { cause });
}

export function decodeError(what: string, detail: string): BlindfoldError {
  return new BlindfoldError('ERR_DECODE', `invalid ${what}: ${detail}`);
}

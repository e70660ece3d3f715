/**
 * The Blindfold file: an envelope header followed by a chunked AEAD stream (SPEC.md §6).
 * Modelled on age's STREAM (age-encryption.org/v1, itself Hoang–Reyhanitabar–Rogaway–Vizár
 * "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", §7).
 *
 * Header, all integers big-endian:
 *
 *   magic             7 bytes  "BLNDFLD"
 *   formatVersion     u8       0x01
 *   headerLength      u32      the whole header, magic through wrappedDek
 *   scheme            u8       scheme code (schemes/scheme.ts SCHEME_CODES); opaque here
 *   mode              u8       protocol mode; opaque here
 *   keyring           lp16     utf8, 1..64 chars of [a-z0-9._-]
 *   masterVersion     u32
 *   managerKeyVersion u32
 *   itemId            16 bytes
 *   itemData          lp16     opaque bytes the protocol needs to recover the KEK (may be empty)
 *   ticket            lp16     the manager's ticket for this item (ticket.ts; may be empty)
 *   fileNonce         16 bytes
 *   wrapNonce         12 bytes
 *   wrappedDek        48 bytes = AES-256-GCM(KEK, wrapNonce, DEK[32], aad = all header bytes
 *                               before wrappedDek)
 *
 * Payload: payloadKey = deriveKey(DEK, "payload", empty, 32, salt = fileNonce). The plaintext is
 * cut into 64 KiB chunks, each sealed with AES-256-GCM under payloadKey with nonce =
 * chunkIndex (11 bytes, big-endian) ‖ lastFlag (0x01 on the final chunk, else 0x00), tag appended.
 * Chunks 0..k−2 are full; the final chunk is 0..65536 bytes and is empty only when it is the only
 * chunk (the empty file). The counter stops reordering and dropping chunks in the middle; the last
 * flag stops truncation at a chunk boundary and appending.
 *
 * The header is deliberately NOT an input to payloadKey: rotating the KEK (new master version, new
 * ticket) replaces the header and copies the chunks untouched, so rotation never re-encrypts data.
 * The header is authenticated by the wrap AEAD instead (every byte before wrappedDek is its AAD),
 * and a header taken from another file unwraps to another DEK, under which no chunk opens.
 * The DEK is fresh per file and the fileNonce salts the payload key, so chunk nonces never repeat
 * under one key.
 *
 * Pure: no node:*; the AEAD itself comes in through the small `Aead` interface.
 */
import { concat, fromUtf8, lp16, readU16be, readU32be, u8, u32be, utf8 } from './bytes.ts';
import { BlindfoldError, decodeError, decryptFailed } from './errors.ts';
import { deriveKey } from './hash.ts';
import { type Rng, systemRng } from './random.ts';
import { isKeyringId } from './ticket.ts';

export const MAGIC = utf8('BLNDFLD');
export const FORMAT_VERSION = 0x01;
export const CHUNK_SIZE = 65536;
export const TAG_SIZE = 16;
export const SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE;
export const DEK_SIZE = 32;
export const KEK_SIZE = 32;
export const ITEM_ID_SIZE = 16;
export const FILE_NONCE_SIZE = 16;
export const WRAP_NONCE_SIZE = 12;
export const WRAPPED_DEK_SIZE = DEK_SIZE + TAG_SIZE;
export const CHUNK_NONCE_SIZE = 12;
/** magic + formatVersion + headerLength: enough to learn how many header bytes to read. */
export const HEADER_PREFIX_SIZE = 12;
/** A header with an empty keyring, itemData and ticket (not valid: keyring needs ≥ 1 char). */
export const HEADER_FIXED_SIZE =
  HEADER_PREFIX_SIZE +
  1 +
  1 +
  2 +
  4 +
  4 +
  ITEM_ID_SIZE +
  2 +
  2 +
  FILE_NONCE_SIZE +
  WRAP_NONCE_SIZE +
  WRAPPED_DEK_SIZE;
export const HEADER_MIN_SIZE = HEADER_FIXED_SIZE + 1;
export const HEADER_MAX_SIZE = HEADER_FIXED_SIZE + 64 + 0xffff + 0xffff;
/** Chunk indexes are 11-byte counters; we stop at 2^53 (a 2^69-byte file is not a concern). */
const MAX_CHUNKS = Number.MAX_SAFE_INTEGER;

/** A synchronous AEAD (AES-256-GCM in stream.ts). seal returns ciphertext ‖ 16-byte tag. */
export interface Aead {
  seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array;
  /** Throws ERR_DECRYPT (decryptFailed) if the tag does not verify. */
  open(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, aad?: Uint8Array): Uint8Array;
}

export interface HeaderFields {
  scheme: number;
  mode: number;
  keyring: string;
  masterVersion: number;
  managerKeyVersion: number;
  /** 16 bytes. */
  itemId: Uint8Array;
  /** Opaque protocol bytes, ≤ 65535. */
  itemData: Uint8Array;
  /** Ticket bytes, ≤ 65535 (may be empty). */
  ticket: Uint8Array;
  /** 16 bytes; salts the payload key. Must be kept when the header is rewrapped. */
  fileNonce: Uint8Array;
}

export interface HeaderWrap {
  /** 12 bytes. */
  wrapNonce: Uint8Array;
  /** 48 bytes: AES-256-GCM ciphertext of the DEK with its tag. */
  wrappedDek: Uint8Array;
}

export interface DecodedHeader {
  fields: HeaderFields;
  wrap: HeaderWrap;
  /** Total header bytes; the payload starts here. */
  headerLength: number;
  /** The wrap AEAD's associated data: header bytes [0, headerLength − 48). */
  aad: Uint8Array;
}

function arg(what: string): BlindfoldError {
  return new BlindfoldError('ERR_INVALID_ARGUMENT', `invalid header field: ${what}`);
}

function checkInt(n: unknown, max: number, what: string): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max) throw arg(what);
}

function checkBytes(b: unknown, len: number | [number, number], what: string): void {
  const [lo, hi] = typeof len === 'number' ? [len, len] : len;
  if (!(b instanceof Uint8Array) || b.length < lo || b.length > hi) throw arg(what);
}

function checkFields(f: HeaderFields): void {
  checkInt(f.scheme, 0xff, 'scheme');
  checkInt(f.mode, 0xff, 'mode');
  if (!isKeyringId(f.keyring)) throw arg('keyring');
  checkInt(f.masterVersion, 0xffffffff, 'masterVersion');
  checkInt(f.managerKeyVersion, 0xffffffff, 'managerKeyVersion');
  checkBytes(f.itemId, ITEM_ID_SIZE, 'itemId');
  checkBytes(f.itemData, [0, 0xffff], 'itemData');
  checkBytes(f.ticket, [0, 0xffff], 'ticket');
  checkBytes(f.fileNonce, FILE_NONCE_SIZE, 'fileNonce');
}

/** Header length for these fields (keyring is ASCII by the charset rule, so chars = bytes). */
export function headerLengthOf(f: HeaderFields): number {
  return HEADER_FIXED_SIZE + f.keyring.length + f.itemData.length + f.ticket.length;
}

/** The wrap AEAD's associated data: every header byte before wrappedDek (wrapNonce included). */
export function headerAad(fields: HeaderFields, wrapNonce: Uint8Array): Uint8Array {
  checkFields(fields);
  checkBytes(wrapNonce, WRAP_NONCE_SIZE, 'wrapNonce');
  return concat(
    MAGIC,
    u8(FORMAT_VERSION),
    u32be(headerLengthOf(fields)),
    u8(fields.scheme),
    u8(fields.mode),
    lp16(utf8(fields.keyring)),
    u32be(fields.masterVersion),
    u32be(fields.managerKeyVersion),
    fields.itemId,
    lp16(fields.itemData),
    lp16(fields.ticket),
    fields.fileNonce,
    wrapNonce,
  );
}

export function encodeHeader(fields: HeaderFields, wrap: HeaderWrap): Uint8Array {
  checkBytes(wrap.wrappedDek, WRAPPED_DEK_SIZE, 'wrappedDek');
  return concat(headerAad(fields, wrap.wrapNonce), wrap.wrappedDek);
}

/**
 * Reads the header length from the first HEADER_PREFIX_SIZE bytes of a file, checking magic and
 * version, so that a streaming reader knows how much more to read.
 */
export function peekHeaderLength(prefix: Uint8Array): number {
  if (prefix.length < HEADER_PREFIX_SIZE) {
    throw new BlindfoldError('ERR_TRUNCATED', 'file ends inside the Blindfold header');
  }
  for (let i = 0; i < MAGIC.length; i++) {
    if (prefix[i] !== MAGIC[i])
      throw decodeError('Blindfold header', 'bad magic (not a Blindfold file)');
  }
  if (prefix[7] !== FORMAT_VERSION) {
    throw new BlindfoldError(
      'ERR_UNSUPPORTED_VERSION',
      `unsupported Blindfold file version ${prefix[7]}`,
    );
  }
  const len = readU32be(prefix, 8);
  if (len < HEADER_MIN_SIZE || len > HEADER_MAX_SIZE) {
    throw decodeError('Blindfold header', `header length ${len} out of range`);
  }
  return len;
}

const badHeader = (detail: string) => decodeError('Blindfold header', detail);

function needHeaderBytes(o: number, n: number, headerLength: number, what: string): void {
  if (o + n > headerLength) throw badHeader(`${what} overruns the header length`);
}

/**
 * Decodes a header from the start of `bytes` (which may continue with the payload). Strict: magic,
 * version, header length range, every length-prefixed field inside headerLength, the fields filling
 * headerLength exactly, keyring charset. A file cut inside its header is ERR_TRUNCATED.
 */
export function decodeHeader(bytes: Uint8Array): DecodedHeader {
  const headerLength = peekHeaderLength(bytes);
  if (bytes.length < headerLength)
    throw new BlindfoldError('ERR_TRUNCATED', 'file ends inside the Blindfold header');
  const h = bytes.subarray(0, headerLength);
  let o = HEADER_PREFIX_SIZE;
  // Every read is bounds-checked against headerLength, not against the buffer. (Module-level
  // helpers, not closures: tsx names every closure it creates, a defineProperty per call.)
  needHeaderBytes(o, 4, headerLength, 'scheme/mode/keyring');
  const scheme = h[o]!;
  const mode = h[o + 1]!;
  const keyringLen = readU16be(h, o + 2);
  o += 4;
  if (keyringLen < 1 || keyringLen > 64) throw badHeader('keyring length out of range');
  needHeaderBytes(o, keyringLen, headerLength, 'keyring');
  const keyring = fromUtf8(h.subarray(o, o + keyringLen));
  if (!isKeyringId(keyring)) throw badHeader('keyring id outside [a-z0-9._-]');
  o += keyringLen;
  needHeaderBytes(o, 8 + ITEM_ID_SIZE + 2, headerLength, 'versions/itemId');
  const masterVersion = readU32be(h, o);
  const managerKeyVersion = readU32be(h, o + 4);
  const itemId = new Uint8Array(h.subarray(o + 8, o + 8 + ITEM_ID_SIZE));
  o += 8 + ITEM_ID_SIZE;
  const itemDataLen = readU16be(h, o);
  o += 2;
  needHeaderBytes(o, itemDataLen + 2, headerLength, 'itemData');
  const itemData = new Uint8Array(h.subarray(o, o + itemDataLen));
  o += itemDataLen;
  const ticketLen = readU16be(h, o);
  o += 2;
  needHeaderBytes(o, ticketLen, headerLength, 'ticket');
  const ticket = new Uint8Array(h.subarray(o, o + ticketLen));
  o += ticketLen;
  needHeaderBytes(
    o,
    FILE_NONCE_SIZE + WRAP_NONCE_SIZE + WRAPPED_DEK_SIZE,
    headerLength,
    'nonces/wrappedDek',
  );
  const fileNonce = new Uint8Array(h.subarray(o, o + FILE_NONCE_SIZE));
  o += FILE_NONCE_SIZE;
  const wrapNonce = new Uint8Array(h.subarray(o, o + WRAP_NONCE_SIZE));
  o += WRAP_NONCE_SIZE;
  const aadEnd = o;
  const wrappedDek = new Uint8Array(h.subarray(o, o + WRAPPED_DEK_SIZE));
  o += WRAPPED_DEK_SIZE;
  if (o !== headerLength)
    throw badHeader(`${headerLength - o} trailing bytes inside the header length`);
  return {
    fields: {
      scheme,
      mode,
      keyring,
      masterVersion,
      managerKeyVersion,
      itemId,
      itemData,
      ticket,
      fileNonce,
    },
    wrap: { wrapNonce, wrappedDek },
    headerLength,
    aad: new Uint8Array(h.subarray(0, aadEnd)),
  };
}

/** A fresh random DEK and file nonce for a new file. */
export function freshFileSecrets(rng: Rng = systemRng): { dek: Uint8Array; fileNonce: Uint8Array } {
  return { dek: rng(DEK_SIZE), fileNonce: rng(FILE_NONCE_SIZE) };
}

/** Wraps the DEK under the KEK and returns the complete encoded header. */
export function sealHeader(
  aead: Aead,
  fields: HeaderFields,
  kek: Uint8Array,
  dek: Uint8Array,
  rng: Rng = systemRng,
): Uint8Array {
  checkBytes(kek, KEK_SIZE, 'kek');
  checkBytes(dek, DEK_SIZE, 'dek');
  const wrapNonce = rng(WRAP_NONCE_SIZE);
  const aad = headerAad(fields, wrapNonce);
  const wrappedDek = aead.seal(kek, wrapNonce, dek, aad);
  if (wrappedDek.length !== WRAPPED_DEK_SIZE)
    throw new BlindfoldError('ERR_INTERNAL', 'AEAD returned a wrong length');
  return concat(aad, wrappedDek);
}

/** Unwraps the DEK; ERR_DECRYPT if the KEK is wrong or any header byte was changed. */
export function openHeader(aead: Aead, header: DecodedHeader, kek: Uint8Array): Uint8Array {
  if (!(kek instanceof Uint8Array) || kek.length !== KEK_SIZE) throw decryptFailed();
  const dek = aead.open(kek, header.wrap.wrapNonce, header.wrap.wrappedDek, header.aad);
  if (dek.length !== DEK_SIZE) throw decryptFailed();
  return dek;
}

/** payloadKey = deriveKey(DEK, "payload", empty, 32, salt = fileNonce) (SPEC.md §6). */
export function payloadKey(dek: Uint8Array, fileNonce: Uint8Array): Uint8Array {
  checkBytes(dek, DEK_SIZE, 'dek');
  checkBytes(fileNonce, FILE_NONCE_SIZE, 'fileNonce');
  return deriveKey(dek, 'payload', new Uint8Array(0), 32, fileNonce);
}

/**
 * Chunk nonce = index as 11 bytes big-endian ‖ lastFlag. Writes into `out` when given, so that a
 * streaming loop can reuse one buffer.
 */
export function chunkNonce(
  index: number,
  last: boolean,
  out: Uint8Array = new Uint8Array(CHUNK_NONCE_SIZE),
): Uint8Array {
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError('chunk index out of range');
  if (out.length !== CHUNK_NONCE_SIZE) throw new RangeError('chunk nonce buffer must be 12 bytes');
  out.fill(0, 0, 4);
  // index < 2^53: the high 32 bits go to bytes 3..6 (bytes 0..2 stay zero), the low 32 to 7..10.
  const hi = Math.floor(index / 0x100000000);
  const lo = index >>> 0;
  out[3] = hi >>> 24;
  out[4] = (hi >>> 16) & 0xff;
  out[5] = (hi >>> 8) & 0xff;
  out[6] = hi & 0xff;
  out[7] = lo >>> 24;
  out[8] = (lo >>> 16) & 0xff;
  out[9] = (lo >>> 8) & 0xff;
  out[10] = lo & 0xff;
  out[11] = last ? 1 : 0;
  return out;
}

function checkSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `${what} must be a non-negative safe integer`);
  }
}

/** Number of chunks for a plaintext: the empty file still has one (empty, final) chunk. */
export function chunkCount(plainSize: number): number {
  checkSize(plainSize, 'plainSize');
  return plainSize === 0 ? 1 : Math.ceil(plainSize / CHUNK_SIZE);
}

/** File size = header + plaintext + one tag per chunk. */
export function ciphertextSize(plainSize: number, headerLen: number): number {
  checkSize(headerLen, 'headerLen');
  const size = headerLen + plainSize + chunkCount(plainSize) * TAG_SIZE;
  checkSize(size, 'ciphertext size');
  return size;
}

/**
 * The plaintext size a file of `fileSize` bytes must hold. This is only arithmetic (the final
 * chunk's last flag is what authenticates the length): ERR_TRUNCATED when the payload cannot even
 * hold one tag or ends inside one (fewer than 16 bytes after the last full chunk); ERR_DECODE when
 * the layout is impossible for our writer (an empty final chunk after full chunks).
 */
export function plainSizeFromCiphertext(fileSize: number, headerLen: number): number {
  checkSize(fileSize, 'fileSize');
  checkSize(headerLen, 'headerLen');
  const payload = fileSize - headerLen;
  if (payload < TAG_SIZE)
    throw new BlindfoldError('ERR_TRUNCATED', 'file ends before its final chunk');
  const full = Math.floor(payload / SEALED_CHUNK_SIZE);
  const rem = payload % SEALED_CHUNK_SIZE;
  if (rem === 0) return full * CHUNK_SIZE;
  if (rem < TAG_SIZE) throw new BlindfoldError('ERR_TRUNCATED', 'file ends inside a chunk tag');
  if (rem === TAG_SIZE && full > 0)
    throw decodeError('Blindfold payload', 'empty final chunk after full chunks');
  if (full + 1 > MAX_CHUNKS) throw decodeError('Blindfold payload', 'too many chunks');
  return full * CHUNK_SIZE + rem - TAG_SIZE;
}

export interface ChunkRange {
  /** First chunk holding byte `start`. */
  first: number;
  /** One past the last chunk holding byte `end − 1`; first === endChunk for an empty range. */
  endChunk: number;
  /** Offset of `start` inside chunk `first`. */
  skip: number;
}

/** Which chunks hold plaintext bytes [start, end) of a plaintext of plainSize bytes. */
export function chunksForRange(start: number, end: number, plainSize: number): ChunkRange {
  checkSize(plainSize, 'plainSize');
  if (
    !Number.isSafeInteger(start) ||
    !Number.isSafeInteger(end) ||
    start < 0 ||
    start > end ||
    end > plainSize
  ) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      `range [${start}, ${end}) outside [0, ${plainSize})`,
    );
  }
  if (start === end) return { first: 0, endChunk: 0, skip: 0 };
  const first = Math.floor(start / CHUNK_SIZE);
  return { first, endChunk: Math.ceil(end / CHUNK_SIZE), skip: start - first * CHUNK_SIZE };
}

/** Byte offset of sealed chunk `index` in the file. */
export function chunkOffset(index: number, headerLen: number): number {
  return headerLen + index * SEALED_CHUNK_SIZE;
}

/** Plaintext length of chunk `index` in a plaintext of plainSize bytes. */
export function chunkPlainLength(index: number, plainSize: number): number {
  const n = chunkCount(plainSize);
  if (!Number.isSafeInteger(index) || index < 0 || index >= n)
    throw new RangeError('chunk index out of range');
  return index < n - 1 ? CHUNK_SIZE : plainSize - (n - 1) * CHUNK_SIZE;
}

/**
 * Byte helpers shared by every encoding in SPEC.md §2 (big-endian integers, length-prefixed
 * fields, base64url without padding). Pure functions, no I/O; they run in Node and in browsers.
 */
import { BlindfoldError, decodeError } from './errors.ts';

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function u8(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xff) throw new RangeError('u8 out of range');
  return Uint8Array.of(n);
}

export function u16be(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new RangeError('u16 out of range');
  return Uint8Array.of(n >>> 8, n & 0xff);
}

export function u32be(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError('u32 out of range');
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

export function u64be(n: number | bigint): Uint8Array {
  const v = BigInt(n);
  if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError('u64 out of range');
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, v);
  return out;
}

export function readU16be(b: Uint8Array, off: number): number {
  return (b[off]! << 8) | b[off + 1]!;
}

export function readU32be(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

export function readU64be(b: Uint8Array, off: number): bigint {
  return new DataView(b.buffer, b.byteOffset + off, 8).getBigUint64(0);
}

/** A field prefixed by its u16 big-endian length (SPEC.md §2.1 "lp16"). */
export function lp16(b: Uint8Array): Uint8Array {
  return concat(u16be(b.length), b);
}

/** A field prefixed by its u32 big-endian length (SPEC.md §2.1 "lp32"). */
export function lp32(b: Uint8Array): Uint8Array {
  return concat(u32be(b.length), b);
}

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true });

export function utf8(s: string): Uint8Array {
  return te.encode(s);
}

export function fromUtf8(b: Uint8Array): string {
  try {
    return td.decode(b);
  } catch (cause) {
    throw new BlindfoldError('ERR_DECODE', 'invalid UTF-8', { cause });
  }
}

/** Constant-time comparison of two byte strings of public length. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** Overwrites a secret buffer. BigInt values cannot be wiped; see SPEC.md §2.6. */
export function zeroize(...bufs: (Uint8Array | undefined | null)[]): void {
  for (const b of bufs) b?.fill(0);
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64_INV = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_INV[B64.charCodeAt(i)] = i;

/** base64url without padding (RFC 4648 §5). */
export function toB64u(b: Uint8Array): string {
  let s = '';
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    s += B64[n >>> 18]! + B64[(n >>> 12) & 63]! + B64[(n >>> 6) & 63]! + B64[n & 63]!;
  }
  if (i < b.length) {
    const n = (b[i]! << 16) | ((b[i + 1] ?? 0) << 8);
    s += B64[n >>> 18]! + B64[(n >>> 12) & 63]!;
    if (i + 1 < b.length) s += B64[(n >>> 6) & 63]!;
  }
  return s;
}

/**
 * Strict base64url decoding: rejects padding, characters outside the alphabet, and
 * non-canonical trailing bits, so that every byte string has exactly one encoding.
 */
export function fromB64u(s: string, what = 'base64url'): Uint8Array {
  if (typeof s !== 'string') throw decodeError(what, 'not a string');
  if (s.length % 4 === 1) throw decodeError(what, 'bad length');
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B64_INV[c]! : -1;
    if (v < 0) throw decodeError(what, 'character outside the base64url alphabet');
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) throw decodeError(what, 'non-canonical');
  return out;
}

const HEX_BYTE = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lower-case hex; a table per byte (item ids, audit hashes and fingerprints are on hot paths). */
export function toHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX_BYTE[b[i]!]!;
  return s;
}

/** A hex digit's value (either case), or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  const l = c | 0x20; // A-F → a-f
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

export function fromHex(s: string, what = 'hex'): Uint8Array {
  if (typeof s !== 'string' || s.length % 2 !== 0) {
    throw decodeError(what, 'not an even-length hex string');
  }
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexDigit(s.charCodeAt(2 * i));
    const lo = hexDigit(s.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) throw decodeError(what, 'not an even-length hex string');
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** Big-endian unsigned encoding of a non-negative bigint into exactly `len` bytes. */
export function bigToBytes(x: bigint, len: number): Uint8Array {
  if (x < 0n) throw new RangeError('negative');
  const out = new Uint8Array(len);
  let v = x;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (v !== 0n) throw new RangeError('integer too large for its encoding');
  return out;
}

export function bytesToBig(b: Uint8Array): bigint {
  let hex = '0x0';
  for (const x of b) hex += x.toString(16).padStart(2, '0');
  return BigInt(hex);
}

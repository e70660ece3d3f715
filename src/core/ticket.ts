/**
 * Tickets (SPEC.md §4 "Tickets"; DESIGN.md §4; the seed's HMAC tickets).
 *
 * The seed: "the PVKM calculates a ticket every time [it] encrypts data and sends [it] to an
 * appliance together with the cipher text. The PVKM refuses to decrypt data without a valid
 * ticket." A ticket is the manager's MAC over the coordinates of one protected item, so that the
 * manager can refuse a recovery request with one HMAC, before any group operation (threat T6),
 * while keeping no per-item state. Encoding, all integers big-endian:
 *
 *   version          u8   = 0x01
 *   ticketKeyVersion u32  which manager ticket key made the MAC (ticket keys rotate)
 *   keyring          lp16 utf8, 1..64 chars of [a-z0-9._-]
 *   itemId           16 bytes
 *   keyVersion       u32  the item key's version
 *   expiresAt        u64  unix seconds; 0 = never
 *   bindingHash      32 bytes: SHA-256 of whatever the caller binds (e.g. an encryption
 *                    context); all zeros if nothing is bound
 *   mac              32 bytes = HMAC-SHA256(ticketKey[ticketKeyVersion],
 *                               utf8("blindfold/v1/ticket") ‖ 0x00 ‖ all preceding bytes)
 *
 * Verification checks the MAC (in constant time) before it looks at any field, and answers every
 * mismatch with the same ERR_TICKET_INVALID, so that a forger learns nothing from the refusal. The
 * expiry is reported as ERR_TICKET_EXPIRED, but only once the MAC has verified: an authentic
 * ticket's expiry is information its holder already has.
 */
import {
  concat,
  equalBytes,
  fromUtf8,
  lp16,
  readU16be,
  readU32be,
  readU64be,
  u8,
  u32be,
  u64be,
  utf8,
} from './bytes.ts';
import { BlindfoldError, decodeError } from './errors.ts';
import { hmacSha256 } from './hash.ts';

export const TICKET_VERSION = 0x01;
export const TICKET_ITEM_ID_LEN = 16;
export const TICKET_BINDING_LEN = 32;
export const TICKET_MAC_LEN = 32;
/** Smallest ticket key accepted (HMAC-SHA256 keys shorter than the hash weaken it). */
export const TICKET_KEY_MIN_LEN = 32;
/** MAC domain separation (SPEC.md §2.3 label convention). */
const TICKET_LABEL = concat(utf8('blindfold/v1/ticket'), Uint8Array.of(0));
/** version + ticketKeyVersion + keyring length + itemId + keyVersion + expiresAt + binding + mac. */
const FIXED_LEN = 1 + 4 + 2 + TICKET_ITEM_ID_LEN + 4 + 8 + TICKET_BINDING_LEN + TICKET_MAC_LEN;
const KEYRING_RE = /^[a-z0-9._-]{1,64}$/;
const ZERO_BINDING = new Uint8Array(TICKET_BINDING_LEN);

export interface TicketFields {
  ticketKeyVersion: number;
  keyring: string;
  /** 16 bytes. */
  itemId: Uint8Array;
  keyVersion: number;
  /** Unix seconds after which the ticket is refused; 0 = never. */
  expiresAt: number;
  /** 32 bytes (SHA-256 of what the caller binds); omitted = 32 zero bytes = nothing bound. */
  bindingHash?: Uint8Array;
}

export interface Ticket extends Required<TicketFields> {
  version: number;
  mac: Uint8Array;
}

export interface TicketExpectation {
  keyring: string;
  itemId: Uint8Array;
  keyVersion: number;
  /** If omitted the ticket must bind nothing (all-zero bindingHash). */
  bindingHash?: Uint8Array;
}

/** Keyring ids: 1..64 characters of [a-z0-9._-] (shared with the file header, SPEC.md §2.1). */
export function isKeyringId(s: unknown): s is string {
  return typeof s === 'string' && KEYRING_RE.test(s);
}

function arg(what: string): BlindfoldError {
  return new BlindfoldError('ERR_INVALID_ARGUMENT', `invalid ticket field: ${what}`);
}

function checkU32(n: unknown, what: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) throw arg(what);
  return n;
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length < TICKET_KEY_MIN_LEN) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      `ticket key must be at least ${TICKET_KEY_MIN_LEN} bytes`,
    );
  }
}

function macOf(key: Uint8Array, body: Uint8Array): Uint8Array {
  return hmacSha256(key, TICKET_LABEL, body);
}

/** The manager issues a ticket for one item under ticket key `key` (version fields.ticketKeyVersion). */
export function issueTicket(key: Uint8Array, fields: TicketFields): Uint8Array {
  checkKey(key);
  checkU32(fields.ticketKeyVersion, 'ticketKeyVersion');
  checkU32(fields.keyVersion, 'keyVersion');
  if (!isKeyringId(fields.keyring)) throw arg('keyring');
  if (!(fields.itemId instanceof Uint8Array) || fields.itemId.length !== TICKET_ITEM_ID_LEN)
    throw arg('itemId');
  const { expiresAt } = fields;
  if (!Number.isSafeInteger(expiresAt) || expiresAt < 0) throw arg('expiresAt');
  const binding = fields.bindingHash ?? ZERO_BINDING;
  if (!(binding instanceof Uint8Array) || binding.length !== TICKET_BINDING_LEN)
    throw arg('bindingHash');
  const body = concat(
    u8(TICKET_VERSION),
    u32be(fields.ticketKeyVersion),
    lp16(utf8(fields.keyring)),
    fields.itemId,
    u32be(fields.keyVersion),
    u64be(expiresAt),
    binding,
  );
  return concat(body, macOf(key, body));
}

/** Parses a ticket's structure without checking its MAC. */
export function decodeTicket(b: Uint8Array): Ticket {
  if (!(b instanceof Uint8Array)) throw decodeError('ticket', 'not bytes');
  if (b.length < 1) throw decodeError('ticket', 'empty');
  if (b[0] !== TICKET_VERSION) {
    throw new BlindfoldError('ERR_UNSUPPORTED_VERSION', `unsupported ticket version ${b[0]}`);
  }
  if (b.length < FIXED_LEN + 1) throw decodeError('ticket', 'too short');
  const keyringLen = readU16be(b, 5);
  if (keyringLen < 1 || keyringLen > 64) throw decodeError('ticket', 'keyring length out of range');
  if (b.length !== FIXED_LEN + keyringLen) throw decodeError('ticket', `wrong length ${b.length}`);
  let o = 7;
  const keyring = fromUtf8(b.subarray(o, o + keyringLen));
  if (!isKeyringId(keyring)) throw decodeError('ticket', 'keyring id outside [a-z0-9._-]');
  o += keyringLen;
  const itemId = new Uint8Array(b.subarray(o, o + TICKET_ITEM_ID_LEN));
  o += TICKET_ITEM_ID_LEN;
  const keyVersion = readU32be(b, o);
  o += 4;
  const exp = readU64be(b, o);
  o += 8;
  if (exp > BigInt(Number.MAX_SAFE_INTEGER)) throw decodeError('ticket', 'expiresAt out of range');
  const bindingHash = new Uint8Array(b.subarray(o, o + TICKET_BINDING_LEN));
  o += TICKET_BINDING_LEN;
  const mac = new Uint8Array(b.subarray(o, o + TICKET_MAC_LEN));
  return {
    version: b[0],
    ticketKeyVersion: readU32be(b, 1),
    keyring,
    itemId,
    keyVersion,
    expiresAt: Number(exp),
    bindingHash,
    mac,
  };
}

const invalid = (): BlindfoldError => new BlindfoldError('ERR_TICKET_INVALID', 'invalid ticket');

/**
 * Verifies a ticket for one request. Structural garbage is ERR_DECODE / ERR_UNSUPPORTED_VERSION
 * (public information); an unknown ticket key, a wrong MAC, or a ticket for another keyring, item,
 * key version or binding are all the same ERR_TICKET_INVALID. The fields are compared only after
 * the MAC verified, so an attacker cannot probe them.
 */
export function verifyTicket(
  b: Uint8Array,
  keys: (version: number) => Uint8Array | undefined,
  expected: TicketExpectation,
  nowSeconds: number,
): Ticket {
  const t = decodeTicket(b);
  const key = keys(t.ticketKeyVersion);
  if (key === undefined) throw invalid();
  checkKey(key);
  const mac = macOf(key, b.subarray(0, b.length - TICKET_MAC_LEN));
  if (!equalBytes(mac, t.mac)) throw invalid();
  // The ticket is authentic: now it must also be for this request.
  const binding = expected.bindingHash ?? ZERO_BINDING;
  let ok = t.keyring === expected.keyring;
  ok = equalBytes(t.itemId, expected.itemId) && ok;
  ok = t.keyVersion === expected.keyVersion && ok;
  ok = equalBytes(t.bindingHash, binding) && ok;
  if (!ok) throw invalid();
  if (t.expiresAt !== 0 && nowSeconds >= t.expiresAt) {
    throw new BlindfoldError('ERR_TICKET_EXPIRED', 'ticket expired');
  }
  return t;
}

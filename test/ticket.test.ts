import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { concat, lp16, u32be, u64be, utf8 } from '../src/core/bytes.ts';
import { isBlindfoldError } from '../src/core/errors.ts';
import { sha256 } from '../src/core/hash.ts';
import { decodeTicket, issueTicket, type TicketFields, verifyTicket } from '../src/core/ticket.ts';

const key1 = new Uint8Array(32).fill(0x11);
const key2 = new Uint8Array(32).fill(0x22);
const keys = (v: number) => (v === 1 ? key1 : v === 2 ? key2 : undefined);
const itemId = Uint8Array.from({ length: 16 }, (_, i) => i);
const binding = sha256(utf8('context: tenant=a'));
const NOW = 1_700_000_000;

const fields: TicketFields = {
  ticketKeyVersion: 2,
  keyring: 'prod.eu-1_payments',
  itemId,
  keyVersion: 7,
  expiresAt: NOW + 3600,
  bindingHash: binding,
};
const expected = { keyring: fields.keyring, itemId, keyVersion: 7, bindingHash: binding };

const code = (c: string) => (e: unknown) => isBlindfoldError(e) && e.code === c;
const invalidSame = (e: unknown) =>
  isBlindfoldError(e, 'ERR_TICKET_INVALID') && e.message === 'invalid ticket';

describe('ticket encoding', () => {
  test('layout matches SPEC: fields in order, HMAC over label ‖ 0x00 ‖ body (checked with node:crypto)', () => {
    const t = issueTicket(key2, fields);
    const body = concat(
      Uint8Array.of(1),
      u32be(2),
      lp16(utf8(fields.keyring)),
      itemId,
      u32be(7),
      u64be(NOW + 3600),
      binding,
    );
    const mac = createHmac('sha256', key2)
      .update(utf8('blindfold/v1/ticket'))
      .update(Uint8Array.of(0))
      .update(body)
      .digest();
    assert.deepEqual(t, concat(body, mac));
    assert.equal(t.length, 99 + fields.keyring.length);
  });

  test('round trip: decode and verify return the fields', () => {
    const t = issueTicket(key2, fields);
    const d = decodeTicket(t);
    assert.equal(d.version, 1);
    assert.equal(d.ticketKeyVersion, 2);
    assert.equal(d.keyring, fields.keyring);
    assert.deepEqual(d.itemId, itemId);
    assert.equal(d.keyVersion, 7);
    assert.equal(d.expiresAt, NOW + 3600);
    assert.deepEqual(d.bindingHash, binding);
    assert.deepEqual(verifyTicket(t, keys, expected, NOW), d);
  });

  test('no binding means 32 zero bytes and must be expected as none', () => {
    const t = issueTicket(key1, {
      ...fields,
      ticketKeyVersion: 1,
      bindingHash: undefined,
      expiresAt: 0,
    });
    assert.deepEqual(decodeTicket(t).bindingHash, new Uint8Array(32));
    verifyTicket(
      t,
      keys,
      { keyring: fields.keyring, itemId, keyVersion: 7 },
      Number.MAX_SAFE_INTEGER,
    );
    assert.throws(() => verifyTicket(t, keys, expected, NOW), invalidSame);
    // and a bound ticket is refused when the verifier binds nothing
    const bound = issueTicket(key2, fields);
    assert.throws(
      () => verifyTicket(bound, keys, { ...expected, bindingHash: undefined }, NOW),
      invalidSame,
    );
  });
});

describe('ticket verification', () => {
  const t = issueTicket(key2, fields);

  test('flipping any bit of any byte gives ERR_TICKET_INVALID, or a structural error', () => {
    // Structural fields are checked by the decoder before any key is used: the version (byte 0),
    // the keyring length (5..6), keyring characters, and expiresAt above 2^53 (bytes 45..46).
    const kEnd = 7 + fields.keyring.length;
    const structural = (i: number) =>
      i === 0 || i === 5 || i === 6 || (i >= 7 && i < kEnd) || i === kEnd + 20 || i === kEnd + 21;
    let decodeErrors = 0;
    for (let i = 0; i < t.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = t.slice();
        bad[i]! ^= bit;
        let structuralCode: string | undefined;
        try {
          decodeTicket(bad);
        } catch (e) {
          assert.ok(
            isBlindfoldError(e) && structural(i),
            `byte ${i} bit ${bit}: unexpected decode failure`,
          );
          structuralCode = e.code;
          decodeErrors++;
        }
        assert.throws(
          () => verifyTicket(bad, keys, expected, NOW),
          structuralCode ? code(structuralCode) : invalidSame,
          `byte ${i} bit ${bit}`,
        );
      }
    }
    assert.ok(decodeErrors >= 5);
    assert.throws(
      () => verifyTicket(Uint8Array.of(2, ...t.subarray(1)), keys, expected, NOW),
      code('ERR_UNSUPPORTED_VERSION'),
    );
  });

  test('an authentic ticket for another keyring / item / key version / binding is refused the same way', () => {
    const variants: Partial<TicketFields>[] = [
      { keyring: 'prod.eu-2_payments' },
      { itemId: Uint8Array.from({ length: 16 }, (_, i) => 15 - i) },
      { keyVersion: 8 },
      { bindingHash: sha256(utf8('context: tenant=b')) },
    ];
    for (const v of variants) {
      const other = issueTicket(key2, { ...fields, ...v });
      assert.throws(
        () => verifyTicket(other, keys, expected, NOW),
        invalidSame,
        JSON.stringify(Object.keys(v)),
      );
    }
  });

  test('unknown ticket key version and wrong key: ERR_TICKET_INVALID', () => {
    assert.throws(
      () =>
        verifyTicket(issueTicket(key2, { ...fields, ticketKeyVersion: 3 }), keys, expected, NOW),
      invalidSame,
    );
    assert.throws(() => verifyTicket(issueTicket(key1, fields), keys, expected, NOW), invalidSame);
  });

  test('expiry: valid before expiresAt, ERR_TICKET_EXPIRED from expiresAt on; 0 = never', () => {
    assert.ok(verifyTicket(t, keys, expected, NOW + 3599));
    assert.throws(() => verifyTicket(t, keys, expected, NOW + 3600), code('ERR_TICKET_EXPIRED'));
    assert.throws(() => verifyTicket(t, keys, expected, NOW + 10 ** 9), code('ERR_TICKET_EXPIRED'));
    const never = issueTicket(key2, { ...fields, expiresAt: 0 });
    assert.ok(verifyTicket(never, keys, expected, Number.MAX_SAFE_INTEGER));
  });

  test('expiry is reported only after the MAC verified', () => {
    const bad = t.slice();
    bad[bad.length - 1]! ^= 1;
    assert.throws(() => verifyTicket(bad, keys, expected, NOW + 10 ** 9), invalidSame);
    // and only for the right item: an expired ticket for another item is just invalid
    assert.throws(
      () => verifyTicket(t, keys, { ...expected, keyVersion: 1 }, NOW + 10 ** 9),
      invalidSame,
    );
  });

  test('wrong lengths: ERR_DECODE', () => {
    assert.throws(() => decodeTicket(new Uint8Array(0)), code('ERR_DECODE'));
    assert.throws(() => decodeTicket(t.subarray(0, t.length - 1)), code('ERR_DECODE'));
    assert.throws(() => decodeTicket(concat(t, Uint8Array.of(0))), code('ERR_DECODE'));
    assert.throws(() => decodeTicket(t.subarray(0, 20)), code('ERR_DECODE'));
    assert.throws(
      () => verifyTicket(t.subarray(0, t.length - 1), keys, expected, NOW),
      code('ERR_DECODE'),
    );
    // keyring length 0 and 65
    const zero = concat(
      Uint8Array.of(1),
      u32be(1),
      lp16(new Uint8Array(0)),
      new Uint8Array(16 + 4 + 8 + 32 + 32),
    );
    assert.throws(() => decodeTicket(zero), code('ERR_DECODE'));
    const long = concat(
      Uint8Array.of(1),
      u32be(1),
      lp16(utf8('a'.repeat(65))),
      new Uint8Array(16 + 4 + 8 + 32 + 32),
    );
    assert.throws(() => decodeTicket(long), code('ERR_DECODE'));
    // expiresAt above 2^53
    const body = concat(
      Uint8Array.of(1),
      u32be(1),
      lp16(utf8('k')),
      itemId,
      u32be(1),
      u64be(2n ** 60n),
      binding,
    );
    assert.throws(() => decodeTicket(concat(body, new Uint8Array(32))), code('ERR_DECODE'));
  });

  test('unsupported version: ERR_UNSUPPORTED_VERSION', () => {
    const v2 = t.slice();
    v2[0] = 2;
    assert.throws(() => decodeTicket(v2), code('ERR_UNSUPPORTED_VERSION'));
  });

  test('issue rejects bad arguments', () => {
    const bad: [Uint8Array, Partial<TicketFields>][] = [
      [new Uint8Array(31), {}],
      [key1, { keyring: '' }],
      [key1, { keyring: 'A' }],
      [key1, { keyring: 'a'.repeat(65) }],
      [key1, { keyring: 'a/b' }],
      [key1, { itemId: new Uint8Array(15) }],
      [key1, { keyVersion: -1 }],
      [key1, { ticketKeyVersion: 2 ** 32 }],
      [key1, { expiresAt: 1.5 }],
      [key1, { bindingHash: new Uint8Array(31) }],
    ];
    for (const [k, v] of bad) {
      assert.throws(
        () => issueTicket(k, { ...fields, ...v }),
        code('ERR_INVALID_ARGUMENT'),
        JSON.stringify(v),
      );
    }
  });
});

describe('ticket properties', () => {
  const arbFields = fc.record({
    ticketKeyVersion: fc.integer({ min: 0, max: 0xffffffff }),
    keyring: fc.stringMatching(/^[a-z0-9._-]{1,64}$/),
    itemId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    keyVersion: fc.integer({ min: 0, max: 0xffffffff }),
    expiresAt: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
    bindingHash: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  });

  test('random fields: issue → decode is the identity, verify accepts, one flipped byte is refused', () => {
    fc.assert(
      fc.property(
        arbFields,
        fc.uint8Array({ minLength: 32, maxLength: 64 }),
        fc.nat(),
        (f, k, pos) => {
          const t = issueTicket(k, f);
          const d = decodeTicket(t);
          assert.deepEqual(
            { ...d, version: undefined, mac: undefined },
            { ...f, version: undefined, mac: undefined },
          );
          const exp = {
            keyring: f.keyring,
            itemId: f.itemId,
            keyVersion: f.keyVersion,
            bindingHash: f.bindingHash,
          };
          const now = f.expiresAt === 0 ? NOW : f.expiresAt - 1;
          verifyTicket(t, () => k, exp, now);
          const bad = t.slice();
          const i = pos % t.length;
          bad[i]! ^= 0x01;
          assert.throws(
            () => verifyTicket(bad, () => k, exp, now),
            (e: unknown) =>
              isBlindfoldError(e) &&
              ['ERR_TICKET_INVALID', 'ERR_DECODE', 'ERR_UNSUPPORTED_VERSION'].includes(e.code),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});

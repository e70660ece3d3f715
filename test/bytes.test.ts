/**
 * core/bytes.ts hex codec against Node's Buffer as the reference: every byte string round-trips,
 * and a string is accepted exactly when it is even-length hex (either case), with the value
 * Buffer gives it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fromHex, toHex } from '../src/core/bytes.ts';
import { isBlindfoldError } from '../src/core/errors.ts';

const isHex = (s: string) => s.length % 2 === 0 && /^[0-9a-fA-F]*$/.test(s);

describe('bytes: hex', () => {
  test('toHex is lower-case Buffer hex, and fromHex inverts it', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (b) => {
        const h = toHex(b);
        assert.equal(h, Buffer.from(b).toString('hex'));
        assert.deepEqual(fromHex(h), b);
        assert.deepEqual(fromHex(h.toUpperCase()), b);
      }),
      { numRuns: 300 },
    );
  });

  test('fromHex accepts exactly even-length hex, with the value Buffer reads', () => {
    // Strings over hex digits and their neighbours in ASCII ('/', ':', '@', 'G', '`', 'g') and
    // characters whose low bits look like hex digits once case is folded.
    const ch = fc.constantFrom(...'0123456789abcdefABCDEF/:@G`gxX \u00c1\u0141\u0661');
    fc.assert(
      fc.property(fc.array(ch, { maxLength: 12 }), (cs) => {
        const s = cs.join('');
        if (isHex(s)) {
          assert.deepEqual(fromHex(s), new Uint8Array(Buffer.from(s, 'hex')));
        } else {
          assert.throws(
            () => fromHex(s),
            (e) => isBlindfoldError(e, 'ERR_DECODE'),
          );
        }
      }),
      { numRuns: 1000 },
    );
  });
});

/**
 * Recovery coalescing (src/appliance/coalesce.ts, issue #9): bounds on batch size and delay,
 * per-item errors stay per item, a failed batch settles each of its items exactly once (nothing
 * lost, nothing sent twice), as properties over random arrivals and failures; then end to end
 * against a real manager process: concurrent openItem calls share `POST /v1/recover/batch`
 * requests, each gets its own KEK, and one item with a forged ticket fails alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { Appliance, enrollAppliance } from '../src/appliance/appliance.ts';
import { type BatchResult, createCoalescer } from '../src/appliance/coalesce.ts';
import { sealFileHeader } from '../src/appliance/stream.ts';
import { equalBytes } from '../src/core/bytes.ts';
import { BlindfoldError } from '../src/core/errors.ts';
import { decodeHeader, encodeHeader, freshFileSecrets } from '../src/core/format.ts';
import {
  cleanup,
  createKeyring,
  type ManagerProcess,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from './helpers/deploy.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('coalescer', () => {
  test('batches never exceed maxItems; every item gets its own answer', async () => {
    const sizes: number[] = [];
    const c = createCoalescer<number, number>(
      async (items) => {
        sizes.push(items.length);
        await sleep(1);
        return items.map((i) => ({ ok: i * 2 }));
      },
      { maxItems: 7, maxDelayMs: 5 },
    );
    const out = await Promise.all(Array.from({ length: 100 }, (_, i) => c.submit(i)));
    assert.deepEqual(
      out,
      Array.from({ length: 100 }, (_, i) => i * 2),
    );
    assert.ok(Math.max(...sizes) <= 7, `largest batch ${Math.max(...sizes)}`);
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      100,
    );
    assert.ok(sizes.length >= Math.ceil(100 / 7));
  });

  test('a lone item leaves at once, without waiting for the delay', async () => {
    const sentAt: number[] = [];
    const c = createCoalescer<number, number>(
      async (items) => {
        sentAt.push(performance.now());
        return items.map((i) => ({ ok: i }));
      },
      { maxDelayMs: 10_000 },
    );
    const t0 = performance.now();
    assert.equal(await c.submit(7), 7);
    assert.ok(sentAt[0]! - t0 < 5000, `sent after ${sentAt[0]! - t0} ms`);
  });

  test('while the sender is busy, items wait at most maxDelayMs', async () => {
    const sentAt: number[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const c = createCoalescer<number, number>(
      async (items) => {
        sentAt.push(performance.now());
        if (items[0] === 0) await held; // the first batch hangs: the sender stays busy
        return items.map((i) => ({ ok: i }));
      },
      { maxItems: 64, maxDelayMs: 30, maxInFlight: 1 },
    );
    const first = c.submit(0);
    while (sentAt.length === 0) await sleep(1);
    const t1 = performance.now();
    const later = [c.submit(1), c.submit(2), c.submit(3)];
    assert.deepEqual(await Promise.all(later), [1, 2, 3]); // although the first is in flight
    assert.equal(sentAt.length, 2);
    const waited = sentAt[1]! - t1;
    assert.ok(waited >= 29, `sent after ${waited} ms, before the delay`);
    release();
    assert.equal(await first, 0);
    assert.deepEqual(c.stats(), { queued: 0, inFlight: 0, batches: 2, largest: 3 });
  });

  test('a full batch leaves without waiting for the delay', async () => {
    const sizes: number[] = [];
    const c = createCoalescer<number, number>(
      async (items) => {
        sizes.push(items.length);
        return items.map((i) => ({ ok: i }));
      },
      { maxItems: 4, maxDelayMs: 60_000, maxInFlight: 1 },
    );
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 12 }, (_, i) => c.submit(i)));
    assert.ok(performance.now() - t0 < 5000);
    assert.deepEqual(sizes, [4, 4, 4]);
  });

  test('a closed group of callers travels as maxInFlight batches, so both sides work at once', async () => {
    // 8 callers, each sending its next item as soon as its answer comes (the benchmark's loop):
    // one batch of 8 forever would leave the sender idle while the other side works and the
    // other way round; split once, the two halves stay apart (docs/PERFORMANCE.md "perf5").
    const sizes: number[] = [];
    let inFlight = 0;
    let most = 0;
    const c = createCoalescer<number, number>(
      async (items) => {
        sizes.push(items.length);
        most = Math.max(most, ++inFlight);
        await sleep(2);
        inFlight--;
        return items.map((i) => ({ ok: i }));
      },
      { maxItems: 64, maxDelayMs: 50, maxInFlight: 2 },
    );
    await Promise.all(
      Array.from({ length: 8 }, async (_, k) => {
        for (let r = 0; r < 20; r++) assert.equal(await c.submit(k * 100 + r), k * 100 + r);
      }),
    );
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      160,
    );
    assert.deepEqual([...new Set(sizes)], [4], `batch sizes ${sizes.join(',')}`);
    assert.equal(most, 2);
    // With one batch in flight allowed, the group stays whole.
    const one: number[] = [];
    const c1 = createCoalescer<number, number>(
      async (items) => {
        one.push(items.length);
        return items.map((i) => ({ ok: i }));
      },
      { maxInFlight: 1 },
    );
    await Promise.all(Array.from({ length: 8 }, (_, i) => c1.submit(i)));
    assert.deepEqual(one, [8]);
    // As many callers as a batch holds: the group fills a batch in its first turn, and still
    // splits (the benchmark at concurrency 64 with batches of 64 travelled whole before).
    const full: number[] = [];
    const c64 = createCoalescer<number, number>(
      async (items) => {
        full.push(items.length);
        await sleep(2);
        return items.map((i) => ({ ok: i }));
      },
      { maxItems: 64, maxDelayMs: 50, maxInFlight: 2 },
    );
    await Promise.all(
      Array.from({ length: 64 }, async (_, k) => {
        for (let r = 0; r < 5; r++) assert.equal(await c64.submit(k * 100 + r), k * 100 + r);
      }),
    );
    assert.deepEqual([...new Set(full)], [32], `batch sizes ${full.join(',')}`);
  });

  test('per-item errors stay per item, with their code', async () => {
    const c = createCoalescer<number, number>(async (items) =>
      items.map(
        (i): BatchResult<number> =>
          i % 3 === 0
            ? { error: { code: 'ERR_TICKET_INVALID', message: `bad ticket ${i}` } }
            : { ok: i },
      ),
    );
    const out = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => c.submit(i)));
    out.forEach((r, i) => {
      if (i % 3 === 0) {
        assert.equal(r.status, 'rejected');
        const e = (r as PromiseRejectedResult).reason as BlindfoldError;
        assert.equal(e.code, 'ERR_TICKET_INVALID');
        assert.equal(e.message, `bad ticket ${i}`);
      } else {
        assert.deepEqual(r, { status: 'fulfilled', value: i });
      }
    });
  });

  test('an answer with the wrong number of results fails its batch, not others', async () => {
    let first: number[] | undefined;
    const c = createCoalescer<number, number>(
      async (items) => {
        if (first === undefined) {
          first = items.slice();
          return [];
        }
        return items.map((i) => ({ ok: i }));
      },
      { maxItems: 3 },
    );
    const out = await Promise.allSettled([1, 2, 3, 4, 5].map((i) => c.submit(i)));
    assert.ok(first && first.length > 0);
    assert.deepEqual(
      out.map((r) => r.status),
      [1, 2, 3, 4, 5].map((i) => (first!.includes(i) ? 'rejected' : 'fulfilled')),
    );
    assert.equal(((out[0] as PromiseRejectedResult).reason as BlindfoldError).code, 'ERR_INTERNAL');
  });

  test('invalid bounds are refused', () => {
    const send = async () => [];
    for (const o of [
      { maxItems: 0 },
      { maxItems: 257 },
      { maxItems: 1.5 },
      { maxDelayMs: -1 },
      { maxDelayMs: Number.NaN },
      { maxInFlight: 0 },
    ]) {
      assert.throws(
        () => createCoalescer(send, o),
        (e: unknown) => e instanceof BlindfoldError && e.code === 'ERR_INVALID_ARGUMENT',
      );
    }
  });

  test('property: every item is sent once and settles once, with its own result, whatever fails', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 60 }), // gaps (ms)
        fc.array(fc.boolean(), { minLength: 1, maxLength: 20 }), // batch k fails?
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 3 }),
        async (gaps, failures, maxItems, maxInFlight) => {
          const sent = new Map<number, number>();
          let batch = 0;
          const c = createCoalescer<number, string>(
            async (items) => {
              const k = batch++;
              for (const i of items) sent.set(i, (sent.get(i) ?? 0) + 1);
              assert.ok(items.length <= maxItems);
              await sleep(items.length % 2);
              if (failures[k % failures.length]) {
                throw new BlindfoldError('ERR_UNAVAILABLE', `batch ${k} lost`);
              }
              return items.map((i) =>
                i % 5 === 4
                  ? { error: { code: 'ERR_NOT_FOUND', message: `no ${i}` } }
                  : { ok: `a${i}` },
              );
            },
            { maxItems, maxDelayMs: 2, maxInFlight },
          );
          const settled = new Map<number, number>();
          const promises: Promise<void>[] = [];
          for (let i = 0; i < gaps.length; i++) {
            if (gaps[i]! > 0) await sleep(gaps[i]! - 1);
            promises.push(
              c.submit(i).then(
                (v) => {
                  assert.equal(v, `a${i}`);
                  settled.set(i, (settled.get(i) ?? 0) + 1);
                },
                (e: BlindfoldError) => {
                  assert.ok(
                    e.code === 'ERR_UNAVAILABLE' || (e.code === 'ERR_NOT_FOUND' && i % 5 === 4),
                  );
                  settled.set(i, (settled.get(i) ?? 0) + 1);
                },
              ),
            );
          }
          await Promise.all(promises);
          await sleep(1);
          for (let i = 0; i < gaps.length; i++) {
            assert.equal(sent.get(i), 1, `item ${i} sent ${sent.get(i) ?? 0} times`);
            assert.equal(settled.get(i), 1, `item ${i} settled ${settled.get(i) ?? 0} times`);
          }
          assert.equal(c.stats().queued, 0);
          assert.equal(c.stats().inFlight, 0);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('coalesced recoveries against a real manager (mTLS)', () => {
  let m: ManagerProcess;
  let home: string;
  let adir: string;
  let a: Appliance;

  before(async () => {
    home = await tmpDir();
    adir = await tmpDir();
    m = await startManagerProcess({ home, rootKey: newRootKey() });
    const { token } = await m.op.request<{ token: string }>('POST', '/v1/enrollments', {});
    const state = await enrollAppliance({
      dir: adir,
      managerUrl: m.url,
      caPem: m.caPem,
      token,
      name: 'batcher',
    });
    a = new Appliance({ dir: adir, state, batch: { maxItems: 16, maxDelayMs: 5 } });
  });

  after(async () => {
    a?.close();
    await m?.stop();
    await cleanup(home, adir);
  });

  for (const [mode, scheme] of [
    ['hom2', 'ec-elgamal'],
    ['split', 'xor'],
  ] as const) {
    test(`${mode}: concurrent openItem share batches; a forged ticket fails alone`, async () => {
      const keyring = `co-${mode}`;
      await createKeyring(m, keyring, mode, scheme);
      await a.initKeyring(keyring);
      const items: { header: Uint8Array; kek: Uint8Array }[] = [];
      for (let i = 0; i < 40; i++) {
        const it = await a.newItem(keyring);
        const { dek, fileNonce } = freshFileSecrets();
        items.push({
          header: sealFileHeader({ ...it.fields, fileNonce }, it.kek, dek),
          kek: it.kek,
        });
      }
      // Item 7's ticket is forged: a flipped bit in its MAC.
      const h7 = decodeHeader(items[7]!.header);
      const ticket = h7.fields.ticket.slice();
      ticket[ticket.length - 1]! ^= 1;
      const forged = encodeHeader({ ...h7.fields, ticket }, h7.wrap);
      const recoverer = (a as unknown as { recoverer: { stats(): { batches: number } } }).recoverer;
      const before = recoverer.stats().batches;
      const out = await Promise.allSettled(
        items.map((it, i) => a.openItem(i === 7 ? forged : it.header)),
      );
      const batches = recoverer.stats().batches - before;
      assert.ok(batches < 40, `${batches} batches for 40 concurrent recoveries`);
      out.forEach((r, i) => {
        if (i === 7) {
          assert.equal(r.status, 'rejected');
          assert.equal(
            ((r as PromiseRejectedResult).reason as BlindfoldError).code,
            'ERR_TICKET_INVALID',
          );
        } else {
          assert.equal(r.status, 'fulfilled', String((r as PromiseRejectedResult).reason));
          assert.ok(equalBytes((r as PromiseFulfilledResult<Uint8Array>).value, items[i]!.kek));
        }
      });
    });
  }

  test('a batch that cannot be delivered fails each of its items once, and the next one works', async () => {
    const keyring = 'co-down';
    await createKeyring(m, keyring, 'hom2', 'ec-elgamal');
    await a.initKeyring(keyring);
    const it = await a.newItem(keyring);
    const { dek, fileNonce } = freshFileSecrets();
    const header = sealFileHeader({ ...it.fields, fileNonce }, it.kek, dek);
    // An appliance pointed at a port where nothing listens: the batch request gets no answer.
    const dead = new Appliance({
      dir: adir,
      state: { ...a.state, managerUrl: 'https://127.0.0.1:1' },
      batch: { maxItems: 4, maxDelayMs: 1 },
    });
    try {
      const out = await Promise.allSettled(Array.from({ length: 6 }, () => dead.openItem(header)));
      for (const r of out) {
        assert.equal(r.status, 'rejected');
        assert.equal(
          ((r as PromiseRejectedResult).reason as BlindfoldError).code,
          'ERR_UNAVAILABLE',
        );
      }
    } finally {
      dead.close();
    }
    assert.ok(equalBytes(await a.openItem(header), it.kek));
  });
});

/**
 * The manager's group-operation pool (src/manager/pool.ts, issue #9): worker threads give the same
 * answers and the same error codes as the inline path, and the caller's
 * copies of a job's secrets are zeroed once the job is handed over.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Worker } from 'node:worker_threads';
import type { Appliance } from '../src/appliance/appliance.ts';
import { createJsonClient } from '../src/appliance/client.ts';
import { sealFileHeader } from '../src/appliance/stream.ts';
import { colocatedWorkers } from '../src/cli/up.ts';
import { bytesToBig, toHex } from '../src/core/bytes.ts';
import { chainMode } from '../src/core/chain.ts';
import { BlindfoldError } from '../src/core/errors.ts';
import { freshFileSecrets } from '../src/core/format.ts';
import {
  decodePoint,
  encodePoint,
  mul,
  mulBase,
  type Point,
  randomScalar,
  sub,
} from '../src/core/group.ts';
import { homMode, type ItemRef, shareSeed } from '../src/core/protocol.ts';
import { ecElGamal } from '../src/core/schemes/ec-elgamal.ts';
import { rsa } from '../src/core/schemes/rsa.ts';
import { nodeAnswer } from '../src/core/threshold.ts';
import type { GroupJob } from '../src/manager/group-ops.ts';
import { createGroupPool, defaultWorkers, type GroupPool } from '../src/manager/pool.ts';
import { startManager } from '../src/manager/run.ts';
import { nodeGeneratePrime } from '../src/platform/node-primes.ts';
import { type ManagerProcess, newAppliance } from './helpers/deploy.ts';

let pool: GroupPool;
let inline: GroupPool;
/** Answers of jobs sent to the pool before its workers were up (they run inline meanwhile). */
let early: { upAtStart: number; hex: string[]; expected: string[] };
before(async () => {
  pool = await createGroupPool(2);
  const upAtStart = pool.workersUp(); // 0: a worker takes ~0.35 s to load
  inline = await createGroupPool(0);
  const js = jobs(8);
  const before = await Promise.all(js.map((j) => pool.run(copy(j))));
  early = {
    upAtStart,
    hex: before.map(toHex),
    expected: (await Promise.all(js.map((j) => inline.run(copy(j))))).map(toHex),
  };
  await pool.ready;
});
after(async () => {
  await pool?.close();
  await inline?.close();
});

function jobs(n: number): GroupJob[] {
  const s = ecElGamal;
  const { publicKey, secretKey } = s.generateKeyPair();
  const pk = s.encodePublicKey(publicKey);
  return Array.from({ length: n }, (_, i) => {
    const q = s.encodeShare(publicKey, s.randomShare(publicKey));
    if (i % 2 === 0) {
      const ct = s.encrypt(publicKey, s.randomPlaintext(publicKey));
      return {
        op: 'hom2',
        scheme: 'ec-elgamal',
        pk,
        sk: s.encodeSecretKey(secretKey),
        blinded: s.encodeCiphertext(publicKey, ct),
        q,
      };
    }
    return {
      op: 'hom2-opt',
      scheme: 'ec-elgamal',
      pk,
      x: s.encodePlaintext(publicKey, s.randomPlaintext(publicKey)),
      q,
    };
  });
}

const copy = (j: GroupJob): GroupJob => ({
  ...j,
  sk: j.sk?.slice(),
  x: j.x?.slice(),
  q: j.q.slice(),
  blinded: j.blinded?.slice(),
});

test('workers answer exactly like the inline path, before they are up and after', async () => {
  assert.equal(early.upAtStart, 0);
  assert.deepEqual(early.hex, early.expected);
  assert.equal(pool.size, 2);
  assert.equal(pool.workersUp(), 2);
  const js = jobs(40);
  const viaInline = await Promise.all(js.map((j) => inline.run(copy(j))));
  const viaPool = await Promise.all(js.map((j) => pool.run(copy(j))));
  assert.deepEqual(viaPool.map(toHex), viaInline.map(toHex));
});

test('the caller keeps no copy of a job secret: its arrays are zeroed once the job is sent', async () => {
  const [j] = jobs(1);
  const sent = copy(j!);
  const p = pool.run(sent);
  assert.ok(
    sent.sk!.some((b) => b !== 0),
    'still queued: not sent yet',
  );
  await p;
  // Sent in this turn's message: this thread's copies are zero.
  assert.ok(sent.sk!.every((b) => b === 0));
  assert.ok(sent.q.every((b) => b === 0));
  const inl = copy(j!);
  await inline.run(inl);
  assert.ok(inl.sk!.every((b) => b === 0) && inl.q.every((b) => b === 0));
});

test('errors keep their codes across the thread boundary', async () => {
  const [j] = jobs(1);
  for (const p of [pool, inline]) {
    const bad = copy(j!);
    bad.blinded = new Uint8Array(64).fill(0xff); // not a canonical encoding
    await assert.rejects(
      p.run(bad),
      (e: unknown) => e instanceof BlindfoldError && e.code === 'ERR_DECODE',
    );
    const ident = copy(j!);
    ident.blinded = new Uint8Array(64); // the identity
    await assert.rejects(
      p.run(ident),
      (e: unknown) => e instanceof BlindfoldError && e.code === 'ERR_IDENTITY',
    );
  }
  // The pool still works after errors.
  const ok = jobs(2);
  assert.equal((await pool.run(ok[0]!)).length, 32);
});

test('the worker count is validated', async () => {
  for (const n of [-1, 1.5, 1000]) {
    await assert.rejects(
      createGroupPool(n),
      (e: unknown) => e instanceof BlindfoldError && e.code === 'ERR_INVALID_ARGUMENT',
    );
  }
});

// Every answer the manager computes goes through the pool (issue #9): the chain answer of
// hom3/homN, the threshold node answer and client-blinded (KMS) answers give, on a worker, exactly
// what the core functions they stand for give on the calling thread (SPEC.md §5.4, §5.6, §5.8).
describe('every mode on the pool', () => {
  const s = ecElGamal;
  const { publicKey, secretKey } = s.generateKeyPair();
  const pk = s.encodePublicKey(publicKey);
  const shareKey = randomBytes(32);
  const ref: ItemRef = {
    keyring: 'k',
    itemId: randomBytes(16),
    masterVersion: 1,
    managerVersion: 2,
    entropy: randomBytes(16),
  };
  const q = () => s.encodeShare(publicKey, s.shareFromSeed(publicKey, shareSeed(shareKey, ref)));
  const ct = s.encrypt(publicKey, s.randomPlaintext(publicKey));

  test('hom3/homN: the chain answer with aux (q·Dec(C) ‖ q·W)', async () => {
    const w = s.randomPlaintext(publicKey);
    const aux = s.encodePlaintext(publicKey, w);
    const want = chainMode.answer(s, secretKey, publicKey, ct, aux, shareKey, ref);
    for (const p of [pool, inline]) {
      const got = await p.run({
        op: 'hom2',
        scheme: 'ec-elgamal',
        pk,
        sk: s.encodeSecretKey(secretKey),
        blinded: s.encodeCiphertext(publicKey, ct),
        q: q(),
        aux,
      });
      assert.equal(toHex(got), toHex(want));
    }
  });

  test('threshold: q·c2 ‖ (q·d_j)·c1, never a decryption', async () => {
    const d = randomScalar();
    const want = nodeAnswer(d, publicKey, shareKey, ref, ct);
    for (const p of [pool, inline]) {
      const sk = d.slice();
      const got = await p.run({
        op: 'threshold',
        scheme: 'ec-elgamal',
        pk,
        sk,
        blinded: s.encodeCiphertext(publicKey, ct),
        q: q(),
      });
      assert.equal(toHex(got), toHex(want));
      assert.ok(
        sk.every((b) => b === 0),
        'the key share is zeroed',
      );
    }
    const bad = {
      op: 'threshold' as const,
      scheme: 'ec-elgamal',
      pk,
      sk: d.slice(),
      blinded: new Uint8Array(64).fill(0xff),
      q: q(),
    };
    await assert.rejects(
      pool.run(bad),
      (e: unknown) => e instanceof BlindfoldError && e.code === 'ERR_DECODE',
    );
  });

  test('client-blinded: the answer leaves encrypted to U, and U’s key opens it to the plain answer', async () => {
    const u = randomScalar();
    const U = mulBase(u);
    const x = s.randomPlaintext(publicKey);
    const plainOpt = homMode.optAnswer(s, publicKey, x, shareKey, ref) as Point;
    const plain2 = homMode.answer(s, secretKey, publicKey, ct, shareKey, ref) as Point;
    const open = (a: Uint8Array) =>
      toHex(encodePoint(sub(decodePoint(a.subarray(32)), mul(u, decodePoint(a.subarray(0, 32))))));
    for (const p of [pool, inline]) {
      const a = await p.run({
        op: 'hom2-opt',
        scheme: 'ec-elgamal',
        pk,
        x: s.encodePlaintext(publicKey, x),
        q: q(),
        client: encodePoint(U),
      });
      assert.equal(a.length, 64);
      assert.equal(open(a), toHex(encodePoint(plainOpt)));
      const b = await p.run({
        op: 'hom2',
        scheme: 'ec-elgamal',
        pk,
        sk: s.encodeSecretKey(secretKey),
        blinded: s.encodeCiphertext(publicKey, ct),
        q: q(),
        client: encodePoint(U),
      });
      assert.equal(open(b), toHex(encodePoint(plain2)));
    }
  });
});

test('one thread per core in all: a manager alone takes cores − 1 workers, one beside its appliance and blinders takes what is left', () => {
  const cores = os.availableParallelism();
  assert.equal(defaultWorkers(), Math.max(0, cores - 1));
  // `blindfold up`: a manager and its appliance.
  assert.equal(colocatedWorkers(2, 1, 2), 0);
  assert.equal(colocatedWorkers(2, 1, 8), 6);
  // 5 locations: manager, appliance, 3 blinders.
  assert.equal(colocatedWorkers(5, 1, 8), 3);
  // 2-of-3 threshold: three nodes and the appliance share the cores.
  assert.equal(colocatedWorkers(4, 3, 2), 0);
  assert.equal(colocatedWorkers(4, 3, 16), 4);
  assert.equal(colocatedWorkers(3, 2, 1), 0);
});

test('decoded public keys kept per thread give later jobs the answers of the inline path', async () => {
  // The worker keeps decoded public keys (group-ops.ts publicKey), keyed by scheme and bytes.
  // Two RSA keys in turn, one job per message: RSA's answer depends on its modulus, so a key
  // served to the wrong job, or a kept key that changed, would change the answers.
  const keys = [0, 1].map(
    () => rsa.generateKeyPair({ generatePrime: nodeGeneratePrime }).publicKey,
  );
  const js: GroupJob[] = [];
  const want: string[] = [];
  for (let i = 0; i < 6; i++) {
    const publicKey = keys[i % 2]!;
    // A full-size X_A (as Dec of a blinded concealment is): x·q must wrap around the modulus.
    const x = bytesToBig(randomBytes(250));
    const q = rsa.randomShare(publicKey);
    // homMode.optAnswer's group operation, computed here with the key itself.
    want.push(toHex(rsa.encodePlaintext(publicKey, rsa.applyShare(publicKey, x, q))));
    js.push({
      op: 'hom2-opt',
      scheme: 'rsa',
      pk: rsa.encodePublicKey(publicKey),
      x: rsa.encodePlaintext(publicKey, x),
      q: rsa.encodeShare(publicKey, q),
    });
  }
  for (const [i, j] of js.entries()) {
    assert.equal(toHex(await pool.run(copy(j))), want[i], `job ${i} on a worker`);
    assert.equal(toHex(await inline.run(copy(j))), want[i], `job ${i} inline`);
  }
});

describe('a group worker that cannot start', () => {
  // Node's own Worker, swapped for one that exits before it is ready (syncBuiltinESMExports makes
  // every ESM importer of node:worker_threads, src/util/ts-worker.ts included, see the swap).
  const threads = createRequire(import.meta.url)('node:worker_threads') as {
    Worker: typeof Worker;
  };
  const RealWorker = threads.Worker;
  before(() => {
    threads.Worker = class extends RealWorker {
      constructor() {
        super('process.exit(3)', { eval: true });
      }
    } as typeof Worker;
    syncBuiltinESMExports();
  });
  after(() => {
    threads.Worker = RealWorker;
    syncBuiltinESMExports();
  });

  test('the pool reports it and runs its jobs inline, with the same answers', async () => {
    const errors: unknown[] = [];
    const broken = await createGroupPool(1, (e) => errors.push(e));
    try {
      await broken.ready;
      assert.equal(broken.workersUp(), 0);
      assert.equal(errors.length, 1);
      assert.match(String((errors[0] as Error).message), /exited with 3 before ready/);
      const js = jobs(6);
      const got = await Promise.all(js.map((j) => broken.run(copy(j))));
      const want = await Promise.all(js.map((j) => inline.run(copy(j))));
      assert.deepEqual(got.map(toHex), want.map(toHex));
    } finally {
      await broken.close();
    }
  });

  test('a manager says so in a process warning, and recovers items with the main thread', async () => {
    const home = await mkdtemp(join(tmpdir(), 'bf-pool-m-'));
    const adir = await mkdtemp(join(tmpdir(), 'bf-pool-a-'));
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    const m = await startManager({ home, rootKey: randomBytes(32), port: 0, workers: 1 });
    const op = createJsonClient({ baseUrl: m.url, caPem: m.caPem, token: m.operatorToken });
    let appliance: Appliance | undefined;
    try {
      for (let i = 0; i < 100 && warnings.length === 0; i++) await sleep(50);
      assert.deepEqual(warnings, [
        'a group worker did not start, its share of the group operations runs on the main thread: worker exited with 3 before ready',
      ]);
      appliance = await newAppliance({ op, url: m.url, caPem: m.caPem } as ManagerProcess, adir);
      await op.request('POST', '/v1/keyrings', { name: 'k', mode: 'hom2', scheme: 'ec-elgamal' });
      await appliance.initKeyring('k');
      const item = await appliance.newItem('k');
      const { dek, fileNonce } = freshFileSecrets();
      const header = sealFileHeader({ ...item.fields, fileNonce }, item.kek, dek);
      assert.deepEqual(await appliance.openItem(header), item.kek);
    } finally {
      process.off('warning', onWarning);
      await appliance?.close();
      op.close();
      await m.close();
      await rm(home, { recursive: true, force: true });
      await rm(adir, { recursive: true, force: true });
    }
  });
});

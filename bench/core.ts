/**
 * Micro-benchmarks of src/core (`npm run bench:core`): operations per second of every scheme
 * operation, the split operators, tickets, HKDF and the per-request computations of the modes
 * (src/core/protocol.ts), each also as a ratio to raw libsodium crypto_scalarmult_ristretto255
 * measured in the same run, so that numbers from different machines can be compared.
 *
 *   ratio  = ops/s of the operation ÷ ops/s of the raw scalar multiplication (> 1: faster)
 *   cost   = 1 / ratio: the operation's time in raw scalar multiplications
 *
 * Method: a warm-up that also calibrates how many calls fit in ~2 ms; then BATCHES batches of at
 * least BATCH_MS each (and at least one call), each preceded by a short batch of the raw scalar
 * multiplication; ops/s is the median of the batch rates, the ratio the median of the ratios to the
 * neighbouring raw batch (robust against load that drifts during a run on shared cores).
 * Default: 3 batches of 80 ms (under a minute for everything); `--full`: 5 batches of 500 ms (about 8 minutes), plus
 * integer key generation with the pure-BigInt prime generator. `--only=text` runs the operations
 * whose name contains `text`. Writes bench/out/core.json.
 *
 * Integer keys are 2048 bits, generated with OpenSSL primes (as the manager does). Single-threaded:
 * one core of whatever machine runs it; shared cores make the numbers noisy, the ratios less so.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { utf8 } from '../src/core/bytes.ts';
import { randomPoint, randomScalar } from '../src/core/group.ts';
import { deriveKey, hmacSha256 } from '../src/core/hash.ts';
import { type SplitOperatorId, splitOperators } from '../src/core/operators.ts';
import { homMode, type ItemRef, itemKek, splitMode } from '../src/core/protocol.ts';
import { seededRng } from '../src/core/random.ts';
import { schemes } from '../src/core/schemes/index.ts';
import type { SchemeId } from '../src/core/schemes/scheme.ts';
import { sodium } from '../src/core/sodium.ts';
import { issueTicket, verifyTicket } from '../src/core/ticket.ts';
import { ticketBinding } from '../src/manager/manager.ts';
import { nodeGeneratePrime } from '../src/platform/node-primes.ts';

// biome-ignore lint/suspicious/noExplicitAny: the bench is generic over schemes of any types
type Any = any;

const FULL = process.argv.includes('--full');
const ONLY = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const BATCHES = FULL ? 5 : 3;
const BATCH_MS = FULL ? 500 : 80;
const WARMUP_MS = FULL ? 200 : 20;

/** Keeps results alive so that no call can be optimized away. */
let sinkCount = 0;
function sink(x: unknown): void {
  if (x !== undefined) sinkCount++;
}

interface Result {
  name: string;
  /** Median of the batch rates. */
  opsPerSec: number;
  /** Median over batches of (op rate ÷ raw rate of the raw batch run just before it). */
  ratio: number;
  iterations: number;
}

/** How many calls of fn take about 2 ms (after a warm-up of WARMUP_MS). */
function calibrate(fn: () => unknown): number {
  let calls = 0;
  const w0 = performance.now();
  let w = w0;
  do {
    sink(fn());
    calls++;
    w = performance.now();
  } while (w - w0 < WARMUP_MS && calls < 1_000_000);
  const perCall = (w - w0) / calls;
  return Math.max(1, Math.min(100_000, Math.floor(2 / Math.max(perCall, 1e-6))));
}

/** Calls fn in groups of `inner` for at least `ms` (and at least one group): calls per second. */
function batch(fn: () => unknown, inner: number, ms: number): { rate: number; n: number } {
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    for (let i = 0; i < inner; i++) sink(fn());
    n += inner;
    t = performance.now();
  } while (t - t0 < ms);
  return { rate: (n * 1000) / (t - t0), n };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The raw scalar multiplication runs in a short batch before every batch of the operation, and
 * each ratio is taken against its neighbour: on shared cores the load drifts during a run, and
 * adjacent batches see about the same machine.
 */
const RAW_MS = Math.max(20, BATCH_MS / 2);
const rawRates: number[] = [];
let rawFn: () => unknown = () => undefined;
let rawInner = 1;

function measure(name: string, fn: () => unknown): Result {
  const inner = calibrate(fn);
  const rates: number[] = [];
  const ratios: number[] = [];
  let iterations = 0;
  for (let b = 0; b < BATCHES; b++) {
    const raw = batch(rawFn, rawInner, RAW_MS).rate;
    rawRates.push(raw);
    const { rate, n } = batch(fn, inner, BATCH_MS);
    rates.push(rate);
    ratios.push(rate / raw);
    iterations += n;
  }
  return { name, opsPerSec: median(rates), ratio: median(ratios), iterations };
}

// ---------------------------------------------------------------------------------------------
// The operations

type Op = [name: string, fn: () => unknown];

const fixedSeed = (i: number) => {
  const s = new Uint8Array(32);
  s[0] = i;
  return s;
};

function ref(i: number): ItemRef {
  const itemId = new Uint8Array(16);
  itemId[0] = i;
  return {
    keyring: 'default',
    itemId,
    masterVersion: 1,
    managerVersion: 1,
    entropy: new Uint8Array(16).fill(i),
  };
}

function schemeOps(id: SchemeId): Op[] {
  const s: Any = schemes[id];
  const int = id !== 'ec-elgamal';
  const keygen = () =>
    int ? s.generateKeyPair({ generatePrime: nodeGeneratePrime }) : s.generateKeyPair();
  const { publicKey: pk, secretKey: sk } = keygen();
  const M = s.plaintextFromSeed(pk, fixedSeed(1));
  const m2 = s.randomPlaintext(pk);
  const Q = s.shareFromSeed(pk, fixedSeed(2));
  const C = s.encrypt(pk, M);
  const C2 = s.encrypt(pk, m2);
  const b = s.blind(pk, C);
  const X = s.decrypt(sk, b.ciphertext);
  const y = s.applyShare(pk, X, Q);
  const S = s.unblind(pk, b.blind, y);
  const pkBytes = s.encodePublicKey(pk);
  const ctBytes = s.encodeCiphertext(pk, C);
  const ptBytes = s.encodePlaintext(pk, y);
  const shareKey = fixedSeed(3);
  const r = ref(1);
  const blindedBytes = s.encodeCiphertext(pk, b.ciphertext);
  const answerBytes = ptBytes;
  const n = (op: string) => `${id} ${op}`;
  const ops: Op[] = [
    [n(int ? 'keygen (OpenSSL primes)' : 'keygen'), keygen],
    [n('encrypt'), () => s.encrypt(pk, M)],
    [n('decrypt'), () => s.decrypt(sk, C)],
    [n('combine'), () => s.combine(pk, C, C2)],
    [n('uncombine'), () => s.uncombine(pk, C, C2)],
    [n('combinePlain'), () => s.combinePlain(pk, C, m2)],
    [n('rerandomize'), () => s.rerandomize(pk, C)],
    [n('sampleUnknown'), () => s.sampleUnknown(pk)],
    [n('blind'), () => s.blind(pk, C)],
    [n('applyShare'), () => s.applyShare(pk, X, Q)],
    [n('unblind'), () => s.unblind(pk, b.blind, y)],
    [n('plaintextFromSeed'), () => s.plaintextFromSeed(pk, fixedSeed(4))],
    [n('shareFromSeed'), () => s.shareFromSeed(pk, fixedSeed(5))],
    [n('secretBytes'), () => s.secretBytes(pk, S)],
    [n('encodeCiphertext'), () => s.encodeCiphertext(pk, C)],
    [n('decodeCiphertext'), () => s.decodeCiphertext(pk, ctBytes)],
    [n('encodePlaintext'), () => s.encodePlaintext(pk, y)],
    [n('decodePlaintext'), () => s.decodePlaintext(pk, ptBytes)],
    [n('decodePublicKey'), () => s.decodePublicKey(pkBytes)],
    // The modes' per-request work (SPEC.md §5.2, §5.3), wire bytes in and out.
    [
      n('hom2 appliance request (blind + encode)'),
      () => s.encodeCiphertext(pk, homMode.request(s, pk, C).ciphertext),
    ],
    [
      n('hom2 manager answer (decode + Dec + Q_i + apply + encode)'),
      () =>
        s.encodePlaintext(
          pk,
          homMode.answer(s, sk, pk, s.decodeCiphertext(pk, blindedBytes), shareKey, r),
        ),
    ],
    [
      n('hom2-opt manager answer (Q_i + apply + encode)'),
      () => s.encodePlaintext(pk, homMode.optAnswer(s, pk, X, shareKey, r)),
    ],
    [
      n('appliance finish (decode + unblind + KEK)'),
      () => itemKek(homMode.finish(s, pk, b.blind, s.decodePlaintext(pk, answerBytes)), r),
    ],
  ];
  if (int && FULL) {
    ops.splice(1, 0, [
      n('keygen (BigInt primes)'),
      () => s.generateKeyPair({ rng: seededRng(fixedSeed(9)) }),
    ]);
  }
  return ops;
}

function splitOps(id: SplitOperatorId): Op[] {
  const op = splitOperators[id];
  const a = op.random();
  const c = op.random();
  const M = op.fromSeed(fixedSeed(1));
  const { blindedMaster, r } = splitMode.conceal(op, M);
  const shareKey = fixedSeed(3);
  const it = ref(1);
  const answer = splitMode.answer(op, r, shareKey, it);
  return [
    [`split ${id} fromSeed`, () => op.fromSeed(fixedSeed(2))],
    [`split ${id} random`, () => op.random()],
    [`split ${id} op`, () => op.op(a, c)],
    [`split ${id} inv`, () => op.inv(a)],
    [`split ${id} manager answer`, () => splitMode.answer(op, r, shareKey, it)],
    [
      `split ${id} appliance finish (+ KEK)`,
      () => itemKek(splitMode.finish(op, blindedMaster, answer), it),
    ],
  ];
}

function otherOps(): Op[] {
  const key = fixedSeed(7);
  const r = ref(2);
  const fields = {
    ticketKeyVersion: 1,
    keyring: 'default',
    itemId: r.itemId,
    keyVersion: 1,
    expiresAt: 0,
    bindingHash: ticketBinding(r),
  };
  const ticket = issueTicket(key, fields);
  const expected = {
    keyring: 'default',
    itemId: r.itemId,
    keyVersion: 1,
    bindingHash: fields.bindingHash,
  };
  const ikm = fixedSeed(8);
  const msg = utf8('blindfold/v1/bench');
  return [
    ['ticket issue', () => issueTicket(key, fields)],
    ['ticket verify', () => verifyTicket(ticket, () => key, expected, 0)],
    ['ticket binding (SHA-256 of itemContext)', () => ticketBinding(r)],
    ['HKDF deriveKey (32 bytes)', () => deriveKey(ikm, 'item-kek', msg, 32)],
    ['HMAC-SHA256 (32-byte message)', () => hmacSha256(ikm, ikm)],
  ];
}

// ---------------------------------------------------------------------------------------------

function fmt(n: number): string {
  if (n >= 100) return n.toFixed(0);
  if (n >= 1) return n.toFixed(1);
  return n.toFixed(3);
}

function main(): void {
  const t0 = performance.now();
  // Raw libsodium: the unit every ratio is expressed in.
  const rawScalar = randomScalar();
  const rawPoint = randomPoint();
  rawFn = () => sodium.crypto_scalarmult_ristretto255(rawScalar, rawPoint);
  rawInner = calibrate(rawFn);
  const width = 64;
  console.log(
    `Blindfold core benchmark (${FULL ? 'full' : 'quick'}: ${BATCHES} × ${BATCH_MS} ms, median), node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}`,
  );
  console.log(
    'ratio = ops/s ÷ raw scalarmult ops/s (neighbouring batches); cost×SM = 1/ratio, the time per op in raw scalar multiplications',
  );
  console.log(
    `${'operation'.padEnd(width)} ${'ops/s'.padStart(12)} ${'ratio'.padStart(10)} ${'cost×SM'.padStart(10)}`,
  );
  const line = (r: Result) => {
    console.log(
      `${r.name.padEnd(width)} ${fmt(r.opsPerSec).padStart(12)} ${r.ratio.toFixed(4).padStart(10)} ${(1 / r.ratio).toFixed(2).padStart(10)}`,
    );
    return { ...r, cost: 1 / r.ratio };
  };
  const raw = measure('raw libsodium crypto_scalarmult_ristretto255', rawFn);
  const results = [line({ ...raw, ratio: 1 })];
  const groups: (() => Op[])[] = [
    () => schemeOps('ec-elgamal'),
    () => splitOps('xor'),
    () => splitOps('add-p'),
    () => splitOps('mul-p'),
    otherOps,
    () => schemeOps('paillier'),
    () => schemeOps('rsa'),
    () => schemeOps('gm'),
  ];
  for (const group of groups) {
    for (const [name, fn] of group()) {
      if (ONLY && !name.includes(ONLY)) continue;
      results.push(line(measure(name, fn)));
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const sorted = [...rawRates].sort((a, b) => a - b);
  const rawSummary = {
    median: median(rawRates),
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    batches: rawRates.length,
  };
  console.log(
    `raw scalarmult over the whole run: median ${fmt(rawSummary.median)} ops/s (min ${fmt(rawSummary.min)}, max ${fmt(rawSummary.max)}, ${rawSummary.batches} batches)`,
  );
  console.log(
    `${results.length} measurements in ${seconds.toFixed(1)} s; written to bench/out/core.json`,
  );
  const out = new URL('./out/', import.meta.url);
  mkdirSync(out, { recursive: true });
  writeFileSync(
    new URL('core.json', out),
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        cpu: cpus()[0]?.model ?? null,
        cores: cpus().length,
        mode: FULL ? 'full' : 'quick',
        batches: BATCHES,
        batchMs: BATCH_MS,
        rawBatchMs: RAW_MS,
        seconds,
        rawScalarMult: rawSummary,
        results,
      },
      null,
      2,
    )}\n`,
  );
  if (sinkCount === 0) console.log('(no results?)');
}

main();

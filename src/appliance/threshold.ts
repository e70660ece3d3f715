/**
 * The appliance's side of t-of-n threshold managers (SPEC.md §5.6): one mutual-TLS client per
 * manager node, requests fanned out to every node at once, and answers combined as soon as t of
 * them allow it — a slow or dead node never holds a request up while t others answer.
 *
 * Recovery (III) verifies its result: the combined item key must unwrap the header's DEK, so a
 * node answering garbage costs one more t-subset, never a wrong key. Creation (II) has nothing to
 * verify against, so it waits briefly for more than t answers and cross-checks them on the
 * polynomial (bestSubset); answers that disagree refuse the creation instead of sealing a file
 * under a key that may be wrong.
 */
import { createPrivateKey, sign as signData } from 'node:crypto';
import { enrollProofInput, proofMaterial } from '../cluster/membership.ts';
import { toB64u } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import type { Point } from '../core/group.ts';
import {
  bestSubset,
  combineSubset,
  decodeNodeAnswer,
  type PartialAnswer,
  subsets,
} from '../core/threshold.ts';
import { identityFromPem } from './appliance.ts';
import { createJsonClient, type JsonClient } from './client.ts';
import { type CoalescerOptions, createCoalescer } from './coalesce.ts';

/** One manager node as the appliance knows it (appliance.json `nodes`). */
export interface NodeState {
  index: number;
  url: string;
  /** The node's own CA, pinned at enrollment. */
  caPem: string;
  /** The client certificate this node's CA issued for our identity key. */
  certificatePem: string;
}

export interface NodeClient {
  index: number;
  url: string;
  caPem: string;
  client: JsonClient;
  /** POST /v1/recover at this node, coalesced into /v1/recover/batch unless batching is off. */
  recover(body: Record<string, unknown>): Promise<string>;
}

export interface ThresholdTiming {
  /** Per-node request timeout (default 10 s): a hung node is given up on after this. */
  timeoutMs?: number;
  /** Creation waits this long after the t-th answer for more, to cross-check (default 150 ms). */
  graceMs?: number;
}

type Reply<T> = { index: number; ok: true; value: T } | { index: number; ok: false; error: Error };

export function nodeClients(
  nodes: NodeState[],
  identityKeyPem: string,
  timing: ThresholdTiming = {},
  batch: CoalescerOptions | false = {},
): NodeClient[] {
  return [...nodes]
    .sort((a, b) => a.index - b.index)
    .map((n) => {
      // No retries and no failover inside a node's client: the other nodes are the redundancy.
      const client = createJsonClient({
        baseUrl: n.url,
        caPem: n.caPem,
        certPem: n.certificatePem,
        keyPem: identityKeyPem,
        retries: 0,
        timeoutMs: timing.timeoutMs ?? 10000,
        downMs: 0,
      });
      // Concurrent recoveries share one batch request per node, as with a single manager
      // (src/appliance/coalesce.ts); a failed batch fails each of its items at this node only.
      const coalescer =
        batch === false
          ? undefined
          : createCoalescer<Record<string, unknown>, string>(async (requests) => {
              const out = await client.request<{
                results: { answer?: string; error?: { code: string; message: string } }[];
              }>('POST', '/v1/recover/batch', { requests }, { idempotent: true });
              return out.results.map((r) =>
                typeof r.answer === 'string'
                  ? { ok: r.answer }
                  : { error: r.error ?? { code: 'ERR_INTERNAL', message: 'empty batch result' } },
              );
            }, batch);
      const recover = async (body: Record<string, unknown>) =>
        coalescer
          ? coalescer.submit(body)
          : (
              await client.request<{ answer: string }>('POST', '/v1/recover', body, {
                idempotent: true,
              })
            ).answer;
      return { index: n.index, url: n.url, caPem: n.caPem, client, recover };
    });
}

/** Sends one request to every node; yields the replies in the order they arrive. */
async function* fanOut<T>(
  nodes: NodeClient[],
  call: (n: NodeClient) => Promise<T>,
): AsyncGenerator<Reply<T>> {
  const waiting = new Map<number, Promise<Reply<T>>>();
  for (const n of nodes) {
    waiting.set(
      n.index,
      call(n).then(
        (value): Reply<T> => ({ index: n.index, ok: true, value }),
        (error: Error): Reply<T> => ({ index: n.index, ok: false, error }),
      ),
    );
  }
  while (waiting.size > 0) {
    const r = await Promise.race(waiting.values());
    waiting.delete(r.index);
    yield r;
  }
}

/**
 * The error when fewer than t nodes gave a usable answer. If every failing node refused with
 * the same code (a disabled keyring, an invalid ticket), that code is the answer; otherwise
 * ERR_UNAVAILABLE, saying how many answered and how many are needed.
 */
export function thresholdError(
  t: number,
  n: number,
  answered: number,
  failures: { index: number; error: Error }[],
): BlindfoldError {
  const codes = failures.map((f) => (f.error instanceof BlindfoldError ? f.error.code : ''));
  const refusal = codes[0];
  const counts = `${answered} of ${n} manager nodes answered, ${t} are needed`;
  if (
    refusal &&
    refusal !== 'ERR_UNAVAILABLE' &&
    refusal !== 'ERR_INTERNAL' &&
    codes.every((c) => c === refusal)
  ) {
    return new BlindfoldError(refusal, `${failures[0]!.error.message} (${counts})`);
  }
  const detail = failures
    .sort((a, b) => a.index - b.index)
    .map((f) => `node ${f.index}: ${f.error.message}`)
    .join('; ');
  return new BlindfoldError('ERR_UNAVAILABLE', `threshold not met: ${counts} (${detail})`);
}

function garbage(index: number, cause: unknown): BlindfoldError {
  return new BlindfoldError('ERR_UNAVAILABLE', `node ${index} answered garbage`, { cause });
}

/**
 * Sub-process III: asks every node, and tries each new t-subset with agreeing Y as answers
 * arrive until `accept` takes a combined value (it unwraps the header's DEK); returns its result.
 */
export async function thresholdRecover<R>(
  nodes: NodeClient[],
  t: number,
  body: unknown,
  accept: (combined: Point) => R | undefined,
): Promise<R> {
  const answers: PartialAnswer[] = [];
  const failures: { index: number; error: Error }[] = [];
  let tried = 0;
  for await (const r of fanOut(nodes, (n) => n.recover(body as Record<string, unknown>))) {
    if (!r.ok) {
      failures.push(r);
      continue;
    }
    let a: PartialAnswer;
    try {
      a = decodeNodeAnswer(r.index, Buffer.from(r.value, 'base64url'));
    } catch (e) {
      failures.push({ index: r.index, error: garbage(r.index, e) });
      continue;
    }
    answers.push(a);
    if (answers.length < t) continue;
    // Only the subsets that contain the newest answer are new.
    for (const rest of subsets(answers.slice(0, -1), t - 1)) {
      const subset = [...rest, a];
      if (!subset.every((x) => Buffer.from(x.y).equals(Buffer.from(a.y)))) continue;
      tried++;
      const out = accept(combineSubset(subset));
      if (out !== undefined) return out;
    }
  }
  if (answers.length < t) throw thresholdError(t, nodes.length, answers.length, failures);
  // t or more nodes answered, but no t-subset opened the item: too many faulty nodes, or a
  // header that is not this item's. Deliberately vague, like every AEAD failure (SPEC.md §2.4).
  throw new BlindfoldError('ERR_DECRYPT', 'decryption failed', {
    cause: new Error(`${answers.length} answers, ${tried} subsets tried`),
  });
}

export interface CreateAnswer {
  itemId: string;
  managerVersion: number;
  ticket: string;
  answer: string;
}

/**
 * Sub-process II: asks every node, waits for all of them or for `graceMs` after the t-th
 * answer, and combines the t-subset that the most other answers agree with. With more than t
 * answers, at least one other must agree (else ERR_UNAVAILABLE: a node is faulty, and no file is
 * sealed under a key that may be wrong); with exactly t, nothing can be checked (SPEC.md §10.2).
 */
export async function thresholdCreate(
  nodes: NodeClient[],
  t: number,
  body: unknown,
  graceMs = 150,
): Promise<{ combined: Point; reply: CreateAnswer }> {
  const answers: PartialAnswer[] = [];
  const replies = new Map<number, CreateAnswer>();
  const failures: { index: number; error: Error }[] = [];
  const it = fanOut(nodes, (n) =>
    n.client.request<CreateAnswer>('POST', '/v1/items', body, { idempotent: true }),
  );
  let deadline: number | undefined;
  for (;;) {
    const next = it.next();
    const r =
      deadline === undefined
        ? await next
        : await Promise.race([
            next,
            new Promise<null>((res) =>
              setTimeout(() => res(null), Math.max(0, deadline! - Date.now())),
            ),
          ]);
    if (r === null) {
      // Grace is over: stop waiting; the late replies are dropped (the generator's promises
      // are all settled-or-caught, so nothing is left unhandled).
      void next.then(() => it.return(undefined));
      break;
    }
    if (r.done) break;
    const rep = r.value;
    if (!rep.ok) {
      failures.push(rep);
      continue;
    }
    try {
      answers.push(decodeNodeAnswer(rep.index, Buffer.from(rep.value.answer, 'base64url')));
      replies.set(rep.index, rep.value);
    } catch (e) {
      failures.push({ index: rep.index, error: garbage(rep.index, e) });
      continue;
    }
    if (answers.length === t) deadline = Date.now() + graceMs;
  }
  if (answers.length < t) throw thresholdError(t, nodes.length, answers.length, failures);
  answers.sort((a, b) => a.index - b.index);
  const best = bestSubset(answers, t);
  if (!best || (answers.length > t && best.agreements === 0)) {
    throw new BlindfoldError(
      'ERR_UNAVAILABLE',
      `manager nodes' answers disagree (${answers.length} answers, no ${t} of them consistent with another): a node is faulty; nothing was created`,
    );
  }
  return { combined: combineSubset(best.subset), reply: replies.get(best.subset[0]!.index)! };
}

/**
 * Enrolls the appliance's existing identity at every node (each node is a manager with its own
 * CA and store): the same identity key, one client certificate per node. The appliance id is
 * derived from the key, so every node must return the same one.
 */
export async function enrollAtNodes(o: {
  applianceId: string;
  name: string;
  identityKeyPem: string;
  nodes: { index: number; url: string; caPem: string; token: string }[];
}): Promise<NodeState[]> {
  const id = identityFromPem(o.identityKeyPem);
  const out: NodeState[] = [];
  for (const n of o.nodes) {
    const client = createJsonClient({ baseUrl: n.url, caPem: n.caPem });
    try {
      const proof = signData(
        'sha256',
        enrollProofInput(o.name, id.spkiDer, proofMaterial({ token: n.token })),
        { key: createPrivateKey(o.identityKeyPem), dsaEncoding: 'der' },
      );
      const r = await client.request<{ applianceId: string; certificatePem: string }>(
        'POST',
        '/v1/appliances/enroll',
        {
          token: n.token,
          name: o.name,
          publicKey: toB64u(id.spkiDer),
          proof: toB64u(new Uint8Array(proof)),
        },
      );
      if (r.applianceId !== o.applianceId) {
        throw new BlindfoldError(
          'ERR_CONFLICT',
          `node ${n.index} enrolled us as ${r.applianceId}, not ${o.applianceId}`,
        );
      }
      out.push({ index: n.index, url: n.url, caPem: n.caPem, certificatePem: r.certificatePem });
    } finally {
      client.close();
    }
  }
  return out;
}

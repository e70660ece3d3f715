/**
 * Setting up a t-of-n threshold deployment (SPEC.md §5.6) from the operator's side: the keyring
 * dealer and the appliance's enrollment at every node. Used by `blindfold up --threshold t/n`
 * and by the tests; each node is an ordinary manager process with its own store, root key and CA.
 *
 * Where the dealt secrets exist: the keyring's ticket and share keys are drawn here, sent to each
 * node over TLS (operator token), and wiped as soon as every node has sealed them under its own
 * root key; they exist in this process for the duration of n requests. The appliance's d_A is
 * dealt by the appliance itself (src/appliance/appliance.ts initThresholdKeyring).
 */
import { randomBytes } from 'node:crypto';
import { type ApplianceState, enrollAppliance, saveState } from '../appliance/appliance.ts';
import type { JsonClient } from '../appliance/client.ts';
import { enrollAtNodes } from '../appliance/threshold.ts';
import { toB64u, zeroize } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { checkThresholdParams } from '../core/threshold.ts';

export interface OperatorNode {
  index: number;
  url: string;
  caPem: string;
  /** An operator client of this node (bearer token, pinned CA). */
  op: JsonClient;
}

/** Parses "t/n" (the CLI's --threshold). */
export function parseThreshold(s: string): { t: number; n: number } {
  const m = /^(\d{1,2})\/(\d{1,2})$/.exec(s);
  if (!m) throw new BlindfoldError('ERR_INVALID_ARGUMENT', '--threshold takes t/n, e.g. 2/3');
  const p = { t: Number(m[1]), n: Number(m[2]) };
  checkThresholdParams(p);
  return p;
}

/**
 * Creates the threshold keyring `name` on every node with the same freshly drawn ticket and share
 * keys (the dealer's only secrets), then wipes them. A node that already holds the keyring with
 * other keys refuses (ERR_CONFLICT); all nodes must be up.
 */
export async function dealKeyring(nodes: OperatorNode[], name: string, t: number): Promise<void> {
  const ticketKey = new Uint8Array(randomBytes(32));
  const shareKey = new Uint8Array(randomBytes(32));
  try {
    for (const n of nodes) {
      await n.op.request('POST', '/v1/keyrings', {
        name,
        mode: 'threshold',
        scheme: 'ec-elgamal',
        threshold: { t, n: nodes.length, index: n.index },
        ticketKey: toB64u(ticketKey),
        shareKey: toB64u(shareKey),
      });
    }
  } finally {
    zeroize(ticketKey);
    zeroize(shareKey);
  }
}

/**
 * Enrolls a new appliance at every node with one identity key (one invite per node) and records
 * the nodes in its state; node 1 is also its `managerUrl`.
 */
export async function enrollThresholdAppliance(o: {
  dir: string;
  name: string;
  nodes: OperatorNode[];
}): Promise<ApplianceState> {
  const nodes = [...o.nodes].sort((a, b) => a.index - b.index);
  const tokens: string[] = [];
  for (const n of nodes) {
    const { token } = await n.op.request<{ token: string }>('POST', '/v1/enrollments', {
      ttlSeconds: 600,
    });
    tokens.push(token);
  }
  const first = nodes[0]!;
  const state = await enrollAppliance({
    dir: o.dir,
    managerUrl: first.url,
    caPem: first.caPem,
    token: tokens[0]!,
    name: o.name,
  });
  const others = await enrollAtNodes({
    applianceId: state.applianceId,
    name: o.name,
    identityKeyPem: state.identityKeyPem,
    nodes: nodes.slice(1).map((n, i) => ({ ...n, token: tokens[i + 1]! })),
  });
  const out: ApplianceState = {
    ...state,
    nodes: [
      {
        index: first.index,
        url: first.url,
        caPem: first.caPem,
        certificatePem: state.certificatePem,
      },
      ...others,
    ],
  };
  await saveState(o.dir, out);
  return out;
}

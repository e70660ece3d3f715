/**
 * `blindfold cluster ...` and the cluster steps of `blindfold appliance init` (SPEC.md §5.7):
 * invites (criterion i) through the local appliance or the operator, the credentials database
 * (criterion ii), members and their history, revocation, and joining a keyring by transfer.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Appliance } from '../appliance/appliance.ts';
import type { JsonClient } from '../appliance/client.ts';
import { BlindfoldError } from '../core/errors.ts';
import { generateIdentity } from '../tls/x509.ts';
import { writeFileAtomic } from '../util/atomic.ts';

export const CLUSTER_HELP: Record<string, string> = {
  cluster: `Usage: blindfold cluster <command> [options]

Commands (SPEC.md §5.7):
  invite              vouch for a new appliance (criterion i): a one-time enrollment token
  members             members, who vouched for whom, when, by which criterion, status, history
  revoke ID           revoke a member: the manager destroys its keys (operator)
  credentials add     add to the credentials database (criterion ii; operator)
  credentials list    list it
  credentials remove ID
  transfers           open re-concealment transfers (operator)

Operator commands read DIR/manager/operator.token and DIR/manager/manager.json (--home DIR).
`,
  invite: `Usage: blindfold cluster invite [--keyring K]... [--fingerprint HEX] [--ttl SECONDS]
                              [--operator] [--appliance DIR] [--home DIR]

Creates a one-time enrollment token. Without --operator the local appliance (running, its
directory DIR/appliance or --appliance DIR) vouches: it is recorded as the voucher and serves
the newcomer the master of every --keyring, re-concealed for it. With --operator the operator
vouches. --fingerprint binds the token to the newcomer's identity key (see "blindfold appliance
identity"); the vouching appliance then serves that key only. --ttl 60..604800 (default 3600).
The token goes to stdout.
`,
  members: `Usage: blindfold cluster members [--json] [--home DIR]\n`,
  revoke: `Usage: blindfold cluster revoke ID [--home DIR]

Marks the appliance revoked and destroys its keys at the manager: everything stolen from it is
useless from now on; other members keep working.
`,
  credentials: `Usage: blindfold cluster credentials add --kind fingerprint|secret|attestation [--value V]
                                       [--label TEXT] [--keyring K]... [--max-uses N]
       blindfold cluster credentials list
       blindfold cluster credentials remove ID

fingerprint: V is an identity fingerprint (64 hex) allowed to enroll. secret: a pre-shared
enrollment secret, generated unless V is given, shown once, stored as SHA-256 only.
attestation: V is the subject an attestation verifier returns (none is configured by default:
such entries match nothing until the manager runs with a verifier).
`,
  transfers: `Usage: blindfold cluster transfers [--home DIR]\n`,
};

export interface ClusterCliContext {
  home: (values: { home?: string }) => string;
  operatorClient: (home: string, url?: string) => Promise<JsonClient>;
  localClientAt: (applianceDir: string) => Promise<JsonClient>;
}

function usage(key: string, message: string): never {
  throw new BlindfoldError(
    'ERR_INVALID_ARGUMENT',
    `${message}\n\n${CLUSTER_HELP[key] ?? CLUSTER_HELP.cluster}`,
  );
}

type Spec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>;

function parse(key: string, args: string[], options: Spec) {
  try {
    return parseArgs({
      args,
      options: {
        home: { type: 'string' },
        manager: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        ...options,
      },
      allowPositionals: true,
      strict: true,
    }) as {
      values: Record<string, string | string[] | boolean | undefined>;
      positionals: string[];
    };
  } catch (e) {
    usage(key, (e as Error).message);
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const list = (v: unknown): string[] => (Array.isArray(v) ? (v as string[]) : []);

function positiveInt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v))
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `${name} must be a whole number`);
  return Number(v);
}

const when = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());

export async function cmdCluster(ctx: ClusterCliContext, argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '-h' || sub === '--help' || sub === 'help') {
    console.log(CLUSTER_HELP.cluster);
    return;
  }
  switch (sub) {
    case 'invite':
      return invite(ctx, rest);
    case 'members':
      return members(ctx, rest);
    case 'revoke':
      return revoke(ctx, rest);
    case 'credentials':
      return credentials(ctx, rest);
    case 'transfers':
      return transfers(ctx, rest);
    default:
      usage('cluster', `unknown cluster command "${sub}"`);
  }
}

async function invite(ctx: ClusterCliContext, args: string[]) {
  const { values } = parse('invite', args, {
    keyring: { type: 'string', multiple: true },
    fingerprint: { type: 'string' },
    ttl: { type: 'string' },
    operator: { type: 'boolean' },
    appliance: { type: 'string' },
  });
  if (values.help) return console.log(CLUSTER_HELP.invite);
  const fingerprint = str(values.fingerprint);
  if (fingerprint !== undefined && !/^[0-9a-f]{64}$/.test(fingerprint)) {
    usage(
      'invite',
      '--fingerprint takes the 64 hex digits printed by "blindfold appliance identity"',
    );
  }
  const body = {
    keyrings: list(values.keyring),
    ...(fingerprint ? { fingerprint } : {}),
    ...(values.ttl !== undefined ? { ttlSeconds: positiveInt(str(values.ttl), '--ttl') } : {}),
  };
  const h = ctx.home(values as { home?: string });
  let out: { token: string; expiresAt: number; voucher?: string };
  if (values.operator) {
    const op = await ctx.operatorClient(h, str(values.manager));
    try {
      out = { ...(await op.request('POST', '/v1/enrollments', body)), voucher: 'operator' };
    } finally {
      op.close();
    }
  } else {
    const dir = str(values.appliance) ? resolve(str(values.appliance)!) : join(h, 'appliance');
    const local = await ctx.localClientAt(dir);
    try {
      out = await local.request('POST', '/v1/cluster/invite', body);
    } finally {
      local.close();
    }
  }
  console.log(out.token);
  console.error(
    `invite by ${out.voucher}, single use, expires ${when(out.expiresAt)}` +
      `${fingerprint ? `, bound to identity ${fingerprint.slice(0, 16)}…` : ''}` +
      `${body.keyrings.length ? `; the newcomer receives ${body.keyrings.join(', ')}` : ''}`,
  );
}

interface Member {
  id: string;
  name: string;
  status: string;
  vouchedBy: string;
  criterion: string;
  createdAt: number;
  revokedAt: number | null;
  history: {
    ts: number;
    event: string;
    actor: string;
    criterion: string | null;
    detail: string | null;
  }[];
}

async function members(ctx: ClusterCliContext, args: string[]) {
  const { values } = parse('members', args, { json: { type: 'boolean' } });
  if (values.help) return console.log(CLUSTER_HELP.members);
  const op = await ctx.operatorClient(ctx.home(values as { home?: string }), str(values.manager));
  try {
    const r = await op.request<{ members: Member[] }>('GET', '/v1/cluster/members');
    if (values.json) return console.log(JSON.stringify(r, null, 2));
    for (const m of r.members) {
      console.log(
        `${m.id}  ${m.name}  ${m.status}  vouched by ${m.vouchedBy} (${m.criterion}) ${when(m.createdAt)}` +
          (m.revokedAt ? `  revoked ${when(m.revokedAt)}` : ''),
      );
      for (const e of m.history) {
        console.log(
          `    ${when(e.ts)}  ${e.event} by ${e.actor}${e.criterion ? ` (${e.criterion})` : ''}${e.detail ? `: ${e.detail}` : ''}`,
        );
      }
    }
  } finally {
    op.close();
  }
}

async function revoke(ctx: ClusterCliContext, args: string[]) {
  const { values, positionals } = parse('revoke', args, {});
  if (values.help) return console.log(CLUSTER_HELP.revoke);
  const id = positionals[0];
  if (positionals.length !== 1 || !/^ap-[0-9a-f]{16}$/.test(id!)) {
    usage('revoke', 'revoke takes one appliance id (ap- and 16 hex digits)');
  }
  const op = await ctx.operatorClient(ctx.home(values as { home?: string }), str(values.manager));
  try {
    await op.request('POST', `/v1/appliances/${id}/revoke`);
    console.error(`revoked ${id}: its keys are destroyed at the manager`);
  } finally {
    op.close();
  }
}

async function credentials(ctx: ClusterCliContext, args: string[]) {
  const [verb, ...rest] = args;
  const { values, positionals } = parse('credentials', rest, {
    kind: { type: 'string' },
    value: { type: 'string' },
    label: { type: 'string' },
    keyring: { type: 'string', multiple: true },
    'max-uses': { type: 'string' },
  });
  if (values.help || verb === undefined) return console.log(CLUSTER_HELP.credentials);
  const op = await ctx.operatorClient(ctx.home(values as { home?: string }), str(values.manager));
  try {
    if (verb === 'add') {
      const kind = str(values.kind);
      if (!kind) usage('credentials', 'credentials add needs --kind');
      const out = await op.request<{ credential: { id: string }; secret?: string }>(
        'POST',
        '/v1/cluster/credentials',
        {
          kind,
          ...(str(values.value) ? { value: str(values.value) } : {}),
          ...(str(values.label) ? { label: str(values.label) } : {}),
          keyrings: list(values.keyring),
          ...(values['max-uses'] !== undefined
            ? { maxUses: positiveInt(str(values['max-uses']), '--max-uses') }
            : {}),
        },
      );
      if (out.secret) {
        console.log(out.secret);
        console.error(
          `credential ${out.credential.id}: the secret above is shown once, stored as SHA-256`,
        );
      } else console.log(out.credential.id);
    } else if (verb === 'list') {
      const r = await op.request<{ credentials: Record<string, unknown>[] }>(
        'GET',
        '/v1/cluster/credentials',
      );
      console.log(JSON.stringify(r.credentials, null, 2));
    } else if (verb === 'remove') {
      if (positionals.length !== 1) usage('credentials', 'credentials remove takes one id');
      await op.request('DELETE', `/v1/cluster/credentials/${positionals[0]}`);
      console.error(`removed ${positionals[0]}`);
    } else usage('credentials', `unknown credentials command "${verb}"`);
  } finally {
    op.close();
  }
}

async function transfers(ctx: ClusterCliContext, args: string[]) {
  const { values } = parse('transfers', args, {});
  if (values.help) return console.log(CLUSTER_HELP.transfers);
  const op = await ctx.operatorClient(ctx.home(values as { home?: string }), str(values.manager));
  try {
    console.log(JSON.stringify(await op.request('GET', '/v1/cluster/transfers'), null, 2));
  } finally {
    op.close();
  }
}

// -- appliance identity and joining --------------------------------------------------------------

export const IDENTITY_FILE = 'identity.key';

/**
 * `blindfold appliance identity`: the newcomer's identity key, made BEFORE enrollment so that a
 * voucher can bind the invite to its fingerprint. Kept in DIR/identity.key (0600), used by init.
 */
export async function ensureIdentityFile(
  dir: string,
): Promise<{ keyPem: string; fingerprint: string }> {
  const path = join(dir, IDENTITY_FILE);
  const existing = await readFile(path, 'utf8').catch(() => undefined);
  const { identityFromPem } = await import('../appliance/appliance.ts');
  if (existing) return { keyPem: existing, fingerprint: identityFromPem(existing).fingerprint };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const id = generateIdentity();
  await writeFileAtomic(path, id.keyPem, { mode: 0o600 });
  return { keyPem: id.keyPem, fingerprint: id.fingerprint };
}

export async function readIdentityFile(dir: string): Promise<string | undefined> {
  return readFile(join(dir, IDENTITY_FILE), 'utf8').catch(() => undefined);
}

/**
 * The keyring step of `appliance init`: a keyring without a master gets one made here (this
 * appliance becomes trusted); one this appliance holds gets a new master version; imported key
 * material joins as before; otherwise the master comes by transfer from a member (waits, bounded).
 */
export async function ensureKeyring(
  a: Appliance,
  keyring: string,
  o: { importKey?: Uint8Array; waitMs: number },
): Promise<'created' | 'joined'> {
  const info = await a.client.request<{ masterVersion: number }>(
    'GET',
    `/v1/keyrings/${keyring}/current`,
  );
  const holds = a.state.keyrings[keyring]?.concealments.some((c) => !c.pending) ?? false;
  if (holds || info.masterVersion === 0 || o.importKey) {
    await a.initKeyring(keyring, { importKey: o.importKey });
    return 'created';
  }
  const { ClusterMember } = await import('../cluster/member.ts');
  const member = new ClusterMember(a);
  const r = await member.join(keyring, { timeoutMs: o.waitMs });
  console.error(
    `received the master of keyring "${keyring}" from ${r.from} (transfer ${r.transfer}), re-randomized`,
  );
  return 'joined';
}

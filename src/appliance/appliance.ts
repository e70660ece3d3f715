/**
 * The appliance (seed: appliance): holds the master key only concealed, and turns the manager's
 * blinded answers into item keys that live in memory only while in use (threat model T2).
 *
 * State on disk (appliance.json, written atomically, mode 0600): its identity and certificate,
 * and per keyring and key version the concealed master — split: M ⊕ r_A; hom2: Enc_{D_A}(M);
 * hom2-opt: Enc_{D_A}(M) and the seed of β_A. None of it opens anything without the manager.
 */
import {
  createPrivateKey,
  createPublicKey,
  randomBytes,
  sign as signData,
  verify as verifySignature,
} from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ChainAnswerJson, encodeEnvelope } from '../blinder/envelope.ts';
import { fromB64u, toB64u, zeroize } from '../core/bytes.ts';
import { type ChainBlind, chainMode, chainRequestStatement } from '../core/chain.ts';
import { BlindfoldError } from '../core/errors.ts';
import { type DecodedHeader, decodeHeader, type HeaderFields } from '../core/format.ts';
import type { Point, Scalar } from '../core/group.ts';
import { sha256 } from '../core/hash.ts';
import { decodeClientKey, kmsEntropy, unblindForClient } from '../core/kms.ts';
import { getSplitOperator } from '../core/operators.ts';
import {
  homMode,
  type ItemRef,
  isChainMode,
  isMode,
  itemContext,
  itemKek,
  MODE_CODES,
  type Mode,
  reconceal,
  splitMode,
} from '../core/protocol.ts';
import { seededRng } from '../core/random.ts';
import { ecElGamal, withEncodedPlaintext } from '../core/schemes/ec-elgamal.ts';
import { getScheme } from '../core/schemes/index.ts';
import { SCHEME_CODES, type SchemeId } from '../core/schemes/scheme.ts';

/** Split-operator codes in the header's scheme byte (SPEC.md §6.1). */
export const SPLIT_CODES = { xor: 0x11, 'add-p': 0x12, 'mul-p': 0x13 } as const;

import { enrollProofInput, proofMaterial } from '../cluster/membership.ts';
import { encodePoint, mulBase, randomScalar } from '../core/group.ts';
import { dealShares } from '../core/threshold.ts';
import { keyStatement } from '../manager/manager.ts';
import { generateIdentity, type Identity, spkiFingerprint } from '../tls/x509.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { createJsonClient, type JsonClient } from './client.ts';
import { type Coalescer, type CoalescerOptions, createCoalescer } from './coalesce.ts';
import { unwrapDek } from './stream.ts';
import {
  type NodeClient,
  type NodeState,
  nodeClients,
  type ThresholdTiming,
  thresholdCreate,
  thresholdRecover,
} from './threshold.ts';

export interface Concealment {
  masterVersion: number;
  managerVersion: number;
  /** Scheme public key D_A (hom modes), base64url. */
  publicKey?: string;
  /** split: M ⊕ r_A; hom: Enc_{D_A}(M); base64url. */
  concealed: string;
  /** hom2-opt: seed from which β_A is re-derived, base64url. */
  optSeed?: string;
  /** hom3/homN: the manager's key-statement signature (shown to new blinders at setup). */
  signature?: string;
  /** hom3/homN: the blinders whose R_j this concealment carries (SPEC.md §5.4). */
  blinders?: string[];
  /**
   * Set while a cluster transfer that brought this concealment is not yet acknowledged by the
   * manager (SPEC.md §5.7): such a concealment is never used, and is dropped or confirmed at the
   * next start (src/cluster/member.ts).
   */
  pending?: string;
}

/** An invite this appliance made as a voucher (criterion i), kept to pin the newcomer's key. */
export interface InviteRecord {
  /** First 32 hex digits of SHA-256(token) (src/cluster/membership.ts inviteId). */
  invite: string;
  fingerprint: string | null;
  keyrings: string[];
  expiresAt: number;
}

export interface KeyringState {
  mode: Mode;
  scheme: string;
  /** threshold mode: t-of-n over the appliance's `nodes` (SPEC.md §5.6). */
  threshold?: { t: number; n: number };
  concealments: Concealment[];
}

export interface ApplianceState {
  format: 1;
  applianceId: string;
  name: string;
  managerUrl: string;
  caPem: string;
  certificatePem: string;
  identityKeyPem: string;
  keyrings: Record<string, KeyringState>;
  /** Invites made by this appliance (cluster vouching), newest last. */
  invites?: InviteRecord[];
  /** X25519 key pair for console master-key imports (SPEC.md §5.9), base64url. */
  importKey?: { publicKey: string; secretKey: string };
  /**
   * threshold deployments: every manager node with its own CA and our certificate from it
   * (SPEC.md §5.6). `managerUrl`/`caPem`/`certificatePem` then name node 1.
   */
  nodes?: NodeState[];
}

export const STATE_FILE = 'appliance.json';

export async function loadState(dir: string): Promise<ApplianceState> {
  let text: string;
  try {
    text = await readFile(join(dir, STATE_FILE), 'utf8');
  } catch (cause) {
    throw new BlindfoldError(
      'ERR_NOT_FOUND',
      `no appliance state in ${dir}: run "blindfold appliance init" first`,
      { cause },
    );
  }
  let s: ApplianceState;
  try {
    s = JSON.parse(text) as ApplianceState;
  } catch (cause) {
    throw new BlindfoldError('ERR_DECODE', `${join(dir, STATE_FILE)} is not valid JSON`, { cause });
  }
  if (s.format !== 1) {
    throw new BlindfoldError(
      'ERR_UNSUPPORTED_VERSION',
      `unknown appliance state format ${s.format}`,
    );
  }
  return s;
}

export async function saveState(dir: string, s: ApplianceState): Promise<void> {
  await writeFileAtomic(join(dir, STATE_FILE), `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
}

/** An identity (ECDSA P-256) from its PKCS#8 PEM, e.g. made by "blindfold appliance identity". */
export function identityFromPem(keyPem: string): Identity {
  const privateKey = createPrivateKey(keyPem);
  const publicKey = createPublicKey(privateKey);
  const spkiDer = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  return { publicKey, privateKey, keyPem, spkiDer, fingerprint: spkiFingerprint(spkiDer) };
}

/**
 * Enrollment (seed: vouching, SPEC.md §5.7): the appliance proves it holds its identity key and
 * presents a one-time token (criterion i) or a credential (criterion ii).
 */
export async function enrollAppliance(o: {
  dir: string;
  managerUrl: string;
  caPem: string;
  /** Criterion (i): a one-time invite token. */
  token?: string;
  /** Criterion (ii): a credential from the manager's credentials database. */
  credential?: {
    kind: 'fingerprint' | 'secret' | 'attestation';
    secret?: string;
    document?: Uint8Array;
  };
  name: string;
  /** An identity key made beforehand (so that a voucher could pin its fingerprint), PKCS#8 PEM. */
  identityKeyPem?: string;
}): Promise<ApplianceState> {
  await mkdir(o.dir, { recursive: true, mode: 0o700 });
  const id = o.identityKeyPem ? identityFromPem(o.identityKeyPem) : generateIdentity();
  const client = createJsonClient({ baseUrl: o.managerUrl, caPem: o.caPem });
  try {
    // Proof of possession of the identity key, bound to the token or credential (SPEC.md §5.7).
    const proof = signData('sha256', enrollProofInput(o.name, id.spkiDer, proofMaterial(o)), {
      key: createPrivateKey(id.keyPem),
      dsaEncoding: 'der',
    });
    const out = await client.request<{
      applianceId: string;
      certificatePem: string;
      caPem: string;
    }>('POST', '/v1/appliances/enroll', {
      ...(o.token !== undefined ? { token: o.token } : {}),
      ...(o.credential
        ? {
            credential: {
              kind: o.credential.kind,
              ...(o.credential.secret !== undefined ? { secret: o.credential.secret } : {}),
              ...(o.credential.document ? { document: toB64u(o.credential.document) } : {}),
            },
          }
        : {}),
      name: o.name,
      publicKey: toB64u(id.spkiDer),
      proof: toB64u(new Uint8Array(proof)),
    });
    const state: ApplianceState = {
      format: 1,
      applianceId: out.applianceId,
      name: o.name,
      managerUrl: o.managerUrl,
      caPem: o.caPem,
      certificatePem: out.certificatePem,
      identityKeyPem: id.keyPem,
      keyrings: {},
    };
    await saveState(o.dir, state);
    return state;
  } finally {
    client.close();
  }
}

export interface KeyAnswer {
  keyring: string;
  managerVersion: number;
  mode: string;
  scheme: string;
  publicKey: string;
  signature: string;
  masterVersion: number;
}

interface KeyringInfo {
  name: string;
  mode: string;
  scheme: string;
  masterVersion: number;
  managerVersion: number;
  status: string;
}

/** What a caller needs to encrypt a new file: the header fields and the item's KEK. */
export interface NewItem {
  fields: Omit<HeaderFields, 'fileNonce'>;
  kek: Uint8Array;
}

/** An application's call relayed to the manager's KMS routes (SPEC.md §11.7). */
export interface KmsCall {
  token: string;
  operation: string;
  contextHash: Uint8Array;
  clientKey?: Uint8Array;
}

export interface KmsItem {
  fields: {
    scheme: number;
    mode: number;
    keyring: string;
    masterVersion: number;
    managerVersion: number;
    itemId: Uint8Array;
    nonce: Uint8Array;
    ticket: Uint8Array;
  };
  kek?: Uint8Array;
  clientCiphertext?: Uint8Array;
}

function kmsBody(call: KmsCall): Record<string, unknown> {
  return {
    appToken: call.token,
    operation: call.operation,
    contextHash: toB64u(call.contextHash),
    ...(call.clientKey ? { clientKey: toB64u(call.clientKey) } : {}),
  };
}

export interface ApplianceOptions {
  dir: string;
  state: ApplianceState;
  /** Test-only hook (never set in production code paths): sees every item secret. */
  onItemSecret?: (keyring: string, secret: Uint8Array) => void;
  /**
   * Optional cache of item KEKs (off by default: an item key then exists only while a request
   * uses it, T2). Bounded in entries and time; evicted keys are wiped.
   */
  cache?: { maxEntries: number; ttlMs: number };
  /**
   * Recovery coalescing (src/appliance/coalesce.ts): concurrent openItem calls share one
   * `POST /v1/recover/batch` request. On by default (a lone request is sent at once); `false`
   * sends every recovery as its own `POST /v1/recover`.
   */
  batch?: CoalescerOptions | false;
  /** threshold mode: per-node timeout and creation grace period (src/appliance/threshold.ts). */
  threshold?: ThresholdTiming;
}

/** A bounded, expiring KEK cache whose evictions zeroize the key. */
class KekCache {
  private readonly map = new Map<string, { kek: Uint8Array; expires: number }>();
  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
  ) {}

  get(key: string): Uint8Array | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (e.expires <= Date.now()) {
      this.delete(key);
      return undefined;
    }
    this.map.delete(key); // LRU: move to the end
    this.map.set(key, e);
    return new Uint8Array(e.kek);
  }

  set(key: string, kek: Uint8Array): void {
    this.delete(key);
    this.map.set(key, { kek: new Uint8Array(kek), expires: Date.now() + this.ttlMs });
    while (this.map.size > this.max) this.delete(this.map.keys().next().value as string);
  }

  private delete(key: string): void {
    const e = this.map.get(key);
    if (e) zeroize(e.kek);
    this.map.delete(key);
  }

  clear(): void {
    for (const k of [...this.map.keys()]) this.delete(k);
  }
}

/** A keyring's blinder chain as the manager publishes it (SPEC.md §5.4). */
export interface ChainInfo {
  keyring: string;
  mode: string;
  scheme: string;
  blinders: { id: string; url: string; fingerprint: string }[];
}

/** How long a keyring's chain is reused before it is read again from the manager. */
const CHAIN_TTL_MS = 5000;

export class Appliance {
  readonly client: JsonClient;
  /** threshold deployments: one client per manager node. */
  readonly nodes: NodeClient[];
  state: ApplianceState;
  private readonly chains = new Map<string, { at: number; chain: ChainInfo }>();
  private readonly blinderClients = new Map<string, JsonClient>();
  private readonly dir: string;
  private readonly cache?: KekCache;
  private readonly decoded = new Map<
    string,
    { pk: unknown; concealed: unknown; blind?: unknown; unblind?: (y: unknown) => unknown }
  >();

  private readonly recoverer?: Coalescer<Record<string, unknown>, string>;

  constructor(private readonly o: ApplianceOptions) {
    this.state = o.state;
    this.dir = o.dir;
    if (o.cache && o.cache.maxEntries > 0 && o.cache.ttlMs > 0) {
      this.cache = new KekCache(o.cache.maxEntries, o.cache.ttlMs);
    }
    this.client = createJsonClient({
      baseUrl: o.state.managerUrl,
      caPem: o.state.caPem,
      certPem: o.state.certificatePem,
      keyPem: o.state.identityKeyPem,
    });
    if (o.batch !== false) {
      this.recoverer = createCoalescer<Record<string, unknown>, string>(async (requests) => {
        const out = await this.client.request<{
          results: { answer?: string; error?: { code: string; message: string } }[];
        }>('POST', '/v1/recover/batch', { requests }, { idempotent: true });
        return out.results.map((r) =>
          typeof r.answer === 'string'
            ? { ok: r.answer }
            : { error: r.error ?? { code: 'ERR_INTERNAL', message: 'empty batch result' } },
        );
      }, o.batch);
    }
    this.nodes = nodeClients(o.state.nodes ?? [], o.state.identityKeyPem, o.threshold, o.batch);
  }

  close(): void {
    this.cache?.clear();
    this.client.close();
    for (const c of this.blinderClients.values()) c.close();
    for (const n of this.nodes) n.client.close();
  }

  /** The data directory holding appliance.json. */
  get home(): string {
    return this.dir;
  }

  get id(): string {
    return this.state.applianceId;
  }

  /** The manager's signature over our public key proves it came from the manager (seed I). */
  checkKeyStatement(a: KeyAnswer, caPem = this.state.caPem): void {
    const pub = fromB64u(a.publicKey);
    const statement = keyStatement(
      this.id,
      a.keyring,
      a.managerVersion,
      a.masterVersion,
      a.mode,
      a.scheme,
      pub,
    );
    const ok = verifySignature(
      'sha256',
      statement,
      createPublicKey(caPem),
      Buffer.from(fromB64u(a.signature)),
    );
    if (!ok) {
      throw new BlindfoldError('ERR_UNAUTHENTICATED', 'the manager key statement does not verify');
    }
  }

  /**
   * Joins a keyring and conceals a new master key for it at once (sub-process I). The master is
   * generated here (or imported from `importKey`), concealed, and wiped: it is never stored or sent.
   */
  async initKeyring(keyring: string, opts: { importKey?: Uint8Array } = {}): Promise<void> {
    if (this.nodes.length > 0) return this.initThresholdKeyring(keyring, opts.importKey);
    const info = await this.client.request<KeyringInfo>('GET', `/v1/keyrings/${keyring}/current`);
    if (!isMode(info.mode))
      throw new BlindfoldError('ERR_UNSUPPORTED_SCHEME', `unknown mode ${info.mode}`);
    const existing = this.state.keyrings[keyring];
    let masterVersion: number;
    if (existing || info.masterVersion === 0) {
      // A new master version (the first, or a rotation): claim it first (compare-and-swap).
      await this.client.request('POST', `/v1/keyrings/${keyring}/master`, {
        expected: info.masterVersion,
      });
      masterVersion = info.masterVersion + 1;
    } else if (opts.importKey) {
      // Joining a keyring whose master exists: only the same key material makes the same items.
      masterVersion = info.masterVersion;
    } else {
      throw new BlindfoldError(
        'ERR_CONFLICT',
        `keyring ${keyring} already has a master key (version ${info.masterVersion}) made by another appliance: ` +
          'receive it from a member (cluster transfer: "blindfold appliance init --keyring K" on an invited appliance, SPEC.md §5.7) or join with --import-key and the same key material',
      );
    }
    const c = await this.concealNewMaster(
      keyring,
      info,
      masterVersion,
      info.managerVersion,
      opts.importKey,
      !existing && info.masterVersion > 0,
    );
    const ks: KeyringState = existing ?? { mode: info.mode, scheme: info.scheme, concealments: [] };
    ks.concealments.push(c);
    this.state = { ...this.state, keyrings: { ...this.state.keyrings, [keyring]: ks } };
    await saveState(this.dir, this.state);
  }

  /**
   * After a manager-key rotation: re-conceal the newest master under the manager's newest key
   * version (SPEC.md §5.5), so that new items use it. Older concealments stay for older files.
   * Returns the manager version now in use.
   */
  async followManagerRotation(keyring: string): Promise<number> {
    const info = await this.client.request<KeyringInfo>('GET', `/v1/keyrings/${keyring}/current`);
    const { ks, c } = this.concealment(keyring);
    if (c.managerVersion >= info.managerVersion) return c.managerVersion;
    if (isChainMode(ks.mode)) {
      throw new BlindfoldError(
        'ERR_UNSUPPORTED_SCHEME',
        `keyring ${keyring} is in mode ${ks.mode}: re-concealment under a new manager key is not implemented for blinder chains; rotate the master key instead (keys rotate --master)`,
      );
    }
    if (ks.mode === 'threshold') {
      throw new BlindfoldError(
        'ERR_UNSUPPORTED_SCHEME',
        'threshold keyrings cannot follow a manager-key rotation in this release (SPEC.md §5.6)',
      );
    }
    const to = info.managerVersion;
    let next: Concealment;
    if (ks.mode === 'split') {
      const op = getSplitOperator(ks.scheme);
      const { delta, blindedMaster } = reconceal.splitRequest(op, fromB64u(c.concealed));
      await this.client.request('POST', `/v1/keyrings/${keyring}/reconceal`, {
        fromVersion: c.managerVersion,
        toVersion: to,
        masterVersion: c.masterVersion,
        delta: toB64u(delta),
      });
      zeroize(delta);
      next = {
        masterVersion: c.masterVersion,
        managerVersion: to,
        concealed: toB64u(blindedMaster),
      };
    } else {
      const scheme = getScheme(ks.scheme);
      if (!scheme.transfer) {
        throw new BlindfoldError(
          'ERR_UNSUPPORTED_SCHEME',
          `${ks.scheme} cannot re-conceal under a new manager key: rotate the master key (keys rotate --master)`,
        );
      }
      const a = await this.client.request<KeyAnswer>('POST', `/v1/keyrings/${keyring}/keys`, {
        managerVersion: to,
        masterVersion: c.masterVersion,
      });
      this.checkKeyStatement(a);
      const pkNew = scheme.decodePublicKey(fromB64u(a.publicKey));
      const d = this.decodedFor(ks, c);
      const { ciphertext, blind } = scheme.transfer.blind(d.pk, d.concealed);
      const out = await this.client.request<{ ciphertext: string }>(
        'POST',
        `/v1/keyrings/${keyring}/reconceal`,
        {
          fromVersion: c.managerVersion,
          toVersion: to,
          masterVersion: c.masterVersion,
          blinded: toB64u(scheme.encodeCiphertext(d.pk, ciphertext)),
        },
      );
      const ct = scheme.transfer.unblindCiphertext(
        pkNew,
        blind,
        scheme.decodeCiphertext(pkNew, fromB64u(out.ciphertext, 'ciphertext')),
      );
      scheme.wipeBlind(blind);
      next = {
        masterVersion: c.masterVersion,
        managerVersion: to,
        publicKey: a.publicKey,
        concealed: toB64u(scheme.encodeCiphertext(pkNew, ct)),
      };
      if (ks.mode === 'hom2-opt') {
        next.optSeed = await this.optSetup(keyring, to, c.masterVersion, scheme, pkNew, ct);
      }
    }
    ks.concealments.push(next);
    this.state = { ...this.state, keyrings: { ...this.state.keyrings, [keyring]: ks } };
    await saveState(this.dir, this.state);
    return to;
  }

  /** @internal hom2-opt setup for a concealment another path produced (console import). */
  optSetupFor(
    keyring: string,
    managerVersion: number,
    masterVersion: number,
    scheme: ReturnType<typeof getScheme>,
    pk: unknown,
    ct: unknown,
  ): Promise<string> {
    return this.optSetup(keyring, managerVersion, masterVersion, scheme, pk, ct);
  }

  private async optSetup(
    keyring: string,
    managerVersion: number,
    masterVersion: number,
    scheme: ReturnType<typeof getScheme>,
    pk: unknown,
    ct: unknown,
  ): Promise<string> {
    const optSeed = new Uint8Array(randomBytes(32));
    const { ciphertext, blind } = scheme.blind(pk, ct, seededRng(optSeed));
    scheme.wipeBlind(blind);
    await this.client.request('POST', `/v1/keyrings/${keyring}/opt-setup`, {
      managerVersion,
      masterVersion,
      blinded: toB64u(scheme.encodeCiphertext(pk, ciphertext)),
    });
    const out = toB64u(optSeed);
    zeroize(optSeed);
    return out;
  }

  private async concealNewMaster(
    keyring: string,
    info: KeyringInfo,
    masterVersion: number,
    managerVersion: number,
    importKey?: Uint8Array,
    joining = false,
  ): Promise<Concealment> {
    // Joining an existing master with imported material: the manager may flag us trusted.
    const imported = importKey && joining ? { imported: true } : {};
    const seed = importKey ? new Uint8Array(importKey) : new Uint8Array(randomBytes(32));
    try {
      if (info.mode === 'split') {
        const op = getSplitOperator(info.scheme);
        const master = op.fromSeed(seed);
        const { blindedMaster, r } = splitMode.conceal(op, master);
        zeroize(master);
        await this.client.request<KeyAnswer>('POST', `/v1/keyrings/${keyring}/keys`, {
          managerVersion,
          masterVersion,
          r: toB64u(r),
          ...imported,
        });
        zeroize(r);
        return { masterVersion, managerVersion, concealed: toB64u(blindedMaster) };
      }
      const scheme = getScheme(info.scheme);
      const a = await this.client.request<KeyAnswer>('POST', `/v1/keyrings/${keyring}/keys`, {
        managerVersion,
        masterVersion,
        ...imported,
      });
      this.checkKeyStatement(a);
      const pk = scheme.decodePublicKey(fromB64u(a.publicKey));
      const master = scheme.plaintextFromSeed(pk, seed);
      const ct = homMode.conceal(scheme, pk, master);
      if (master instanceof Uint8Array) zeroize(master); // BigInt plaintexts cannot be wiped (SPEC.md §2.6)
      const c: Concealment = {
        masterVersion,
        managerVersion,
        publicKey: a.publicKey,
        concealed: toB64u(scheme.encodeCiphertext(pk, ct)),
      };
      if (info.mode === 'hom2-opt')
        c.optSeed = await this.optSetup(keyring, managerVersion, masterVersion, scheme, pk, ct);
      if (isChainMode(info.mode)) {
        // hom3/homN setup: Enc(M) never leaves this appliance unblinded; every blinder of the
        // keyring's chain adds its E_j (SPEC.md §5.4).
        const chain = await this.chainInfo(keyring, true);
        c.signature = a.signature;
        c.blinders = [];
        const ks: KeyringState = { mode: info.mode, scheme: info.scheme, concealments: [] };
        const concealed = await this.chainSetup(keyring, ks, c, pk, ct, chain.blinders);
        c.concealed = toB64u(scheme.encodeCiphertext(pk, concealed));
      }
      return c;
    } finally {
      zeroize(seed);
    }
  }

  private concealment(keyring: string, masterVersion?: number, managerVersion?: number) {
    const ks = this.state.keyrings[keyring];
    if (!ks) {
      throw new BlindfoldError(
        'ERR_NOT_FOUND',
        `this appliance holds no master key for keyring ${keyring}: run "blindfold appliance init --keyring ${keyring}"`,
      );
    }
    const list = ks.concealments.filter(
      (c) =>
        !c.pending && // not yet acknowledged by the manager (cluster transfer)
        (masterVersion === undefined || c.masterVersion === masterVersion) &&
        (managerVersion === undefined || c.managerVersion === managerVersion),
    );
    const c = list.sort(
      (a, b) => b.masterVersion - a.masterVersion || b.managerVersion - a.managerVersion,
    )[0];
    if (!c) {
      throw new BlindfoldError(
        'ERR_NOT_FOUND',
        `no master key version ${masterVersion ?? '(latest)'} / manager version ${managerVersion ?? '(latest)'} for keyring ${keyring} on this appliance`,
      );
    }
    return { ks, c };
  }

  /** The versions new items of this keyring use on this appliance. */
  latestVersions(keyring: string): { masterVersion: number; managerVersion: number } {
    const { c } = this.concealment(keyring);
    return { masterVersion: c.masterVersion, managerVersion: c.managerVersion };
  }

  /** Decoded scheme objects for a concealment, cached (no repeated decoding on hot paths). */
  private decodedFor(ks: KeyringState, c: Concealment) {
    const key = `${c.masterVersion}|${c.managerVersion}|${c.concealed.slice(0, 16)}`;
    let d = this.decoded.get(key);
    if (!d) {
      const scheme = getScheme(ks.scheme);
      const pk = scheme.decodePublicKey(fromB64u(c.publicKey ?? ''));
      const concealed = scheme.decodeCiphertext(pk, fromB64u(c.concealed));
      let blind: unknown;
      if (c.optSeed) blind = scheme.blind(pk, concealed, seededRng(fromB64u(c.optSeed))).blind;
      // hom2-opt reuses β_A for every recovery: its inverse is computed once, not per recovery
      // (issue #9: the inversion was ~20 % of the appliance's CPU per hom2-opt recovery).
      const unblind =
        blind !== undefined && scheme.unblinder ? scheme.unblinder(pk, blind) : undefined;
      d = { pk, concealed, blind, unblind };
      this.decoded.set(key, d);
    }
    return d;
  }

  /** Sub-process II: a new protected item, in one round trip in every mode. */
  async newItem(keyring: string, opts: { ttlSeconds?: number } = {}): Promise<NewItem> {
    const { ks, c } = this.concealment(keyring);
    const entropy = new Uint8Array(randomBytes(16));
    const body: Record<string, unknown> = {
      keyring,
      // Our own item id makes a retried creation idempotent (SPEC.md §5.2).
      itemId: toB64u(randomBytes(16)),
      masterVersion: c.masterVersion,
      managerVersion: c.managerVersion,
      entropy: toB64u(entropy),
    };
    if (opts.ttlSeconds) body.ttlSeconds = opts.ttlSeconds;
    if (isChainMode(ks.mode)) return this.chainNewItem(keyring, ks, c, body, entropy);
    const prepared = this.prepare(ks, c);
    if (prepared.blinded) body.blinded = prepared.blinded;
    let out: { itemId: string; managerVersion: number; ticket: string; answer: string };
    let combined: Point | undefined;
    if (ks.mode === 'threshold') {
      const r = await this.thresholdCreate(ks, body, prepared);
      out = r.reply;
      combined = r.combined;
    } else {
      out = await this.client.request<{
        itemId: string;
        managerVersion: number;
        ticket: string;
        answer: string;
      }>('POST', '/v1/items', body, { idempotent: true });
    }
    const itemId = fromB64u(out.itemId, 'itemId');
    const ref: ItemRef = {
      keyring,
      itemId,
      masterVersion: c.masterVersion,
      managerVersion: c.managerVersion,
      entropy,
    };
    const kek = this.finish(ks, c, prepared, combined ?? fromB64u(out.answer, 'answer'), ref);
    return {
      fields: {
        scheme: this.schemeCode(ks),
        mode: MODE_CODES[ks.mode],
        keyring,
        masterVersion: c.masterVersion,
        managerKeyVersion: c.managerVersion,
        itemId,
        itemData: entropy,
        ticket: fromB64u(out.ticket, 'ticket'),
      },
      kek,
    };
  }

  /** Sub-process III: the KEK of an existing item, from its (not yet authenticated) header. */
  async openItem(header: DecodedHeader | Uint8Array): Promise<Uint8Array> {
    const h = header instanceof Uint8Array ? decodeHeader(header) : header;
    const f = h.fields;
    const { ks, c } = this.concealment(f.keyring, f.masterVersion, f.managerKeyVersion);
    if (f.mode !== MODE_CODES[ks.mode] || f.scheme !== this.schemeCode(ks)) {
      throw new BlindfoldError(
        'ERR_DECODE',
        'the header names a mode or scheme this keyring does not use',
      );
    }
    // The cache key covers everything the manager checks, the ticket included.
    const cacheKey = this.cache
      ? toB64u(
          sha256(
            f.ticket,
            itemContext({ ...f, managerVersion: f.managerKeyVersion, entropy: f.itemData }),
          ),
        )
      : '';
    const hit = this.cache?.get(cacheKey);
    if (hit) return hit;
    if (isChainMode(ks.mode)) {
      const ref: ItemRef = {
        keyring: f.keyring,
        itemId: f.itemId,
        masterVersion: f.masterVersion,
        managerVersion: f.managerKeyVersion,
        entropy: f.itemData,
      };
      const out = await this.chainRequest('recover', ks, c, ref, f.ticket, 0);
      const kek = this.chainFinish(ks, c, out.prepared, fromB64u(out.answer.answer, 'answer'), ref);
      this.cache?.set(cacheKey, kek);
      return kek;
    }
    const prepared = this.prepare(ks, c);
    const body: Record<string, unknown> = {
      keyring: f.keyring,
      itemId: toB64u(f.itemId),
      masterVersion: f.masterVersion,
      managerVersion: f.managerKeyVersion,
      entropy: toB64u(f.itemData),
      ticket: toB64u(f.ticket),
    };
    if (prepared.blinded) body.blinded = prepared.blinded;
    const ref: ItemRef = {
      keyring: f.keyring,
      itemId: f.itemId,
      masterVersion: f.masterVersion,
      managerVersion: f.managerKeyVersion,
      entropy: f.itemData,
    };
    if (ks.mode === 'threshold') {
      const kek = await this.thresholdOpen(ks, c, h, body, prepared, ref);
      this.cache?.set(cacheKey, kek);
      return kek;
    }
    let answer: string;
    try {
      answer = this.recoverer
        ? await this.recoverer.submit(body)
        : (
            await this.client.request<{ answer: string }>('POST', '/v1/recover', body, {
              idempotent: true,
            })
          ).answer;
    } catch (e) {
      if (prepared.blind !== undefined) getScheme(ks.scheme).wipeBlind(prepared.blind);
      throw e;
    }
    const kek = this.finish(ks, c, prepared, fromB64u(answer, 'answer'), ref);
    this.cache?.set(cacheKey, kek);
    return kek;
  }

  // -- hom3 / homN (SPEC.md §5.4) ----------------------------------------------------------------

  /** The keyring's chain, from the manager (cached for a few seconds). */
  async chainInfo(keyring: string, fresh = false): Promise<ChainInfo> {
    const hit = this.chains.get(keyring);
    if (!fresh && hit && Date.now() - hit.at < CHAIN_TTL_MS) return hit.chain;
    const chain = await this.client.request<ChainInfo>('GET', `/v1/keyrings/${keyring}/chain`);
    this.chains.set(keyring, { at: Date.now(), chain });
    return chain;
  }

  private blinderClient(b: { url: string; fingerprint: string; id: string }): JsonClient {
    if (!b.url) {
      throw new BlindfoldError(
        'ERR_UNAVAILABLE',
        `blinder ${b.id} has not announced its URL to the manager: is it running?`,
      );
    }
    const key = `${b.url}|${b.fingerprint}`;
    let c = this.blinderClients.get(key);
    if (!c) {
      c = createJsonClient({
        baseUrl: b.url,
        caPem: this.state.caPem,
        certPem: this.state.certificatePem,
        keyPem: this.state.identityKeyPem,
        pinFingerprint: b.fingerprint,
        retries: 0,
      });
      this.blinderClients.set(key, c);
    }
    return c;
  }

  /**
   * Runs a concealment through blinders: Enc(M ⊕ R_old) is blinded with a fresh T, each blinder
   * adds its E_j, T is removed. Returns Enc(M ⊕ R_old ⊕ R_new) and records the blinders in `c`.
   */
  private async chainSetup(
    keyring: string,
    ks: KeyringState,
    c: Concealment,
    pk: unknown,
    concealed: unknown,
    blinders: ChainInfo['blinders'],
  ): Promise<unknown> {
    const scheme = getScheme(ks.scheme);
    const { ciphertext, t } = chainMode.setupRequest(scheme, pk, concealed);
    let cur: unknown = ciphertext;
    for (const b of blinders) {
      const out = await this.blinderClient(b)
        .request<{ ciphertext: string }>('POST', '/v1/chain/setup', {
          keyring,
          managerVersion: c.managerVersion,
          masterVersion: c.masterVersion,
          mode: ks.mode,
          scheme: ks.scheme,
          publicKey: c.publicKey,
          signature: c.signature,
          ciphertext: toB64u(scheme.encodeCiphertext(pk, cur)),
        })
        .catch((e: unknown) => {
          throw this.hopError(b, e);
        });
      cur = scheme.decodeCiphertext(pk, fromB64u(out.ciphertext, 'ciphertext'));
      c.blinders = [...(c.blinders ?? []), b.id];
    }
    const done = chainMode.setupFinish(scheme, pk, cur, t);
    if (t instanceof Uint8Array) zeroize(t);
    return done;
  }

  private hopError(b: { id: string; url: string }, e: unknown): BlindfoldError {
    if (e instanceof BlindfoldError && e.code === 'ERR_UNAVAILABLE') {
      this.chains.clear(); // it may have moved: read the chain again next time
      return new BlindfoldError(
        'ERR_UNAVAILABLE',
        `blinder ${b.id} (${b.url}) is unavailable: ${e.message}`,
        { cause: e },
      );
    }
    return e instanceof BlindfoldError
      ? e
      : new BlindfoldError('ERR_INTERNAL', 'blinder request failed', { cause: e });
  }

  /**
   * Before a request: a blinder added to the keyring's chain since this concealment was made gets
   * its E_j now (the concealment is re-run through it alone, SPEC.md §5.4); no data changes.
   */
  private async followChain(keyring: string, ks: KeyringState, c: Concealment): Promise<ChainInfo> {
    const chain = await this.chainInfo(keyring);
    const have = new Set(c.blinders ?? []);
    const gone = [...have].filter((id) => !chain.blinders.some((b) => b.id === id));
    if (gone.length > 0) {
      throw new BlindfoldError(
        'ERR_CONFLICT',
        `blinders ${gone.join(', ')} left the chain of ${keyring}; removing a blinder is not implemented (SPEC.md §5.4)`,
      );
    }
    const missing = chain.blinders.filter((b) => !have.has(b.id));
    if (missing.length === 0) return chain;
    const scheme = getScheme(ks.scheme);
    const d = this.decodedFor(ks, c);
    const next: Concealment = { ...c, blinders: [...(c.blinders ?? [])] };
    const concealed = await this.chainSetup(keyring, ks, next, d.pk, d.concealed, missing);
    next.concealed = toB64u(scheme.encodeCiphertext(d.pk, concealed));
    const list = ks.concealments.map((x) => (x === c ? next : x));
    const nks = { ...ks, concealments: list };
    this.state = { ...this.state, keyrings: { ...this.state.keyrings, [keyring]: nks } };
    await saveState(this.dir, this.state);
    Object.assign(c, next);
    return chain;
  }

  /** Sends one signed request into the chain (first blinder) and returns the manager's answer. */
  private async chainRequest(
    op: 'create' | 'recover',
    ks: KeyringState,
    c: Concealment,
    ref: ItemRef,
    ticket: Uint8Array,
    ttlSeconds: number,
  ): Promise<{ answer: ChainAnswerJson; prepared: ChainBlind }> {
    const chain = await this.followChain(ref.keyring, ks, c);
    const scheme = getScheme(ks.scheme);
    const d = this.decodedFor(ks, c);
    const { ciphertext, aux, blind } = chainMode.request(scheme, d.pk, d.concealed);
    const fields = {
      op,
      applianceId: this.id,
      keyring: ref.keyring,
      itemId: ref.itemId,
      masterVersion: ref.masterVersion,
      managerVersion: ref.managerVersion,
      entropy: ref.entropy,
      ticket,
      ttlSeconds,
      aux: aux ?? new Uint8Array(0),
      issuedAt: Date.now(),
      nonce: new Uint8Array(randomBytes(16)),
    };
    const signature = new Uint8Array(
      signData('sha256', chainRequestStatement(fields), {
        key: this.identityKey(),
        dsaEncoding: 'der',
      }),
    );
    const first = chain.blinders[0]!;
    try {
      const answer = await this.blinderClient(first).request<ChainAnswerJson>(
        'POST',
        '/v1/chain/forward',
        encodeEnvelope({
          ...fields,
          signature,
          ciphertext: scheme.encodeCiphertext(d.pk, ciphertext),
        }),
      );
      if (typeof answer?.answer !== 'string') {
        throw new BlindfoldError(
          'ERR_UNAVAILABLE',
          'the chain answered something that is not an answer',
        );
      }
      return { answer, prepared: blind };
    } catch (e) {
      chainMode.wipe(scheme, blind);
      throw this.hopError(first, e);
    }
  }

  private identityKeyObject?: ReturnType<typeof createPrivateKey>;
  private identityKey() {
    this.identityKeyObject ??= createPrivateKey(this.state.identityKeyPem);
    return this.identityKeyObject;
  }

  private async chainNewItem(
    keyring: string,
    ks: KeyringState,
    c: Concealment,
    body: Record<string, unknown>,
    entropy: Uint8Array,
  ): Promise<NewItem> {
    const ref: ItemRef = {
      keyring,
      itemId: fromB64u(body.itemId as string, 'itemId'),
      masterVersion: c.masterVersion,
      managerVersion: c.managerVersion,
      entropy,
    };
    const ttl = typeof body.ttlSeconds === 'number' ? body.ttlSeconds : 0;
    const out = await this.chainRequest('create', ks, c, ref, new Uint8Array(0), ttl);
    if (out.answer.itemId !== body.itemId || typeof out.answer.ticket !== 'string') {
      chainMode.wipe(getScheme(ks.scheme), out.prepared);
      throw new BlindfoldError('ERR_UNAVAILABLE', 'the chain answered a creation for another item');
    }
    const kek = this.chainFinish(ks, c, out.prepared, fromB64u(out.answer.answer, 'answer'), ref);
    return {
      fields: {
        scheme: this.schemeCode(ks),
        mode: MODE_CODES[ks.mode],
        keyring,
        masterVersion: c.masterVersion,
        managerKeyVersion: c.managerVersion,
        itemId: ref.itemId,
        itemData: entropy,
        ticket: fromB64u(out.answer.ticket, 'ticket'),
      },
      kek,
    };
  }

  private chainFinish(
    ks: KeyringState,
    c: Concealment,
    blind: ChainBlind,
    answer: Uint8Array,
    ref: ItemRef,
  ): Uint8Array {
    const scheme = getScheme(ks.scheme);
    const d = this.decodedFor(ks, c);
    let secret: Uint8Array;
    try {
      secret = chainMode.finish(scheme, d.pk, blind, answer);
    } finally {
      chainMode.wipe(scheme, blind);
    }
    this.o.onItemSecret?.(ref.keyring, secret);
    const kek = itemKek(secret, ref);
    zeroize(secret);
    return kek;
  }

  /**
   * KMS sub-process II (SPEC.md §11): like newItem, relayed with the application's token through
   * the manager's KMS route; the entropy is nonce ‖ contextHash. With a client key the manager
   * answers Enc_U(Y) and this appliance removes its blind on the ciphertext: it never holds S_i
   * (SPEC.md §5.8) and returns Enc_U(S_i) instead of a KEK.
   */
  async kmsNewItem(keyring: string, call: KmsCall, nonce: Uint8Array): Promise<KmsItem> {
    const { ks, c } = this.concealment(keyring);
    this.refuseThresholdKms(ks);
    const U = this.checkClientKey(ks, call.clientKey);
    const entropy = kmsEntropy(nonce, call.contextHash);
    const body: Record<string, unknown> = {
      ...kmsBody(call),
      keyring,
      itemId: toB64u(randomBytes(16)),
      masterVersion: c.masterVersion,
      managerVersion: c.managerVersion,
      entropy: toB64u(entropy),
    };
    const prepared = this.prepare(ks, c);
    if (prepared.blinded) body.blinded = prepared.blinded;
    const out = await this.client.request<{ itemId: string; ticket: string; answer: string }>(
      'POST',
      '/v1/kms/items',
      body,
      { idempotent: true },
    );
    const ref: ItemRef = {
      keyring,
      itemId: fromB64u(out.itemId, 'itemId'),
      masterVersion: c.masterVersion,
      managerVersion: c.managerVersion,
      entropy,
    };
    const fields = {
      scheme: this.schemeCode(ks),
      mode: MODE_CODES[ks.mode],
      keyring,
      masterVersion: c.masterVersion,
      managerVersion: c.managerVersion,
      itemId: ref.itemId,
      nonce,
      ticket: fromB64u(out.ticket, 'ticket'),
    };
    const answer = fromB64u(out.answer, 'answer');
    if (U) return { fields, clientCiphertext: this.forClient(ks, c, prepared, answer, U) };
    return { fields, kek: this.finish(ks, c, prepared, answer, ref) };
  }

  /** KMS sub-process III: the KEK (or Enc_U(S_i)) of the item a KMS blob names. */
  async kmsOpenItem(
    f: {
      scheme: number;
      mode: number;
      keyring: string;
      masterVersion: number;
      managerVersion: number;
      itemId: Uint8Array;
      nonce: Uint8Array;
      ticket: Uint8Array;
    },
    call: KmsCall,
  ): Promise<{ kek?: Uint8Array; clientCiphertext?: Uint8Array }> {
    const { ks, c } = this.concealment(f.keyring, f.masterVersion, f.managerVersion);
    if (f.mode !== MODE_CODES[ks.mode] || f.scheme !== this.schemeCode(ks)) {
      throw new BlindfoldError(
        'ERR_DECODE',
        'the ciphertext names a mode or scheme this key does not use',
      );
    }
    this.refuseThresholdKms(ks);
    const U = this.checkClientKey(ks, call.clientKey);
    const ref: ItemRef = {
      keyring: f.keyring,
      itemId: f.itemId,
      masterVersion: f.masterVersion,
      managerVersion: f.managerVersion,
      entropy: kmsEntropy(f.nonce, call.contextHash),
    };
    const prepared = this.prepare(ks, c);
    const body: Record<string, unknown> = {
      ...kmsBody(call),
      keyring: f.keyring,
      itemId: toB64u(f.itemId),
      masterVersion: f.masterVersion,
      managerVersion: f.managerVersion,
      entropy: toB64u(ref.entropy),
      ticket: toB64u(f.ticket),
    };
    if (prepared.blinded) body.blinded = prepared.blinded;
    const out = await this.client.request<{ answer: string }>('POST', '/v1/kms/recover', body, {
      idempotent: true,
    });
    const answer = fromB64u(out.answer, 'answer');
    if (U) return { clientCiphertext: this.forClient(ks, c, prepared, answer, U) };
    return { kek: this.finish(ks, c, prepared, answer, ref) };
  }

  /** The KMS relay goes to one manager; a threshold keyring needs t nodes (SPEC.md §5.6). */
  private refuseThresholdKms(ks: KeyringState): void {
    if (ks.mode === 'threshold') {
      throw new BlindfoldError(
        'ERR_UNSUPPORTED_SCHEME',
        'the KMS API does not serve threshold keyrings in this release (SPEC.md §5.6)',
      );
    }
  }

  private checkClientKey(ks: KeyringState, clientKey?: Uint8Array): Point | undefined {
    if (clientKey === undefined) return undefined;
    if (ks.mode === 'split' || ks.scheme !== 'ec-elgamal') {
      throw new BlindfoldError(
        'ERR_UNSUPPORTED_SCHEME',
        `client-blinded keys need an ec-elgamal key in mode hom2 or hom2-opt; this key is ${ks.scheme} in ${ks.mode}`,
      );
    }
    return decodeClientKey(clientKey);
  }

  /** Removes our blind ρ (hom2: per request; hom2-opt: β_A) on the ciphertext Enc_U(ρ·S_i). */
  private forClient(
    ks: KeyringState,
    c: Concealment,
    prepared: { blind?: unknown },
    answer: Uint8Array,
    U: Point,
  ): Uint8Array {
    const rho = (ks.mode === 'hom2' ? prepared.blind : this.decodedFor(ks, c).blind) as Scalar;
    try {
      return unblindForClient(answer, rho, U);
    } finally {
      // wipeBlind, not just zeroize: a pooled ρ has its inverse attached (ec-elgamal.ts).
      if (ks.mode === 'hom2') getScheme(ks.scheme).wipeBlind(rho);
    }
  }

  // -- threshold mode (SPEC.md §5.6) ------------------------------------------------------------

  private thresholdOf(ks: KeyringState): number {
    if (!ks.threshold || this.nodes.length !== ks.threshold.n) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        `this appliance knows ${this.nodes.length} manager nodes, but the keyring is ${ks.threshold?.t ?? '?'}-of-${ks.threshold?.n ?? '?'}: check appliance.json "nodes"`,
      );
    }
    return ks.threshold.t;
  }

  private async thresholdCreate(
    ks: KeyringState,
    body: Record<string, unknown>,
    prepared: { blind?: unknown },
  ) {
    try {
      return await thresholdCreate(
        this.nodes,
        this.thresholdOf(ks),
        body,
        this.o.threshold?.graceMs,
      );
    } catch (e) {
      getScheme(ks.scheme).wipeBlind(prepared.blind);
      throw e;
    }
  }

  /** Combines node answers until a t-subset's item key unwraps the header's DEK. */
  private async thresholdOpen(
    ks: KeyringState,
    c: Concealment,
    h: DecodedHeader,
    body: Record<string, unknown>,
    prepared: { blind?: unknown },
    ref: ItemRef,
  ): Promise<Uint8Array> {
    try {
      return await thresholdRecover(this.nodes, this.thresholdOf(ks), body, (combined) => {
        const kek = this.finish(ks, c, prepared, encodePoint(combined), ref, true);
        try {
          zeroize(unwrapDek(h, kek));
          return kek;
        } catch {
          zeroize(kek);
          return undefined;
        }
      });
    } finally {
      getScheme(ks.scheme).wipeBlind(prepared.blind);
    }
  }

  /**
   * Threshold sub-process I (SPEC.md §5.6). Every node must be up. The appliance is the dealer
   * of its own d_A: it draws d_A, sends node j its Shamir share d_j with the Feldman
   * commitments, and wipes d_A, the coefficients and the shares before it conceals the master —
   * d_A exists only in this function's memory, for the few milliseconds of the dealing, at the
   * one moment the appliance holds M anyway.
   */
  private async initThresholdKeyring(keyring: string, importKey?: Uint8Array): Promise<void> {
    const infos = await Promise.all(
      this.nodes.map((n) =>
        n.client.request<KeyringInfo & { threshold?: { t: number; n: number; index: number } }>(
          'GET',
          `/v1/keyrings/${keyring}/current`,
        ),
      ),
    );
    const first = infos[0]!;
    const th = first.threshold;
    for (let i = 0; i < infos.length; i++) {
      const info = infos[i]!;
      const node = this.nodes[i]!;
      if (
        info.mode !== 'threshold' ||
        !info.threshold ||
        info.threshold.index !== node.index ||
        info.threshold.t !== th?.t ||
        info.threshold.n !== this.nodes.length ||
        info.masterVersion !== first.masterVersion ||
        info.managerVersion !== first.managerVersion
      ) {
        throw new BlindfoldError(
          'ERR_CONFLICT',
          `manager node ${node.index} (${node.url}) does not hold keyring ${keyring} as node ${node.index} of the same threshold keyring at the same versions as node ${this.nodes[0]!.index}`,
        );
      }
    }
    const t = th!.t;
    const existing = this.state.keyrings[keyring];
    let masterVersion: number;
    if (existing || first.masterVersion === 0) {
      for (const n of this.nodes) {
        await n.client.request('POST', `/v1/keyrings/${keyring}/master`, {
          expected: first.masterVersion,
        });
      }
      masterVersion = first.masterVersion + 1;
    } else if (importKey) {
      masterVersion = first.masterVersion;
    } else {
      throw new BlindfoldError(
        'ERR_CONFLICT',
        `keyring ${keyring} already has a master key (version ${first.masterVersion}): join with --import-key and the same key material`,
      );
    }
    const managerVersion = first.managerVersion;
    const imported = importKey && !existing && first.masterVersion > 0 ? { imported: true } : {};
    const d = randomScalar();
    const publicKey = mulBase(d);
    const dealt = dealShares(d, { t, n: this.nodes.length });
    zeroize(d);
    try {
      for (const n of this.nodes) {
        const share = dealt.shares.find((s) => s.index === n.index)!;
        const a = await n.client.request<KeyAnswer>('POST', `/v1/keyrings/${keyring}/keys`, {
          managerVersion,
          masterVersion,
          share: {
            index: n.index,
            value: toB64u(share.value),
            commitments: dealt.commitments.map((x) => toB64u(x)),
          },
          ...imported,
        });
        this.checkKeyStatement(a, n.caPem);
        if (a.publicKey !== toB64u(publicKey)) {
          throw new BlindfoldError(
            'ERR_UNAUTHENTICATED',
            `manager node ${n.index} stated another public key than the one dealt`,
          );
        }
      }
    } finally {
      for (const s of dealt.shares) zeroize(s.value);
    }
    const scheme = getScheme('ec-elgamal');
    const seed = importKey ? new Uint8Array(importKey) : new Uint8Array(randomBytes(32));
    let concealed: string;
    try {
      const master = scheme.plaintextFromSeed(publicKey, seed);
      concealed = toB64u(
        scheme.encodeCiphertext(publicKey, homMode.conceal(scheme, publicKey, master)),
      );
      zeroize(master as Uint8Array);
    } finally {
      zeroize(seed);
    }
    const ks: KeyringState = existing ?? {
      mode: 'threshold',
      scheme: 'ec-elgamal',
      threshold: { t, n: this.nodes.length },
      concealments: [],
    };
    ks.concealments.push({
      masterVersion,
      managerVersion,
      publicKey: toB64u(publicKey),
      concealed,
    });
    this.state = { ...this.state, keyrings: { ...this.state.keyrings, [keyring]: ks } };
    await saveState(this.dir, this.state);
  }

  private schemeCode(ks: KeyringState): number {
    return ks.mode === 'split'
      ? SPLIT_CODES[ks.scheme as keyof typeof SPLIT_CODES]
      : SCHEME_CODES[ks.scheme as SchemeId];
  }

  private prepare(ks: KeyringState, c: Concealment): { blinded?: string; blind?: unknown } {
    if (ks.mode !== 'hom2' && ks.mode !== 'threshold') return {};
    const scheme = getScheme(ks.scheme);
    const d = this.decodedFor(ks, c);
    const { ciphertext, blind } = homMode.request(scheme, d.pk, d.concealed);
    return { blinded: toB64u(scheme.encodeCiphertext(d.pk, ciphertext)), blind };
  }

  private finish(
    ks: KeyringState,
    c: Concealment,
    prepared: { blind?: unknown },
    answer: Uint8Array,
    ref: ItemRef,
    keepBlind = false,
  ): Uint8Array {
    let secret: Uint8Array;
    if (ks.mode === 'split') {
      const op = getSplitOperator(ks.scheme);
      secret = splitMode.finish(op, fromB64u(c.concealed), answer);
    } else {
      const scheme = getScheme(ks.scheme);
      const d = this.decodedFor(ks, c);
      const fresh = ks.mode === 'hom2' || ks.mode === 'threshold';
      const unblind = d.unblind;
      const finish = fresh
        ? (y: unknown) => homMode.finish(scheme, d.pk, prepared.blind, y)
        : unblind
          ? (y: unknown) => homMode.finishWith(scheme, d.pk, unblind, y)
          : (y: unknown) => homMode.finish(scheme, d.pk, d.blind, y);
      // ec-elgamal: the unblinding multiplication decodes the answer, so it is not decoded twice
      // (issue #9; ec-elgamal.ts withEncodedPlaintext: same result, same errors).
      secret =
        scheme.id === ecElGamal.id
          ? withEncodedPlaintext(d.pk as Point, answer, finish)
          : finish(scheme.decodePlaintext(d.pk, answer));
      if (fresh && !keepBlind) scheme.wipeBlind(prepared.blind);
    }
    this.o.onItemSecret?.(ref.keyring, secret);
    const kek = itemKek(secret, ref);
    zeroize(secret);
    return kek;
  }
}

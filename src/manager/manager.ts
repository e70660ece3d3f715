/**
 * The manager's service layer (seed: PVKM), independent of HTTP: every operation of SPEC.md §5
 * and §7 as a method that validates, authorizes, does its cryptography and writes through the
 * store. In-memory caches change only after the store accepted the write (Vault's rule).
 *
 * Order of checks on the hot path (threat model T6): the caller is authenticated by the
 * transport (mTLS) before we are called; here we check that it is trusted and not revoked, then
 * the request's shape, then the ticket (HMAC, constant time), and only then touch a secret key
 * or do a group operation. `groupOps` counts the latter so that tests can prove it.
 */
import { createPublicKey, randomBytes, randomUUID, verify as verifySignature } from 'node:crypto';
import type { AttestationVerifier } from '../cluster/credentials.ts';
import { type EnrollInput as ClusterEnrollInput, ClusterService } from '../cluster/service.ts';
import { concat, equalBytes, lp16, toHex, u32be, utf8 } from '../core/bytes.ts';
import { chainRequestStatement } from '../core/chain.ts';
import { BlindfoldError } from '../core/errors.ts';
import type { Point, Scalar } from '../core/group.ts';
import { sha256 } from '../core/hash.ts';
import { decodeClientKey } from '../core/kms.ts';
import { getSplitOperator, type SplitOperator } from '../core/operators.ts';
import {
  homMode,
  type ItemRef,
  isChainMode,
  isMode,
  itemContext,
  type Mode,
  reconceal,
  shareSeed,
  splitMode,
} from '../core/protocol.ts';
import { ecElGamal } from '../core/schemes/ec-elgamal.ts';
import { getScheme } from '../core/schemes/index.ts';
import type { HomomorphicScheme } from '../core/schemes/scheme.ts';
import { checkThresholdParams, type ThresholdParams, verifyShare } from '../core/threshold.ts';
import { isKeyringId, issueTicket, verifyTicket } from '../core/ticket.ts';
import { nodeGeneratePrime } from '../platform/node-primes.ts';
import type { ApplianceRecord, BlinderRecord, KeyringRecord, Store } from '../store/types.ts';
import type { AuditLog } from './audit.ts';
import { type GroupJob, runGroupJob } from './group-ops.ts';
import { ImportService } from './imports.ts';
import type { GroupPool } from './pool.ts';

export interface Sealer {
  seal(name: string, plaintext: Uint8Array): Uint8Array;
  open(name: string, sealed: Uint8Array): Uint8Array;
}

export interface ManagerDeps {
  store: Store;
  sealer: Sealer;
  audit: AuditLog;
  /** Signs public keys handed to appliances so that their authenticity can be checked. */
  signKeyStatement: (statement: Uint8Array) => Uint8Array;
  /** Issues a client certificate for an enrolled appliance's identity key. */
  issueApplianceCertificate: (
    spkiDer: Uint8Array,
    applianceId: string,
    extra?: { oid: string; value: Uint8Array }[],
  ) => string;
  fingerprintOf: (spkiDer: Uint8Array) => string;
  /** Issues a blinder's certificate (server and client use) for its identity key (SPEC.md §5.4). */
  issueBlinderCertificate?: (spkiDer: Uint8Array, blinderId: string, hostnames: string[]) => string;
  now?: () => number;
  /** Vouching criterion (ii) by attestation document (default: refuse all, SPEC.md §5.7). */
  attestation?: AttestationVerifier;
  /** Cluster transfer timings (defaults: claims lapse after 30 s, voucher alone for 5 s). */
  cluster?: { claimTtlMs?: number; voucherGraceMs?: number };
  /**
   * Length of one "day" of a deletion's pending window, in ms (default 86 400 000). Tests shorten
   * it (BLINDFOLD_DELETION_DAY_MS) to see a deletion come due; production never sets it.
   */
  deletionDayMs?: number;
  /** Where the hot-path group operations run (default: inline, on the calling thread). */
  pool?: GroupPool;
}

/** Pending window of a scheduled keyring deletion, in days (SPEC.md §7.4). */
export const DELETION_MIN_DAYS = 7;
export const DELETION_MAX_DAYS = 30;

export interface CreateKeyringInput {
  name: string;
  mode: string;
  scheme?: string;
  /** hom3 (exactly one) and homN (two or more): blinder ids in request order (SPEC.md §5.4). */
  blinders?: string[];
  /** threshold mode only (SPEC.md §5.6): t-of-n and this node's index. */
  threshold?: ThresholdNode;
  /** threshold mode only: the dealt ticket and share keys, the same on every node. */
  ticketKey?: Uint8Array;
  shareKey?: Uint8Array;
}

/** A threshold keyring as one node sees it: t-of-n, and its own index j ∈ 1..n. */
export interface ThresholdNode extends ThresholdParams {
  index: number;
}

/** A node's Shamir share of an appliance's d_A, as dealt (SPEC.md §5.6). */
export interface DealtShareInput {
  index: number;
  value: Uint8Array;
  commitments: Uint8Array[];
}

/** A request relayed by the last blinder of a chain (SPEC.md §5.4). */
export interface ChainEnvelope {
  op: 'create' | 'recover';
  applianceId: string;
  keyring: string;
  /** Empty for a creation without an appliance-chosen id. */
  itemId: Uint8Array;
  masterVersion: number;
  managerVersion: number;
  entropy: Uint8Array;
  /** Empty for a creation. */
  ticket: Uint8Array;
  ttlSeconds: number;
  /** ec-elgamal: W = σ·T; empty otherwise. */
  aux: Uint8Array;
  issuedAt: number;
  nonce: Uint8Array;
  signature: Uint8Array;
  /** The ciphertext as the last blinder forwards it. */
  ciphertext: Uint8Array;
}

/** How long a signed chain request stays acceptable, either way of the manager's clock. */
export const CHAIN_REQUEST_WINDOW_MS = 120_000;
export const MAX_CHAIN_BLINDERS = 16;

export interface RecoverInput {
  keyring: string;
  itemId: Uint8Array;
  masterVersion: number;
  managerVersion: number;
  entropy: Uint8Array;
  ticket: Uint8Array;
  blinded?: Uint8Array;
  /** Client-blinded key U (SPEC.md §5.8): the answer is then Enc_U(Y), 64 bytes. */
  clientKey?: Uint8Array;
}

export interface CreateItemInput {
  keyring: string;
  /** Chosen by the appliance (16 random bytes) so that a retried creation is idempotent. */
  itemId?: Uint8Array;
  masterVersion: number;
  managerVersion?: number;
  entropy: Uint8Array;
  blinded?: Uint8Array;
  ttlSeconds?: number;
  /** Client-blinded key U (SPEC.md §5.8): the answer is then Enc_U(Y), 64 bytes. */
  clientKey?: Uint8Array;
}

interface KeyringKeys {
  ticketKey: Uint8Array;
  shareKey: Uint8Array;
}

/** An appliance's unsealed, decoded key material for one keyring version (cached). */
export type ApplianceKey =
  | { mode: 'split'; op: SplitOperator; r: Uint8Array }
  | {
      mode: 'hom2' | 'hom2-opt' | 'hom3' | 'homN';
      scheme: HomomorphicScheme;
      pk: unknown;
      sk: unknown;
      publicKey: Uint8Array;
      x: unknown | null; // X_A for hom2-opt
      /** sk and X_A encoded once, for the group jobs (src/manager/group-ops.ts). */
      skBytes: Uint8Array;
      xBytes: Uint8Array | null;
    }
  | { mode: 'threshold'; publicKey: Uint8Array; pk: Point; share: Scalar };

const DEFAULT_SCHEME: Record<Mode, string> = {
  split: 'xor',
  hom2: 'ec-elgamal',
  'hom2-opt': 'ec-elgamal',
  hom3: 'ec-elgamal',
  homN: 'ec-elgamal',
  threshold: 'ec-elgamal',
};

/** Binding of a ticket to every field of the item reference (SPEC.md §4.4). */
export function ticketBinding(ref: ItemRef): Uint8Array {
  return sha256(utf8('blindfold/v1/ticket-binding'), Uint8Array.of(0), itemContext(ref));
}

/** What the manager signs when it hands an appliance its public key (SPEC.md §5.1). */
export function keyStatement(
  applianceId: string,
  keyring: string,
  managerVersion: number,
  masterVersion: number,
  mode: string,
  scheme: string,
  publicKey: Uint8Array,
): Uint8Array {
  return concat(
    utf8('blindfold/v1/appliance-key'),
    Uint8Array.of(0),
    lp16(utf8(applianceId)),
    lp16(utf8(keyring)),
    u32be(managerVersion),
    u32be(masterVersion),
    lp16(utf8(mode)),
    lp16(utf8(scheme)),
    lp16(publicKey),
  );
}

function bad(message: string): BlindfoldError {
  return new BlindfoldError('ERR_INVALID_ARGUMENT', message);
}

export class Manager {
  /** Group (or modular) operations performed; tests read it to prove T6. */
  groupOps = 0;
  private readonly keyrings = new Map<string, KeyringRecord>();
  private readonly appliances = new Map<string, ApplianceRecord>();
  private readonly byFingerprint = new Map<string, string>();
  private readonly keyringKeys = new Map<string, KeyringKeys>();
  private readonly applianceKeys = new Map<string, ApplianceKey>();
  private readonly blinders = new Map<string, BlinderRecord>();
  private readonly blinderByFingerprint = new Map<string, string>();
  private readonly chains = new Map<string, string[]>();
  /** Nonces of signed chain requests seen within the window (replay refusal, SPEC.md §5.4). */
  private readonly seenNonces = new Map<string, number>();
  /** Appliances' identity keys (from their certificates) for chain-request signatures. */
  private readonly identityKeys = new Map<string, ReturnType<typeof createPublicKey>>();
  /** Threshold keyrings' (t, n, index), unsealed from `keyring/<k>/threshold` (SPEC.md §5.6). */
  private readonly thresholds = new Map<string, ThresholdNode>();
  private readonly now: () => number;

  /** Vouching, membership and re-concealment transfers (SPEC.md §5.7). */
  readonly cluster: ClusterService;
  /** Master-key imports from the web console (SPEC.md §5.9). */
  readonly imports: ImportService;

  private constructor(private readonly d: ManagerDeps) {
    this.now = d.now ?? Date.now;
    this.imports = new ImportService(this, {
      store: d.store,
      audit: d.audit,
      now: () => this.now(),
    });
    this.cluster = new ClusterService(this, {
      store: d.store,
      sealer: d.sealer,
      audit: d.audit,
      signKeyStatement: d.signKeyStatement,
      issueCertificate: (spki, id, extra) => d.issueApplianceCertificate(spki, id, extra),
      fingerprintOf: d.fingerprintOf,
      now: () => this.now(),
      attestation: d.attestation,
      claimTtlMs: d.cluster?.claimTtlMs,
      voucherGraceMs: d.cluster?.voucherGraceMs,
    });
  }

  static async open(deps: ManagerDeps): Promise<Manager> {
    const m = new Manager(deps);
    for (const k of await deps.store.listKeyrings()) m.keyrings.set(k.name, k);
    for (const a of await deps.store.listAppliances()) m.remember(a);
    await m.destroyDueKeyrings();
    await m.refreshChains();
    // Prove now, not at the first request, that the root key opens what is stored.
    for (const k of m.keyrings.values()) {
      if (k.status === 'deleted') continue;
      await m.keysFor(k.name, k.managerVersion);
      if (k.mode === 'threshold') await m.thresholdOf(k.name);
    }
    return m;
  }

  /**
   * Re-reads keyrings and appliances from the store. Replicas over one database call this
   * periodically (src/manager/run.ts), so a rotation or revocation made through one replica
   * reaches every other within the refresh interval; a revoked appliance's cached keys go.
   */
  async refresh(): Promise<void> {
    const [keyrings, appliances] = await Promise.all([
      this.d.store.listKeyrings(),
      this.d.store.listAppliances(),
    ]);
    for (const k of keyrings) this.keyrings.set(k.name, k);
    for (const a of appliances) {
      const before = this.appliances.get(a.id);
      this.remember(a);
      if (a.status === 'revoked' && before?.status !== 'revoked') this.dropApplianceKeys(a.id);
    }
    await this.destroyDueKeyrings();
    await this.refreshChains();
  }

  private async refreshChains(): Promise<void> {
    for (const b of await this.d.store.listBlinders()) {
      this.blinders.set(b.id, b);
      this.blinderByFingerprint.set(b.identityFingerprint, b.id);
    }
    for (const k of this.keyrings.values()) {
      if (!isChainMode(k.mode)) continue;
      const chain = await this.d.store.getKeyringChain(k.name);
      if (chain) this.chains.set(k.name, chain);
    }
  }

  private remember(a: ApplianceRecord): void {
    this.appliances.set(a.id, a);
    this.byFingerprint.set(a.identityFingerprint, a.id);
  }

  /** @internal Drops an appliance's cached keys (revocation, cluster transfers). */
  dropApplianceKeys(id: string): void {
    for (const key of [...this.applianceKeys.keys()]) {
      if (key.startsWith(`${id}|`)) this.applianceKeys.delete(key);
    }
  }

  // -- keyrings (operator) ---------------------------------------------------------------------

  async createKeyring(actor: string, input: CreateKeyringInput): Promise<KeyringRecord> {
    if (!isKeyringId(input.name)) {
      throw bad('keyring names are 1 to 64 characters of a-z, 0-9, ".", "_" and "-"');
    }
    if (!isMode(input.mode)) {
      throw new BlindfoldError(
        'ERR_UNSUPPORTED_SCHEME',
        `unknown mode "${input.mode}": use split, hom2, hom2-opt, hom3, homN or threshold`,
      );
    }
    const scheme = input.scheme ?? DEFAULT_SCHEME[input.mode];
    if (input.mode === 'split') getSplitOperator(scheme);
    else getScheme(scheme);
    const chain = this.checkChain(input.mode, input.blinders);
    const dealt = input.threshold !== undefined || input.ticketKey || input.shareKey;
    if (input.mode === 'threshold') {
      // Only EC-ElGamal has the exponent-acting share that lets nodes answer without decrypting
      // (SPEC.md §5.6); threshold decryption for the integer schemes is not specified.
      if (scheme !== 'ec-elgamal') {
        throw new BlindfoldError(
          'ERR_UNSUPPORTED_SCHEME',
          `threshold mode supports ec-elgamal only, not ${scheme}`,
        );
      }
      const th = input.threshold;
      if (!th || !input.ticketKey || !input.shareKey) {
        throw bad(
          'a threshold keyring needs threshold {t, n, index} and the dealt ticketKey and shareKey (use "blindfold up --threshold t/n" or SPEC.md §5.6)',
        );
      }
      checkThresholdParams(th);
      if (!Number.isInteger(th.index) || th.index < 1 || th.index > th.n) {
        throw bad(`the node index must be 1..${th.n}`);
      }
      if (input.ticketKey.length !== 32 || input.shareKey.length !== 32) {
        throw bad('dealt ticketKey and shareKey are 32 bytes each');
      }
    } else if (dealt) {
      throw bad('threshold, ticketKey and shareKey are for threshold keyrings only');
    }
    const now = this.now();
    const rec: KeyringRecord = {
      name: input.name,
      mode: input.mode,
      scheme,
      // No master yet: the first appliance that conceals one moves it to 1 (SPEC.md §5.5).
      masterVersion: 0,
      managerVersion: 1,
      status: 'enabled',
      createdAt: now,
      updatedAt: now,
      deletionAt: null,
    };
    if (input.mode === 'threshold') {
      await this.putDealtKeys(input.name, input.threshold!, input.ticketKey!, input.shareKey!);
    } else {
      await this.ensureKeyringKeys(input.name, 1);
    }
    if (chain) {
      // Written before the keyring: a keyring in a chain mode never exists without its chain (a
      // chain left behind by a failed creation is harmless and overwritten by the next one).
      if (this.keyrings.has(input.name)) {
        throw new BlindfoldError('ERR_CONFLICT', `a keyring named ${input.name} already exists`);
      }
      await this.d.store.setKeyringChain(input.name, chain, now);
    }
    try {
      await this.d.store.insertKeyring(rec);
    } catch (e) {
      if (e instanceof BlindfoldError && e.code === 'ERR_CONFLICT') {
        throw new BlindfoldError('ERR_CONFLICT', `a keyring named ${input.name} already exists`);
      }
      throw e;
    }
    this.keyrings.set(rec.name, rec);
    if (chain) this.chains.set(rec.name, chain);
    if (input.threshold) this.thresholds.set(rec.name, { ...input.threshold });
    await this.d.audit.record({
      actor,
      action: 'keyring.create',
      keyring: rec.name,
      keyVersion: 1,
    });
    return rec;
  }

  listKeyrings(): KeyringRecord[] {
    return [...this.keyrings.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  async describeKeyring(name: string) {
    const k = this.keyring(name);
    return { ...k, versions: await this.d.store.listKeyringVersions(name) };
  }

  /** A new manager-key version: new ticket and share keys; the old ones stay for old items. */
  async rotateKeyring(actor: string, name: string): Promise<KeyringRecord> {
    const k = await this.liveKeyring(name);
    this.checkNotPendingDeletion(k);
    if (k.mode === 'threshold') {
      // Every node must get the same new keys from a dealer; not built in this release (§5.6).
      throw new BlindfoldError(
        'ERR_UNSUPPORTED_SCHEME',
        'manager-key rotation of a threshold keyring is not implemented in this release (SPEC.md §5.6)',
      );
    }
    const next = k.managerVersion + 1;
    await this.ensureKeyringKeys(name, next);
    const now = this.now();
    await this.d.store.updateKeyring(
      name,
      { masterVersion: k.masterVersion, managerVersion: k.managerVersion },
      { managerVersion: next },
      now,
    );
    const rec = { ...k, managerVersion: next, updatedAt: now };
    this.keyrings.set(name, rec);
    await this.d.audit.record({ actor, action: 'keyring.rotate', keyring: name, keyVersion: next });
    return rec;
  }

  /** An appliance announces a new master-key version it generated (SPEC.md §5.5). */
  async bumpMasterVersion(actor: string, name: string, expected: number): Promise<KeyringRecord> {
    // A keyring's first master may come from any member (it holds nothing yet: that makes it
    // trusted, SPEC.md §5.7); a new version of an existing master only from a trusted one.
    const member = this.memberAppliance(actor);
    if (expected !== 0 || member.status !== 'enrolled') this.trustedAppliance(actor);
    const rec = await this.claimMasterVersion(actor, name, expected);
    if (member.status === 'enrolled') {
      await this.cluster.markTrusted(actor, actor, 'master', `created master 1 of keyring ${name}`);
    }
    return rec;
  }

  /**
   * The compare-and-swap on a keyring's master version (SPEC.md §5.5), audited under `actor`:
   * an appliance (bumpMasterVersion) or the operator preparing a console import (SPEC.md §5.9).
   */
  async claimMasterVersion(actor: string, name: string, expected: number): Promise<KeyringRecord> {
    const k = await this.liveKeyring(name);
    this.checkNotPendingDeletion(k);
    if (k.masterVersion !== expected) {
      throw new BlindfoldError(
        'ERR_CONFLICT',
        `keyring ${name} is at master version ${k.masterVersion}, not ${expected}`,
      );
    }
    const now = this.now();
    await this.d.store.updateKeyring(
      name,
      { masterVersion: k.masterVersion, managerVersion: k.managerVersion },
      { masterVersion: expected + 1 },
      now,
    );
    const rec = { ...k, masterVersion: expected + 1, updatedAt: now };
    this.keyrings.set(name, rec);
    await this.d.audit.record({
      actor,
      action: 'keyring.master-rotate',
      keyring: name,
      keyVersion: expected + 1,
    });
    return rec;
  }

  async setKeyringStatus(actor: string, name: string, status: 'enabled' | 'disabled') {
    const k = await this.liveKeyring(name);
    const now = this.now();
    await this.d.store.updateKeyring(
      name,
      { masterVersion: k.masterVersion, managerVersion: k.managerVersion },
      { status },
      now,
    );
    const rec = { ...k, status, updatedAt: now };
    this.keyrings.set(name, rec);
    await this.d.audit.record({
      actor,
      action: `keyring.${status === 'enabled' ? 'enable' : 'disable'}`,
      keyring: name,
    });
    return rec;
  }

  /**
   * Schedules a keyring's deletion `pendingDays` (7..30) from now (SPEC.md §7.4). Meanwhile the
   * keyring is unusable (every item creation and recovery is refused), which shows what still
   * depends on it while the deletion can be cancelled; when it comes due, its secrets are
   * destroyed and every item of it becomes unrecoverable.
   */
  async scheduleKeyringDeletion(
    actor: string,
    name: string,
    pendingDays = DELETION_MAX_DAYS,
  ): Promise<KeyringRecord> {
    if (
      !Number.isInteger(pendingDays) ||
      pendingDays < DELETION_MIN_DAYS ||
      pendingDays > DELETION_MAX_DAYS
    ) {
      throw bad(`pendingDays must be an integer from ${DELETION_MIN_DAYS} to ${DELETION_MAX_DAYS}`);
    }
    await this.liveKeyring(name);
    const now = this.now();
    const deletionAt = now + pendingDays * (this.d.deletionDayMs ?? 86_400_000);
    await this.d.store.setKeyringDeletion(name, deletionAt, now);
    const rec = await this.rereadKeyring(name);
    await this.d.audit.record({ actor, action: 'keyring.schedule-deletion', keyring: name });
    return rec;
  }

  /** Cancels a pending deletion; the keyring is usable again as before. */
  async cancelKeyringDeletion(actor: string, name: string): Promise<KeyringRecord> {
    await this.liveKeyring(name);
    await this.d.store.setKeyringDeletion(name, null, this.now());
    const rec = await this.rereadKeyring(name);
    await this.d.audit.record({ actor, action: 'keyring.cancel-deletion', keyring: name });
    return rec;
  }

  /** Destroys every keyring whose deletion came due (called at start and by the refresh loop). */
  async destroyDueKeyrings(): Promise<string[]> {
    const now = this.now();
    const done: string[] = [];
    for (const k of [...this.keyrings.values()]) {
      if (k.status === 'deleted' || k.deletionAt == null || k.deletionAt > now) continue;
      if (await this.destroyIfDue(k.name)) done.push(k.name);
    }
    return done;
  }

  private async destroyIfDue(name: string): Promise<boolean> {
    const destroyed = await this.d.store.destroyKeyring(name, this.now());
    await this.rereadKeyring(name);
    // Cached unsealed keys go too, whichever replica destroyed the secrets.
    for (const key of [...this.keyringKeys.keys()]) {
      if (key.startsWith(`${name}|`)) this.keyringKeys.delete(key);
    }
    for (const key of [...this.applianceKeys.keys()]) {
      if (key.split('|')[1] === name) this.applianceKeys.delete(key);
    }
    this.thresholds.delete(name);
    if (destroyed) {
      await this.d.audit.record({ actor: 'manager', action: 'keyring.destroy', keyring: name });
    }
    return destroyed;
  }

  private async rereadKeyring(name: string): Promise<KeyringRecord> {
    const k = await this.d.store.getKeyring(name);
    if (!k) throw new BlindfoldError('ERR_NOT_FOUND', `no keyring named ${name}`);
    this.keyrings.set(name, k);
    return k;
  }

  /** @internal The keyring, refused if it was deleted (destroying it first if its deletion is due). */
  async liveKeyring(name: string): Promise<KeyringRecord> {
    let k = this.keyring(name);
    if (k.status !== 'deleted' && k.deletionAt != null && k.deletionAt <= this.now()) {
      await this.destroyIfDue(name);
      k = this.keyring(name);
    }
    if (k.status === 'deleted') {
      throw new BlindfoldError(
        'ERR_FORBIDDEN',
        `keyring ${name} was deleted; its keys are destroyed`,
      );
    }
    return k;
  }

  private checkNotPendingDeletion(k: KeyringRecord): void {
    if (k.deletionAt != null) {
      throw new BlindfoldError(
        'ERR_FORBIDDEN',
        `keyring ${k.name} is scheduled for deletion at ${new Date(k.deletionAt).toISOString()}; cancel it with DELETE /v1/keyrings/${k.name}/deletion to use it again`,
      );
    }
  }

  /** Item creation and recovery need an enabled keyring that is not (to be) deleted. */
  private async usableKeyring(k: KeyringRecord): Promise<KeyringRecord> {
    const live = await this.liveKeyring(k.name);
    if (live.status !== 'enabled') {
      throw new BlindfoldError('ERR_FORBIDDEN', `keyring ${live.name} is disabled`);
    }
    this.checkNotPendingDeletion(live);
    return live;
  }

  // -- blinders and chains (SPEC.md §5.4) ------------------------------------------------------

  private checkChain(mode: string, blinders: string[] | undefined): string[] | undefined {
    if (!isChainMode(mode)) {
      if (blinders !== undefined) throw bad(`mode ${mode} takes no blinders`);
      return undefined;
    }
    const list = blinders ?? [];
    if (mode === 'hom3' && list.length !== 1) {
      throw bad('a hom3 keyring has exactly one blinder (use homN for more)');
    }
    if (mode === 'homN' && (list.length < 2 || list.length > MAX_CHAIN_BLINDERS)) {
      throw bad(`a homN keyring has 2 to ${MAX_CHAIN_BLINDERS} blinders (use hom3 for one)`);
    }
    if (new Set(list).size !== list.length) throw bad('a blinder appears twice in the chain');
    for (const id of list) {
      if (!this.blinders.has(id)) {
        throw new BlindfoldError('ERR_NOT_FOUND', `no blinder ${id}: register it first`);
      }
    }
    return [...list];
  }

  /** The operator registers a blinder's identity key; the manager CA certifies it. */
  async registerBlinder(
    actor: string,
    input: { name: string; publicKey: Uint8Array; hostnames?: string[] },
  ): Promise<{ blinderId: string; certificatePem: string }> {
    if (!this.d.issueBlinderCertificate) {
      throw new BlindfoldError('ERR_UNAVAILABLE', 'this manager cannot certify blinders');
    }
    let fpr: string;
    try {
      fpr = this.d.fingerprintOf(input.publicKey);
    } catch (cause) {
      throw new BlindfoldError('ERR_PARAMS', 'publicKey is not an ECDSA P-256 SPKI', { cause });
    }
    if (this.byFingerprint.has(fpr) || this.blinderByFingerprint.has(fpr)) {
      throw new BlindfoldError('ERR_CONFLICT', 'this identity key is already registered');
    }
    const blinderId = `bl-${fpr.slice(0, 16)}`;
    const certificatePem = this.d.issueBlinderCertificate(
      input.publicKey,
      blinderId,
      input.hostnames ?? [],
    );
    const now = this.now();
    const rec: BlinderRecord = {
      id: blinderId,
      name: input.name,
      identityFingerprint: fpr,
      certificatePem,
      url: '',
      createdAt: now,
      updatedAt: now,
    };
    await this.d.store.insertBlinder(rec);
    this.blinders.set(rec.id, rec);
    this.blinderByFingerprint.set(fpr, rec.id);
    await this.d.audit.record({ actor, action: 'blinder.register', item: blinderId });
    return { blinderId, certificatePem };
  }

  listBlinders(): BlinderRecord[] {
    return [...this.blinders.values()];
  }

  /** Every hom3/homN keyring's chain, blinder ids in request order (as last read). */
  listChains(): { keyring: string; blinders: string[] }[] {
    return [...this.chains].map(([keyring, blinders]) => ({ keyring, blinders: [...blinders] }));
  }

  /** Resolves an authenticated peer to a registered blinder (re-reading the store if unknown). */
  async blinderByPeer(fpr: string): Promise<BlinderRecord | undefined> {
    let id = this.blinderByFingerprint.get(fpr);
    if (id === undefined) {
      await this.refreshChains();
      id = this.blinderByFingerprint.get(fpr);
    }
    return id === undefined ? undefined : this.blinders.get(id);
  }

  /** A blinder announces where it listens (at every start: its port may change). */
  async announceBlinder(blinderId: string, url: string): Promise<void> {
    const now = this.now();
    await this.d.store.setBlinderUrl(blinderId, url, now);
    const b = this.blinders.get(blinderId);
    if (b) this.blinders.set(blinderId, { ...b, url, updatedAt: now });
    await this.d.audit.record({ actor: blinderId, action: 'blinder.announce', item: blinderId });
  }

  /** Appends a blinder to a homN keyring's chain; appliances then re-conceal through it. */
  async addKeyringBlinder(actor: string, keyring: string, blinderId: string) {
    const k = this.keyring(keyring);
    if (k.mode !== 'homN') {
      throw bad(`only homN keyrings take more blinders (${keyring} is ${k.mode})`);
    }
    const chain = [...(this.chains.get(keyring) ?? []), blinderId];
    this.checkChain('homN', chain);
    await this.d.store.setKeyringChain(keyring, chain, this.now());
    this.chains.set(keyring, chain);
    await this.d.audit.record({ actor, action: 'keyring.add-blinder', keyring, item: blinderId });
    return this.chainOf(keyring);
  }

  /** The ordered chain of a hom3/homN keyring with each blinder's URL and identity. */
  async chainOf(keyring: string) {
    const k = await this.keyringFresh(keyring);
    if (!isChainMode(k.mode)) throw bad(`keyring ${keyring} is in mode ${k.mode}, not hom3/homN`);
    let ids = this.chains.get(keyring);
    const known = () => (ids ?? []).every((id) => this.blinders.get(id)?.url);
    if (!ids || !known()) {
      await this.refreshChains();
      ids = this.chains.get(keyring);
    }
    if (!ids) throw new BlindfoldError('ERR_INTERNAL', `keyring ${keyring} has no chain`);
    return {
      keyring,
      mode: k.mode,
      scheme: k.scheme,
      blinders: ids.map((id) => {
        const b = this.blinders.get(id)!;
        return { id, url: b.url, fingerprint: b.identityFingerprint };
      }),
    };
  }

  /**
   * A request relayed by a chain's last blinder (SPEC.md §5.4): the caller must be that blinder;
   * the appliance's signature must verify under its enrolled identity, be fresh and unseen. Only
   * then does the request run as the appliance's own, with the relayed ciphertext.
   */
  async relay(
    peerFingerprint: string,
    e: ChainEnvelope,
    requestId?: string,
  ): Promise<{
    answer: Uint8Array;
    itemId?: Uint8Array;
    managerVersion?: number;
    ticket?: Uint8Array;
  }> {
    const b = await this.blinderByPeer(peerFingerprint);
    if (!b) throw new BlindfoldError('ERR_UNAUTHENTICATED', 'unknown blinder certificate');
    const k = await this.keyringFresh(e.keyring);
    const chain = this.chains.get(k.name);
    if (!isChainMode(k.mode) || !chain || chain[chain.length - 1] !== b.id) {
      throw new BlindfoldError(
        'ERR_FORBIDDEN',
        `blinder ${b.id} is not the last blinder of keyring ${e.keyring}`,
      );
    }
    const a = this.appliances.get(e.applianceId) ?? (await this.resolveById(e.applianceId));
    if (!a) throw new BlindfoldError('ERR_UNAUTHENTICATED', 'invalid appliance authorization');
    const statement = chainRequestStatement(e);
    let ok = false;
    try {
      let key = this.identityKeys.get(a.id);
      if (!key) {
        key = createPublicKey(a.certificatePem);
        this.identityKeys.set(a.id, key);
      }
      ok = verifySignature('sha256', statement, key, Buffer.from(e.signature));
    } catch {
      ok = false;
    }
    if (!ok) throw new BlindfoldError('ERR_UNAUTHENTICATED', 'invalid appliance authorization');
    const now = this.now();
    if (Math.abs(now - e.issuedAt) > CHAIN_REQUEST_WINDOW_MS) {
      throw new BlindfoldError(
        'ERR_UNAUTHENTICATED',
        'the appliance authorization is outside the accepted time window: check the clocks',
      );
    }
    const nonceKey = `${e.applianceId}|${toHex(e.nonce)}`;
    if (this.seenNonces.has(nonceKey)) {
      throw new BlindfoldError('ERR_CONFLICT', 'this signed request was already used (replay)');
    }
    if (this.seenNonces.size > 100_000) {
      for (const [n, exp] of this.seenNonces) if (exp < now) this.seenNonces.delete(n);
    }
    this.seenNonces.set(nonceKey, now + 2 * CHAIN_REQUEST_WINDOW_MS);
    const via = { aux: e.aux.length > 0 ? e.aux : undefined };
    if (e.op === 'create') {
      return this.createItem(
        e.applianceId,
        {
          keyring: e.keyring,
          itemId: e.itemId.length > 0 ? e.itemId : undefined,
          masterVersion: e.masterVersion,
          managerVersion: e.managerVersion,
          entropy: e.entropy,
          blinded: e.ciphertext,
          ttlSeconds: e.ttlSeconds,
        },
        via,
      );
    }
    return this.recover(
      e.applianceId,
      {
        keyring: e.keyring,
        itemId: e.itemId,
        masterVersion: e.masterVersion,
        managerVersion: e.managerVersion,
        entropy: e.entropy,
        ticket: e.ticket,
        blinded: e.ciphertext,
      },
      requestId,
      via,
    );
  }

  private async resolveById(id: string): Promise<ApplianceRecord | undefined> {
    const rec = await this.d.store.getAppliance(id);
    if (rec) this.remember(rec);
    return rec;
  }

  // -- appliances --------------------------------------------------------------------------------

  /** An operator invite (vouching criterion i by the operator); see ClusterService.createInvite. */
  async createEnrollment(
    actor: string,
    ttlSeconds = 3600,
    fingerprint: string | null = null,
    keyrings: string[] = [],
  ) {
    const out = await this.cluster.createInvite(actor, { ttlSeconds, fingerprint, keyrings });
    return { token: out.token, expiresAt: out.expiresAt };
  }

  /** Seed: an appliance is flagged trusted only after being vouched for (SPEC.md §5.7). */
  async enroll(input: ClusterEnrollInput) {
    return this.cluster.enroll(input);
  }

  /** @internal */
  applianceRecord(id: string): ApplianceRecord | undefined {
    return this.appliances.get(id);
  }

  /** @internal Caches a record the store accepted. */
  rememberAppliance(rec: ApplianceRecord): void {
    this.appliances.set(rec.id, rec);
  }

  listAppliances(): ApplianceRecord[] {
    return [...this.appliances.values()];
  }

  /** Revocation destroys the member's keys: everything stolen from it becomes useless (T5). */
  async revoke(actor: string, id: string) {
    if (!this.appliances.has(id)) throw new BlindfoldError('ERR_NOT_FOUND', `no appliance ${id}`);
    const now = this.now();
    await this.d.store.revokeAppliance(id, now);
    const rec = this.appliances.get(id)!;
    this.appliances.set(id, { ...rec, status: 'revoked', revokedAt: now });
    this.dropApplianceKeys(id);
    await this.cluster.onRevoked(actor, id);
    await this.imports.onRevoked(id);
    await this.d.audit.record({ actor, action: 'appliance.revoke', item: id });
  }

  /** Records a refusal that happened before a service method ran (e.g. a revoked caller). */
  auditRefusal(actor: string, action: string, code: string): void {
    void this.d.audit.enqueue({ actor, action, outcome: 'refused', code });
  }

  /** Resolves an authenticated peer (by certificate fingerprint) to an appliance record. */
  applianceByFingerprint(identityFingerprint: string): ApplianceRecord | undefined {
    const id = this.byFingerprint.get(identityFingerprint);
    return id === undefined ? undefined : this.appliances.get(id);
  }

  /** Like applianceByFingerprint, but an appliance enrolled through another replica is looked up. */
  async resolveAppliance(identityFingerprint: string): Promise<ApplianceRecord | undefined> {
    const hit = this.applianceByFingerprint(identityFingerprint);
    if (hit) return hit;
    await this.refresh();
    return this.applianceByFingerprint(identityFingerprint);
  }

  /** A member: enrolled (vouched for, no secret yet) or trusted; revoked ones are refused. */
  memberAppliance(id: string): ApplianceRecord {
    const a = this.appliances.get(id);
    if (!a) throw new BlindfoldError('ERR_UNAUTHENTICATED', 'unknown appliance');
    if (a.status === 'revoked') {
      throw new BlindfoldError('ERR_REVOKED', `appliance ${id} has been revoked`);
    }
    return a;
  }

  /**
   * memberAppliance, reading the record again from the store while it is cached as enrolled:
   * another replica may have made it trusted (a transfer or a first master) since (SPEC.md §5.7).
   */
  async memberFresh(id: string): Promise<ApplianceRecord> {
    if (this.appliances.get(id)?.status === 'enrolled') {
      const rec = await this.d.store.getAppliance(id);
      if (rec) this.appliances.set(id, rec);
    }
    return this.memberAppliance(id);
  }

  /** A trusted member: item creation, recovery, vouching and serving transfers need it. */
  trustedAppliance(id: string): ApplianceRecord {
    const a = this.memberAppliance(id);
    if (a.status !== 'trusted') {
      throw new BlindfoldError(
        'ERR_FORBIDDEN',
        `appliance ${id} is enrolled but not trusted yet: it becomes trusted when it has received a keyring's master from a member (or created a keyring's first master)`,
      );
    }
    return a;
  }

  // -- sub-process I: an appliance's key for a keyring version -----------------------------------

  async applianceKey(
    applianceId: string,
    keyringName: string,
    managerVersion: number,
    masterVersion: number,
    r?: Uint8Array,
    opts: { imported?: boolean; share?: DealtShareInput } = {},
  ) {
    // Enrolled members register keys too: for a keyring's first master, or to check the key a
    // transfer brought them. Only the operator hands out raw key material, so only an
    // operator-vouched appliance becomes trusted by importing it (SPEC.md §5.7).
    const member = this.memberAppliance(applianceId);
    if (opts.imported && member.status === 'enrolled' && member.vouchedBy !== 'operator') {
      throw new BlindfoldError(
        'ERR_FORBIDDEN',
        `appliance ${applianceId} was vouched for by ${member.vouchedBy}: it receives the master by transfer, not by import`,
      );
    }
    const k = await this.keyringFresh(keyringName, { managerVersion, masterVersion });
    await this.liveKeyring(keyringName);
    this.checkManagerVersion(k, managerVersion);
    this.checkMasterVersion(k, masterVersion);
    if (k.mode === 'threshold') {
      const out = await this.thresholdKey(member.id, k, managerVersion, masterVersion, opts.share);
      if (opts.imported && member.status === 'enrolled') {
        await this.cluster.markTrusted(
          applianceId,
          'operator',
          'import',
          `imported key material for master ${masterVersion} of keyring ${keyringName}`,
        );
      }
      return out;
    }
    if (opts.share) throw bad(`keyring ${k.name} is not a threshold keyring: no share`);
    let rec = await this.d.store.getApplianceKey(
      applianceId,
      keyringName,
      managerVersion,
      masterVersion,
    );
    if (!rec) {
      const now = this.now();
      let publicKey: Uint8Array = new Uint8Array(0);
      let secret: Uint8Array;
      if (k.mode === 'split') {
        const op = getSplitOperator(k.scheme);
        if (!r) throw bad('split mode: the appliance must send its blinding value r');
        op.check(r);
        secret = r;
      } else {
        const scheme = getScheme(k.scheme);
        const kp = scheme.generateKeyPair({ generatePrime: nodeGeneratePrime });
        publicKey = scheme.encodePublicKey(kp.publicKey);
        secret = scheme.encodeSecretKey(kp.secretKey);
      }
      const name = applianceSecretName(applianceId, keyringName, managerVersion, masterVersion);
      rec = await this.d.store.putApplianceKey({
        applianceId,
        keyring: keyringName,
        managerVersion,
        masterVersion,
        publicKey,
        sealedSecret: this.d.sealer.seal(name, secret),
        sealedExtra: null,
        createdAt: now,
      });
      secret.fill(0);
      await this.d.audit.record({
        actor: applianceId,
        action: 'appliance.key',
        keyring: keyringName,
        keyVersion: managerVersion,
      });
    } else if (k.mode === 'split' && r) {
      // Idempotent retry with the same r is fine; a different r would silently break items.
      const stored = this.d.sealer.open(
        applianceSecretName(applianceId, keyringName, managerVersion, masterVersion),
        rec.sealedSecret,
      );
      const same = equalBytes(stored, r);
      stored.fill(0);
      if (!same) {
        throw new BlindfoldError('ERR_CONFLICT', 'this appliance already registered a different r');
      }
    }
    const statement = keyStatement(
      applianceId,
      keyringName,
      managerVersion,
      masterVersion,
      k.mode,
      k.scheme,
      rec.publicKey,
    );
    if (opts.imported && member.status === 'enrolled') {
      await this.cluster.markTrusted(
        applianceId,
        'operator',
        'import',
        `imported key material for master ${masterVersion} of keyring ${keyringName}`,
      );
    }
    return {
      keyring: keyringName,
      managerVersion,
      masterVersion,
      mode: k.mode,
      scheme: k.scheme,
      publicKey: rec.publicKey,
      signature: this.d.signKeyStatement(statement),
    };
  }

  /** hom2-opt sub-process I: keep X_A = Dec(blind_β(Enc(M))), sealed. */
  async optSetup(
    applianceId: string,
    keyringName: string,
    managerVersion: number,
    masterVersion: number,
    blinded: Uint8Array,
  ) {
    this.memberAppliance(applianceId);
    const k = await this.keyringFresh(keyringName, { managerVersion, masterVersion });
    if (k.mode !== 'hom2-opt') throw bad(`keyring ${keyringName} is not in hom2-opt mode`);
    const key = await this.loadApplianceKey(applianceId, k, managerVersion, masterVersion);
    if (key.mode === 'split' || key.mode === 'threshold')
      throw new BlindfoldError('ERR_INTERNAL', 'mode mismatch');
    // X_A is set once: a second setup would let a live appliance swap in Enc(neutral) and, with
    // the integer schemes, read Q_i in the clear (SPEC.md §5.3).
    if (key.x !== null) {
      throw new BlindfoldError(
        'ERR_CONFLICT',
        'hom2-opt setup was already completed for this key version',
      );
    }
    const ct = key.scheme.decodeCiphertext(key.pk, blinded);
    this.groupOps++;
    const x = homMode.optSetup(key.scheme, key.sk, ct);
    const xBytes = key.scheme.encodePlaintext(key.pk, x);
    key.xBytes = xBytes.slice();
    const name = `${applianceSecretName(applianceId, keyringName, managerVersion, masterVersion)}/x`;
    await this.d.store.setApplianceKeyExtra(
      applianceId,
      keyringName,
      managerVersion,
      masterVersion,
      this.d.sealer.seal(name, xBytes),
    );
    xBytes.fill(0);
    key.x = x;
    await this.d.audit.record({
      actor: applianceId,
      action: 'appliance.opt-setup',
      keyring: keyringName,
      keyVersion: managerVersion,
    });
  }

  /**
   * Re-concealment of an appliance's master for a newer manager-key version (SPEC.md §5.5):
   * split: r' = r ⊕ δ is stored for the new version; hom modes: the blinded Enc_old(M·β) is
   * decrypted with the old key and encrypted under the new one. The manager sees only blinded
   * values.
   */
  async reconceal(
    applianceId: string,
    keyringName: string,
    fromVersion: number,
    toVersion: number,
    masterVersion: number,
    input: { delta?: Uint8Array; blinded?: Uint8Array },
  ): Promise<{ ciphertext?: Uint8Array }> {
    this.trustedAppliance(applianceId);
    const k = await this.keyringFresh(keyringName, { managerVersion: toVersion, masterVersion });
    if (isChainMode(k.mode)) {
      throw new BlindfoldError(
        'ERR_UNSUPPORTED_SCHEME',
        `keyring ${keyringName} is in mode ${k.mode}: re-concealment under a new manager key is not implemented for blinder chains; rotate the master key instead (SPEC.md §5.4)`,
      );
    }
    this.checkManagerVersion(k, fromVersion);
    this.checkManagerVersion(k, toVersion);
    if (toVersion <= fromVersion) throw bad('toVersion must be newer than fromVersion');
    const old = await this.loadApplianceKey(applianceId, k, fromVersion, masterVersion);
    let out: { ciphertext?: Uint8Array };
    if (old.mode === 'threshold') {
      throw new BlindfoldError(
        'ERR_UNSUPPORTED_SCHEME',
        're-concealment of a threshold keyring is not implemented in this release (SPEC.md §5.6)',
      );
    }
    if (old.mode === 'split') {
      if (!input.delta || input.blinded) throw bad('split mode re-concealment takes delta only');
      const r2 = reconceal.splitAnswer(old.op, old.r, input.delta);
      this.groupOps++;
      await this.applianceKey(applianceId, keyringName, toVersion, masterVersion, r2);
      r2.fill(0);
      out = {};
    } else {
      if (!input.blinded || input.delta)
        throw bad('re-concealment in hom modes takes blinded only');
      const transfer = old.scheme.transfer;
      if (!transfer) {
        throw new BlindfoldError(
          'ERR_UNSUPPORTED_SCHEME',
          `${k.scheme} cannot re-conceal a master under another key; rotate the master key instead`,
        );
      }
      const target = await this.loadApplianceKey(applianceId, k, toVersion, masterVersion);
      if (target.mode === 'split' || target.mode === 'threshold')
        throw new BlindfoldError('ERR_INTERNAL', 'mode mismatch');
      const ct = old.scheme.decodeCiphertext(old.pk, input.blinded);
      this.groupOps++;
      const re = transfer.reencrypt(old.sk, target.pk, ct);
      out = { ciphertext: target.scheme.encodeCiphertext(target.pk, re) };
    }
    await this.d.audit.record({
      actor: applianceId,
      action: 'appliance.reconceal',
      keyring: keyringName,
      keyVersion: toVersion,
    });
    return out;
  }

  // -- sub-process II: a new protected item -------------------------------------------------------

  async createItem(applianceId: string, input: CreateItemInput, via?: { aux?: Uint8Array }) {
    this.trustedAppliance(applianceId);
    const k = await this.usableKeyring(
      await this.keyringFresh(input.keyring, {
        managerVersion: input.managerVersion,
        masterVersion: input.masterVersion,
      }),
    );
    // An appliance creates items under the newest manager version it holds a concealment for.
    // Versions are never retired in this release, so an older one stays valid after a rotation
    // until the appliance re-conceals (SPEC.md §5.5).
    const managerVersion = input.managerVersion ?? k.managerVersion;
    this.checkManagerVersion(k, managerVersion);
    if (input.masterVersion < 1 || input.masterVersion > k.masterVersion) {
      throw bad(`master version ${input.masterVersion} does not exist for keyring ${k.name}`);
    }
    if (input.entropy.length > 64) throw bad('entropy is at most 64 bytes');
    const ttl = input.ttlSeconds ?? 0;
    if (!Number.isInteger(ttl) || ttl < 0) throw bad('ttlSeconds must be a non-negative integer');
    if (input.itemId !== undefined && input.itemId.length !== 16)
      throw bad('itemId must be 16 bytes');
    const itemId = input.itemId ?? new Uint8Array(randomBytes(16));
    const ref: ItemRef = {
      keyring: k.name,
      itemId,
      masterVersion: input.masterVersion,
      managerVersion,
      entropy: input.entropy,
    };
    const keys = await this.keysFor(k.name, managerVersion);
    const appKey = await this.loadApplianceKey(applianceId, k, managerVersion, input.masterVersion);
    const answer = await this.answer(appKey, keys, ref, input.blinded, via, input.clientKey);
    try {
      await this.d.store.insertItem({
        keyring: k.name,
        itemId,
        masterVersion: input.masterVersion,
        managerVersion,
        createdBy: applianceId,
        createdAt: this.now(),
      });
    } catch (e) {
      // A retry of the same creation (the client did not see our answer) gets the same answer:
      // the share is derived, so recomputing it is exact (SPEC.md §5.2). Anything else is a clash.
      if (!(e instanceof BlindfoldError && e.code === 'ERR_CONFLICT')) throw e;
      const prev = await this.d.store.getItem(k.name, itemId);
      if (
        !prev ||
        prev.createdBy !== applianceId ||
        prev.masterVersion !== input.masterVersion ||
        prev.managerVersion !== managerVersion
      ) {
        throw new BlindfoldError('ERR_CONFLICT', 'this item id is already in use; choose another');
      }
    }
    const ticket = issueTicket(keys.ticketKey, {
      ticketKeyVersion: managerVersion,
      keyring: k.name,
      itemId,
      keyVersion: managerVersion,
      expiresAt: ttl === 0 ? 0 : Math.floor(this.now() / 1000) + ttl,
      bindingHash: ticketBinding(ref),
    });
    await this.d.audit.record({
      actor: applianceId,
      action: 'item.create',
      keyring: k.name,
      item: toHex(itemId),
      keyVersion: managerVersion,
    });
    return { itemId, managerVersion, ticket, answer };
  }

  // -- sub-process III: access to an existing item ------------------------------------------------

  async recover(
    applianceId: string,
    input: RecoverInput,
    requestId?: string,
    via?: { aux?: Uint8Array },
  ) {
    const item = input.itemId.length === 16 ? toHex(input.itemId) : null;
    try {
      this.trustedAppliance(applianceId);
      const k = await this.usableKeyring(
        await this.keyringFresh(input.keyring, {
          managerVersion: input.managerVersion,
          masterVersion: input.masterVersion,
        }),
      );
      if (input.entropy.length > 64) throw bad('entropy is at most 64 bytes');
      if (input.itemId.length !== 16) throw bad('itemId must be 16 bytes');
      const ref: ItemRef = {
        keyring: k.name,
        itemId: input.itemId,
        masterVersion: input.masterVersion,
        managerVersion: input.managerVersion,
        entropy: input.entropy,
      };
      // T6: the ticket is checked before any secret key is touched or any group operation runs.
      const keys = await this.keysForExisting(k, input.managerVersion);
      verifyTicket(
        input.ticket,
        (v) => (v === input.managerVersion ? keys.ticketKey : undefined),
        {
          keyring: k.name,
          itemId: input.itemId,
          keyVersion: input.managerVersion,
          bindingHash: ticketBinding(ref),
        },
        Math.floor(this.now() / 1000),
      );
      const appKey = await this.loadApplianceKey(
        applianceId,
        k,
        input.managerVersion,
        input.masterVersion,
      );
      const answer = await this.answer(appKey, keys, ref, input.blinded, via, input.clientKey);
      await this.d.audit.record({
        actor: applianceId,
        action: 'item.recover',
        keyring: k.name,
        item,
        keyVersion: input.managerVersion,
        requestId: requestId ?? null,
      });
      return { answer };
    } catch (e) {
      const code = e instanceof BlindfoldError ? e.code : 'ERR_INTERNAL';
      this.d.audit.enqueue({
        actor: applianceId,
        action: 'item.recover',
        keyring: isKeyringId(input.keyring) ? input.keyring : null,
        item,
        keyVersion: Number.isInteger(input.managerVersion) ? input.managerVersion : null,
        outcome: code === 'ERR_INTERNAL' ? 'error' : 'refused',
        code,
        requestId: requestId ?? null,
      });
      throw e;
    }
  }

  // -- internals -------------------------------------------------------------------------------

  /**
   * The answer of sub-processes II and III (SPEC.md §5.3, §5.4). Called only after every check
   * (ticket included) passed. The item share q is derived here, on the main thread, from the
   * share key, which never leaves it; the group operation itself runs on the pool (group-ops.ts).
   */
  private async answer(
    key: ApplianceKey,
    keys: KeyringKeys,
    ref: ItemRef,
    blinded?: Uint8Array,
    via?: { aux?: Uint8Array },
    clientKey?: Uint8Array,
  ): Promise<Uint8Array> {
    let U: Point | undefined;
    if (clientKey !== undefined) {
      // Client-blinded keys exist only where the answer is a group element whose blind the
      // appliance can remove on a ciphertext: ec-elgamal in hom2 and hom2-opt (SPEC.md §5.8).
      if ((key.mode !== 'hom2' && key.mode !== 'hom2-opt') || key.scheme.id !== 'ec-elgamal') {
        throw new BlindfoldError(
          'ERR_UNSUPPORTED_SCHEME',
          'client-blinded keys need an ec-elgamal keyring in mode hom2 or hom2-opt',
        );
      }
      U = decodeClientKey(clientKey);
    }
    if (key.mode === 'hom3' || key.mode === 'homN') {
      // Only the keyring's last blinder may bring these requests (checked in relay): a direct
      // request would skip the blinders and let the appliance read M ⊕ R (SPEC.md §5.4).
      if (!via) {
        throw new BlindfoldError(
          'ERR_FORBIDDEN',
          `keyring ${ref.keyring} is in mode ${key.mode}: requests go through its blinders (POST /v1/chain/forward at the first blinder)`,
        );
      }
      if (blinded === undefined) throw bad('chain requests need the relayed ciphertext');
      // chainMode.answer, on the pool: ec-elgamal needs aux (W = σ·T), the others none.
      const ec = key.scheme.id === 'ec-elgamal';
      if (ec !== (via.aux !== undefined)) {
        throw new BlindfoldError(
          'ERR_INVALID_ARGUMENT',
          ec ? 'ec-elgamal chain requests need aux (W = σ·T)' : 'this scheme takes no aux',
        );
      }
      this.groupOps++;
      return this.runJob({
        op: 'hom2',
        scheme: key.scheme.id,
        pk: key.publicKey,
        sk: key.skBytes.slice(),
        blinded,
        q: this.shareBytes(key, keys, ref),
        ...(via.aux === undefined ? {} : { aux: via.aux }),
      });
    }
    if (via) throw bad(`mode ${key.mode} takes no relayed requests`);
    if (key.mode === 'threshold') {
      // SPEC.md §5.6: Y_j ‖ W_j = q_i·c2' ‖ (q_i·d_j)·c1'; this node never decrypts.
      if (blinded === undefined) throw bad('threshold mode needs the blinded concealed master');
      this.groupOps++;
      const seed = shareSeed(keys.shareKey, ref);
      const q = ecElGamal.shareFromSeed(key.pk, seed);
      seed.fill(0);
      const qBytes = ecElGamal.encodeShare(key.pk, q);
      q.fill(0);
      return this.runJob({
        op: 'threshold',
        scheme: 'ec-elgamal',
        pk: key.publicKey,
        sk: key.share.slice(),
        blinded,
        q: qBytes,
      });
    }
    if (key.mode === 'split') {
      if (blinded !== undefined) throw bad('split mode takes no blinded value');
      this.groupOps++;
      return splitMode.answer(key.op, key.r, keys.shareKey, ref);
    }
    // Client-blinded (KMS, SPEC.md §5.8): the worker encrypts the answer to U before it leaves.
    const client = U === undefined ? {} : { client: clientKey };
    if (key.mode === 'hom2') {
      if (blinded === undefined) throw bad('hom2 mode needs the blinded concealed master');
      this.groupOps++;
      return this.runJob({
        op: 'hom2',
        scheme: key.scheme.id,
        pk: key.publicKey,
        sk: key.skBytes.slice(),
        blinded,
        q: this.shareBytes(key, keys, ref),
        ...client,
      });
    }
    if (blinded !== undefined) throw bad('hom2-opt mode takes no blinded value');
    if (key.x === null || key.xBytes === null) {
      throw new BlindfoldError(
        'ERR_CONFLICT',
        'hom2-opt setup has not been completed for this appliance',
      );
    }
    this.groupOps++;
    return this.runJob({
      op: 'hom2-opt',
      scheme: key.scheme.id,
      pk: key.publicKey,
      x: key.xBytes.slice(),
      q: this.shareBytes(key, keys, ref),
      ...client,
    });
  }

  private runJob(job: GroupJob): Promise<Uint8Array> {
    return this.d.pool ? this.d.pool.run(job) : Promise.resolve(runGroupJob(job));
  }

  /** The item share q (SPEC.md §5.2), encoded; derived from the share key on this thread. */
  private shareBytes(
    key: Exclude<ApplianceKey, { mode: 'split' | 'threshold' }>,
    keys: KeyringKeys,
    ref: ItemRef,
  ): Uint8Array {
    const seed = shareSeed(keys.shareKey, ref);
    const q = key.scheme.shareFromSeed(key.pk, seed);
    seed.fill(0);
    const out = key.scheme.encodeShare(key.pk, q);
    if (q instanceof Uint8Array) q.fill(0);
    return out;
  }

  /**
   * Stores the dealt ticket and share keys of a threshold keyring and this node's (t, n, index),
   * each sealed under this node's own root key (SPEC.md §5.6). A repeated creation must bring
   * the same values: nodes holding different keys would derive different q_i.
   */
  private async putDealtKeys(
    name: string,
    th: ThresholdNode,
    ticketKey: Uint8Array,
    shareKey: Uint8Array,
  ): Promise<void> {
    const params = Uint8Array.of(th.t, th.n, th.index);
    for (const [which, value] of [
      ['ticket', ticketKey],
      ['share', shareKey],
      ['threshold', params],
    ] as const) {
      const secretName =
        which === 'threshold' ? `keyring/${name}/threshold` : `keyring/${name}/v1/${which}`;
      await this.d.store.putSecretIfAbsent(secretName, this.d.sealer.seal(secretName, value));
      const stored = await this.d.store.getSecret(secretName);
      const opened = stored ? this.d.sealer.open(secretName, stored) : new Uint8Array(0);
      const same = equalBytes(opened, value);
      opened.fill(0);
      if (!same) {
        throw new BlindfoldError(
          'ERR_CONFLICT',
          `keyring ${name} already holds different ${which} material on this node`,
        );
      }
    }
  }

  /** This node's (t, n, index) for a threshold keyring; undefined for other modes. */
  async thresholdOf(name: string): Promise<ThresholdNode | undefined> {
    const hit = this.thresholds.get(name);
    if (hit) return hit;
    const k = this.keyrings.get(name);
    if (k?.mode !== 'threshold') return undefined;
    const secretName = `keyring/${name}/threshold`;
    const sealed = await this.d.store.getSecret(secretName);
    if (!sealed) {
      // A destroyed keyring (§7.4) lost its sealed secrets, this one included.
      if (k.status === 'deleted') return undefined;
      throw new BlindfoldError('ERR_INTERNAL', `missing secret ${secretName}`);
    }
    const b = this.d.sealer.open(secretName, sealed);
    const th = { t: b[0]!, n: b[1]!, index: b[2]! };
    this.thresholds.set(name, th);
    return th;
  }

  /**
   * Threshold sub-process I at node j (SPEC.md §5.6): the appliance, as the dealer of its own
   * d_A, sends d_j with the Feldman commitments; the node checks them, seals d_j under its own
   * root key, and states D_A = A_0 like any hom key (signed by this node's CA).
   */
  private async thresholdKey(
    applianceId: string,
    k: KeyringRecord,
    managerVersion: number,
    masterVersion: number,
    share: DealtShareInput | undefined,
  ) {
    const th = await this.thresholdOf(k.name);
    if (!th) throw new BlindfoldError('ERR_INTERNAL', `keyring ${k.name} has no threshold`);
    if (!share) {
      throw bad(
        `keyring ${k.name} is a ${th.t}-of-${th.n} threshold keyring: send this node's share {index, value, commitments}`,
      );
    }
    if (share.index !== th.index) {
      throw bad(`this node is node ${th.index} of keyring ${k.name}, not node ${share.index}`);
    }
    if (share.commitments.length !== th.t) {
      throw bad(`a ${th.t}-of-${th.n} share comes with exactly ${th.t} commitments`);
    }
    const checked = verifyShare(share.index, share.value, share.commitments);
    checked.share.fill(0);
    const publicKey = share.commitments[0]!;
    const name = applianceSecretName(applianceId, k.name, managerVersion, masterVersion);
    let rec = await this.d.store.getApplianceKey(
      applianceId,
      k.name,
      managerVersion,
      masterVersion,
    );
    if (!rec) {
      rec = await this.d.store.putApplianceKey({
        applianceId,
        keyring: k.name,
        managerVersion,
        masterVersion,
        publicKey,
        sealedSecret: this.d.sealer.seal(name, share.value),
        sealedExtra: null,
        createdAt: this.now(),
      });
      await this.d.audit.record({
        actor: applianceId,
        action: 'appliance.key',
        keyring: k.name,
        keyVersion: managerVersion,
      });
    }
    // An idempotent retry brings the same share; anything else would silently break items.
    const stored = this.d.sealer.open(name, rec.sealedSecret);
    const same = equalBytes(stored, share.value) && equalBytes(rec.publicKey, publicKey);
    stored.fill(0);
    if (!same) {
      throw new BlindfoldError(
        'ERR_CONFLICT',
        'this appliance already registered a different share for this key version',
      );
    }
    return {
      keyring: k.name,
      managerVersion,
      masterVersion,
      mode: k.mode,
      scheme: k.scheme,
      publicKey: rec.publicKey,
      signature: this.d.signKeyStatement(
        keyStatement(
          applianceId,
          k.name,
          managerVersion,
          masterVersion,
          k.mode,
          k.scheme,
          rec.publicKey,
        ),
      ),
    };
  }

  /**
   * The keyring as this replica knows it, re-read from the store when it is unknown here or when
   * a request names a version newer than the cached one (another replica rotated it).
   */
  private async keyringFresh(
    name: string,
    want: { managerVersion?: number; masterVersion?: number } = {},
  ): Promise<KeyringRecord> {
    if (!isKeyringId(name)) throw bad('invalid keyring name');
    const cached = this.keyrings.get(name);
    if (
      cached &&
      (want.managerVersion ?? 0) <= cached.managerVersion &&
      (want.masterVersion ?? 0) <= cached.masterVersion
    ) {
      return cached;
    }
    const k = await this.d.store.getKeyring(name);
    if (!k) throw new BlindfoldError('ERR_NOT_FOUND', `no keyring named ${name}`);
    this.keyrings.set(name, k);
    return k;
  }

  /** @internal The cached keyring record (ERR_NOT_FOUND if unknown). */
  keyring(name: string): KeyringRecord {
    if (!isKeyringId(name)) throw bad('invalid keyring name');
    const k = this.keyrings.get(name);
    if (!k) throw new BlindfoldError('ERR_NOT_FOUND', `no keyring named ${name}`);
    return k;
  }

  private checkManagerVersion(k: KeyringRecord, v: number) {
    if (!Number.isInteger(v) || v < 1 || v > k.managerVersion) {
      throw new BlindfoldError(
        'ERR_NOT_FOUND',
        `keyring ${k.name} has no manager version ${v} (current: ${k.managerVersion})`,
      );
    }
  }

  private checkMasterVersion(k: KeyringRecord, v: number) {
    if (!Number.isInteger(v) || v < 1 || v > k.masterVersion) {
      throw new BlindfoldError(
        'ERR_NOT_FOUND',
        `keyring ${k.name} has no master version ${v} (current: ${k.masterVersion})`,
      );
    }
  }

  private async keysForExisting(k: KeyringRecord, v: number): Promise<KeyringKeys> {
    this.checkManagerVersion(k, v);
    return this.keysFor(k.name, v);
  }

  private async ensureKeyringKeys(name: string, v: number) {
    for (const which of ['ticket', 'share'] as const) {
      const secretName = `keyring/${name}/v${v}/${which}`;
      const key = new Uint8Array(randomBytes(32));
      await this.d.store.putSecretIfAbsent(secretName, this.d.sealer.seal(secretName, key));
      key.fill(0);
    }
  }

  private async keysFor(name: string, v: number): Promise<KeyringKeys> {
    const cacheKey = `${name}|${v}`;
    const hit = this.keyringKeys.get(cacheKey);
    if (hit) return hit;
    const open = async (which: string) => {
      const secretName = `keyring/${name}/v${v}/${which}`;
      const sealed = await this.d.store.getSecret(secretName);
      if (!sealed) throw new BlindfoldError('ERR_INTERNAL', `missing secret ${secretName}`);
      return this.d.sealer.open(secretName, sealed);
    };
    const keys = { ticketKey: await open('ticket'), shareKey: await open('share') };
    this.keyringKeys.set(cacheKey, keys);
    return keys;
  }

  /** @internal An appliance's unsealed key for a version (ERR_FORBIDDEN if it holds none). */
  async loadApplianceKey(
    applianceId: string,
    k: KeyringRecord,
    v: number,
    master: number,
  ): Promise<ApplianceKey> {
    const cacheKey = `${applianceId}|${k.name}|${v}|${master}`;
    const hit = this.applianceKeys.get(cacheKey);
    if (hit) return hit;
    const rec = await this.d.store.getApplianceKey(applianceId, k.name, v, master);
    if (!rec) {
      throw new BlindfoldError(
        'ERR_FORBIDDEN',
        `appliance ${applianceId} holds no key for keyring ${k.name} manager version ${v}, master version ${master}`,
      );
    }
    const name = applianceSecretName(applianceId, k.name, v, master);
    const secret = this.d.sealer.open(name, rec.sealedSecret);
    let key: ApplianceKey;
    if (k.mode === 'split') {
      key = { mode: 'split', op: getSplitOperator(k.scheme), r: secret };
    } else if (k.mode === 'threshold') {
      const scheme = getScheme('ec-elgamal');
      key = {
        mode: 'threshold',
        publicKey: rec.publicKey,
        pk: scheme.decodePublicKey(rec.publicKey) as Point,
        share: secret as Scalar,
      };
    } else {
      const scheme = getScheme(k.scheme);
      const sk = scheme.decodeSecretKey(secret);
      secret.fill(0);
      const pk = scheme.publicKeyOf(sk);
      let x: unknown = null;
      let xBytes: Uint8Array | null = null;
      if (rec.sealedExtra) {
        xBytes = this.d.sealer.open(`${name}/x`, rec.sealedExtra);
        x = scheme.decodePlaintext(pk, xBytes);
      }
      key = {
        mode: k.mode as 'hom2' | 'hom2-opt' | 'hom3' | 'homN',
        scheme,
        pk,
        sk,
        publicKey: rec.publicKey,
        x,
        skBytes: scheme.encodeSecretKey(sk),
        xBytes,
      };
    }
    this.applianceKeys.set(cacheKey, key);
    return key;
  }
}

export function applianceSecretName(
  applianceId: string,
  keyring: string,
  v: number,
  master: number,
): string {
  return `appliance/${applianceId}/${keyring}/v${v}/m${master}`;
}

export function newRequestId(): string {
  return randomUUID();
}

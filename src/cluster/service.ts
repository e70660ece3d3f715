/**
 * The manager's side of the cluster (SPEC.md §5.7; seed: vouching, "flagged trusted", re-concealment
 * of the secrets for a new computing resource): invites and credentials (the two vouching
 * criteria), enrollment with a membership certificate, membership history, and the relay of
 * re-concealment transfers.
 *
 * Life cycle of an appliance: 'enrolled' (vouched for, certified, no secret yet: it may call the
 * cluster routes and register keys) → 'trusted' (its first transfer completed, or it created a
 * keyring's first master, or an operator-vouched appliance imported key material) → 'revoked'.
 * Item creation and recovery need 'trusted'.
 *
 * Transfer of keyring K from a member A to a newcomer B, per (masterVersion, managerVersion) pair
 * A holds, none of it ever showing M to anyone:
 *   hom modes  A → manager: C' = blind(Enc_{D_A}(M)); manager: Enc_{D_B}(Dec_{d_A}(C')) (it sees
 *              only M ⊙ β, uniform) and B's signed key statement; A: unblindCiphertext →
 *              Enc_{D_B}(M).
 *   split      A → manager: δ; manager registers r_B = r_A ⊕ δ; A: (M ⊕ r_A) ⊕ δ = M ⊕ r_B.
 * A seals the results to B's identity key and signs them (package.ts); the manager stores the
 * package opaque and relays it; B opens it, re-randomizes (hom: fresh ciphertext randomness and,
 * hom2-opt, a fresh β with its own opt-setup; split: δ' so that r_B' = r_B ⊕ δ'), stores, and
 * acknowledges; the acknowledgement applies B's re-randomization, deletes the package, marks the
 * transfer done and B trusted, in one store transaction.
 *
 * Claims expire after `claimTtlMs` (30 s) so that a member that crashed mid-transfer is replaced
 * by another; the voucher is offered the transfer alone for `voucherGraceMs` first.
 */
import { createPublicKey, randomBytes, randomUUID, verify } from 'node:crypto';
import { fromB64u, toB64u, toHex, utf8 } from '../core/bytes.ts';
import { BlindfoldError, type ErrorCode } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';
import { getSplitOperator } from '../core/operators.ts';
import { homMode, reconceal } from '../core/protocol.ts';
import { getScheme } from '../core/schemes/index.ts';
import type { AuditLog } from '../manager/audit.ts';
import {
  applianceSecretName,
  keyStatement,
  type Manager,
  type Sealer,
} from '../manager/manager.ts';
import { nodeGeneratePrime } from '../platform/node-primes.ts';
import type {
  ApplianceRecord,
  CredentialRecord,
  KeyringRecord,
  MembershipEventRecord,
  Store,
  TransferRecord,
} from '../store/types.ts';
import {
  type AttestationVerifier,
  type CredentialKind,
  isCredentialKind,
  refuseAllAttestations,
  secretDigest,
} from './credentials.ts';
import {
  type Criterion,
  enrollProofInput,
  inviteId,
  membershipExtension,
  proofMaterial,
} from './membership.ts';

export interface ClusterDeps {
  store: Store;
  sealer: Sealer;
  audit: AuditLog;
  signKeyStatement: (statement: Uint8Array) => Uint8Array;
  issueCertificate: (
    spkiDer: Uint8Array,
    applianceId: string,
    extra: { oid: string; value: Uint8Array }[],
  ) => string;
  fingerprintOf: (spkiDer: Uint8Array) => string;
  now: () => number;
  attestation?: AttestationVerifier;
  /** A claim on a transfer lapses after this long (default 30 000 ms). */
  claimTtlMs?: number;
  /** A transfer is offered to its voucher alone for this long (default 5 000 ms). */
  voucherGraceMs?: number;
}

export interface EnrollInput {
  name: string;
  /** SPKI DER of the newcomer's ECDSA P-256 identity key. */
  publicKey: Uint8Array;
  /** ECDSA-P256-SHA256 (DER) by the identity key over `enrollProofInput(...)`. */
  proof?: Uint8Array;
  token?: string;
  credential?: { kind: CredentialKind; secret?: string; document?: Uint8Array };
}

export interface TransferView {
  id: string;
  target: string;
  keyring: string;
  voucher: string | null;
  status: string;
  claimedBy: string | null;
  versions: { masterVersion: number; managerVersion: number }[];
  createdAt: number;
  updatedAt: number;
  package?: string;
}

function bad(message: string): BlindfoldError {
  return new BlindfoldError('ERR_INVALID_ARGUMENT', message);
}

const TOKEN_REFUSED = 'invalid, used or expired enrollment token';
const APPLIANCE_ID = /^ap-[0-9a-f]{16}$/;

export class ClusterService {
  readonly claimTtlMs: number;
  readonly voucherGraceMs: number;
  private readonly attestation: AttestationVerifier;

  constructor(
    private readonly m: Manager,
    private readonly d: ClusterDeps,
  ) {
    this.claimTtlMs = d.claimTtlMs ?? 30_000;
    this.voucherGraceMs = d.voucherGraceMs ?? 5_000;
    this.attestation = d.attestation ?? refuseAllAttestations;
  }

  private event(
    applianceId: string,
    event: string,
    actor: string,
    criterion: string | null,
    detail: string | null,
  ): MembershipEventRecord {
    return { id: randomUUID(), applianceId, ts: this.d.now(), event, actor, criterion, detail };
  }

  /** Runs `f`; a refusal is audited with its code before it propagates (SPEC.md §8). */
  private async audited<T>(
    entry: { actor: string; action: string; keyring?: string | null; item?: string | null },
    f: () => Promise<T>,
  ): Promise<T> {
    try {
      return await f();
    } catch (e) {
      const code: ErrorCode = e instanceof BlindfoldError ? e.code : 'ERR_INTERNAL';
      await this.d.audit.enqueue({
        ...entry,
        outcome: code === 'ERR_INTERNAL' || code === 'ERR_STORAGE' ? 'error' : 'refused',
        code,
      });
      throw e;
    }
  }

  private keyringFor(name: string): KeyringRecord {
    const k = this.m.keyring(name);
    if (k.mode === 'hom3' || k.mode === 'homN') {
      throw new BlindfoldError(
        'ERR_UNSUPPORTED_SCHEME',
        `keyring ${name} is in mode ${k.mode}: moving a master between appliances through a blinder chain is not implemented (SPEC.md §5.4); give the newcomer the key material instead (appliance init --import-key)`,
      );
    }
    if (k.mode !== 'split' && !getScheme(k.scheme).transfer) {
      throw new BlindfoldError(
        'ERR_UNSUPPORTED_SCHEME',
        `keyring ${name} uses ${k.scheme}, which cannot move a master between appliances (SPEC.md §3.4): give the newcomer the key material instead (appliance init --import-key)`,
      );
    }
    return k;
  }

  private async holdsKeyring(applianceId: string, keyring: string): Promise<boolean> {
    return (await this.d.store.listApplianceKeys(applianceId, keyring)).length > 0;
  }

  // -- vouching criterion (i): invites ------------------------------------------------------------

  /**
   * A one-time enrollment token, created by the operator or by a trusted appliance (which
   * vouches with it for the appliance it sets up), optionally bound to the newcomer's identity
   * fingerprint, expiring, naming the keyrings whose master the newcomer will receive.
   */
  async createInvite(
    voucher: string,
    o: { ttlSeconds?: number; fingerprint?: string | null; keyrings?: string[] } = {},
  ) {
    return this.audited({ actor: voucher, action: 'enrollment.create' }, async () => {
      if (voucher !== 'operator') this.m.trustedAppliance(voucher);
      const ttl = o.ttlSeconds ?? 3600;
      if (!Number.isInteger(ttl) || ttl < 60 || ttl > 7 * 86400) {
        throw bad('ttlSeconds must be an integer between 60 and 604800');
      }
      const fingerprint = o.fingerprint ?? null;
      if (fingerprint !== null && !/^[0-9a-f]{64}$/.test(fingerprint)) {
        throw bad('fingerprint must be 64 lowercase hex characters (SHA-256 of the identity key)');
      }
      const keyrings = [...new Set(o.keyrings ?? [])];
      for (const name of keyrings) {
        const k = this.keyringFor(name);
        if (k.masterVersion < 1) {
          throw new BlindfoldError(
            'ERR_CONFLICT',
            `keyring ${name} has no master yet: leave it out, the newcomer creates it with "appliance init --keyring ${name}"`,
          );
        }
        if (voucher !== 'operator' && !(await this.holdsKeyring(voucher, name))) {
          throw new BlindfoldError(
            'ERR_FORBIDDEN',
            `${voucher} holds no master of keyring ${name}: a member can vouch only for keyrings it holds`,
          );
        }
      }
      const token = `bf-enroll-${toB64u(randomBytes(32))}`;
      const expiresAt = this.d.now() + ttl * 1000;
      await this.d.store.insertEnrollment({
        tokenHash: toHex(sha256(utf8(token))),
        createdBy: voucher,
        boundFingerprint: fingerprint,
        expiresAt,
        usedAt: null,
        usedBy: null,
        keyrings,
      });
      const invite = inviteId(token);
      await this.d.audit.record({ actor: voucher, action: 'enrollment.create', item: invite });
      return { token, expiresAt, invite, voucher, keyrings, fingerprint };
    });
  }

  // -- enrollment -------------------------------------------------------------------------------

  async enroll(input: EnrollInput) {
    let actor = 'anonymous';
    try {
      const fpr = this.d.fingerprintOf(input.publicKey);
      actor = `ap-${fpr.slice(0, 16)}`;
    } catch {
      // not a key: refused below with ERR_PARAMS, audited as anonymous
    }
    return this.audited({ actor, action: 'appliance.enroll' }, () => this.enrollChecked(input));
  }

  private async enrollChecked(input: EnrollInput) {
    if (!/^[\w.-]{1,64}$/.test(input.name)) {
      throw bad('appliance names are 1 to 64 characters of letters, digits, ".", "_" and "-"');
    }
    if ((input.token === undefined) === (input.credential === undefined)) {
      throw bad('enroll with either a token (criterion i) or a credential (criterion ii)');
    }
    let key: ReturnType<typeof createPublicKey>;
    try {
      key = createPublicKey({ key: Buffer.from(input.publicKey), format: 'der', type: 'spki' });
    } catch (cause) {
      throw new BlindfoldError('ERR_PARAMS', 'publicKey is not an SPKI public key', { cause });
    }
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new BlindfoldError('ERR_PARAMS', 'the identity key must be ECDSA P-256');
    }
    const fingerprint = this.d.fingerprintOf(input.publicKey);
    const id = `ap-${fingerprint.slice(0, 16)}`;
    // Proof of possession: nobody enrolls (or burns a credential) with another's identity key.
    const proofOk =
      input.proof !== undefined &&
      verify(
        'sha256',
        enrollProofInput(input.name, input.publicKey, proofMaterial(input)),
        { key, dsaEncoding: 'der' },
        input.proof,
      );
    if (!proofOk) {
      throw new BlindfoldError(
        'ERR_UNAUTHENTICATED',
        'missing or invalid proof of possession of the identity key',
      );
    }
    if (this.m.applianceByFingerprint(fingerprint) || (await this.d.store.getAppliance(id))) {
      throw new BlindfoldError('ERR_CONFLICT', `this identity key is already enrolled as ${id}`);
    }
    const now = this.d.now();
    let vouchedBy: string;
    let criterion: Criterion;
    let keyrings: string[];
    let consume: { enrollment: string } | { credential: string };
    let invite: string | undefined;
    let detail: string;
    if (input.token !== undefined) {
      const tokenHash = toHex(sha256(utf8(input.token)));
      const e = await this.d.store.getEnrollment(tokenHash);
      if (
        !e ||
        e.usedAt !== null ||
        e.expiresAt <= now ||
        (e.boundFingerprint !== null && e.boundFingerprint !== fingerprint)
      ) {
        // One message for unknown, replayed, expired and foreign tokens (no oracle).
        throw new BlindfoldError('ERR_UNAUTHENTICATED', TOKEN_REFUSED);
      }
      if (e.createdBy !== 'operator') {
        const v = this.m.applianceRecord(e.createdBy);
        if (!v || v.status === 'revoked') {
          throw new BlindfoldError(
            'ERR_REVOKED',
            `the appliance that vouched for this enrollment (${e.createdBy}) has been revoked`,
          );
        }
        if (v.status !== 'trusted') {
          throw new BlindfoldError(
            'ERR_FORBIDDEN',
            `the appliance that vouched for this enrollment (${e.createdBy}) is not trusted`,
          );
        }
      }
      vouchedBy = e.createdBy;
      criterion = e.createdBy === 'operator' ? 'operator' : 'token';
      keyrings = e.keyrings ?? [];
      consume = { enrollment: tokenHash };
      invite = inviteId(input.token);
      detail = `invite ${invite}${e.boundFingerprint ? ' (bound to the identity key)' : ''}`;
    } else {
      const c = input.credential!;
      let value: string;
      if (c.kind === 'fingerprint') value = fingerprint;
      else if (c.kind === 'secret') {
        if (!c.secret) throw bad('a secret credential needs the secret');
        value = secretDigest(c.secret);
      } else {
        if (!c.document) throw bad('an attestation credential needs the document');
        value = await this.attestation.verify(c.document, {
          identityFingerprint: fingerprint,
          name: input.name,
          now,
        });
      }
      const cred = await this.d.store.findCredential(c.kind, value);
      if (!cred || cred.uses >= cred.maxUses) {
        throw new BlindfoldError(
          'ERR_UNAUTHENTICATED',
          'the credential is not in the credentials database (or was used up)',
        );
      }
      vouchedBy = 'manager';
      criterion = 'credential';
      keyrings = cred.keyrings;
      consume = { credential: cred.id };
      detail = `credential ${cred.id} (${cred.kind})`;
    }
    const keyringRecs = keyrings.map((k) => this.keyringFor(k));
    const certificatePem = this.d.issueCertificate(input.publicKey, id, [
      membershipExtension({ v: 1, applianceId: id, vouchedBy, criterion, issuedAt: now, invite }),
    ]);
    const rec: ApplianceRecord = {
      id,
      name: input.name,
      identityFingerprint: fingerprint,
      certificatePem,
      status: 'enrolled',
      vouchedBy,
      criterion,
      createdAt: now,
      revokedAt: null,
    };
    const voucher = APPLIANCE_ID.test(vouchedBy) ? vouchedBy : null;
    const transfers: TransferRecord[] = keyringRecs.map((k) => ({
      id: `tr-${toHex(randomBytes(12))}`,
      target: id,
      keyring: k.name,
      voucher,
      status: 'pending',
      claimedBy: null,
      claimedAt: null,
      versions: [],
      package: null,
      createdAt: now,
      updatedAt: now,
      doneAt: null,
    }));
    try {
      await this.d.store.enrollAppliance({
        appliance: rec,
        consume,
        now,
        events: [this.event(id, 'vouched', vouchedBy, criterion, detail)],
        transfers,
      });
    } catch (e) {
      if (e instanceof BlindfoldError && e.code === 'ERR_CONFLICT' && 'enrollment' in consume) {
        throw new BlindfoldError('ERR_UNAUTHENTICATED', TOKEN_REFUSED);
      }
      throw e;
    }
    this.m.rememberAppliance(rec);
    await this.d.audit.record({
      actor: id,
      action: 'appliance.enroll',
      item: 'enrollment' in consume ? (invite ?? null) : consume.credential,
    });
    for (const t of transfers) {
      await this.d.audit.record({
        actor: vouchedBy,
        action: 'transfer.create',
        keyring: t.keyring,
        item: t.id,
      });
    }
    return {
      applianceId: id,
      certificatePem,
      status: rec.status,
      vouchedBy,
      criterion,
      transfers: transfers.map((t) => ({ id: t.id, keyring: t.keyring })),
    };
  }

  // -- vouching criterion (ii): the credentials database (operator) -------------------------------

  async addCredential(
    actor: string,
    o: { kind: string; value?: string; label?: string; keyrings?: string[]; maxUses?: number },
  ) {
    return this.audited({ actor, action: 'credential.add' }, async () => {
      if (!isCredentialKind(o.kind)) {
        throw bad('credential kind must be fingerprint, secret or attestation');
      }
      let value: string;
      let secret: string | undefined;
      if (o.kind === 'fingerprint') {
        if (!o.value || !/^[0-9a-f]{64}$/.test(o.value)) {
          throw bad('a fingerprint credential is 64 lowercase hex characters');
        }
        value = o.value;
      } else if (o.kind === 'secret') {
        // Generated here unless given; stored as SHA-256 only, shown to the operator once.
        secret = o.value ?? `bf-psk-${toB64u(randomBytes(32))}`;
        if (secret.length < 16) throw bad('a pre-shared secret has at least 16 characters');
        value = secretDigest(secret);
      } else {
        if (!o.value || o.value.length > 256)
          throw bad('an attestation credential names a subject');
        value = o.value;
      }
      const maxUses = o.maxUses ?? 1;
      if (!Number.isInteger(maxUses) || maxUses < 1 || maxUses > 1_000_000) {
        throw bad('maxUses must be an integer between 1 and 1000000');
      }
      const keyrings = [...new Set(o.keyrings ?? [])];
      for (const k of keyrings) this.keyringFor(k);
      const rec: CredentialRecord = {
        id: `cr-${toHex(randomBytes(8))}`,
        kind: o.kind,
        value,
        label: o.label ?? '',
        keyrings,
        maxUses,
        uses: 0,
        createdBy: actor,
        createdAt: this.d.now(),
      };
      try {
        await this.d.store.insertCredential(rec);
      } catch (e) {
        if (e instanceof BlindfoldError && e.code === 'ERR_CONFLICT') {
          throw new BlindfoldError('ERR_CONFLICT', 'this credential is already in the database');
        }
        throw e;
      }
      await this.d.audit.record({ actor, action: 'credential.add', item: rec.id });
      return { credential: credentialView(rec), ...(secret ? { secret } : {}) };
    });
  }

  async listCredentials() {
    return (await this.d.store.listCredentials()).map(credentialView);
  }

  async removeCredential(actor: string, id: string) {
    return this.audited({ actor, action: 'credential.remove', item: id }, async () => {
      if (!(await this.d.store.deleteCredential(id))) {
        throw new BlindfoldError('ERR_NOT_FOUND', `no credential ${id}`);
      }
      await this.d.audit.record({ actor, action: 'credential.remove', item: id });
    });
  }

  // -- membership ---------------------------------------------------------------------------------

  async members() {
    const events = await this.d.store.listMembershipEvents();
    return this.m.listAppliances().map((a) => ({
      id: a.id,
      name: a.name,
      identityFingerprint: a.identityFingerprint,
      status: a.status,
      vouchedBy: a.vouchedBy,
      criterion: a.criterion,
      createdAt: a.createdAt,
      revokedAt: a.revokedAt,
      history: events
        .filter((e) => e.applianceId === a.id)
        .map((e) => ({
          ts: e.ts,
          event: e.event,
          actor: e.actor,
          criterion: e.criterion,
          detail: e.detail,
        })),
    }));
  }

  /** enrolled → trusted, recorded and audited (a no-op for a member that is trusted already). */
  async markTrusted(id: string, actor: string, criterion: string, detail: string) {
    const a = this.m.applianceRecord(id);
    if (a?.status !== 'enrolled') return;
    await this.d.store.setApplianceStatus(
      id,
      ['enrolled'],
      'trusted',
      this.event(id, 'trusted', actor, criterion, detail),
    );
    this.m.rememberAppliance({ ...a, status: 'trusted' });
    await this.d.audit.record({ actor, action: 'appliance.trusted', item: id });
  }

  /** After a revocation: its open transfers go, and claims or packages it made are dropped. */
  async onRevoked(actor: string, id: string) {
    await this.d.store.cancelTransfers(id);
    const now = this.d.now();
    for (const t of await this.d.store.listOpenTransfers()) {
      if (t.claimedBy === id && (t.status === 'claimed' || t.status === 'sealed')) {
        await this.d.store.resetTransfer(t.id, [t.status], now).catch(() => {});
      }
    }
    await this.d.store.appendMembershipEvent(this.event(id, 'revoked', actor, null, null));
  }

  // -- transfers ---------------------------------------------------------------------------------

  /** The newcomer asks for a keyring's master (idempotent: an open transfer is returned). */
  async requestTransfer(target: string, keyring: string): Promise<TransferView> {
    return this.audited({ actor: target, action: 'transfer.create', keyring }, async () => {
      const a = this.m.memberAppliance(target);
      const k = this.keyringFor(keyring);
      if (k.masterVersion < 1) {
        throw new BlindfoldError(
          'ERR_CONFLICT',
          `keyring ${keyring} has no master yet: create it with "appliance init --keyring ${keyring}"`,
        );
      }
      const existing = await this.d.store.listTransfers(target, keyring);
      if (existing.some((t) => t.status === 'done')) {
        throw new BlindfoldError(
          'ERR_CONFLICT',
          `${target} already received the master of keyring ${keyring}`,
        );
      }
      const open = existing.find((t) => t.status !== 'done');
      if (open) return transferView(open, target);
      const now = this.d.now();
      const t: TransferRecord = {
        id: `tr-${toHex(randomBytes(12))}`,
        target,
        keyring,
        voucher: APPLIANCE_ID.test(a.vouchedBy) ? a.vouchedBy : null,
        status: 'pending',
        claimedBy: null,
        claimedAt: null,
        versions: [],
        package: null,
        createdAt: now,
        updatedAt: now,
        doneAt: null,
      };
      await this.d.store.insertTransfer(t);
      await this.d.audit.record({
        actor: target,
        action: 'transfer.create',
        keyring,
        item: t.id,
      });
      return transferView(t, target);
    });
  }

  /**
   * One cheap poll for an appliance's cluster loop: transfers it may serve (it is trusted, holds
   * the keyring, and the transfer is open to it) and its own transfers as a newcomer.
   */
  async work(caller: string): Promise<{ serve: TransferView[]; receive: TransferView[] }> {
    const a = this.m.memberAppliance(caller);
    const open = await this.d.store.listOpenTransfers();
    const receive = open.filter((t) => t.target === caller).map((t) => transferView(t, caller));
    const serve: TransferView[] = [];
    if (a.status === 'trusted') {
      const now = this.d.now();
      const holds = new Map<string, boolean>();
      for (const t of open) {
        if (t.target === caller || !this.claimable(t, caller, now)) continue;
        if (!holds.has(t.keyring)) holds.set(t.keyring, await this.holdsKeyring(caller, t.keyring));
        if (holds.get(t.keyring)) serve.push(transferView(t, caller));
      }
    }
    return { serve, receive };
  }

  private claimable(t: TransferRecord, caller: string, now: number): boolean {
    const open =
      t.status === 'pending' ||
      (t.status === 'claimed' &&
        (t.claimedBy === caller || (t.claimedAt ?? 0) < now - this.claimTtlMs));
    return open && this.offeredTo(t, caller, now);
  }

  /** The voucher first: others only after the grace period, or when the voucher cannot serve. */
  private offeredTo(t: TransferRecord, caller: string, now: number): boolean {
    if (!t.voucher || t.voucher === caller) return true;
    if (now - t.createdAt >= this.voucherGraceMs) return true;
    return this.m.applianceRecord(t.voucher)?.status !== 'trusted';
  }

  private async transferFor(id: string): Promise<TransferRecord> {
    const t = await this.d.store.getTransfer(id);
    if (!t) throw new BlindfoldError('ERR_NOT_FOUND', `no transfer ${id}`);
    return t;
  }

  async claim(caller: string, id: string) {
    return this.audited({ actor: caller, action: 'transfer.claim', item: id }, async () => {
      this.m.trustedAppliance(caller);
      const t = await this.transferFor(id);
      if (t.target === caller)
        throw new BlindfoldError('ERR_FORBIDDEN', 'a newcomer cannot serve itself');
      const k = this.keyringFor(t.keyring);
      const target = this.m.applianceRecord(t.target);
      if (!target || target.status === 'revoked') {
        throw new BlindfoldError('ERR_REVOKED', `appliance ${t.target} has been revoked`);
      }
      if (!(await this.holdsKeyring(caller, t.keyring))) {
        throw new BlindfoldError(
          'ERR_FORBIDDEN',
          `${caller} holds no master of keyring ${t.keyring}`,
        );
      }
      const now = this.d.now();
      if (!this.offeredTo(t, caller, now)) {
        throw new BlindfoldError(
          'ERR_CONFLICT',
          `transfer ${id} is reserved for its voucher ${t.voucher} for a few more seconds`,
        );
      }
      const c = await this.d.store.claimTransfer(id, caller, now, now - this.claimTtlMs);
      await this.d.audit.record({
        actor: caller,
        action: 'transfer.claim',
        keyring: t.keyring,
        item: id,
      });
      return {
        ...transferView(c, caller),
        mode: k.mode,
        scheme: k.scheme,
        targetCertificatePem: target.certificatePem,
        claimTtlMs: this.claimTtlMs,
      };
    });
  }

  /**
   * The manager's step of one version pair: it sees only the blinded M ⊙ β (hom) or the
   * uniform δ (split), and answers with Enc_{D_B}(M ⊙ β) and B's signed key statement.
   */
  async reencrypt(
    caller: string,
    id: string,
    o: { masterVersion: number; managerVersion: number; blinded?: Uint8Array; delta?: Uint8Array },
  ): Promise<{ ciphertext?: Uint8Array; publicKey?: Uint8Array; signature?: Uint8Array }> {
    return this.audited({ actor: caller, action: 'transfer.reencrypt', item: id }, async () => {
      this.m.trustedAppliance(caller);
      const t = await this.transferFor(id);
      if (t.status !== 'claimed' || t.claimedBy !== caller) {
        throw new BlindfoldError('ERR_CONFLICT', `${caller} does not hold the claim on ${id}`);
      }
      const k = this.keyringFor(t.keyring);
      const mine = await this.m.loadApplianceKey(caller, k, o.managerVersion, o.masterVersion);
      if (mine.mode === 'threshold') {
        // Moving a master between appliances would need t nodes to re-encrypt (SPEC.md §5.6).
        throw new BlindfoldError(
          'ERR_UNSUPPORTED_SCHEME',
          'cluster transfers of a threshold keyring are not implemented in this release',
        );
      }
      const now = this.d.now();
      const stale = now - this.claimTtlMs;
      const version = { masterVersion: o.masterVersion, managerVersion: o.managerVersion };
      const name = applianceSecretName(t.target, k.name, o.managerVersion, o.masterVersion);
      let out: { ciphertext?: Uint8Array; publicKey?: Uint8Array; signature?: Uint8Array };
      if (mine.mode === 'split') {
        if (!o.delta || o.blinded) throw bad('split mode transfers take delta only');
        const rB = reconceal.splitAnswer(mine.op, mine.r, o.delta);
        this.m.groupOps++;
        const key = {
          applianceId: t.target,
          keyring: k.name,
          managerVersion: o.managerVersion,
          masterVersion: o.masterVersion,
          publicKey: new Uint8Array(0),
          sealedSecret: this.d.sealer.seal(name, rB),
          sealedExtra: null,
          createdAt: now,
        };
        rB.fill(0);
        await this.d.store.transferStep(id, caller, stale, now, { key, version });
        out = {};
      } else {
        if (!o.blinded || o.delta) throw bad('transfers in hom modes take blinded only');
        const transfer = mine.scheme.transfer!;
        const scheme = mine.scheme;
        const existing = await this.d.store.getApplianceKey(
          t.target,
          k.name,
          o.managerVersion,
          o.masterVersion,
        );
        let publicKey: Uint8Array;
        let pkB: unknown;
        let newKey: Parameters<Store['putApplianceKey']>[0] | undefined;
        if (existing) {
          publicKey = existing.publicKey;
          pkB = scheme.decodePublicKey(publicKey);
        } else {
          const kp = scheme.generateKeyPair({ generatePrime: nodeGeneratePrime });
          publicKey = scheme.encodePublicKey(kp.publicKey);
          pkB = kp.publicKey;
          const secret = scheme.encodeSecretKey(kp.secretKey);
          newKey = {
            applianceId: t.target,
            keyring: k.name,
            managerVersion: o.managerVersion,
            masterVersion: o.masterVersion,
            publicKey,
            sealedSecret: this.d.sealer.seal(name, secret),
            sealedExtra: null,
            createdAt: now,
          };
          secret.fill(0);
        }
        const ct = scheme.decodeCiphertext(mine.pk, o.blinded);
        this.m.groupOps++;
        const re = transfer.reencrypt(mine.sk, pkB, ct);
        const statement = keyStatement(
          t.target,
          k.name,
          o.managerVersion,
          o.masterVersion,
          k.mode,
          k.scheme,
          publicKey,
        );
        await this.d.store.transferStep(id, caller, stale, now, { key: newKey, version });
        out = {
          ciphertext: scheme.encodeCiphertext(pkB, re),
          publicKey,
          signature: this.d.signKeyStatement(statement),
        };
      }
      this.m.dropApplianceKeys(t.target);
      await this.d.audit.record({
        actor: caller,
        action: 'transfer.reencrypt',
        keyring: k.name,
        item: id,
        keyVersion: o.managerVersion,
      });
      return out;
    });
  }

  /** The sealed package: stored opaque, relayed to the target, deleted at its acknowledgement. */
  async deliver(caller: string, id: string, pkg: string) {
    return this.audited({ actor: caller, action: 'transfer.package', item: id }, async () => {
      this.m.trustedAppliance(caller);
      const t = await this.transferFor(id);
      if (t.versions.length === 0) {
        throw bad('re-conceal at least one version for the target before sending the package');
      }
      const now = this.d.now();
      await this.d.store.transferStep(id, caller, now - this.claimTtlMs, now, { pkg });
      await this.d.audit.record({
        actor: caller,
        action: 'transfer.package',
        keyring: t.keyring,
        item: id,
      });
    });
  }

  /** The claimer gives up (e.g. the target's certificate did not verify): audited, reopened. */
  async release(caller: string, id: string, code: string) {
    const t = await this.transferFor(id);
    if (t.claimedBy !== caller || t.status !== 'claimed') {
      throw new BlindfoldError('ERR_CONFLICT', `${caller} does not hold the claim on ${id}`);
    }
    await this.d.store.resetTransfer(id, ['claimed'], this.d.now());
    await this.d.audit.record({
      actor: caller,
      action: 'transfer.release',
      keyring: t.keyring,
      item: id,
      outcome: 'refused',
      code,
    });
  }

  /** The target refuses a package (bad signature, forged sender): audited, reopened for another. */
  async reject(caller: string, id: string, code: string) {
    this.m.memberAppliance(caller);
    const t = await this.transferFor(id);
    if (t.target !== caller)
      throw new BlindfoldError('ERR_FORBIDDEN', `${id} is not for ${caller}`);
    await this.d.store.resetTransfer(id, ['sealed'], this.d.now());
    await this.d.audit.record({
      actor: caller,
      action: 'transfer.reject',
      keyring: t.keyring,
      item: id,
      outcome: 'refused',
      code,
    });
  }

  /**
   * The target stored its re-randomized concealments: apply its re-randomization (split r_B ⊕ δ',
   * hom2-opt X_B from its own blinded copy), drop the package, mark the transfer done and the
   * target trusted: one transaction.
   */
  async ack(
    caller: string,
    id: string,
    concealments: {
      masterVersion: number;
      managerVersion: number;
      delta?: Uint8Array;
      blinded?: Uint8Array;
    }[],
  ) {
    return this.audited({ actor: caller, action: 'transfer.complete', item: id }, async () => {
      const a = this.m.memberAppliance(caller);
      const t = await this.transferFor(id);
      if (t.target !== caller)
        throw new BlindfoldError('ERR_FORBIDDEN', `${id} is not for ${caller}`);
      if (t.status !== 'sealed') {
        throw new BlindfoldError('ERR_CONFLICT', `transfer ${id} is ${t.status}, not sealed`);
      }
      const k = this.keyringFor(t.keyring);
      const keyOf = (c: { masterVersion: number; managerVersion: number }) =>
        `${c.masterVersion}/${c.managerVersion}`;
      const want = new Set(t.versions.map(keyOf));
      const got = new Set(concealments.map(keyOf));
      if (
        want.size !== got.size ||
        got.size !== concealments.length ||
        [...want].some((x) => !got.has(x))
      ) {
        throw bad(`acknowledge exactly the versions of the package: ${[...want].join(', ')}`);
      }
      const updates: Parameters<Store['completeTransfer']>[2] = [];
      for (const c of concealments) {
        const name = applianceSecretName(caller, k.name, c.managerVersion, c.masterVersion);
        const base = {
          keyring: k.name,
          managerVersion: c.managerVersion,
          masterVersion: c.masterVersion,
        };
        if (k.mode === 'split') {
          if (!c.delta || c.blinded) throw bad('split mode: acknowledge with delta');
          const op = getSplitOperator(k.scheme);
          op.check(c.delta);
          const rec = await this.d.store.getApplianceKey(
            caller,
            k.name,
            c.managerVersion,
            c.masterVersion,
          );
          if (!rec) throw new BlindfoldError('ERR_CONFLICT', 'the transfer key is missing');
          const r = this.d.sealer.open(name, rec.sealedSecret);
          const r2 = op.op(r, c.delta);
          this.m.groupOps++;
          updates.push({ ...base, sealedSecret: this.d.sealer.seal(name, r2) });
          r.fill(0);
          r2.fill(0);
        } else if (k.mode === 'hom2-opt') {
          if (!c.blinded || c.delta) throw bad('hom2-opt: acknowledge with blinded');
          const key = await this.m.loadApplianceKey(caller, k, c.managerVersion, c.masterVersion);
          if (key.mode === 'split' || key.mode === 'threshold')
            throw new BlindfoldError('ERR_INTERNAL', 'mode mismatch');
          const ct = key.scheme.decodeCiphertext(key.pk, c.blinded);
          this.m.groupOps++;
          const x = homMode.optSetup(key.scheme, key.sk, ct);
          const xb = key.scheme.encodePlaintext(key.pk, x);
          updates.push({ ...base, sealedExtra: this.d.sealer.seal(`${name}/x`, xb) });
          xb.fill(0);
        } else if (c.delta || c.blinded) {
          throw bad('hom2: the acknowledgement carries no value');
        }
      }
      const wasEnrolled = a.status === 'enrolled';
      const detail = `transfer ${id} of keyring ${k.name} from ${t.claimedBy}`;
      await this.d.store.completeTransfer(
        id,
        this.d.now(),
        updates,
        wasEnrolled
          ? this.event(caller, 'trusted', t.claimedBy ?? 'manager', 'transfer', detail)
          : null,
      );
      this.m.dropApplianceKeys(caller);
      if (wasEnrolled) {
        this.m.rememberAppliance({ ...a, status: 'trusted' });
        await this.d.audit.record({ actor: caller, action: 'appliance.trusted', item: caller });
      }
      await this.d.audit.record({
        actor: caller,
        action: 'transfer.complete',
        keyring: k.name,
        item: id,
      });
      return { status: 'trusted' as const, keyring: k.name };
    });
  }

  async transfer(caller: string, id: string): Promise<TransferView> {
    this.m.memberAppliance(caller);
    const t = await this.transferFor(id);
    if (t.target !== caller && t.claimedBy !== caller) {
      throw new BlindfoldError('ERR_FORBIDDEN', `${id} is neither for nor claimed by ${caller}`);
    }
    return transferView(t, caller);
  }

  async listTransfers(): Promise<TransferView[]> {
    return (await this.d.store.listOpenTransfers()).map((t) => transferView(t, null));
  }
}

/** The package goes to its target only. */
function transferView(t: TransferRecord, caller: string | null): TransferView {
  return {
    id: t.id,
    target: t.target,
    keyring: t.keyring,
    voucher: t.voucher,
    status: t.status,
    claimedBy: t.claimedBy,
    versions: t.versions,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
    ...(t.package && caller === t.target ? { package: t.package } : {}),
  };
}

function credentialView(c: CredentialRecord) {
  return {
    id: c.id,
    kind: c.kind,
    // A secret's digest is not shown in full: it is all a brute-force attempt would need.
    value: c.kind === 'secret' ? `sha256:${c.value.slice(0, 12)}…` : c.value,
    label: c.label,
    keyrings: c.keyrings,
    maxUses: c.maxUses,
    uses: c.uses,
    createdBy: c.createdBy,
    createdAt: c.createdAt,
  };
}

/** Decodes the base64url fields of an acknowledgement (HTTP layer helper). */
export function decodeAck(
  list: { masterVersion: number; managerVersion: number; delta?: string; blinded?: string }[],
) {
  return list.map((c) => ({
    masterVersion: c.masterVersion,
    managerVersion: c.managerVersion,
    delta: c.delta === undefined ? undefined : fromB64u(c.delta, 'delta'),
    blinded: c.blinded === undefined ? undefined : fromB64u(c.blinded, 'blinded'),
  }));
}

/**
 * Master-key import from the web console, the manager's side (SPEC.md §5.9): it keeps each
 * appliance's signed import public key, prepares an import (claims the next master version and,
 * in hom modes, creates the appliance's key for it), and relays the sealed concealment to the
 * appliance. It never sees the concealment: in hom modes it holds d_A, so a bare Enc_{D_A}(M)
 * would give it M; the page seals it to a key only the appliance holds.
 */
import {
  createPublicKey,
  randomBytes,
  verify as verifySignature,
  X509Certificate,
} from 'node:crypto';
import { fromB64u, toB64u, toHex } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import {
  IMPORT_PUBLIC_KEY_BYTES,
  importKeyFingerprint,
  importKeyStatement,
} from '../core/imports.ts';
import type { ApplianceRecord, MasterImportRecord, Store } from '../store/types.ts';
import type { AuditLog } from './audit.ts';
import type { Manager } from './manager.ts';

/** Largest sealed import accepted (a gm concealment is 64 KiB; base64url and JSON around it). */
export const MAX_SEALED_IMPORT_BYTES = 200_000;

export interface ImportView {
  id: string;
  applianceId: string;
  keyring: string;
  masterVersion: number;
  managerVersion: number;
  status: string;
  code: string | null;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

const view = (r: MasterImportRecord): ImportView => ({
  id: r.id,
  applianceId: r.applianceId,
  keyring: r.keyring,
  masterVersion: r.masterVersion,
  managerVersion: r.managerVersion,
  status: r.status,
  code: r.code,
  createdBy: r.createdBy,
  createdAt: r.createdAt,
  updatedAt: r.updatedAt,
});

function spkiOf(a: ApplianceRecord): Uint8Array {
  return new Uint8Array(
    new X509Certificate(a.certificatePem).publicKey.export({ type: 'spki', format: 'der' }),
  );
}

export class ImportService {
  constructor(
    private readonly m: Manager,
    private readonly d: { store: Store; audit: AuditLog; now: () => number },
  ) {}

  /** An appliance publishes its import key, signed by its identity key (P1363 signature). */
  async publishKey(applianceId: string, publicKey: Uint8Array, signature: Uint8Array) {
    const a = this.m.memberAppliance(applianceId);
    if (publicKey.length !== IMPORT_PUBLIC_KEY_BYTES) {
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'the import public key must be 32 bytes');
    }
    const ok = verifySignature(
      'sha256',
      importKeyStatement(applianceId, publicKey),
      { key: createPublicKey(a.certificatePem), dsaEncoding: 'ieee-p1363' },
      signature,
    );
    if (!ok) {
      throw new BlindfoldError(
        'ERR_UNAUTHENTICATED',
        'the import key signature does not verify with the identity key of this appliance',
      );
    }
    const prev = await this.d.store.getImportKey(applianceId);
    const pk = toB64u(publicKey);
    if (prev?.publicKey === pk && prev.signature === toB64u(signature)) return;
    await this.d.store.putImportKey({
      applianceId,
      publicKey: pk,
      signature: toB64u(signature),
      createdAt: this.d.now(),
    });
    await this.d.audit.record({
      actor: applianceId,
      action: 'appliance.import-key',
      item: applianceId,
    });
  }

  /** What the console needs to seal to an appliance and to verify the key's signature. */
  async importKey(applianceId: string) {
    const a = this.m.applianceRecord(applianceId);
    if (!a) throw new BlindfoldError('ERR_NOT_FOUND', `no appliance ${applianceId}`);
    const k = await this.d.store.getImportKey(applianceId);
    if (!k) {
      throw new BlindfoldError(
        'ERR_NOT_FOUND',
        `appliance ${applianceId} has not published an import key: start it with console imports on ("blindfold appliance run --console-imports", as "blindfold up" does)`,
      );
    }
    return {
      applianceId,
      publicKey: k.publicKey,
      signature: k.signature,
      fingerprint: importKeyFingerprint(fromB64u(k.publicKey)),
      identityKey: toB64u(spkiOf(a)),
      identityFingerprint: a.identityFingerprint,
      createdAt: k.createdAt,
    };
  }

  private target(applianceId: string): ApplianceRecord {
    const a = this.m.memberAppliance(applianceId);
    // Raw key material is the operator's to hand out: like --import-key (SPEC.md §5.7), an
    // enrolled member vouched for by another member receives the master by transfer instead.
    if (a.status === 'enrolled' && a.vouchedBy !== 'operator') {
      throw new BlindfoldError(
        'ERR_FORBIDDEN',
        `appliance ${applianceId} was vouched for by ${a.vouchedBy}: it receives the master by transfer, not by import`,
      );
    }
    return a;
  }

  /**
   * Claims master version `expected + 1` (compare-and-swap, SPEC.md §5.5) and, in hom modes,
   * creates the appliance's key for it; returns the signed key statement for the page.
   */
  async prepare(actor: string, keyring: string, applianceId: string, expected: number) {
    this.target(applianceId);
    await this.importKey(applianceId); // refuse early if nothing can be sealed to it
    if (this.m.keyring(keyring).mode === 'threshold') {
      // The appliance deals d_A's shares to every node itself (SPEC.md §5.6): one manager
      // cannot prepare a key for it, so refuse before any version is claimed.
      throw new BlindfoldError(
        'ERR_UNSUPPORTED_SCHEME',
        'console master-key import is not available for threshold keyrings (SPEC.md §5.6)',
      );
    }
    const k = await this.m.claimMasterVersion(actor, keyring, expected);
    const base = {
      keyring,
      mode: k.mode,
      scheme: k.scheme,
      masterVersion: k.masterVersion,
      managerVersion: k.managerVersion,
      applianceId,
    };
    if (k.mode === 'split') return base;
    const st = await this.m.applianceKey(applianceId, keyring, k.managerVersion, k.masterVersion);
    return { ...base, publicKey: toB64u(st.publicKey), signature: toB64u(st.signature) };
  }

  /** Stores the sealed concealment for the appliance (split: registers r_A first). */
  async submit(
    actor: string,
    keyring: string,
    input: {
      applianceId: string;
      masterVersion: number;
      managerVersion: number;
      sealed: Uint8Array;
      r?: Uint8Array;
    },
  ): Promise<ImportView> {
    const a = this.target(input.applianceId);
    const k = this.m.keyring(keyring);
    if (input.masterVersion > k.masterVersion || input.managerVersion > k.managerVersion) {
      throw new BlindfoldError('ERR_NOT_FOUND', 'no such master or manager version: prepare first');
    }
    if (k.mode === 'split') {
      if (!input.r) throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'split mode: send r');
      await this.m.applianceKey(a.id, keyring, input.managerVersion, input.masterVersion, input.r);
    } else {
      if (input.r) throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'r is for split mode only');
      const key = await this.d.store.getApplianceKey(
        a.id,
        keyring,
        input.managerVersion,
        input.masterVersion,
      );
      if (!key) {
        throw new BlindfoldError(
          'ERR_NOT_FOUND',
          'the appliance has no key for these versions: prepare the import first',
        );
      }
    }
    const now = this.d.now();
    const rec: MasterImportRecord = {
      id: `im-${toHex(randomBytes(12))}`,
      applianceId: a.id,
      keyring,
      masterVersion: input.masterVersion,
      managerVersion: input.managerVersion,
      sealed: toB64u(input.sealed),
      status: 'pending',
      code: null,
      createdBy: actor,
      createdAt: now,
      updatedAt: now,
    };
    await this.d.store.insertImport(rec);
    await this.d.audit.record({
      actor,
      action: 'master.import',
      keyring,
      item: rec.id,
      keyVersion: input.masterVersion,
    });
    return view(rec);
  }

  async list(): Promise<ImportView[]> {
    return (await this.d.store.listImports()).map(view);
  }

  /** The appliance's pending imports, with their sealed blobs. */
  async pendingFor(applianceId: string) {
    this.m.memberAppliance(applianceId);
    return (await this.d.store.listImports({ applianceId, status: 'pending' })).map((r) => ({
      ...view(r),
      sealed: r.sealed ?? '',
    }));
  }

  /** After a revocation: its pending imports fail and their sealed blobs go (SPEC.md §5.9). */
  async onRevoked(applianceId: string) {
    for (const r of await this.d.store.listImports({ applianceId, status: 'pending' })) {
      await this.d.store.finishImport(r.id, 'failed', 'ERR_REVOKED', this.d.now()).catch(() => {
        /* finished meanwhile */
      });
    }
  }

  /** The appliance reports back; the sealed blob is dropped either way. */
  async finish(applianceId: string, id: string, code: string | null) {
    const rec = await this.d.store.getImport(id);
    if (!rec || rec.applianceId !== applianceId) {
      throw new BlindfoldError('ERR_NOT_FOUND', `no import ${id} for this appliance`);
    }
    await this.d.store.finishImport(id, code ? 'failed' : 'done', code, this.d.now());
    await this.d.audit.record({
      actor: applianceId,
      action: 'master.import-result',
      keyring: rec.keyring,
      item: id,
      keyVersion: rec.masterVersion,
      outcome: code ? 'error' : 'ok',
      code,
    });
    if (!code) {
      await this.m.cluster.markTrusted(
        applianceId,
        'operator',
        'import',
        `imported master ${rec.masterVersion} of keyring ${rec.keyring} from the console`,
      );
    }
  }
}

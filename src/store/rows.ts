/**
 * Row → record mappers shared by the SQLite and PostgreSQL stores (same column names in both
 * dialects; PostgreSQL BIGINT may arrive as a string, hence `num`).
 */
import { BlindfoldError } from '../core/errors.ts';
import type {
  ApplianceKeyRecord,
  ApplianceRecord,
  BlinderRecord,
  CredentialRecord,
  EnrollmentRecord,
  ImportKeyRecord,
  KeyringRecord,
  KmsApplicationRecord,
  KmsGrantRecord,
  KmsTokenRecord,
  MasterImportRecord,
  MembershipEventRecord,
  StoredAuditEntry,
  TransferRecord,
  TransferStatus,
} from './types.ts';

export type Row = Record<string, unknown>;

export const u8 = (b: unknown): Uint8Array => new Uint8Array(b as Buffer);
export const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
export const numOrNull = (v: unknown): number | null => (v == null ? null : num(v));

export function keyringFrom(r: Row): KeyringRecord {
  return {
    name: r.name as string,
    mode: r.mode as string,
    scheme: r.scheme as string,
    masterVersion: num(r.master_version),
    managerVersion: num(r.manager_version),
    status: r.status as KeyringRecord['status'],
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    deletionAt: numOrNull(r.deletion_at),
  };
}

/** The conflicts of scheduling (deletionAt set) or cancelling (null) a keyring's deletion. */
export function deletionConflict(name: string, cur: Row, deletionAt: number | null): void {
  if (cur.status === 'deleted') {
    throw new BlindfoldError('ERR_CONFLICT', `keyring ${name} is already deleted`);
  }
  if (deletionAt !== null && cur.deletion_at != null) {
    throw new BlindfoldError(
      'ERR_CONFLICT',
      `keyring ${name} is already scheduled for deletion; cancel it first to choose another date`,
    );
  }
  if (deletionAt === null && cur.deletion_at == null) {
    throw new BlindfoldError('ERR_CONFLICT', `keyring ${name} is not scheduled for deletion`);
  }
}

export function kmsApplicationFrom(r: Row): KmsApplicationRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    status: r.status as KmsApplicationRecord['status'],
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
  };
}

export function kmsTokenFrom(r: Row): KmsTokenRecord {
  return {
    id: r.id as string,
    tokenHash: r.token_hash as string,
    applicationId: r.application_id as string,
    scopes: JSON.parse(r.scopes as string) as string[],
    expiresAt: num(r.expires_at),
    createdAt: num(r.created_at),
    revokedAt: numOrNull(r.revoked_at),
  };
}

export function kmsGrantFrom(r: Row): KmsGrantRecord {
  return {
    keyring: r.keyring as string,
    applicationId: r.application_id as string,
    operations: JSON.parse(r.operations as string) as string[],
    updatedAt: num(r.updated_at),
  };
}

export function applianceFrom(r: Row): ApplianceRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    identityFingerprint: r.identity_fpr as string,
    certificatePem: r.certificate_pem as string,
    status: r.status as ApplianceRecord['status'],
    vouchedBy: r.vouched_by as string,
    criterion: r.criterion as string,
    createdAt: num(r.created_at),
    revokedAt: numOrNull(r.revoked_at),
  };
}

export function applianceKeyFrom(r: Row): ApplianceKeyRecord {
  return {
    applianceId: r.appliance_id as string,
    keyring: r.keyring as string,
    managerVersion: num(r.manager_version),
    masterVersion: num(r.master_version),
    publicKey: u8(r.public_key),
    sealedSecret: u8(r.sealed_secret),
    sealedExtra: r.sealed_extra == null ? null : u8(r.sealed_extra),
    createdAt: num(r.created_at),
  };
}

export function enrollmentFrom(r: Row): EnrollmentRecord {
  return {
    tokenHash: r.token_hash as string,
    createdBy: r.created_by as string,
    boundFingerprint: (r.bound_fpr as string | null) ?? null,
    expiresAt: num(r.expires_at),
    usedAt: numOrNull(r.used_at),
    usedBy: (r.used_by as string | null) ?? null,
    ...keyringsOf(r),
  };
}

/** The keyrings column, omitted when empty (records written before migration 2 have none). */
export function keyringsOf(r: Row): { keyrings?: string[] } {
  const k = JSON.parse((r.keyrings as string | null) ?? '[]') as string[];
  return k.length > 0 ? { keyrings: k } : {};
}

export function eventFrom(r: Row): MembershipEventRecord {
  return {
    id: r.id as string,
    applianceId: r.appliance_id as string,
    ts: num(r.ts),
    event: r.event as string,
    actor: r.actor as string,
    criterion: (r.criterion as string | null) ?? null,
    detail: (r.detail as string | null) ?? null,
  };
}

export function credentialFrom(r: Row): CredentialRecord {
  return {
    id: r.id as string,
    kind: r.kind as CredentialRecord['kind'],
    value: r.value as string,
    label: r.label as string,
    keyrings: JSON.parse(r.keyrings as string) as string[],
    maxUses: num(r.max_uses),
    uses: num(r.uses),
    createdBy: r.created_by as string,
    createdAt: num(r.created_at),
  };
}

export function transferFrom(r: Row): TransferRecord {
  return {
    id: r.id as string,
    target: r.target as string,
    keyring: r.keyring as string,
    voucher: (r.voucher as string | null) ?? null,
    status: r.status as TransferStatus,
    claimedBy: (r.claimed_by as string | null) ?? null,
    claimedAt: numOrNull(r.claimed_at),
    versions: JSON.parse(r.versions as string) as TransferRecord['versions'],
    package: (r.package as string | null) ?? null,
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    doneAt: numOrNull(r.done_at),
  };
}

export function auditFrom(r: Row): StoredAuditEntry {
  return {
    seq: num(r.seq),
    ts: num(r.ts),
    actor: r.actor as string,
    action: r.action as string,
    keyring: (r.keyring as string | null) ?? null,
    item: (r.item as string | null) ?? null,
    keyVersion: numOrNull(r.key_version),
    outcome: r.outcome as StoredAuditEntry['outcome'],
    code: (r.code as string | null) ?? null,
    requestId: (r.request_id as string | null) ?? null,
    prevHash: r.prev_hash as string,
    hash: r.hash as string,
  };
}

/** The audit table's columns, in the order of `auditRow` (every store's INSERT). */
export const AUDIT_COLUMNS =
  'seq, ts, actor, action, keyring, item, key_version, outcome, code, request_id, prev_hash, hash';

/** An entry's values in AUDIT_COLUMNS order: the inverse of `auditFrom`. */
export function auditRow(e: StoredAuditEntry): unknown[] {
  return [
    e.seq,
    e.ts,
    e.actor,
    e.action,
    e.keyring,
    e.item,
    e.keyVersion,
    e.outcome,
    e.code,
    e.requestId,
    e.prevHash,
    e.hash,
  ];
}

export function importKeyFrom(r: Row): ImportKeyRecord {
  return {
    applianceId: r.appliance_id as string,
    publicKey: r.public_key as string,
    signature: r.signature as string,
    createdAt: num(r.created_at),
  };
}

export function importFrom(r: Row): MasterImportRecord {
  return {
    id: r.id as string,
    applianceId: r.appliance_id as string,
    keyring: r.keyring as string,
    masterVersion: num(r.master_version),
    managerVersion: num(r.manager_version),
    sealed: (r.sealed as string | null) ?? null,
    status: r.status as MasterImportRecord['status'],
    code: (r.code as string | null) ?? null,
    createdBy: r.created_by as string,
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
  };
}

export function blinderFrom(r: Row): BlinderRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    identityFingerprint: r.identity_fpr as string,
    certificatePem: r.certificate_pem as string,
    url: r.url as string,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

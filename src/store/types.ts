/**
 * The one storage interface of the manager (and blinder). SQLite (embedded, default) and
 * PostgreSQL (scale-out) implement it and run through the same contract tests
 * (test/store.contract.test.ts).
 *
 * Rules every implementation keeps:
 * - Secrets arrive already sealed (src/manager/seal.ts); the store never sees a plain secret.
 * - Every method either applies completely or not at all (one transaction), and throws
 *   BlindfoldError('ERR_STORAGE') when the backend refuses a write, ERR_CONFLICT on a violated
 *   uniqueness or compare-and-swap, so that callers change in-memory state only after success.
 */

export interface KeyringRecord {
  name: string;
  mode: string;
  scheme: string; // scheme id for hom modes, split operator id for split mode
  masterVersion: number; // current master-key version (appliances create new ones)
  managerVersion: number; // current manager-key version
  status: 'enabled' | 'disabled';
  createdAt: number;
  updatedAt: number;
}

export interface KeyringVersionRecord {
  keyring: string;
  managerVersion: number;
  createdAt: number;
  retiredAt: number | null;
}

export interface ApplianceRecord {
  id: string;
  name: string;
  /** SHA-256 of the identity public key (SPKI DER), hex. */
  identityFingerprint: string;
  certificatePem: string;
  status: 'trusted' | 'revoked';
  vouchedBy: string; // 'operator' | 'manager' | appliance id
  criterion: string; // 'token' | 'credential' | 'operator'
  createdAt: number;
  revokedAt: number | null;
}

export interface ApplianceKeyRecord {
  applianceId: string;
  keyring: string;
  managerVersion: number;
  /** Each master-key version has its own appliance key (split r_A, hom2-opt X_A, hom2 d_A). */
  masterVersion: number;
  /** Public key of the appliance's scheme key pair (hom modes), empty for split. */
  publicKey: Uint8Array;
  /** Sealed secret: d_A (hom modes) or r_A (split). */
  sealedSecret: Uint8Array;
  /** Sealed X_A for hom2-opt, set by the opt-setup step. */
  sealedExtra: Uint8Array | null;
  createdAt: number;
}

export interface ItemRecord {
  keyring: string;
  itemId: Uint8Array;
  masterVersion: number;
  managerVersion: number;
  createdBy: string;
  createdAt: number;
}

export interface EnrollmentRecord {
  tokenHash: string; // hex SHA-256 of the token; the token itself is never stored
  createdBy: string;
  boundFingerprint: string | null;
  expiresAt: number;
  usedAt: number | null;
  usedBy: string | null;
}

export interface AuditEntry {
  ts: number;
  actor: string;
  action: string;
  keyring: string | null;
  item: string | null;
  keyVersion: number | null;
  outcome: 'ok' | 'refused' | 'error';
  code: string | null;
  requestId: string | null;
}

export interface StoredAuditEntry extends AuditEntry {
  seq: number;
  prevHash: string;
  hash: string;
}

export interface AuditFilter {
  afterSeq?: number;
  limit?: number;
  actor?: string;
  action?: string;
  outcome?: string;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  migrate(): Promise<void>;
  close(): Promise<void>;

  getSecret(name: string): Promise<Uint8Array | undefined>;
  /** Inserts a sealed secret; returns false (and changes nothing) if the name exists. */
  putSecretIfAbsent(name: string, sealed: Uint8Array): Promise<boolean>;

  insertKeyring(k: KeyringRecord): Promise<void>;
  getKeyring(name: string): Promise<KeyringRecord | undefined>;
  listKeyrings(): Promise<KeyringRecord[]>;
  /** Compare-and-swap on (masterVersion, managerVersion); ERR_CONFLICT if they moved. */
  updateKeyring(
    name: string,
    expected: { masterVersion: number; managerVersion: number },
    patch: Partial<Pick<KeyringRecord, 'masterVersion' | 'managerVersion' | 'status'>>,
    now: number,
  ): Promise<void>;
  listKeyringVersions(name: string): Promise<KeyringVersionRecord[]>;

  insertAppliance(a: ApplianceRecord): Promise<void>;
  getAppliance(id: string): Promise<ApplianceRecord | undefined>;
  listAppliances(): Promise<ApplianceRecord[]>;
  revokeAppliance(id: string, now: number): Promise<void>;

  /** Inserts if absent; returns the record that is stored (the existing one on a race). */
  putApplianceKey(k: ApplianceKeyRecord): Promise<ApplianceKeyRecord>;
  getApplianceKey(
    applianceId: string,
    keyring: string,
    managerVersion: number,
    masterVersion: number,
  ): Promise<ApplianceKeyRecord | undefined>;
  /** Sets X_A once; ERR_CONFLICT if it is already set (hom2-opt setup is not repeatable). */
  setApplianceKeyExtra(
    applianceId: string,
    keyring: string,
    managerVersion: number,
    masterVersion: number,
    sealedExtra: Uint8Array,
  ): Promise<void>;
  /** Revocation destroys the member's keys (seed: "the manager destroys that member's keys"). */
  deleteApplianceKeys(applianceId: string): Promise<number>;

  insertItem(i: ItemRecord): Promise<void>;
  getItem(keyring: string, itemId: Uint8Array): Promise<ItemRecord | undefined>;
  countItems(keyring?: string): Promise<number>;

  insertEnrollment(e: EnrollmentRecord): Promise<void>;
  /** Marks a token used; ERR_CONFLICT if already used, ERR_NOT_FOUND if unknown. */
  consumeEnrollment(tokenHash: string, usedBy: string, now: number): Promise<EnrollmentRecord>;

  /** Appends entries in order, extending the hash chain atomically. */
  appendAudit(entries: AuditEntry[]): Promise<StoredAuditEntry[]>;
  listAudit(filter: AuditFilter): Promise<StoredAuditEntry[]>;
}

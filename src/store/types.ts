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
  /** 'deleted' after a scheduled deletion came due and its secrets were destroyed (SPEC.md §7.4). */
  status: 'enabled' | 'disabled' | 'deleted';
  createdAt: number;
  updatedAt: number;
  /** When a scheduled deletion comes due (ms), or null; the keyring is unusable meanwhile. */
  deletionAt?: number | null;
}

/** An application of the KMS API (SPEC.md §11). */
export interface KmsApplicationRecord {
  id: string; // "app-" + 16 hex digits
  name: string;
  status: 'enabled' | 'disabled';
  createdAt: number;
  updatedAt: number;
}

/** An application's API token; only its SHA-256 is stored. */
export interface KmsTokenRecord {
  id: string; // "tok-" + 16 hex digits
  tokenHash: string; // hex SHA-256 of the token
  applicationId: string;
  scopes: string[];
  expiresAt: number; // ms; 0 = never
  createdAt: number;
  revokedAt: number | null;
}

/** Which operations an application may perform with one keyring (its key policy). */
export interface KmsGrantRecord {
  keyring: string;
  applicationId: string;
  operations: string[];
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
  /**
   * enrolled: vouched for and certified, holds no secret yet (cluster routes only); trusted: holds
   * the keyring secrets (after its first transfer, or it made a keyring's first master); revoked.
   */
  status: ApplianceStatus;
  vouchedBy: string; // 'operator' | 'manager' | appliance id
  criterion: string; // 'token' | 'credential' | 'operator'
  createdAt: number;
  revokedAt: number | null;
}

export type ApplianceStatus = 'enrolled' | 'trusted' | 'revoked';

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

/** A blinder registered by the operator (SPEC.md §5.4): its identity and where it listens. */
export interface BlinderRecord {
  /** "bl-" and the first 16 hex digits of the identity fingerprint. */
  id: string;
  name: string;
  identityFingerprint: string;
  certificatePem: string;
  /** The blinder's HTTPS URL, announced by the blinder itself at start. */
  url: string;
  createdAt: number;
  updatedAt: number;
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
  /** Keyrings whose master the newcomer receives by transfer at enrollment (SPEC.md §5.7). */
  keyrings?: string[];
}

/** One line of an appliance's membership history (SPEC.md §5.7), never a secret. */
export interface MembershipEventRecord {
  id: string;
  applianceId: string;
  ts: number;
  /** vouched | trusted | revoked */
  event: string;
  /** Who caused it: 'operator', 'manager' or an appliance id. */
  actor: string;
  criterion: string | null;
  detail: string | null;
}

/** A credentials-database entry (vouching criterion ii, SPEC.md §5.7). */
export interface CredentialRecord {
  id: string;
  kind: 'fingerprint' | 'secret' | 'attestation';
  /** fingerprint: SPKI SHA-256 hex; secret: hex SHA-256 of the secret (never the secret); attestation: subject. */
  value: string;
  label: string;
  keyrings: string[];
  maxUses: number;
  uses: number;
  createdBy: string;
  createdAt: number;
}

export type TransferStatus = 'pending' | 'claimed' | 'sealed' | 'done';

/** A re-concealment transfer of one keyring's master to a newcomer (SPEC.md §5.7). */
export interface TransferRecord {
  id: string;
  target: string;
  keyring: string;
  /** The appliance that vouched for the target, served first; null when operator or manager. */
  voucher: string | null;
  status: TransferStatus;
  claimedBy: string | null;
  claimedAt: number | null;
  /** The (masterVersion, managerVersion) pairs re-concealed for the target so far. */
  versions: { masterVersion: number; managerVersion: number }[];
  /** The package sealed to the target's identity key; the manager only relays it. */
  package: string | null;
  createdAt: number;
  updatedAt: number;
  doneAt: number | null;
}

/** Everything an enrollment writes, in one transaction (nothing on failure). */
export interface EnrollInput {
  appliance: ApplianceRecord;
  /** The token (by hash) or credential (by id) this enrollment uses up. */
  consume: { enrollment: string } | { credential: string };
  now: number;
  events: MembershipEventRecord[];
  transfers: TransferRecord[];
}

/** An appliance's import public key (SPEC.md §5.9), published signed by its identity key. */
export interface ImportKeyRecord {
  applianceId: string;
  /** X25519 public key (crypto_box_seal), base64url. */
  publicKey: string;
  /** ECDSA P-256 / SHA-256 by the identity key over importKeyStatement, IEEE P1363, base64url. */
  signature: string;
  createdAt: number;
}

export type ImportStatus = 'pending' | 'done' | 'failed';

/** A master-key import posted by the console for one appliance (SPEC.md §5.9). */
export interface MasterImportRecord {
  id: string;
  applianceId: string;
  keyring: string;
  masterVersion: number;
  managerVersion: number;
  /** The concealment sealed to the appliance's import key, base64url; null once finished. */
  sealed: string | null;
  status: ImportStatus;
  /** The appliance's error code when it failed. */
  code: string | null;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
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
  /**
   * Sets (a time) or clears (null) a keyring's scheduled deletion. ERR_NOT_FOUND if unknown;
   * ERR_CONFLICT if it is deleted, or already scheduled (set), or not scheduled (clear).
   */
  setKeyringDeletion(name: string, deletionAt: number | null, now: number): Promise<void>;
  /**
   * Destroys a keyring whose deletion is due at `now`, in one transaction: its sealed ticket and
   * share keys, every appliance key and every KMS grant of it; the row stays with status
   * 'deleted'. Returns false (and changes nothing) if no deletion is due.
   */
  destroyKeyring(name: string, now: number): Promise<boolean>;

  // -- KMS (SPEC.md §11) --
  insertKmsApplication(a: KmsApplicationRecord): Promise<void>;
  getKmsApplication(id: string): Promise<KmsApplicationRecord | undefined>;
  listKmsApplications(): Promise<KmsApplicationRecord[]>;
  /** ERR_NOT_FOUND if unknown. */
  setKmsApplicationStatus(
    id: string,
    status: KmsApplicationRecord['status'],
    now: number,
  ): Promise<void>;
  insertKmsToken(t: KmsTokenRecord): Promise<void>;
  getKmsTokenByHash(tokenHash: string): Promise<KmsTokenRecord | undefined>;
  listKmsTokens(applicationId: string): Promise<KmsTokenRecord[]>;
  /** ERR_NOT_FOUND if unknown; revoking twice keeps the first time. */
  revokeKmsToken(id: string, now: number): Promise<void>;
  /** Replaces an application's grant on a keyring; an empty list removes it. */
  putKmsGrant(g: KmsGrantRecord): Promise<void>;
  listKmsGrants(keyring: string): Promise<KmsGrantRecord[]>;

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

  getEnrollment(tokenHash: string): Promise<EnrollmentRecord | undefined>;

  // -- cluster (SPEC.md §5.7) --
  /**
   * Consumes the token (unused and unexpired at `now`) or one use of the credential, inserts the
   * appliance, its history and its transfers, all or nothing; ERR_CONFLICT if the token or
   * credential was used up meanwhile or the identity is already enrolled.
   */
  enrollAppliance(e: EnrollInput): Promise<void>;
  /** Compare-and-swap on status; ERR_CONFLICT if the status is not one of `from`. */
  setApplianceStatus(
    id: string,
    from: ApplianceStatus[],
    to: ApplianceStatus,
    event: MembershipEventRecord,
  ): Promise<void>;
  appendMembershipEvent(e: MembershipEventRecord): Promise<void>;
  listMembershipEvents(applianceId?: string): Promise<MembershipEventRecord[]>;
  listApplianceKeys(applianceId: string, keyring?: string): Promise<ApplianceKeyRecord[]>;

  insertCredential(c: CredentialRecord): Promise<void>;
  listCredentials(): Promise<CredentialRecord[]>;
  findCredential(
    kind: CredentialRecord['kind'],
    value: string,
  ): Promise<CredentialRecord | undefined>;
  deleteCredential(id: string): Promise<boolean>;

  insertTransfer(t: TransferRecord): Promise<void>;
  getTransfer(id: string): Promise<TransferRecord | undefined>;
  /** Transfers not done, oldest first, optionally of one target. */
  listOpenTransfers(target?: string): Promise<TransferRecord[]>;
  listTransfers(target: string, keyring: string): Promise<TransferRecord[]>;
  /**
   * Claims a transfer for `by` if it is pending, or claimed by `by`, or claimed with a claim
   * older than `staleBefore`; returns the claimed record; ERR_CONFLICT otherwise.
   */
  claimTransfer(id: string, by: string, now: number, staleBefore: number): Promise<TransferRecord>;
  /**
   * One step of a claimed transfer, atomically: checks the claim (held by `by`, taken after
   * `staleBefore`), upserts the target's key if given, records the version pair, and, with
   * `pkg`, stores the package and moves to 'sealed'. ERR_CONFLICT if the claim was lost.
   */
  transferStep(
    id: string,
    by: string,
    staleBefore: number,
    now: number,
    step: {
      key?: ApplianceKeyRecord;
      version?: { masterVersion: number; managerVersion: number };
      pkg?: string;
    },
  ): Promise<TransferRecord>;
  /** Back to pending (package and claim dropped), e.g. when the target refused the package. */
  resetTransfer(id: string, expected: TransferStatus[], now: number): Promise<void>;
  /**
   * Completes a sealed transfer: replaces the target's key secrets (re-randomized), marks the
   * transfer done and drops its package, moves the target from enrolled to trusted, records the
   * event. All or nothing; ERR_CONFLICT if the transfer is not sealed.
   */
  completeTransfer(
    id: string,
    now: number,
    keys: {
      keyring: string;
      managerVersion: number;
      masterVersion: number;
      sealedSecret?: Uint8Array;
      sealedExtra?: Uint8Array;
    }[],
    trustedEvent: MembershipEventRecord | null,
  ): Promise<void>;
  /** Drops the open transfers of a target (revocation). */
  cancelTransfers(target: string): Promise<number>;

  // -- console master-key import (SPEC.md §5.9) --
  /** Inserts or replaces the appliance's import public key. */
  putImportKey(k: ImportKeyRecord): Promise<void>;
  getImportKey(applianceId: string): Promise<ImportKeyRecord | undefined>;
  insertImport(i: MasterImportRecord): Promise<void>;
  getImport(id: string): Promise<MasterImportRecord | undefined>;
  /** Imports oldest first, optionally of one appliance and/or one status. */
  listImports(filter?: {
    applianceId?: string;
    status?: ImportStatus;
  }): Promise<MasterImportRecord[]>;
  /**
   * Moves a pending import to done or failed and drops its sealed blob; ERR_NOT_FOUND if unknown,
   * ERR_CONFLICT if it is not pending.
   */
  finishImport(
    id: string,
    status: 'done' | 'failed',
    code: string | null,
    now: number,
  ): Promise<void>;

  // -- blinders and keyring chains (SPEC.md §5.4) --
  /** ERR_CONFLICT if the id or identity is registered already. */
  insertBlinder(b: BlinderRecord): Promise<void>;
  listBlinders(): Promise<BlinderRecord[]>;
  /** ERR_NOT_FOUND if no such blinder. */
  setBlinderUrl(id: string, url: string, now: number): Promise<void>;
  /** The ordered blinder ids of a hom3/homN keyring, or undefined. */
  getKeyringChain(keyring: string): Promise<string[] | undefined>;
  /** Sets (inserts or replaces) a keyring's chain. */
  setKeyringChain(keyring: string, blinders: string[], now: number): Promise<void>;

  /** Appends entries in order, extending the hash chain atomically. */
  appendAudit(entries: AuditEntry[]): Promise<StoredAuditEntry[]>;
  listAudit(filter: AuditFilter): Promise<StoredAuditEntry[]>;
}

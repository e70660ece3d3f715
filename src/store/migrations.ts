/**
 * Versioned schema migrations. Append only: a released migration is never edited. The SQL is
 * the portable subset that SQLite and PostgreSQL (and PostgreSQL-wire engines) share: no
 * triggers, no stored procedures, BLOB/BYTEA chosen per dialect; a migration that only one
 * dialect needs (v6) exists in that dialect's list only.
 */
export interface Migration {
  version: number;
  sql: string;
}

function schemaV1(blob: string): string {
  return `
CREATE TABLE secrets (
  name TEXT PRIMARY KEY,
  sealed ${blob} NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE keyrings (
  name TEXT PRIMARY KEY,
  mode TEXT NOT NULL,
  scheme TEXT NOT NULL,
  master_version INTEGER NOT NULL,
  manager_version INTEGER NOT NULL,
  status TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE keyring_versions (
  keyring TEXT NOT NULL,
  manager_version INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  retired_at BIGINT,
  PRIMARY KEY (keyring, manager_version)
);
CREATE TABLE appliances (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  identity_fpr TEXT NOT NULL UNIQUE,
  certificate_pem TEXT NOT NULL,
  status TEXT NOT NULL,
  vouched_by TEXT NOT NULL,
  criterion TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT
);
CREATE TABLE appliance_keys (
  appliance_id TEXT NOT NULL,
  keyring TEXT NOT NULL,
  manager_version INTEGER NOT NULL,
  master_version INTEGER NOT NULL,
  public_key ${blob} NOT NULL,
  sealed_secret ${blob} NOT NULL,
  sealed_extra ${blob},
  created_at BIGINT NOT NULL,
  PRIMARY KEY (appliance_id, keyring, manager_version, master_version)
);
CREATE TABLE items (
  keyring TEXT NOT NULL,
  item_id ${blob} NOT NULL,
  master_version INTEGER NOT NULL,
  manager_version INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (keyring, item_id)
);
CREATE TABLE enrollments (
  token_hash TEXT PRIMARY KEY,
  created_by TEXT NOT NULL,
  bound_fpr TEXT,
  expires_at BIGINT NOT NULL,
  used_at BIGINT,
  used_by TEXT
);
CREATE TABLE audit (
  seq BIGINT PRIMARY KEY,
  ts BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  keyring TEXT,
  item TEXT,
  key_version INTEGER,
  outcome TEXT NOT NULL,
  code TEXT,
  request_id TEXT,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
`;
}

/**
 * v2, the cluster (SPEC.md §5.7): appliances may be 'enrolled' (vouched, no secret yet) before
 * 'trusted'; enrollment tokens name the keyrings the newcomer receives; membership history; the
 * credentials database of vouching criterion (ii), secrets stored as SHA-256 only; re-concealment
 * transfers, whose sealed package the manager relays and deletes when the target acknowledges.
 */
function schemaV2(): string {
  return `
ALTER TABLE enrollments ADD COLUMN keyrings TEXT NOT NULL DEFAULT '[]';
CREATE TABLE membership_events (
  id TEXT PRIMARY KEY,
  appliance_id TEXT NOT NULL,
  ts BIGINT NOT NULL,
  event TEXT NOT NULL,
  actor TEXT NOT NULL,
  criterion TEXT,
  detail TEXT
);
CREATE INDEX membership_events_appliance ON membership_events (appliance_id, ts);
CREATE TABLE credentials (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  value TEXT NOT NULL,
  label TEXT NOT NULL,
  keyrings TEXT NOT NULL,
  max_uses INTEGER NOT NULL,
  uses INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (kind, value)
);
CREATE TABLE transfers (
  id TEXT PRIMARY KEY,
  target TEXT NOT NULL,
  keyring TEXT NOT NULL,
  voucher TEXT,
  status TEXT NOT NULL,
  claimed_by TEXT,
  claimed_at BIGINT,
  versions TEXT NOT NULL,
  package TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  done_at BIGINT
);
CREATE INDEX transfers_target ON transfers (target, keyring);
`;
}

/**
 * v3, KMS (SPEC.md §7.4, §11): scheduled deletion of keyrings (the keyring stays, marked
 * 'deleted', after its secrets are destroyed); applications, their API tokens (stored as SHA-256
 * only) and per-keyring grants saying which application may do which operation.
 */
function schemaV3(): string {
  return `
ALTER TABLE keyrings ADD COLUMN deletion_at BIGINT;
CREATE TABLE kms_applications (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE kms_tokens (
  id TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  application_id TEXT NOT NULL,
  scopes TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT
);
CREATE INDEX kms_tokens_application ON kms_tokens (application_id);
CREATE TABLE kms_grants (
  keyring TEXT NOT NULL,
  application_id TEXT NOT NULL,
  operations TEXT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (keyring, application_id)
);
`;
}

/**
 * v5, the web console's master-key import (SPEC.md §5.9): each appliance's import public key
 * (X25519, signed by its identity key) and the pending imports the console posts for it. An
 * import holds only a blob sealed to that key; it is dropped once the appliance reports back.
 */
function schemaV5(): string {
  return `
CREATE TABLE import_keys (
  appliance_id TEXT PRIMARY KEY,
  public_key TEXT NOT NULL,
  signature TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE master_imports (
  id TEXT PRIMARY KEY,
  appliance_id TEXT NOT NULL,
  keyring TEXT NOT NULL,
  master_version INTEGER NOT NULL,
  manager_version INTEGER NOT NULL,
  sealed TEXT,
  status TEXT NOT NULL,
  code TEXT,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX master_imports_appliance ON master_imports (appliance_id, status);
`;
}

/**
 * v4, blinders (SPEC.md §5.4): the registered blinders (identity, certificate, URL) and, per
 * hom3/homN keyring, the ordered list of blinder ids its requests pass through.
 */
function schemaV4(): string {
  return `
CREATE TABLE blinders (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  identity_fpr TEXT NOT NULL UNIQUE,
  certificate_pem TEXT NOT NULL,
  url TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE keyring_chains (
  keyring TEXT PRIMARY KEY,
  blinders TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);
`;
}

/**
 * v6, SQLite only: the audit table keyed by `seq INTEGER PRIMARY KEY`. In SQLite only that exact
 * type makes the key the table's rowid; v1's `seq BIGINT PRIMARY KEY` made SQLite keep a second
 * b-tree (an automatic unique index) beside the table, written on every append: ~13 of ~255 bytes
 * per entry, and 2-4 µs per insert (docs/PERFORMANCE.md, "perf8"). The table is rebuilt once, in
 * the migration's transaction; the entries, their order and their hashes are copied unchanged.
 * PostgreSQL keeps its primary-key index either way and has no v6.
 */
function sqliteAuditRowidV6(): string {
  const columns =
    'seq, ts, actor, action, keyring, item, key_version, outcome, code, request_id, prev_hash, hash';
  return `
CREATE TABLE audit_v6 (
  seq INTEGER PRIMARY KEY,
  ts BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  keyring TEXT,
  item TEXT,
  key_version INTEGER,
  outcome TEXT NOT NULL,
  code TEXT,
  request_id TEXT,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
INSERT INTO audit_v6 (${columns}) SELECT ${columns} FROM audit ORDER BY seq;
DROP TABLE audit;
ALTER TABLE audit_v6 RENAME TO audit;
`;
}

export const SQL_MIGRATIONS: Migration[] = [
  { version: 1, sql: schemaV1('BLOB') },
  { version: 2, sql: schemaV2() },
  { version: 3, sql: schemaV3() },
  { version: 4, sql: schemaV4() },
  { version: 5, sql: schemaV5() },
  { version: 6, sql: sqliteAuditRowidV6() },
];
export const PG_MIGRATIONS: Migration[] = [
  { version: 1, sql: schemaV1('BYTEA') },
  { version: 2, sql: schemaV2() },
  { version: 3, sql: schemaV3() },
  { version: 4, sql: schemaV4() },
  { version: 5, sql: schemaV5() },
];

/**
 * Versioned schema migrations. Append only: a released migration is never edited. The SQL is
 * the portable subset that SQLite and PostgreSQL (and PostgreSQL-wire engines) share: no
 * triggers, no stored procedures, BLOB/BYTEA chosen per dialect.
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

export const SQL_MIGRATIONS: Migration[] = [{ version: 1, sql: schemaV1('BLOB') }];
export const PG_MIGRATIONS: Migration[] = [{ version: 1, sql: schemaV1('BYTEA') }];

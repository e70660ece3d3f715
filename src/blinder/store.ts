/**
 * The blinder's own store (SPEC.md §5.4): SQLite, one row per (appliance, keyring, manager
 * version, master version) holding the scheme public key D_A and E_j = Enc_{D_A}(R_j) sealed
 * under the blinder's root key, plus the blinder's audit hash chain (SPEC.md §8). Nothing in it
 * is secret without the manager's d_A; the seal adds integrity and a second lock.
 */
import Database from 'better-sqlite3';
import { GENESIS_HASH, linkEntries } from '../core/audit.ts';
import { BlindfoldError } from '../core/errors.ts';
import { nodeSha256 } from '../platform/node-hash.ts';
import { AUDIT_COLUMNS, auditFrom, auditRow, type Row } from '../store/rows.ts';
import type { AuditEntry, AuditFilter, StoredAuditEntry } from '../store/types.ts';

export interface BlindingValueRecord {
  applianceId: string;
  keyring: string;
  managerVersion: number;
  masterVersion: number;
  scheme: string;
  publicKey: Uint8Array;
  /** E_j = Enc_{D_A}(R_j), sealed as blinder/<applianceId>/<keyring>/v<v>/m<m>. */
  sealed: Uint8Array;
  createdAt: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS blinding_values (
  appliance_id TEXT NOT NULL,
  keyring TEXT NOT NULL,
  manager_version INTEGER NOT NULL,
  master_version INTEGER NOT NULL,
  scheme TEXT NOT NULL,
  public_key BLOB NOT NULL,
  sealed BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (appliance_id, keyring, manager_version, master_version)
);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
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

function storageError(e: unknown): BlindfoldError {
  if (e instanceof BlindfoldError) return e;
  const code = (e as { code?: string }).code ?? '';
  return new BlindfoldError(
    'ERR_STORAGE',
    `the blinder store refused the operation (${code || 'unknown'})`,
    { cause: e },
  );
}

export class BlinderStore {
  readonly kind = 'sqlite' as const;
  readonly db: Database.Database;

  constructor(path: string) {
    try {
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('busy_timeout = 5000');
      this.db.exec(SCHEMA);
    } catch (e) {
      throw new BlindfoldError('ERR_STORAGE', `cannot open the blinder store at ${path}`, {
        cause: e,
      });
    }
  }

  private run<T>(f: () => T): Promise<T> {
    try {
      return Promise.resolve(f());
    } catch (e) {
      return Promise.reject(storageError(e));
    }
  }

  /** Inserts if absent; returns the stored record (the existing one when two setups race). */
  putValue(v: BlindingValueRecord): Promise<BlindingValueRecord> {
    return this.run(() => {
      this.db
        .prepare(
          `INSERT OR IGNORE INTO blinding_values
           (appliance_id, keyring, manager_version, master_version, scheme, public_key, sealed, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          v.applianceId,
          v.keyring,
          v.managerVersion,
          v.masterVersion,
          v.scheme,
          v.publicKey,
          v.sealed,
          v.createdAt,
        );
      return this.getSync(v.applianceId, v.keyring, v.managerVersion, v.masterVersion)!;
    });
  }

  getValue(applianceId: string, keyring: string, managerVersion: number, masterVersion: number) {
    return this.run(() => this.getSync(applianceId, keyring, managerVersion, masterVersion));
  }

  private getSync(
    applianceId: string,
    keyring: string,
    managerVersion: number,
    masterVersion: number,
  ): BlindingValueRecord | undefined {
    const r = this.db
      .prepare(
        `SELECT * FROM blinding_values
         WHERE appliance_id = ? AND keyring = ? AND manager_version = ? AND master_version = ?`,
      )
      .get(applianceId, keyring, managerVersion, masterVersion) as Row | undefined;
    if (!r) return undefined;
    return {
      applianceId: r.appliance_id as string,
      keyring: r.keyring as string,
      managerVersion: Number(r.manager_version),
      masterVersion: Number(r.master_version),
      scheme: r.scheme as string,
      publicKey: new Uint8Array(r.public_key as Buffer),
      sealed: new Uint8Array(r.sealed as Buffer),
      createdAt: Number(r.created_at),
    };
  }

  countValues(): Promise<number> {
    return this.run(
      () => (this.db.prepare('SELECT COUNT(*) AS n FROM blinding_values').get() as Row).n as number,
    );
  }

  /** Appends entries in order, extending the hash chain atomically (SPEC.md §8). */
  appendAudit(entries: AuditEntry[]): Promise<StoredAuditEntry[]> {
    return this.run(() => this.#appendAudit(entries));
  }

  // One transaction function and prepared statements for every append; the chain is linked
  // with OpenSSL's SHA-256 (core/audit.ts linkEntries), as the manager's stores do.
  #appendAuditTx?: (entries: AuditEntry[]) => StoredAuditEntry[];
  get #appendAudit(): (entries: AuditEntry[]) => StoredAuditEntry[] {
    if (!this.#appendAuditTx) {
      const lastEntry = this.db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
      const ins = this.db.prepare(
        `INSERT INTO audit (${AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      this.#appendAuditTx = this.db.transaction((entries: AuditEntry[]) => {
        const last = lastEntry.get() as Row | undefined;
        const out = linkEntries(
          entries,
          last ? Number(last.seq) : 0,
          last ? (last.hash as string) : GENESIS_HASH,
          nodeSha256,
        );
        for (const e of out) {
          ins.run(...auditRow(e));
        }
        return out;
      });
    }
    return this.#appendAuditTx;
  }

  listAudit(f: AuditFilter): Promise<StoredAuditEntry[]> {
    return this.run(() =>
      (
        this.db
          .prepare('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?')
          .all(f.afterSeq ?? 0, f.limit ?? 1000) as Row[]
      ).map(auditFrom),
    );
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

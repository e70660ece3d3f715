/**
 * The embedded store: SQLite through better-sqlite3 (synchronous, in-process), WAL journal,
 * versioned migrations, prepared statements for every query. Every multi-row change runs in one
 * transaction. SQLite errors are mapped to ERR_STORAGE / ERR_CONFLICT so that callers see stable
 * codes and never a raw driver error.
 */
import Database from 'better-sqlite3';
import { GENESIS_HASH, linkEntries } from '../core/audit.ts';
import { BlindfoldError } from '../core/errors.ts';
import { nodeSha256 } from '../platform/node-hash.ts';
import { SQL_MIGRATIONS } from './migrations.ts';
import {
  AUDIT_COLUMNS,
  applianceFrom,
  applianceKeyFrom,
  auditFrom,
  auditRow,
  blinderFrom,
  credentialFrom,
  deletionConflict,
  enrollmentFrom,
  importFrom,
  importKeyFrom,
  keyringFrom,
  keyringsOf,
  kmsApplicationFrom,
  kmsGrantFrom,
  kmsTokenFrom,
  type Row,
  transferFrom,
  u8,
} from './rows.ts';
import type {
  ApplianceKeyRecord,
  ApplianceRecord,
  ApplianceStatus,
  AuditEntry,
  AuditFilter,
  BlinderRecord,
  CredentialRecord,
  EnrollInput,
  EnrollmentRecord,
  ImportKeyRecord,
  ImportStatus,
  ItemRecord,
  KeyringRecord,
  KeyringVersionRecord,
  KmsApplicationRecord,
  KmsGrantRecord,
  KmsTokenRecord,
  MasterImportRecord,
  MembershipEventRecord,
  Store,
  StoredAuditEntry,
  TransferRecord,
  TransferStatus,
} from './types.ts';

function storageError(e: unknown): BlindfoldError {
  if (e instanceof BlindfoldError) return e;
  const code = (e as { code?: string }).code ?? '';
  if (code.startsWith('SQLITE_CONSTRAINT')) {
    return new BlindfoldError('ERR_CONFLICT', 'the record already exists', { cause: e });
  }
  if (code === 'SQLITE_FULL') {
    return new BlindfoldError('ERR_STORAGE', 'the store is full (no space left on device)', {
      cause: e,
    });
  }
  return new BlindfoldError(
    'ERR_STORAGE',
    `the store refused the operation (${code || 'unknown'})`,
    {
      cause: e,
    },
  );
}

export function openSqliteStore(path: string): SqliteStore {
  return new SqliteStore(path);
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement>();

  constructor(path: string) {
    try {
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL'); // durable at checkpoints; WAL keeps commits atomic
      this.db.pragma('foreign_keys = ON');
      this.db.pragma('busy_timeout = 5000');
    } catch (e) {
      throw new BlindfoldError('ERR_STORAGE', `cannot open the database at ${path}`, { cause: e });
    }
  }

  private st(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  private run<T>(f: () => T): Promise<T> {
    try {
      return Promise.resolve(f());
    } catch (e) {
      return Promise.reject(storageError(e));
    }
  }

  async migrate(): Promise<void> {
    await this.run(() => {
      this.db.exec(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)',
      );
      const done = new Set(
        (this.db.prepare('SELECT version FROM schema_migrations').all() as Row[]).map(
          (r) => r.version as number,
        ),
      );
      for (const m of SQL_MIGRATIONS) {
        if (done.has(m.version)) continue;
        this.db.transaction(() => {
          this.db.exec(m.sql);
          this.db
            .prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)')
            .run(m.version, Date.now());
        })();
      }
    });
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  getSecret(name: string) {
    return this.run(() => {
      const r = this.st('SELECT sealed FROM secrets WHERE name = ?').get(name) as Row | undefined;
      return r ? u8(r.sealed) : undefined;
    });
  }

  putSecretIfAbsent(name: string, sealed: Uint8Array) {
    return this.run(
      () =>
        this.st('INSERT OR IGNORE INTO secrets (name, sealed, created_at) VALUES (?, ?, ?)').run(
          name,
          sealed,
          Date.now(),
        ).changes === 1,
    );
  }

  insertKeyring(k: KeyringRecord) {
    return this.run(() => {
      this.db.transaction(() => {
        this.st(
          `INSERT INTO keyrings (name, mode, scheme, master_version, manager_version, status, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          k.name,
          k.mode,
          k.scheme,
          k.masterVersion,
          k.managerVersion,
          k.status,
          k.createdAt,
          k.updatedAt,
        );
        this.st(
          'INSERT INTO keyring_versions (keyring, manager_version, created_at) VALUES (?, ?, ?)',
        ).run(k.name, k.managerVersion, k.createdAt);
      })();
    });
  }

  getKeyring(name: string) {
    return this.run(() => {
      const r = this.st('SELECT * FROM keyrings WHERE name = ?').get(name) as Row | undefined;
      return r ? keyringFrom(r) : undefined;
    });
  }

  listKeyrings() {
    return this.run(() =>
      (this.st('SELECT * FROM keyrings ORDER BY name').all() as Row[]).map(keyringFrom),
    );
  }

  updateKeyring(
    name: string,
    expected: { masterVersion: number; managerVersion: number },
    patch: Partial<Pick<KeyringRecord, 'masterVersion' | 'managerVersion' | 'status'>>,
    now: number,
  ) {
    return this.run(() => {
      this.db.transaction(() => {
        const cur = this.st('SELECT * FROM keyrings WHERE name = ?').get(name) as Row | undefined;
        if (!cur) throw new BlindfoldError('ERR_NOT_FOUND', `no keyring named ${name}`);
        if (
          cur.master_version !== expected.masterVersion ||
          cur.manager_version !== expected.managerVersion
        ) {
          throw new BlindfoldError('ERR_CONFLICT', `keyring ${name} changed concurrently; retry`);
        }
        const next = {
          master: patch.masterVersion ?? (cur.master_version as number),
          manager: patch.managerVersion ?? (cur.manager_version as number),
          status: patch.status ?? (cur.status as string),
        };
        this.st(
          'UPDATE keyrings SET master_version = ?, manager_version = ?, status = ?, updated_at = ? WHERE name = ?',
        ).run(next.master, next.manager, next.status, now, name);
        if (next.manager !== cur.manager_version) {
          this.st(
            'INSERT INTO keyring_versions (keyring, manager_version, created_at) VALUES (?, ?, ?)',
          ).run(name, next.manager, now);
        }
      })();
    });
  }

  listKeyringVersions(name: string) {
    return this.run(() =>
      (
        this.st('SELECT * FROM keyring_versions WHERE keyring = ? ORDER BY manager_version').all(
          name,
        ) as Row[]
      ).map(
        (r): KeyringVersionRecord => ({
          keyring: r.keyring as string,
          managerVersion: r.manager_version as number,
          createdAt: r.created_at as number,
          retiredAt: (r.retired_at as number | null) ?? null,
        }),
      ),
    );
  }

  insertAppliance(a: ApplianceRecord) {
    return this.run(() => {
      this.st(
        `INSERT INTO appliances (id, name, identity_fpr, certificate_pem, status, vouched_by, criterion, created_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        a.id,
        a.name,
        a.identityFingerprint,
        a.certificatePem,
        a.status,
        a.vouchedBy,
        a.criterion,
        a.createdAt,
        a.revokedAt,
      );
    });
  }

  getAppliance(id: string) {
    return this.run(() => {
      const r = this.st('SELECT * FROM appliances WHERE id = ?').get(id) as Row | undefined;
      return r ? applianceFrom(r) : undefined;
    });
  }

  listAppliances() {
    return this.run(() =>
      (this.st('SELECT * FROM appliances ORDER BY created_at, id').all() as Row[]).map(
        applianceFrom,
      ),
    );
  }

  revokeAppliance(id: string, now: number) {
    return this.run(() => {
      this.db.transaction(() => {
        const r = this.st(
          "UPDATE appliances SET status = 'revoked', revoked_at = ? WHERE id = ? AND status <> 'revoked'",
        ).run(now, id);
        if (r.changes === 0) {
          const exists = this.st('SELECT 1 FROM appliances WHERE id = ?').get(id);
          if (!exists) throw new BlindfoldError('ERR_NOT_FOUND', `no appliance ${id}`);
        }
        this.st('DELETE FROM appliance_keys WHERE appliance_id = ?').run(id);
      })();
    });
  }

  putApplianceKey(k: ApplianceKeyRecord) {
    return this.run(() =>
      this.db.transaction(() => {
        this.st(
          `INSERT OR IGNORE INTO appliance_keys (appliance_id, keyring, manager_version, master_version, public_key, sealed_secret, sealed_extra, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          k.applianceId,
          k.keyring,
          k.managerVersion,
          k.masterVersion,
          k.publicKey,
          k.sealedSecret,
          k.sealedExtra,
          k.createdAt,
        );
        return applianceKeyFrom(
          this.st(
            'SELECT * FROM appliance_keys WHERE appliance_id = ? AND keyring = ? AND manager_version = ? AND master_version = ?',
          ).get(k.applianceId, k.keyring, k.managerVersion, k.masterVersion) as Row,
        );
      })(),
    );
  }

  getApplianceKey(
    applianceId: string,
    keyring: string,
    managerVersion: number,
    masterVersion: number,
  ) {
    return this.run(() => {
      const r = this.st(
        'SELECT * FROM appliance_keys WHERE appliance_id = ? AND keyring = ? AND manager_version = ? AND master_version = ?',
      ).get(applianceId, keyring, managerVersion, masterVersion) as Row | undefined;
      return r ? applianceKeyFrom(r) : undefined;
    });
  }

  setApplianceKeyExtra(
    applianceId: string,
    keyring: string,
    managerVersion: number,
    masterVersion: number,
    sealedExtra: Uint8Array,
  ) {
    return this.run(() => {
      const r = this.st(
        `UPDATE appliance_keys SET sealed_extra = ?
         WHERE appliance_id = ? AND keyring = ? AND manager_version = ? AND master_version = ? AND sealed_extra IS NULL`,
      ).run(sealedExtra, applianceId, keyring, managerVersion, masterVersion);
      if (r.changes !== 1) {
        throw new BlindfoldError(
          'ERR_CONFLICT',
          'no key for this appliance and versions, or its hom2-opt setup was already done',
        );
      }
    });
  }

  setKeyringDeletion(name: string, deletionAt: number | null, now: number) {
    return this.run(() => {
      this.db.transaction(() => {
        const cur = this.st('SELECT * FROM keyrings WHERE name = ?').get(name) as Row | undefined;
        if (!cur) throw new BlindfoldError('ERR_NOT_FOUND', `no keyring named ${name}`);
        deletionConflict(name, cur, deletionAt);
        this.st('UPDATE keyrings SET deletion_at = ?, updated_at = ? WHERE name = ?').run(
          deletionAt,
          now,
          name,
        );
      })();
    });
  }

  destroyKeyring(name: string, now: number) {
    return this.run(() =>
      this.db.transaction(() => {
        const cur = this.st('SELECT * FROM keyrings WHERE name = ?').get(name) as Row | undefined;
        if (!cur || cur.status === 'deleted' || cur.deletion_at == null) return false;
        if ((cur.deletion_at as number) > now) return false;
        const prefix = `keyring/${name}/`;
        this.st('DELETE FROM secrets WHERE substr(name, 1, ?) = ?').run(prefix.length, prefix);
        this.st('DELETE FROM appliance_keys WHERE keyring = ?').run(name);
        this.st('DELETE FROM kms_grants WHERE keyring = ?').run(name);
        this.st("UPDATE keyrings SET status = 'deleted', updated_at = ? WHERE name = ?").run(
          now,
          name,
        );
        return true;
      })(),
    );
  }

  insertKmsApplication(a: KmsApplicationRecord) {
    return this.run(() => {
      this.st(
        'INSERT INTO kms_applications (id, name, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?)',
      ).run(a.id, a.name, a.status, a.createdAt, a.updatedAt);
    });
  }

  getKmsApplication(id: string) {
    return this.run(() => {
      const r = this.st('SELECT * FROM kms_applications WHERE id = ?').get(id) as Row | undefined;
      return r ? kmsApplicationFrom(r) : undefined;
    });
  }

  listKmsApplications() {
    return this.run(() =>
      (this.st('SELECT * FROM kms_applications ORDER BY name').all() as Row[]).map(
        kmsApplicationFrom,
      ),
    );
  }

  setKmsApplicationStatus(id: string, status: KmsApplicationRecord['status'], now: number) {
    return this.run(() => {
      const r = this.st('UPDATE kms_applications SET status = ?, updated_at = ? WHERE id = ?').run(
        status,
        now,
        id,
      );
      if (r.changes !== 1) throw new BlindfoldError('ERR_NOT_FOUND', `no application ${id}`);
    });
  }

  insertKmsToken(t: KmsTokenRecord) {
    return this.run(() => {
      this.st(
        `INSERT INTO kms_tokens (id, token_hash, application_id, scopes, expires_at, created_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        t.id,
        t.tokenHash,
        t.applicationId,
        JSON.stringify(t.scopes),
        t.expiresAt,
        t.createdAt,
        t.revokedAt,
      );
    });
  }

  getKmsTokenByHash(tokenHash: string) {
    return this.run(() => {
      const r = this.st('SELECT * FROM kms_tokens WHERE token_hash = ?').get(tokenHash) as
        | Row
        | undefined;
      return r ? kmsTokenFrom(r) : undefined;
    });
  }

  listKmsTokens(applicationId: string) {
    return this.run(() =>
      (
        this.st('SELECT * FROM kms_tokens WHERE application_id = ? ORDER BY created_at, id').all(
          applicationId,
        ) as Row[]
      ).map(kmsTokenFrom),
    );
  }

  revokeKmsToken(id: string, now: number) {
    return this.run(() => {
      this.db.transaction(() => {
        const r = this.st('SELECT id FROM kms_tokens WHERE id = ?').get(id) as Row | undefined;
        if (!r) throw new BlindfoldError('ERR_NOT_FOUND', `no token ${id}`);
        this.st('UPDATE kms_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(
          now,
          id,
        );
      })();
    });
  }

  putKmsGrant(g: KmsGrantRecord) {
    return this.run(() => {
      this.db.transaction(() => {
        this.st('DELETE FROM kms_grants WHERE keyring = ? AND application_id = ?').run(
          g.keyring,
          g.applicationId,
        );
        if (g.operations.length > 0) {
          this.st(
            'INSERT INTO kms_grants (keyring, application_id, operations, updated_at) VALUES (?, ?, ?, ?)',
          ).run(g.keyring, g.applicationId, JSON.stringify(g.operations), g.updatedAt);
        }
      })();
    });
  }

  listKmsGrants(keyring: string) {
    return this.run(() =>
      (
        this.st('SELECT * FROM kms_grants WHERE keyring = ? ORDER BY application_id').all(
          keyring,
        ) as Row[]
      ).map(kmsGrantFrom),
    );
  }

  deleteApplianceKeys(applianceId: string) {
    return this.run(
      () => this.st('DELETE FROM appliance_keys WHERE appliance_id = ?').run(applianceId).changes,
    );
  }

  insertItem(i: ItemRecord) {
    return this.run(() => {
      this.st(
        `INSERT INTO items (keyring, item_id, master_version, manager_version, created_by, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(i.keyring, i.itemId, i.masterVersion, i.managerVersion, i.createdBy, i.createdAt);
    });
  }

  getItem(keyring: string, itemId: Uint8Array) {
    return this.run(() => {
      const r = this.st('SELECT * FROM items WHERE keyring = ? AND item_id = ?').get(
        keyring,
        itemId,
      ) as Row | undefined;
      if (!r) return undefined;
      return {
        keyring: r.keyring as string,
        itemId: u8(r.item_id),
        masterVersion: r.master_version as number,
        managerVersion: r.manager_version as number,
        createdBy: r.created_by as string,
        createdAt: r.created_at as number,
      } satisfies ItemRecord;
    });
  }

  countItems(keyring?: string) {
    return this.run(() => {
      const r = (
        keyring === undefined
          ? this.st('SELECT count(*) AS n FROM items').get()
          : this.st('SELECT count(*) AS n FROM items WHERE keyring = ?').get(keyring)
      ) as Row;
      return r.n as number;
    });
  }

  insertEnrollment(e: EnrollmentRecord) {
    return this.run(() => {
      this.st(
        `INSERT INTO enrollments (token_hash, created_by, bound_fpr, expires_at, used_at, used_by, keyrings)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        e.tokenHash,
        e.createdBy,
        e.boundFingerprint,
        e.expiresAt,
        e.usedAt,
        e.usedBy,
        JSON.stringify(e.keyrings ?? []),
      );
    });
  }

  consumeEnrollment(tokenHash: string, usedBy: string, now: number) {
    return this.run(() =>
      this.db.transaction(() => {
        const r = this.st('SELECT * FROM enrollments WHERE token_hash = ?').get(tokenHash) as
          | Row
          | undefined;
        if (!r) throw new BlindfoldError('ERR_NOT_FOUND', 'unknown enrollment token');
        if (r.used_at != null) {
          throw new BlindfoldError('ERR_CONFLICT', 'this enrollment token was already used');
        }
        this.st('UPDATE enrollments SET used_at = ?, used_by = ? WHERE token_hash = ?').run(
          now,
          usedBy,
          tokenHash,
        );
        return {
          tokenHash,
          createdBy: r.created_by as string,
          boundFingerprint: (r.bound_fpr as string | null) ?? null,
          expiresAt: r.expires_at as number,
          usedAt: now,
          usedBy,
          ...keyringsOf(r),
        } satisfies EnrollmentRecord;
      })(),
    );
  }

  getEnrollment(tokenHash: string) {
    return this.run(() => {
      const r = this.st('SELECT * FROM enrollments WHERE token_hash = ?').get(tokenHash) as
        | Row
        | undefined;
      return r ? enrollmentFrom(r) : undefined;
    });
  }

  // -- cluster (SPEC.md §5.7) ---------------------------------------------------------------

  enrollAppliance(e: EnrollInput) {
    return this.run(() =>
      this.db.transaction(() => {
        if ('enrollment' in e.consume) {
          const r = this.st(
            'UPDATE enrollments SET used_at = ?, used_by = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?',
          ).run(e.now, e.appliance.id, e.consume.enrollment, e.now);
          if (r.changes !== 1) {
            throw new BlindfoldError('ERR_CONFLICT', 'the enrollment token was used meanwhile');
          }
        } else {
          const r = this.st(
            'UPDATE credentials SET uses = uses + 1 WHERE id = ? AND uses < max_uses',
          ).run(e.consume.credential);
          if (r.changes !== 1) {
            throw new BlindfoldError('ERR_CONFLICT', 'the credential was used up meanwhile');
          }
        }
        this.insertApplianceRow(e.appliance);
        for (const ev of e.events) this.insertEventRow(ev);
        for (const t of e.transfers) this.insertTransferRow(t);
      })(),
    );
  }

  private insertApplianceRow(a: ApplianceRecord) {
    this.st(
      `INSERT INTO appliances (id, name, identity_fpr, certificate_pem, status, vouched_by, criterion, created_at, revoked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      a.id,
      a.name,
      a.identityFingerprint,
      a.certificatePem,
      a.status,
      a.vouchedBy,
      a.criterion,
      a.createdAt,
      a.revokedAt,
    );
  }

  private insertEventRow(e: MembershipEventRecord) {
    this.st(
      `INSERT INTO membership_events (id, appliance_id, ts, event, actor, criterion, detail)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(e.id, e.applianceId, e.ts, e.event, e.actor, e.criterion, e.detail);
  }

  private insertTransferRow(t: TransferRecord) {
    this.st(
      `INSERT INTO transfers (id, target, keyring, voucher, status, claimed_by, claimed_at, versions, package, created_at, updated_at, done_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      t.id,
      t.target,
      t.keyring,
      t.voucher,
      t.status,
      t.claimedBy,
      t.claimedAt,
      JSON.stringify(t.versions),
      t.package,
      t.createdAt,
      t.updatedAt,
      t.doneAt,
    );
  }

  setApplianceStatus(
    id: string,
    from: ApplianceStatus[],
    to: ApplianceStatus,
    event: MembershipEventRecord,
  ) {
    return this.run(() =>
      this.db.transaction(() => {
        const cur = this.st('SELECT status FROM appliances WHERE id = ?').get(id) as
          | Row
          | undefined;
        if (!cur) throw new BlindfoldError('ERR_NOT_FOUND', `no appliance ${id}`);
        if (!from.includes(cur.status as ApplianceStatus)) {
          throw new BlindfoldError('ERR_CONFLICT', `appliance ${id} is ${cur.status as string}`);
        }
        this.st('UPDATE appliances SET status = ? WHERE id = ?').run(to, id);
        this.insertEventRow(event);
      })(),
    );
  }

  appendMembershipEvent(e: MembershipEventRecord) {
    return this.run(() => this.insertEventRow(e));
  }

  listMembershipEvents(applianceId?: string) {
    return this.run(() =>
      (
        (applianceId === undefined
          ? this.st('SELECT * FROM membership_events ORDER BY ts, id').all()
          : this.st('SELECT * FROM membership_events WHERE appliance_id = ? ORDER BY ts, id').all(
              applianceId,
            )) as Row[]
      ).map(
        (r): MembershipEventRecord => ({
          id: r.id as string,
          applianceId: r.appliance_id as string,
          ts: r.ts as number,
          event: r.event as string,
          actor: r.actor as string,
          criterion: (r.criterion as string | null) ?? null,
          detail: (r.detail as string | null) ?? null,
        }),
      ),
    );
  }

  listApplianceKeys(applianceId: string, keyring?: string) {
    return this.run(() =>
      (
        (keyring === undefined
          ? this.st('SELECT * FROM appliance_keys WHERE appliance_id = ?').all(applianceId)
          : this.st('SELECT * FROM appliance_keys WHERE appliance_id = ? AND keyring = ?').all(
              applianceId,
              keyring,
            )) as Row[]
      ).map(applianceKeyFrom),
    );
  }

  insertBlinder(b: BlinderRecord) {
    return this.run(() => {
      this.st(
        `INSERT INTO blinders (id, name, identity_fpr, certificate_pem, url, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(b.id, b.name, b.identityFingerprint, b.certificatePem, b.url, b.createdAt, b.updatedAt);
    });
  }

  listBlinders() {
    return this.run(() =>
      (this.st('SELECT * FROM blinders ORDER BY created_at, id').all() as Row[]).map(blinderFrom),
    );
  }

  setBlinderUrl(id: string, url: string, now: number) {
    return this.run(() => {
      const r = this.st('UPDATE blinders SET url = ?, updated_at = ? WHERE id = ?').run(
        url,
        now,
        id,
      );
      if (r.changes !== 1) throw new BlindfoldError('ERR_NOT_FOUND', `no blinder ${id}`);
    });
  }

  getKeyringChain(keyring: string) {
    return this.run(() => {
      const r = this.st('SELECT blinders FROM keyring_chains WHERE keyring = ?').get(keyring) as
        | Row
        | undefined;
      return r ? (JSON.parse(r.blinders as string) as string[]) : undefined;
    });
  }

  setKeyringChain(keyring: string, blinders: string[], now: number) {
    return this.run(() => {
      this.st(
        `INSERT INTO keyring_chains (keyring, blinders, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (keyring) DO UPDATE SET blinders = excluded.blinders, updated_at = excluded.updated_at`,
      ).run(keyring, JSON.stringify(blinders), now);
    });
  }

  insertCredential(c: CredentialRecord) {
    return this.run(() => {
      this.st(
        `INSERT INTO credentials (id, kind, value, label, keyrings, max_uses, uses, created_by, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        c.id,
        c.kind,
        c.value,
        c.label,
        JSON.stringify(c.keyrings),
        c.maxUses,
        c.uses,
        c.createdBy,
        c.createdAt,
      );
    });
  }

  listCredentials() {
    return this.run(() =>
      (this.st('SELECT * FROM credentials ORDER BY created_at, id').all() as Row[]).map(
        credentialFrom,
      ),
    );
  }

  findCredential(kind: CredentialRecord['kind'], value: string) {
    return this.run(() => {
      const r = this.st('SELECT * FROM credentials WHERE kind = ? AND value = ?').get(
        kind,
        value,
      ) as Row | undefined;
      return r ? credentialFrom(r) : undefined;
    });
  }

  deleteCredential(id: string) {
    return this.run(() => this.st('DELETE FROM credentials WHERE id = ?').run(id).changes === 1);
  }

  insertTransfer(t: TransferRecord) {
    return this.run(() => this.insertTransferRow(t));
  }

  getTransfer(id: string) {
    return this.run(() => {
      const r = this.st('SELECT * FROM transfers WHERE id = ?').get(id) as Row | undefined;
      return r ? transferFrom(r) : undefined;
    });
  }

  listOpenTransfers(target?: string) {
    return this.run(() =>
      (
        (target === undefined
          ? this.st("SELECT * FROM transfers WHERE status <> 'done' ORDER BY created_at, id").all()
          : this.st(
              "SELECT * FROM transfers WHERE status <> 'done' AND target = ? ORDER BY created_at, id",
            ).all(target)) as Row[]
      ).map(transferFrom),
    );
  }

  listTransfers(target: string, keyring: string) {
    return this.run(() =>
      (
        this.st(
          'SELECT * FROM transfers WHERE target = ? AND keyring = ? ORDER BY created_at, id',
        ).all(target, keyring) as Row[]
      ).map(transferFrom),
    );
  }

  claimTransfer(id: string, by: string, now: number, staleBefore: number) {
    return this.run(() =>
      this.db.transaction(() => {
        const r = this.st(
          `UPDATE transfers SET status = 'claimed', claimed_by = ?, claimed_at = ?, updated_at = ?
           WHERE id = ? AND (status = 'pending' OR (status = 'claimed' AND (claimed_by = ? OR claimed_at < ?)))`,
        ).run(by, now, now, id, by, staleBefore);
        if (r.changes !== 1) {
          throw new BlindfoldError(
            'ERR_CONFLICT',
            'this transfer is not open for claiming (claimed by another member, sealed or done)',
          );
        }
        return transferFrom(this.st('SELECT * FROM transfers WHERE id = ?').get(id) as Row);
      })(),
    );
  }

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
  ) {
    return this.run(() =>
      this.db.transaction(() => {
        const row = this.st('SELECT * FROM transfers WHERE id = ?').get(id) as Row | undefined;
        if (!row) throw new BlindfoldError('ERR_NOT_FOUND', `no transfer ${id}`);
        const t = transferFrom(row);
        if (t.status !== 'claimed' || t.claimedBy !== by || (t.claimedAt ?? 0) < staleBefore) {
          throw new BlindfoldError(
            'ERR_CONFLICT',
            'this member no longer holds the claim on the transfer (expired or taken over)',
          );
        }
        if (step.key) this.upsertApplianceKeyRow(step.key);
        const versions = [...t.versions];
        const v = step.version;
        if (
          v &&
          !versions.some(
            (x) => x.masterVersion === v.masterVersion && x.managerVersion === v.managerVersion,
          )
        ) {
          versions.push({ masterVersion: v.masterVersion, managerVersion: v.managerVersion });
        }
        const status: TransferStatus = step.pkg === undefined ? 'claimed' : 'sealed';
        this.st(
          'UPDATE transfers SET versions = ?, package = ?, status = ?, updated_at = ? WHERE id = ?',
        ).run(JSON.stringify(versions), step.pkg ?? t.package, status, now, id);
        return { ...t, versions, package: step.pkg ?? t.package, status, updatedAt: now };
      })(),
    );
  }

  private upsertApplianceKeyRow(k: ApplianceKeyRecord) {
    this.st(
      `INSERT INTO appliance_keys (appliance_id, keyring, manager_version, master_version, public_key, sealed_secret, sealed_extra, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (appliance_id, keyring, manager_version, master_version)
       DO UPDATE SET public_key = excluded.public_key, sealed_secret = excluded.sealed_secret, sealed_extra = excluded.sealed_extra`,
    ).run(
      k.applianceId,
      k.keyring,
      k.managerVersion,
      k.masterVersion,
      k.publicKey,
      k.sealedSecret,
      k.sealedExtra,
      k.createdAt,
    );
  }

  resetTransfer(id: string, expected: TransferStatus[], now: number) {
    return this.run(() => {
      const marks = expected.map(() => '?').join(', ');
      const r = this.db
        .prepare(
          `UPDATE transfers SET status = 'pending', claimed_by = NULL, claimed_at = NULL, package = NULL, updated_at = ?
           WHERE id = ? AND status IN (${marks})`,
        )
        .run(now, id, ...expected);
      if (r.changes !== 1) {
        throw new BlindfoldError('ERR_CONFLICT', `transfer ${id} is not ${expected.join(' or ')}`);
      }
    });
  }

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
  ) {
    return this.run(() =>
      this.db.transaction(() => {
        const row = this.st('SELECT * FROM transfers WHERE id = ?').get(id) as Row | undefined;
        if (!row) throw new BlindfoldError('ERR_NOT_FOUND', `no transfer ${id}`);
        const t = transferFrom(row);
        if (t.status !== 'sealed') {
          throw new BlindfoldError('ERR_CONFLICT', `transfer ${id} is ${t.status}, not sealed`);
        }
        const target = this.st('SELECT status FROM appliances WHERE id = ?').get(t.target) as
          | Row
          | undefined;
        if (!target || target.status === 'revoked') {
          throw new BlindfoldError('ERR_REVOKED', `appliance ${t.target} has been revoked`);
        }
        for (const k of keys) {
          const sets: string[] = [];
          const args: unknown[] = [];
          if (k.sealedSecret) {
            sets.push('sealed_secret = ?');
            args.push(k.sealedSecret);
          }
          if (k.sealedExtra) {
            sets.push('sealed_extra = ?');
            args.push(k.sealedExtra);
          }
          if (sets.length === 0) continue;
          const r = this.db
            .prepare(
              `UPDATE appliance_keys SET ${sets.join(', ')}
               WHERE appliance_id = ? AND keyring = ? AND manager_version = ? AND master_version = ?`,
            )
            .run(...args, t.target, k.keyring, k.managerVersion, k.masterVersion);
          if (r.changes !== 1) {
            throw new BlindfoldError(
              'ERR_CONFLICT',
              'the transfer names a key that does not exist',
            );
          }
        }
        this.st(
          "UPDATE transfers SET status = 'done', package = NULL, updated_at = ?, done_at = ? WHERE id = ?",
        ).run(now, now, id);
        if (target.status === 'enrolled' && trustedEvent) {
          this.st("UPDATE appliances SET status = 'trusted' WHERE id = ?").run(t.target);
          this.insertEventRow(trustedEvent);
        }
      })(),
    );
  }

  cancelTransfers(target: string) {
    return this.run(
      () =>
        this.st("DELETE FROM transfers WHERE target = ? AND status <> 'done'").run(target).changes,
    );
  }

  // -- console master-key import (SPEC.md §5.9) -------------------------------------------------

  putImportKey(k: ImportKeyRecord) {
    return this.run(() => {
      this.st(
        `INSERT INTO import_keys (appliance_id, public_key, signature, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (appliance_id) DO UPDATE SET public_key = excluded.public_key,
           signature = excluded.signature, created_at = excluded.created_at`,
      ).run(k.applianceId, k.publicKey, k.signature, k.createdAt);
    });
  }

  getImportKey(applianceId: string) {
    return this.run(() => {
      const r = this.st('SELECT * FROM import_keys WHERE appliance_id = ?').get(applianceId) as
        | Row
        | undefined;
      return r ? importKeyFrom(r) : undefined;
    });
  }

  insertImport(i: MasterImportRecord) {
    return this.run(() => {
      this.st(
        `INSERT INTO master_imports (id, appliance_id, keyring, master_version, manager_version, sealed, status, code, created_by, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        i.id,
        i.applianceId,
        i.keyring,
        i.masterVersion,
        i.managerVersion,
        i.sealed,
        i.status,
        i.code,
        i.createdBy,
        i.createdAt,
        i.updatedAt,
      );
    });
  }

  getImport(id: string) {
    return this.run(() => {
      const r = this.st('SELECT * FROM master_imports WHERE id = ?').get(id) as Row | undefined;
      return r ? importFrom(r) : undefined;
    });
  }

  listImports(filter: { applianceId?: string; status?: ImportStatus } = {}) {
    return this.run(() => {
      const where: string[] = [];
      const args: unknown[] = [];
      if (filter.applianceId !== undefined) {
        where.push('appliance_id = ?');
        args.push(filter.applianceId);
      }
      if (filter.status !== undefined) {
        where.push('status = ?');
        args.push(filter.status);
      }
      const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
      return (
        this.db
          .prepare(`SELECT * FROM master_imports ${w} ORDER BY created_at, id`)
          .all(...args) as Row[]
      ).map(importFrom);
    });
  }

  finishImport(id: string, status: 'done' | 'failed', code: string | null, now: number) {
    return this.run(() => {
      const r = this.st(
        `UPDATE master_imports SET status = ?, code = ?, sealed = NULL, updated_at = ?
         WHERE id = ? AND status = 'pending'`,
      ).run(status, code, now, id);
      if (r.changes !== 1) {
        const exists = this.st('SELECT status FROM master_imports WHERE id = ?').get(id) as
          | Row
          | undefined;
        if (!exists) throw new BlindfoldError('ERR_NOT_FOUND', `no import ${id}`);
        throw new BlindfoldError('ERR_CONFLICT', `import ${id} is ${exists.status as string}`);
      }
    });
  }

  appendAudit(entries: AuditEntry[]) {
    return this.run(() => this.#appendAudit(entries));
  }

  // One transaction function for every append (better-sqlite3 builds its wrappers per call of
  // db.transaction); the chain is linked with OpenSSL's SHA-256 (core/audit.ts linkEntries).
  #appendAuditTx?: (entries: AuditEntry[]) => StoredAuditEntry[];
  get #appendAudit(): (entries: AuditEntry[]) => StoredAuditEntry[] {
    this.#appendAuditTx ??= this.db.transaction((entries: AuditEntry[]) => {
      const last = this.st('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1').get() as
        | Row
        | undefined;
      const out = linkEntries(
        entries,
        last ? (last.seq as number) : 0,
        last ? (last.hash as string) : GENESIS_HASH,
        nodeSha256,
      );
      const ins = this.st(
        `INSERT INTO audit (${AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const e of out) {
        ins.run(...auditRow(e));
      }
      return out;
    });
    return this.#appendAuditTx;
  }

  listAudit(f: AuditFilter) {
    return this.run(() => {
      const where: string[] = ['seq > ?'];
      const args: unknown[] = [f.afterSeq ?? 0];
      if (f.actor) {
        where.push('actor = ?');
        args.push(f.actor);
      }
      if (f.action) {
        where.push('action = ?');
        args.push(f.action);
      }
      if (f.outcome) {
        where.push('outcome = ?');
        args.push(f.outcome);
      }
      args.push(Math.min(Math.max(f.limit ?? 1000, 1), 100000));
      return (
        this.db
          .prepare(`SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`)
          .all(...args) as Row[]
      ).map(auditFrom);
    });
  }
}

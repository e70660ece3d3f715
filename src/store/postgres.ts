/**
 * The scale-out store: PostgreSQL through `pg` (a connection pool shared by one manager
 * process; several manager replicas share one database). Same contract as the SQLite store
 * (src/store/types.ts, test/store.contract.test.ts): every method applies completely or not at
 * all, unique and compare-and-swap violations are ERR_CONFLICT, and every other backend failure
 * is ERR_STORAGE with a message a person can act on, never a raw driver error.
 *
 * Engines. The SQL is the portable subset of the PostgreSQL wire dialect, written for
 * PostgreSQL ≥ 12 (including streaming-replicated clusters behind a primary endpoint),
 * CockroachDB ≥ 22.2 and YugabyteDB YSQL ≥ 2.18: plain tables, BYTEA, BIGINT, INSERT ... ON
 * CONFLICT DO NOTHING, UPDATE ... RETURNING, SELECT ... FOR UPDATE, transactional DDL, the
 * `options=-c search_path=...` startup parameter. It uses no triggers, no stored procedures, no
 * sequences (seq is computed under a lock), no LISTEN/NOTIFY and NO advisory locks: CockroachDB's
 * pg_advisory_* functions were no-op stubs until v26 (they return at once and lock nothing) and
 * YugabyteDB only gained them in 2.25, so mutual exclusion comes from row locks on a small lock
 * table instead (`blindfold_locks`, one row per lock name, `SELECT ... FOR UPDATE`), which all
 * three engines implement. Transactions that an engine aborts for serialization (40001, the
 * normal case on CockroachDB's SERIALIZABLE) or deadlock (40P01) are retried a few times: a
 * transaction that failed before COMMIT was acknowledged left nothing behind.
 *
 * Integers: INTEGER is INT4 on PostgreSQL but INT8 on CockroachDB, and count(*) is INT8
 * everywhere; INT8 is parsed to a JS number (every value we store is < 2^53: versions, seq,
 * millisecond timestamps).
 */
import pg from 'pg';
import { GENESIS_HASH, linkEntries } from '../core/audit.ts';
import { BlindfoldError } from '../core/errors.ts';
import { nodeSha256 } from '../platform/node-hash.ts';
import { PG_MIGRATIONS } from './migrations.ts';
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
  eventFrom,
  importFrom,
  importKeyFrom,
  keyringFrom,
  kmsApplicationFrom,
  kmsGrantFrom,
  kmsTokenFrom,
  num,
  numOrNull,
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

type Client = pg.PoolClient;

export interface PostgresStoreOptions {
  /** Schema for every table, created if absent and set as search_path on every connection. */
  schema?: string;
  /** Pool size per process (default 10). */
  max?: number;
  /** How long to wait for a connection (new or from a busy pool) before ERR_STORAGE (5000 ms). */
  connectTimeoutMs?: number;
  /** application_name of the connections, visible in pg_stat_activity (default 'blindfold'). */
  applicationName?: string;
}

/** Names of the lock rows (see the header: row locks instead of advisory locks). */
const LOCK_MIGRATE = 'migrate';
const LOCK_AUDIT = 'audit';

const INT8_OID = 20;
const MAX_TX_ATTEMPTS = 5; // serialization failures and deadlocks
const MAX_CONN_ATTEMPTS = 2; // one reconnect after a lost connection, when that is safe
const AUDIT_ROWS_PER_INSERT = 1000; // 12 parameters a row, well under the 65535 limit

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const backoff = (attempt: number) => sleep(5 * 2 ** attempt + Math.random() * 10);

/** Only [a-z0-9_] names: they are interpolated (quoted) into DDL and the startup options. */
function checkSchemaName(s: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(s)) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      `invalid schema name "${s}": use lower-case letters, digits and _ (at most 63)`,
    );
  }
  return s;
}

type Failure = 'connection' | 'retry' | 'race' | 'other';

const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
]);

/**
 * Classes of driver errors. SQLSTATE class 08 (connection exception), 57P01 admin shutdown
 * (pg_terminate_backend, fast shutdown), 57P02 crash shutdown, 57P03 cannot connect now (starting
 * up or in recovery) and the driver's own socket errors all mean "the server is not reachable
 * right now"; 40001/40P01 mean "run the transaction again"; 23505 on a catalog or 42P06/42P07
 * during bootstrap mean two replicas created the same object at once.
 */
function classify(e: unknown): Failure {
  const code = String((e as { code?: unknown }).code ?? '');
  if (code === '40001' || code === '40P01') return 'retry';
  if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') {
    return 'connection';
  }
  if (CONNECTION_ERRNOS.has(code)) return 'connection';
  if (code === '') {
    const msg = (e as { message?: unknown }).message;
    if (
      typeof msg === 'string' &&
      /Connection terminated|timeout exceeded when trying to connect|not queryable|connection timeout|Client was closed/i.test(
        msg,
      )
    ) {
      return 'connection';
    }
  }
  return 'other';
}

function isBootstrapRace(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  // 42710 (duplicate_object): two sessions creating the same table at once can also collide on
  // the table's row type in pg_type, seen as "type ... already exists".
  return (
    code === '23505' || code === '42P06' || code === '42P07' || code === '42710' || code === '40001'
  );
}

const INSERT_EVENT = `INSERT INTO membership_events (id, appliance_id, ts, event, actor, criterion, detail)
  VALUES ($1, $2, $3, $4, $5, $6, $7)`;
const eventParams = (e: MembershipEventRecord): unknown[] => [
  e.id,
  e.applianceId,
  e.ts,
  e.event,
  e.actor,
  e.criterion,
  e.detail,
];

const INSERT_TRANSFER = `INSERT INTO transfers (id, target, keyring, voucher, status, claimed_by, claimed_at, versions, package, created_at, updated_at, done_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`;
const transferParams = (t: TransferRecord): unknown[] => [
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
];

const APPLIANCE_KEY_WHERE =
  'appliance_id = $1 AND keyring = $2 AND manager_version = $3 AND master_version = $4';

/**
 * Opens (lazily: no connection is made before the first call) a PostgreSQL store. `url` is a
 * libpq-style URL (postgres://user:pass@host:port/db?sslmode=...); a `schema=NAME` query
 * parameter is accepted as a shorthand for `opts.schema`.
 */
export function openPostgresStore(url: string, opts: PostgresStoreOptions = {}): PostgresStore {
  return new PostgresStore(url, opts);
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  /** The pool, for tests and operational tooling; the manager never touches it. */
  readonly pool: pg.Pool;
  readonly schema: string | undefined;
  /** host:port/database, without credentials, for error messages. */
  private readonly where: string;
  private closed = false;

  constructor(url: string, opts: PostgresStoreOptions = {}) {
    let connectionString = url;
    let schema = opts.schema;
    let where = 'the PostgreSQL server';
    try {
      const u = new URL(url);
      const s = u.searchParams.get('schema');
      if (s !== null) {
        u.searchParams.delete('schema');
        connectionString = u.toString();
        schema ??= s;
      }
      where = `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname}`;
    } catch {
      // not a WHATWG URL (e.g. a key=value string): pg parses it; messages stay generic
    }
    this.where = where;
    this.schema = schema === undefined ? undefined : checkSchemaName(schema);
    const types = {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID && format !== 'binary'
          ? (v: string) => Number(v)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    };
    this.pool = new pg.Pool({
      connectionString,
      max: opts.max ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: opts.applicationName ?? 'blindfold',
      // A startup parameter, so that search_path is set before the first query on every pooled
      // connection (a 'connect' handler would race with the first query on a new client).
      options: this.schema ? `-c search_path=${this.schema}` : undefined,
      types,
    });
    // An idle client whose connection dies (server restart, pg_terminate_backend) is removed
    // by the pool, which then emits 'error'; without a listener that would crash the process.
    // The next call gets a fresh connection.
    this.pool.on('error', () => {});
  }

  /** Maps any failure to ERR_CONFLICT / ERR_STORAGE (BlindfoldErrors pass through). */
  private storageError(e: unknown, committing = false): BlindfoldError {
    if (e instanceof BlindfoldError) return e;
    const code = String((e as { code?: unknown }).code ?? '');
    const msg = String((e as { message?: unknown }).message ?? '');
    if (this.closed || /Cannot use a pool after calling end/.test(msg)) {
      return new BlindfoldError('ERR_STORAGE', 'the store is closed', { cause: e });
    }
    if (code.startsWith('23')) {
      return new BlindfoldError(
        'ERR_CONFLICT',
        code === '23505'
          ? 'the record already exists'
          : `the record violates a constraint (${code})`,
        { cause: e },
      );
    }
    const kind = classify(e);
    if (kind === 'connection') {
      return new BlindfoldError(
        'ERR_STORAGE',
        committing
          ? `lost the connection to PostgreSQL at ${this.where} while committing (${code || 'connection lost'}): the change may or may not have been applied`
          : `PostgreSQL at ${this.where} is unreachable or went away (${code || 'connection lost'}); retry when it is back`,
        { cause: e },
      );
    }
    if (kind === 'retry') {
      return new BlindfoldError(
        'ERR_STORAGE',
        `PostgreSQL kept aborting the transaction under contention (${code}); retry`,
        { cause: e },
      );
    }
    if (code === '53100') {
      return new BlindfoldError('ERR_STORAGE', 'the store is full (PostgreSQL: disk full)', {
        cause: e,
      });
    }
    if (code === '25006') {
      return new BlindfoldError(
        'ERR_STORAGE',
        `PostgreSQL at ${this.where} is read-only (a standby?): point the store at the primary`,
        { cause: e },
      );
    }
    if (code === '42P01' || code === '3F000') {
      return new BlindfoldError(
        'ERR_STORAGE',
        `the PostgreSQL schema is missing (${code}): run the migrations first`,
        { cause: e },
      );
    }
    return new BlindfoldError(
      'ERR_STORAGE',
      `the store refused the operation (${code || 'unknown'})`,
      { cause: e },
    );
  }

  /**
   * One statement in autocommit mode. `idempotent` statements (reads) are sent again on a fresh
   * connection after a lost one; writes are not (the server may have applied them), except
   * when the connection could not even be obtained.
   */
  private async exec(sql: string, params: unknown[], idempotent: boolean): Promise<pg.QueryResult> {
    for (let attempt = 1; ; attempt++) {
      let client: Client;
      try {
        client = await this.pool.connect();
      } catch (e) {
        if (classify(e) === 'connection' && attempt < MAX_CONN_ATTEMPTS && !this.closed) {
          await backoff(attempt);
          continue;
        }
        throw this.storageError(e);
      }
      const onError = () => {}; // the failing query rejects as well (pg client.js)
      client.on('error', onError);
      try {
        const r = await client.query(sql, params);
        client.removeListener('error', onError);
        client.release();
        return r;
      } catch (e) {
        const lost = classify(e) === 'connection';
        client.removeListener('error', onError);
        client.release(lost ? (e as Error) : undefined);
        if (lost && idempotent && attempt < MAX_CONN_ATTEMPTS && !this.closed) {
          await backoff(attempt);
          continue;
        }
        throw this.storageError(e);
      }
    }
  }

  private read(sql: string, params: unknown[] = []): Promise<Row[]> {
    return this.exec(sql, params, true).then((r) => r.rows as Row[]);
  }

  /**
   * BEGIN ... COMMIT on one pooled connection. `f` may run more than once: after a
   * serialization failure or deadlock, and after a connection lost before COMMIT was sent (the
   * server rolls back a transaction whose connection dies). A connection lost during COMMIT
   * is reported as ERR_STORAGE without retry: the outcome is unknown.
   */
  private async tx<T>(f: (c: Client) => Promise<T>): Promise<T> {
    let connFailures = 0;
    for (let attempt = 1; ; attempt++) {
      let client: Client | undefined;
      let committing = false;
      const onError = () => {};
      try {
        client = await this.pool.connect();
        client.on('error', onError);
        await client.query('BEGIN');
        const out = await f(client);
        committing = true;
        await client.query('COMMIT');
        client.removeListener('error', onError);
        client.release();
        return out;
      } catch (e) {
        const kind = classify(e);
        if (client) {
          if (kind === 'connection') {
            client.removeListener('error', onError);
            client.release(e as Error);
          } else {
            try {
              await client.query('ROLLBACK');
              client.removeListener('error', onError);
              client.release();
            } catch (e2) {
              client.removeListener('error', onError);
              client.release(e2 as Error);
            }
          }
        }
        if (this.closed) throw this.storageError(e);
        // 40001/40P01 (also at COMMIT: the transaction was not applied) are retried.
        if (kind === 'retry' && attempt < MAX_TX_ATTEMPTS) {
          await backoff(attempt);
          continue;
        }
        if (kind === 'connection' && !committing && ++connFailures < MAX_CONN_ATTEMPTS) {
          await backoff(attempt);
          continue;
        }
        throw this.storageError(e, committing && kind === 'connection');
      }
    }
  }

  /** Takes the named lock row until the end of the transaction (see the header). */
  private async lock(c: Client, name: string): Promise<void> {
    const r = await c.query('SELECT name FROM blindfold_locks WHERE name = $1 FOR UPDATE', [name]);
    if (r.rowCount !== 1) {
      throw new BlindfoldError(
        'ERR_STORAGE',
        `the lock row "${name}" is missing: the PostgreSQL store was not migrated`,
      );
    }
  }

  /**
   * Migrations, safe when several replicas start at once:
   * 1. bootstrap in autocommit: the schema, the lock table with its rows and schema_migrations,
   *    all IF NOT EXISTS / ON CONFLICT DO NOTHING; two replicas creating the same catalog entry
   *    at the same instant make one of them fail (23505 on the catalog, 42P06/42P07), which then
   *    finds the object on a retry;
   * 2. one transaction that takes the 'migrate' lock row (replicas queue here), reads the
   *    applied versions (after the wait, so it sees what the previous holder committed) and
   *    applies the missing ones in order, DDL included (transactional DDL).
   */
  async migrate(): Promise<void> {
    const bootstrap = [
      ...(this.schema ? [`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`] : []),
      'CREATE TABLE IF NOT EXISTS blindfold_locks (name TEXT PRIMARY KEY)',
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)',
      `INSERT INTO blindfold_locks (name) VALUES ('${LOCK_MIGRATE}'), ('${LOCK_AUDIT}') ON CONFLICT (name) DO NOTHING`,
    ];
    for (let attempt = 1; ; attempt++) {
      try {
        for (const sql of bootstrap) await this.exec(sql, [], true);
        break;
      } catch (e) {
        const cause = e instanceof BlindfoldError ? e.cause : e;
        if (attempt < MAX_TX_ATTEMPTS && isBootstrapRace(cause)) {
          await backoff(attempt);
          continue;
        }
        throw this.storageError(e);
      }
    }
    await this.tx(async (c) => {
      await this.lock(c, LOCK_MIGRATE);
      const done = new Set(
        (await c.query('SELECT version FROM schema_migrations')).rows.map((r) => num(r.version)),
      );
      for (const m of [...PG_MIGRATIONS].sort((a, b) => a.version - b.version)) {
        if (done.has(m.version)) continue;
        await c.query(m.sql);
        await c.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [
          m.version,
          Date.now(),
        ]);
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  async getSecret(name: string) {
    const rows = await this.read('SELECT sealed FROM secrets WHERE name = $1', [name]);
    return rows[0] ? u8(rows[0].sealed) : undefined;
  }

  async putSecretIfAbsent(name: string, sealed: Uint8Array) {
    const r = await this.exec(
      'INSERT INTO secrets (name, sealed, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING',
      [name, sealed, Date.now()],
      false,
    );
    return r.rowCount === 1;
  }

  async insertKeyring(k: KeyringRecord) {
    await this.tx(async (c) => {
      await c.query(
        `INSERT INTO keyrings (name, mode, scheme, master_version, manager_version, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [
          k.name,
          k.mode,
          k.scheme,
          k.masterVersion,
          k.managerVersion,
          k.status,
          k.createdAt,
          k.updatedAt,
        ],
      );
      await c.query(
        'INSERT INTO keyring_versions (keyring, manager_version, created_at) VALUES ($1, $2, $3)',
        [k.name, k.managerVersion, k.createdAt],
      );
    });
  }

  async getKeyring(name: string) {
    const rows = await this.read('SELECT * FROM keyrings WHERE name = $1', [name]);
    return rows[0] ? keyringFrom(rows[0]) : undefined;
  }

  async listKeyrings() {
    return (await this.read('SELECT * FROM keyrings ORDER BY name')).map(keyringFrom);
  }

  /** Compare-and-swap: the row lock makes concurrent updaters queue, the loser sees the move. */
  async updateKeyring(
    name: string,
    expected: { masterVersion: number; managerVersion: number },
    patch: Partial<Pick<KeyringRecord, 'masterVersion' | 'managerVersion' | 'status'>>,
    now: number,
  ) {
    await this.tx(async (c) => {
      const cur = (await c.query('SELECT * FROM keyrings WHERE name = $1 FOR UPDATE', [name]))
        .rows[0] as Row | undefined;
      if (!cur) throw new BlindfoldError('ERR_NOT_FOUND', `no keyring named ${name}`);
      const curMaster = num(cur.master_version);
      const curManager = num(cur.manager_version);
      if (curMaster !== expected.masterVersion || curManager !== expected.managerVersion) {
        throw new BlindfoldError('ERR_CONFLICT', `keyring ${name} changed concurrently; retry`);
      }
      const next = {
        master: patch.masterVersion ?? curMaster,
        manager: patch.managerVersion ?? curManager,
        status: patch.status ?? (cur.status as string),
      };
      await c.query(
        'UPDATE keyrings SET master_version = $1, manager_version = $2, status = $3, updated_at = $4 WHERE name = $5',
        [next.master, next.manager, next.status, now, name],
      );
      if (next.manager !== curManager) {
        await c.query(
          'INSERT INTO keyring_versions (keyring, manager_version, created_at) VALUES ($1, $2, $3)',
          [name, next.manager, now],
        );
      }
    });
  }

  async listKeyringVersions(name: string) {
    const rows = await this.read(
      'SELECT * FROM keyring_versions WHERE keyring = $1 ORDER BY manager_version',
      [name],
    );
    return rows.map(
      (r): KeyringVersionRecord => ({
        keyring: r.keyring as string,
        managerVersion: num(r.manager_version),
        createdAt: num(r.created_at),
        retiredAt: numOrNull(r.retired_at),
      }),
    );
  }

  async insertAppliance(a: ApplianceRecord) {
    await this.exec(
      `INSERT INTO appliances (id, name, identity_fpr, certificate_pem, status, vouched_by, criterion, created_at, revoked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        a.id,
        a.name,
        a.identityFingerprint,
        a.certificatePem,
        a.status,
        a.vouchedBy,
        a.criterion,
        a.createdAt,
        a.revokedAt,
      ],
      false,
    );
  }

  async getAppliance(id: string) {
    const rows = await this.read('SELECT * FROM appliances WHERE id = $1', [id]);
    return rows[0] ? applianceFrom(rows[0]) : undefined;
  }

  async listAppliances() {
    return (await this.read('SELECT * FROM appliances ORDER BY created_at, id')).map(applianceFrom);
  }

  async revokeAppliance(id: string, now: number) {
    await this.tx(async (c) => {
      const r = await c.query(
        "UPDATE appliances SET status = 'revoked', revoked_at = $1 WHERE id = $2 AND status <> 'revoked'",
        [now, id],
      );
      if (r.rowCount === 0) {
        const exists = await c.query('SELECT 1 FROM appliances WHERE id = $1', [id]);
        if (exists.rowCount === 0) throw new BlindfoldError('ERR_NOT_FOUND', `no appliance ${id}`);
      }
      await c.query('DELETE FROM appliance_keys WHERE appliance_id = $1', [id]);
    });
  }

  /**
   * Insert-if-absent, then read back. Under READ COMMITTED, ON CONFLICT DO NOTHING waits for a
   * concurrent inserter of the same key, and the SELECT (a new snapshot) sees its row.
   */
  async putApplianceKey(k: ApplianceKeyRecord) {
    return this.tx(async (c) => {
      await c.query(
        `INSERT INTO appliance_keys (appliance_id, keyring, manager_version, master_version, public_key, sealed_secret, sealed_extra, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (appliance_id, keyring, manager_version, master_version) DO NOTHING`,
        [
          k.applianceId,
          k.keyring,
          k.managerVersion,
          k.masterVersion,
          k.publicKey,
          k.sealedSecret,
          k.sealedExtra,
          k.createdAt,
        ],
      );
      const r = await c.query(`SELECT * FROM appliance_keys WHERE ${APPLIANCE_KEY_WHERE}`, [
        k.applianceId,
        k.keyring,
        k.managerVersion,
        k.masterVersion,
      ]);
      return applianceKeyFrom(r.rows[0] as Row);
    });
  }

  async getApplianceKey(
    applianceId: string,
    keyring: string,
    managerVersion: number,
    masterVersion: number,
  ) {
    const rows = await this.read(`SELECT * FROM appliance_keys WHERE ${APPLIANCE_KEY_WHERE}`, [
      applianceId,
      keyring,
      managerVersion,
      masterVersion,
    ]);
    return rows[0] ? applianceKeyFrom(rows[0]) : undefined;
  }

  /** Conditional UPDATE: of two concurrent setters, the second re-checks IS NULL and loses. */
  async setApplianceKeyExtra(
    applianceId: string,
    keyring: string,
    managerVersion: number,
    masterVersion: number,
    sealedExtra: Uint8Array,
  ) {
    const r = await this.exec(
      `UPDATE appliance_keys SET sealed_extra = $5 WHERE ${APPLIANCE_KEY_WHERE} AND sealed_extra IS NULL`,
      [applianceId, keyring, managerVersion, masterVersion, sealedExtra],
      false,
    );
    if (r.rowCount !== 1) {
      throw new BlindfoldError(
        'ERR_CONFLICT',
        'no key for this appliance and versions, or its hom2-opt setup was already done',
      );
    }
  }

  async setKeyringDeletion(name: string, deletionAt: number | null, now: number) {
    await this.tx(async (c) => {
      const cur = (await c.query('SELECT * FROM keyrings WHERE name = $1 FOR UPDATE', [name]))
        .rows[0] as Row | undefined;
      if (!cur) throw new BlindfoldError('ERR_NOT_FOUND', `no keyring named ${name}`);
      deletionConflict(name, cur, deletionAt);
      await c.query('UPDATE keyrings SET deletion_at = $1, updated_at = $2 WHERE name = $3', [
        deletionAt,
        now,
        name,
      ]);
    });
  }

  async destroyKeyring(name: string, now: number) {
    return this.tx(async (c) => {
      const cur = (await c.query('SELECT * FROM keyrings WHERE name = $1 FOR UPDATE', [name]))
        .rows[0] as Row | undefined;
      if (!cur || cur.status === 'deleted' || cur.deletion_at == null) return false;
      if (num(cur.deletion_at) > now) return false;
      const prefix = `keyring/${name}/`;
      await c.query('DELETE FROM secrets WHERE substr(name, 1, $1) = $2', [prefix.length, prefix]);
      await c.query('DELETE FROM appliance_keys WHERE keyring = $1', [name]);
      await c.query('DELETE FROM kms_grants WHERE keyring = $1', [name]);
      await c.query("UPDATE keyrings SET status = 'deleted', updated_at = $1 WHERE name = $2", [
        now,
        name,
      ]);
      return true;
    });
  }

  async insertKmsApplication(a: KmsApplicationRecord) {
    await this.exec(
      'INSERT INTO kms_applications (id, name, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)',
      [a.id, a.name, a.status, a.createdAt, a.updatedAt],
      false,
    );
  }

  async getKmsApplication(id: string) {
    const rows = await this.read('SELECT * FROM kms_applications WHERE id = $1', [id]);
    return rows[0] ? kmsApplicationFrom(rows[0]) : undefined;
  }

  async listKmsApplications() {
    return (await this.read('SELECT * FROM kms_applications ORDER BY name')).map(
      kmsApplicationFrom,
    );
  }

  async setKmsApplicationStatus(id: string, status: KmsApplicationRecord['status'], now: number) {
    const r = await this.exec(
      'UPDATE kms_applications SET status = $1, updated_at = $2 WHERE id = $3',
      [status, now, id],
      true,
    );
    if (r.rowCount !== 1) throw new BlindfoldError('ERR_NOT_FOUND', `no application ${id}`);
  }

  async insertKmsToken(t: KmsTokenRecord) {
    await this.exec(
      `INSERT INTO kms_tokens (id, token_hash, application_id, scopes, expires_at, created_at, revoked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        t.id,
        t.tokenHash,
        t.applicationId,
        JSON.stringify(t.scopes),
        t.expiresAt,
        t.createdAt,
        t.revokedAt,
      ],
      false,
    );
  }

  async getKmsTokenByHash(tokenHash: string) {
    const rows = await this.read('SELECT * FROM kms_tokens WHERE token_hash = $1', [tokenHash]);
    return rows[0] ? kmsTokenFrom(rows[0]) : undefined;
  }

  async listKmsTokens(applicationId: string) {
    return (
      await this.read(
        'SELECT * FROM kms_tokens WHERE application_id = $1 ORDER BY created_at, id',
        [applicationId],
      )
    ).map(kmsTokenFrom);
  }

  async revokeKmsToken(id: string, now: number) {
    await this.tx(async (c) => {
      const r = (await c.query('SELECT id FROM kms_tokens WHERE id = $1 FOR UPDATE', [id])).rows[0];
      if (!r) throw new BlindfoldError('ERR_NOT_FOUND', `no token ${id}`);
      await c.query('UPDATE kms_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [
        now,
        id,
      ]);
    });
  }

  async putKmsGrant(g: KmsGrantRecord) {
    await this.tx(async (c) => {
      await c.query('DELETE FROM kms_grants WHERE keyring = $1 AND application_id = $2', [
        g.keyring,
        g.applicationId,
      ]);
      if (g.operations.length > 0) {
        await c.query(
          'INSERT INTO kms_grants (keyring, application_id, operations, updated_at) VALUES ($1, $2, $3, $4)',
          [g.keyring, g.applicationId, JSON.stringify(g.operations), g.updatedAt],
        );
      }
    });
  }

  async listKmsGrants(keyring: string) {
    return (
      await this.read('SELECT * FROM kms_grants WHERE keyring = $1 ORDER BY application_id', [
        keyring,
      ])
    ).map(kmsGrantFrom);
  }

  async deleteApplianceKeys(applianceId: string) {
    const r = await this.exec(
      'DELETE FROM appliance_keys WHERE appliance_id = $1',
      [applianceId],
      false,
    );
    return r.rowCount ?? 0;
  }

  async insertItem(i: ItemRecord) {
    await this.exec(
      `INSERT INTO items (keyring, item_id, master_version, manager_version, created_by, created_at)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [i.keyring, i.itemId, i.masterVersion, i.managerVersion, i.createdBy, i.createdAt],
      false,
    );
  }

  async getItem(keyring: string, itemId: Uint8Array) {
    const rows = await this.read('SELECT * FROM items WHERE keyring = $1 AND item_id = $2', [
      keyring,
      itemId,
    ]);
    const r = rows[0];
    if (!r) return undefined;
    return {
      keyring: r.keyring as string,
      itemId: u8(r.item_id),
      masterVersion: num(r.master_version),
      managerVersion: num(r.manager_version),
      createdBy: r.created_by as string,
      createdAt: num(r.created_at),
    } satisfies ItemRecord;
  }

  async countItems(keyring?: string) {
    const rows =
      keyring === undefined
        ? await this.read('SELECT count(*) AS n FROM items')
        : await this.read('SELECT count(*) AS n FROM items WHERE keyring = $1', [keyring]);
    return num(rows[0]?.n ?? 0);
  }

  async insertEnrollment(e: EnrollmentRecord) {
    await this.exec(
      `INSERT INTO enrollments (token_hash, created_by, bound_fpr, expires_at, used_at, used_by, keyrings)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        e.tokenHash,
        e.createdBy,
        e.boundFingerprint,
        e.expiresAt,
        e.usedAt,
        e.usedBy,
        JSON.stringify(e.keyrings ?? []),
      ],
      false,
    );
  }

  /**
   * Single use across replicas: the row lock (FOR UPDATE) makes a second consumer wait for the
   * first to commit, and then it reads used_at set.
   */
  async consumeEnrollment(tokenHash: string, usedBy: string, now: number) {
    return this.tx(async (c) => {
      const r = (
        await c.query('SELECT * FROM enrollments WHERE token_hash = $1 FOR UPDATE', [tokenHash])
      ).rows[0] as Row | undefined;
      if (!r) throw new BlindfoldError('ERR_NOT_FOUND', 'unknown enrollment token');
      if (r.used_at != null) {
        throw new BlindfoldError('ERR_CONFLICT', 'this enrollment token was already used');
      }
      await c.query('UPDATE enrollments SET used_at = $1, used_by = $2 WHERE token_hash = $3', [
        now,
        usedBy,
        tokenHash,
      ]);
      return { ...enrollmentFrom(r), usedAt: now, usedBy };
    });
  }

  async getEnrollment(tokenHash: string) {
    const rows = await this.read('SELECT * FROM enrollments WHERE token_hash = $1', [tokenHash]);
    return rows[0] ? enrollmentFrom(rows[0]) : undefined;
  }

  // -- cluster (SPEC.md §5.7); same semantics as the SQLite store --------------------------------

  async enrollAppliance(e: EnrollInput) {
    await this.tx(async (c) => {
      if ('enrollment' in e.consume) {
        const r = await c.query(
          'UPDATE enrollments SET used_at = $1, used_by = $2 WHERE token_hash = $3 AND used_at IS NULL AND expires_at > $4',
          [e.now, e.appliance.id, e.consume.enrollment, e.now],
        );
        if (r.rowCount !== 1) {
          throw new BlindfoldError('ERR_CONFLICT', 'the enrollment token was used meanwhile');
        }
      } else {
        const r = await c.query(
          'UPDATE credentials SET uses = uses + 1 WHERE id = $1 AND uses < max_uses',
          [e.consume.credential],
        );
        if (r.rowCount !== 1) {
          throw new BlindfoldError('ERR_CONFLICT', 'the credential was used up meanwhile');
        }
      }
      const a = e.appliance;
      await c.query(
        `INSERT INTO appliances (id, name, identity_fpr, certificate_pem, status, vouched_by, criterion, created_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [
          a.id,
          a.name,
          a.identityFingerprint,
          a.certificatePem,
          a.status,
          a.vouchedBy,
          a.criterion,
          a.createdAt,
          a.revokedAt,
        ],
      );
      for (const ev of e.events) await c.query(INSERT_EVENT, eventParams(ev));
      for (const t of e.transfers) await c.query(INSERT_TRANSFER, transferParams(t));
    });
  }

  async setApplianceStatus(
    id: string,
    from: ApplianceStatus[],
    to: ApplianceStatus,
    event: MembershipEventRecord,
  ) {
    await this.tx(async (c) => {
      const cur = (await c.query('SELECT status FROM appliances WHERE id = $1 FOR UPDATE', [id]))
        .rows[0] as Row | undefined;
      if (!cur) throw new BlindfoldError('ERR_NOT_FOUND', `no appliance ${id}`);
      if (!from.includes(cur.status as ApplianceStatus)) {
        throw new BlindfoldError('ERR_CONFLICT', `appliance ${id} is ${cur.status as string}`);
      }
      await c.query('UPDATE appliances SET status = $1 WHERE id = $2', [to, id]);
      await c.query(INSERT_EVENT, eventParams(event));
    });
  }

  async appendMembershipEvent(e: MembershipEventRecord) {
    await this.exec(INSERT_EVENT, eventParams(e), false);
  }

  async listMembershipEvents(applianceId?: string) {
    const rows =
      applianceId === undefined
        ? await this.read('SELECT * FROM membership_events ORDER BY ts, id')
        : await this.read(
            'SELECT * FROM membership_events WHERE appliance_id = $1 ORDER BY ts, id',
            [applianceId],
          );
    return rows.map(eventFrom);
  }

  async listApplianceKeys(applianceId: string, keyring?: string) {
    const rows =
      keyring === undefined
        ? await this.read('SELECT * FROM appliance_keys WHERE appliance_id = $1', [applianceId])
        : await this.read('SELECT * FROM appliance_keys WHERE appliance_id = $1 AND keyring = $2', [
            applianceId,
            keyring,
          ]);
    return rows.map(applianceKeyFrom);
  }

  async insertBlinder(b: BlinderRecord) {
    await this.exec(
      `INSERT INTO blinders (id, name, identity_fpr, certificate_pem, url, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [b.id, b.name, b.identityFingerprint, b.certificatePem, b.url, b.createdAt, b.updatedAt],
      false,
    );
  }

  async listBlinders() {
    return (await this.read('SELECT * FROM blinders ORDER BY created_at, id')).map(blinderFrom);
  }

  async setBlinderUrl(id: string, url: string, now: number) {
    const r = await this.exec(
      'UPDATE blinders SET url = $1, updated_at = $2 WHERE id = $3',
      [url, now, id],
      true,
    );
    if (r.rowCount !== 1) throw new BlindfoldError('ERR_NOT_FOUND', `no blinder ${id}`);
  }

  async getKeyringChain(keyring: string) {
    const rows = await this.read('SELECT blinders FROM keyring_chains WHERE keyring = $1', [
      keyring,
    ]);
    return rows[0] ? (JSON.parse(rows[0].blinders as string) as string[]) : undefined;
  }

  async setKeyringChain(keyring: string, blinders: string[], now: number) {
    await this.exec(
      `INSERT INTO keyring_chains (keyring, blinders, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (keyring) DO UPDATE SET blinders = EXCLUDED.blinders, updated_at = EXCLUDED.updated_at`,
      [keyring, JSON.stringify(blinders), now],
      true,
    );
  }

  async insertCredential(cr: CredentialRecord) {
    await this.exec(
      `INSERT INTO credentials (id, kind, value, label, keyrings, max_uses, uses, created_by, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        cr.id,
        cr.kind,
        cr.value,
        cr.label,
        JSON.stringify(cr.keyrings),
        cr.maxUses,
        cr.uses,
        cr.createdBy,
        cr.createdAt,
      ],
      false,
    );
  }

  async listCredentials() {
    return (await this.read('SELECT * FROM credentials ORDER BY created_at, id')).map(
      credentialFrom,
    );
  }

  async findCredential(kind: CredentialRecord['kind'], value: string) {
    const rows = await this.read('SELECT * FROM credentials WHERE kind = $1 AND value = $2', [
      kind,
      value,
    ]);
    return rows[0] ? credentialFrom(rows[0]) : undefined;
  }

  async deleteCredential(id: string) {
    const r = await this.exec('DELETE FROM credentials WHERE id = $1', [id], false);
    return r.rowCount === 1;
  }

  async insertTransfer(t: TransferRecord) {
    await this.exec(INSERT_TRANSFER, transferParams(t), false);
  }

  async getTransfer(id: string) {
    const rows = await this.read('SELECT * FROM transfers WHERE id = $1', [id]);
    return rows[0] ? transferFrom(rows[0]) : undefined;
  }

  async listOpenTransfers(target?: string) {
    const rows =
      target === undefined
        ? await this.read("SELECT * FROM transfers WHERE status <> 'done' ORDER BY created_at, id")
        : await this.read(
            "SELECT * FROM transfers WHERE status <> 'done' AND target = $1 ORDER BY created_at, id",
            [target],
          );
    return rows.map(transferFrom);
  }

  async listTransfers(target: string, keyring: string) {
    const rows = await this.read(
      'SELECT * FROM transfers WHERE target = $1 AND keyring = $2 ORDER BY created_at, id',
      [target, keyring],
    );
    return rows.map(transferFrom);
  }

  async claimTransfer(id: string, by: string, now: number, staleBefore: number) {
    const r = await this.exec(
      `UPDATE transfers SET status = 'claimed', claimed_by = $1, claimed_at = $2, updated_at = $2
       WHERE id = $3 AND (status = 'pending' OR (status = 'claimed' AND (claimed_by = $1 OR claimed_at < $4)))
       RETURNING *`,
      [by, now, id, staleBefore],
      false,
    );
    if (r.rowCount !== 1) {
      throw new BlindfoldError(
        'ERR_CONFLICT',
        'this transfer is not open for claiming (claimed by another member, sealed or done)',
      );
    }
    return transferFrom(r.rows[0] as Row);
  }

  async transferStep(
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
    return this.tx(async (c) => {
      const row = (await c.query('SELECT * FROM transfers WHERE id = $1 FOR UPDATE', [id]))
        .rows[0] as Row | undefined;
      if (!row) throw new BlindfoldError('ERR_NOT_FOUND', `no transfer ${id}`);
      const t = transferFrom(row);
      if (t.status !== 'claimed' || t.claimedBy !== by || (t.claimedAt ?? 0) < staleBefore) {
        throw new BlindfoldError(
          'ERR_CONFLICT',
          'this member no longer holds the claim on the transfer (expired or taken over)',
        );
      }
      const k = step.key;
      if (k) {
        await c.query(
          `INSERT INTO appliance_keys (appliance_id, keyring, manager_version, master_version, public_key, sealed_secret, sealed_extra, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (appliance_id, keyring, manager_version, master_version)
           DO UPDATE SET public_key = excluded.public_key, sealed_secret = excluded.sealed_secret, sealed_extra = excluded.sealed_extra`,
          [
            k.applianceId,
            k.keyring,
            k.managerVersion,
            k.masterVersion,
            k.publicKey,
            k.sealedSecret,
            k.sealedExtra,
            k.createdAt,
          ],
        );
      }
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
      const pkg = step.pkg ?? t.package;
      await c.query(
        'UPDATE transfers SET versions = $1, package = $2, status = $3, updated_at = $4 WHERE id = $5',
        [JSON.stringify(versions), pkg, status, now, id],
      );
      return { ...t, versions, package: pkg, status, updatedAt: now };
    });
  }

  async resetTransfer(id: string, expected: TransferStatus[], now: number) {
    const r = await this.exec(
      `UPDATE transfers SET status = 'pending', claimed_by = NULL, claimed_at = NULL, package = NULL, updated_at = $1
       WHERE id = $2 AND status = ANY($3::text[])`,
      [now, id, expected],
      false,
    );
    if (r.rowCount !== 1) {
      throw new BlindfoldError('ERR_CONFLICT', `transfer ${id} is not ${expected.join(' or ')}`);
    }
  }

  async completeTransfer(
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
    await this.tx(async (c) => {
      const row = (await c.query('SELECT * FROM transfers WHERE id = $1 FOR UPDATE', [id]))
        .rows[0] as Row | undefined;
      if (!row) throw new BlindfoldError('ERR_NOT_FOUND', `no transfer ${id}`);
      const t = transferFrom(row);
      if (t.status !== 'sealed') {
        throw new BlindfoldError('ERR_CONFLICT', `transfer ${id} is ${t.status}, not sealed`);
      }
      const target = (
        await c.query('SELECT status FROM appliances WHERE id = $1 FOR UPDATE', [t.target])
      ).rows[0] as Row | undefined;
      if (!target || target.status === 'revoked') {
        throw new BlindfoldError('ERR_REVOKED', `appliance ${t.target} has been revoked`);
      }
      for (const k of keys) {
        const sets: string[] = [];
        const args: unknown[] = [t.target, k.keyring, k.managerVersion, k.masterVersion];
        if (k.sealedSecret) {
          args.push(k.sealedSecret);
          sets.push(`sealed_secret = $${args.length}`);
        }
        if (k.sealedExtra) {
          args.push(k.sealedExtra);
          sets.push(`sealed_extra = $${args.length}`);
        }
        if (sets.length === 0) continue;
        const r = await c.query(
          `UPDATE appliance_keys SET ${sets.join(', ')} WHERE ${APPLIANCE_KEY_WHERE}`,
          args,
        );
        if (r.rowCount !== 1) {
          throw new BlindfoldError('ERR_CONFLICT', 'the transfer names a key that does not exist');
        }
      }
      await c.query(
        "UPDATE transfers SET status = 'done', package = NULL, updated_at = $1, done_at = $1 WHERE id = $2",
        [now, id],
      );
      if (target.status === 'enrolled' && trustedEvent) {
        await c.query("UPDATE appliances SET status = 'trusted' WHERE id = $1", [t.target]);
        await c.query(INSERT_EVENT, eventParams(trustedEvent));
      }
    });
  }

  async cancelTransfers(target: string) {
    const r = await this.exec(
      "DELETE FROM transfers WHERE target = $1 AND status <> 'done'",
      [target],
      false,
    );
    return r.rowCount ?? 0;
  }

  /**
   * One gap-free hash chain however many replicas append: the 'audit' lock row serializes
   * appenders (a FOR UPDATE on the last audit row would not lock an empty table, and two
   * appenders could both read the same last row), then the last entry is read in a fresh
   * snapshot, the chain is extended in memory (SPEC.md §8) and inserted. The seq primary key
   * is a second line of defence: a fork would be a 23505, never two entries with one seq.
   */
  // -- console master-key import (SPEC.md §5.9) -------------------------------------------------

  async putImportKey(k: ImportKeyRecord) {
    await this.exec(
      `INSERT INTO import_keys (appliance_id, public_key, signature, created_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (appliance_id) DO UPDATE SET public_key = excluded.public_key,
         signature = excluded.signature, created_at = excluded.created_at`,
      [k.applianceId, k.publicKey, k.signature, k.createdAt],
      true, // an upsert of the same values: safe to repeat
    );
  }

  async getImportKey(applianceId: string) {
    const rows = await this.read('SELECT * FROM import_keys WHERE appliance_id = $1', [
      applianceId,
    ]);
    return rows[0] ? importKeyFrom(rows[0]) : undefined;
  }

  async insertImport(i: MasterImportRecord) {
    await this.exec(
      `INSERT INTO master_imports (id, appliance_id, keyring, master_version, manager_version, sealed, status, code, created_by, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [
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
      ],
      false,
    );
  }

  async getImport(id: string) {
    const rows = await this.read('SELECT * FROM master_imports WHERE id = $1', [id]);
    return rows[0] ? importFrom(rows[0]) : undefined;
  }

  async listImports(filter: { applianceId?: string; status?: ImportStatus } = {}) {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.applianceId !== undefined) {
      args.push(filter.applianceId);
      where.push(`appliance_id = $${args.length}`);
    }
    if (filter.status !== undefined) {
      args.push(filter.status);
      where.push(`status = $${args.length}`);
    }
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    return (await this.read(`SELECT * FROM master_imports ${w} ORDER BY created_at, id`, args)).map(
      importFrom,
    );
  }

  async finishImport(id: string, status: 'done' | 'failed', code: string | null, now: number) {
    const r = await this.exec(
      `UPDATE master_imports SET status = $1, code = $2, sealed = NULL, updated_at = $3
       WHERE id = $4 AND status = 'pending'`,
      [status, code, now, id],
      false,
    );
    if (r.rowCount !== 1) {
      const rows = await this.read('SELECT status FROM master_imports WHERE id = $1', [id]);
      if (!rows[0]) throw new BlindfoldError('ERR_NOT_FOUND', `no import ${id}`);
      throw new BlindfoldError('ERR_CONFLICT', `import ${id} is ${rows[0].status as string}`);
    }
  }

  async appendAudit(entries: AuditEntry[]) {
    if (entries.length === 0) return [];
    return this.tx(async (c) => {
      await this.lock(c, LOCK_AUDIT);
      const last = (await c.query('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1'))
        .rows[0] as Row | undefined;
      const out: StoredAuditEntry[] = linkEntries(
        entries,
        last ? num(last.seq) : 0,
        last ? (last.hash as string) : GENESIS_HASH,
        nodeSha256,
      );
      for (let i = 0; i < out.length; i += AUDIT_ROWS_PER_INSERT) {
        const chunk = out.slice(i, i + AUDIT_ROWS_PER_INSERT);
        const params: unknown[] = [];
        const values = chunk.map((e) => {
          const b = params.length;
          params.push(...auditRow(e));
          return `(${Array.from({ length: 12 }, (_, j) => `$${b + j + 1}`).join(', ')})`;
        });
        await c.query(
          `INSERT INTO audit (${AUDIT_COLUMNS})
           VALUES ${values.join(', ')}`,
          params,
        );
      }
      return out;
    });
  }

  async listAudit(f: AuditFilter) {
    const where: string[] = ['seq > $1'];
    const args: unknown[] = [f.afterSeq ?? 0];
    if (f.actor) {
      args.push(f.actor);
      where.push(`actor = $${args.length}`);
    }
    if (f.action) {
      args.push(f.action);
      where.push(`action = $${args.length}`);
    }
    if (f.outcome) {
      args.push(f.outcome);
      where.push(`outcome = $${args.length}`);
    }
    args.push(Math.min(Math.max(f.limit ?? 1000, 1), 100000));
    const rows = await this.read(
      `SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY seq LIMIT $${args.length}`,
      args,
    );
    return rows.map(auditFrom);
  }
}

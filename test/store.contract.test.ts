/**
 * One contract for every Store implementation (src/store/types.ts), run against SQLite (a temp
 * directory) and PostgreSQL (BLINDFOLD_TEST_PG, default postgres://postgres@127.0.0.1:5432/test;
 * every test in its own fresh schema bf_test_<run>_<n>, all dropped at the end). Where no
 * PostgreSQL server is reachable the PostgreSQL half is skipped with the reason, never failed.
 *
 * Beyond each method's semantics: concurrent writers from separate store instances (separate
 * pools) on one database keep one gap-free audit chain, compare-and-swap and single-use tokens
 * have exactly one winner, migrations run concurrently apply once, a write whose second
 * statement fails leaves nothing behind, and (PostgreSQL) killed connections and an unreachable
 * server give ERR_STORAGE or a success after reconnecting, never a raw driver error or a hang.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { verifyChain } from '../src/core/audit.ts';
import { BlindfoldError, type ErrorCode } from '../src/core/errors.ts';
import { PG_MIGRATIONS, SQL_MIGRATIONS } from '../src/store/migrations.ts';
import { openPostgresStore, type PostgresStore } from '../src/store/postgres.ts';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.ts';
import type {
  ApplianceKeyRecord,
  ApplianceRecord,
  AuditEntry,
  CredentialRecord,
  EnrollInput,
  EnrollmentRecord,
  KeyringRecord,
  MembershipEventRecord,
  Store,
  TransferRecord,
} from '../src/store/types.ts';

const PG_URL = process.env.BLINDFOLD_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const PG_WHERE = PG_URL.replace(/^postgres(ql)?:\/\/([^@/]*@)?/, '');

type Row = Record<string, unknown>;

/** One database (SQLite file or PostgreSQL schema); open() gives another independent instance. */
interface Location {
  open(): Store;
  /** Distinguishes this location's PostgreSQL connections in pg_stat_activity. */
  appName: string;
}

interface Harness {
  name: string;
  migrations: number;
  unavailable?: string;
  fresh(): Promise<Location>;
  /** Raw SQL on a store's own connection, `?` placeholders. */
  raw(s: Store, sql: string, params?: unknown[]): Promise<Row[]>;
  cleanup(): Promise<void>;
}

function sqliteHarness(): Harness {
  let dir: string | undefined;
  let n = 0;
  return {
    name: 'sqlite',
    migrations: SQL_MIGRATIONS.length,
    async fresh() {
      dir ??= await mkdtemp(join(tmpdir(), 'bf-store-'));
      const path = join(dir, `db${n++}.sqlite`);
      return { open: () => openSqliteStore(path), appName: '' };
    },
    async raw(s, sql, params = []) {
      const st = (s as SqliteStore).db.prepare(sql);
      if (st.reader) return st.all(...params) as Row[];
      st.run(...params);
      return [];
    },
    async cleanup() {
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

async function pgProbe(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('SELECT 1');
    return undefined;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    return `PostgreSQL not reachable at ${PG_WHERE}: ${err.code ?? ''} ${err.message ?? String(e)}`.trim();
  } finally {
    await c.end().catch(() => {});
  }
}

function pgHarness(unavailable: string | undefined): Harness {
  const run = `bf_test_${randomBytes(5).toString('hex')}`;
  const schemas: string[] = [];
  let admin: pg.Pool | undefined;
  return {
    name: 'postgres',
    migrations: PG_MIGRATIONS.length,
    unavailable,
    async fresh() {
      const schema = `${run}_${schemas.length}`;
      schemas.push(schema);
      return {
        open: () => openPostgresStore(PG_URL, { schema, applicationName: schema, max: 10 }),
        appName: schema,
      };
    },
    async raw(s, sql, params = []) {
      let i = 0;
      const text = sql.replace(/\?/g, () => `$${++i}`);
      return (await (s as PostgresStore).pool.query(text, params)).rows as Row[];
    },
    async cleanup() {
      if (schemas.length === 0) return;
      admin ??= new pg.Pool({ connectionString: PG_URL, max: 1 });
      admin.on('error', () => {});
      for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
      await admin.end();
    },
  };
}

const pgUnavailable = await pgProbe();
const harnesses = [sqliteHarness(), pgHarness(pgUnavailable)];

// --- fixtures ---------------------------------------------------------------------------------

const T0 = 1_700_000_000_000; // milliseconds: BIGINT columns

const keyring = (name: string, o: Partial<KeyringRecord> = {}): KeyringRecord => ({
  name,
  mode: 'hom2',
  scheme: 'ristretto255-elgamal',
  masterVersion: 1,
  managerVersion: 1,
  status: 'enabled',
  createdAt: T0,
  updatedAt: T0,
  deletionAt: null,
  ...o,
});

const appliance = (id: string, o: Partial<ApplianceRecord> = {}): ApplianceRecord => ({
  id,
  name: `name-${id}`,
  identityFingerprint: `fpr-${id}`,
  certificatePem: `-----BEGIN CERTIFICATE-----\n${id}\n-----END CERTIFICATE-----\n`,
  status: 'trusted',
  vouchedBy: 'operator',
  criterion: 'token',
  createdAt: T0,
  revokedAt: null,
  ...o,
});

const applianceKey = (o: Partial<ApplianceKeyRecord> = {}): ApplianceKeyRecord => ({
  applianceId: 'a1',
  keyring: 'k',
  managerVersion: 1,
  masterVersion: 1,
  publicKey: new Uint8Array(randomBytes(32)),
  sealedSecret: new Uint8Array(randomBytes(60)),
  sealedExtra: null,
  createdAt: T0,
  ...o,
});

const enrollment = (tokenHash: string, o: Partial<EnrollmentRecord> = {}): EnrollmentRecord => ({
  tokenHash,
  createdBy: 'operator',
  boundFingerprint: null,
  expiresAt: T0 + 3_600_000,
  usedAt: null,
  usedBy: null,
  ...o,
});

const event = (
  id: string,
  applianceId: string,
  o: Partial<MembershipEventRecord> = {},
): MembershipEventRecord => ({
  id,
  applianceId,
  ts: T0,
  event: 'vouched',
  actor: 'operator',
  criterion: 'token',
  detail: null,
  ...o,
});

const credential = (id: string, o: Partial<CredentialRecord> = {}): CredentialRecord => ({
  id,
  kind: 'fingerprint',
  value: `value-${id}`,
  label: `label ${id}`,
  keyrings: ['k'],
  maxUses: 1,
  uses: 0,
  createdBy: 'operator',
  createdAt: T0,
  ...o,
});

const transfer = (id: string, o: Partial<TransferRecord> = {}): TransferRecord => ({
  id,
  target: 'n1',
  keyring: 'k',
  voucher: null,
  status: 'pending',
  claimedBy: null,
  claimedAt: null,
  versions: [],
  package: null,
  createdAt: T0,
  updatedAt: T0,
  doneAt: null,
  ...o,
});

const enroll = (
  id: string,
  consume: EnrollInput['consume'],
  o: Partial<EnrollInput> = {},
): EnrollInput => ({
  appliance: appliance(id, { status: 'enrolled' }),
  consume,
  now: T0 + 1,
  events: [event(`ev-${id}`, id)],
  transfers: [transfer(`tr-${id}`, { target: id })],
  ...o,
});

let auditN = 0;
const entry = (o: Partial<AuditEntry> = {}): AuditEntry => ({
  ts: T0 + auditN++,
  actor: 'appliance:a1',
  action: 'recover',
  keyring: 'k',
  item: 'aXRlbQ',
  keyVersion: 1,
  outcome: 'ok',
  code: null,
  requestId: `req-${auditN}`,
  ...o,
});

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<BlindfoldError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof BlindfoldError, `expected a BlindfoldError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

/** Resolves to the outcome, or fails the test if the call neither resolves nor rejects in time. */
async function settleWithin<T>(p: Promise<T>, ms: number): Promise<PromiseSettledResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the store call hung for ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([Promise.allSettled([p]).then((r) => r[0]), hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens several pooled connections per store first, so that concurrent calls really overlap. */
async function warm(stores: Store[]): Promise<void> {
  await Promise.all(stores.flatMap((s) => Array.from({ length: 6 }, () => s.getSecret('warm'))));
}

function outcomes<T>(rs: PromiseSettledResult<T>[]) {
  const ok = rs.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<T>[];
  const failed = rs.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
  return { ok, failed };
}

// --- the contract -----------------------------------------------------------------------------

for (const h of harnesses) {
  describe(`Store contract: ${h.name}`, () => {
    after(() => h.cleanup());

    /** A test on fresh, migrated store instances of one new database. */
    const it = (
      name: string,
      fn: (s: Store[], loc: Location) => Promise<void>,
      opts: { instances?: number; migrate?: boolean } = {},
    ) =>
      test(name, async (t) => {
        if (h.unavailable) {
          t.skip(h.unavailable);
          return;
        }
        const loc = await h.fresh();
        const stores = Array.from({ length: opts.instances ?? 1 }, () => loc.open());
        try {
          if (opts.migrate !== false) await stores[0]!.migrate();
          await fn(stores, loc);
        } finally {
          for (const s of stores) await s.close();
        }
      });

    it('kind, and migrate twice is a no-op', async ([s]) => {
      assert.equal(s!.kind, h.name);
      await s!.migrate();
      const rows = await h.raw(s!, 'SELECT version FROM schema_migrations ORDER BY version');
      assert.equal(rows.length, h.migrations);
    });

    it('secrets: insert once, read back the same bytes', async ([s]) => {
      assert.equal(await s!.getSecret('root'), undefined);
      const sealed = new Uint8Array(randomBytes(77));
      assert.equal(await s!.putSecretIfAbsent('root', sealed), true);
      const got = await s!.getSecret('root');
      assert.ok(got instanceof Uint8Array);
      assert.deepEqual(new Uint8Array(got!), sealed);
      assert.equal(await s!.putSecretIfAbsent('root', new Uint8Array(randomBytes(77))), false);
      assert.deepEqual(new Uint8Array((await s!.getSecret('root'))!), sealed);
    });

    it('keyrings: insert, get, list in name order, versions, duplicates', async ([s]) => {
      await s!.insertKeyring(keyring('zeta'));
      await s!.insertKeyring(keyring('alpha', { mode: 'split', scheme: 'xor', managerVersion: 3 }));
      assert.deepEqual(await s!.getKeyring('zeta'), keyring('zeta'));
      assert.equal(await s!.getKeyring('nope'), undefined);
      assert.deepEqual(
        (await s!.listKeyrings()).map((k) => k.name),
        ['alpha', 'zeta'],
      );
      assert.deepEqual(await s!.listKeyringVersions('alpha'), [
        { keyring: 'alpha', managerVersion: 3, createdAt: T0, retiredAt: null },
      ]);
      assert.deepEqual(await s!.listKeyringVersions('nope'), []);
      await rejectsWith(s!.insertKeyring(keyring('zeta')), 'ERR_CONFLICT');
    });

    it('keyring deletion: schedule, cancel, conflicts, destroy only when due', async ([s]) => {
      await s!.insertKeyring(keyring('k'));
      await s!.insertKeyring(keyring('k.other'));
      for (const n of ['keyring/k/v1/ticket', 'keyring/k/v1/share', 'keyring/k.other/v1/share']) {
        await s!.putSecretIfAbsent(n, new Uint8Array([1, 2, 3]));
      }
      await s!.putApplianceKey({
        applianceId: 'ap-1',
        keyring: 'k',
        managerVersion: 1,
        masterVersion: 1,
        publicKey: new Uint8Array([9]),
        sealedSecret: new Uint8Array([8]),
        sealedExtra: null,
        createdAt: T0,
      });
      await s!.putKmsGrant({
        keyring: 'k',
        applicationId: 'app-1',
        operations: ['decrypt'],
        updatedAt: T0,
      });
      await rejectsWith(s!.setKeyringDeletion('nope', T0 + 10, T0), 'ERR_NOT_FOUND');
      await rejectsWith(s!.setKeyringDeletion('k', null, T0), 'ERR_CONFLICT');
      await s!.setKeyringDeletion('k', T0 + 10, T0 + 1);
      assert.equal((await s!.getKeyring('k'))!.deletionAt, T0 + 10);
      await rejectsWith(s!.setKeyringDeletion('k', T0 + 20, T0), 'ERR_CONFLICT');
      assert.equal(await s!.destroyKeyring('k', T0 + 9), false, 'not due yet');
      assert.ok(await s!.getSecret('keyring/k/v1/ticket'));
      await s!.setKeyringDeletion('k', null, T0 + 2);
      assert.equal((await s!.getKeyring('k'))!.deletionAt, null);
      assert.equal(await s!.destroyKeyring('k', T0 + 100), false, 'cancelled: nothing due');
      await s!.setKeyringDeletion('k', T0 + 10, T0 + 3);
      assert.equal(await s!.destroyKeyring('k', T0 + 10), true);
      const k = await s!.getKeyring('k');
      assert.equal(k!.status, 'deleted');
      assert.equal(await s!.getSecret('keyring/k/v1/ticket'), undefined);
      assert.equal(await s!.getSecret('keyring/k/v1/share'), undefined);
      assert.ok(await s!.getSecret('keyring/k.other/v1/share'), 'another keyring keeps its keys');
      assert.equal(await s!.getApplianceKey('ap-1', 'k', 1, 1), undefined);
      assert.deepEqual(await s!.listKmsGrants('k'), []);
      assert.equal(await s!.destroyKeyring('k', T0 + 10), false, 'once only');
      await rejectsWith(s!.setKeyringDeletion('k', null, T0), 'ERR_CONFLICT');
    });

    it('KMS: applications, tokens by hash, revocation, grants', async ([s]) => {
      const app = {
        id: 'app-1',
        name: 'billing',
        status: 'enabled' as const,
        createdAt: T0,
        updatedAt: T0,
      };
      await s!.insertKmsApplication(app);
      await rejectsWith(s!.insertKmsApplication({ ...app, id: 'app-2' }), 'ERR_CONFLICT');
      assert.deepEqual(await s!.getKmsApplication('app-1'), app);
      assert.equal(await s!.getKmsApplication('app-9'), undefined);
      await s!.setKmsApplicationStatus('app-1', 'disabled', T0 + 1);
      assert.deepEqual(await s!.listKmsApplications(), [
        { ...app, status: 'disabled', updatedAt: T0 + 1 },
      ]);
      await rejectsWith(s!.setKmsApplicationStatus('app-9', 'enabled', T0), 'ERR_NOT_FOUND');
      const tok = {
        id: 'tok-1',
        tokenHash: 'ab'.repeat(32),
        applicationId: 'app-1',
        scopes: ['decrypt', 'generate-data-key'],
        expiresAt: 0,
        createdAt: T0,
        revokedAt: null,
      };
      await s!.insertKmsToken(tok);
      await rejectsWith(s!.insertKmsToken({ ...tok, id: 'tok-2' }), 'ERR_CONFLICT');
      assert.deepEqual(await s!.getKmsTokenByHash(tok.tokenHash), tok);
      assert.equal(await s!.getKmsTokenByHash('cd'.repeat(32)), undefined);
      await s!.revokeKmsToken('tok-1', T0 + 5);
      await s!.revokeKmsToken('tok-1', T0 + 6);
      assert.deepEqual(await s!.listKmsTokens('app-1'), [{ ...tok, revokedAt: T0 + 5 }]);
      await rejectsWith(s!.revokeKmsToken('tok-9', T0), 'ERR_NOT_FOUND');
      await s!.putKmsGrant({
        keyring: 'k',
        applicationId: 'app-1',
        operations: ['decrypt'],
        updatedAt: T0,
      });
      await s!.putKmsGrant({
        keyring: 'k',
        applicationId: 'app-0',
        operations: ['encrypt'],
        updatedAt: T0,
      });
      await s!.putKmsGrant({
        keyring: 'k',
        applicationId: 'app-1',
        operations: ['encrypt', 'decrypt'],
        updatedAt: T0 + 1,
      });
      assert.deepEqual(await s!.listKmsGrants('k'), [
        { keyring: 'k', applicationId: 'app-0', operations: ['encrypt'], updatedAt: T0 },
        {
          keyring: 'k',
          applicationId: 'app-1',
          operations: ['encrypt', 'decrypt'],
          updatedAt: T0 + 1,
        },
      ]);
      await s!.putKmsGrant({ keyring: 'k', applicationId: 'app-0', operations: [], updatedAt: T0 });
      assert.equal((await s!.listKmsGrants('k')).length, 1);
    });

    it('updateKeyring: compare-and-swap, version rows, status, not found', async ([s]) => {
      await s!.insertKeyring(keyring('k'));
      await s!.updateKeyring(
        'k',
        { masterVersion: 1, managerVersion: 1 },
        { masterVersion: 2 },
        T0 + 1,
      );
      let k = await s!.getKeyring('k');
      assert.equal(k!.masterVersion, 2);
      assert.equal(k!.updatedAt, T0 + 1);
      assert.equal((await s!.listKeyringVersions('k')).length, 1, 'master bump adds no version');
      await s!.updateKeyring(
        'k',
        { masterVersion: 2, managerVersion: 1 },
        { managerVersion: 2 },
        T0 + 2,
      );
      assert.deepEqual(
        (await s!.listKeyringVersions('k')).map((v) => [v.managerVersion, v.createdAt]),
        [
          [1, T0],
          [2, T0 + 2],
        ],
      );
      await s!.updateKeyring(
        'k',
        { masterVersion: 2, managerVersion: 2 },
        { status: 'disabled' },
        T0 + 3,
      );
      k = await s!.getKeyring('k');
      assert.deepEqual(
        k,
        keyring('k', {
          masterVersion: 2,
          managerVersion: 2,
          status: 'disabled',
          updatedAt: T0 + 3,
        }),
      );
      await rejectsWith(
        s!.updateKeyring(
          'k',
          { masterVersion: 1, managerVersion: 1 },
          { masterVersion: 9 },
          T0 + 4,
        ),
        'ERR_CONFLICT',
      );
      assert.deepEqual(await s!.getKeyring('k'), k, 'a lost CAS changes nothing');
      await rejectsWith(
        s!.updateKeyring('nope', { masterVersion: 1, managerVersion: 1 }, {}, T0),
        'ERR_NOT_FOUND',
      );
    });

    it('appliances: insert, get, list order, unique fingerprint, revoke destroys keys', async ([
      s,
    ]) => {
      await s!.insertAppliance(appliance('b', { createdAt: T0 + 1 }));
      await s!.insertAppliance(appliance('c', { createdAt: T0 }));
      await s!.insertAppliance(
        appliance('a', { createdAt: T0 + 1, vouchedBy: 'c', criterion: 'credential' }),
      );
      assert.deepEqual(
        await s!.getAppliance('a'),
        appliance('a', { createdAt: T0 + 1, vouchedBy: 'c', criterion: 'credential' }),
      );
      assert.equal(await s!.getAppliance('x'), undefined);
      assert.deepEqual(
        (await s!.listAppliances()).map((a) => a.id),
        ['c', 'a', 'b'],
      );
      await rejectsWith(s!.insertAppliance(appliance('a')), 'ERR_CONFLICT');
      await rejectsWith(
        s!.insertAppliance(appliance('d', { identityFingerprint: 'fpr-a' })),
        'ERR_CONFLICT',
      );

      await s!.putApplianceKey(applianceKey({ applianceId: 'a' }));
      await s!.putApplianceKey(applianceKey({ applianceId: 'a', masterVersion: 2 }));
      await s!.putApplianceKey(applianceKey({ applianceId: 'b' }));
      await s!.revokeAppliance('a', T0 + 5);
      const a = await s!.getAppliance('a');
      assert.equal(a!.status, 'revoked');
      assert.equal(a!.revokedAt, T0 + 5);
      assert.equal(await s!.getApplianceKey('a', 'k', 1, 1), undefined);
      assert.equal(await s!.getApplianceKey('a', 'k', 1, 2), undefined);
      assert.ok(await s!.getApplianceKey('b', 'k', 1, 1), "another appliance's keys stay");
      await s!.revokeAppliance('a', T0 + 9); // again: no error, first revocation time stays
      assert.equal((await s!.getAppliance('a'))!.revokedAt, T0 + 5);
      await rejectsWith(s!.revokeAppliance('x', T0), 'ERR_NOT_FOUND');
    });

    it('appliance keys: insert-if-absent, get, extra once, delete', async ([s]) => {
      const k1 = applianceKey({ publicKey: new Uint8Array(0) }); // split mode: empty public key
      assert.deepEqual(await s!.putApplianceKey(k1), k1);
      const again = await s!.putApplianceKey(applianceKey()); // different bytes, same key
      assert.deepEqual(again, k1, 'the stored record wins');
      const got = await s!.getApplianceKey('a1', 'k', 1, 1);
      assert.deepEqual(got, k1);
      assert.ok(got!.publicKey instanceof Uint8Array && got!.sealedSecret instanceof Uint8Array);
      assert.equal(await s!.getApplianceKey('a1', 'k', 1, 2), undefined);
      assert.equal(await s!.getApplianceKey('a1', 'k', 2, 1), undefined);

      const extra = new Uint8Array(randomBytes(48));
      await s!.setApplianceKeyExtra('a1', 'k', 1, 1, extra);
      assert.deepEqual((await s!.getApplianceKey('a1', 'k', 1, 1))!.sealedExtra, extra);
      await rejectsWith(
        s!.setApplianceKeyExtra('a1', 'k', 1, 1, new Uint8Array(48)),
        'ERR_CONFLICT',
      );
      assert.deepEqual((await s!.getApplianceKey('a1', 'k', 1, 1))!.sealedExtra, extra);
      await rejectsWith(s!.setApplianceKeyExtra('a1', 'k', 7, 1, extra), 'ERR_CONFLICT');

      await s!.putApplianceKey(applianceKey({ masterVersion: 2 }));
      await s!.putApplianceKey(applianceKey({ applianceId: 'a2' }));
      assert.equal(await s!.deleteApplianceKeys('a1'), 2);
      assert.equal(await s!.deleteApplianceKeys('a1'), 0);
      assert.ok(await s!.getApplianceKey('a2', 'k', 1, 1));
    });

    it('items: insert, get, duplicates, counts', async ([s]) => {
      const id = new Uint8Array(randomBytes(16));
      const item = {
        keyring: 'k',
        itemId: id,
        masterVersion: 1,
        managerVersion: 1,
        createdBy: 'a1',
        createdAt: T0,
      };
      await s!.insertItem(item);
      await s!.insertItem({ ...item, itemId: new Uint8Array(randomBytes(16)) });
      await s!.insertItem({ ...item, keyring: 'other' }); // same id, other keyring
      await rejectsWith(s!.insertItem(item), 'ERR_CONFLICT');
      assert.deepEqual(await s!.getItem('k', id), item);
      assert.equal(await s!.getItem('k', new Uint8Array(16)), undefined);
      assert.equal(await s!.countItems(), 3);
      assert.equal(await s!.countItems('k'), 2);
      assert.equal(await s!.countItems('none'), 0);
    });

    it('enrollments: single use, unknown, duplicates', async ([s]) => {
      await s!.insertEnrollment(enrollment('t1', { boundFingerprint: 'fpr-x' }));
      await rejectsWith(s!.insertEnrollment(enrollment('t1')), 'ERR_CONFLICT');
      const used = await s!.consumeEnrollment('t1', 'a1', T0 + 10);
      assert.deepEqual(
        used,
        enrollment('t1', { boundFingerprint: 'fpr-x', usedAt: T0 + 10, usedBy: 'a1' }),
      );
      await rejectsWith(s!.consumeEnrollment('t1', 'a2', T0 + 11), 'ERR_CONFLICT');
      await rejectsWith(s!.consumeEnrollment('nope', 'a2', T0), 'ERR_NOT_FOUND');
    });

    it('audit: chained appends, filters, nulls, large timestamps', async ([s]) => {
      assert.deepEqual(await s!.appendAudit([]), []);
      const first = await s!.appendAudit([
        entry(),
        entry({ outcome: 'refused', code: 'ERR_FORBIDDEN', actor: 'appliance:a2' }),
        entry({
          keyring: null,
          item: null,
          keyVersion: null,
          requestId: null,
          action: 'login',
          ts: 2 ** 53 - 1,
        }),
      ]);
      assert.deepEqual(
        first.map((e) => e.seq),
        [1, 2, 3],
      );
      const second = await s!.appendAudit([
        entry({ outcome: 'error', code: 'ERR_INTERNAL' }),
        entry(),
      ]);
      assert.equal(second[0]!.prevHash, first[2]!.hash);
      const all = await s!.listAudit({});
      assert.deepEqual(all, [...first, ...second]);
      assert.deepEqual(verifyChain(all), { ok: true, checked: 5 });
      assert.equal(all[2]!.ts, 2 ** 53 - 1);
      assert.deepEqual(
        (await s!.listAudit({ afterSeq: 2, limit: 2 })).map((e) => e.seq),
        [3, 4],
      );
      assert.deepEqual(
        (await s!.listAudit({ actor: 'appliance:a2' })).map((e) => e.seq),
        [2],
      );
      assert.deepEqual(
        (await s!.listAudit({ action: 'login' })).map((e) => e.seq),
        [3],
      );
      assert.deepEqual(
        (await s!.listAudit({ outcome: 'error' })).map((e) => e.seq),
        [4],
      );
      assert.deepEqual(
        (await s!.listAudit({ limit: 0 })).map((e) => e.seq),
        [1],
        'limit is clamped to at least 1',
      );
      // verifying from the middle of the log
      assert.equal(verifyChain(all.slice(3), all[2]!.hash, 4).ok, true);
    });

    it(
      'concurrent writers: 20 appendAudit calls from 2 instances keep one gap-free chain',
      async (stores) => {
        await warm(stores);
        const calls = Array.from({ length: 20 }, (_, i) => {
          const batch = Array.from({ length: 1 + (i % 3) }, () =>
            entry({ actor: `writer-${i % 2}` }),
          );
          return stores[i % 2]!.appendAudit(batch);
        });
        const results = await Promise.all(calls);
        const total = results.reduce((n, r) => n + r.length, 0);
        const all = await stores[0]!.listAudit({ limit: 100000 });
        assert.equal(all.length, total);
        assert.deepEqual(verifyChain(all), { ok: true, checked: total });
        const bySeq = new Map(all.map((e) => [e.seq, e]));
        for (const r of results) {
          for (const e of r)
            assert.deepEqual(bySeq.get(e.seq), e, 'what a writer was told is stored');
        }
        assert.deepEqual(
          results
            .flat()
            .map((e) => e.seq)
            .sort((a, b) => a - b),
          Array.from({ length: total }, (_, i) => i + 1),
        );
      },
      { instances: 2 },
    );

    it(
      'compare-and-swap: of two concurrent updates with one expected version, exactly one wins',
      async ([a, b]) => {
        await warm([a!, b!]);
        await a!.insertKeyring(keyring('k'));
        for (let r = 0; r < 5; r++) {
          const expected = { masterVersion: 1 + r, managerVersion: 1 };
          const rs = await Promise.allSettled([
            a!.updateKeyring('k', expected, { masterVersion: 2 + r }, T0 + r),
            b!.updateKeyring('k', expected, { masterVersion: 2 + r }, T0 + r),
          ]);
          const { ok, failed } = outcomes(rs);
          assert.equal(ok.length, 1, `round ${r}: one winner`);
          assert.ok(failed[0]!.reason instanceof BlindfoldError);
          assert.equal(failed[0]!.reason.code, 'ERR_CONFLICT');
        }
        assert.equal((await b!.getKeyring('k'))!.masterVersion, 6);
        // a manager-version bump: one new version row, not two
        const rs = await Promise.allSettled([
          a!.updateKeyring(
            'k',
            { masterVersion: 6, managerVersion: 1 },
            { managerVersion: 2 },
            T0 + 10,
          ),
          b!.updateKeyring(
            'k',
            { masterVersion: 6, managerVersion: 1 },
            { managerVersion: 2 },
            T0 + 11,
          ),
        ]);
        assert.equal(outcomes(rs).ok.length, 1);
        assert.deepEqual(
          (await a!.listKeyringVersions('k')).map((v) => v.managerVersion),
          [1, 2],
        );
      },
      { instances: 2 },
    );

    it(
      'single-use enrollment and one-time hom2-opt setup under concurrency',
      async ([a, b]) => {
        await warm([a!, b!]);
        await a!.insertEnrollment(enrollment('tok'));
        const rs = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) =>
            (i % 2 ? a! : b!).consumeEnrollment('tok', `app-${i}`, T0 + i),
          ),
        );
        const { ok, failed } = outcomes(rs);
        assert.equal(ok.length, 1, 'exactly one consumer succeeds');
        for (const f of failed) {
          assert.ok(f.reason instanceof BlindfoldError);
          assert.equal(f.reason.code, 'ERR_CONFLICT');
        }
        // the winner's record is the one stored
        await rejectsWith(a!.consumeEnrollment('tok', 'late', T0), 'ERR_CONFLICT');

        const k = applianceKey();
        await a!.putApplianceKey(k);
        const extras = await Promise.allSettled([
          a!.setApplianceKeyExtra('a1', 'k', 1, 1, new Uint8Array(32).fill(1)),
          b!.setApplianceKeyExtra('a1', 'k', 1, 1, new Uint8Array(32).fill(2)),
        ]);
        assert.equal(outcomes(extras).ok.length, 1);
        const winner = extras[0]!.status === 'fulfilled' ? 1 : 2;
        assert.deepEqual(
          (await b!.getApplianceKey('a1', 'k', 1, 1))!.sealedExtra,
          new Uint8Array(32).fill(winner),
        );
      },
      { instances: 2 },
    );

    it(
      'putApplianceKey race: both callers get the one stored record',
      async ([a, b]) => {
        await warm([a!, b!]);
        const [ra, rb] = await Promise.all([
          a!.putApplianceKey(applianceKey()),
          b!.putApplianceKey(applianceKey()),
        ]);
        assert.deepEqual(ra, rb);
        assert.deepEqual(await a!.getApplianceKey('a1', 'k', 1, 1), ra);
      },
      { instances: 2 },
    );

    it('cluster enrollment by token: all or nothing, single use, expiry', async ([s]) => {
      await s!.insertEnrollment(enrollment('tok', { keyrings: ['k', 'j'] }));
      assert.deepEqual(await s!.getEnrollment('tok'), enrollment('tok', { keyrings: ['k', 'j'] }));
      assert.equal(await s!.getEnrollment('nope'), undefined);
      await s!.enrollAppliance(enroll('n1', { enrollment: 'tok' }));
      const used = await s!.getEnrollment('tok');
      assert.equal(used!.usedAt, T0 + 1);
      assert.equal(used!.usedBy, 'n1');
      assert.equal((await s!.getAppliance('n1'))!.status, 'enrolled');
      assert.deepEqual(await s!.listMembershipEvents('n1'), [event('ev-n1', 'n1')]);
      assert.deepEqual(await s!.listOpenTransfers('n1'), [transfer('tr-n1')]);

      await rejectsWith(s!.enrollAppliance(enroll('n2', { enrollment: 'tok' })), 'ERR_CONFLICT');
      assert.equal(await s!.getAppliance('n2'), undefined);
      await s!.insertEnrollment(enrollment('old', { expiresAt: T0 }));
      await rejectsWith(s!.enrollAppliance(enroll('n3', { enrollment: 'old' })), 'ERR_CONFLICT');
      await rejectsWith(s!.enrollAppliance(enroll('n3', { enrollment: 'nope' })), 'ERR_CONFLICT');

      // The identity is already enrolled: the token stays unused, nothing else is written.
      await s!.insertEnrollment(enrollment('tok2'));
      const dup = enroll('n4', { enrollment: 'tok2' });
      dup.appliance.identityFingerprint = 'fpr-n1';
      await rejectsWith(s!.enrollAppliance(dup), 'ERR_CONFLICT');
      assert.equal((await s!.getEnrollment('tok2'))!.usedAt, null);
      assert.deepEqual(await s!.listMembershipEvents('n4'), []);
      assert.deepEqual(await s!.listOpenTransfers('n4'), []);
      assert.equal((await s!.listOpenTransfers()).length, 1);
    });

    it(
      'cluster enrollment under concurrency: one token or one credential use, one newcomer',
      async ([a, b]) => {
        await warm([a!, b!]);
        await a!.insertEnrollment(enrollment('tok'));
        await a!.insertCredential(credential('c1', { maxUses: 2 }));
        const byToken = await Promise.allSettled(
          Array.from({ length: 6 }, (_, i) =>
            (i % 2 ? a! : b!).enrollAppliance(enroll(`t${i}`, { enrollment: 'tok' })),
          ),
        );
        assert.equal(outcomes(byToken).ok.length, 1);
        const byCred = await Promise.allSettled(
          Array.from({ length: 6 }, (_, i) =>
            (i % 2 ? a! : b!).enrollAppliance(enroll(`c${i}`, { credential: 'c1' })),
          ),
        );
        assert.equal(outcomes(byCred).ok.length, 2, 'maxUses 2: two enrollments');
        for (const f of [...outcomes(byToken).failed, ...outcomes(byCred).failed]) {
          assert.ok(f.reason instanceof BlindfoldError);
          assert.equal(f.reason.code, 'ERR_CONFLICT');
        }
        assert.equal((await b!.findCredential('fingerprint', 'value-c1'))!.uses, 2);
        assert.equal((await b!.listAppliances()).length, 3);
        assert.equal((await b!.listOpenTransfers()).length, 3);
      },
      { instances: 2 },
    );

    it('credentials: insert, list, find, unique (kind, value), delete', async ([s]) => {
      await s!.insertCredential(
        credential('b', { createdAt: T0 + 1, kind: 'secret', keyrings: [] }),
      );
      await s!.insertCredential(credential('a', { createdAt: T0 + 1 }));
      await s!.insertCredential(credential('c'));
      assert.deepEqual(
        (await s!.listCredentials()).map((c) => c.id),
        ['c', 'a', 'b'],
      );
      assert.deepEqual(
        await s!.findCredential('secret', 'value-b'),
        credential('b', { createdAt: T0 + 1, kind: 'secret', keyrings: [] }),
      );
      assert.equal(await s!.findCredential('fingerprint', 'value-b'), undefined);
      await rejectsWith(s!.insertCredential(credential('d', { value: 'value-a' })), 'ERR_CONFLICT');
      await rejectsWith(s!.insertCredential(credential('a', { value: 'other' })), 'ERR_CONFLICT');
      assert.equal(await s!.deleteCredential('a'), true);
      assert.equal(await s!.deleteCredential('a'), false);
      assert.equal(await s!.findCredential('fingerprint', 'value-a'), undefined);
    });

    it('console imports: import keys upsert; imports insert, list, finish once', async ([s]) => {
      assert.equal(await s!.getImportKey('ap-1'), undefined);
      await s!.putImportKey({
        applianceId: 'ap-1',
        publicKey: 'pk1',
        signature: 's1',
        createdAt: T0,
      });
      await s!.putImportKey({
        applianceId: 'ap-1',
        publicKey: 'pk2',
        signature: 's2',
        createdAt: T0 + 1,
      });
      assert.deepEqual(await s!.getImportKey('ap-1'), {
        applianceId: 'ap-1',
        publicKey: 'pk2',
        signature: 's2',
        createdAt: T0 + 1,
      });
      const imp = (id: string, applianceId: string, createdAt: number) => ({
        id,
        applianceId,
        keyring: 'k',
        masterVersion: 2,
        managerVersion: 1,
        sealed: `sealed-${id}`,
        status: 'pending' as const,
        code: null,
        createdBy: 'operator',
        createdAt,
        updatedAt: createdAt,
      });
      await s!.insertImport(imp('i2', 'ap-1', T0 + 2));
      await s!.insertImport(imp('i1', 'ap-1', T0 + 1));
      await s!.insertImport(imp('i3', 'ap-2', T0 + 3));
      await rejectsWith(s!.insertImport(imp('i1', 'ap-9', T0)), 'ERR_CONFLICT');
      assert.deepEqual(
        (await s!.listImports()).map((i) => i.id),
        ['i1', 'i2', 'i3'],
      );
      assert.deepEqual(await s!.getImport('i1'), imp('i1', 'ap-1', T0 + 1));
      await s!.finishImport('i1', 'done', null, T0 + 9);
      assert.deepEqual(await s!.getImport('i1'), {
        ...imp('i1', 'ap-1', T0 + 1),
        sealed: null,
        status: 'done',
        updatedAt: T0 + 9,
      });
      await s!.finishImport('i2', 'failed', 'ERR_DECRYPT', T0 + 9);
      assert.equal((await s!.getImport('i2'))!.code, 'ERR_DECRYPT');
      await rejectsWith(s!.finishImport('i1', 'failed', null, T0 + 10), 'ERR_CONFLICT');
      await rejectsWith(s!.finishImport('nope', 'done', null, T0 + 10), 'ERR_NOT_FOUND');
      assert.deepEqual(
        (await s!.listImports({ applianceId: 'ap-1', status: 'pending' })).map((i) => i.id),
        [],
      );
      assert.deepEqual(
        (await s!.listImports({ status: 'pending' })).map((i) => i.id),
        ['i3'],
      );
      assert.deepEqual(
        (await s!.listImports({ applianceId: 'ap-1' })).map((i) => i.id),
        ['i1', 'i2'],
      );
    });

    it('blinders and keyring chains (SPEC.md §5.4): insert, unique identity, URL, chain upsert', async ([
      s,
    ]) => {
      const b = (id: string, fpr: string, createdAt = T0) => ({
        id,
        name: `name-${id}`,
        identityFingerprint: fpr,
        certificatePem: `pem-${id}`,
        url: '',
        createdAt,
        updatedAt: createdAt,
      });
      await s!.insertBlinder(b('bl-2', 'f2', T0 + 1));
      await s!.insertBlinder(b('bl-1', 'f1'));
      await rejectsWith(s!.insertBlinder(b('bl-1', 'f9')), 'ERR_CONFLICT');
      await rejectsWith(s!.insertBlinder(b('bl-9', 'f1')), 'ERR_CONFLICT');
      assert.deepEqual(await s!.listBlinders(), [b('bl-1', 'f1'), b('bl-2', 'f2', T0 + 1)]);
      await s!.setBlinderUrl('bl-1', 'https://127.0.0.1:1', T0 + 5);
      assert.deepEqual((await s!.listBlinders())[0], {
        ...b('bl-1', 'f1'),
        url: 'https://127.0.0.1:1',
        updatedAt: T0 + 5,
      });
      await rejectsWith(s!.setBlinderUrl('bl-x', 'https://x', T0), 'ERR_NOT_FOUND');
      assert.equal(await s!.getKeyringChain('k'), undefined);
      await s!.setKeyringChain('k', ['bl-1'], T0);
      assert.deepEqual(await s!.getKeyringChain('k'), ['bl-1']);
      await s!.setKeyringChain('k', ['bl-1', 'bl-2'], T0 + 1);
      assert.deepEqual(await s!.getKeyringChain('k'), ['bl-1', 'bl-2']);
    });

    it('appliance status compare-and-swap and membership history', async ([s]) => {
      await s!.insertAppliance(appliance('n1', { status: 'enrolled' }));
      await s!.setApplianceStatus(
        'n1',
        ['enrolled'],
        'trusted',
        event('e2', 'n1', { ts: T0 + 2, event: 'trusted' }),
      );
      assert.equal((await s!.getAppliance('n1'))!.status, 'trusted');
      await rejectsWith(
        s!.setApplianceStatus('n1', ['enrolled'], 'trusted', event('e3', 'n1', { ts: T0 + 3 })),
        'ERR_CONFLICT',
      );
      await rejectsWith(
        s!.setApplianceStatus('x', ['enrolled'], 'trusted', event('e4', 'x')),
        'ERR_NOT_FOUND',
      );
      await s!.appendMembershipEvent(event('e1', 'n1', { ts: T0 + 1, detail: 'by operator' }));
      await s!.appendMembershipEvent(event('e0', 'other', { ts: T0 + 2, criterion: null }));
      await rejectsWith(s!.appendMembershipEvent(event('e1', 'n1')), 'ERR_CONFLICT');
      assert.deepEqual(
        (await s!.listMembershipEvents('n1')).map((e) => e.id),
        ['e1', 'e2'],
        'the lost CAS wrote no event',
      );
      assert.deepEqual(
        (await s!.listMembershipEvents()).map((e) => e.id),
        ['e1', 'e0', 'e2'],
      );
      assert.equal((await s!.listMembershipEvents('other'))[0]!.criterion, null);
    });

    it('transfers: claim, take over a stale claim, steps, seal, reset, complete, cancel', async ([
      s,
    ]) => {
      await s!.insertAppliance(appliance('n1', { status: 'enrolled' }));
      await s!.insertTransfer(transfer('t1'));
      await rejectsWith(s!.insertTransfer(transfer('t1')), 'ERR_CONFLICT');
      assert.deepEqual(await s!.getTransfer('t1'), transfer('t1'));
      assert.equal(await s!.getTransfer('nope'), undefined);

      const c1 = await s!.claimTransfer('t1', 'v1', T0 + 10, T0);
      assert.deepEqual(
        c1,
        transfer('t1', {
          status: 'claimed',
          claimedBy: 'v1',
          claimedAt: T0 + 10,
          updatedAt: T0 + 10,
        }),
      );
      await rejectsWith(s!.claimTransfer('t1', 'v2', T0 + 11, T0), 'ERR_CONFLICT');
      await s!.claimTransfer('t1', 'v1', T0 + 12, T0); // the holder renews
      const c2 = await s!.claimTransfer('t1', 'v2', T0 + 20, T0 + 15); // stale: taken over
      assert.equal(c2.claimedBy, 'v2');
      await rejectsWith(s!.transferStep('t1', 'v1', T0 + 15, T0 + 21, {}), 'ERR_CONFLICT');
      await rejectsWith(s!.transferStep('nope', 'v2', T0, T0, {}), 'ERR_NOT_FOUND');

      const key = applianceKey({ applianceId: 'n1' });
      let t = await s!.transferStep('t1', 'v2', T0 + 15, T0 + 22, {
        key,
        version: { masterVersion: 1, managerVersion: 1 },
      });
      assert.equal(t.status, 'claimed');
      assert.deepEqual(await s!.listApplianceKeys('n1'), [key]);
      t = await s!.transferStep('t1', 'v2', T0 + 15, T0 + 23, {
        key: { ...key, sealedSecret: new Uint8Array(8).fill(7) }, // upsert replaces
        version: { masterVersion: 1, managerVersion: 1 }, // recorded once
      });
      assert.deepEqual(t.versions, [{ masterVersion: 1, managerVersion: 1 }]);
      assert.deepEqual(
        (await s!.getApplianceKey('n1', 'k', 1, 1))!.sealedSecret,
        new Uint8Array(8).fill(7),
      );
      t = await s!.transferStep('t1', 'v2', T0 + 15, T0 + 24, { pkg: 'sealed-package' });
      assert.equal(t.status, 'sealed');
      assert.deepEqual(await s!.getTransfer('t1'), t);

      await rejectsWith(s!.resetTransfer('t1', ['claimed'], T0 + 25), 'ERR_CONFLICT');
      await s!.resetTransfer('t1', ['claimed', 'sealed'], T0 + 25);
      t = (await s!.getTransfer('t1'))!;
      assert.deepEqual(
        [t.status, t.claimedBy, t.claimedAt, t.package],
        ['pending', null, null, null],
      );
      assert.deepEqual(t.versions, [{ masterVersion: 1, managerVersion: 1 }], 'versions are kept');

      await s!.claimTransfer('t1', 'v3', T0 + 30, T0);
      await rejectsWith(s!.completeTransfer('t1', T0 + 31, [], null), 'ERR_CONFLICT'); // not sealed
      await s!.transferStep('t1', 'v3', T0, T0 + 32, { pkg: 'p2' });
      // A key that does not exist: ERR_CONFLICT and the transfer is still sealed.
      await rejectsWith(
        s!.completeTransfer(
          't1',
          T0 + 33,
          [{ keyring: 'k', managerVersion: 9, masterVersion: 1, sealedSecret: new Uint8Array(4) }],
          null,
        ),
        'ERR_CONFLICT',
      );
      assert.equal((await s!.getTransfer('t1'))!.status, 'sealed');
      const fresh = new Uint8Array(randomBytes(40));
      const extra = new Uint8Array(randomBytes(40));
      await s!.completeTransfer(
        't1',
        T0 + 34,
        [
          {
            keyring: 'k',
            managerVersion: 1,
            masterVersion: 1,
            sealedSecret: fresh,
            sealedExtra: extra,
          },
        ],
        event('trusted-n1', 'n1', { ts: T0 + 34, event: 'trusted' }),
      );
      const k = await s!.getApplianceKey('n1', 'k', 1, 1);
      assert.deepEqual([k!.sealedSecret, k!.sealedExtra], [fresh, extra]);
      t = (await s!.getTransfer('t1'))!;
      assert.deepEqual([t.status, t.package, t.doneAt], ['done', null, T0 + 34]);
      assert.equal((await s!.getAppliance('n1'))!.status, 'trusted');
      assert.deepEqual(
        (await s!.listMembershipEvents('n1')).map((e) => e.id),
        ['trusted-n1'],
      );
      await rejectsWith(s!.completeTransfer('t1', T0 + 35, [], null), 'ERR_CONFLICT');

      // open vs all, cancel keeps done ones
      await s!.insertTransfer(transfer('t2', { createdAt: T0 + 1 }));
      await s!.insertTransfer(transfer('t3', { keyring: 'j', createdAt: T0 + 2 }));
      assert.deepEqual(
        (await s!.listOpenTransfers('n1')).map((x) => x.id),
        ['t2', 't3'],
      );
      assert.deepEqual(
        (await s!.listTransfers('n1', 'k')).map((x) => x.id),
        ['t1', 't2'],
      );
      assert.equal(await s!.cancelTransfers('n1'), 2);
      assert.deepEqual(await s!.listOpenTransfers(), []);
      assert.equal((await s!.getTransfer('t1'))!.status, 'done');
    });

    it(
      'transfers under concurrency: one claimer; a revoked target cannot complete',
      async ([a, b]) => {
        await warm([a!, b!]);
        await a!.insertAppliance(appliance('n1', { status: 'enrolled' }));
        await a!.insertTransfer(transfer('t1'));
        const rs = await Promise.allSettled(
          Array.from({ length: 6 }, (_, i) =>
            (i % 2 ? a! : b!).claimTransfer('t1', `v${i}`, T0 + 10, T0),
          ),
        );
        const { ok } = outcomes(rs);
        assert.equal(ok.length, 1);
        const holder = ok[0]!.value.claimedBy!;
        assert.equal((await b!.getTransfer('t1'))!.claimedBy, holder);
        await a!.transferStep('t1', holder, T0, T0 + 11, {
          key: applianceKey({ applianceId: 'n1' }),
          pkg: 'p',
        });
        await b!.revokeAppliance('n1', T0 + 12);
        await rejectsWith(a!.completeTransfer('t1', T0 + 13, [], null), 'ERR_REVOKED');
        assert.equal((await a!.getTransfer('t1'))!.status, 'sealed');
      },
      { instances: 2 },
    );

    it(
      'migrations run concurrently from three instances: no error, each version applied once',
      async (stores) => {
        await Promise.all(stores.map((s) => s.migrate()));
        const rows = await h.raw(
          stores[0]!,
          'SELECT version FROM schema_migrations ORDER BY version',
        );
        assert.deepEqual(
          rows.map((r) => Number(r.version)),
          // Versions are assigned per area and applied by set: gaps are fine (migrations.ts);
          // a dialect has only the migrations it needs (SQLite's v6).
          (h.name === 'sqlite' ? SQL_MIGRATIONS : PG_MIGRATIONS)
            .map((m) => m.version)
            .sort((a, b) => a - b),
        );
        await Promise.all(stores.map((s) => s.migrate()));
        assert.equal(
          (await h.raw(stores[1]!, 'SELECT version FROM schema_migrations')).length,
          h.migrations,
        );
        for (const s of stores) assert.equal(await s.getSecret('x'), undefined);
      },
      { instances: 3, migrate: false },
    );

    it('a write whose second statement fails leaves nothing half-applied', async ([s]) => {
      // insertKeyring: the keyrings row goes in first, then the keyring_versions row conflicts.
      await h.raw(
        s!,
        'INSERT INTO keyring_versions (keyring, manager_version, created_at) VALUES (?, ?, ?)',
        ['k', 1, T0 - 1],
      );
      await rejectsWith(s!.insertKeyring(keyring('k')), 'ERR_CONFLICT');
      assert.equal(await s!.getKeyring('k'), undefined);
      assert.deepEqual(await s!.listKeyrings(), []);
      assert.deepEqual(
        (await s!.listKeyringVersions('k')).map((v) => v.createdAt),
        [T0 - 1],
      );

      // updateKeyring: the UPDATE runs, then the new version row conflicts.
      await s!.insertKeyring(keyring('j'));
      await h.raw(
        s!,
        'INSERT INTO keyring_versions (keyring, manager_version, created_at) VALUES (?, ?, ?)',
        ['j', 2, T0 - 1],
      );
      await rejectsWith(
        s!.updateKeyring(
          'j',
          { masterVersion: 1, managerVersion: 1 },
          { managerVersion: 2, masterVersion: 5 },
          T0 + 1,
        ),
        'ERR_CONFLICT',
      );
      assert.deepEqual(await s!.getKeyring('j'), keyring('j'));

      // appendAudit: the first entry of a batch is inserted, the second violates NOT NULL.
      const [e1] = await s!.appendAudit([entry()]);
      const failed = await settleWithin(
        s!.appendAudit([entry(), entry({ actor: null as unknown as string })]),
        5000,
      );
      assert.equal(failed.status, 'rejected');
      const reason = (failed as PromiseRejectedResult).reason;
      assert.ok(reason instanceof BlindfoldError, `raw error: ${String(reason)}`);
      assert.ok(['ERR_CONFLICT', 'ERR_STORAGE'].includes(reason.code), reason.code);
      assert.deepEqual(
        (await s!.listAudit({})).map((e) => e.seq),
        [1],
        'the first entry of the failed batch was not kept',
      );
      const [e2] = await s!.appendAudit([entry()]);
      assert.equal(e2!.seq, 2, 'the chain continues without a gap');
      assert.equal(e2!.prevHash, e1!.hash);
    });

    it('a closed store answers ERR_STORAGE', async ([s], loc) => {
      const other = loc.open();
      await other.close();
      await rejectsWith(other.getSecret('x'), 'ERR_STORAGE');
      await rejectsWith(other.appendAudit([entry()]), 'ERR_STORAGE');
      await other.close(); // idempotent
      assert.equal(await s!.getSecret('x'), undefined, 'other instances are unaffected');
    });

    if (h.name === 'postgres') {
      const admin = () => {
        const p = new pg.Pool({ connectionString: PG_URL, max: 2 });
        p.on('error', () => {});
        return p;
      };
      const kill = (a: pg.Pool, appName: string) =>
        a.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
          [appName],
        );

      it('killed idle connections: the next calls give ERR_STORAGE or succeed, then the pool recovers', async ([
        s,
      ], loc) => {
        const a = admin();
        try {
          await Promise.all(Array.from({ length: 6 }, () => s!.getSecret('warm'))); // several pooled connections
          await s!.appendAudit([entry()]);
          const killed = await kill(a, loc.appName);
          assert.ok(killed.rowCount! >= 1, 'the store had connections to kill');
          const calls: (() => Promise<unknown>)[] = [
            () => s!.getSecret('x'),
            () => s!.appendAudit([entry()]),
            () => s!.insertKeyring(keyring(`k-${randomBytes(4).toString('hex')}`)),
            () => s!.putSecretIfAbsent('s', new Uint8Array(8)),
          ];
          for (const call of calls) {
            const r = await settleWithin(call(), 8000);
            if (r.status === 'rejected') {
              assert.ok(r.reason instanceof BlindfoldError, `raw error: ${String(r.reason)}`);
              assert.equal(r.reason.code, 'ERR_STORAGE');
            }
          }
          // whatever happened, the pool reconnects and the log is still one valid chain
          const [last] = await s!.appendAudit([entry()]);
          const all = await s!.listAudit({});
          assert.equal(all.at(-1)!.seq, last!.seq);
          assert.equal(verifyChain(all).ok, true);
        } finally {
          await a.end();
        }
      });

      it('a connection killed mid-transaction: nothing half-applied, no hang, the chain stays valid', async ([
        s,
      ], loc) => {
        const a = admin();
        const holder = await a.connect();
        try {
          await s!.appendAudit([entry()]);
          // Hold the audit lock row so that the store's appendAudit waits inside its transaction.
          await holder.query('BEGIN');
          await holder.query(
            `SELECT name FROM "${loc.appName}".blindfold_locks WHERE name = 'audit' FOR UPDATE`,
          );
          const pending = settleWithin(s!.appendAudit([entry(), entry()]), 10000);
          for (let i = 0; i < 100; i++) {
            const w = await a.query(
              "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
              [loc.appName],
            );
            if (w.rowCount) break;
            await new Promise((r) => setTimeout(r, 20));
          }
          await kill(a, loc.appName);
          await new Promise((r) => setTimeout(r, 50));
          await holder.query('COMMIT');
          const r = await pending;
          const all = await s!.listAudit({});
          if (r.status === 'fulfilled') {
            assert.deepEqual(
              all.map((e) => e.seq),
              [1, 2, 3],
            );
          } else {
            assert.ok(r.reason instanceof BlindfoldError, `raw error: ${String(r.reason)}`);
            assert.equal(r.reason.code, 'ERR_STORAGE');
            assert.equal(all.length, 1, 'the killed transaction left nothing');
          }
          assert.equal(verifyChain(all).ok, true);
        } finally {
          holder.release();
          await a.end();
        }
      });
    }
  });
}

describe('PostgreSQL unreachable', () => {
  test('an unreachable server gives ERR_STORAGE with a clear message, quickly', async () => {
    const s = openPostgresStore('postgres://postgres@127.0.0.1:1/test', { connectTimeoutMs: 1000 });
    try {
      const e = await rejectsWith(s.migrate(), 'ERR_STORAGE');
      assert.match(e.message, /127\.0\.0\.1:1\/test is unreachable/);
      assert.doesNotMatch(e.message, /postgres@/, 'no credentials in messages');
      await rejectsWith(s.getSecret('x'), 'ERR_STORAGE');
      await rejectsWith(s.appendAudit([entry()]), 'ERR_STORAGE');
      await rejectsWith(
        s.insertItem({
          keyring: 'k',
          itemId: new Uint8Array(16),
          masterVersion: 1,
          managerVersion: 1,
          createdBy: 'a',
          createdAt: T0,
        }),
        'ERR_STORAGE',
      );
    } finally {
      await s.close();
    }
  });

  test('schema names are checked before they reach SQL', () => {
    assert.throws(
      () => openPostgresStore(PG_URL, { schema: 'x"; DROP TABLE audit; --' }),
      (e: unknown) => e instanceof BlindfoldError && e.code === 'ERR_INVALID_ARGUMENT',
    );
  });
});

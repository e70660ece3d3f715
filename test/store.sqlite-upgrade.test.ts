/**
 * Upgrading a SQLite store written before migration v6 (src/store/migrations.ts): the audit table
 * is rebuilt around `seq INTEGER PRIMARY KEY` (the rowid, no second b-tree), and every entry,
 * its order and its hash chain come through unchanged; the chain continues after the upgrade;
 * migrating again changes nothing.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { verifyChain } from '../src/core/audit.ts';
import { SQL_MIGRATIONS } from '../src/store/migrations.ts';
import { openSqliteStore } from '../src/store/sqlite.ts';
import type { AuditEntry } from '../src/store/types.ts';

let dir: string | undefined;
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const entry = (i: number): AuditEntry => ({
  ts: 1_700_000_000_000 + i,
  actor: `appliance:${i % 3}`,
  action: i % 5 === 0 ? 'item.create' : 'recover',
  keyring: i % 7 === 0 ? null : 'kr',
  item: `item-${i}`,
  keyVersion: i % 4 === 0 ? null : 1 + (i % 2),
  outcome: i % 11 === 0 ? 'refused' : 'ok',
  code: i % 11 === 0 ? 'ERR_FORBIDDEN' : null,
  requestId: `req-${i}`,
});

test('a v5 SQLite store upgrades to v6 with its audit chain intact', async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-upgrade-'));
  const path = join(dir, 'old.sqlite');
  const store = openSqliteStore(path);
  try {
    // The store as a release before v6 left it: migrations 1-5 only.
    store.db.exec(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)',
    );
    for (const m of SQL_MIGRATIONS.filter((x) => x.version <= 5)) {
      store.db.exec(m.sql);
      store.db.prepare('INSERT INTO schema_migrations VALUES (?, ?)').run(m.version, 1);
    }
    const autoindex = () =>
      store.db
        .prepare("SELECT name FROM sqlite_master WHERE tbl_name = 'audit' AND type = 'index'")
        .all();
    assert.equal(autoindex().length, 1, 'v1 audit table has its separate key index');
    let n = 0;
    for (const size of [1, 4, 1, 7, 2, 30]) {
      await store.appendAudit(Array.from({ length: size }, () => entry(n++)));
    }
    const before = await store.listAudit({ limit: 1000 });
    assert.equal(before.length, n);

    await store.migrate();
    const versions = store.db.prepare('SELECT version FROM schema_migrations').all() as {
      version: number;
    }[];
    assert.deepEqual(
      versions.map((v) => v.version),
      SQL_MIGRATIONS.map((m) => m.version),
    );
    assert.deepEqual(autoindex(), [], 'no second b-tree beside the table');
    const seqType = (
      store.db.prepare('PRAGMA table_info(audit)').all() as { name: string; type: string }[]
    ).find((c) => c.name === 'seq')!.type;
    assert.equal(seqType, 'INTEGER');
    assert.deepEqual(await store.listAudit({ limit: 1000 }), before);
    assert.equal(verifyChain(before).ok, true);

    // The chain goes on from where it was, and a second migrate is a no-op.
    await store.appendAudit([entry(n++), entry(n++)]);
    await store.migrate();
    const all = await store.listAudit({ limit: 1000 });
    assert.equal(all.length, n);
    assert.equal(all.at(-1)!.seq, n);
    assert.equal(verifyChain(all).ok, true);
  } finally {
    await store.close();
  }
});

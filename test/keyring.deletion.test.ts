/**
 * Scheduled keyring deletion (SPEC.md §7.4) through a real manager process: a pending deletion
 * makes the keyring unusable at once and can be cancelled; when it comes due, the keyring's
 * sealed secrets and appliance keys are destroyed and its items can never be opened again.
 * BLINDFOLD_DELETION_DAY_MS shortens a "day" so that the window passes within the test.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import type { Appliance } from '../src/appliance/appliance.ts';
import { sealFileHeader } from '../src/appliance/stream.ts';
import { BlindfoldError } from '../src/core/errors.ts';
import { freshFileSecrets } from '../src/core/format.ts';
import {
  cleanup,
  createKeyring,
  type ManagerProcess,
  newAppliance,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from './helpers/deploy.ts';

const DAY_MS = 150;
process.env.BLINDFOLD_DELETION_DAY_MS = String(DAY_MS);

async function refused(p: Promise<unknown>, code: string, match?: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BlindfoldError, String(e));
    assert.equal(e.code, code, e.message);
    if (match) assert.match(e.message, match);
    return true;
  });
}

describe('keyring deletion', () => {
  let m: ManagerProcess;
  let home: string;
  let adir: string;
  let a: Appliance;

  before(async () => {
    home = await tmpDir();
    adir = await tmpDir();
    m = await startManagerProcess({ home, rootKey: newRootKey() });
    await createKeyring(m, 'doomed', 'hom2');
    await createKeyring(m, 'kept', 'hom2');
    a = await newAppliance(m, adir);
    await a.initKeyring('doomed');
    await a.initKeyring('kept');
  });
  after(async () => {
    a?.close();
    await m?.stop();
    await cleanup(home, adir);
  });

  test('schedule, refuse use, cancel, schedule again, destroyed when due', async () => {
    const item = await a.newItem('doomed');
    const { dek, fileNonce } = freshFileSecrets();
    const header = sealFileHeader({ ...item.fields, fileNonce }, item.kek, dek);
    const open = () => a.openItem(header);
    assert.equal((await open()).length, 32);

    await refused(
      m.op.request('POST', '/v1/keyrings/doomed/deletion', { pendingDays: 6 }),
      'ERR_INVALID_ARGUMENT',
    );
    await refused(
      m.op.request('POST', '/v1/keyrings/doomed/deletion', { pendingDays: 31 }),
      'ERR_INVALID_ARGUMENT',
    );
    await refused(m.op.request('DELETE', '/v1/keyrings/doomed/deletion'), 'ERR_CONFLICT');
    await refused(m.op.request('POST', '/v1/keyrings/nope/deletion', {}), 'ERR_NOT_FOUND');

    // Default window: 30 days.
    const t0 = Date.now();
    const rec = await m.op.request<{ deletionAt: number; status: string }>(
      'POST',
      '/v1/keyrings/doomed/deletion',
      {},
    );
    assert.equal(rec.status, 'enabled');
    assert.ok(rec.deletionAt >= t0 + 30 * DAY_MS && rec.deletionAt <= Date.now() + 30 * DAY_MS);
    await refused(
      m.op.request('POST', '/v1/keyrings/doomed/deletion', { pendingDays: 7 }),
      'ERR_CONFLICT',
    );
    // Pending: unusable for items, recovery and rotation; other keyrings unaffected.
    await refused(open(), 'ERR_FORBIDDEN', /scheduled for deletion/);
    await refused(a.newItem('doomed'), 'ERR_FORBIDDEN', /scheduled for deletion/);
    await refused(m.op.request('POST', '/v1/keyrings/doomed/rotate'), 'ERR_FORBIDDEN');
    await a.newItem('kept');

    const cancelled = await m.op.request<{ deletionAt: number | null }>(
      'DELETE',
      '/v1/keyrings/doomed/deletion',
    );
    assert.equal(cancelled.deletionAt, null);
    assert.equal((await open()).length, 32, 'usable again after cancel');

    await m.op.request('POST', '/v1/keyrings/doomed/deletion', { pendingDays: 7 });
    await new Promise((r) => setTimeout(r, 7 * DAY_MS + 1200)); // window + one refresh
    const after = await m.op.request<{ status: string }>('GET', '/v1/keyrings/doomed');
    assert.equal(after.status, 'deleted');
    await refused(open(), 'ERR_FORBIDDEN', /deleted/);
    await refused(m.op.request('DELETE', '/v1/keyrings/doomed/deletion'), 'ERR_FORBIDDEN');
    await refused(
      m.op.request('POST', '/v1/keyrings/doomed/status', { status: 'enabled' }),
      'ERR_FORBIDDEN',
    );

    // The secrets are gone from the database, not just refused.
    const db = new Database(join(home, 'blindfold.db'), { readonly: true });
    try {
      const secrets = db
        .prepare("SELECT name FROM secrets WHERE name LIKE 'keyring/doomed/%'")
        .all();
      assert.deepEqual(secrets, []);
      const keys = db.prepare("SELECT * FROM appliance_keys WHERE keyring = 'doomed'").all();
      assert.deepEqual(keys, []);
      assert.ok(
        db.prepare("SELECT name FROM secrets WHERE name LIKE 'keyring/kept/%'").all().length > 0,
      );
    } finally {
      db.close();
    }
    await a.newItem('kept');

    const audit = await m.op.request<{ entries: { action: string; keyring: string | null }[] }>(
      'GET',
      '/v1/audit?limit=10000',
    );
    const actions = audit.entries.filter((e) => e.keyring === 'doomed').map((e) => e.action);
    for (const want of [
      'keyring.schedule-deletion',
      'keyring.cancel-deletion',
      'keyring.destroy',
    ]) {
      assert.ok(actions.includes(want), `audited ${want}`);
    }
  });
});

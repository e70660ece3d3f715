/**
 * Scale-out (issue #7): three manager processes over one PostgreSQL database serve the same
 * appliance; kill -9 one replica during a steady workload, cut the database away and bring it
 * back, and create items concurrently through two replicas. No operation fails after the
 * client's retries, nothing is lost or duplicated, and the audit chain stays valid.
 * Skipped, with the reason, where no PostgreSQL server is reachable.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { Appliance } from '../src/appliance/appliance.ts';
import { Appliance as ApplianceClass } from '../src/appliance/appliance.ts';
import { verifyChain } from '../src/core/audit.ts';
import type { StoredAuditEntry } from '../src/store/types.ts';
import {
  cleanup,
  createKeyring,
  type ManagerProcess,
  newAppliance,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from './helpers/deploy.ts';

const PG = process.env.BLINDFOLD_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

async function pgReachable(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: PG, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('select 1');
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => {});
  }
}

/** A TCP proxy in front of PostgreSQL that the test can cut (a database outage) and restore. */
function pgProxy(target: URL) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = net.createServer((client) => {
        const upstream = net.connect(Number(target.port || 5432), target.hostname);
        sockets.add(client);
        sockets.add(upstream);
        client.pipe(upstream).pipe(client);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on('error', drop);
        upstream.on('error', drop);
        client.on('close', drop);
        upstream.on('close', drop);
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as net.AddressInfo).port;
        resolve();
      });
    });
  return {
    listen,
    get port() {
      return port;
    },
    async cut() {
      // close() waits for open connections: destroy them first, or it never returns.
      const closed = new Promise<void>((r) => server!.close(() => r()));
      for (const s of sockets) s.destroy();
      sockets.clear();
      await closed;
    },
  };
}

async function auditEntries(m: ManagerProcess): Promise<StoredAuditEntry[]> {
  const all: StoredAuditEntry[] = [];
  let after = 0;
  for (;;) {
    const page = await m.op.request<{ entries: StoredAuditEntry[] }>(
      'GET',
      `/v1/audit?afterSeq=${after}&limit=10000`,
    );
    all.push(...page.entries);
    if (page.entries.length < 10000) return all;
    after = page.entries[page.entries.length - 1]!.seq;
  }
}

describe('manager replicas over PostgreSQL', async () => {
  const unreachable = await pgReachable();
  const dbName = `bf_replicas_${randomBytes(4).toString('hex')}`;
  let home: string;
  let adir: string;
  let bdir: string;
  const managers: ManagerProcess[] = [];
  let a: Appliance;
  let proxy: ReturnType<typeof pgProxy>;

  before(async () => {
    if (unreachable) return;
    const admin = new pg.Client({ connectionString: PG });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`);
    await admin.end();
    proxy = pgProxy(new URL(PG));
    await proxy.listen();
    const url = new URL(PG);
    url.host = `127.0.0.1:${proxy.port}`;
    url.pathname = `/${dbName}`;
    home = await tmpDir();
    adir = await tmpDir();
    bdir = await tmpDir();
    const rootKey = newRootKey();
    for (let i = 0; i < 3; i++) {
      managers.push(
        await startManagerProcess({ home, rootKey, args: ['--store', url.toString()] }),
      );
    }
    await createKeyring(managers[0]!, 'default', 'hom2', 'ec-elgamal');
    a = await newAppliance(managers[0]!, adir, 'a');
    a.close();
    a = new ApplianceClass({
      dir: adir,
      state: { ...a.state, managerUrl: managers.map((m) => m.url).join(',') },
    });
    await a.initKeyring('default');
  });

  after(async () => {
    if (unreachable) return;
    a?.close();
    for (const m of managers) await m.stop('SIGKILL');
    await proxy?.cut().catch(() => {});
    const admin = new pg.Client({ connectionString: PG });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    await cleanup(home, adir, bdir);
  });

  test('kill -9 one of three replicas during a steady workload: nothing fails, nothing is lost', async (t) => {
    if (unreachable) return t.skip(`PostgreSQL not reachable at ${PG}: ${unreachable}`);
    const created: {
      fields: Awaited<ReturnType<Appliance['newItem']>>['fields'];
      kek: Uint8Array;
    }[] = [];
    let failures = 0;
    let stop = false;
    const worker = async () => {
      while (!stop) {
        try {
          const it = await a.newItem('default');
          created.push(it);
          const kek = await a.openItem({
            fields: { ...it.fields, fileNonce: new Uint8Array(16) },
          } as never);
          assert.deepEqual(kek, it.kek);
        } catch (e) {
          failures++;
          console.error('workload failure:', (e as Error).message);
        }
      }
    };
    const workers = Array.from({ length: 6 }, worker);
    await new Promise((r) => setTimeout(r, 1500));
    const killed = managers[1]!;
    killed.proc.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 2500));
    stop = true;
    await Promise.all(workers);
    assert.equal(failures, 0, 'no operation failed after the client retries');
    assert.ok(created.length > 20, `a real workload ran (${created.length} items)`);
    // Every item created is recoverable through the survivors, and stored exactly once.
    for (const it of created.slice(-10)) {
      const kek = await a.openItem({
        fields: { ...it.fields, fileNonce: new Uint8Array(16) },
      } as never);
      assert.deepEqual(kek, it.kek);
    }
    const ids = new Set(created.map((c) => Buffer.from(c.fields.itemId).toString('hex')));
    assert.equal(ids.size, created.length, 'no duplicate items');
    const entries = await auditEntries(managers[0]!);
    assert.equal(verifyChain(entries).ok, true, 'the audit chain is valid');
    assert.ok(
      entries.filter((e) => e.action === 'item.create' && e.outcome === 'ok').length >=
        created.length,
    );
  });

  test('the database goes away and comes back: clear errors while down, then everything works', async (t) => {
    if (unreachable) return t.skip(`PostgreSQL not reachable at ${PG}: ${unreachable}`);
    const before = await a.newItem('default');
    await proxy.cut();
    const started = Date.now();
    const err = await a.newItem('default').then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    assert.ok(err, 'a creation fails while the database is down');
    assert.match(err.code ?? '', /ERR_(UNAVAILABLE|STORAGE)/);
    assert.match(err.message, /unreachable|went away|not reachable|cannot reach/);
    assert.ok(Date.now() - started < 30000, 'the failure comes within bounded retries');
    await proxy.listen();
    let after: Awaited<ReturnType<Appliance['newItem']>> | undefined;
    for (let i = 0; i < 50 && !after; i++) {
      after = await a.newItem('default').catch(() => undefined);
      if (!after) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(after, 'creations succeed again once the database is back');
    for (const it of [before, after]) {
      const kek = await a.openItem({
        fields: { ...it.fields, fileNonce: new Uint8Array(16) },
      } as never);
      assert.deepEqual(kek, it.kek);
    }
    const entries = await auditEntries(managers[0]!);
    assert.equal(verifyChain(entries).ok, true, 'the audit chain survived the outage');
  });

  test('two replicas creating items concurrently: every item recoverable, no lost writes', async (t) => {
    if (unreachable) return t.skip(`PostgreSQL not reachable at ${PG}: ${unreachable}`);
    const alive = managers.filter((m) => m.proc.exitCode === null && m.proc.signalCode === null);
    assert.ok(alive.length >= 2);
    const viaFirst = new ApplianceClass({
      dir: adir,
      state: { ...a.state, managerUrl: alive[0]!.url },
    });
    const viaSecond = new ApplianceClass({
      dir: adir,
      state: { ...a.state, managerUrl: alive[1]!.url },
    });
    try {
      const made = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? viaFirst : viaSecond).newItem('default')),
      );
      for (const [i, it] of made.entries()) {
        const other = i % 2 ? viaSecond : viaFirst;
        const kek = await other.openItem({
          fields: { ...it.fields, fileNonce: new Uint8Array(16) },
        } as never);
        assert.deepEqual(kek, it.kek);
      }
      const entries = await auditEntries(alive[1]!);
      assert.equal(verifyChain(entries).ok, true);
    } finally {
      viaFirst.close();
      viaSecond.close();
    }
  });
});

/**
 * Blinder health for operators (SPEC.md §7.6, GET /v1/blinders/health) and in the web console,
 * against a real manager process and real blinder processes (test/helpers/blinders.ts):
 * - the route needs the operator token, answers each blinder's probed state, its chains and the
 *   last request relayed through it, and writes no audit entry;
 * - the probe is pinned to the registered identity: a blinder whose announced URL is served by
 *   another blinder (same CA) is down, and a URL that never answers is down within the timeout;
 * - in Chromium: the Overview shows the blinders ready, the Keys page shows each hom3/homN chain
 *   in order and creates a homN keyring with blinders named in order; a blinder stopped shows as
 *   down on the Overview. No console errors; screenshots go
 *   to test-artifacts/console/.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Appliance } from '../src/appliance/appliance.ts';
import { createJsonClient } from '../src/appliance/client.ts';
import { createBlinderHealthMonitor } from '../src/manager/blinder-health.ts';
import {
  type BlinderProcess,
  clientAs,
  registerBlinder,
  startBlinderProcess,
} from './helpers/blinders.ts';
import { chromiumUnavailable, launchChromium } from './helpers/browser.ts';
import {
  cleanup,
  type ManagerProcess,
  newAppliance,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from './helpers/deploy.ts';

const ARTIFACTS = resolve(import.meta.dirname, '../test-artifacts/console');
const noBrowser = chromiumUnavailable();

interface Health {
  now: number;
  blinders: {
    id: string;
    name: string;
    url: string;
    keyrings: { keyring: string; position: number }[];
    state: string;
    values: number | null;
    error: string | null;
    checkedAt: number | null;
    latencyMs: number | null;
    lastRelayAt: number | null;
  }[];
}

async function waitFor<T>(f: () => Promise<T | undefined>, what: string, ms = 15000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('blinder health: operator route and console', () => {
  let dir: string;
  let m: ManagerProcess;
  let a: Appliance;
  const homes: string[] = [];
  const ids: string[] = [];
  const bs: BlinderProcess[] = [];

  const health = () => m.op.request<Health>('GET', '/v1/blinders/health');
  const of = async (id: string) => (await health()).blinders.find((b) => b.id === id)!;
  const auditCount = async () =>
    (await m.op.request<{ entries: unknown[] }>('GET', '/v1/audit?limit=10000')).entries.length;
  /** Announces `url` for a blinder, with that blinder's own certificate (as it does at start). */
  const announce = async (i: number, url: string) => {
    const c = await clientAs(homes[i]!, m.url);
    try {
      await c.request('POST', '/v1/blinders/announce', { url });
    } finally {
      c.close();
    }
  };

  before(async () => {
    dir = await tmpDir('bf-console-bl-');
    await mkdir(join(dir, 'manager'));
    process.env.BLINDFOLD_BLINDER_HEALTH_TTL_MS = '300';
    m = await startManagerProcess({ home: join(dir, 'manager'), rootKey: newRootKey() });
    delete process.env.BLINDFOLD_BLINDER_HEALTH_TTL_MS;
    for (const name of ['north', 'south', 'spare']) {
      const home = join(dir, name);
      homes.push(home);
      ids.push(await registerBlinder(m, home, name));
    }
    // north and south run; spare is registered but never started (no URL announced).
    bs.push(await startBlinderProcess({ home: homes[0]!, id: ids[0]! }));
    bs.push(await startBlinderProcess({ home: homes[1]!, id: ids[1]! }));
    await m.op.request('POST', '/v1/keyrings', { name: 'three', mode: 'hom3', blinders: [ids[0]] });
    await m.op.request('POST', '/v1/keyrings', {
      name: 'four',
      mode: 'homN',
      blinders: [ids[0], ids[1]],
    });
    a = await newAppliance(m, join(dir, 'appliance'), 'alpha');
    await a.initKeyring('three');
    await a.initKeyring('four');
  });

  after(async () => {
    a?.close();
    for (const b of bs) await b.stop();
    await m?.stop();
    await cleanup(dir);
  });

  test('operator route: states, chains, last relay; no audit entry; operator only', async () => {
    const anon = createJsonClient({
      baseUrl: m.url,
      caPem: m.caPem,
      retries: 0,
    });
    await assert.rejects(anon.request('GET', '/v1/blinders/health'), {
      code: 'ERR_UNAUTHENTICATED',
    });
    anon.close();

    const before = await auditCount();
    const h = await health();
    const [north, south, spare] = ids.map((id) => h.blinders.find((b) => b.id === id)!);
    assert.equal(north!.state, 'ready', north!.error ?? '');
    assert.equal(north!.name, 'north');
    assert.equal(north!.url, bs[0]!.url);
    assert.equal(north!.error, null);
    assert.ok(north!.values! >= 2, `E_j values ${north!.values}`); // one per keyring set up
    assert.ok(north!.checkedAt! <= h.now && north!.latencyMs! >= 0);
    assert.deepEqual(north!.keyrings, [
      { keyring: 'four', position: 0 },
      { keyring: 'three', position: 0 },
    ]);
    assert.equal(south!.state, 'ready');
    assert.deepEqual(south!.keyrings, [{ keyring: 'four', position: 1 }]);
    assert.equal(spare!.state, 'unannounced');
    assert.deepEqual(spare!.keyrings, []);
    // Setup does not pass the manager; no request has been relayed yet.
    assert.equal(north!.lastRelayAt, null);
    // Reads change nothing and are not audited (SPEC.md §8).
    await health();
    assert.equal(await auditCount(), before);

    // A request through hom3 passes north only; one through homN passes north and south.
    const t0 = Date.now();
    await a.newItem('three');
    assert.ok((await of(ids[0]!)).lastRelayAt! >= t0);
    assert.equal((await of(ids[1]!)).lastRelayAt, null);
    const t1 = Date.now();
    await a.newItem('four');
    assert.ok((await of(ids[0]!)).lastRelayAt! >= t1);
    assert.ok((await of(ids[1]!)).lastRelayAt! >= t1);
  });

  test('the probe is pinned to the registered identity, and bounded by a timeout', async () => {
    // north's URL served by south (a valid certificate of the same CA, another identity).
    await announce(0, bs[1]!.url);
    const moved = await waitFor(async () => {
      const b = await of(ids[0]!);
      return b.state === 'down' ? b : undefined;
    }, 'north down under a foreign identity');
    assert.match(moved.error!, /not the pinned/);
    await announce(0, bs[0]!.url);
    await waitFor(
      async () => ((await of(ids[0]!)).state === 'ready' ? true : undefined),
      'north ready again',
    );

    // A server that accepts connections and never answers: down after the probe timeout.
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    try {
      await announce(2, `https://127.0.0.1:${port}`);
      const t = Date.now();
      const spare = await of(ids[2]!);
      const took = Date.now() - t;
      assert.equal(spare.state, 'down');
      assert.match(spare.error!, /no answer within 1500 ms/);
      assert.ok(took < 6000, `health answered after ${took} ms`);
      // The other blinders' states did not suffer from the silent one.
      assert.equal((await of(ids[1]!)).state, 'ready');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  describe('console', { skip: noBrowser ? `browser tests skipped: ${noBrowser}` : false }, () => {
    let browser: Browser;
    let page: Page;
    const consoleErrors: string[] = [];

    before(async () => {
      await mkdir(ARTIFACTS, { recursive: true });
      browser = await launchChromium();
      const ctx = await browser.newContext({
        ignoreHTTPSErrors: true,
        viewport: { width: 1280, height: 800 },
      });
      page = await ctx.newPage();
      page.on('console', (msg) => {
        if (msg.type() === 'error' || msg.type() === 'warning') consoleErrors.push(msg.text());
      });
      page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    });
    after(async () => {
      await browser?.close();
    });

    const shot = (name: string) =>
      page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
    const badge = (id: string) =>
      page.locator(`#health-blinders li[data-blinder="${id}"] .badge`).textContent();

    test('overview shows blinders ready, keys shows chains, a stopped blinder shows down', async () => {
      await page.goto(`${m.url}/ui/`);
      await page.locator('#token').fill(m.operatorToken);
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
      await page.locator('#health-blinders', { hasText: 'Blinders (3)' }).waitFor();
      assert.equal(await badge(ids[0]!), 'ready');
      assert.equal(await badge(ids[1]!), 'ready');
      assert.equal(await badge(ids[2]!), 'down'); // the silent URL of the previous test
      const north = page.locator(`#health-blinders li[data-blinder="${ids[0]}"]`);
      assert.match((await north.textContent())!, /in the chain of four \(1st\), three \(1st\)/);
      assert.match((await north.textContent())!, /last relayed request \d+ s ago/);
      await shot('overview-blinders');

      await page.getByRole('link', { name: 'Keys', exact: true }).click();
      await page.getByRole('heading', { name: 'Keys and keyrings', level: 1 }).waitFor();
      const chain = (k: string) =>
        page
          .locator(`tr[data-keyring="${k}"] ol.chain li`)
          .evaluateAll((els) => els.map((e) => e.getAttribute('data-blinder')));
      await page.locator('tr[data-keyring="four"] ol.chain').waitFor();
      assert.deepEqual(await chain('three'), [ids[0]]);
      assert.deepEqual(await chain('four'), [ids[0], ids[1]]);
      assert.match(
        (await page.locator('tr[data-keyring="four"] ol.chain').textContent())!,
        /ready north.*ready south/,
      );
      // Create a homN keyring in the page, its chain named by blinder names in request order.
      await page.locator('select[name="mode"]').selectOption('homN');
      await page.locator('#blinders-help', { hasText: ids[1]! }).waitFor();
      await page.locator('input[name="name"]').fill('five');
      await page.locator('input[name="blinders"]').fill('south, north');
      await page.getByRole('button', { name: 'Create keyring' }).click();
      await page.locator('tr[data-keyring="five"] ol.chain').waitFor();
      assert.deepEqual(await chain('five'), [ids[1], ids[0]]);
      // An unknown name is refused in the page, before any request.
      await page.locator('input[name="name"]').fill('six');
      await page.locator('input[name="blinders"]').fill('nowhere');
      await page.getByRole('button', { name: 'Create keyring' }).click();
      await page
        .getByRole('alert')
        .filter({ hasText: 'no registered blinder "nowhere"' })
        .waitFor();
      await shot('keys-chains');

      await bs[1]!.stop();
      await page.getByRole('link', { name: 'Overview', exact: true }).click();
      await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
      // The page refreshes itself (every few seconds): south turns down without a reload.
      await page
        .locator(`#health-blinders li[data-blinder="${ids[1]}"] .badge`, { hasText: 'down' })
        .waitFor({ timeout: 20000 });
      assert.match(
        (await page.locator(`#health-blinders li[data-blinder="${ids[1]}"]`).textContent())!,
        /cannot reach|ECONNREFUSED/,
      );
      assert.equal(await badge(ids[0]!), 'ready');
      await shot('overview-blinder-down');
      assert.deepEqual(consoleErrors, []);
    });
  });
});

describe('blinder health monitor: bounded cost', () => {
  test('concurrency cap, one shared refresh for simultaneous callers, cache within the TTL', async () => {
    // A TCP server that accepts and never answers: every probe ends at its timeout.
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(silent.address() as { port: number }).port}`;
    const records = Array.from({ length: 6 }, (_, i) => ({
      id: `bl-${String(i).padStart(16, '0')}`,
      name: `b${i}`,
      identityFingerprint: 'ab'.repeat(32),
      certificatePem: '',
      url: `${url}/b${i}`, // one client each, as distinct blinders have
      createdAt: 0,
      updatedAt: 0,
    }));
    const mon = createBlinderHealthMonitor({
      blinders: () => records,
      chains: () => [],
      lastRelay: () => null,
      caPem: '',
      ttlMs: 10_000,
      timeoutMs: 500,
      concurrency: 2,
    });
    try {
      const t = Date.now();
      const [x, y] = await Promise.all([mon.list(), mon.list()]);
      const took = Date.now() - t;
      // 6 blinders, 2 at a time, 500 ms each: 3 rounds, not 1 (unbounded) and not 6 (serial).
      assert.ok(took >= 1450 && took < 2700, `refresh took ${took} ms`);
      assert.deepEqual(x.blinders, y.blinders); // the same probes (only `now` may differ)
      assert.ok(
        x.blinders.every((b) => b.state === 'down' && /no answer within 500 ms/.test(b.error!)),
      );
      // Two callers, one refresh: one connection per blinder (/ready only after /health answers).
      assert.equal(sockets.length, 6);
      const t2 = Date.now();
      await mon.list();
      assert.ok(Date.now() - t2 < 100, 'cached within the TTL');
      assert.equal(sockets.length, 6);
    } finally {
      mon.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});

/**
 * The web console in real headless Chromium against a real manager process and a real appliance
 * (local API, cluster loop, console-import loop): sign in with the keyboard, the overview with
 * charts, rotate and disable a keyring, create an enrollment token, revoke a member, filter the
 * audit log and verify its chain (also after tampering with the database), and enter a master
 * key in the page. Every request the page sends is captured: none carries the key material in
 * any encoding; afterwards the appliance encrypts and decrypts under the new master version, and
 * a second appliance importing the same 32 bytes opens what the first encrypted (so the page
 * concealed exactly the entered key). No console errors; a screenshot of each page goes to
 * test-artifacts/console/.
 *
 * Plus, without a browser: the import protocol in split and hom2 modes through the real routes,
 * and its refusals (foreign appliance, wrong versions, tampered blob).
 */
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import type { Appliance } from '../src/appliance/appliance.ts';
import { type RunningAppliance, startAppliance } from '../src/appliance/run.ts';
import { fromB64u, toB64u } from '../src/core/bytes.ts';
import { concealForImport } from '../src/core/imports.ts';
import { chromiumUnavailable, launchChromium } from './helpers/browser.ts';
import {
  cleanup,
  createKeyring,
  encodingsOf,
  hasBytes,
  type ManagerProcess,
  newAppliance,
  newRootKey,
  scanProcessMemory,
  startManagerProcess,
  tmpDir,
} from './helpers/deploy.ts';

const ARTIFACTS = resolve(import.meta.dirname, '../test-artifacts/console');
const skip = chromiumUnavailable();
const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

interface Member {
  id: string;
  name: string;
  status: string;
}

async function localFetch(a: RunningAppliance, path: string, body?: Uint8Array) {
  const res = await fetch(`${a.url}${path}`, {
    method: body ? 'POST' : 'GET',
    headers: {
      authorization: `Bearer ${a.token}`,
      ...(body ? { 'content-type': 'application/octet-stream' } : {}),
    },
    body: body ? Buffer.from(body) : undefined,
  });
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
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

describe('web console', { skip: skip ? `browser tests skipped: ${skip}` : false }, () => {
  let home: string;
  let aHome: string;
  let bHome: string;
  let cHome: string;
  let m: ManagerProcess;
  let A: RunningAppliance;
  let B: Appliance;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];
  const requests: { url: string; headers: string; body: Buffer }[] = [];

  before(async () => {
    home = await tmpDir('bf-console-');
    aHome = await tmpDir('bf-console-a-');
    bHome = await tmpDir('bf-console-b-');
    cHome = await tmpDir('bf-console-c-');
    await mkdir(ARTIFACTS, { recursive: true });
    process.env.BLINDFOLD_METRICS_SAMPLE_MS = '500';
    [m, browser] = await Promise.all([
      startManagerProcess({ home, rootKey: newRootKey() }),
      launchChromium(),
    ]);
    await createKeyring(m, 'docs', 'hom2-opt');
    const a = await newAppliance(m, aHome, 'alpha');
    await a.initKeyring('docs');
    a.close();
    A = await startAppliance({
      home: aHome,
      port: 0,
      clusterPollMs: 300,
      consoleImports: { pollMs: 250 },
    });
    B = await newAppliance(m, bHome, 'bravo');
    const ctx = await browser.newContext({
      ignoreHTTPSErrors: true, // the manager's own local CA
      viewport: { width: 1280, height: 800 },
    });
    page = await ctx.newPage();
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') consoleErrors.push(msg.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    page.on('request', (r) => {
      requests.push({
        url: r.url(),
        headers: JSON.stringify(r.headers()),
        body: r.postDataBuffer() ?? Buffer.alloc(0),
      });
    });
  });

  after(async () => {
    await browser?.close();
    await A?.close();
    B?.close();
    await m?.stop();
    delete process.env.BLINDFOLD_METRICS_SAMPLE_MS;
    await cleanup(home, aHome, bHome, cHome);
  });

  const shot = (name: string) =>
    page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  const nav = async (label: string, heading: string) => {
    await page.getByRole('link', { name: label, exact: true }).click();
    await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
  };
  const confirm = async (name: string) => {
    const dlg = page.locator('dialog[open]');
    await dlg.waitFor();
    await dlg.getByRole('button', { name, exact: true }).click();
    await dlg.waitFor({ state: 'detached' });
  };

  test('sign in with the keyboard; overview shows health and charts', async () => {
    const res = await page.goto(`${m.url}/ui/`);
    const csp = res!.headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    // Focus starts in the token field: type it and press Enter.
    await page.locator('#token:focus').waitFor();
    await page.keyboard.type('bf-op-wrong');
    await page.keyboard.press('Enter');
    await page.getByRole('alert').filter({ hasText: 'ERR_UNAUTHENTICATED' }).waitFor();
    // Chromium logs the refused request (401) it was asked to make: expected, nothing else is.
    assert.deepEqual(consoleErrors.splice(0), [
      'Failed to load resource: the server responded with a status of 401 (Unauthorized)',
    ]);
    await page.locator('#token').fill('');
    await page.keyboard.type(m.operatorToken);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    await page.locator('#health-manager .badge', { hasText: 'ready' }).waitFor();
    await page.locator('#health-appliances', { hasText: 'alpha' }).waitFor();
    await page.locator('#health-blinders', { hasText: 'No blinders' }).waitFor();
    // The chart fills as the manager samples (every 500 ms here) and the page refreshes.
    await page.locator('#chart-rate path.series').waitFor({ timeout: 15000 });
    assert.ok(Number(await page.locator('#chart-rate').getAttribute('data-points')) > 0);
    await page.locator('#chart-latency path.series').first().waitFor();
    assert.equal(
      await page
        .locator('#health-appliances li', { hasText: 'alpha' })
        .locator('.badge')
        .textContent(),
      'active',
    );
    await shot('overview');
    // A narrow window: nothing overflows the page sideways (tables scroll in their box).
    await page.setViewportSize({ width: 420, height: 800 });
    await page.waitForTimeout(100);
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    assert.ok(overflow <= 1, `horizontal overflow of ${overflow}px at 420 px`);
    await shot('overview-narrow');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  test('keys: rotate with confirmation (keyboard), disable and enable', async () => {
    await nav('Keys', 'Keys and keyrings');
    const row = page.locator('tr[data-keyring="docs"]');
    await row.waitFor();
    assert.equal(await row.locator('.manager-version').textContent(), '1');
    await row.locator('button[data-action="rotate"]').click();
    // The dialog focuses Cancel (safe default); Shift+Tab reaches the confirm button.
    await page.locator('dialog[open] button:focus', { hasText: 'Cancel' }).waitFor();
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Enter');
    await page.locator('tr[data-keyring="docs"] .manager-version', { hasText: '2' }).waitFor();
    const k = await m.op.request<{ managerVersion: number }>('GET', '/v1/keyrings/docs');
    assert.equal(k.managerVersion, 2);
    // Cancelling changes nothing.
    await row.locator('button[data-action="disable"]').click();
    await page.keyboard.press('Escape');
    await page.locator('dialog').waitFor({ state: 'detached' });
    assert.equal(
      (await m.op.request<{ status: string }>('GET', '/v1/keyrings/docs')).status,
      'enabled',
    );
    await row.locator('button[data-action="disable"]').click();
    await confirm('Disable');
    await page.locator('tr[data-keyring="docs"] .badge', { hasText: 'disabled' }).waitFor();
    await page.locator('tr[data-keyring="docs"] button[data-action="enable"]').click();
    await confirm('Enable');
    await page.locator('tr[data-keyring="docs"] .badge', { hasText: 'enabled' }).waitFor();
    await row.locator('button[data-action="details"]').click();
    await page.locator('ol.history li', { hasText: 'keyring.rotate v2' }).waitFor();
    // Schedule deletion (7 days, the minimum), then cancel it.
    const t0 = Date.now();
    await row.locator('button[data-action="schedule-deletion"]').click();
    await page.locator('dialog[open] input[name="pendingDays"]').fill('7');
    await confirm('Schedule deletion');
    await page.locator('tr[data-keyring="docs"] button[data-action="cancel-deletion"]').waitFor();
    const scheduled = await m.op.request<{ deletionAt: number | null }>('GET', '/v1/keyrings/docs');
    const day = 86_400_000;
    assert.ok(
      scheduled.deletionAt! >= t0 + 7 * day && scheduled.deletionAt! <= Date.now() + 7 * day,
    );
    await shot('keys-deletion');
    await page.locator('tr[data-keyring="docs"] button[data-action="cancel-deletion"]').click();
    await confirm('Cancel deletion');
    await page.locator('tr[data-keyring="docs"] button[data-action="schedule-deletion"]').waitFor();
    assert.equal(
      (await m.op.request<{ deletionAt: number | null }>('GET', '/v1/keyrings/docs')).deletionAt,
      null,
    );
    await shot('keys');
    // The appliance follows the manager-key rotation (as `blindfold keys rotate` does).
    await A.appliance.followManagerRotation('docs');
  });

  test('cluster: graph, enrollment token, revoke a member', async () => {
    await nav('Cluster', 'Cluster');
    await page.locator('svg.graph g.node[data-id="operator"]').waitFor();
    await page.locator(`svg.graph g.node[data-id="${A.appliance.id}"]`).waitFor();
    await page.locator('#create-token').click();
    const token = (await page.locator('#token-out .token').textContent()) ?? '';
    assert.match(token, /^bf-enroll-/);
    await page.locator(`tr[data-member="${B.id}"] button[data-action="revoke"]`).click();
    await confirm('Revoke');
    await page.locator(`tr[data-member="${B.id}"] .badge`, { hasText: 'revoked' }).waitFor();
    await page.locator(`svg.graph g.node.revoked[data-id="${B.id}"]`).waitFor();
    const { members } = await m.op.request<{ members: Member[] }>('GET', '/v1/cluster/members');
    assert.equal(members.find((x) => x.id === B.id)!.status, 'revoked');
    assert.equal(members.find((x) => x.id === A.appliance.id)!.status, 'trusted');
    await shot('cluster');
  });

  test('audit: filter, search, verify the chain and show where it breaks', async () => {
    await nav('Audit', 'Audit log');
    await page.locator('#audit tbody tr').first().waitFor();
    await page.locator('input[name="action"]').fill('appliance.revoke');
    await page.locator('#audit-filter').click();
    await page.waitForFunction(
      () =>
        Array.from(document.querySelectorAll('#audit tbody tr td:nth-child(4)')).every(
          (td) => td.textContent === 'appliance.revoke',
        ) && document.querySelectorAll('#audit tbody tr').length === 1,
    );
    assert.equal(await page.locator('#audit tbody tr td.mono').nth(1).textContent(), B.id);
    await page.locator('input[name="search"]').fill('no-such-thing');
    await page.locator('.empty', { hasText: 'No shown entry matches' }).waitFor();
    await page.locator('input[name="search"]').fill('');
    await page.locator('#verify-chain').click();
    await page.locator('#chain-ok').waitFor();
    await shot('audit');
    // Tamper with entry 3 in the database: the page names it.
    const db = new Database(join(home, 'blindfold.db'));
    try {
      const before = db.prepare('SELECT actor FROM audit WHERE seq = 3').get() as { actor: string };
      db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 3").run();
      await page.locator('#verify-chain').click();
      const broken = page.locator('#chain-broken');
      await broken.waitFor();
      assert.equal(await broken.getAttribute('data-broken-at'), '3');
      await page.locator('#show-broken').click();
      await page.locator('#audit tr.broken[data-seq="3"]').waitFor();
      await shot('audit-broken');
      db.prepare('UPDATE audit SET actor = ? WHERE seq = 3').run(before.actor);
    } finally {
      db.close();
    }
    await page.locator('#verify-chain').click();
    await page.locator('#chain-ok').waitFor();
  });

  test('master key entered in the page: nothing readable leaves it; the appliance uses it', async () => {
    const before = A.appliance.latestVersions('docs');
    const status = JSON.parse(Buffer.from(await localFetch(A, '/v1/status')).toString()) as {
      importKeyFingerprint: string;
    };
    await nav('Master key', 'Master key');
    await page.locator('#mk-keyring').selectOption('docs');
    await page.locator('#mk-appliance').selectOption(A.appliance.id);
    const shown = ((await page.locator('#mk-fingerprint').textContent()) ?? '').replaceAll(' ', '');
    assert.equal(shown, status.importKeyFingerprint, 'the fingerprint the operator compares');
    // Refused until the operator confirms the comparison.
    await page.locator('#mk-generate').click();
    await page.locator('#mk-send').click();
    await page
      .getByRole('alert')
      .filter({ hasText: 'compare the import key fingerprint' })
      .waitFor();
    await page.locator('#mk-compared').check();
    const keyHex = await page.locator('#mk-material').inputValue();
    assert.match(keyHex, /^[0-9a-f]{64}$/);
    const key = Buffer.from(keyHex, 'hex');
    const sentBefore = requests.length;
    await page.locator('#mk-send').click();
    await confirm('Conceal and send');
    await page.locator('#mk-done').waitFor({ timeout: 20000 });
    assert.equal(await page.locator('#mk-material').inputValue(), '');
    await shot('master');

    // 1. No request carries the key material, in any encoding.
    const needles = [
      key,
      Buffer.from(key.toString('hex')),
      Buffer.from(key.toString('hex').toUpperCase()),
      Buffer.from(key.toString('base64')),
      Buffer.from(key.toString('base64url')),
      Buffer.from(encodeURIComponent(key.toString('base64'))),
    ];
    assert.ok(requests.length > sentBefore);
    const posted = requests.slice(sentBefore).filter((r) => r.body.length > 0);
    assert.ok(
      posted.some((r) => r.url.endsWith('/imports')),
      'the sealed import was posted',
    );
    for (const r of requests) {
      const hay = Buffer.concat([Buffer.from(r.url), Buffer.from(r.headers), r.body]);
      for (const n of needles)
        assert.equal(hay.indexOf(n), -1, `key bytes in a request to ${r.url}`);
    }

    // ... nor the manager's memory, database or state files (T1 for the console path).
    assert.equal(await scanProcessMemory(m.proc.pid!, encodingsOf(key)), 0, 'manager memory');
    for (const f of ['blindfold.db', 'blindfold.db-wal']) {
      const bytes = await readFile(join(home, f)).catch(() => new Uint8Array(0));
      for (const n of encodingsOf(key)) assert.ok(!hasBytes(bytes, n), `${f} holds key bytes`);
    }
    assert.ok(
      (await m.op.request<{ imports: { status: string }[] }>('GET', '/v1/imports')).imports.every(
        (i) => i.status === 'done',
      ),
    );

    // 2. The appliance holds the new master version and encrypts and decrypts with it.
    const now = A.appliance.latestVersions('docs');
    assert.equal(now.masterVersion, before.masterVersion + 1);
    const plain = new TextEncoder().encode('entered in the browser, never seen by the manager');
    const file = await localFetch(A, '/v1/encrypt?keyring=docs', plain);
    assert.deepEqual(await localFetch(A, '/v1/decrypt', file), plain);

    // 3. It is the entered key: another appliance importing the same 32 bytes opens that file.
    const C = await newAppliance(m, cHome, 'charlie');
    try {
      await C.initKeyring('docs', { importKey: new Uint8Array(key) });
      assert.equal(C.latestVersions('docs').masterVersion, now.masterVersion);
      const { decodeHeader } = await import('../src/core/format.ts');
      const kekA = await A.appliance.openItem(decodeHeader(file));
      assert.deepEqual(await C.openItem(decodeHeader(file)), kekA);
    } finally {
      C.close();
    }
    const { imports } = await m.op.request<{ imports: { status: string }[] }>('GET', '/v1/imports');
    assert.deepEqual(
      imports.map((i) => i.status),
      ['done'],
    );
  });

  test('a narrow window: every page fits without sideways scrolling', async () => {
    await page.setViewportSize({ width: 420, height: 800 });
    try {
      for (const [label, heading] of [
        ['Overview', 'Overview'],
        ['Keys', 'Keys and keyrings'],
        ['Cluster', 'Cluster'],
        ['Audit', 'Audit log'],
        ['Master key', 'Master key'],
      ] as const) {
        await nav(label, heading);
        await page.waitForLoadState('networkidle');
        const overflow = await page.evaluate(
          () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
        );
        assert.ok(overflow <= 1, `${label}: ${overflow}px of sideways overflow at 420 px`);
      }
      await shot('master-narrow');
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  test('no console errors on any page', () => {
    assert.deepEqual(consoleErrors, []);
  });
});

describe('console master-key import through the API (no browser)', () => {
  let home: string;
  const dirs: string[] = [];
  let m: ManagerProcess;

  before(async () => {
    home = await tmpDir('bf-import-');
    m = await startManagerProcess({ home, rootKey: newRootKey() });
  });
  after(async () => {
    await m?.stop();
    await cleanup(home, ...dirs);
  });

  for (const [mode, scheme] of [
    ['split', 'xor'],
    ['hom2', 'ec-elgamal'],
  ] as const) {
    test(`${mode}/${scheme}: import, encrypt, decrypt; refusals change nothing`, async () => {
      const ring = `imp-${mode}`;
      await createKeyring(m, ring, mode, scheme);
      const dir = await tmpDir('bf-import-a-');
      const otherDir = await tmpDir('bf-import-b-');
      dirs.push(dir, otherDir);
      const a = await newAppliance(m, dir, `imp-${mode}`);
      a.close();
      // A fresh appliance, enrolled by the operator, gets its first master from the console.
      const run = await startAppliance({
        home: dir,
        port: 0,
        clusterPollMs: 0,
        consoleImports: { pollMs: 100 },
      });
      try {
        const ik = await waitFor(
          () =>
            m.op
              .request<{ publicKey: string }>(
                'GET',
                `/v1/appliances/${run.appliance.id}/import-key`,
              )
              .catch(() => undefined),
          'the import key',
        );
        const seed = new Uint8Array(32).fill(7);
        const target = await m.op.request<{
          applianceId: string;
          keyring: string;
          mode: string;
          scheme: string;
          masterVersion: number;
          managerVersion: number;
          publicKey?: string;
        }>('POST', `/v1/keyrings/${ring}/imports/prepare`, {
          applianceId: run.appliance.id,
          expected: 0,
        });
        assert.equal(target.masterVersion, 1);
        // A stale expectation loses the compare-and-swap.
        await assert.rejects(
          m.op.request('POST', `/v1/keyrings/${ring}/imports/prepare`, {
            applianceId: run.appliance.id,
            expected: 0,
          }),
          code('ERR_CONFLICT'),
        );
        const c = concealForImport(seed, target, fromB64u(ik.publicKey));
        assert.equal(c.r !== undefined, mode === 'split');
        // A blob sealed for other versions is refused by the appliance, and nothing is stored.
        const wrong = concealForImport(
          seed,
          { ...target, keyring: 'elsewhere' },
          fromB64u(ik.publicKey),
        );
        const bad = await m.op.request<{ id: string }>('POST', `/v1/keyrings/${ring}/imports`, {
          applianceId: target.applianceId,
          masterVersion: target.masterVersion,
          managerVersion: target.managerVersion,
          sealed: toB64u(wrong.sealed),
          ...(wrong.r ? { r: toB64u(c.r!) } : {}),
        });
        const failed = await waitFor(async () => {
          const l = await m.op.request<{ imports: { id: string; status: string; code: string }[] }>(
            'GET',
            '/v1/imports',
          );
          const it = l.imports.find((x) => x.id === bad.id);
          return it && it.status !== 'pending' ? it : undefined;
        }, 'the refusal');
        assert.deepEqual([failed.status, failed.code], ['failed', 'ERR_DECODE']);
        assert.equal(run.appliance.state.keyrings[ring], undefined);
        const good = await m.op.request<{ id: string }>('POST', `/v1/keyrings/${ring}/imports`, {
          applianceId: target.applianceId,
          masterVersion: target.masterVersion,
          managerVersion: target.managerVersion,
          sealed: toB64u(c.sealed),
          ...(c.r ? { r: toB64u(c.r) } : {}),
        });
        await waitFor(async () => {
          const l = await m.op.request<{ imports: { id: string; status: string }[] }>(
            'GET',
            '/v1/imports',
          );
          return l.imports.find((x) => x.id === good.id && x.status === 'done');
        }, 'the import');
        assert.equal(run.appliance.latestVersions(ring).masterVersion, 1);
        const plain = new TextEncoder().encode(`imported ${mode}`);
        const file = await localFetch(run, `/v1/encrypt?keyring=${ring}`, plain);
        assert.deepEqual(await localFetch(run, '/v1/decrypt', file), plain);
        // The appliance was enrolled by the operator: the import made it trusted.
        const { members } = await m.op.request<{ members: Member[] }>('GET', '/v1/cluster/members');
        assert.equal(members.find((x) => x.id === run.appliance.id)!.status, 'trusted');
        // Bad inputs: an unknown appliance, a blob that is too short.
        await assert.rejects(
          m.op.request('GET', '/v1/appliances/ap-0000000000000000/import-key'),
          code('ERR_NOT_FOUND'),
        );
        await assert.rejects(
          m.op.request('POST', `/v1/keyrings/${ring}/imports`, {
            applianceId: target.applianceId,
            masterVersion: 1,
            managerVersion: 1,
            sealed: 'AAAA',
          }),
          code('ERR_INVALID_ARGUMENT'),
        );
      } finally {
        await run.close();
      }
      // An import for an appliance that is then revoked: it fails and its blob is dropped.
      const id = run.appliance.id;
      const ik = await m.op.request<{ publicKey: string }>(
        'GET',
        `/v1/appliances/${id}/import-key`,
      );
      const t2 = await m.op.request<Parameters<typeof concealForImport>[1]>(
        'POST',
        `/v1/keyrings/${ring}/imports/prepare`,
        { applianceId: id, expected: 1 },
      );
      const c2 = concealForImport(new Uint8Array(32).fill(8), t2, fromB64u(ik.publicKey));
      const pending = await m.op.request<{ id: string; status: string }>(
        'POST',
        `/v1/keyrings/${ring}/imports`,
        {
          applianceId: id,
          masterVersion: t2.masterVersion,
          managerVersion: t2.managerVersion,
          sealed: toB64u(c2.sealed),
          ...(c2.r ? { r: toB64u(c2.r) } : {}),
        },
      );
      assert.equal(pending.status, 'pending');
      await m.op.request('POST', `/v1/appliances/${id}/revoke`, {});
      const l = await m.op.request<{ imports: { id: string; status: string; code: string }[] }>(
        'GET',
        '/v1/imports',
      );
      const it = l.imports.find((x) => x.id === pending.id)!;
      assert.deepEqual([it.status, it.code], ['failed', 'ERR_REVOKED']);
    });
  }
});

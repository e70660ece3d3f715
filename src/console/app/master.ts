/**
 * Master-key entry (SPEC.md §5.9): the operator generates or pastes 32 bytes of key material
 * here; the page conceals the master with the same core code as the appliance (split: M ⊕ r_A;
 * hom modes: Enc_{D_A}(M) under the appliance's key for the new version), seals the concealment
 * to the appliance's import key, and sends only that sealed blob (and, in split mode, r_A). The
 * key material never leaves the page in any form the manager can open.
 *
 * The import key comes from the manager: the page checks that the appliance's identity key
 * signed it and shows its fingerprint, which the operator compares with `blindfold status` on
 * the appliance's host — the only defence against a live compromised manager substituting it.
 */
import { fromB64u, fromHex, toB64u, toHex, zeroize } from '../../core/bytes.ts';
import { sha256 } from '../../core/hash.ts';
import { concealForImport, importKeyFingerprint, importKeyStatement } from '../../core/imports.ts';
import { systemRng } from '../../core/random.ts';
import { api, type Keyring, type Member } from './api.ts';
import { clear, confirmDialog, errorBox, fmtTime, h, message, toast } from './dom.ts';

interface ImportKeyAnswer {
  applianceId: string;
  publicKey: string;
  signature: string;
  fingerprint: string;
  identityKey: string;
  identityFingerprint: string;
  createdAt: number;
}

interface ImportView {
  id: string;
  applianceId: string;
  keyring: string;
  masterVersion: number;
  managerVersion: number;
  status: string;
  code: string | null;
  createdAt: number;
}

/** Checks the import key's signature by the appliance's identity key (WebCrypto ECDSA P-256). */
async function verifyImportKey(a: ImportKeyAnswer, member: Member): Promise<Uint8Array> {
  const spki = fromB64u(a.identityKey, 'identityKey');
  if (toHex(sha256(spki)) !== member.identityFingerprint) {
    throw new Error(
      "the identity key the manager returned is not this member's (fingerprint differs)",
    );
  }
  const pk = fromB64u(a.publicKey, 'publicKey');
  const key = await crypto.subtle.importKey(
    'spki',
    new Uint8Array(spki),
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['verify'],
  );
  const ok = await crypto.subtle.verify(
    { name: 'ECDSA', hash: 'SHA-256' },
    key,
    new Uint8Array(fromB64u(a.signature, 'signature')),
    new Uint8Array(importKeyStatement(a.applianceId, pk)),
  );
  if (!ok)
    throw new Error("the import key is not signed by this appliance's identity key: do not use it");
  return pk;
}

/** 64 hex digits or 43 base64url characters → 32 bytes. */
function parseKey(text: string): Uint8Array {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return fromHex(t.toLowerCase());
  if (/^[A-Za-z0-9_-]{43}$/.test(t)) return fromB64u(t, 'key');
  throw new Error('enter exactly 32 bytes: 64 hex digits or 43 base64url characters');
}

const label = (k: Keyring) => `${k.name} (${k.mode}, ${k.scheme}, master v${k.masterVersion})`;

export async function master(root: HTMLElement): Promise<() => void> {
  let stopped = false;
  const [rings, members] = await Promise.all([
    api<{ keyrings: Keyring[] }>('GET', '/v1/keyrings').then((x) => x.keyrings),
    api<{ members: Member[] }>('GET', '/v1/cluster/members').then((x) =>
      x.members.filter((m) => m.status !== 'revoked'),
    ),
  ]);
  const intro = h(
    'p',
    { class: 'muted' },
    'Enter or generate 32 bytes of master-key material. The page conceals it for one appliance and sends only the concealed, sealed form: the manager cannot open it. Keep a copy of the key material offline if you want to import the same master elsewhere.',
  );
  if (rings.length === 0 || members.length === 0) {
    clear(
      root,
      h('h1', {}, 'Master key'),
      intro,
      h(
        'p',
        { class: 'empty' },
        rings.length === 0
          ? 'No keyrings yet: create one on the Keys page.'
          : 'No appliances yet: enroll one on the Cluster page.',
      ),
    );
    return () => {};
  }
  const keyring = h(
    'select',
    { id: 'mk-keyring', name: 'keyring' },
    ...rings.map((k) => h('option', { value: k.name }, label(k))),
  );
  const appliance = h(
    'select',
    { id: 'mk-appliance', name: 'appliance' },
    ...members.map((m) => h('option', { value: m.id }, `${m.name} (${m.id}, ${m.status})`)),
  );
  const keyInfo = h('div', { id: 'mk-import-key', 'aria-live': 'polite' });
  const compared = h('input', { type: 'checkbox', id: 'mk-compared', name: 'compared' });
  const material = h('input', {
    id: 'mk-material',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    size: 70,
    'aria-describedby': 'mk-help',
  });
  const gen = h('button', { type: 'button', class: 'secondary', id: 'mk-generate' }, 'Generate');
  const reveal = h(
    'button',
    { type: 'button', class: 'secondary', id: 'mk-reveal', 'aria-pressed': 'false' },
    'Show',
  );
  const send = h('button', { type: 'submit', id: 'mk-send' }, 'Conceal and send');
  const out = h('div', { id: 'mk-result', 'aria-live': 'polite' });
  let importKey: Uint8Array | undefined;

  const loadKey = async () => {
    importKey = undefined;
    compared.checked = false;
    const m = members.find((x) => x.id === appliance.value)!;
    clear(keyInfo, h('p', { class: 'muted' }, 'Loading the import key…'));
    try {
      const a = await api<ImportKeyAnswer>(
        'GET',
        `/v1/appliances/${encodeURIComponent(m.id)}/import-key`,
      );
      const pk = await verifyImportKey(a, m);
      const fpr = importKeyFingerprint(pk);
      if (fpr !== a.fingerprint)
        throw new Error('the manager reported a different fingerprint than the key it sent');
      importKey = pk;
      clear(
        keyInfo,
        h(
          'p',
          {},
          'Import key of ',
          h('strong', {}, m.name),
          `, signed by its identity key (published ${fmtTime(a.createdAt)}):`,
        ),
        h(
          'p',
          {},
          h('span', { class: 'fpr', id: 'mk-fingerprint' }, fpr.match(/.{4}/g)!.join(' ')),
        ),
        h(
          'p',
          { class: 'muted' },
          'Compare it with "importKeyFingerprint" in the output of "blindfold status" on the appliance\'s host. If they differ, the manager substituted the key: stop.',
        ),
        h(
          'label',
          { class: 'check' },
          compared,
          "I compared this fingerprint with the appliance's",
        ),
      );
    } catch (e) {
      clear(keyInfo, errorBox(e));
    }
  };
  appliance.addEventListener('change', () => void loadKey());

  gen.addEventListener('click', () => {
    const b = systemRng(32);
    material.value = toHex(b);
    zeroize(b);
    toast('32 random bytes generated in this page');
  });
  reveal.addEventListener('click', () => {
    const show = material.type === 'password';
    material.type = show ? 'text' : 'password';
    reveal.textContent = show ? 'Hide' : 'Show';
    reveal.setAttribute('aria-pressed', String(show));
  });

  const poll = async (id: string) => {
    for (let i = 0; i < 120 && !stopped; i++) {
      const { imports } = await api<{ imports: ImportView[] }>('GET', '/v1/imports');
      const it = imports.find((x) => x.id === id);
      if (it && it.status !== 'pending') {
        // The keyring list shows master versions: bring it up to date.
        const fresh = await api<{ keyrings: Keyring[] }>('GET', '/v1/keyrings');
        for (const k of fresh.keyrings) {
          const opt = keyring.querySelector(`option[value="${CSS.escape(k.name)}"]`);
          if (opt) opt.textContent = label(k);
        }
        clear(
          out,
          it.status === 'done'
            ? h(
                'div',
                { class: 'notice', id: 'mk-done' },
                `The appliance stored master version ${it.masterVersion} of ${it.keyring}. New items use it from now on.`,
              )
            : h(
                'div',
                { class: 'error', role: 'alert', id: 'mk-failed' },
                `The appliance refused the import: ${it.code ?? 'unknown error'}.`,
              ),
        );
        return;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  };

  const form = h(
    'form',
    { 'aria-label': 'Enter a master key' },
    h(
      'div',
      { class: 'row' },
      h('label', {}, 'Keyring', keyring),
      h('label', {}, 'Appliance', appliance),
    ),
    keyInfo,
    h(
      'div',
      { class: 'row' },
      h('label', {}, 'Key material (32 bytes, hex or base64url)', material),
      gen,
      reveal,
    ),
    h(
      'p',
      { id: 'mk-help', class: 'muted' },
      'The key material stays in this page; it is wiped from the page after sending.',
    ),
    h('div', { class: 'row' }, send),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(out);
    let seed: Uint8Array | undefined;
    try {
      if (!importKey) throw new Error('no verified import key for this appliance');
      if (!compared.checked)
        throw new Error(
          'compare the import key fingerprint with the appliance first, and tick the box',
        );
      seed = parseKey(material.value);
      const k = await api<Keyring>('GET', `/v1/keyrings/${encodeURIComponent(keyring.value)}`);
      const ok = await confirmDialog({
        title: `New master version for ${k.name}?`,
        body: [
          `Master version ${k.masterVersion + 1} of ${k.name} (${k.mode}, ${k.scheme}) is created for ${appliance.selectedOptions[0]?.textContent ?? ''}. Existing files keep their master version.`,
        ],
        confirm: 'Conceal and send',
      });
      if (!ok) return;
      const target = await api<{
        applianceId: string;
        keyring: string;
        mode: string;
        scheme: string;
        masterVersion: number;
        managerVersion: number;
        publicKey?: string;
      }>('POST', `/v1/keyrings/${encodeURIComponent(k.name)}/imports/prepare`, {
        applianceId: appliance.value,
        expected: k.masterVersion,
      });
      const c = concealForImport(seed, target, importKey);
      const body = {
        applianceId: target.applianceId,
        masterVersion: target.masterVersion,
        managerVersion: target.managerVersion,
        sealed: toB64u(c.sealed),
        ...(c.r ? { r: toB64u(c.r) } : {}),
      };
      if (c.r) zeroize(c.r);
      const imp = await api<ImportView>(
        'POST',
        `/v1/keyrings/${encodeURIComponent(k.name)}/imports`,
        body,
      );
      material.value = '';
      clear(
        out,
        h(
          'div',
          { class: 'notice', id: 'mk-pending' },
          `Sent (import ${imp.id}); waiting for the appliance to store master version ${imp.masterVersion}…`,
        ),
      );
      await poll(imp.id);
    } catch (e) {
      clear(out, h('div', { class: 'error', role: 'alert' }, message(e)));
    } finally {
      if (seed) zeroize(seed);
    }
  });

  clear(root, h('h1', {}, 'Master key'), intro, form, out);
  await loadKey();
  return () => {
    stopped = true;
  };
}

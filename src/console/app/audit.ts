/**
 * Audit: filter (on the manager: actor, action, outcome, from sequence number) and search (in the
 * page) the log, and verify its hash chain in the browser with the same code the CLI and the
 * manager use (src/core/audit.ts, SPEC.md §8), showing the first entry where it breaks.
 */
import { GENESIS_HASH, verifyChain } from '../../core/audit.ts';
import { type AuditRow, api } from './api.ts';
import { clear, errorBox, fmtTime, h } from './dom.ts';

const ACTIONS = [
  'keyring.create',
  'keyring.rotate',
  'keyring.master-rotate',
  'keyring.enable',
  'keyring.disable',
  'keyring.schedule-deletion',
  'keyring.cancel-deletion',
  'keyring.destroy',
  'enrollment.create',
  'appliance.enroll',
  'appliance.trusted',
  'appliance.revoke',
  'appliance.key',
  'appliance.opt-setup',
  'appliance.reconceal',
  'appliance.import-key',
  'master.import',
  'master.import-result',
  'item.create',
  'item.recover',
];

export async function audit(root: HTMLElement): Promise<() => void> {
  let broken: number | undefined;
  const actor = h('input', { name: 'actor', placeholder: 'operator or ap-…', maxlength: 128 });
  const action = h('input', {
    name: 'action',
    list: 'audit-actions',
    placeholder: 'any',
    maxlength: 64,
  });
  const outcome = h(
    'select',
    { name: 'outcome' },
    h('option', { value: '' }, 'any'),
    ...['ok', 'refused', 'error'].map((o) => h('option', { value: o }, o)),
  );
  const after = h('input', { name: 'afterSeq', type: 'number', min: 0, value: 0, size: 8 });
  const limit = h('input', {
    name: 'limit',
    type: 'number',
    min: 1,
    max: 10000,
    value: 500,
    size: 6,
  });
  const search = h('input', {
    name: 'search',
    type: 'search',
    placeholder: 'search in the shown entries',
  });
  const results = h('div', { id: 'audit-results' });
  const verdict = h('div', { id: 'chain-verdict', 'aria-live': 'polite' });
  let rows: AuditRow[] = [];

  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const shown = q
      ? rows.filter((e) =>
          [e.actor, e.action, e.keyring, e.item, e.code, e.requestId, e.outcome, String(e.seq)]
            .filter((x): x is string => typeof x === 'string')
            .some((x) => x.toLowerCase().includes(q)),
        )
      : rows;
    if (shown.length === 0) {
      clear(
        results,
        h(
          'p',
          { class: 'empty' },
          rows.length ? 'No shown entry matches the search.' : 'No entries match these filters.',
        ),
      );
      return;
    }
    clear(
      results,
      h('p', { class: 'muted' }, `${shown.length} of ${rows.length} loaded entries`),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'audit' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...[
                'Seq',
                'Time',
                'Actor',
                'Action',
                'Keyring',
                'Item',
                'Version',
                'Outcome',
                'Hash',
              ].map((t) => h('th', { scope: 'col' }, t)),
            ),
          ),
          h(
            'tbody',
            {},
            ...shown.map((e) =>
              h(
                'tr',
                { 'data-seq': e.seq, class: e.seq === broken ? 'broken' : '' },
                h('td', {}, String(e.seq)),
                h('td', {}, fmtTime(e.ts)),
                h('td', { class: 'mono' }, e.actor),
                h('td', {}, e.action),
                h('td', {}, e.keyring ?? ''),
                h('td', { class: 'mono' }, e.item ?? ''),
                h('td', {}, e.keyVersion === null ? '' : String(e.keyVersion)),
                h(
                  'td',
                  { class: e.outcome === 'ok' ? 'ok' : 'bad' },
                  e.outcome,
                  e.code ? ` ${e.code}` : '',
                ),
                h('td', { class: 'mono' }, e.hash.slice(0, 16)),
              ),
            ),
          ),
        ),
      ),
    );
  };

  const load = async () => {
    const p = new URLSearchParams();
    if (Number(after.value) > 0) p.set('afterSeq', String(Math.floor(Number(after.value))));
    p.set('limit', String(Math.min(10000, Math.max(1, Math.floor(Number(limit.value) || 500)))));
    if (actor.value) p.set('actor', actor.value);
    if (action.value) p.set('action', action.value);
    if (outcome.value) p.set('outcome', outcome.value);
    try {
      rows = (await api<{ entries: AuditRow[] }>('GET', `/v1/audit?${p}`)).entries;
      draw();
    } catch (e) {
      clear(results, errorBox(e));
    }
  };

  const verify = async () => {
    clear(verdict, h('p', { class: 'muted' }, 'Verifying…'));
    let prev = GENESIS_HASH;
    let next = 1;
    let checked = 0;
    try {
      for (;;) {
        const page = (
          await api<{ entries: AuditRow[] }>('GET', `/v1/audit?afterSeq=${next - 1}&limit=10000`)
        ).entries;
        if (page.length === 0) break;
        const r = verifyChain(page, prev, next);
        checked += r.checked;
        if (!r.ok) {
          broken = r.brokenAt;
          const show = h(
            'button',
            { type: 'button', class: 'secondary', id: 'show-broken' },
            `Show entry ${r.brokenAt}`,
          );
          show.addEventListener('click', async () => {
            actor.value = '';
            action.value = '';
            outcome.value = '';
            search.value = '';
            after.value = String(Math.max(0, (r.brokenAt ?? 1) - 3));
            await load();
            results
              .querySelector(`tr[data-seq="${r.brokenAt}"]`)
              ?.scrollIntoView({ block: 'center' });
          });
          clear(
            verdict,
            h(
              'div',
              { class: 'error', role: 'alert', id: 'chain-broken', 'data-broken-at': r.brokenAt },
              `The chain breaks at entry ${r.brokenAt}: ${r.reason}. ${checked} entries before it verify. `,
              show,
            ),
          );
          draw();
          return;
        }
        prev = page.at(-1)!.hash;
        next = page.at(-1)!.seq + 1;
      }
      broken = undefined;
      clear(
        verdict,
        h(
          'div',
          { class: 'notice', id: 'chain-ok' },
          `All ${checked} entries verify. Latest hash: `,
          h('span', { class: 'mono' }, prev),
          ' — record it elsewhere: the chain proves a stored prefix unchanged only against a hash kept outside the manager (SPEC.md §8).',
        ),
      );
      draw();
    } catch (e) {
      clear(verdict, errorBox(e));
    }
  };

  const form = h(
    'form',
    { class: 'row', 'aria-label': 'Filter the audit log' },
    h('label', {}, 'Actor', actor),
    h('label', {}, 'Action', action),
    h('label', {}, 'Outcome', outcome),
    h('label', {}, 'After seq', after),
    h('label', {}, 'Limit', limit),
    h('button', { type: 'submit', id: 'audit-filter' }, 'Filter'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void load();
  });
  search.addEventListener('input', draw);
  const verifyBtn = h(
    'button',
    { type: 'button', id: 'verify-chain', class: 'secondary' },
    'Verify hash chain',
  );
  verifyBtn.addEventListener('click', () => void verify());
  clear(
    root,
    h('h1', {}, 'Audit log'),
    h('datalist', { id: 'audit-actions' }, ...ACTIONS.map((a) => h('option', { value: a }))),
    form,
    h('div', { class: 'row' }, h('label', {}, 'Search', search), verifyBtn),
    verdict,
    results,
  );
  await load();
  return () => {};
}

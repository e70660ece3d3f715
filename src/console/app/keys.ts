/**
 * Keys and keyrings: mode, scheme, versions and rotation history; create, rotate the manager key,
 * disable or enable, schedule or cancel deletion, each behind a confirmation dialog. Every action
 * is the CLI's operator route, audited by the manager (SPEC.md §7.1, §8).
 */
import { type AuditRow, api, BLINDER_BADGE, type BlinderHealth, type Keyring } from './api.ts';
import { clear, confirmDialog, errorBox, fmtTime, h, message, toast } from './dom.ts';

const HISTORY_ACTIONS = [
  'keyring.create',
  'keyring.rotate',
  'keyring.master-rotate',
  'keyring.enable',
  'keyring.disable',
  'keyring.schedule-deletion',
  'keyring.cancel-deletion',
  'keyring.destroy',
  'master.import',
];

async function history(name: string): Promise<AuditRow[]> {
  const lists = await Promise.all(
    HISTORY_ACTIONS.map((a) =>
      api<{ entries: AuditRow[] }>('GET', `/v1/audit?action=${encodeURIComponent(a)}&limit=10000`),
    ),
  );
  return lists
    .flatMap((l) => l.entries)
    .filter((e) => e.keyring === name)
    .sort((a, b) => a.seq - b.seq);
}

/**
 * The chains of hom3/homN keyrings, blinders in request order with their probed state
 * (GET /v1/blinders/health, SPEC.md §7.6).
 */
async function chains(rings: Keyring[]): Promise<Map<string, BlinderHealth[]>> {
  const out = new Map<string, BlinderHealth[]>();
  if (!rings.some((k) => k.mode === 'hom3' || k.mode === 'homN')) return out;
  const { blinders } = await api<{ blinders: BlinderHealth[] }>('GET', '/v1/blinders/health');
  const at = new Map<string, { b: BlinderHealth; position: number }[]>();
  for (const b of blinders) {
    for (const k of b.keyrings) {
      const l = at.get(k.keyring) ?? [];
      l.push({ b, position: k.position });
      at.set(k.keyring, l);
    }
  }
  for (const [k, l] of at) {
    out.set(
      k,
      l.sort((x, y) => x.position - y.position).map((x) => x.b),
    );
  }
  return out;
}

function chainView(list: BlinderHealth[]): HTMLElement {
  if (list.length === 0) return h('div', { class: 'bad chain' }, 'no chain known');
  return h(
    'ol',
    { class: 'chain', 'aria-label': 'blinders in request order' },
    ...list.map((b) =>
      h(
        'li',
        { 'data-blinder': b.id, title: `${b.id} ${b.url}` },
        h('span', { class: `badge ${BLINDER_BADGE[b.state]}` }, b.state),
        ` ${b.name}`,
      ),
    ),
  );
}

async function details(k: Keyring): Promise<HTMLElement> {
  const [full, events] = await Promise.all([
    api<Keyring>('GET', `/v1/keyrings/${encodeURIComponent(k.name)}`),
    history(k.name),
  ]);
  return h(
    'div',
    { class: 'grid' },
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Manager-key versions'),
      h(
        'ul',
        {},
        ...(full.versions ?? []).map((v) =>
          h(
            'li',
            {},
            `v${v.managerVersion} created ${fmtTime(v.createdAt)}`,
            v.retiredAt ? ` · retired ${fmtTime(v.retiredAt)}` : '',
            v.managerVersion === full.managerVersion ? ' (current)' : '',
          ),
        ),
      ),
      h(
        'p',
        { class: 'muted' },
        full.masterVersion === 0
          ? 'No master key yet: the first appliance that joins creates one (or enter one on the Master key page).'
          : `Master-key versions 1 to ${full.masterVersion}; every version keeps opening its items.`,
      ),
    ),
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Rotation history'),
      events.length === 0
        ? h('p', { class: 'empty' }, 'No recorded changes.')
        : h(
            'ol',
            { class: 'history' },
            ...events.map((e) =>
              h(
                'li',
                {},
                `${fmtTime(e.ts)} ${e.action}`,
                e.keyVersion !== null ? ` v${e.keyVersion}` : '',
                ` by ${e.actor}`,
                e.outcome !== 'ok' ? ` (${e.outcome} ${e.code ?? ''})` : '',
              ),
            ),
          ),
    ),
  );
}

export async function keys(root: HTMLElement): Promise<() => void> {
  const status = h('div', { 'aria-live': 'polite' });
  const list = h('div', {});
  const render = async () => {
    let rings: Keyring[];
    let chainOf: Map<string, BlinderHealth[]>;
    try {
      rings = (await api<{ keyrings: Keyring[] }>('GET', '/v1/keyrings')).keyrings;
      chainOf = await chains(rings);
    } catch (e) {
      clear(list, errorBox(e));
      return;
    }
    if (rings.length === 0) {
      clear(list, h('p', { class: 'empty' }, 'No keyrings yet. Create one above.'));
      return;
    }
    const rows = rings.flatMap((k) => {
      const detailRow = h('tr', { hidden: true }, h('td', { colspan: 8 }));
      const act = async (what: string, f: () => Promise<unknown>) => {
        try {
          await f();
          toast(`${k.name}: ${what}`);
          clear(status, h('div', { class: 'notice' }, `${k.name}: ${what}.`));
          await render();
        } catch (e) {
          clear(status, errorBox(e));
        }
      };
      const rotate = h(
        'button',
        { type: 'button', class: 'secondary', 'data-action': 'rotate' },
        'Rotate',
      );
      rotate.addEventListener('click', async () => {
        const ok = await confirmDialog({
          title: `Rotate the manager key of ${k.name}?`,
          body: [
            `Creates manager-key version ${k.managerVersion + 1}. Older versions stay and keep opening existing files; appliances re-conceal their master under the new version.`,
          ],
          confirm: 'Rotate',
        });
        if (ok)
          await act('manager key rotated', () =>
            api('POST', `/v1/keyrings/${encodeURIComponent(k.name)}/rotate`),
          );
      });
      const enabled = k.status === 'enabled';
      const toggle = h(
        'button',
        {
          type: 'button',
          class: enabled ? 'danger' : 'secondary',
          'data-action': enabled ? 'disable' : 'enable',
        },
        enabled ? 'Disable' : 'Enable',
      );
      toggle.addEventListener('click', async () => {
        const ok = await confirmDialog({
          title: `${enabled ? 'Disable' : 'Enable'} ${k.name}?`,
          body: [
            enabled
              ? 'While disabled, no item of this keyring can be created or opened. Nothing is deleted.'
              : 'Items of this keyring can be created and opened again.',
          ],
          confirm: enabled ? 'Disable' : 'Enable',
          danger: enabled,
        });
        if (ok) {
          await act(enabled ? 'disabled' : 'enabled', () =>
            api('POST', `/v1/keyrings/${encodeURIComponent(k.name)}/status`, {
              status: enabled ? 'disabled' : 'enabled',
            }),
          );
        }
      });
      const scheduled = typeof k.deletionAt === 'number';
      const deletion = h(
        'button',
        {
          type: 'button',
          class: scheduled ? 'secondary' : 'danger',
          'data-action': scheduled ? 'cancel-deletion' : 'schedule-deletion',
        },
        scheduled ? 'Cancel deletion' : 'Schedule deletion',
      );
      deletion.addEventListener('click', async () => {
        if (scheduled) {
          const ok = await confirmDialog({
            title: `Cancel the deletion of ${k.name}?`,
            body: [`It is scheduled for ${fmtTime(k.deletionAt)}.`],
            confirm: 'Cancel deletion',
          });
          if (ok)
            await act('deletion cancelled', () =>
              api('DELETE', `/v1/keyrings/${encodeURIComponent(k.name)}/deletion`),
            );
          return;
        }
        const days = h('input', {
          name: 'pendingDays',
          type: 'number',
          min: 7,
          max: 30,
          value: 30,
          required: true,
        });
        const form = await confirmDialog({
          title: `Schedule the deletion of ${k.name}?`,
          body: [
            "After the waiting period the keyring's keys are destroyed and every file protected by it becomes unreadable for good. You can cancel until then.",
          ],
          fields: [h('label', {}, 'Waiting period (days, 7 to 30)', days)],
          confirm: 'Schedule deletion',
          danger: true,
        });
        if (form) {
          await act('deletion scheduled', () =>
            api('POST', `/v1/keyrings/${encodeURIComponent(k.name)}/deletion`, {
              pendingDays: Number(form.get('pendingDays')),
            }),
          );
        }
      });
      const more = h(
        'button',
        { type: 'button', class: 'secondary', 'aria-expanded': 'false', 'data-action': 'details' },
        'Details',
      );
      more.addEventListener('click', async () => {
        const open = detailRow.hidden;
        detailRow.hidden = !open;
        more.setAttribute('aria-expanded', String(open));
        if (open) {
          const cell = detailRow.firstElementChild as HTMLElement;
          clear(cell, h('p', { class: 'muted' }, 'Loading…'));
          try {
            clear(cell, await details(k));
          } catch (e) {
            clear(cell, errorBox(e));
          }
        }
      });
      // Pending deletion refuses rotation (SPEC.md §7.4): say so instead of offering it.
      if (scheduled) {
        rotate.disabled = true;
        rotate.title = 'cancel the scheduled deletion first';
      }
      // A destroyed keyring (SPEC.md §7.4) keeps its row; nothing can be done with it any more.
      if (k.status === 'deleted') {
        for (const b of [rotate, toggle, deletion]) b.disabled = true;
      }
      return [
        h(
          'tr',
          { 'data-keyring': k.name },
          h('td', {}, h('strong', {}, k.name)),
          h(
            'td',
            {},
            k.mode,
            k.mode === 'hom3' || k.mode === 'homN' ? chainView(chainOf.get(k.name) ?? []) : null,
          ),
          h('td', {}, k.scheme),
          h('td', { class: 'master-version' }, String(k.masterVersion)),
          h('td', { class: 'manager-version' }, String(k.managerVersion)),
          h(
            'td',
            {},
            h('span', { class: `badge ${enabled ? 'ok' : 'bad'}` }, k.status),
            scheduled ? h('div', { class: 'bad' }, `deletion ${fmtTime(k.deletionAt)}`) : null,
          ),
          h('td', {}, fmtTime(k.updatedAt)),
          h('td', {}, h('div', { class: 'actions' }, more, rotate, toggle, deletion)),
        ),
        detailRow,
      ];
    });
    clear(
      list,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'keyrings' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...[
                'Keyring',
                'Mode',
                'Scheme',
                'Master v',
                'Manager v',
                'Status',
                'Updated',
                'Actions',
              ].map((t) => h('th', { scope: 'col' }, t)),
            ),
          ),
          h('tbody', {}, ...rows),
        ),
      ),
    );
  };

  const name = h('input', {
    name: 'name',
    required: true,
    // Escaped '-': browsers compile pattern attributes with the v flag, where a bare '-' is invalid.
    pattern: '[a-z0-9._\\-]{1,64}',
    placeholder: 'payments',
    'aria-describedby': 'name-help',
  });
  const mode = h(
    'select',
    { name: 'mode' },
    ...['hom2-opt', 'hom2', 'split', 'hom3', 'homN'].map((m) => h('option', { value: m }, m)),
  );
  // hom3/homN name their blinders in request order (SPEC.md §5.4): by name or id.
  const blinderInput = h('input', {
    name: 'blinders',
    autocomplete: 'off',
    placeholder: 'north, south',
    'aria-describedby': 'blinders-help',
  });
  const blinderHelp = h('span', { id: 'blinders-help', class: 'muted' });
  const blinderField = h(
    'label',
    { hidden: true },
    'Blinders, in request order',
    blinderInput,
    blinderHelp,
  );
  let registered: { id: string; name: string }[] = [];
  const chained = () => mode.value === 'hom3' || mode.value === 'homN';
  const loadRegistered = async () => {
    registered = (await api<{ blinders: { id: string; name: string }[] }>('GET', '/v1/blinders'))
      .blinders;
  };
  mode.addEventListener('change', async () => {
    blinderField.hidden = !chained();
    blinderInput.required = chained();
    if (!chained()) return;
    try {
      await loadRegistered();
      blinderHelp.textContent =
        registered.length === 0
          ? 'No blinder is registered: run "blindfold blinder init" first.'
          : `${mode.value === 'hom3' ? 'One' : 'Two or more'}, names or ids: ${registered.map((b) => `${b.name} (${b.id})`).join(', ')}`;
    } catch (e) {
      blinderHelp.textContent = message(e);
    }
  });
  /** Names or ids, comma- or space-separated, to ids; an unknown one is an error here. */
  const blinderIds = (): string[] =>
    blinderInput.value
      .split(/[\s,]+/)
      .filter(Boolean)
      .map((x) => {
        const b = registered.find((r) => r.id === x || r.name === x);
        if (!b) throw new Error(`no registered blinder "${x}"`);
        return b.id;
      });
  const scheme = h(
    'select',
    { name: 'scheme' },
    h('option', { value: '' }, 'default for the mode'),
    ...['ec-elgamal', 'paillier', 'gm', 'rsa', 'xor', 'add-p', 'mul-p'].map((x) =>
      h('option', { value: x }, x),
    ),
  );
  const create = h(
    'form',
    { class: 'row', 'aria-label': 'Create a keyring' },
    h('label', {}, 'New keyring name', name),
    h('label', {}, 'Mode', mode),
    h('label', {}, 'Scheme', scheme),
    blinderField,
    h('button', { type: 'submit' }, 'Create keyring'),
    h('span', { id: 'name-help', class: 'muted' }, 'a-z, 0-9, ".", "_", "-"'),
  );
  create.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      if (chained() && registered.length === 0) await loadRegistered();
      await api('POST', '/v1/keyrings', {
        name: name.value,
        mode: mode.value,
        ...(scheme.value ? { scheme: scheme.value } : {}),
        ...(chained() ? { blinders: blinderIds() } : {}),
      });
      toast(`keyring ${name.value} created`);
      clear(status);
      name.value = '';
      blinderInput.value = '';
      await render();
    } catch (e) {
      clear(status, h('div', { class: 'error', role: 'alert' }, message(e)));
    }
  });
  clear(root, h('h1', {}, 'Keys and keyrings'), create, status, list);
  await render();
  return () => {};
}

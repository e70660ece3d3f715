/**
 * Cluster: members as a vouching graph, their history, operator enrollment tokens (vouching
 * criterion i by the operator) and revocation (SPEC.md §5.7).
 */
import { api, type Member } from './api.ts';
import { clear, confirmDialog, errorBox, fmtTime, h, toast } from './dom.ts';
import { vouchGraph } from './graph.ts';

export async function cluster(root: HTMLElement): Promise<() => void> {
  const status = h('div', { 'aria-live': 'polite' });
  const graph = h('div', {});
  const table = h('div', {});

  const render = async () => {
    let members: Member[];
    try {
      members = (await api<{ members: Member[] }>('GET', '/v1/cluster/members')).members;
    } catch (e) {
      clear(graph, errorBox(e));
      clear(table);
      return;
    }
    if (members.length === 0) {
      clear(
        graph,
        h(
          'p',
          { class: 'empty' },
          'No members yet. Create an enrollment token below and run "blindfold appliance init --token …" on the new appliance.',
        ),
      );
      clear(table);
      return;
    }
    clear(graph, vouchGraph(members));
    const rows = members.map((m) => {
      const revoke = h(
        'button',
        { type: 'button', class: 'danger', 'data-action': 'revoke' },
        'Revoke',
      );
      revoke.disabled = m.status === 'revoked';
      revoke.addEventListener('click', async () => {
        const ok = await confirmDialog({
          title: `Revoke ${m.name}?`,
          body: [
            `The manager destroys every key it holds for ${m.id}; its stolen state and tickets become useless. This cannot be undone.`,
            'After revoking an appliance you suspect of live compromise, rotate the master key and rewrap (SPEC.md §5.2).',
          ],
          confirm: 'Revoke',
          danger: true,
        });
        if (!ok) return;
        try {
          await api('POST', `/v1/appliances/${encodeURIComponent(m.id)}/revoke`);
          toast(`${m.name} revoked`);
          clear(status, h('div', { class: 'notice' }, `${m.name} (${m.id}) revoked.`));
          await render();
        } catch (e) {
          clear(status, errorBox(e));
        }
      });
      return h(
        'tr',
        { 'data-member': m.id, class: m.status },
        h('td', {}, h('strong', {}, m.name), h('div', { class: 'mono' }, m.id)),
        h(
          'td',
          {},
          h(
            'span',
            {
              class: `badge ${m.status === 'trusted' ? 'ok' : m.status === 'revoked' ? 'bad' : 'warn'}`,
            },
            m.status,
          ),
        ),
        h('td', {}, m.vouchedBy),
        h('td', {}, m.criterion),
        h(
          'td',
          {},
          fmtTime(m.createdAt),
          m.revokedAt ? h('div', { class: 'bad' }, `revoked ${fmtTime(m.revokedAt)}`) : null,
        ),
        h('td', { class: 'mono' }, m.identityFingerprint.slice(0, 32)),
        h(
          'td',
          {},
          h(
            'ul',
            {},
            ...(m.history ?? []).map((e) =>
              h(
                'li',
                {},
                `${fmtTime(e.ts)} ${e.event}${e.criterion ? ` (${e.criterion})` : ''} by ${e.actor}`,
              ),
            ),
          ),
        ),
        h('td', {}, revoke),
      );
    });
    clear(
      table,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'members' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...[
                'Member',
                'Status',
                'Vouched by',
                'Criterion',
                'Since',
                'Identity fingerprint',
                'History',
                '',
              ].map((t) => h('th', { scope: 'col' }, t)),
            ),
          ),
          h('tbody', {}, ...rows),
        ),
      ),
    );
  };

  const ttl = h('input', {
    name: 'ttl',
    type: 'number',
    min: 1,
    max: 10080,
    value: 60,
    required: true,
  });
  const fpr = h('input', {
    name: 'fingerprint',
    pattern: '[0-9a-f]{64}',
    placeholder: 'optional: 64 hex digits',
    size: 40,
  });
  const rings = h('input', {
    name: 'keyrings',
    pattern: '[a-z0-9._,\\-]*', // '-' escaped for the v flag (see keys.ts)
    placeholder: 'optional: k1,k2',
  });
  const tokenOut = h('div', { id: 'token-out', 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'row', 'aria-label': 'Create an enrollment token' },
    h('label', {}, 'Valid for (minutes)', ttl),
    h('label', {}, 'Bind to identity fingerprint', fpr),
    h('label', {}, 'Keyrings to transfer', rings),
    h('button', { type: 'submit', id: 'create-token' }, 'Create enrollment token'),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const out = await api<{ token: string; expiresAt: number }>('POST', '/v1/enrollments', {
        ttlSeconds: Math.max(60, Number(ttl.value) * 60),
        ...(fpr.value ? { fingerprint: fpr.value } : {}),
        ...(rings.value
          ? {
              keyrings: rings.value
                .split(',')
                .map((x) => x.trim())
                .filter(Boolean),
            }
          : {}),
      });
      clear(
        tokenOut,
        h(
          'div',
          { class: 'notice' },
          h(
            'p',
            {},
            `One-time token, valid until ${fmtTime(out.expiresAt)}. It is shown once; only its hash is stored.`,
          ),
          h('p', { class: 'mono token' }, out.token),
          h(
            'p',
            { class: 'mono' },
            `blindfold appliance init --manager ${location.origin} --ca ca.pem --token ${out.token}`,
          ),
        ),
      );
      toast('enrollment token created');
    } catch (e) {
      clear(tokenOut, errorBox(e));
    }
  });

  clear(
    root,
    h('h1', {}, 'Cluster'),
    h('h2', {}, 'Who vouched for whom'),
    graph,
    status,
    h('h2', {}, 'Members'),
    table,
    h('h2', {}, 'Enroll an appliance'),
    form,
    tokenOut,
  );
  await render();
  return () => {};
}

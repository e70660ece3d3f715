/**
 * Overview: health of the manager, appliances and blinders, and request rate, errors and latency
 * over time (GET /v1/metrics/history, sampled by the manager, SPEC.md §7.1).
 */
import { api, BLINDER_BADGE, type BlinderHealth, type Member } from './api.ts';
import { lineChart } from './charts.ts';
import { ago, clear, errorBox, h } from './dom.ts';

interface Sample {
  ts: number;
  requests: number;
  errors4xx: number;
  errors5xx: number;
  latencyMeanMs: number;
  latencyP95Ms: number;
}

/** An appliance that made a request within this many ms counts as active. */
const ACTIVE_MS = 15_000;

function ordinal(i: number): string {
  const n = i + 1;
  return `${n}${n === 1 ? 'st' : n === 2 ? 'nd' : n === 3 ? 'rd' : 'th'}`;
}

function blinderItem(b: BlinderHealth, now: number): HTMLElement {
  const chains = b.keyrings.map((k) => `${k.keyring} (${ordinal(k.position)})`).join(', ');
  return h(
    'li',
    { 'data-blinder': b.id },
    h('span', { class: `badge ${BLINDER_BADGE[b.state]}` }, b.state),
    ' ',
    h('strong', {}, b.name),
    ` ${b.id} — ${b.url || 'no URL announced'}`,
    h(
      'div',
      { class: 'muted' },
      chains ? `in the chain of ${chains}` : 'in no keyring chain',
      b.lastRelayAt === null
        ? ' · no request relayed through it since this manager started'
        : ` · last relayed request ${ago(b.lastRelayAt, now)}`,
      b.state === 'ready' && b.values !== null ? ` · ${b.values} blinding values` : '',
      b.latencyMs !== null && b.state !== 'unannounced' ? ` · probe ${b.latencyMs} ms` : '',
    ),
    b.error ? h('div', { class: b.state === 'down' ? 'bad' : 'muted' }, b.error) : null,
  );
}

export async function overview(root: HTMLElement): Promise<() => void> {
  clear(root, h('h1', {}, 'Overview'), h('p', { class: 'muted' }, 'Loading…'));
  let timer: number | undefined;
  let stopped = false;
  const draw = async () => {
    const [ready, members, presence, history, blinders] = await Promise.all([
      api<{ status: string; store: string }>('GET', '/ready').catch((e: Error) => e),
      api<{ members: Member[] }>('GET', '/v1/cluster/members'),
      api<{ now: number; appliances: { id: string; lastSeenAt: number | null }[] }>(
        'GET',
        '/v1/appliances/presence',
      ),
      api<{ intervalMs: number; now: number; samples: Sample[] }>('GET', '/v1/metrics/history'),
      api<{ now: number; blinders: BlinderHealth[] }>('GET', '/v1/blinders/health'),
    ]);
    if (stopped) return history.intervalMs;
    const seen = new Map(presence.appliances.map((a) => [a.id, a.lastSeenAt]));
    const live = members.members.filter((m) => m.status !== 'revoked');
    const managerCard = h(
      'section',
      { class: 'card', id: 'health-manager' },
      h('h2', {}, 'Manager'),
      ready instanceof Error
        ? h('p', { class: 'bad' }, `not ready: ${ready.message}`)
        : h(
            'p',
            {},
            h('span', { class: 'badge ok' }, ready.status),
            ` store: ${ready.store} · this page's manager (${location.host})`,
          ),
      h(
        'p',
        { class: 'muted' },
        'Replicas over one store each serve this console; each reports its own request history.',
      ),
    );
    const applianceCard = h(
      'section',
      { class: 'card', id: 'health-appliances' },
      h('h2', {}, `Appliances (${live.length})`),
      live.length === 0
        ? h(
            'p',
            { class: 'empty' },
            'No appliances yet. Create an enrollment token on the Cluster page and run "blindfold appliance init".',
          )
        : h(
            'ul',
            {},
            ...live.map((m) => {
              const last = seen.get(m.id) ?? null;
              const active = last !== null && presence.now - last < ACTIVE_MS;
              return h(
                'li',
                {},
                h(
                  'span',
                  { class: `badge ${active ? 'ok' : last === null ? 'warn' : 'bad'}` },
                  active ? 'active' : last === null ? 'unknown' : 'silent',
                ),
                ` ${m.name} (${m.status}) — last request ${ago(last, presence.now)}`,
              );
            }),
          ),
    );
    const blinderCard = h(
      'section',
      { class: 'card', id: 'health-blinders' },
      h('h2', {}, `Blinders (${blinders.blinders.length})`),
      blinders.blinders.length === 0
        ? h(
            'p',
            { class: 'empty' },
            'No blinders. Blinders take part in hom3 and homN keyrings only (SPEC.md §5.4): register one with "blindfold blinder init", or start a local deployment with "blindfold up --locations 3".',
          )
        : h('ul', {}, ...blinders.blinders.map((b) => blinderItem(b, blinders.now))),
      blinders.blinders.length === 0
        ? null
        : h(
            'p',
            { class: 'muted' },
            "Probed by this manager (/health and /ready, TLS pinned to each blinder's registered identity) every few seconds.",
          ),
    );
    const pts = (f: (x: Sample) => number) => history.samples.map((x) => ({ t: x.ts, v: f(x) }));
    const perSec = history.intervalMs / 1000;
    const empty = `No samples yet: the manager records one every ${perSec} s.`;
    clear(
      root,
      h('h1', {}, 'Overview'),
      h('div', { class: 'grid' }, managerCard, applianceCard, blinderCard),
      h(
        'div',
        { class: 'charts' },
        lineChart({
          id: 'chart-rate',
          title: 'Request rate',
          unit: 'req/s',
          series: [{ name: 'requests', points: pts((x) => x.requests / perSec) }],
          emptyText: empty,
        }),
        lineChart({
          id: 'chart-errors',
          title: 'Errors',
          unit: 'per interval',
          series: [
            { name: '4xx (refused)', points: pts((x) => x.errors4xx) },
            { name: '5xx (failed)', points: pts((x) => x.errors5xx) },
          ],
          emptyText: empty,
        }),
        lineChart({
          id: 'chart-latency',
          title: 'Latency',
          unit: 'ms',
          series: [
            { name: 'mean', points: pts((x) => x.latencyMeanMs) },
            // The histogram bucket bound holding the 95th percentile (an upper estimate).
            { name: 'p95', points: pts((x) => x.latencyP95Ms) },
          ],
          emptyText: empty,
        }),
      ),
    );
    return history.intervalMs;
  };
  const loop = async () => {
    let interval = 5000;
    try {
      interval = await draw();
    } catch (e) {
      if (!stopped) root.append(errorBox(e));
    }
    if (!stopped) timer = window.setTimeout(loop, Math.max(2000, interval));
  };
  await loop();
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}

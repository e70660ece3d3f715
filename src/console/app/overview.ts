/**
 * Overview: health of the manager, appliances and blinders, and request rate, errors and latency
 * over time (GET /v1/metrics/history, sampled by the manager, SPEC.md §7.1).
 */
import { api, type Member } from './api.ts';
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

export async function overview(root: HTMLElement): Promise<() => void> {
  clear(root, h('h1', {}, 'Overview'), h('p', { class: 'muted' }, 'Loading…'));
  let timer: number | undefined;
  let stopped = false;
  const draw = async () => {
    const [ready, members, presence, history] = await Promise.all([
      api<{ status: string; store: string }>('GET', '/ready').catch((e: Error) => e),
      api<{ members: Member[] }>('GET', '/v1/cluster/members'),
      api<{ now: number; appliances: { id: string; lastSeenAt: number | null }[] }>(
        'GET',
        '/v1/appliances/presence',
      ),
      api<{ intervalMs: number; now: number; samples: Sample[] }>('GET', '/v1/metrics/history'),
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
      h('h2', {}, 'Blinders'),
      h(
        'p',
        { class: 'empty' },
        'No blinders. Blinders take part in hom3 and homN keyrings only (SPEC.md §5.4).',
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

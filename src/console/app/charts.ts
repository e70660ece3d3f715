/**
 * Line charts as inline SVG, drawn here (no chart library): a time axis, a zero-based value axis
 * with its maximum labelled, up to three series, and an accessible description of the latest
 * values for screen readers.
 */
import { h, s } from './dom.ts';

export interface Series {
  name: string;
  points: { t: number; v: number }[];
}

const W = 600;
const H = 200;
const PAD = { l: 44, r: 8, t: 10, b: 22 };

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (v >= 100) return String(Math.round(v));
  if (v >= 10) return v.toFixed(1);
  return String(Number(v.toPrecision(2)));
}

function clock(t: number): string {
  const d = new Date(t);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function lineChart(o: {
  id: string;
  title: string;
  unit: string;
  series: Series[];
  emptyText: string;
}): HTMLElement {
  const all = o.series.flatMap((x) => x.points);
  const latest = o.series
    .map((x) => `${x.name} ${fmt(x.points.at(-1)?.v ?? 0)} ${o.unit}`)
    .join(', ');
  const fig = h('figure', { class: 'card', id: o.id, 'data-points': all.length });
  fig.append(h('figcaption', {}, o.title));
  if (all.length === 0) {
    fig.append(h('p', { class: 'empty' }, o.emptyText));
    return fig;
  }
  const t0 = Math.min(...all.map((p) => p.t));
  const t1 = Math.max(...all.map((p) => p.t), t0 + 1);
  const max = niceMax(Math.max(...all.map((p) => p.v)));
  const x = (t: number) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v: number) => H - PAD.b - (v / max) * (H - PAD.t - PAD.b);
  const svg = s(
    'svg',
    {
      class: 'chart',
      viewBox: `0 0 ${W} ${H}`,
      role: 'img',
      'aria-label': `${o.title}: latest ${latest}`,
    },
    s('line', { class: 'axis', x1: PAD.l, y1: y(0), x2: W - PAD.r, y2: y(0) }),
    s('line', { class: 'axis', x1: PAD.l, y1: y(max), x2: W - PAD.r, y2: y(max) }),
    s('text', { x: PAD.l - 4, y: y(max) + 4, 'text-anchor': 'end' }, fmt(max)),
    s('text', { x: PAD.l - 4, y: y(0), 'text-anchor': 'end' }, '0'),
    s('text', { x: PAD.l, y: H - 4 }, clock(t0)),
    s('text', { x: W - PAD.r, y: H - 4, 'text-anchor': 'end' }, clock(t1)),
  );
  o.series.forEach((ser, i) => {
    if (ser.points.length === 0) return;
    const d = ser.points
      .map((p, j) => `${j ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`)
      .join(' ');
    svg.append(s('path', { class: `s${i} series`, d, 'vector-effect': 'non-scaling-stroke' }));
  });
  fig.append(svg);
  fig.append(
    h(
      'div',
      { class: 'legend' },
      ...o.series.map((ser, i) =>
        h('span', { class: `k${i}` }, `${ser.name} (${o.unit}): ${fmt(ser.points.at(-1)?.v ?? 0)}`),
      ),
    ),
  );
  return fig;
}

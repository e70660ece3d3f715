/**
 * The cluster as a graph (SVG): who vouched for whom, by which criterion and when (SPEC.md
 * §5.7). Roots are the operator and the manager (credentials database); each member hangs under
 * its voucher, layered by depth. Revoked members stay visible, struck through and dashed.
 */
import type { Member } from './api.ts';
import { fmtTime, s } from './dom.ts';

const NODE_W = 168;
const NODE_H = 40;
const GAP_X = 24;
const GAP_Y = 70;

export function vouchGraph(members: Member[]): SVGElement {
  const ids = new Set(members.map((m) => m.id));
  const parentOf = (m: Member) =>
    ids.has(m.vouchedBy) ? m.vouchedBy : m.vouchedBy === 'manager' ? 'manager' : 'operator';
  const roots = ['operator', 'manager'].filter(
    (r) => r === 'operator' || members.some((m) => parentOf(m) === r),
  );
  // Depth by walking up the vouchers (guarding against cycles in corrupt data).
  const byId = new Map(members.map((m) => [m.id, m]));
  const depth = (m: Member): number => {
    let d = 1;
    let cur: Member | undefined = m;
    const seen = new Set<string>();
    while (cur && ids.has(cur.vouchedBy) && !seen.has(cur.id) && d < 50) {
      seen.add(cur.id);
      cur = byId.get(cur.vouchedBy);
      d++;
    }
    return d;
  };
  const layers: string[][] = [roots];
  const sorted = [...members].sort((a, b) => a.createdAt - b.createdAt);
  for (const m of sorted) {
    const d = depth(m);
    while (layers.length <= d) layers.push([]);
    layers[d]!.push(m.id);
  }
  const widest = Math.max(...layers.map((l) => l.length), 1);
  const width = Math.max(widest * (NODE_W + GAP_X) + GAP_X, 400);
  const height = layers.length * (NODE_H + GAP_Y) + 10;
  const pos = new Map<string, { x: number; y: number }>();
  layers.forEach((layer, li) => {
    const total = layer.length * NODE_W + (layer.length - 1) * GAP_X;
    const start = (width - total) / 2;
    layer.forEach((id, i) => {
      pos.set(id, { x: start + i * (NODE_W + GAP_X), y: 10 + li * (NODE_H + GAP_Y) });
    });
  });
  const svg = s('svg', {
    class: 'graph',
    // Natural size (never scaled up); narrower windows scale it down or scroll (CSS).
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `Vouching graph of ${members.length} members`,
  });
  for (const m of members) {
    const from = pos.get(parentOf(m))!;
    const to = pos.get(m.id)!;
    const x1 = from.x + NODE_W / 2;
    const y1 = from.y + NODE_H;
    const x2 = to.x + NODE_W / 2;
    const y2 = to.y;
    const my = (y1 + y2) / 2;
    svg.append(
      s(
        'path',
        { class: 'edge', d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}` },
        s(
          'title',
          {},
          `${parentOf(m)} vouched for ${m.name} (${m.criterion}) on ${fmtTime(m.createdAt)}`,
        ),
      ),
      s(
        'text',
        { class: 'edge-label', x: x2, y: y2 - 6, 'text-anchor': 'middle' },
        `${m.criterion} · ${fmtTime(m.createdAt).slice(5, 16)}`,
      ),
    );
  }
  const node = (id: string, label: string, sub: string, cls: string, tip: string) => {
    const p = pos.get(id)!;
    return s(
      'g',
      { class: `node ${cls}`, 'data-id': id, transform: `translate(${p.x},${p.y})` },
      s('title', {}, tip),
      s('rect', { width: NODE_W, height: NODE_H, rx: 6 }),
      s('text', { x: 8, y: 16 }, label.length > 22 ? `${label.slice(0, 21)}…` : label),
      s('text', { x: 8, y: 32, class: 'edge-label' }, sub),
    );
  };
  for (const r of roots) {
    svg.append(node(r, r, r === 'operator' ? 'operator token' : 'credentials database', 'root', r));
  }
  for (const m of members) {
    svg.append(
      node(
        m.id,
        m.name,
        m.status === 'revoked'
          ? `revoked ${fmtTime(m.revokedAt).slice(5, 16)}`
          : `${m.status} · ${m.id}`,
        m.status,
        `${m.name} (${m.id}), ${m.status}; vouched by ${m.vouchedBy} by ${m.criterion} on ${fmtTime(m.createdAt)}`,
      ),
    );
  }
  return svg;
}

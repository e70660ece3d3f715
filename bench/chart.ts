/**
 * A PNG line chart with no dependency: our own rasterizer (lines, dots, rectangles, a 3×5 pixel
 * font scaled up) and a PNG encoder over node:zlib (deflate, crc32). Chosen over rendering an SVG
 * in Chromium because the benchmark must run wherever Node runs, without a browser download, in
 * milliseconds, and give the same bytes for the same figures.
 *
 * `renderChart` draws panels side by side, each with a log2 x axis (concurrency) and a linear y
 * axis from 0, one polyline per series, and a legend under the panels.
 */
import { crc32, deflateSync } from 'node:zlib';

export interface Series {
  label: string;
  points: { x: number; y: number }[];
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
}

type RGB = [number, number, number];

const COLORS: RGB[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
];

/** 3×5 glyphs, one string of 15 bits (rows top to bottom) per character. */
const FONT: Record<string, string> = {
  '0': '111101101101111',
  '1': '010110010010111',
  '2': '111001111100111',
  '3': '111001111001111',
  '4': '101101111001001',
  '5': '111100111001111',
  '6': '111100111101111',
  '7': '111001010010010',
  '8': '111101111101111',
  '9': '111101111001111',
  A: '010101111101101',
  B: '110101110101110',
  C: '011100100100011',
  D: '110101101101110',
  E: '111100110100111',
  F: '111100110100100',
  G: '011100101101011',
  H: '101101111101101',
  I: '111010010010111',
  J: '001001001101010',
  K: '101101110101101',
  L: '100100100100111',
  M: '101111111101101',
  N: '110101101101101',
  O: '010101101101010',
  P: '110101110100100',
  Q: '010101101110011',
  R: '110101110101101',
  S: '011100010001110',
  T: '111010010010010',
  U: '101101101101111',
  V: '101101101101010',
  W: '101101111111101',
  X: '101101010101101',
  Y: '101101010010010',
  Z: '111001010100111',
  '.': '000000000000010',
  ',': '000000000010100',
  ':': '000010000010000',
  '-': '000000111000000',
  '+': '000010111010000',
  '/': '001001010100100',
  '(': '010100100100010',
  ')': '010001001001010',
  '%': '101001010100101',
  '=': '000111000111000',
  '×': '000101010101000',
  '≥': '100010001010111',
  '^': '010101000000000',
  _: '000000000000111',
  "'": '010010000000000',
  ' ': '000000000000000',
};

class Canvas {
  readonly px: Uint8Array;
  constructor(
    readonly w: number,
    readonly h: number,
  ) {
    this.px = new Uint8Array(w * h * 3).fill(255);
  }

  set(x: number, y: number, c: RGB): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return;
    const i = (y * this.w + x) * 3;
    this.px[i] = c[0];
    this.px[i + 1] = c[1];
    this.px[i + 2] = c[2];
  }

  rect(x: number, y: number, w: number, h: number, c: RGB): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, c);
  }

  /** A line of thickness t (square brush), dashed when `dash` > 0. */
  line(x0: number, y0: number, x1: number, y1: number, c: RGB, t = 1, dash = 0): void {
    const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
    for (let s = 0; s <= n; s++) {
      if (dash > 0 && Math.floor(s / dash) % 2 === 1) continue;
      const x = x0 + ((x1 - x0) * s) / n;
      const y = y0 + ((y1 - y0) * s) / n;
      this.rect(x - (t >> 1), y - (t >> 1), t, t, c);
    }
  }

  /** Text with the 3×5 font at scale k; returns the width drawn. */
  text(x: number, y: number, s: string, c: RGB, k = 2, vertical = false): number {
    let cx = 0;
    for (const ch of s) {
      const g = FONT[ch] ?? FONT[ch.toUpperCase()] ?? FONT[' ']!;
      for (let r = 0; r < 5; r++) {
        for (let col = 0; col < 3; col++) {
          if (g[r * 3 + col] !== '1') continue;
          if (vertical) this.rect(x + r * k, y - (cx + col) * k - k, k, k, c);
          else this.rect(x + (cx + col) * k, y + r * k, k, k, c);
        }
      }
      cx += 4;
    }
    return cx * k;
  }

  png(): Buffer {
    const raw = Buffer.alloc((this.w * 3 + 1) * this.h);
    for (let y = 0; y < this.h; y++) {
      raw[y * (this.w * 3 + 1)] = 0; // filter: none
      Buffer.from(this.px.buffer, y * this.w * 3, this.w * 3).copy(raw, y * (this.w * 3 + 1) + 1);
    }
    const chunk = (type: string, data: Buffer) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(data.length);
      const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(td) >>> 0);
      return Buffer.concat([len, td, crc]);
    };
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(this.w, 0);
    ihdr.writeUInt32BE(this.h, 4);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // colour type: RGB
    return Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', ihdr),
      chunk('IDAT', deflateSync(raw)),
      chunk('IEND', Buffer.alloc(0)),
    ]);
  }
}

/** 1, 2, 5 × 10^k steps giving about 5 ticks up to `max`. */
function niceStep(max: number): number {
  const raw = max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

const short = (v: number) =>
  v >= 1e6
    ? `${+(v / 1e6).toFixed(1)}M`
    : v >= 1e3
      ? `${+(v / 1e3).toFixed(1)}K`
      : `${+v.toFixed(2)}`;

export function renderChart(title: string, panels: Panel[]): Buffer {
  const pw = 560;
  const ph = 380;
  const labels = [...new Set(panels.flatMap((p) => p.series.map((s) => s.label)))];
  const legendRows = Math.ceil(labels.length / 2);
  const W = pw * panels.length + 20;
  const H = 40 + ph + 30 + legendRows * 22 + 10;
  const cv = new Canvas(W, H);
  const ink: RGB = [30, 30, 30];
  const grid: RGB = [225, 225, 225];
  cv.text(14, 12, title, ink, 3);
  panels.forEach((p, pi) => {
    const ox = 10 + pi * pw;
    const left = ox + 80;
    const right = ox + pw - 20;
    const top = 70;
    const bottom = 40 + ph - 40;
    cv.text(left, 48, p.title, ink, 2);
    const xs = p.series.flatMap((s) => s.points.map((q) => q.x)).filter((x) => x > 0);
    const ys = p.series.flatMap((s) => s.points.map((q) => q.y)).filter(Number.isFinite);
    if (xs.length === 0 || ys.length === 0) return;
    const lx0 = Math.log2(Math.min(...xs));
    const lx1 = Math.max(lx0 + 1, Math.log2(Math.max(...xs)));
    const step = niceStep(Math.max(...ys) * 1.05 || 1);
    const ymax = Math.ceil((Math.max(...ys) * 1.05) / step) * step || 1;
    const X = (x: number) => left + ((Math.log2(x) - lx0) / (lx1 - lx0)) * (right - left);
    const Y = (y: number) => bottom - (y / ymax) * (bottom - top);
    for (let v = 0; v <= ymax + 1e-9; v += step) {
      cv.line(left, Y(v), right, Y(v), grid);
      const s = short(v);
      cv.text(left - 8 - s.length * 8, Y(v) - 5, s, ink, 2);
    }
    for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
      cv.line(X(x), top, X(x), bottom, grid);
      const s = String(x);
      cv.text(X(x) - s.length * 4, bottom + 8, s, ink, 2);
    }
    cv.line(left, top, left, bottom, ink);
    cv.line(left, bottom, right, bottom, ink);
    cv.text((left + right) / 2 - p.xLabel.length * 4, bottom + 24, p.xLabel, ink, 2);
    cv.text(ox + 4, (top + bottom) / 2 + p.yLabel.length * 4, p.yLabel, ink, 2, true);
    for (const s of p.series) {
      const c = COLORS[labels.indexOf(s.label) % COLORS.length]!;
      const pts = s.points.filter((q) => q.x > 0 && Number.isFinite(q.y)).sort((a, b) => a.x - b.x);
      for (let i = 1; i < pts.length; i++) {
        cv.line(X(pts[i - 1]!.x), Y(pts[i - 1]!.y), X(pts[i]!.x), Y(pts[i]!.y), c, 3);
      }
      for (const q of pts) cv.rect(X(q.x) - 4, Y(q.y) - 4, 9, 9, c);
    }
  });
  labels.forEach((l, i) => {
    const c = COLORS[i % COLORS.length]!;
    const x = 30 + (i % 2) * (W / 2);
    const y = 40 + ph + 20 + Math.floor(i / 2) * 22;
    cv.rect(x, y + 2, 24, 6, c);
    cv.text(x + 34, y, l, ink, 2);
  });
  return cv.png();
}

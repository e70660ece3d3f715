// Top self-time functions of V8 .cpuprofile files (node --cpu-prof), share of non-idle samples.
// Samples are wall-clock: a thread that the kernel deschedules inside a native call (postMessage
// waking a worker, writev into a loopback socket) shows that time as the call's self time.
//   node scripts/cpuprofile-top.mjs FILE.cpuprofile...      (N=40 for more lines)
import { readFileSync } from 'node:fs';

for (const f of process.argv.slice(2)) {
  const p = JSON.parse(readFileSync(f, 'utf8'));
  const dt = new Map();
  for (let i = 0; i < p.samples.length; i++) {
    dt.set(p.samples[i], (dt.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const self = new Map();
  let total = 0;
  let idle = 0;
  for (const n of p.nodes) {
    const t = dt.get(n.id) ?? 0;
    total += t;
    const cf = n.callFrame;
    if (cf.functionName === '(idle)') idle += t;
    const k = `${cf.functionName || '(anonymous)'} ${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber + 1}`;
    self.set(k, (self.get(k) ?? 0) + t);
  }
  const busy = total - idle;
  console.log(
    `== ${f}: ${(total / 1000).toFixed(0)} ms sampled, ${(busy / 1000).toFixed(0)} ms not idle`,
  );
  const top = [...self].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]);
  for (const [k, v] of top.slice(0, Number(process.env.N ?? 25))) {
    console.log(
      `${(v / 1000).toFixed(0).padStart(7)} ms ${((100 * v) / busy).toFixed(1).padStart(5)} %  ${k}`,
    );
  }
}

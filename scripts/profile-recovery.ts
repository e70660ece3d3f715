/**
 * Recoveries per second and CPU ms per recovery (manager process, all threads + this process:
 * appliance and load loop) at concurrency 8, hom2 and hom2-opt, single and coalesced: the focused
 * measurement behind docs/PERFORMANCE.md "perf3". Optionally writes CPU profiles of both sides.
 *
 *   node --import tsx scripts/profile-recovery.ts                      # 3 s per point
 *   SECS=5 MODES=hom2-opt ONLY=coalesced node --import tsx scripts/profile-recovery.ts
 *   MODES=split node --import tsx scripts/profile-recovery.ts         # the stack alone (xor)
 *   MGR_ARGS="--workers 0" node --import tsx scripts/profile-recovery.ts
 *   PROF=/tmp/prof node --cpu-prof --cpu-prof-dir=/tmp/prof/bench --import tsx \
 *     scripts/profile-recovery.ts && node scripts/cpuprofile-top.mjs /tmp/prof/*.cpuprofile
 */
import { readFileSync } from 'node:fs';
import { Appliance } from '../src/appliance/appliance.ts';
import { sealFileHeader } from '../src/appliance/stream.ts';
import { freshFileSecrets } from '../src/core/format.ts';
import {
  cleanup,
  createKeyring,
  newAppliance,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from '../test/helpers/deploy.ts';

const secs = Number(process.env.SECS ?? 3);
const prof = process.env.PROF;
const clkTck = 100;

function procCpuMs(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / clkTck; // utime + stime, every thread
}
const selfMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const home = await tmpDir('prof-m-');
const adir = await tmpDir('prof-a-');
const manager = await startManagerProcess({
  home,
  rootKey: newRootKey(),
  nodeArgs: prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [],
  args: process.env.MGR_ARGS ? process.env.MGR_ARGS.split(' ') : [],
});
const pid = manager.proc.pid!;
const appliance = await newAppliance(manager, adir, 'bench');
const batched = new Appliance({
  dir: adir,
  state: appliance.state,
  batch: {
    maxItems: 64,
    maxDelayMs: Number(process.env.BATCH_DELAY ?? 2),
    maxInFlight: Number(process.env.BATCH_INFLIGHT ?? 2),
  },
});
const single = new Appliance({ dir: adir, state: appliance.state, batch: false });
try {
  for (const mode of (process.env.MODES ?? 'hom2,hom2-opt').split(',')) {
    const keyring = `prof-${mode}`;
    await createKeyring(manager, keyring, mode, mode === 'split' ? 'xor' : 'ec-elgamal');
    await appliance.initKeyring(keyring);
    batched.state = appliance.state;
    single.state = appliance.state;
    const headers: Uint8Array[] = [];
    for (let i = 0; i < 64; i++) {
      const item = await appliance.newItem(keyring);
      const { dek, fileNonce } = freshFileSecrets();
      headers.push(sealFileHeader({ ...item.fields, fileNonce }, item.kek, dek));
    }
    for (const [path, a] of [
      ['single', single],
      ['coalesced', batched],
    ] as const) {
      if (process.env.ONLY && process.env.ONLY !== path) continue;
      const run = async (ms: number) => {
        let next = 0;
        let n = 0;
        const end = performance.now() + ms;
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            while (performance.now() < end) {
              await a.openItem(headers[next++ % headers.length]!);
              n++;
            }
          }),
        );
        return n;
      };
      await run(500); // warm-up
      const c0 = selfMs();
      const m0 = procCpuMs(pid);
      const t0 = performance.now();
      // Coalescer occupancy, sampled every ms: how many batches are in flight, items per batch.
      const rec = (
        a as unknown as { recoverer?: { stats(): { inFlight: number; batches: number } } }
      ).recoverer;
      const b0 = rec?.stats().batches ?? 0;
      const occ = [0, 0, 0, 0];
      const sampler = setInterval(() => {
        const f = rec?.stats().inFlight ?? 0;
        occ[Math.min(f, 3)]!++;
      }, 1);
      const n = await run(secs * 1000);
      clearInterval(sampler);
      const wall = performance.now() - t0;
      const nb = (rec?.stats().batches ?? b0) - b0;
      const bench = selfMs() - c0;
      const mgr = procCpuMs(pid) - m0;
      console.log(
        `${mode.padEnd(9)} ${path.padEnd(9)} ${((n / wall) * 1000).toFixed(0).padStart(6)} rec/s  ` +
          `cpu/rec ${((bench + mgr) / n).toFixed(3)} ms (mgr ${(mgr / n).toFixed(3)}, ` +
          `appliance+loop ${(bench / n).toFixed(3)})` +
          (rec ? `  items/batch ${(n / nb).toFixed(1)}  in flight 0/1/2/3+: ${occ.join('/')}` : ''),
      );
    }
  }
} finally {
  await batched.close();
  await single.close();
  await manager.stop('SIGINT'); // SIGINT: the manager writes its --cpu-prof on the way out
  await cleanup(home, adir);
}
process.exit(0);

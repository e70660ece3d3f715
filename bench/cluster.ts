/**
 * Cluster figures (issue #5, SPEC.md §5.7), against one real manager process over HTTPS + mTLS:
 *
 *   1. time to enroll a member: a trusted member invites (vouch), the newcomer enrolls (identity
 *      key, proof of possession, membership certificate), the member re-conceals the master for
 *      it and seals the package, the newcomer opens, re-randomizes, stores and acknowledges.
 *      Median of N newcomers per mode, each phase timed. The protocol steps run back to back here;
 *      a deployment adds up to one poll interval of `appliance run` (1 s) on each side.
 *   2. recoveries per second with 1, 2 and 3 appliances (hom2 / ec-elgamal) against the one
 *      manager: each appliance is its own process (bench/cluster.ts --child), concurrency 8 each,
 *      all started at the same instant over the same items (any member opens any member's items).
 *
 * `npm run bench` runs it after the other figures (bench/run.ts); alone:
 * `node --import tsx bench/cluster.ts [--seconds N]`. Every child and temp dir is removed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import os from 'node:os';
import { resolve } from 'node:path';
import { Appliance, enrollAppliance, loadState } from '../src/appliance/appliance.ts';
import { sealFileHeader } from '../src/appliance/stream.ts';
import { ClusterMember } from '../src/cluster/member.ts';
import { fromB64u, toB64u } from '../src/core/bytes.ts';
import { decodeHeader, freshFileSecrets } from '../src/core/format.ts';
import { generateIdentity } from '../src/tls/x509.ts';
import {
  cleanup,
  createKeyring,
  type ManagerProcess,
  newAppliance,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from '../test/helpers/deploy.ts';
import { quantile } from './lib.ts';

const SELF = resolve(import.meta.dirname, 'cluster.ts');
const MODES: [string, string][] = [
  ['hom2', 'ec-elgamal'],
  ['hom2-opt', 'ec-elgamal'],
  ['split', 'xor'],
];

export interface ClusterBenchResult {
  enroll: {
    mode: string;
    scheme: string;
    n: number;
    medianMs: number;
    vouchAndEnrollMs: number;
    reconcealMs: number;
    receiveMs: number;
  }[];
  recoveries: {
    appliances: number;
    concurrencyEach: number;
    perSecond: number;
    perAppliance: number[];
    errors: number;
  }[];
}

const fmt = (x: number, d = 0) =>
  x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const median = (xs: number[]) =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );

/** The child: one appliance process opening items round-robin from `start` for `ms`. */
async function child(dir: string): Promise<void> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  const o = JSON.parse(Buffer.concat(parts).toString('utf8')) as {
    headers: string[];
    start: number;
    ms: number;
    concurrency: number;
  };
  const a = new Appliance({ dir, state: await loadState(dir) });
  const headers = o.headers.map((h) => decodeHeader(fromB64u(h)));
  await a.openItem(headers[0]!); // connection and caches warm
  await new Promise((r) => setTimeout(r, Math.max(0, o.start - Date.now())));
  const end = o.start + o.ms;
  let n = 0;
  let errors = 0;
  let next = 0;
  const worker = async () => {
    while (Date.now() < end) {
      try {
        await a.openItem(headers[next++ % headers.length]!);
        n++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  a.close();
  process.stdout.write(`${JSON.stringify({ n, errors, ms: Date.now() - o.start })}\n`);
}

function runChild(
  dir: string,
  input: object,
  children: Set<ChildProcess>,
): Promise<{ n: number; errors: number; ms: number }> {
  const c = spawn(process.execPath, ['--import', 'tsx', SELF, '--child', dir], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.add(c);
  let out = '';
  c.stdout!.on('data', (d) => {
    out += d;
  });
  c.stdin!.end(JSON.stringify(input));
  return new Promise((res, rej) => {
    c.on('exit', (code) => {
      children.delete(c);
      if (code === 0) res(JSON.parse(out.trim().split('\n').pop()!));
      else rej(new Error(`load child exited with ${code}`));
    });
  });
}

export async function runClusterBench(
  o: {
    seconds?: number;
    enrollments?: number;
    /** Appliance processes per recovery point (default 1, 2 and 3). */
    appliances?: readonly number[];
    print?: (s: string) => void;
  } = {},
): Promise<ClusterBenchResult> {
  const print = o.print ?? console.log;
  const seconds = o.seconds ?? 4;
  const n = o.enrollments ?? 5;
  const applianceCounts = o.appliances ?? [1, 2, 3];
  const dirs: string[] = [];
  const apps: Appliance[] = [];
  const children = new Set<ChildProcess>();
  let m: ManagerProcess | undefined;
  const dir = async () => {
    const d = await tmpDir('bf-bench-cl-');
    dirs.push(d);
    return d;
  };
  try {
    const home = await dir();
    m = await startManagerProcess({ home, rootKey: newRootKey() });
    const A = await newAppliance(m, await dir(), 'voucher');
    apps.push(A);
    const mA = new ClusterMember(A);
    const out: ClusterBenchResult = { enroll: [], recoveries: [] };

    print(
      `[5] cluster: enrollment of a member (vouch + re-conceal), median of ${n}, and recoveries/s with ${applianceCounts.join(', ')} appliance processes, one manager`,
    );
    for (const [mode, scheme] of MODES) {
      const keyring = `bench-${mode}`;
      await createKeyring(m, keyring, mode, scheme);
      await A.initKeyring(keyring);
      const total: number[] = [];
      const vouch: number[] = [];
      const recon: number[] = [];
      const recv: number[] = [];
      for (let i = 0; i < n; i++) {
        const id = generateIdentity();
        const d = await dir();
        const t0 = performance.now();
        const inv = await mA.invite({ fingerprint: id.fingerprint, keyrings: [keyring] });
        const state = await enrollAppliance({
          dir: d,
          managerUrl: m.url,
          caPem: m.caPem,
          token: inv.token,
          name: `n${i}`,
          identityKeyPem: id.keyPem,
        });
        const B = new Appliance({ dir: d, state });
        apps.push(B);
        const t1 = performance.now();
        if ((await mA.step()) !== 1) throw new Error('the voucher served nothing');
        const t2 = performance.now();
        if ((await new ClusterMember(B).step()) !== 1) throw new Error('nothing received');
        const t3 = performance.now();
        total.push(t3 - t0);
        vouch.push(t1 - t0);
        recon.push(t2 - t1);
        recv.push(t3 - t2);
      }
      const r = {
        mode,
        scheme,
        n,
        medianMs: median(total),
        vouchAndEnrollMs: median(vouch),
        reconcealMs: median(recon),
        receiveMs: median(recv),
      };
      out.enroll.push(r);
      print(
        `  enroll ${`${mode} / ${scheme}`.padEnd(22)} ${fmt(r.medianMs, 1).padStart(7)} ms  (invite + enroll ${fmt(r.vouchAndEnrollMs, 1)}, member re-conceals + seals ${fmt(r.reconcealMs, 1)}, newcomer opens + re-randomizes + acks ${fmt(r.receiveMs, 1)})`,
      );
    }

    // Recoveries with 1, 2, 3 members of one keyring, each its own process.
    const keyring = 'bench-hom2';
    const members = [A];
    for (let i = 0; i < 2; i++) {
      const d = await dir();
      const inv = await mA.invite({ keyrings: [keyring] });
      const state = await enrollAppliance({
        dir: d,
        managerUrl: m.url,
        caPem: m.caPem,
        token: inv.token,
        name: `member${i}`,
      });
      const X = new Appliance({ dir: d, state });
      apps.push(X);
      await mA.step();
      await new ClusterMember(X).step();
      members.push(X);
    }
    const headers: string[] = [];
    for (let i = 0; i < 64; i++) {
      const it = await members[i % 3]!.newItem(keyring);
      const { dek, fileNonce } = freshFileSecrets();
      headers.push(toB64u(sealFileHeader({ ...it.fields, fileNonce }, it.kek, dek)));
    }
    for (const k of applianceCounts) {
      const start = Date.now() + 2500; // every child loaded and warm before the start
      const rs = await Promise.all(
        members
          .slice(0, k)
          .map((x) =>
            runChild(x.home, { headers, start, ms: seconds * 1000, concurrency: 8 }, children),
          ),
      );
      const perAppliance = rs.map((r) => (r.n / r.ms) * 1000);
      const perSecond = perAppliance.reduce((a, b) => a + b, 0);
      const errors = rs.reduce((a, r) => a + r.errors, 0);
      out.recoveries.push({ appliances: k, concurrencyEach: 8, perSecond, perAppliance, errors });
      print(
        `  recoveries, ${k} appliance${k > 1 ? 's' : ' '}       ${fmt(perSecond).padStart(7)} /s   (${perAppliance.map((x) => fmt(x)).join(' + ')}; hom2 / ec-elgamal, concurrency 8 each, ${seconds} s, ${os.availableParallelism()} cores shared by all processes${errors ? `; ${errors} errors` : ''})`,
      );
    }
    return out;
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    for (const a of apps) a.close();
    await m?.stop();
    await cleanup(...dirs);
  }
}

if (process.argv[1] === SELF) {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    await child(argv[1]!);
  } else {
    const i = argv.indexOf('--seconds');
    const seconds = i >= 0 ? Number(argv[i + 1]) : undefined;
    const r = await runClusterBench({ seconds });
    process.stdout.write(`${JSON.stringify(r)}\n`);
  }
}

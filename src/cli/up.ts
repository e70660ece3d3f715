/**
 * `blindfold up` (what `npm start` runs): a manager and one appliance as two real processes on
 * loopback, over SQLite under the data directory. The first run sets everything up; later runs
 * reuse it. The manager's root key lives in DIR/secrets/root.key — apart from the database, but
 * on the same machine: good for a local deployment, not for production (docs/OPERATIONS.md).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Appliance, enrollAppliance, loadState, saveState } from '../appliance/appliance.ts';
import { createJsonClient } from '../appliance/client.ts';
import { BlindfoldError } from '../core/errors.ts';
import { OPERATOR_TOKEN_FILE } from '../manager/run.ts';
import { generateRootKeyFile } from '../manager/seal.ts';

export interface UpOptions {
  home: string;
  port: number;
  localPort: number;
  mode: string;
  scheme?: string;
  /** Manager processes over one store (PostgreSQL for more than one). */
  replicas?: number;
  /** Store URL passed to every manager (default: SQLite in the manager home). */
  store?: string;
  /** Resolves when both processes are ready (tests); default waits for a signal. */
  detach?: boolean;
  /**
   * Locations: 2 (manager and appliance, default), 3 (hom3: one blinder) or more (homN: N − 2
   * blinder processes), SPEC.md §5.4. With 3 or more the mode is hom3/homN.
   */
  locations?: number;
  /** t-of-n threshold manager nodes (SPEC.md §5.6): n manager processes, each its own home. */
  threshold?: { t: number; n: number };
}

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/blindfold.mjs');

/**
 * Group workers for each manager process of a deployment that `up` runs on this one machine: one
 * thread per core in all, every process's main thread counting as one (src/manager/pool.ts
 * defaultWorkers is the same rule for a manager alone). The appliance, the blinders and the other
 * managers share the cores, so on a small machine the managers run their group operations inline:
 * measured on 2 cores with the appliance beside the manager, `--workers 0` served 1.02-1.87× the
 * recoveries of one worker (median 1.26; 19 of 20 points of five runs, once 0.76 on a loaded
 * machine: docs/PERFORMANCE.md "perf6", `npm run bench` section [2b]).
 */
export function colocatedWorkers(
  processes: number,
  managers: number,
  cores = os.availableParallelism(),
): number {
  return Math.max(0, Math.floor((cores - processes) / Math.max(1, managers)));
}

function child(
  args: string[],
  env: NodeJS.ProcessEnv,
  label: string,
  onLine?: (line: string) => void,
): ChildProcess {
  const p = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = (stream: NodeJS.ReadableStream | null, out: NodeJS.WriteStream) => {
    let buf = '';
    stream?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i = buf.indexOf('\n');
      while (i >= 0) {
        onLine?.(buf.slice(0, i));
        out.write(`[${label}] ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
      }
    });
  };
  prefix(p.stdout, process.stdout);
  prefix(p.stderr, process.stderr);
  return p;
}

async function waitReady(url: string, caPem: string | undefined, proc: ChildProcess, what: string) {
  const c = createJsonClient({ baseUrl: url, caPem, retries: 0, timeoutMs: 2000 });
  try {
    for (let i = 0; i < 300; i++) {
      if (proc.exitCode !== null) {
        throw new BlindfoldError(
          'ERR_UNAVAILABLE',
          `the ${what} exited during start (status ${proc.exitCode})`,
        );
      }
      try {
        await c.request('GET', url.startsWith('https') ? '/ready' : '/health');
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new BlindfoldError('ERR_UNAVAILABLE', `the ${what} did not become ready at ${url}`);
  } finally {
    c.close();
  }
}

export async function up(o: UpOptions) {
  if (o.threshold) return upThreshold(o, o.threshold);
  const managerHome = join(o.home, 'manager');
  const applianceHome = join(o.home, 'appliance');
  const rootKeyFile = join(o.home, 'secrets', 'root.key');
  await mkdir(dirname(rootKeyFile), { recursive: true, mode: 0o700 });
  if (!existsSync(rootKeyFile)) await generateRootKeyFile(rootKeyFile);
  const env: NodeJS.ProcessEnv = { ...process.env, BLINDFOLD_HOME: o.home };
  delete env.BLINDFOLD_ROOT_KEY;

  const procs: ChildProcess[] = [];
  const stopAll = async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    await Promise.all(
      procs.map((p) => (p.exitCode !== null ? undefined : new Promise((r) => p.once('exit', r)))),
    );
  };
  try {
    const replicas = o.replicas ?? 1;
    if (replicas > 1 && !o.store?.startsWith('postgres')) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        'several manager replicas need a shared store: add --store postgres://...',
      );
    }
    // Replica i listens on port, then port+2, port+3, ... (port+1 is the appliance's).
    const ports = Array.from({ length: replicas }, (_, i) => (i === 0 ? o.port : o.port + i + 1));
    const urls = ports.map((p) => `https://127.0.0.1:${p}`);
    // Processes on this machine: the managers, the appliance, N − 2 blinders.
    const workers = colocatedWorkers(replicas + 1 + Math.max(0, (o.locations ?? 2) - 2), replicas);
    const startReplica = (i: number) => {
      const args = [
        'manager',
        '--home',
        managerHome,
        '--port',
        String(ports[i]),
        '--root-key-file',
        rootKeyFile,
        '--workers',
        String(workers),
      ];
      if (o.store) args.push('--store', o.store);
      const p = child(args, env, replicas > 1 ? `manager-${i + 1}` : 'manager');
      procs.push(p);
      return p;
    };
    // The first replica creates the PKI and runs the migrations; the others start after it.
    const first = startReplica(0);
    const caPem = await waitForFile(join(managerHome, 'pki', 'ca.pem'), first);
    await waitReady(urls[0]!, caPem, first, 'manager');
    for (let i = 1; i < replicas; i++) {
      const p = startReplica(i);
      await waitReady(urls[i]!, caPem, p, `manager replica ${i + 1}`);
    }
    const managerUrl = urls.join(',');
    const blinders = await startBlinders(o, managerUrl, caPem, managerHome, env, procs);
    const { writeFileAtomic } = await import('../util/atomic.ts');
    await writeFileAtomic(
      join(managerHome, 'manager.json'),
      `${JSON.stringify({ url: managerUrl })}\n`,
    );

    if (!existsSync(join(applianceHome, 'appliance.json'))) {
      const token = (await readFile(join(managerHome, OPERATOR_TOKEN_FILE), 'utf8')).trim();
      const op = createJsonClient({ baseUrl: managerUrl, caPem, token });
      try {
        const existing = await op.request<{ keyrings: { name: string }[] }>('GET', '/v1/keyrings');
        if (!existing.keyrings.some((k) => k.name === 'default')) {
          const locations = o.locations ?? 2;
          await op.request('POST', '/v1/keyrings', {
            name: 'default',
            mode: locations === 3 ? 'hom3' : locations > 3 ? 'homN' : o.mode,
            ...(o.scheme ? { scheme: o.scheme } : {}),
            ...(locations >= 3 ? { blinders: blinders.map((b) => b.id) } : {}),
          });
        }
        const enrollment = await op.request<{ token: string }>('POST', '/v1/enrollments', {
          ttlSeconds: 600,
        });
        const state = await enrollAppliance({
          dir: applianceHome,
          managerUrl,
          caPem,
          token: enrollment.token,
          name: 'local-appliance',
        });
        const a = new Appliance({ dir: applianceHome, state });
        try {
          await a.initKeyring('default');
        } finally {
          a.close();
        }
      } finally {
        op.close();
      }
    } else {
      // The appliance follows the current set of manager endpoints.
      const state = await loadState(applianceHome);
      if (state.managerUrl !== managerUrl) await saveState(applianceHome, { ...state, managerUrl });
    }

    const applianceProc = child(
      // Console imports on: a local deployment's operator enters master keys in the console.
      [
        'appliance',
        'run',
        '--home',
        applianceHome,
        '--port',
        String(o.localPort),
        '--console-imports',
      ],
      env,
      'appliance',
    );
    procs.push(applianceProc);
    await waitReady(`http://127.0.0.1:${o.localPort}`, undefined, applianceProc, 'appliance');

    for (const b of blinders) console.log(`blinder ${b.id} on ${b.url} (data in ${b.home})`);
    console.log(
      `\nBlindfold is up (${2 + blinders.length} locations): manager ${urls.join(' ')}, appliance local API http://127.0.0.1:${o.localPort}` +
        `\nWeb console: ${urls[0]}/ui/ (sign in with the token in ${join(managerHome, OPERATOR_TOKEN_FILE)})` +
        `\nData in ${o.home}. Try:  npx blindfold encrypt README.md && npx blindfold decrypt README.md.bf -o README.copy` +
        '\nStop with Ctrl-C; "npm start" again keeps all data.\n',
    );
    if (o.detach) return { stop: stopAll, managerUrl, caPem };
    await new Promise<void>((r) => {
      const stop = () => r();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      for (const p of procs) p.once('exit', stop);
    });
    await stopAll();
    return { stop: stopAll, managerUrl, caPem };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

async function waitForFile(path: string, proc: ChildProcess): Promise<string> {
  for (let i = 0; i < 300; i++) {
    try {
      return await readFile(path, 'utf8');
    } catch {
      if (proc.exitCode !== null) {
        throw new BlindfoldError(
          'ERR_UNAVAILABLE',
          `the manager exited during start (status ${proc.exitCode})`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new BlindfoldError('ERR_UNAVAILABLE', `${path} did not appear`);
}

/**
 * Blinder processes for `up --locations N` (N ≥ 3): N − 2 blinders, each with its own data
 * directory and its own root key file (a location of its own, SPEC.md §5.4), registered with the
 * manager at first start, listening on port + 10 + i.
 */
async function startBlinders(
  o: UpOptions,
  managerUrl: string,
  caPem: string,
  managerHome: string,
  env: NodeJS.ProcessEnv,
  procs: ChildProcess[],
): Promise<{ id: string; url: string; home: string }[]> {
  const n = o.locations ?? 2;
  if (!Number.isInteger(n) || n < 2 || n > 18) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', '--locations must be 2 to 18');
  }
  const { initBlinder, loadBlinderState } = await import('../blinder/run.ts');
  const out: { id: string; url: string; home: string }[] = [];
  for (let i = 1; i <= n - 2; i++) {
    const home = join(o.home, `blinder-${i}`);
    const keyFile = join(o.home, 'secrets', `blinder-${i}.key`);
    if (!existsSync(keyFile)) await generateRootKeyFile(keyFile);
    let id: string;
    if (existsSync(join(home, 'blinder.json'))) {
      id = (await loadBlinderState(home)).blinderId;
    } else {
      const token = (await readFile(join(managerHome, OPERATOR_TOKEN_FILE), 'utf8')).trim();
      id = (
        await initBlinder({
          home,
          managerUrl,
          caPem,
          operatorToken: token,
          name: `local-blinder-${i}`,
        })
      ).blinderId;
    }
    const port = o.port + 10 + i;
    const p = child(
      ['blinder', 'run', '--home', home, '--port', String(port), '--root-key-file', keyFile],
      env,
      `blinder-${i}`,
    );
    procs.push(p);
    const url = `https://127.0.0.1:${port}`;
    await waitReady(url, caPem, p, `blinder ${i}`);
    out.push({ id, url, home });
  }
  return out;
}

/** Starts a child and resolves with the first URL it prints after `marker` (port 0 works). */
async function childWithUrl(
  args: string[],
  env: NodeJS.ProcessEnv,
  label: string,
  marker: string,
  procs: ChildProcess[],
): Promise<{ proc: ChildProcess; url: string }> {
  let resolveUrl!: (url: string) => void;
  const seen = new Promise<string>((r) => {
    resolveUrl = r;
  });
  const proc = child(args, env, label, (line) => {
    const i = line.indexOf(marker);
    if (i >= 0)
      resolveUrl(
        line
          .slice(i + marker.length)
          .trim()
          .split(/\s/)[0]!,
      );
  });
  procs.push(proc);
  const exited = new Promise<never>((_, reject) =>
    proc.once('exit', (code) =>
      reject(
        new BlindfoldError('ERR_UNAVAILABLE', `the ${label} exited during start (status ${code})`),
      ),
    ),
  );
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(
      () => reject(new BlindfoldError('ERR_UNAVAILABLE', `the ${label} did not start in 30 s`)),
      30000,
    ).unref(),
  );
  const url = await Promise.race([seen, exited, timeout]);
  exited.catch(() => {});
  return { proc, url };
}

/**
 * `blindfold up --threshold t/n` (SPEC.md §5.6): n manager nodes, each with its own home
 * (DIR/nodes/node-j: SQLite store, CA, operator token) and its own root key
 * (DIR/secrets/node-j.root.key), and one appliance enrolled at every node. The first run deals the
 * keyring "default" (ticket and share keys drawn here, sent to every node, wiped) and lets the
 * appliance deal its d_A; later runs reuse everything.
 */
async function upThreshold(o: UpOptions, th: { t: number; n: number }) {
  const { dealKeyring, enrollThresholdAppliance } = await import('./threshold.ts');
  const applianceHome = join(o.home, 'appliance');
  const env: NodeJS.ProcessEnv = { ...process.env, BLINDFOLD_HOME: o.home };
  delete env.BLINDFOLD_ROOT_KEY;
  const procs: ChildProcess[] = [];
  const stopAll = async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    await Promise.all(
      procs.map((p) => (p.exitCode !== null ? undefined : new Promise((r) => p.once('exit', r)))),
    );
  };
  const clients: { close(): void }[] = [];
  try {
    if (o.mode !== 'hom2' && o.mode !== 'threshold') {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        '--threshold cannot be combined with --mode',
      );
    }
    if (o.scheme && o.scheme !== 'ec-elgamal') {
      throw new BlindfoldError(
        'ERR_UNSUPPORTED_SCHEME',
        'threshold mode supports ec-elgamal only (SPEC.md §5.6)',
      );
    }
    if ((o.locations ?? 2) > 2) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        '--threshold cannot be combined with --locations (blinder chains, SPEC.md §5.4)',
      );
    }
    if ((o.replicas ?? 1) > 1 || o.store) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        '--threshold runs one SQLite store per node: it cannot be combined with --replicas or --store',
      );
    }
    const indices = Array.from({ length: th.n }, (_, i) => i + 1);
    // Node 1 on --port, node j ≥ 2 on port + j (port + 1 is the appliance's); 0: ephemeral.
    const portOf = (j: number) => (o.port === 0 ? 0 : j === 1 ? o.port : o.port + j);
    await mkdir(join(o.home, 'secrets'), { recursive: true, mode: 0o700 });
    const started = await Promise.all(
      indices.map(async (j) => {
        const home = join(o.home, 'nodes', `node-${j}`);
        const rootKeyFile = join(o.home, 'secrets', `node-${j}.root.key`);
        if (!existsSync(rootKeyFile)) await generateRootKeyFile(rootKeyFile);
        const args = ['manager', '--home', home, '--port', String(portOf(j))];
        args.push('--root-key-file', rootKeyFile);
        args.push('--workers', String(colocatedWorkers(th.n + 1, th.n)));
        const { proc, url } = await childWithUrl(args, env, `node-${j}`, 'listening on ', procs);
        const caPem = await readFile(join(home, 'pki', 'ca.pem'), 'utf8');
        await waitReady(url, caPem, proc, `manager node ${j}`);
        const token = (await readFile(join(home, OPERATOR_TOKEN_FILE), 'utf8')).trim();
        const op = createJsonClient({ baseUrl: url, caPem, token });
        clients.push(op);
        return { index: j, url, caPem, op, home, proc };
      }),
    );

    if (!existsSync(join(applianceHome, 'appliance.json'))) {
      const present = await Promise.all(
        started.map(async (n) =>
          (
            await n.op.request<{ keyrings: { name: string }[] }>('GET', '/v1/keyrings')
          ).keyrings.some((k) => k.name === 'default'),
        ),
      );
      if (present.some((p) => p) && !present.every((p) => p)) {
        throw new BlindfoldError(
          'ERR_CONFLICT',
          'keyring "default" exists on some manager nodes only: remove the deployment directory and start again',
        );
      }
      if (!present[0]) await dealKeyring(started, 'default', th.t);
      const state = await enrollThresholdAppliance({
        dir: applianceHome,
        name: 'local-appliance',
        nodes: started,
      });
      const a = new Appliance({ dir: applianceHome, state });
      try {
        await a.initKeyring('default');
      } finally {
        a.close();
      }
    } else {
      // The appliance follows the nodes' current addresses (ephemeral ports change).
      const state = await loadState(applianceHome);
      if (!state.nodes || state.nodes.length !== th.n) {
        throw new BlindfoldError(
          'ERR_CONFLICT',
          `${applianceHome} is not a ${th.n}-node threshold appliance: use another --home`,
        );
      }
      const nodes = state.nodes.map((n) => ({ ...n, url: started[n.index - 1]!.url }));
      await saveState(applianceHome, { ...state, managerUrl: nodes[0]!.url, nodes });
    }
    for (const c of clients.splice(0)) c.close();

    const app = await childWithUrl(
      ['appliance', 'run', '--home', applianceHome, '--port', String(o.localPort)],
      env,
      'appliance',
      'local API on ',
      procs,
    );
    await waitReady(app.url, undefined, app.proc, 'appliance');

    console.log(
      `\nBlindfold is up: ${th.t}-of-${th.n} threshold manager nodes (any ${th.t} answer; up to ${th.n - th.t} may be down)` +
        started
          .map((n) => `\n  manager node ${n.index}: ${n.url} (pid ${n.proc.pid}, home ${n.home})`)
          .join('') +
        `\n  appliance local API: ${app.url} (pid ${app.proc.pid}, home ${applianceHome})` +
        `\nData in ${o.home}. Try:  npx blindfold encrypt README.md && npx blindfold decrypt README.md.bf -o README.copy` +
        '\nStop with Ctrl-C; "npm start" again keeps all data.\n',
    );
    const managerUrl = started[0]!.url;
    const caPem = started[0]!.caPem;
    if (o.detach) return { stop: stopAll, managerUrl, caPem };
    await new Promise<void>((r) => {
      const stop = () => r();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      // A node that exits is tolerated (that is the point); the appliance is not.
      app.proc.once('exit', stop);
    });
    await stopAll();
    return { stop: stopAll, managerUrl, caPem };
  } catch (e) {
    for (const c of clients) c.close();
    await stopAll();
    throw e;
  }
}

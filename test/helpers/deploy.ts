/**
 * Test deployments with real processes: a manager started as `bin/blindfold.mjs manager` on an
 * ephemeral loopback port, and appliances enrolled through its real HTTPS API.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Appliance, enrollAppliance } from '../../src/appliance/appliance.ts';
import { createJsonClient, type JsonClient } from '../../src/appliance/client.ts';
import { toB64u } from '../../src/core/bytes.ts';

export const BIN = resolve(import.meta.dirname, '../../bin/blindfold.mjs');

export async function tmpDir(prefix = 'bf-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export interface ManagerProcess {
  home: string;
  url: string;
  caPem: string;
  operatorToken: string;
  proc: ChildProcess;
  stderr: () => string;
  op: JsonClient;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function newRootKey(): string {
  return toB64u(randomBytes(32));
}

/** Starts `blindfold manager` as a child process and waits until it is ready. */
export async function startManagerProcess(o: {
  home: string;
  rootKey: string;
  cwd?: string;
  nodeArgs?: string[];
  /** Extra `blindfold manager` arguments, e.g. ['--store', 'postgres://...']. */
  args?: string[];
  port?: number;
}): Promise<ManagerProcess> {
  const proc = spawn(
    process.execPath,
    [
      ...(o.nodeArgs ?? []),
      BIN,
      'manager',
      '--home',
      o.home,
      '--port',
      String(o.port ?? 0),
      ...(o.args ?? []),
    ],
    {
      cwd: o.cwd ?? o.home,
      env: { ...process.env, BLINDFOLD_ROOT_KEY: o.rootKey, BLINDFOLD_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  proc.stdout!.resume();
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  for (let i = 0; i < 400; i++) {
    if (proc.exitCode !== null) {
      throw new Error(`manager exited with ${proc.exitCode}: ${err}`);
    }
    const m = /listening on (https?:\/\/\S+)/.exec(err);
    if (m) {
      const url = m[1]!;
      const caPem = await readFile(join(o.home, 'pki', 'ca.pem'), 'utf8');
      const operatorToken = (await readFile(join(o.home, 'operator.token'), 'utf8')).trim();
      const op = createJsonClient({ baseUrl: url, caPem, token: operatorToken, retries: 0 });
      return {
        home: o.home,
        url,
        caPem,
        operatorToken,
        proc,
        op,
        stderr: () => err,
        async stop(signal: NodeJS.Signals = 'SIGTERM') {
          op.close();
          if (proc.exitCode === null) proc.kill(signal);
          return exited;
        },
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error(`manager did not start: ${err}`);
}

/** Runs a manager process that is expected to fail at start; returns exit code and stderr. */
export async function runManagerExpectingFailure(o: { home: string; rootKey: string }) {
  const proc = spawn(process.execPath, [BIN, 'manager', '--home', o.home, '--port', '0'], {
    env: { ...process.env, BLINDFOLD_ROOT_KEY: o.rootKey, BLINDFOLD_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20000);
  const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  clearTimeout(timer);
  return { code, stderr: err };
}

/** Enrolls an appliance in-process (real HTTPS + mTLS) and returns it. */
export async function newAppliance(
  m: ManagerProcess,
  dir: string,
  name = 'test-appliance',
  onItemSecret?: (keyring: string, secret: Uint8Array) => void,
): Promise<Appliance> {
  const { token } = await m.op.request<{ token: string }>('POST', '/v1/enrollments', {});
  const state = await enrollAppliance({ dir, managerUrl: m.url, caPem: m.caPem, token, name });
  return new Appliance({ dir, state, onItemSecret });
}

export async function createKeyring(
  m: ManagerProcess,
  name: string,
  mode: string,
  scheme?: string,
) {
  return m.op.request('POST', '/v1/keyrings', { name, mode, ...(scheme ? { scheme } : {}) });
}

export async function cleanup(...dirs: string[]) {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}

export function hasBytes(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).indexOf(Buffer.from(needle)) >= 0;
}

/** Every encoding under which a secret could appear in a file or a memory image. */
export function encodingsOf(secret: Uint8Array): Uint8Array[] {
  const b = Buffer.from(secret);
  return [
    secret,
    Buffer.from(b.toString('hex')),
    Buffer.from(b.toString('base64url')),
    Buffer.from(b.toString('base64')),
  ];
}

/** Scans the readable memory of a live process (/proc/PID/mem, Linux) for any of the needles. */
export async function scanProcessMemory(pid: number, needles: Uint8Array[]): Promise<number> {
  const { open } = await import('node:fs/promises');
  const maps = await readFile(`/proc/${pid}/maps`, 'utf8');
  const mem = await open(`/proc/${pid}/mem`, 'r');
  let hits = 0;
  try {
    for (const line of maps.split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (r)/.exec(line);
      if (!m || line.includes('[vvar]') || line.includes('[vsyscall]')) continue;
      const start = Number.parseInt(m[1]!, 16);
      const end = Number.parseInt(m[2]!, 16);
      for (let off = start; off < end; off += 1 << 24) {
        const len = Math.min(1 << 24, end - off) + 64;
        const buf = Buffer.alloc(len);
        let n = 0;
        try {
          ({ bytesRead: n } = await mem.read(buf, 0, Math.min(len, end - off), off));
        } catch {
          break;
        }
        const view = buf.subarray(0, n);
        for (const needle of needles) if (view.indexOf(Buffer.from(needle)) >= 0) hits++;
      }
    }
  } finally {
    await mem.close();
  }
  return hits;
}

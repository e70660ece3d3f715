/**
 * Blinder processes for tests (SPEC.md §5.4): registered with a real manager process through its
 * operator API, then started as `bin/blindfold.mjs blinder run` on an ephemeral loopback port.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createJsonClient, type JsonClient } from '../../src/appliance/client.ts';
import { initBlinder } from '../../src/blinder/run.ts';
import { BIN, type ManagerProcess, newRootKey } from './deploy.ts';

export interface BlinderProcess {
  id: string;
  home: string;
  rootKey: string;
  url: string;
  proc: ChildProcess;
  stderr: () => string;
  /** mTLS client with the blinder's own certificate (as its predecessor would call). */
  token: () => Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Registers a new blinder identity in `home` with the manager (operator action). */
export async function registerBlinder(m: ManagerProcess, home: string, name = 'blinder') {
  const s = await initBlinder({
    home,
    managerUrl: m.url,
    caPem: m.caPem,
    operatorToken: m.operatorToken,
    name,
  });
  return s.blinderId;
}

/** Starts `blindfold blinder run` for an initialized home and waits until it listens. */
export async function startBlinderProcess(o: {
  home: string;
  id: string;
  rootKey?: string;
  port?: number;
}): Promise<BlinderProcess> {
  const rootKey = o.rootKey ?? newRootKey();
  const proc = spawn(
    process.execPath,
    [BIN, 'blinder', 'run', '--home', o.home, '--port', String(o.port ?? 0)],
    {
      env: { ...process.env, BLINDFOLD_ROOT_KEY: rootKey, BLINDFOLD_LOG: 'warn' },
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
    if (proc.exitCode !== null) throw new Error(`blinder exited with ${proc.exitCode}: ${err}`);
    const m = /listening on (https:\/\/\S+)/.exec(err);
    if (m) {
      return {
        id: o.id,
        home: o.home,
        rootKey,
        url: m[1]!,
        proc,
        stderr: () => err,
        token: async () => (await readFile(join(o.home, 'blinder.token'), 'utf8')).trim(),
        async stop(signal: NodeJS.Signals = 'SIGTERM') {
          if (proc.exitCode === null) proc.kill(signal);
          return exited;
        },
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error(`blinder did not start: ${err}`);
}

/** A JSON client that presents a blinder's own certificate (as its predecessor or itself). */
export async function clientAs(
  home: string,
  baseUrl: string,
  extra: { pinFingerprint?: string } = {},
): Promise<JsonClient> {
  const s = JSON.parse(await readFile(join(home, 'blinder.json'), 'utf8')) as {
    caPem: string;
    certificatePem: string;
    identityKeyPem: string;
  };
  return createJsonClient({
    baseUrl,
    caPem: s.caPem,
    certPem: s.certificatePem,
    keyPem: s.identityKeyPem,
    retries: 0,
    ...extra,
  });
}

/**
 * A KMS deployment of real processes: a manager (`blindfold manager`) and an appliance process
 * (`blindfold appliance run`, enrolled through the manager's real API) that serves /kms/v1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { enrollAppliance } from '../../src/appliance/appliance.ts';
import {
  BIN,
  cleanup,
  type ManagerProcess,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from './deploy.ts';

export interface KmsDeployment {
  m: ManagerProcess;
  home: string;
  adir: string;
  /** Base URL of the appliance (KMS API under /kms/v1). */
  url: string;
  aproc: ChildProcess;
  /** A new application with a token of these scopes. */
  newApp(
    name: string,
    scopes: string[],
  ): Promise<{ appId: string; token: string; tokenId: string }>;
  /** Replaces the policy of a key (operator). */
  policy(key: string, grants: { applicationId: string; operations: string[] }[]): Promise<void>;
  stop(): Promise<void>;
}

export async function startAppliancProcess(o: {
  home: string;
  args?: string[];
  nodeArgs?: string[];
  cwd?: string;
}): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(
    process.execPath,
    [
      ...(o.nodeArgs ?? []),
      BIN,
      'appliance',
      'run',
      '--home',
      o.home,
      '--port',
      '0',
      ...(o.args ?? []),
    ],
    {
      cwd: o.cwd ?? o.home,
      env: { ...process.env, BLINDFOLD_LOG: 'warn', BLINDFOLD_CLUSTER_POLL_MS: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  proc.stdout!.resume();
  for (let i = 0; i < 400; i++) {
    if (proc.exitCode !== null) throw new Error(`appliance exited with ${proc.exitCode}: ${err}`);
    const m = /local API on (http:\/\/\S+)/.exec(err);
    if (m) return { proc, url: m[1]! };
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error(`appliance did not start: ${err}`);
}

export async function startKmsDeployment(
  o: {
    managerNodeArgs?: string[];
    applianceNodeArgs?: string[];
    cwd?: string;
    applianceArgs?: string[];
  } = {},
): Promise<KmsDeployment> {
  const home = await tmpDir();
  const adir = await tmpDir();
  const m = await startManagerProcess({
    home,
    rootKey: newRootKey(),
    nodeArgs: o.managerNodeArgs,
    cwd: o.cwd,
  });
  const { token } = await m.op.request<{ token: string }>('POST', '/v1/enrollments', {});
  await enrollAppliance({ dir: adir, managerUrl: m.url, caPem: m.caPem, token, name: 'kms' });
  const { proc, url } = await startAppliancProcess({
    home: adir,
    nodeArgs: o.applianceNodeArgs,
    cwd: o.cwd,
    args: o.applianceArgs,
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    m,
    home,
    adir,
    url,
    aproc: proc,
    async newApp(name, scopes) {
      const app = await m.op.request<{ id: string }>('POST', '/v1/kms/applications', { name });
      const tok = await m.op.request<{ id: string; token: string }>(
        'POST',
        `/v1/kms/applications/${app.id}/tokens`,
        { scopes },
      );
      return { appId: app.id, token: tok.token, tokenId: tok.id };
    },
    async policy(key, grants) {
      await m.op.request('PUT', `/v1/kms/keys/${key}/policy`, { grants });
    },
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
      await m.stop();
      await cleanup(home, adir);
    },
  };
}

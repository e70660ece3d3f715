/**
 * Starts an appliance daemon from its data directory: loads its concealed state, connects to the
 * manager with its client certificate, and serves the local API on loopback. The local API's
 * token is created at first start (0600) and its URL is written to local.json for the CLI.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ClusterMember } from '../cluster/member.ts';
import { toB64u, utf8 } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { Appliance, loadState } from './appliance.ts';
import { ImportReceiver } from './imports.ts';
import { buildLocalServer } from './server.ts';

export const LOCAL_TOKEN_FILE = 'local-api.token';
export const LOCAL_INFO_FILE = 'local.json';

export interface ApplianceRunOptions {
  home: string;
  port?: number;
  logger?: boolean | object;
  onItemSecret?: (keyring: string, secret: Uint8Array) => void;
  cache?: { maxEntries: number; ttlMs: number };
  /** Poll interval of the cluster loop (serving and receiving transfers); 0 turns it off. */
  clusterPollMs?: number;
  /**
   * Accept master-key imports from the web console (SPEC.md §5.9): publish an import key and poll
   * for imports every `pollMs` (default 1000). Off unless asked for ("blindfold up" turns it on).
   */
  consoleImports?: boolean | { pollMs?: number };
  /** Browser origins allowed to call the KMS API (SPEC.md §11.8). */
  kmsCorsOrigins?: string[];
}

export interface RunningAppliance {
  app: FastifyInstance;
  appliance: Appliance;
  member: ClusterMember;
  imports?: ImportReceiver;
  url: string;
  token: string;
  close(): Promise<void>;
}

export async function ensureLocalToken(home: string): Promise<string> {
  const path = join(home, LOCAL_TOKEN_FILE);
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const token = `bf-local-${toB64u(randomBytes(32))}`;
  await writeFileAtomic(path, `${token}\n`, { mode: 0o600 });
  return token;
}

export async function readLocalInfo(home: string): Promise<{ url: string; token: string }> {
  try {
    const info = JSON.parse(await readFile(join(home, LOCAL_INFO_FILE), 'utf8')) as { url: string };
    const token = (await readFile(join(home, LOCAL_TOKEN_FILE), 'utf8')).trim();
    return { url: info.url, token };
  } catch (cause) {
    throw new BlindfoldError(
      'ERR_UNAVAILABLE',
      `no running appliance found in ${home}: start one with "npm start" (or "blindfold appliance run")`,
      { cause },
    );
  }
}

function clusterPollFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.BLINDFOLD_CLUSTER_POLL_MS;
  return v !== undefined && /^\d{1,7}$/.test(v) ? Number(v) : undefined;
}

export async function startAppliance(o: ApplianceRunOptions): Promise<RunningAppliance> {
  const state = await loadState(o.home);
  const appliance = new Appliance({
    dir: o.home,
    state,
    onItemSecret: o.onItemSecret,
    cache: o.cache,
  });
  const token = await ensureLocalToken(o.home);
  // The cluster loop: serve transfers this member may vouch for, receive our own (SPEC.md §5.7).
  const member = new ClusterMember(appliance);
  const imports = o.consoleImports ? new ImportReceiver(appliance) : undefined;
  const app = await buildLocalServer({
    appliance,
    tokenHash: sha256(utf8(token)),
    logger: o.logger,
    member,
    importKeyFingerprint: () => imports?.fingerprint(),
    kmsCorsOrigins: o.kmsCorsOrigins,
  });
  await app.listen({ host: '127.0.0.1', port: o.port ?? 7301 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (o.port ?? 7301);
  const url = `http://127.0.0.1:${port}`;
  await writeFileAtomic(
    join(o.home, LOCAL_INFO_FILE),
    `${JSON.stringify({ url, pid: process.pid })}\n`,
    {
      mode: 0o600,
    },
  );
  const pollMs = o.clusterPollMs ?? clusterPollFromEnv(process.env) ?? 1000;
  if (pollMs > 0) member.start(pollMs);
  if (imports) {
    await imports.keyPair(); // so that `blindfold status` shows the fingerprint at once
    imports.start(typeof o.consoleImports === 'object' ? o.consoleImports.pollMs : undefined);
  }
  let closed = false;
  return {
    app,
    appliance,
    member,
    imports,
    url,
    token,
    async close() {
      if (closed) return;
      closed = true;
      member.stop();
      imports?.stop();
      await app.close();
      appliance.close();
    },
  };
}

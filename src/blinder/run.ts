/**
 * `blindfold blinder init` and `blindfold blinder run` (SPEC.md §5.4): a blinder's data directory
 * holds blinder.json (identity key, certificate from the manager CA, manager URL and CA; 0600),
 * blinder.db (sealed E_j values and the audit chain) and blinder.token (its operator token).
 * Its root key, like the manager's, never enters the directory's database (§9).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createJsonClient } from '../appliance/client.ts';
import { toB64u, utf8 } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';
import { createAuditLog } from '../manager/audit.ts';
import { createSealer } from '../manager/seal.ts';
import { Metrics } from '../server/common.ts';
import { generateIdentity } from '../tls/x509.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { Blinder, type BlinderState } from './blinder.ts';
import { buildBlinderServer } from './server.ts';
import { BlinderStore } from './store.ts';

export const BLINDER_STATE_FILE = 'blinder.json';
export const BLINDER_TOKEN_FILE = 'blinder.token';
export const BLINDER_DB_FILE = 'blinder.db';

export async function loadBlinderState(home: string): Promise<BlinderState> {
  let text: string;
  try {
    text = await readFile(join(home, BLINDER_STATE_FILE), 'utf8');
  } catch (cause) {
    throw new BlindfoldError(
      'ERR_NOT_FOUND',
      `no blinder in ${home}: run "blindfold blinder init" first`,
      { cause },
    );
  }
  let s: BlinderState;
  try {
    s = JSON.parse(text) as BlinderState;
  } catch (cause) {
    throw new BlindfoldError('ERR_DECODE', `${join(home, BLINDER_STATE_FILE)} is not JSON`, {
      cause,
    });
  }
  if (s.format !== 1) {
    throw new BlindfoldError('ERR_UNSUPPORTED_VERSION', `unknown blinder state format ${s.format}`);
  }
  return s;
}

/**
 * Creates the blinder's identity and registers it with the manager (an operator action: it takes
 * the manager's operator token), which certifies the key with its CA.
 */
export async function initBlinder(o: {
  home: string;
  managerUrl: string;
  caPem: string;
  operatorToken: string;
  name: string;
  hostnames?: string[];
}): Promise<BlinderState> {
  await mkdir(o.home, { recursive: true, mode: 0o700 });
  try {
    await readFile(join(o.home, BLINDER_STATE_FILE));
    throw new BlindfoldError('ERR_CONFLICT', `${o.home} already holds a blinder`);
  } catch (e) {
    if (e instanceof BlindfoldError) throw e;
  }
  const id = generateIdentity();
  const op = createJsonClient({ baseUrl: o.managerUrl, caPem: o.caPem, token: o.operatorToken });
  try {
    const out = await op.request<{ blinderId: string; certificatePem: string; caPem: string }>(
      'POST',
      '/v1/blinders',
      {
        name: o.name,
        publicKey: toB64u(id.spkiDer),
        ...(o.hostnames?.length ? { hostnames: o.hostnames } : {}),
      },
    );
    const state: BlinderState = {
      format: 1,
      blinderId: out.blinderId,
      name: o.name,
      managerUrl: o.managerUrl,
      caPem: o.caPem,
      certificatePem: out.certificatePem,
      identityKeyPem: id.keyPem,
    };
    await writeFileAtomic(join(o.home, BLINDER_STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, {
      mode: 0o600,
    });
    return state;
  } finally {
    op.close();
  }
}

async function ensureToken(home: string): Promise<string> {
  const path = join(home, BLINDER_TOKEN_FILE);
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const token = `bf-op-${toB64u(randomBytes(32))}`;
  await writeFileAtomic(path, `${token}\n`, { mode: 0o600 });
  return token;
}

export interface RunningBlinder {
  app: FastifyInstance;
  blinder: Blinder;
  store: BlinderStore;
  url: string;
  close(): Promise<void>;
}

export async function startBlinder(o: {
  home: string;
  rootKey: Uint8Array;
  host?: string;
  port?: number;
  /** Manager URL override (else the one in blinder.json). */
  managerUrl?: string;
  logger?: boolean | object;
}): Promise<RunningBlinder> {
  const state = await loadBlinderState(o.home);
  if (o.managerUrl) state.managerUrl = o.managerUrl;
  const store = new BlinderStore(join(o.home, BLINDER_DB_FILE));
  const sealer = createSealer(o.rootKey);
  const audit = createAuditLog(store);
  const blinder = new Blinder({ state, store, sealer, audit });
  const token = await ensureToken(o.home);
  const app = await buildBlinderServer({
    blinder,
    store,
    caPem: state.caPem,
    tls: { key: state.identityKeyPem, cert: state.certificatePem },
    operatorTokenHash: sha256(utf8(token)),
    logger: o.logger,
    metrics: new Metrics(),
  });
  const host = o.host ?? '127.0.0.1';
  const close = async () => {
    await app.close();
    await audit.flush();
    blinder.close();
    await store.close();
  };
  try {
    await app.listen({ host, port: o.port ?? 7310 });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : (o.port ?? 7310);
    const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
    // The manager publishes this URL in the keyring chains (appliances and the predecessor
    // connect to it, pinned to our identity).
    await blinder.announce(url);
    await audit.record({ actor: state.blinderId, action: 'blinder.start' });
    return { app, blinder, store, url, close };
  } catch (e) {
    await close();
    throw e;
  }
}

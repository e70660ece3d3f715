/**
 * Starts a manager process from its data directory: local PKI (created at first start), the
 * store (SQLite by default), the root key (never in the database), the operator token, and the
 * HTTPS server. Graceful shutdown drains requests and flushes the audit log.
 */
import { createPrivateKey, randomBytes, sign } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { AttestationVerifier } from '../cluster/credentials.ts';
import { fromB64u, toB64u, utf8 } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';
import { KmsService, type RateLimit } from '../kms/service.ts';
import { Metrics } from '../server/common.ts';
import { openPostgresStore } from '../store/postgres.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import type { Store } from '../store/types.ts';
import { ensureLocalPki } from '../tls/ca-store.ts';
import { issueCertificate, spkiFingerprint } from '../tls/x509.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { createAuditLog } from './audit.ts';
import { blinderHealthTtlFromEnv } from './blinder-health.ts';
import { Manager } from './manager.ts';
import { createGroupPool, defaultWorkers, type GroupPool } from './pool.ts';
import { createSealer } from './seal.ts';
import { buildManagerServer } from './server.ts';

export interface ManagerRunOptions {
  home: string;
  host?: string;
  port?: number;
  rootKey: Uint8Array;
  /** 'sqlite' (default: <home>/blindfold.db) or a sqlite:PATH / postgres:// URL. */
  store?: string;
  insecureHttp?: boolean;
  logger?: boolean | object;
  /** Extra names for the server certificate. */
  hostnames?: string[];
  /** Vouching criterion (ii) by attestation documents (default: refuse all, SPEC.md §5.7). */
  attestation?: AttestationVerifier;
  /**
   * Cluster transfer timings; default from BLINDFOLD_CLAIM_TTL_MS and BLINDFOLD_VOUCHER_GRACE_MS,
   * else 30 000 and 5 000 ms.
   */
  cluster?: { claimTtlMs?: number; voucherGraceMs?: number };
  /** How often to re-read keyrings and appliances from the store (default 1000 ms). */
  refreshMs?: number;
  /**
   * Worker threads for the group operations (src/manager/pool.ts). Default: one per core
   * (os.availableParallelism), none on a single core; 0 runs them on the main thread.
   */
  workers?: number;
}

export interface RunningManager {
  app: FastifyInstance;
  manager: Manager;
  store: Store;
  url: string;
  caPem: string;
  operatorToken: string;
  close(): Promise<void>;
}

export const OPERATOR_TOKEN_FILE = 'operator.token';

async function openStore(spec: string | undefined, home: string): Promise<Store> {
  if (!spec || spec === 'sqlite') return openSqliteStore(join(home, 'blindfold.db'));
  if (spec.startsWith('sqlite:')) return openSqliteStore(spec.slice('sqlite:'.length));
  // postgres://user@host:port/db[?schema=NAME]: the pool connects lazily, migrate() is the
  // first round trip (and reports an unreachable server as ERR_STORAGE).
  if (spec.startsWith('postgres://') || spec.startsWith('postgresql://')) {
    return openPostgresStore(spec);
  }
  throw new BlindfoldError(
    'ERR_INVALID_ARGUMENT',
    `unknown store "${spec}": use sqlite, sqlite:PATH or postgres://...`,
  );
}

/** The operator token is created at first start (0600) and only its hash is kept in memory. */
async function ensureOperatorToken(home: string): Promise<string> {
  const path = join(home, OPERATOR_TOKEN_FILE);
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const token = `bf-op-${toB64u(randomBytes(32))}`;
  await writeFileAtomic(path, `${token}\n`, { mode: 0o600 });
  return token;
}

export async function startManager(o: ManagerRunOptions): Promise<RunningManager> {
  await mkdir(o.home, { recursive: true, mode: 0o700 });
  const pki = await ensureLocalPki(join(o.home, 'pki'), { hostnames: o.hostnames });
  const store = await openStore(o.store, o.home);
  await store.migrate();
  const sealer = createSealer(o.rootKey);
  const operatorToken = await ensureOperatorToken(o.home);
  const caKey = createPrivateKey(pki.caKeyPem);
  const audit = createAuditLog(store);
  let manager: Manager;
  let pool: GroupPool;
  try {
    pool = await createGroupPool(o.workers ?? defaultWorkers(), (e) =>
      process.emitWarning(
        `a group worker did not start, its share of the group operations runs on the main thread: ${e instanceof Error ? e.message : String(e)}`,
      ),
    );
  } catch (e) {
    await store.close();
    throw e;
  }
  try {
    manager = await Manager.open({
      pool,
      store,
      sealer,
      audit,
      signKeyStatement: (statement) => new Uint8Array(sign('sha256', statement, caKey)),
      // The client certificate is the membership certificate: its extension carries the claim
      // (who vouched, by which criterion), SPEC.md §5.7.
      issueApplianceCertificate: (spkiDer, applianceId, extra) =>
        issueCertificate({
          ca: { certPem: pki.caCertPem, keyPem: pki.caKeyPem },
          subjectPublicKey: spkiDer,
          commonName: applianceId,
          usage: 'client',
          validDays: 825,
          extra,
        }),
      fingerprintOf: (spkiDer) => spkiFingerprint(spkiDer),
      // A blinder serves (to appliances and its predecessor) and calls (its successor, the
      // manager) with one certificate, for loopback and the names it asked for (SPEC.md §5.4).
      issueBlinderCertificate: (spkiDer, blinderId, hostnames) =>
        issueCertificate({
          ca: { certPem: pki.caCertPem, keyPem: pki.caKeyPem },
          subjectPublicKey: spkiDer,
          commonName: blinderId,
          dnsNames: ['localhost', ...hostnames.filter((h) => !/^[0-9.:]+$/.test(h))],
          ipAddresses: ['127.0.0.1', '::1', ...hostnames.filter((h) => /^[0-9.:]+$/.test(h))],
          usage: 'both',
          validDays: 825,
        }),
      attestation: o.attestation,
      cluster: o.cluster ?? clusterTimingsFromEnv(process.env),
      // Test-only: a shorter "day" for deletion windows (SPEC.md §7.4; OPERATIONS.md).
      deletionDayMs: deletionDayFromEnv(process.env),
    });
  } catch (e) {
    await pool.close();
    await store.close();
    throw e;
  }
  const metrics = new Metrics();
  const kms = new KmsService({ store, audit, manager, rate: kmsRateFromEnv(process.env) });
  const app = await buildManagerServer({
    manager,
    kms,
    store,
    operatorTokenHash: sha256(utf8(operatorToken)),
    caPem: pki.caCertPem,
    tls: o.insecureHttp ? undefined : { key: pki.keyPem, cert: pki.certPem },
    logger: o.logger,
    metrics,
    historyIntervalMs: historyIntervalFromEnv(process.env),
    blinderHealthTtlMs: blinderHealthTtlFromEnv(process.env),
  });
  // Replicas share the store: pick up other replicas' rotations and revocations (SPEC.md §7.3).
  const refresh = setInterval(() => {
    manager.refresh().catch(() => {
      /* the store is down: /ready says so, requests fail clearly; retry next tick */
    });
  }, o.refreshMs ?? 1000);
  refresh.unref();
  const host = o.host ?? '127.0.0.1';
  await app.listen({ host, port: o.port ?? 7300 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (o.port ?? 7300);
  const url = `${o.insecureHttp ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let closed = false;
  return {
    app,
    manager,
    store,
    url,
    caPem: pki.caCertPem,
    operatorToken,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(refresh);
      await app.close();
      await pool.close();
      await audit.flush();
      await store.close();
    },
  };
}

/** Per-application KMS rate limit (SPEC.md §11.6): BLINDFOLD_KMS_RATE / BLINDFOLD_KMS_BURST. */
function kmsRateFromEnv(env: NodeJS.ProcessEnv): RateLimit | undefined {
  const n = (v: string | undefined) => (v !== undefined && /^\d{1,7}$/.test(v) ? Number(v) : 0);
  const rate = n(env.BLINDFOLD_KMS_RATE);
  if (rate <= 0) return undefined;
  return { ratePerSecond: rate, burst: Math.max(1, n(env.BLINDFOLD_KMS_BURST) || 2 * rate) };
}

function deletionDayFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.BLINDFOLD_DELETION_DAY_MS;
  return v !== undefined && /^\d{1,9}$/.test(v) && Number(v) > 0 ? Number(v) : undefined;
}

/** BLINDFOLD_METRICS_SAMPLE_MS: the console's chart resolution (100 ms .. 1 h; default 5 s). */
function historyIntervalFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.BLINDFOLD_METRICS_SAMPLE_MS;
  if (v === undefined || !/^\d{3,7}$/.test(v)) return undefined;
  const n = Number(v);
  return n >= 100 && n <= 3_600_000 ? n : undefined;
}

function clusterTimingsFromEnv(env: NodeJS.ProcessEnv) {
  const ms = (v: string | undefined) =>
    v !== undefined && /^\d{1,9}$/.test(v) ? Number(v) : undefined;
  return {
    claimTtlMs: ms(env.BLINDFOLD_CLAIM_TTL_MS),
    voucherGraceMs: ms(env.BLINDFOLD_VOUCHER_GRACE_MS),
  };
}

/** Root key sources, in order: BLINDFOLD_ROOT_KEY, --root-key-file. */
export function rootKeyFromEnv(env: NodeJS.ProcessEnv): Uint8Array | undefined {
  const v = env.BLINDFOLD_ROOT_KEY;
  if (!v) return undefined;
  const key = fromB64u(v.trim(), 'BLINDFOLD_ROOT_KEY');
  if (key.length !== 32) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      'BLINDFOLD_ROOT_KEY must be 32 bytes, base64url',
    );
  }
  return key;
}

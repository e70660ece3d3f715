/**
 * The manager's HTTP API (SPEC.md §7): one fastify plugin per area, a JSON schema on every
 * route for input and response (so nothing outside the schema can leak by accident), binary
 * fields as unpadded base64url.
 *
 * Who may call what:
 * - operators: `Authorization: Bearer <operator token>` (keyrings, appliances, enrollments, audit);
 * - appliances: mutual TLS with a client certificate issued by this manager's CA at enrollment;
 *   revoked or unknown certificates are refused before any work (T6);
 * - anyone: /health, /ready, /metrics, and enrollment (which needs a one-time token).
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { registerClusterRoutes } from '../cluster/routes.ts';
import { registerConsole } from '../console/serve.ts';
import { fromB64u, toB64u, toHex } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';
import { registerKmsManagerRoutes } from '../kms/manager-routes.ts';
import type { KmsService } from '../kms/service.ts';
import {
  applianceRecordProperties,
  auditEntrySchema,
  b64u,
  errorResponses,
  installErrorHandling,
  installMetrics,
  keyringName,
  Metrics,
  requireBearer,
  version,
} from '../server/common.ts';
import { MetricsHistory } from '../server/history.ts';
import type { Store } from '../store/types.ts';
import { createBlinderHealthMonitor } from './blinder-health.ts';
import { registerChainRoutes } from './chain-routes.ts';
import { registerConsoleRoutes } from './console-routes.ts';
import { DELETION_MAX_DAYS, DELETION_MIN_DAYS, type Manager } from './manager.ts';

export interface ManagerServerOptions {
  manager: Manager;
  store: Store;
  operatorTokenHash: Uint8Array;
  caPem: string;
  tls?: { key: string; cert: string };
  logger?: boolean | object;
  metrics?: Metrics;
  bodyLimit?: number;
  /** Request-history sampling for the console charts (default every 5 s, one hour kept). */
  historyIntervalMs?: number;
  /** The KMS control point (SPEC.md §11); its routes are served when given. */
  kms?: KmsService;
  /** How long blinder probe results are reused (default 3 s, SPEC.md §7.6). */
  blinderHealthTtlMs?: number;
}

const peerCache = new WeakMap<object, string>();

/** The SPKI fingerprint of the client certificate on this TLS connection, if it verified. */
function peerFingerprint(request: FastifyRequest): string | undefined {
  const socket = request.raw.socket as TLSSocket;
  if (!socket || typeof socket.getPeerCertificate !== 'function' || !socket.authorized) {
    return undefined;
  }
  const hit = peerCache.get(socket);
  if (hit) return hit;
  const cert = socket.getPeerCertificate(false);
  if (!cert?.raw) return undefined;
  const spki = new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' });
  const fpr = toHex(sha256(new Uint8Array(spki)));
  peerCache.set(socket, fpr);
  return fpr;
}

export async function buildManagerServer(opts: ManagerServerOptions): Promise<FastifyInstance> {
  const { manager } = opts;
  const metrics = opts.metrics ?? new Metrics();
  metrics.gauge('blindfold_group_operations_total', () => manager.groupOps);
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: opts.bodyLimit ?? 1 << 20,
    genReqId: () => crypto.randomUUID(),
    ...(opts.tls
      ? {
          https: {
            key: opts.tls.key,
            cert: opts.tls.cert,
            ca: opts.caPem,
            requestCert: true,
            rejectUnauthorized: false, // operators and health checks come without client certs
            minVersion: 'TLSv1.2' as const,
          },
        }
      : {}),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  installErrorHandling(app);
  installMetrics(app, metrics, 'manager');
  const history = new MetricsHistory(metrics, {
    intervalMs: opts.historyIntervalMs,
    capacity: opts.historyIntervalMs ? Math.ceil(3_600_000 / opts.historyIntervalMs) : undefined,
  });
  history.start();
  app.addHook('onClose', async () => history.stop());
  /** Last authenticated request per appliance (presence in the console; this process only). */
  const lastSeen = new Map<string, number>();

  const operator = async (request: FastifyRequest) => {
    requireBearer(
      request,
      opts.operatorTokenHash,
      'operator authentication required: send Authorization: Bearer <operator token>',
    );
    return 'operator';
  };

  const appliance = async (request: FastifyRequest): Promise<string> => {
    const fpr = peerFingerprint(request);
    if (!fpr) {
      throw new BlindfoldError(
        'ERR_UNAUTHENTICATED',
        'appliance authentication required: connect with the client certificate issued at enrollment',
      );
    }
    const a = manager.applianceByFingerprint(fpr) ?? (await manager.resolveAppliance(fpr));
    if (!a) throw new BlindfoldError('ERR_UNAUTHENTICATED', 'unknown appliance certificate');
    try {
      // Enrolled (vouched, no secret yet) and trusted members pass; routes that need a trusted
      // member check it themselves (SPEC.md §5.7).
      const id = (await manager.memberFresh(a.id)).id;
      lastSeen.set(id, Date.now());
      return id;
    } catch (e) {
      // Refused before any work, but still one audit entry per request (SPEC.md §8).
      manager.auditRefusal(
        a.id,
        `http ${request.method} ${request.routeOptions.url}`,
        (e as BlindfoldError).code,
      );
      throw e;
    }
  };

  // -- health ----------------------------------------------------------------------------------
  app.get(
    '/health',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { status: { type: 'string' } },
          },
        },
      },
    },
    async () => ({ status: 'ok' }),
  );
  app.get(
    '/ready',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { status: { type: 'string' }, store: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async () => {
      try {
        await opts.store.countItems('__ready_probe__');
      } catch (cause) {
        throw new BlindfoldError('ERR_UNAVAILABLE', 'the store is not reachable', { cause });
      }
      return { status: 'ready', store: opts.store.kind };
    },
  );
  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', 'text/plain; version=0.0.4');
    return metrics.render();
  });
  app.get(
    '/v1/ca',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { caPem: { type: 'string' } },
          },
        },
      },
    },
    async () => ({ caPem: opts.caPem }),
  );

  // -- operator: keyrings --------------------------------------------------------------------------
  // threshold keyrings (SPEC.md §5.6) carry this node's t-of-n and index.
  const thresholdOut = {
    type: 'object',
    additionalProperties: false,
    required: ['t', 'n', 'index'],
    properties: {
      t: { type: 'integer', minimum: 1, maximum: 16 },
      n: { type: 'integer', minimum: 2, maximum: 16 },
      index: { type: 'integer', minimum: 1, maximum: 16 },
    },
  } as const;
  const withThreshold = async <K extends { name: string }>(k: K) => {
    const th = await manager.thresholdOf(k.name);
    return th ? { ...k, threshold: th } : k;
  };
  const keyringOut = {
    type: 'object',
    additionalProperties: false,
    properties: {
      name: { type: 'string' },
      mode: { type: 'string' },
      scheme: { type: 'string' },
      masterVersion: { type: 'integer' },
      managerVersion: { type: 'integer' },
      status: { type: 'string' },
      createdAt: { type: 'integer' },
      updatedAt: { type: 'integer' },
      deletionAt: { type: ['integer', 'null'] },
      threshold: thresholdOut,
      versions: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          properties: {
            managerVersion: { type: 'integer' },
            createdAt: { type: 'integer' },
            retiredAt: { type: ['integer', 'null'] },
          },
        },
      },
    },
  } as const;

  app.post<{
    Body: {
      name: string;
      mode: string;
      scheme?: string;
      threshold?: { t: number; n: number; index: number };
      ticketKey?: string;
      shareKey?: string;
      blinders?: string[];
    };
  }>(
    '/v1/keyrings',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'mode'],
          properties: {
            name: keyringName,
            mode: { type: 'string', maxLength: 32 },
            scheme: { type: 'string', maxLength: 32 },
            // hom3/homN: the chain, in request order (SPEC.md §5.4).
            blinders: {
              type: 'array',
              maxItems: 16,
              items: { type: 'string', pattern: '^bl-[0-9a-f]{16}$' },
            },
            // threshold mode: dealt by the setup tool, the same on every node (SPEC.md §5.6)
            threshold: thresholdOut,
            ticketKey: b64u(32, 32),
            shareKey: b64u(32, 32),
          },
        },
        response: { 201: keyringOut, ...errorResponses },
      },
    },
    async (request, reply) => {
      const actor = await operator(request);
      const b = request.body;
      const ticketKey = b.ticketKey === undefined ? undefined : fromB64u(b.ticketKey, 'ticketKey');
      const shareKey = b.shareKey === undefined ? undefined : fromB64u(b.shareKey, 'shareKey');
      try {
        const k = await manager.createKeyring(actor, {
          name: b.name,
          mode: b.mode,
          scheme: b.scheme,
          blinders: b.blinders,
          threshold: b.threshold,
          ticketKey,
          shareKey,
        });
        return reply.status(201).send(await withThreshold(k));
      } finally {
        ticketKey?.fill(0);
        shareKey?.fill(0);
      }
    },
  );
  app.get(
    '/v1/keyrings',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { keyrings: { type: 'array', items: keyringOut } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      await operator(request);
      return { keyrings: await Promise.all(manager.listKeyrings().map(withThreshold)) };
    },
  );
  app.get<{ Params: { name: string } }>(
    '/v1/keyrings/:name',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        response: { 200: keyringOut, ...errorResponses },
      },
    },
    async (request) => {
      await operator(request);
      return withThreshold(await manager.describeKeyring(request.params.name));
    },
  );
  app.post<{ Params: { name: string } }>(
    '/v1/keyrings/:name/rotate',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        response: { 200: keyringOut, ...errorResponses },
      },
    },
    async (request) => manager.rotateKeyring(await operator(request), request.params.name),
  );
  app.post<{ Params: { name: string }; Body: { status: 'enabled' | 'disabled' } }>(
    '/v1/keyrings/:name/status',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['status'],
          properties: { status: { type: 'string', enum: ['enabled', 'disabled'] } },
        },
        response: { 200: keyringOut, ...errorResponses },
      },
    },
    async (request) =>
      manager.setKeyringStatus(await operator(request), request.params.name, request.body.status),
  );

  // Scheduled deletion (SPEC.md §7.4): unusable at once, destroyed after the pending window.
  app.post<{ Params: { name: string }; Body: { pendingDays?: number } | undefined }>(
    '/v1/keyrings/:name/deletion',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            pendingDays: {
              type: 'integer',
              minimum: DELETION_MIN_DAYS,
              maximum: DELETION_MAX_DAYS,
            },
          },
        },
        response: { 200: keyringOut, ...errorResponses },
      },
    },
    async (request) =>
      manager.scheduleKeyringDeletion(
        await operator(request),
        request.params.name,
        request.body?.pendingDays,
      ),
  );
  app.delete<{ Params: { name: string } }>(
    '/v1/keyrings/:name/deletion',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        response: { 200: keyringOut, ...errorResponses },
      },
    },
    async (request) => manager.cancelKeyringDeletion(await operator(request), request.params.name),
  );

  // -- operator: appliances and enrollment -----------------------------------------------------
  const applianceOut = {
    type: 'object',
    additionalProperties: false,
    properties: applianceRecordProperties,
  } as const;
  app.get(
    '/v1/appliances',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { appliances: { type: 'array', items: applianceOut } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      await operator(request);
      return { appliances: manager.listAppliances() };
    },
  );
  app.post<{ Params: { id: string } }>(
    '/v1/appliances/:id/revoke',
    {
      schema: {
        params: {
          type: 'object',
          properties: { id: { type: 'string', pattern: '^ap-[0-9a-f]{16}$' } },
          required: ['id'],
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { revoked: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      await manager.revoke(await operator(request), request.params.id);
      return { revoked: request.params.id };
    },
  );
  app.post<{ Body: { ttlSeconds?: number; fingerprint?: string; keyrings?: string[] } }>(
    '/v1/enrollments',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ttlSeconds: { type: 'integer', minimum: 60, maximum: 604800 },
            fingerprint: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            keyrings: { type: 'array', maxItems: 32, items: keyringName },
          },
        },
        response: {
          201: {
            type: 'object',
            additionalProperties: false,
            properties: { token: { type: 'string' }, expiresAt: { type: 'integer' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const actor = await operator(request);
      const body = request.body ?? {};
      const out = await manager.createEnrollment(
        actor,
        body.ttlSeconds,
        body.fingerprint ?? null,
        body.keyrings ?? [],
      );
      return reply.status(201).send(out);
    },
  );
  app.post<{
    Body: {
      token?: string;
      credential?: {
        kind: 'fingerprint' | 'secret' | 'attestation';
        secret?: string;
        document?: string;
      };
      name: string;
      publicKey: string;
      proof?: string;
    };
  }>(
    '/v1/appliances/enroll',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'publicKey'],
          properties: {
            token: { type: 'string', maxLength: 128 },
            // Vouching criterion (ii), SPEC.md §5.7.
            credential: {
              type: 'object',
              additionalProperties: false,
              required: ['kind'],
              properties: {
                kind: { type: 'string', enum: ['fingerprint', 'secret', 'attestation'] },
                secret: { type: 'string', minLength: 1, maxLength: 256 },
                document: b64u(65536, 1),
              },
            },
            name: { type: 'string', minLength: 1, maxLength: 64 },
            publicKey: b64u(1024, 32),
            // Proof of possession of the identity key (SPEC.md §5.7).
            proof: b64u(128, 8),
          },
        },
        response: {
          201: {
            type: 'object',
            additionalProperties: false,
            properties: {
              applianceId: { type: 'string' },
              certificatePem: { type: 'string' },
              caPem: { type: 'string' },
              status: { type: 'string' },
              vouchedBy: { type: 'string' },
              criterion: { type: 'string' },
              transfers: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  properties: { id: { type: 'string' }, keyring: { type: 'string' } },
                },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const out = await manager.enroll({
        name: b.name,
        token: b.token,
        publicKey: fromB64u(b.publicKey, 'publicKey'),
        proof: b.proof === undefined ? undefined : fromB64u(b.proof, 'proof'),
        credential: b.credential && {
          kind: b.credential.kind,
          secret: b.credential.secret,
          document:
            b.credential.document === undefined
              ? undefined
              : fromB64u(b.credential.document, 'document'),
        },
      });
      return reply.status(201).send({ ...out, caPem: opts.caPem });
    },
  );

  registerClusterRoutes(app, { manager, operator, appliance });
  registerConsoleRoutes(app, { manager, history, lastSeen, operator, appliance });
  // The web console's static page and bundle (src/console), same origin as this API.
  registerConsole(app);
  const lastRelay = new Map<string, number>();
  const health = createBlinderHealthMonitor({
    blinders: () => manager.listBlinders(),
    chains: () => manager.listChains(),
    lastRelay: (id) => lastRelay.get(id) ?? null,
    caPem: opts.caPem,
    ttlMs: opts.blinderHealthTtlMs,
  });
  app.addHook('onClose', async () => health.close());
  registerChainRoutes(app, {
    manager,
    operator,
    caPem: opts.caPem,
    peerFingerprint,
    health,
    lastRelay,
  });
  if (opts.kms) registerKmsManagerRoutes(app, { kms: opts.kms, operator, appliance });

  // -- operator: audit -------------------------------------------------------------------------
  app.get<{
    Querystring: {
      afterSeq?: string;
      limit?: string;
      actor?: string;
      action?: string;
      outcome?: string;
    };
  }>(
    '/v1/audit',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            afterSeq: { type: 'string', pattern: '^[0-9]{1,15}$' },
            limit: { type: 'string', pattern: '^[0-9]{1,5}$' },
            actor: { type: 'string', maxLength: 128 },
            action: { type: 'string', maxLength: 64 },
            outcome: { type: 'string', enum: ['ok', 'refused', 'error'] },
          },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { entries: { type: 'array', items: auditEntrySchema } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      await operator(request);
      const q = request.query;
      const limit = q.limit === undefined ? 1000 : Number(q.limit);
      if (limit < 1 || limit > 10000) {
        throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'limit must be between 1 and 10000');
      }
      return {
        entries: await opts.store.listAudit({
          afterSeq: q.afterSeq === undefined ? 0 : Number(q.afterSeq),
          limit,
          actor: q.actor,
          action: q.action,
          outcome: q.outcome,
        }),
      };
    },
  );

  // -- appliances: sub-process I ---------------------------------------------------------------
  const keyOut = {
    type: 'object',
    additionalProperties: false,
    properties: {
      keyring: { type: 'string' },
      managerVersion: { type: 'integer' },
      mode: { type: 'string' },
      scheme: { type: 'string' },
      publicKey: { type: 'string' },
      signature: { type: 'string' },
      masterVersion: { type: 'integer' },
    },
  } as const;
  app.post<{
    Params: { name: string };
    Body: {
      managerVersion: number;
      masterVersion: number;
      r?: string;
      imported?: boolean;
      share?: { index: number; value: string; commitments: string[] };
    };
  }>(
    '/v1/keyrings/:name/keys',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['managerVersion', 'masterVersion'],
          properties: {
            managerVersion: version,
            masterVersion: version,
            r: b64u(64, 1),
            // Joining an existing master with imported key material (SPEC.md §5.7).
            imported: { type: 'boolean' },
            // threshold mode: this node's Shamir share of d_A with Feldman commitments (§5.6)
            share: {
              type: 'object',
              additionalProperties: false,
              required: ['index', 'value', 'commitments'],
              properties: {
                index: { type: 'integer', minimum: 1, maximum: 16 },
                value: b64u(32, 32),
                commitments: { type: 'array', minItems: 1, maxItems: 16, items: b64u(32, 32) },
              },
            },
          },
        },
        response: { 200: keyOut, ...errorResponses },
      },
    },
    async (request) => {
      const id = await appliance(request);
      const r = request.body.r === undefined ? undefined : fromB64u(request.body.r, 'r');
      const sh = request.body.share;
      const share = sh && {
        index: sh.index,
        value: fromB64u(sh.value, 'share value'),
        commitments: sh.commitments.map((c) => fromB64u(c, 'commitment')),
      };
      let out: Awaited<ReturnType<typeof manager.applianceKey>>;
      try {
        out = await manager.applianceKey(
          id,
          request.params.name,
          request.body.managerVersion,
          request.body.masterVersion,
          r,
          { imported: request.body.imported === true, share },
        );
      } finally {
        share?.value.fill(0);
      }
      return {
        ...out,
        publicKey: toB64u(out.publicKey),
        signature: toB64u(out.signature),
      };
    },
  );
  app.get<{ Params: { name: string } }>(
    '/v1/keyrings/:name/current',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        response: { 200: keyringOut, ...errorResponses },
      },
    },
    async (request) => {
      await appliance(request);
      const k = manager.listKeyrings().find((x) => x.name === request.params.name);
      if (!k) throw new BlindfoldError('ERR_NOT_FOUND', `no keyring named ${request.params.name}`);
      return withThreshold(k);
    },
  );
  app.post<{
    Params: { name: string };
    Body: { managerVersion: number; masterVersion: number; blinded: string };
  }>(
    '/v1/keyrings/:name/opt-setup',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['managerVersion', 'masterVersion', 'blinded'],
          properties: { managerVersion: version, masterVersion: version, blinded: b64u(70000, 1) },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { ok: { type: 'boolean' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const id = await appliance(request);
      await manager.optSetup(
        id,
        request.params.name,
        request.body.managerVersion,
        request.body.masterVersion,
        fromB64u(request.body.blinded, 'blinded'),
      );
      return { ok: true };
    },
  );
  app.post<{ Params: { name: string }; Body: { expected: number } }>(
    '/v1/keyrings/:name/master',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['expected'],
          properties: { expected: { type: 'integer', minimum: 0, maximum: 0xffffffff } },
        },
        response: { 200: keyringOut, ...errorResponses },
      },
    },
    async (request) =>
      manager.bumpMasterVersion(
        await appliance(request),
        request.params.name,
        request.body.expected,
      ),
  );

  app.post<{
    Params: { name: string };
    Body: {
      fromVersion: number;
      toVersion: number;
      masterVersion: number;
      delta?: string;
      blinded?: string;
    };
  }>(
    '/v1/keyrings/:name/reconceal',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['fromVersion', 'toVersion', 'masterVersion'],
          properties: {
            fromVersion: version,
            toVersion: version,
            masterVersion: version,
            delta: b64u(64, 1),
            blinded: b64u(70000, 1),
          },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { ciphertext: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const id = await appliance(request);
      const b = request.body;
      const out = await manager.reconceal(
        id,
        request.params.name,
        b.fromVersion,
        b.toVersion,
        b.masterVersion,
        {
          delta: b.delta === undefined ? undefined : fromB64u(b.delta, 'delta'),
          blinded: b.blinded === undefined ? undefined : fromB64u(b.blinded, 'blinded'),
        },
      );
      return out.ciphertext ? { ciphertext: toB64u(out.ciphertext) } : {};
    },
  );

  // -- appliances: sub-processes II and III ---------------------------------------------------------
  const itemFields = {
    keyring: keyringName,
    masterVersion: version,
    managerVersion: version,
    entropy: b64u(64),
    blinded: b64u(70000, 1),
  } as const;
  app.post<{
    Body: {
      keyring: string;
      itemId?: string;
      masterVersion: number;
      managerVersion?: number;
      entropy?: string;
      blinded?: string;
      ttlSeconds?: number;
    };
  }>(
    '/v1/items',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['keyring', 'masterVersion'],
          properties: {
            ...itemFields,
            itemId: b64u(16, 16),
            ttlSeconds: { type: 'integer', minimum: 0, maximum: 1e9 },
          },
        },
        response: {
          201: {
            type: 'object',
            additionalProperties: false,
            properties: {
              itemId: { type: 'string' },
              managerVersion: { type: 'integer' },
              ticket: { type: 'string' },
              answer: { type: 'string' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const id = await appliance(request);
      const b = request.body;
      const out = await manager.createItem(id, {
        keyring: b.keyring,
        itemId: b.itemId === undefined ? undefined : fromB64u(b.itemId, 'itemId'),
        masterVersion: b.masterVersion,
        managerVersion: b.managerVersion,
        entropy: fromB64u(b.entropy ?? '', 'entropy'),
        blinded: b.blinded === undefined ? undefined : fromB64u(b.blinded, 'blinded'),
        ttlSeconds: b.ttlSeconds,
      });
      return reply.status(201).send({
        itemId: toB64u(out.itemId),
        managerVersion: out.managerVersion,
        ticket: toB64u(out.ticket),
        answer: toB64u(out.answer),
      });
    },
  );

  const recoverIn = {
    type: 'object',
    additionalProperties: false,
    required: ['keyring', 'itemId', 'masterVersion', 'managerVersion', 'ticket'],
    properties: { ...itemFields, itemId: b64u(16, 16), ticket: b64u(512, 1) },
  } as const;
  type RecoverBody = {
    keyring: string;
    itemId: string;
    masterVersion: number;
    managerVersion: number;
    entropy?: string;
    ticket: string;
    blinded?: string;
  };
  const decodeRecover = (b: RecoverBody) => ({
    keyring: b.keyring,
    itemId: fromB64u(b.itemId, 'itemId'),
    masterVersion: b.masterVersion,
    managerVersion: b.managerVersion,
    entropy: fromB64u(b.entropy ?? '', 'entropy'),
    ticket: fromB64u(b.ticket, 'ticket'),
    blinded: b.blinded === undefined ? undefined : fromB64u(b.blinded, 'blinded'),
  });
  app.post<{ Body: RecoverBody }>(
    '/v1/recover',
    {
      schema: {
        body: recoverIn,
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { answer: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const id = await appliance(request);
      const out = await manager.recover(id, decodeRecover(request.body), String(request.id));
      return { answer: toB64u(out.answer) };
    },
  );
  app.post<{ Body: { requests: RecoverBody[] } }>(
    '/v1/recover/batch',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['requests'],
          properties: { requests: { type: 'array', minItems: 1, maxItems: 256, items: recoverIn } },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              results: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    answer: { type: 'string' },
                    error: {
                      type: 'object',
                      additionalProperties: false,
                      properties: { code: { type: 'string' }, message: { type: 'string' } },
                    },
                  },
                },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const id = await appliance(request);
      const results = await Promise.all(
        request.body.requests.map(async (r) => {
          try {
            const out = await manager.recover(id, decodeRecover(r), String(request.id));
            return { answer: toB64u(out.answer) };
          } catch (e) {
            if (e instanceof BlindfoldError && e.code !== 'ERR_INTERNAL') {
              return { error: { code: e.code, message: e.message } };
            }
            throw e;
          }
        }),
      );
      return { results };
    },
  );

  return app;
}

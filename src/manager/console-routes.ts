/**
 * Manager routes the web console needs beyond the CLI's (SPEC.md §7.1, §5.9): request history
 * for the charts, appliance presence, and the master-key import relay. Same rules as every
 * manager route: JSON schemas in and out, operators by bearer token, appliances by mutual TLS.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { fromB64u } from '../core/bytes.ts';
import { ERROR_CODES } from '../core/errors.ts';
import { b64u, errorResponses, keyringName, version } from '../server/common.ts';
import type { MetricsHistory } from '../server/history.ts';
import { MAX_SEALED_IMPORT_BYTES } from './imports.ts';
import type { Manager } from './manager.ts';

export interface ConsoleRouteOptions {
  manager: Manager;
  history: MetricsHistory;
  /** Last authenticated request per appliance id (this process only). */
  lastSeen: Map<string, number>;
  operator: (request: FastifyRequest) => Promise<string>;
  appliance: (request: FastifyRequest) => Promise<string>;
}

const applianceId = { type: 'string', pattern: '^ap-[0-9a-f]{16}$' } as const;
const importId = { type: 'string', pattern: '^im-[0-9a-f]{24}$' } as const;
const importProps = {
  id: { type: 'string' },
  applianceId: { type: 'string' },
  keyring: { type: 'string' },
  masterVersion: { type: 'integer' },
  managerVersion: { type: 'integer' },
  status: { type: 'string' },
  code: { type: ['string', 'null'] },
  createdBy: { type: 'string' },
  createdAt: { type: 'integer' },
  updatedAt: { type: 'integer' },
} as const;
const importOut = { type: 'object', additionalProperties: false, properties: importProps } as const;
const okOut = {
  type: 'object',
  additionalProperties: false,
  properties: { ok: { type: 'boolean' } },
} as const;

export function registerConsoleRoutes(app: FastifyInstance, o: ConsoleRouteOptions): void {
  const { manager, operator, appliance } = o;
  const imports = manager.imports;

  app.get<{ Querystring: { since?: string } }>(
    '/v1/metrics/history',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { since: { type: 'string', pattern: '^[0-9]{1,15}$' } },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              intervalMs: { type: 'integer' },
              now: { type: 'integer' },
              samples: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    ts: { type: 'integer' },
                    requests: { type: 'integer' },
                    errors4xx: { type: 'integer' },
                    errors5xx: { type: 'integer' },
                    latencyMeanMs: { type: 'number' },
                    latencyP95Ms: { type: 'number' },
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
      await operator(request);
      const since = request.query.since === undefined ? 0 : Number(request.query.since);
      return { intervalMs: o.history.intervalMs, now: Date.now(), samples: o.history.list(since) };
    },
  );

  app.get(
    '/v1/appliances/presence',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              now: { type: 'integer' },
              appliances: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    id: { type: 'string' },
                    lastSeenAt: { type: ['integer', 'null'] },
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
      await operator(request);
      return {
        now: Date.now(),
        appliances: manager
          .listAppliances()
          .map((a) => ({ id: a.id, lastSeenAt: o.lastSeen.get(a.id) ?? null })),
      };
    },
  );

  // -- master-key import (SPEC.md §5.9) ---------------------------------------------------------
  app.put<{ Body: { publicKey: string; signature: string } }>(
    '/v1/import-key',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['publicKey', 'signature'],
          properties: { publicKey: b64u(32, 32), signature: b64u(64, 64) },
        },
        response: { 200: okOut, ...errorResponses },
      },
    },
    async (request) => {
      const id = await appliance(request);
      await imports.publishKey(
        id,
        fromB64u(request.body.publicKey, 'publicKey'),
        fromB64u(request.body.signature, 'signature'),
      );
      return { ok: true };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/appliances/:id/import-key',
    {
      schema: {
        params: { type: 'object', properties: { id: applianceId }, required: ['id'] },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              applianceId: { type: 'string' },
              publicKey: { type: 'string' },
              signature: { type: 'string' },
              fingerprint: { type: 'string' },
              identityKey: { type: 'string' },
              identityFingerprint: { type: 'string' },
              createdAt: { type: 'integer' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      await operator(request);
      return imports.importKey(request.params.id);
    },
  );

  app.post<{ Params: { name: string }; Body: { applianceId: string; expected: number } }>(
    '/v1/keyrings/:name/imports/prepare',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['applianceId', 'expected'],
          properties: {
            applianceId,
            expected: { type: 'integer', minimum: 0, maximum: 0xfffffffe },
          },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              applianceId: { type: 'string' },
              keyring: { type: 'string' },
              mode: { type: 'string' },
              scheme: { type: 'string' },
              masterVersion: { type: 'integer' },
              managerVersion: { type: 'integer' },
              publicKey: { type: 'string' },
              signature: { type: 'string' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const actor = await operator(request);
      return imports.prepare(
        actor,
        request.params.name,
        request.body.applianceId,
        request.body.expected,
      );
    },
  );

  app.post<{
    Params: { name: string };
    Body: {
      applianceId: string;
      masterVersion: number;
      managerVersion: number;
      sealed: string;
      r?: string;
    };
  }>(
    '/v1/keyrings/:name/imports',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['applianceId', 'masterVersion', 'managerVersion', 'sealed'],
          properties: {
            applianceId,
            masterVersion: version,
            managerVersion: version,
            sealed: b64u(MAX_SEALED_IMPORT_BYTES, 49),
            r: b64u(64, 1),
          },
        },
        response: { 201: importOut, ...errorResponses },
      },
    },
    async (request, reply) => {
      const actor = await operator(request);
      const b = request.body;
      const out = await imports.submit(actor, request.params.name, {
        applianceId: b.applianceId,
        masterVersion: b.masterVersion,
        managerVersion: b.managerVersion,
        sealed: fromB64u(b.sealed, 'sealed'),
        r: b.r === undefined ? undefined : fromB64u(b.r, 'r'),
      });
      return reply.status(201).send(out);
    },
  );

  app.get(
    '/v1/imports',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { imports: { type: 'array', items: importOut } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      await operator(request);
      return { imports: await imports.list() };
    },
  );

  app.get(
    '/v1/imports/pending',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              imports: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  properties: { ...importProps, sealed: { type: 'string' } },
                },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => ({ imports: await imports.pendingFor(await appliance(request)) }),
  );

  app.post<{ Params: { id: string }; Body: { code?: string } }>(
    '/v1/imports/:id/result',
    {
      schema: {
        params: { type: 'object', properties: { id: importId }, required: ['id'] },
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { code: { type: 'string', enum: [...ERROR_CODES] } },
        },
        response: { 200: okOut, ...errorResponses },
      },
    },
    async (request) => {
      const id = await appliance(request);
      await imports.finish(id, request.params.id, request.body?.code ?? null);
      return { ok: true };
    },
  );
}

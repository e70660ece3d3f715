/**
 * The manager's KMS routes (SPEC.md §11.7): the operator manages applications, tokens and key
 * policies; appliances relay applications' calls with the application's token, which the manager
 * checks (KmsService.authorize) before it does any work for them.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { fromB64u, toB64u } from '../core/bytes.ts';
import { b64u, errorResponses, keyringName, version } from '../server/common.ts';
import { KEY_OPERATIONS, type KmsService, SCOPES } from './service.ts';

export interface KmsManagerRouteDeps {
  kms: KmsService;
  operator: (request: FastifyRequest) => Promise<string>;
  appliance: (request: FastifyRequest) => Promise<string>;
}

const obj = (properties: Record<string, unknown>, required: string[] = []) =>
  ({ type: 'object', additionalProperties: false, properties, required }) as const;

const appId = { type: 'string', pattern: '^app-[0-9a-f]{16}$' } as const;
const tokenId = { type: 'string', pattern: '^tok-[0-9a-f]{16}$' } as const;
const appToken = { type: 'string', minLength: 8, maxLength: 128 } as const;

const applicationOut = obj({
  id: { type: 'string' },
  name: { type: 'string' },
  status: { type: 'string' },
  createdAt: { type: 'integer' },
  updatedAt: { type: 'integer' },
});
const tokenOut = obj({
  id: { type: 'string' },
  token: { type: 'string' },
  applicationId: { type: 'string' },
  scopes: { type: 'array', items: { type: 'string' } },
  expiresAt: { type: 'integer' },
  createdAt: { type: 'integer' },
  revokedAt: { type: ['integer', 'null'] },
});
const grantsOut = obj({
  grants: {
    type: 'array',
    items: obj({
      applicationId: { type: 'string' },
      operations: { type: 'array', items: { type: 'string' } },
      updatedAt: { type: 'integer' },
    }),
  },
});
export const kmsKeyringOut = obj({
  name: { type: 'string' },
  mode: { type: 'string' },
  scheme: { type: 'string' },
  masterVersion: { type: 'integer' },
  managerVersion: { type: 'integer' },
  status: { type: 'string' },
  createdAt: { type: 'integer' },
  updatedAt: { type: 'integer' },
  deletionAt: { type: ['integer', 'null'] },
  versions: {
    type: 'array',
    items: obj({
      managerVersion: { type: 'integer' },
      createdAt: { type: 'integer' },
      retiredAt: { type: ['integer', 'null'] },
    }),
  },
});

const nameParams = obj({ name: keyringName }, ['name']);

export function registerKmsManagerRoutes(app: FastifyInstance, d: KmsManagerRouteDeps): void {
  const { kms, operator, appliance } = d;

  // -- operator ---------------------------------------------------------------------------------
  app.post<{ Body: { name: string } }>(
    '/v1/kms/applications',
    {
      schema: {
        body: obj({ name: { type: 'string', minLength: 1, maxLength: 64 } }, ['name']),
        response: { 201: applicationOut, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply
        .status(201)
        .send(await kms.createApplication(await operator(request), request.body.name)),
  );
  app.get(
    '/v1/kms/applications',
    {
      schema: {
        response: {
          200: obj({ applications: { type: 'array', items: applicationOut } }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      await operator(request);
      return { applications: await kms.listApplications() };
    },
  );
  app.post<{ Params: { id: string }; Body: { status: 'enabled' | 'disabled' } }>(
    '/v1/kms/applications/:id/status',
    {
      schema: {
        params: obj({ id: appId }, ['id']),
        body: obj({ status: { type: 'string', enum: ['enabled', 'disabled'] } }, ['status']),
        response: { 200: applicationOut, ...errorResponses },
      },
    },
    async (request) =>
      kms.setApplicationStatus(await operator(request), request.params.id, request.body.status),
  );
  app.post<{ Params: { id: string }; Body: { scopes: string[]; ttlSeconds?: number } }>(
    '/v1/kms/applications/:id/tokens',
    {
      schema: {
        params: obj({ id: appId }, ['id']),
        body: obj(
          {
            scopes: {
              type: 'array',
              minItems: 1,
              maxItems: SCOPES.length,
              items: { type: 'string', enum: [...SCOPES] },
            },
            ttlSeconds: { type: 'integer', minimum: 0, maximum: 1e9 },
          },
          ['scopes'],
        ),
        response: { 201: tokenOut, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply
        .status(201)
        .send(
          await kms.createToken(
            await operator(request),
            request.params.id,
            request.body.scopes,
            request.body.ttlSeconds,
          ),
        ),
  );
  app.get<{ Params: { id: string } }>(
    '/v1/kms/applications/:id/tokens',
    {
      schema: {
        params: obj({ id: appId }, ['id']),
        response: { 200: obj({ tokens: { type: 'array', items: tokenOut } }), ...errorResponses },
      },
    },
    async (request) => {
      await operator(request);
      return { tokens: await kms.listTokens(request.params.id) };
    },
  );
  app.post<{ Params: { id: string } }>(
    '/v1/kms/tokens/:id/revoke',
    {
      schema: {
        params: obj({ id: tokenId }, ['id']),
        response: { 200: obj({ revoked: { type: 'string' } }), ...errorResponses },
      },
    },
    async (request) => {
      await kms.revokeToken(await operator(request), request.params.id);
      return { revoked: request.params.id };
    },
  );
  app.put<{
    Params: { name: string };
    Body: { grants: { applicationId: string; operations: string[] }[] };
  }>(
    '/v1/kms/keys/:name/policy',
    {
      schema: {
        params: nameParams,
        body: obj(
          {
            grants: {
              type: 'array',
              maxItems: 256,
              items: obj(
                {
                  applicationId: appId,
                  operations: {
                    type: 'array',
                    maxItems: KEY_OPERATIONS.length,
                    items: { type: 'string', enum: [...KEY_OPERATIONS] },
                  },
                },
                ['applicationId', 'operations'],
              ),
            },
          },
          ['grants'],
        ),
        response: { 200: grantsOut, ...errorResponses },
      },
    },
    async (request) => ({
      grants: await kms.putPolicy(
        await operator(request),
        request.params.name,
        request.body.grants,
      ),
    }),
  );
  app.get<{ Params: { name: string } }>(
    '/v1/kms/keys/:name/policy',
    { schema: { params: nameParams, response: { 200: grantsOut, ...errorResponses } } },
    async (request) => {
      await operator(request);
      return { grants: await kms.getPolicy(request.params.name) };
    },
  );

  // -- appliances relaying application calls ------------------------------------------------------
  const kmsFields = {
    appToken,
    operation: { type: 'string', maxLength: 32 },
    contextHash: b64u(32, 32),
    clientKey: b64u(32, 32),
  } as const;
  const itemFields = {
    keyring: keyringName,
    masterVersion: version,
    managerVersion: version,
    entropy: b64u(64),
    blinded: b64u(70000, 1),
  } as const;

  app.post<{
    Body: {
      appToken: string;
      operation: 'generate-data-key' | 'encrypt' | 're-encrypt';
      contextHash: string;
      clientKey?: string;
      keyring: string;
      itemId: string;
      masterVersion: number;
      managerVersion?: number;
      entropy: string;
      blinded?: string;
    };
  }>(
    '/v1/kms/items',
    {
      schema: {
        body: obj(
          {
            ...kmsFields,
            operation: { type: 'string', enum: ['generate-data-key', 'encrypt', 're-encrypt'] },
            ...itemFields,
            itemId: b64u(16, 16),
          },
          ['appToken', 'operation', 'contextHash', 'keyring', 'itemId', 'masterVersion', 'entropy'],
        ),
        response: {
          201: obj({
            itemId: { type: 'string' },
            managerVersion: { type: 'integer' },
            ticket: { type: 'string' },
            answer: { type: 'string' },
          }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const id = await appliance(request);
      const b = request.body;
      const out = await kms.createItem(
        id,
        b.appToken,
        b.operation,
        fromB64u(b.contextHash, 'contextHash'),
        {
          keyring: b.keyring,
          itemId: fromB64u(b.itemId, 'itemId'),
          masterVersion: b.masterVersion,
          managerVersion: b.managerVersion,
          entropy: fromB64u(b.entropy, 'entropy'),
          blinded: b.blinded === undefined ? undefined : fromB64u(b.blinded, 'blinded'),
          clientKey: b.clientKey === undefined ? undefined : fromB64u(b.clientKey, 'clientKey'),
        },
      );
      return reply.status(201).send({
        itemId: toB64u(out.itemId),
        managerVersion: out.managerVersion,
        ticket: toB64u(out.ticket),
        answer: toB64u(out.answer),
      });
    },
  );

  app.post<{
    Body: {
      appToken: string;
      operation: 'decrypt' | 're-encrypt';
      contextHash: string;
      clientKey?: string;
      keyring: string;
      itemId: string;
      masterVersion: number;
      managerVersion: number;
      entropy: string;
      ticket: string;
      blinded?: string;
    };
  }>(
    '/v1/kms/recover',
    {
      schema: {
        body: obj(
          {
            ...kmsFields,
            operation: { type: 'string', enum: ['decrypt', 're-encrypt'] },
            ...itemFields,
            itemId: b64u(16, 16),
            ticket: b64u(512, 1),
          },
          [
            'appToken',
            'operation',
            'contextHash',
            'keyring',
            'itemId',
            'masterVersion',
            'managerVersion',
            'entropy',
            'ticket',
          ],
        ),
        response: { 200: obj({ answer: { type: 'string' } }), ...errorResponses },
      },
    },
    async (request) => {
      const id = await appliance(request);
      const b = request.body;
      const out = await kms.recover(
        id,
        b.appToken,
        b.operation,
        fromB64u(b.contextHash, 'contextHash'),
        {
          keyring: b.keyring,
          itemId: fromB64u(b.itemId, 'itemId'),
          masterVersion: b.masterVersion,
          managerVersion: b.managerVersion,
          entropy: fromB64u(b.entropy, 'entropy'),
          ticket: fromB64u(b.ticket, 'ticket'),
          blinded: b.blinded === undefined ? undefined : fromB64u(b.blinded, 'blinded'),
          clientKey: b.clientKey === undefined ? undefined : fromB64u(b.clientKey, 'clientKey'),
        },
        String(request.id),
      );
      return { answer: toB64u(out.answer) };
    },
  );

  app.post<{
    Body: {
      appToken: string;
      action:
        | 'create'
        | 'list'
        | 'describe'
        | 'enable'
        | 'disable'
        | 'schedule-deletion'
        | 'cancel-deletion'
        | 'rotate';
      keyring?: string;
      mode?: string;
      scheme?: string;
      pendingDays?: number;
    };
  }>(
    '/v1/kms/keys',
    {
      schema: {
        body: obj(
          {
            appToken,
            action: {
              type: 'string',
              enum: [
                'create',
                'list',
                'describe',
                'enable',
                'disable',
                'schedule-deletion',
                'cancel-deletion',
                'rotate',
              ],
            },
            keyring: keyringName,
            mode: { type: 'string', maxLength: 32 },
            scheme: { type: 'string', maxLength: 32 },
            pendingDays: { type: 'integer', minimum: 7, maximum: 30 },
          },
          ['appToken', 'action'],
        ),
        response: {
          200: obj({ keys: { type: 'array', items: kmsKeyringOut }, key: kmsKeyringOut }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      await appliance(request);
      const b = request.body;
      if (b.action === 'list') return { keys: await kms.listKeys(b.appToken) };
      const name = b.keyring ?? '';
      if (b.action === 'create') {
        return { key: await kms.createKey(b.appToken, name, b.mode ?? 'hom2-opt', b.scheme) };
      }
      if (b.action === 'describe') return { key: await kms.describeKey(b.appToken, name) };
      return { key: await kms.manageKey(b.appToken, name, b.action, b.pendingDays) };
    },
  );
}

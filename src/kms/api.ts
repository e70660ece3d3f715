/**
 * The KMS API for applications, version 1 (SPEC.md §11), served by the appliance under /kms/v1.
 * One table of routes (KMS_ROUTES) is both what fastify registers (with its JSON schemas on input
 * and output) and what the OpenAPI document (/kms/v1/openapi.json) and the rendered reference
 * (/kms/v1/docs) are generated from, so the documentation cannot drift from the service.
 *
 * Authentication: `Authorization: Bearer bf-app-…`. The appliance does not judge the token: it
 * relays it with the item request, and the manager checks token, scope, key policy, key state and
 * rate before any work (src/kms/service.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Appliance } from '../appliance/appliance.ts';
import { fromB64u, toB64u, zeroize } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import {
  CONTEXT_MAX_KEY,
  CONTEXT_MAX_PAIRS,
  CONTEXT_MAX_VALUE,
  type EncryptionContext,
  MAX_BLOB_BYTES,
  MAX_ENCRYPT_BYTES,
} from '../core/kms.ts';
import { bearerToken, errorSchema, STATUS } from '../server/common.ts';
import { KmsDataPlane } from './dataplane.ts';
import { renderReference } from './docs.ts';

export const KMS_PREFIX = '/kms/v1';
/** JSON bodies of the KMS API are small: 64 KiB (ERR_TOO_LARGE beyond). */
export const KMS_BODY_LIMIT = 64 * 1024;

type Json = Record<string, unknown>;
const obj = (properties: Json, required: string[] = [], description?: string) => ({
  type: 'object',
  additionalProperties: false,
  properties,
  required,
  ...(description ? { description } : {}),
});
const b64 = (maxBytes: number, description: string, minBytes = 0) => ({
  type: 'string',
  pattern: '^[A-Za-z0-9_-]*$',
  minLength: Math.ceil((minBytes * 4) / 3),
  maxLength: Math.ceil((maxBytes * 4) / 3),
  description: `${description} (base64url, no padding)`,
});

const keyId = {
  type: 'string',
  pattern: '^[a-z0-9._-]{1,64}$',
  description: 'key id: 1..64 characters of a-z, 0-9, ".", "_", "-"',
};
const context = {
  type: 'object',
  maxProperties: CONTEXT_MAX_PAIRS,
  propertyNames: { minLength: 1, maxLength: CONTEXT_MAX_KEY },
  additionalProperties: { type: 'string', maxLength: CONTEXT_MAX_VALUE },
  description:
    'encryption context: string pairs bound to the ciphertext as authenticated data; decryption must present the same pairs',
};
const clientKey = b64(32, 'client-blinded key U = u·B (ristretto255)', 32);
// Twice the limit in the schema: the handler answers ERR_TOO_LARGE (413) with the real limit.
const blob = b64(2 * MAX_BLOB_BYTES, 'KMS ciphertext blob (SPEC.md §11.4)', 8);
const versionFields = {
  keyId: { type: 'string', description: 'the key of the ciphertext' },
  keyVersion: { type: 'integer', description: 'master-key version that made the ciphertext' },
  managerVersion: { type: 'integer', description: 'manager-key version of the ciphertext' },
};
const keyOut = obj({
  keyId: { type: 'string' },
  mode: { type: 'string' },
  scheme: { type: 'string' },
  status: { type: 'string', enum: ['enabled', 'disabled', 'deleted'] },
  keyVersion: { type: 'integer', description: 'current master-key version (rotation adds one)' },
  managerVersion: { type: 'integer' },
  clientBlinded: {
    type: 'boolean',
    description: 'whether the key supports client-blinded data keys (ec-elgamal, hom2/hom2-opt)',
  },
  deletionAt: { type: ['integer', 'null'], description: 'scheduled deletion time (ms) or null' },
  createdAt: { type: 'integer' },
  updatedAt: { type: 'integer' },
  versions: {
    type: 'array',
    items: obj({
      managerVersion: { type: 'integer' },
      createdAt: { type: 'integer' },
      retiredAt: { type: ['integer', 'null'] },
    }),
  },
});

export interface KmsRoute {
  method: 'GET' | 'POST' | 'DELETE';
  path: string; // fastify syntax, below KMS_PREFIX
  operationId: string;
  summary: string;
  description: string;
  /** The token scope (and key grant) the call needs; undefined = no authentication. */
  scope?: string;
  params?: Json;
  body?: Json;
  status: number;
  response: Json;
  errors: string[];
}

const keyParams = obj({ keyId }, ['keyId']);
const COMMON_ERRORS = [
  'ERR_INVALID_ARGUMENT',
  'ERR_UNAUTHENTICATED',
  'ERR_FORBIDDEN',
  'ERR_RATE_LIMITED',
  'ERR_TOO_LARGE',
  'ERR_UNAVAILABLE',
];

export const KMS_ROUTES: KmsRoute[] = [
  {
    method: 'POST',
    path: '/keys',
    operationId: 'CreateKey',
    summary: 'Create a key',
    description:
      'Creates a key (a keyring) and its first master-key version, concealed on this appliance. The calling application is granted every operation on it.',
    scope: 'create-key',
    body: obj(
      {
        keyId,
        mode: {
          type: 'string',
          enum: ['split', 'hom2', 'hom2-opt'],
          description: 'default hom2-opt',
        },
        scheme: { type: 'string', maxLength: 32, description: 'default ec-elgamal (split: xor)' },
      },
      ['keyId'],
    ),
    status: 201,
    response: obj({ key: keyOut }),
    errors: [...COMMON_ERRORS, 'ERR_CONFLICT', 'ERR_UNSUPPORTED_SCHEME'],
  },
  {
    method: 'GET',
    path: '/keys',
    operationId: 'ListKeys',
    summary: 'List keys',
    description: 'The keys on whose policy the calling application appears.',
    scope: 'describe',
    status: 200,
    response: obj({ keys: { type: 'array', items: keyOut } }),
    errors: COMMON_ERRORS,
  },
  {
    method: 'GET',
    path: '/keys/:keyId',
    operationId: 'DescribeKey',
    summary: 'Describe a key',
    description: 'Key metadata and its manager-key versions.',
    scope: 'describe',
    params: keyParams,
    status: 200,
    response: obj({ key: keyOut }),
    errors: [...COMMON_ERRORS, 'ERR_NOT_FOUND'],
  },
  ...(['enable', 'disable', 'rotate'] as const).map(
    (action): KmsRoute => ({
      method: 'POST',
      path: `/keys/:keyId/${action}`,
      operationId: `${action[0]!.toUpperCase()}${action.slice(1)}Key`,
      summary: `${action[0]!.toUpperCase()}${action.slice(1)} a key`,
      description:
        action === 'rotate'
          ? 'Adds a master-key version: new ciphertexts use it, older ones keep opening.'
          : `${action === 'enable' ? 'Enables' : 'Disables'} the key; a disabled key refuses every cryptographic operation.`,
      scope: 'manage',
      params: keyParams,
      status: 200,
      response: obj({ key: keyOut }),
      errors: [...COMMON_ERRORS, 'ERR_NOT_FOUND', 'ERR_CONFLICT'],
    }),
  ),
  {
    method: 'POST',
    path: '/keys/:keyId/deletion',
    operationId: 'ScheduleKeyDeletion',
    summary: 'Schedule deletion of a key',
    description:
      'The key becomes unusable at once; after pendingDays (7..30, default 30) its secrets are destroyed and every ciphertext under it is lost. Cancellable until then.',
    scope: 'manage',
    params: keyParams,
    body: obj({ pendingDays: { type: 'integer', minimum: 7, maximum: 30 } }),
    status: 200,
    response: obj({ key: keyOut }),
    errors: [...COMMON_ERRORS, 'ERR_NOT_FOUND', 'ERR_CONFLICT'],
  },
  {
    method: 'DELETE',
    path: '/keys/:keyId/deletion',
    operationId: 'CancelKeyDeletion',
    summary: 'Cancel a scheduled deletion',
    description: 'The key is usable again as before.',
    scope: 'manage',
    params: keyParams,
    status: 200,
    response: obj({ key: keyOut }),
    errors: [...COMMON_ERRORS, 'ERR_NOT_FOUND', 'ERR_CONFLICT'],
  },
  {
    method: 'POST',
    path: '/generate-data-key',
    operationId: 'GenerateDataKey',
    summary: 'Generate a data key',
    description:
      'A fresh 32-byte data key and its wrapped copy (ciphertextBlob). With clientKey (client-blinded, T7) the key is returned only as clientCiphertext = Enc_U(S); no Blindfold component ever holds it, and the client derives the data key itself (SPEC.md §5.8). With includePlaintext false only the wrapped copy is returned.',
    scope: 'generate-data-key',
    body: obj(
      {
        keyId,
        context,
        clientKey,
        includePlaintext: { type: 'boolean', description: 'default true' },
      },
      ['keyId'],
    ),
    status: 200,
    response: obj({
      ...versionFields,
      ciphertextBlob: { type: 'string', description: 'the wrapped data key (base64url, §11.4)' },
      plaintext: { type: 'string', description: 'the data key (base64url)' },
      clientCiphertext: { type: 'string', description: 'Enc_U(S), 64 bytes (base64url)' },
    }),
    errors: [
      ...COMMON_ERRORS,
      'ERR_NOT_FOUND',
      'ERR_UNSUPPORTED_SCHEME',
      'ERR_IDENTITY',
      'ERR_DECODE',
    ],
  },
  {
    method: 'POST',
    path: '/decrypt',
    operationId: 'Decrypt',
    summary: 'Decrypt a ciphertext blob',
    description:
      'Returns the wrapped data key or data. The context must equal the one used at encryption. A client-blinded blob needs clientKey and returns clientCiphertext.',
    scope: 'decrypt',
    body: obj({ ciphertextBlob: blob, context, keyId, clientKey }, ['ciphertextBlob']),
    status: 200,
    response: obj({
      ...versionFields,
      plaintext: { type: 'string' },
      clientCiphertext: { type: 'string' },
    }),
    errors: [
      ...COMMON_ERRORS,
      'ERR_DECRYPT',
      'ERR_DECODE',
      'ERR_NOT_FOUND',
      'ERR_TICKET_EXPIRED',
      'ERR_UNSUPPORTED_VERSION',
    ],
  },
  {
    method: 'POST',
    path: '/encrypt',
    operationId: 'Encrypt',
    summary: 'Encrypt a small payload',
    description: `Encrypts up to ${MAX_ENCRYPT_BYTES} bytes under the key; larger data belongs in an envelope (GenerateDataKey).`,
    scope: 'encrypt',
    body: obj({ keyId, context, plaintext: b64(2 * MAX_ENCRYPT_BYTES, 'the bytes to encrypt') }, [
      'keyId',
      'plaintext',
    ]),
    status: 200,
    response: obj({
      ...versionFields,
      ciphertextBlob: { type: 'string', description: 'KMS ciphertext blob (base64url)' },
    }),
    errors: [...COMMON_ERRORS, 'ERR_NOT_FOUND'],
  },
  {
    method: 'POST',
    path: '/re-encrypt',
    operationId: 'ReEncrypt',
    summary: 'Re-encrypt under another key or version',
    description:
      'Decrypts the blob and encrypts its content under the destination key (its newest version), inside the service: the plaintext never leaves it. Needs re-encrypt on both keys.',
    scope: 're-encrypt',
    body: obj(
      {
        ciphertextBlob: blob,
        sourceContext: context,
        sourceKeyId: keyId,
        destinationKeyId: keyId,
        destinationContext: context,
      },
      ['ciphertextBlob', 'destinationKeyId'],
    ),
    status: 200,
    response: obj({
      ...versionFields,
      sourceKeyId: { type: 'string' },
      ciphertextBlob: { type: 'string' },
    }),
    errors: [...COMMON_ERRORS, 'ERR_DECRYPT', 'ERR_DECODE', 'ERR_NOT_FOUND'],
  },
];

// -- OpenAPI ----------------------------------------------------------------------------------------

export function openApiDocument(): Json {
  const paths: Record<string, Json> = {};
  for (const r of KMS_ROUTES) {
    const p = KMS_PREFIX + r.path.replace(/:([A-Za-z]+)/g, '{$1}');
    const params = r.params
      ? Object.entries((r.params as { properties: Json }).properties).map(([name, schema]) => ({
          name,
          in: 'path',
          required: true,
          schema,
        }))
      : undefined;
    const errorStatuses = [...new Set(r.errors.map((c) => STATUS[c as keyof typeof STATUS]))];
    paths[p] = {
      ...(paths[p] ?? {}),
      [r.method.toLowerCase()]: {
        operationId: r.operationId,
        summary: r.summary,
        description: `${r.description}\n\nScope and key grant: \`${r.scope}\`. Error codes: ${r.errors.join(', ')}.`,
        ...(r.scope ? { security: [{ applicationToken: [r.scope] }] } : {}),
        ...(params ? { parameters: params } : {}),
        ...(r.body
          ? { requestBody: { required: true, content: { 'application/json': { schema: r.body } } } }
          : {}),
        responses: {
          [String(r.status)]: {
            description: 'success',
            content: { 'application/json': { schema: r.response } },
          },
          ...Object.fromEntries(
            errorStatuses.map((s) => [
              String(s),
              {
                description: r.errors
                  .filter((c) => STATUS[c as keyof typeof STATUS] === s)
                  .join(', '),
                content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
              },
            ]),
          ),
        },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Blindfold KMS API',
      version: '1',
      description:
        'Keys for applications from a key manager that never sees them (SPEC.md §11). Authenticate with `Authorization: Bearer bf-app-…`, a token the operator issues to an application with scopes; each key has a policy saying which application may do which operation. Errors are `{error: {code, message, requestId}}` with a stable code; 429 answers carry Retry-After.',
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: {
        applicationToken: { type: 'http', scheme: 'bearer', description: 'bf-app-… token' },
      },
      schemas: { Error: errorSchema },
    },
    paths,
  };
}

// -- registration on the appliance's server ----------------------------------------------------------

export interface KmsApiOptions {
  appliance: Appliance;
  /** Browser origins allowed to call the API (CORS); none by default. */
  corsOrigins?: string[];
}

function bearer(request: FastifyRequest): string {
  const token = bearerToken(request);
  if (!token.startsWith('bf-app-') || token.length > 128) {
    throw new BlindfoldError(
      'ERR_UNAUTHENTICATED',
      'send Authorization: Bearer <application token "bf-app-…" issued by the operator>',
    );
  }
  return token;
}

function keyRecord(k: Json): Json {
  const mode = k.mode as string;
  return {
    keyId: k.name,
    mode,
    scheme: k.scheme,
    status: k.status,
    keyVersion: k.masterVersion,
    managerVersion: k.managerVersion,
    clientBlinded: k.scheme === 'ec-elgamal' && (mode === 'hom2' || mode === 'hom2-opt'),
    deletionAt: k.deletionAt ?? null,
    createdAt: k.createdAt,
    updatedAt: k.updatedAt,
    ...(k.versions ? { versions: k.versions } : {}),
  };
}

const b64in = (s: string | undefined, what: string) =>
  s === undefined ? undefined : fromB64u(s, what);

export function registerKmsApi(app: FastifyInstance, o: KmsApiOptions): void {
  const dp = new KmsDataPlane(o.appliance);
  const manager = o.appliance.client;
  const keysCall = async (token: string, body: Json) =>
    manager.request<{ key?: Json; keys?: Json[] }>('POST', '/v1/kms/keys', {
      appToken: token,
      ...body,
    });

  const cors = new Set(o.corsOrigins ?? []);
  const allowCors = (request: FastifyRequest, reply: FastifyReply) => {
    const origin = request.headers.origin;
    if (typeof origin === 'string' && cors.has(origin)) {
      void reply.header('access-control-allow-origin', origin);
      void reply.header('vary', 'origin');
      void reply.header('access-control-expose-headers', 'retry-after');
    }
  };
  app.addHook('onRequest', async (request, reply) => {
    if (request.url.startsWith(`${KMS_PREFIX}/`)) allowCors(request, reply);
  });
  app.options(`${KMS_PREFIX}/*`, async (request, reply) => {
    allowCors(request, reply);
    void reply.header('access-control-allow-methods', 'GET, POST, DELETE');
    void reply.header('access-control-allow-headers', 'authorization, content-type');
    void reply.header('access-control-max-age', '600');
    return reply.status(204).send();
  });

  const handlers: Record<string, (request: FastifyRequest, token: string) => Promise<Json>> = {
    CreateKey: async (request, token) => {
      const b = request.body as { keyId: string; mode?: string; scheme?: string };
      const out = await keysCall(token, {
        action: 'create',
        keyring: b.keyId,
        mode: b.mode ?? 'hom2-opt',
        ...(b.scheme ? { scheme: b.scheme } : {}),
      });
      // The first master is made and concealed here at once (SPEC.md §5, master generation).
      await o.appliance.initKeyring(b.keyId);
      return { key: keyRecord({ ...out.key!, ...masterOf(o.appliance, b.keyId) }) };
    },
    ListKeys: async (_request, token) => {
      const out = await keysCall(token, { action: 'list' });
      return { keys: out.keys!.map(keyRecord) };
    },
    DescribeKey: async (request, token) => {
      const out = await keysCall(token, { action: 'describe', keyring: keyParam(request) });
      return { key: keyRecord(out.key!) };
    },
    EnableKey: async (request, token) => manage(token, keyParam(request), 'enable'),
    DisableKey: async (request, token) => manage(token, keyParam(request), 'disable'),
    RotateKey: async (request, token) => {
      const id = keyParam(request);
      const out = await keysCall(token, { action: 'rotate', keyring: id });
      await o.appliance.initKeyring(id);
      return { key: keyRecord({ ...out.key!, ...masterOf(o.appliance, id) }) };
    },
    ScheduleKeyDeletion: async (request, token) => {
      const b = (request.body ?? {}) as { pendingDays?: number };
      return manage(token, keyParam(request), 'schedule-deletion', b.pendingDays);
    },
    CancelKeyDeletion: async (request, token) =>
      manage(token, keyParam(request), 'cancel-deletion'),
    GenerateDataKey: async (request, token) => {
      const b = request.body as {
        keyId: string;
        context?: EncryptionContext;
        clientKey?: string;
        includePlaintext?: boolean;
      };
      const out = await dp.generateDataKey(
        token,
        b.keyId,
        b.context ?? {},
        b64in(b.clientKey, 'clientKey'),
      );
      const res: Json = {
        keyId: out.keyId,
        keyVersion: out.keyVersion,
        managerVersion: out.managerVersion,
        ciphertextBlob: toB64u(out.blob),
      };
      if (out.clientCiphertext) res.clientCiphertext = toB64u(out.clientCiphertext);
      if (out.plaintext) {
        if (b.includePlaintext !== false) res.plaintext = toB64u(out.plaintext);
        zeroize(out.plaintext);
      }
      return res;
    },
    Decrypt: async (request, token) => {
      const b = request.body as {
        ciphertextBlob: string;
        context?: EncryptionContext;
        keyId?: string;
        clientKey?: string;
      };
      const out = await dp.decrypt(
        token,
        fromB64u(b.ciphertextBlob, 'ciphertextBlob'),
        b.context ?? {},
        {
          keyId: b.keyId,
          clientKey: b64in(b.clientKey, 'clientKey'),
        },
      );
      const res: Json = {
        keyId: out.keyId,
        keyVersion: out.keyVersion,
        managerVersion: out.managerVersion,
      };
      if (out.clientCiphertext) res.clientCiphertext = toB64u(out.clientCiphertext);
      if (out.plaintext) {
        res.plaintext = toB64u(out.plaintext);
        zeroize(out.plaintext);
      }
      return res;
    },
    Encrypt: async (request, token) => {
      const b = request.body as { keyId: string; context?: EncryptionContext; plaintext: string };
      const data = fromB64u(b.plaintext, 'plaintext');
      try {
        const out = await dp.encrypt(token, b.keyId, b.context ?? {}, data);
        return {
          keyId: out.keyId,
          keyVersion: out.keyVersion,
          managerVersion: out.managerVersion,
          ciphertextBlob: toB64u(out.blob),
        };
      } finally {
        zeroize(data);
      }
    },
    ReEncrypt: async (request, token) => {
      const b = request.body as {
        ciphertextBlob: string;
        sourceContext?: EncryptionContext;
        sourceKeyId?: string;
        destinationKeyId: string;
        destinationContext?: EncryptionContext;
      };
      const out = await dp.reEncrypt(
        token,
        fromB64u(b.ciphertextBlob, 'ciphertextBlob'),
        b.sourceContext ?? {},
        b.destinationKeyId,
        b.destinationContext ?? {},
        b.sourceKeyId,
      );
      return {
        keyId: out.keyId,
        keyVersion: out.keyVersion,
        managerVersion: out.managerVersion,
        sourceKeyId: out.sourceKeyId,
        ciphertextBlob: toB64u(out.blob),
      };
    },
  };

  async function manage(token: string, id: string, action: string, pendingDays?: number) {
    const out = await keysCall(token, {
      action,
      keyring: id,
      ...(pendingDays !== undefined ? { pendingDays } : {}),
    });
    return { key: keyRecord(out.key!) };
  }

  for (const r of KMS_ROUTES) {
    const handler = handlers[r.operationId];
    if (!handler) throw new Error(`no handler for ${r.operationId}`);
    app.route({
      method: r.method,
      url: KMS_PREFIX + r.path,
      bodyLimit: KMS_BODY_LIMIT,
      schema: {
        ...(r.params ? { params: r.params } : {}),
        ...(r.body ? { body: r.body } : {}),
        response: {
          [r.status]: r.response,
          ...Object.fromEntries([...new Set(Object.values(STATUS))].map((s) => [s, errorSchema])),
        },
      },
      handler: async (request, reply) => {
        const token = bearer(request);
        try {
          return reply.status(r.status).send(await handler(request, token));
        } catch (e) {
          if (e instanceof BlindfoldError && e.code === 'ERR_RATE_LIMITED') {
            const ms = Number(/retry after (\d+) ms/.exec(e.message)?.[1] ?? 1000);
            void reply.header('retry-after', String(Math.max(1, Math.ceil(ms / 1000))));
          }
          throw e;
        }
      },
    });
  }

  const doc = openApiDocument();
  const html = renderReference(doc);
  app.get(`${KMS_PREFIX}/openapi.json`, async () => doc);
  app.get(`${KMS_PREFIX}/docs`, async (_request, reply) => {
    void reply.header('content-type', 'text/html; charset=utf-8');
    return html;
  });
}

function keyParam(request: FastifyRequest): string {
  return (request.params as { keyId: string }).keyId;
}

function masterOf(a: Appliance, keyring: string) {
  return { masterVersion: a.latestVersions(keyring).masterVersion };
}

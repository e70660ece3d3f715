/**
 * What every Blindfold HTTP service shares: the error contract (one JSON shape, a stable code,
 * an HTTP status that fits, never a raw 500 for a user error), request ids, Prometheus metrics,
 * and schema helpers. Used by the manager, the appliance's local API and the blinder.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { equalBytes, utf8 } from '../core/bytes.ts';
import { BlindfoldError, type ErrorCode } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';

export const STATUS: Record<ErrorCode, number> = {
  ERR_DECODE: 400,
  ERR_IDENTITY: 400,
  ERR_UNSUPPORTED_VERSION: 400,
  ERR_UNSUPPORTED_SCHEME: 400,
  ERR_PARAMS: 400,
  ERR_INVALID_ARGUMENT: 400,
  ERR_DECRYPT: 400,
  ERR_TICKET_INVALID: 403,
  ERR_TICKET_EXPIRED: 403,
  ERR_TRUNCATED: 400,
  ERR_UNAUTHENTICATED: 401,
  ERR_FORBIDDEN: 403,
  ERR_NOT_FOUND: 404,
  ERR_CONFLICT: 409,
  ERR_REVOKED: 403,
  ERR_RATE_LIMITED: 429,
  ERR_TOO_LARGE: 413,
  ERR_UNAVAILABLE: 503,
  ERR_SEALED: 503,
  ERR_STORAGE: 503,
  ERR_IO: 500,
  ERR_INTERNAL: 500,
};

export const errorSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        requestId: { type: 'string' },
      },
    },
  },
} as const;

/** Response schemas for the error statuses every route may answer. */
export const errorResponses = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  404: errorSchema,
  409: errorSchema,
  413: errorSchema,
  429: errorSchema,
  500: errorSchema,
  503: errorSchema,
} as const;

export const b64u = (maxBytes: number, minBytes = 0) =>
  ({
    type: 'string',
    pattern: '^[A-Za-z0-9_-]*$',
    minLength: Math.ceil((minBytes * 4) / 3),
    maxLength: Math.ceil((maxBytes * 4) / 3),
  }) as const;

/** The public fields of an appliance record (never its certificate or keys), for responses. */
export const applianceRecordProperties = {
  id: { type: 'string' },
  name: { type: 'string' },
  identityFingerprint: { type: 'string' },
  status: { type: 'string' },
  vouchedBy: { type: 'string' },
  criterion: { type: 'string' },
  createdAt: { type: 'integer' },
  revokedAt: { type: ['integer', 'null'] },
} as const;

/** The token of an `Authorization: Bearer <token>` header, or '' when there is none. */
export function bearerToken(request: FastifyRequest): string {
  const h = request.headers.authorization;
  return typeof h === 'string' && h.startsWith('Bearer ') ? h.slice(7) : '';
}

/**
 * Checks a bearer token against the SHA-256 of the expected one (SPEC.md §7.1, §7.2): hashing
 * first makes the comparison constant-time in the secret and length-independent. `hint` says
 * which token to send; it never echoes what was sent.
 */
export function requireBearer(request: FastifyRequest, tokenHash: Uint8Array, hint: string): void {
  const token = bearerToken(request);
  if (!token || !equalBytes(sha256(utf8(token)), tokenHash)) {
    throw new BlindfoldError('ERR_UNAUTHENTICATED', hint);
  }
}

/** One audit entry as a route returns it (SPEC.md §8): the manager's and a blinder's log alike. */
export const auditEntrySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    seq: { type: 'integer' },
    ts: { type: 'integer' },
    actor: { type: 'string' },
    action: { type: 'string' },
    keyring: { type: ['string', 'null'] },
    item: { type: ['string', 'null'] },
    keyVersion: { type: ['integer', 'null'] },
    outcome: { type: 'string' },
    code: { type: ['string', 'null'] },
    requestId: { type: ['string', 'null'] },
    prevHash: { type: 'string' },
    hash: { type: 'string' },
  },
} as const;

export const keyringName = { type: 'string', pattern: '^[a-z0-9._-]{1,64}$' } as const;
export const version = { type: 'integer', minimum: 1, maximum: 0xffffffff } as const;

/** Maps any error to the JSON error contract. Internal details never reach the client. */
export function toErrorReply(
  err: unknown,
  request: FastifyRequest,
): { status: number; body: { error: { code: string; message: string; requestId: string } } } {
  const requestId = String(request.id);
  if (err instanceof BlindfoldError) {
    const status = STATUS[err.code] ?? 500;
    const message =
      status >= 500 && err.code === 'ERR_INTERNAL'
        ? 'internal error; see the server log'
        : err.message;
    return { status, body: { error: { code: err.code, message, requestId } } };
  }
  const fe = err as FastifyError & { validation?: unknown };
  if (fe.validation) {
    return {
      status: 400,
      body: {
        error: {
          code: 'ERR_INVALID_ARGUMENT',
          message: `invalid request: ${fe.message}`,
          requestId,
        },
      },
    };
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code: ErrorCode =
      fe.statusCode === 413
        ? 'ERR_TOO_LARGE'
        : fe.statusCode === 429
          ? 'ERR_RATE_LIMITED'
          : 'ERR_INVALID_ARGUMENT';
    const message =
      fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || fe.name === 'SyntaxError'
        ? 'the request body is not valid JSON'
        : fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
          ? 'the request body is empty; send a JSON object'
          : fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
            ? 'unsupported content type; send application/json'
            : fe.message;
    return { status: fe.statusCode, body: { error: { code, message, requestId } } };
  }
  return {
    status: 500,
    body: {
      error: { code: 'ERR_INTERNAL', message: 'internal error; see the server log', requestId },
    },
  };
}

/**
 * `Expect: 100-continue` (RFC 9110 §10.1.1): a client about to send a large body asks first and
 * sends it only after "100 Continue" (appliance/client.ts does above EXPECT_CONTINUE_BYTES). Node
 * answers 100 by itself unless a 'checkContinue' listener exists: with this one, the request goes
 * through routing and the onRequest hooks first (authentication), and 100 is sent when the body is
 * about to be parsed, only if its Content-Length is within the route's bodyLimit. Above it, Fastify
 * answers 413 (ERR_TOO_LARGE) and closes the connection before a byte of the body was sent: the
 * client reads that answer, where it used to fail writing into the closed connection (EPIPE).
 */
function installExpectContinue(app: FastifyInstance): void {
  app.server.on('checkContinue', (req, res) => app.server.emit('request', req, res));
  // Callback style, not async: every request passes here, and an async hook costs a promise each.
  app.addHook('preParsing', (request, reply, payload, done) => {
    if (request.headers.expect?.toLowerCase() === '100-continue' && !reply.raw.headersSent) {
      const length = Number(request.headers['content-length']);
      if (!(length > request.routeOptions.bodyLimit)) reply.raw.writeContinue();
    }
    done(null, payload);
  });
}

/**
 * Every server's refusal path: `Expect: 100-continue` (above), the JSON error contract for
 * thrown errors, and 404s in the same shape.
 */
export function installErrorHandling(app: FastifyInstance): void {
  installExpectContinue(app);
  app.setErrorHandler((err, request, reply) => {
    const { status, body } = toErrorReply(err, request);
    if (status >= 500) request.log.error({ err }, 'request failed');
    else request.log.info({ code: body.error.code }, 'request refused');
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({
      error: {
        code: 'ERR_NOT_FOUND',
        message: `no route ${request.method} ${request.url.split('?')[0]}`,
        requestId: String(request.id),
      },
    });
  });
}

// -- metrics ---------------------------------------------------------------------------------

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Bucket bounds (seconds) of the request-duration histogram. */
export const DURATION_BUCKETS: readonly number[] = BUCKETS;

/** Running totals over every route, for the console's history (src/server/history.ts). */
export interface HttpTotals {
  requests: number;
  errors4xx: number;
  errors5xx: number;
  durationSum: number;
  /** Cumulative counts per DURATION_BUCKETS bound (le), like Prometheus buckets. */
  buckets: number[];
}

export class Metrics {
  readonly http: HttpTotals = {
    requests: 0,
    errors4xx: 0,
    errors5xx: 0,
    durationSum: 0,
    buckets: new Array(BUCKETS.length).fill(0),
  };
  private readonly counters = new Map<string, number>();
  private readonly hist = new Map<string, { buckets: number[]; sum: number; count: number }>();
  private readonly gauges = new Map<string, () => number>();

  inc(name: string, labels: Record<string, string> = {}, by = 1): void {
    this.incKey(Metrics.counterKey(name, labels), by);
  }

  observe(name: string, labels: Record<string, string>, seconds: number): void {
    this.observeKey(Metrics.histogramKey(name, labels), seconds);
  }

  /** The key `inc` files a counter under: made once by a caller that counts often. */
  static counterKey(name: string, labels: Record<string, string> = {}): string {
    return `${name}${fmtLabels(labels)}`;
  }

  static histogramKey(name: string, labels: Record<string, string>): string {
    return `${name}|${fmtLabels(labels)}`;
  }

  incKey(key: string, by = 1): void {
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
  }

  observeKey(key: string, seconds: number): void {
    let h = this.hist.get(key);
    if (!h) {
      h = { buckets: new Array(BUCKETS.length).fill(0), sum: 0, count: 0 };
      this.hist.set(key, h);
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) h.buckets[i]!++;
    h.sum += seconds;
    h.count++;
  }

  gauge(name: string, f: () => number): void {
    this.gauges.set(name, f);
  }

  render(): string {
    const lines: string[] = [];
    for (const [k, v] of this.counters) lines.push(`${k} ${v}`);
    for (const [k, h] of this.hist) {
      const [name, labels] = k.split('|') as [string, string];
      const inner = labels.slice(1, -1);
      for (let i = 0; i < BUCKETS.length; i++) {
        lines.push(`${name}_bucket{${inner ? `${inner},` : ''}le="${BUCKETS[i]}"} ${h.buckets[i]}`);
      }
      lines.push(`${name}_bucket{${inner ? `${inner},` : ''}le="+Inf"} ${h.count}`);
      lines.push(`${name}_sum${labels} ${h.sum}`);
      lines.push(`${name}_count${labels} ${h.count}`);
    }
    for (const [k, f] of this.gauges) lines.push(`${k} ${f()}`);
    return `${lines.join('\n')}\n`;
  }
}

function fmtLabels(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export function installMetrics(app: FastifyInstance, metrics: Metrics, service: string): void {
  // Per request: the series' keys are made once per route, method and status (fmtLabels escapes
  // every label value), and the hook is callback style (an async hook costs a promise each).
  const keys = new Map<string, { count: string; duration: string }>();
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done) => {
    const route = request.routeOptions.url ?? 'unknown';
    const status = reply.statusCode;
    const id = `${route}\n${request.method}\n${status}`;
    let k = keys.get(id);
    if (!k) {
      k = {
        count: Metrics.counterKey('blindfold_http_requests_total', {
          service,
          route,
          method: request.method,
          status: String(status),
        }),
        duration: Metrics.histogramKey('blindfold_http_request_duration_seconds', {
          service,
          route,
        }),
      };
      keys.set(id, k);
    }
    const seconds = reply.elapsedTime / 1000;
    metrics.incKey(k.count);
    metrics.observeKey(k.duration, seconds);
    const t = metrics.http;
    t.requests++;
    if (reply.statusCode >= 500) t.errors5xx++;
    else if (reply.statusCode >= 400) t.errors4xx++;
    t.durationSum += seconds;
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) t.buckets[i]!++;
    done();
  });
}

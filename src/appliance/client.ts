/**
 * The appliance's client for the manager: HTTPS with the appliance's client certificate (mutual
 * TLS), keep-alive connections, JSON bodies, and bounded retries with backoff for failures where
 * a retry is safe (connection refused or reset, 503). Every failure surfaces as a BlindfoldError
 * with a stable code: the manager's own code when it answered, ERR_UNAVAILABLE when it did not.
 */
import http from 'node:http';
import https from 'node:https';
import { BlindfoldError, ERROR_CODES, type ErrorCode } from '../core/errors.ts';

export interface ClientOptions {
  baseUrl: string;
  caPem?: string;
  certPem?: string;
  keyPem?: string;
  /** Bearer token (operator or local API). */
  token?: string;
  timeoutMs?: number;
  retries?: number;
  maxSockets?: number;
}

export interface JsonClient {
  request<T>(
    method: string,
    path: string,
    body?: unknown,
    opts?: { idempotent?: boolean },
  ): Promise<T>;
  close(): void;
  readonly baseUrl: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createJsonClient(o: ClientOptions): JsonClient {
  const url = new URL(o.baseUrl);
  const isHttps = url.protocol === 'https:';
  const agent = isHttps
    ? new https.Agent({
        keepAlive: true,
        maxSockets: o.maxSockets ?? 64,
        ca: o.caPem,
        cert: o.certPem,
        key: o.keyPem,
      })
    : new http.Agent({ keepAlive: true, maxSockets: o.maxSockets ?? 64 });
  const timeoutMs = o.timeoutMs ?? 15000;
  const retries = o.retries ?? 3;

  const once = <T>(method: string, path: string, body?: unknown) =>
    new Promise<T>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const headers: Record<string, string> = { accept: 'application/json' };
      if (payload) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(payload.length);
      }
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      const req = (isHttps ? https : http).request(
        {
          protocol: url.protocol,
          hostname: url.hostname,
          port: url.port,
          path: url.pathname.replace(/\/$/, '') + path,
          method,
          headers,
          agent,
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(unavailable(o.baseUrl, e)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : {};
            } catch (e) {
              reject(
                new BlindfoldError(
                  'ERR_UNAVAILABLE',
                  `${o.baseUrl} answered something that is not JSON`,
                  {
                    cause: e,
                  },
                ),
              );
              return;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              resolve(json as T);
              return;
            }
            const err = (json as { error?: { code?: string; message?: string } }).error;
            const code = (ERROR_CODES as readonly string[]).includes(err?.code ?? '')
              ? (err!.code as ErrorCode)
              : status >= 500
                ? 'ERR_UNAVAILABLE'
                : 'ERR_INTERNAL';
            const e = new BlindfoldError(code, err?.message ?? `HTTP ${status} from ${o.baseUrl}`);
            (e as BlindfoldError & { status?: number }).status = status;
            reject(e);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e) => reject(unavailable(o.baseUrl, e)));
      req.end(payload);
    });

  return {
    baseUrl: o.baseUrl,
    async request<T>(
      method: string,
      path: string,
      body?: unknown,
      opts: { idempotent?: boolean } = {},
    ) {
      const idempotent = opts.idempotent ?? method === 'GET';
      let attempt = 0;
      for (;;) {
        try {
          return await once<T>(method, path, body);
        } catch (e) {
          const be = e as BlindfoldError & { status?: number; sent?: boolean };
          // Connection failures before a response are safe to retry for any request the
          // manager treats idempotently; a 503 means the manager did not apply the request.
          const retryable =
            be.code === 'ERR_UNAVAILABLE' &&
            (idempotent || be.status === 503 || be.status === undefined);
          if (!retryable || attempt >= retries) throw e;
          attempt++;
          await sleep(Math.min(2000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2));
        }
      }
    },
    close() {
      agent.destroy();
    },
  };
}

function unavailable(base: string, cause: unknown): BlindfoldError {
  const msg = cause instanceof Error ? cause.message : String(cause);
  return new BlindfoldError('ERR_UNAVAILABLE', `cannot reach ${base}: ${msg}`, { cause });
}

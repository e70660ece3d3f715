/**
 * The client for Blindfold's JSON APIs (appliance → manager, CLI → appliance, operators):
 * HTTPS with an optional client certificate (mutual TLS), keep-alive connections, and one or
 * more endpoints (`baseUrl` may list several, comma-separated: manager replicas).
 *
 * Load is spread round-robin over the endpoints that are up. An endpoint that does not answer
 * (connection refused or reset, timeout) or answers 503 is marked down for a short while and the
 * request moves to the next one; after every endpoint failed, bounded retries with exponential
 * backoff and jitter. Only failures where the server cannot have applied the request, or
 * requests the caller declares idempotent, are retried (item creation is idempotent: the
 * appliance chooses the item id, SPEC.md §5.2). Every failure surfaces as a BlindfoldError with a
 * stable code: the server's own code when it answered, ERR_UNAVAILABLE when none did.
 */
import { createHash, X509Certificate } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { BlindfoldError, ERROR_CODES, type ErrorCode } from '../core/errors.ts';
import { AddressKeyedAgent } from '../platform/https-agent.ts';

export interface ClientOptions {
  /** One URL, or several separated by commas (replicas of one service). */
  baseUrl: string;
  caPem?: string;
  certPem?: string;
  keyPem?: string;
  /** Bearer token (operator or local API). */
  token?: string;
  timeoutMs?: number;
  /** Rounds of retries after every endpoint failed once (default 3). */
  retries?: number;
  maxSockets?: number;
  /** How long an endpoint that failed is skipped (default 2000 ms). */
  downMs?: number;
  /**
   * The server's identity fingerprint (hex SHA-256 of its SPKI), checked on top of the CA: a
   * blinder's successor is pinned to the identity the manager registered (SPEC.md §5.4).
   */
  pinFingerprint?: string;
}

/** Hostname check as usual, then the SPKI fingerprint pin, if any. */
function pinnedIdentity(pin: string) {
  return (host: string, cert: PeerCertificate): Error | undefined => {
    const err = checkServerIdentity(host, cert);
    if (err) return err;
    const spki = new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' });
    const fpr = createHash('sha256').update(spki).digest('hex');
    return fpr === pin
      ? undefined
      : new Error(`the server's identity ${fpr} is not the pinned ${pin}`);
  };
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
  /** The endpoints and whether each is currently considered up. */
  endpoints(): { url: string; up: boolean }[];
}

interface Endpoint {
  url: URL;
  text: string;
  agent: http.Agent;
  isHttps: boolean;
  downUntil: number;
}

type ClientError = BlindfoldError & { status?: number; answered?: boolean };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function parseEndpoints(baseUrl: string): string[] {
  const list = baseUrl
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'no endpoint URL given');
  for (const u of list) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch (cause) {
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', `not a URL: ${u}`, { cause });
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', `unsupported URL scheme in ${u}`);
    }
  }
  return list;
}

/**
 * Bodies above this ask `Expect: 100-continue` first (server/common.ts): a body the server would
 * refuse (too large, or unauthenticated) is then never sent, and the refusal reaches the caller
 * with its code (ERR_TOO_LARGE), not as a write into a closed connection (EPIPE). Smaller bodies
 * fit in the socket's buffers whatever the server does, and pay no extra round trip.
 */
export const EXPECT_CONTINUE_BYTES = 64 * 1024;
/** How long to wait for "100 Continue" before sending the body anyway (RFC 9110 §10.1.1). */
const CONTINUE_WAIT_MS = 1000;

export function createJsonClient(o: ClientOptions): JsonClient {
  const endpoints: Endpoint[] = parseEndpoints(o.baseUrl).map((text) => {
    const url = new URL(text);
    const isHttps = url.protocol === 'https:';
    const agent = isHttps
      ? new AddressKeyedAgent({
          keepAlive: true,
          maxSockets: o.maxSockets ?? 64,
          ca: o.caPem,
          cert: o.certPem,
          key: o.keyPem,
          ...(o.pinFingerprint ? { checkServerIdentity: pinnedIdentity(o.pinFingerprint) } : {}),
        })
      : new http.Agent({ keepAlive: true, maxSockets: o.maxSockets ?? 64 });
    return { url, text, agent, isHttps, downUntil: 0 };
  });
  const timeoutMs = o.timeoutMs ?? 15000;
  const retries = o.retries ?? 3;
  const downMs = o.downMs ?? 2000;
  let next = 0;

  const once = <T>(ep: Endpoint, method: string, path: string, body?: unknown) =>
    new Promise<T>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const headers: Record<string, string> = { accept: 'application/json' };
      if (payload) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(payload.length);
        if (payload.length > EXPECT_CONTINUE_BYTES) headers.expect = '100-continue';
      }
      // With Expect, the body goes once the server said "100 Continue" (or after CONTINUE_WAIT_MS,
      // for a server that ignores Expect); an answer that comes first (413, 401) is read and the
      // body never sent, and the connection, which still owes it, is not reused.
      let bodySent = headers.expect === undefined;
      let waitForContinue: NodeJS.Timeout | undefined;
      const sendBody = () => {
        if (bodySent) return;
        bodySent = true;
        clearTimeout(waitForContinue);
        req.end(payload);
      };
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      const req = (ep.isHttps ? https : http).request(
        {
          protocol: ep.url.protocol,
          hostname: ep.url.hostname,
          port: ep.url.port,
          path: ep.url.pathname.replace(/\/$/, '') + path,
          method,
          headers,
          agent: ep.agent,
          timeout: timeoutMs,
        },
        (res) => {
          const owesBody = !bodySent;
          bodySent = true;
          clearTimeout(waitForContinue);
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(unavailable(ep.text, e)));
          res.on('end', () => {
            if (owesBody) req.destroy();
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : {};
            } catch (e) {
              const err: ClientError = new BlindfoldError(
                'ERR_UNAVAILABLE',
                `${ep.text} answered something that is not JSON (HTTP ${status})`,
                { cause: e },
              );
              err.status = status;
              err.answered = true;
              reject(err);
              return;
            }
            if (status >= 200 && status < 300) {
              resolve(json as T);
              return;
            }
            const body = (json as { error?: { code?: string; message?: string } }).error;
            const code: ErrorCode = (ERROR_CODES as readonly string[]).includes(body?.code ?? '')
              ? (body!.code as ErrorCode)
              : status >= 500
                ? 'ERR_UNAVAILABLE'
                : 'ERR_INTERNAL';
            const e: ClientError = new BlindfoldError(
              code,
              body?.message ?? `HTTP ${status} from ${ep.text}`,
            );
            e.status = status;
            e.answered = true;
            reject(e);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e) => reject(unavailable(ep.text, e)));
      if (bodySent) {
        req.end(payload);
      } else {
        req.on('continue', sendBody);
        waitForContinue = setTimeout(sendBody, CONTINUE_WAIT_MS);
        req.flushHeaders();
      }
    });

  const pick = (): Endpoint => {
    const now = Date.now();
    for (let i = 0; i < endpoints.length; i++) {
      const ep = endpoints[(next + i) % endpoints.length]!;
      if (ep.downUntil <= now) {
        next = (next + i + 1) % endpoints.length;
        return ep;
      }
    }
    // Every endpoint is marked down: try the one that comes back first.
    return endpoints.reduce((a, b) => (b.downUntil < a.downUntil ? b : a));
  };

  return {
    baseUrl: o.baseUrl,
    endpoints: () => endpoints.map((e) => ({ url: e.text, up: e.downUntil <= Date.now() })),
    async request<T>(
      method: string,
      path: string,
      body?: unknown,
      opts: { idempotent?: boolean } = {},
    ) {
      const idempotent = opts.idempotent ?? method === 'GET';
      const maxAttempts = endpoints.length * (retries + 1);
      let last: unknown;
      for (let attempt = 0; attempt < maxAttempts; attempt++) {
        const ep = pick();
        try {
          return await once<T>(ep, method, path, body);
        } catch (e) {
          last = e;
          const ce = e as ClientError;
          // No answer, or "unavailable" from a server that applied nothing: another endpoint
          // (or a later try) may serve it. A request that reached the server and may have been
          // applied is retried only when the caller says it is idempotent.
          const noAnswer = ce.code === 'ERR_UNAVAILABLE' && !ce.answered;
          const refusedUnavailable = ce.answered === true && ce.status === 503;
          if (
            !(noAnswer || refusedUnavailable) ||
            (!idempotent && !refusedUnavailable && !isConnectRefused(ce))
          ) {
            throw e;
          }
          ep.downUntil = Date.now() + downMs;
          // Backoff once a whole round of endpoints has failed.
          if ((attempt + 1) % endpoints.length === 0 && attempt + 1 < maxAttempts) {
            const round = (attempt + 1) / endpoints.length;
            await sleep(Math.min(2000, 100 * 2 ** round) * (0.5 + Math.random() / 2));
          }
        }
      }
      throw last;
    },
    close() {
      for (const e of endpoints) e.agent.destroy();
    },
  };
}

/** A refused connection never reached a server, so any request may go elsewhere. */
function isConnectRefused(e: BlindfoldError): boolean {
  const cause = e.cause as NodeJS.ErrnoException | undefined;
  return (
    cause?.code === 'ECONNREFUSED' || cause?.code === 'ENOTFOUND' || cause?.code === 'EHOSTUNREACH'
  );
}

function unavailable(base: string, cause: unknown): BlindfoldError {
  const msg = cause instanceof Error ? cause.message : String(cause);
  return new BlindfoldError('ERR_UNAVAILABLE', `cannot reach ${base}: ${msg}`, { cause });
}

/**
 * The console's only way to the manager: the same authenticated JSON API as the CLI (SPEC.md
 * §7.1), same origin, the operator token as a bearer header. The token lives in sessionStorage
 * (gone when the tab closes); no cookie is ever set, so other sites cannot make the browser act.
 */
const KEY = 'blindfold.operatorToken';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(t: string | null): void {
  if (t === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, t);
}

let onUnauthenticated: () => void = () => {};
export function whenSignedOut(f: () => void): void {
  onUnauthenticated = f;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'ERR_UNAVAILABLE', 'the manager is not reachable; retry in a moment');
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(
      res.status,
      'ERR_DECODE',
      `unexpected answer from the manager (${res.status})`,
    );
  }
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string } }).error ?? {};
    const code = err.code ?? 'ERR_INTERNAL';
    if (res.status === 401 && path !== '/v1/keyrings') onUnauthenticated();
    throw new ApiError(res.status, code, `${err.message ?? res.statusText} [${code}]`);
  }
  return data as T;
}

export interface Keyring {
  name: string;
  mode: string;
  scheme: string;
  masterVersion: number;
  managerVersion: number;
  status: string;
  createdAt: number;
  updatedAt: number;
  deletionAt?: number | null;
  versions?: { managerVersion: number; createdAt: number; retiredAt: number | null }[];
}

export interface Member {
  id: string;
  name: string;
  identityFingerprint: string;
  status: string;
  vouchedBy: string;
  criterion: string;
  createdAt: number;
  revokedAt: number | null;
  history?: {
    ts: number;
    event: string;
    actor: string;
    criterion: string | null;
    detail: string | null;
  }[];
}

export interface AuditRow {
  seq: number;
  ts: number;
  actor: string;
  action: string;
  keyring: string | null;
  item: string | null;
  keyVersion: number | null;
  outcome: string;
  code: string | null;
  requestId: string | null;
  prevHash: string;
  hash: string;
}

/** GET /v1/blinders/health (SPEC.md §7.6). */
export interface BlinderHealth {
  id: string;
  name: string;
  url: string;
  identityFingerprint: string;
  keyrings: { keyring: string; position: number }[];
  state: 'ready' | 'not-ready' | 'down' | 'unannounced';
  values: number | null;
  error: string | null;
  checkedAt: number | null;
  latencyMs: number | null;
  lastRelayAt: number | null;
}

export const BLINDER_BADGE: Record<BlinderHealth['state'], string> = {
  ready: 'ok',
  'not-ready': 'warn',
  down: 'bad',
  unannounced: 'warn',
};

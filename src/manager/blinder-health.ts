/**
 * Health of the blinders the manager knows (SPEC.md §7.6, for the console's Overview): each
 * registered blinder's announced URL is probed (GET /health and GET /ready) over TLS with the
 * manager CA, pinned to the identity fingerprint the manager registered, so that only that
 * blinder can answer "ready" (a process squatting on its port cannot). The probes need no client
 * certificate (both routes are open to anyone) and change nothing, so nothing is audited.
 *
 * Bounded cost: results are cached for `ttlMs`; one refresh runs at a time and every caller
 * waiting in that window shares it; at most `concurrency` blinders are probed at once, each with
 * a short timeout (/ready only after /health answered). A request therefore waits at most about
 * ⌈n / concurrency⌉ × 2 × timeout, and ⌈n / concurrency⌉ × timeout when blinders are simply gone.
 */
import { createJsonClient, type JsonClient } from '../appliance/client.ts';
import { BlindfoldError } from '../core/errors.ts';
import type { BlinderRecord } from '../store/types.ts';

export type BlinderHealthState = 'ready' | 'not-ready' | 'down' | 'unannounced';

export interface BlinderHealth {
  id: string;
  name: string;
  url: string;
  identityFingerprint: string;
  /** Keyrings whose chain holds this blinder, with its 0-based position in each. */
  keyrings: { keyring: string; position: number }[];
  state: BlinderHealthState;
  /** The blinder's count of E_j values (from /ready), when ready. */
  values: number | null;
  /** What went wrong, when not ready. */
  error: string | null;
  checkedAt: number | null;
  latencyMs: number | null;
  /** The last request this manager process answered through a chain holding this blinder. */
  lastRelayAt: number | null;
}

export interface BlinderHealthDeps {
  blinders: () => BlinderRecord[];
  chains: () => { keyring: string; blinders: string[] }[];
  lastRelay: (blinderId: string) => number | null;
  caPem: string;
  now?: () => number;
  /** How long a probe result is reused (default 3000 ms). */
  ttlMs?: number;
  /** Per-request timeout of a probe (default 1500 ms). */
  timeoutMs?: number;
  /** Blinders probed at once (default 8). */
  concurrency?: number;
}

interface Probe {
  url: string;
  state: BlinderHealthState;
  values: number | null;
  error: string | null;
  checkedAt: number;
  latencyMs: number;
}

export interface BlinderHealthMonitor {
  list(): Promise<{ now: number; blinders: BlinderHealth[] }>;
  close(): void;
}

/**
 * The probe's own deadline: the client's socket timeout may fire later than asked while a TLS
 * handshake hangs, and the answer must not wait for it (the request still ends by itself).
 */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

const message = (e: unknown) =>
  (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').slice(0, 300);

export function createBlinderHealthMonitor(d: BlinderHealthDeps): BlinderHealthMonitor {
  const now = d.now ?? Date.now;
  const ttlMs = d.ttlMs ?? 3000;
  const timeoutMs = d.timeoutMs ?? 1500;
  const concurrency = Math.max(1, d.concurrency ?? 8);
  const clients = new Map<string, JsonClient>();
  const probes = new Map<string, Probe>();
  let refreshedAt = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<void> | undefined;

  /** One client per (URL, identity): a re-announced URL or identity gets a fresh one. */
  const clientFor = (b: BlinderRecord) => {
    const key = `${b.url}|${b.identityFingerprint}`;
    let c = clients.get(key);
    if (!c) {
      c = createJsonClient({
        baseUrl: b.url,
        caPem: d.caPem,
        pinFingerprint: b.identityFingerprint,
        retries: 0,
        timeoutMs,
        maxSockets: 2,
      });
      clients.set(key, c);
    }
    return c;
  };

  const probe = async (b: BlinderRecord): Promise<Probe> => {
    const start = now();
    const done = (state: BlinderHealthState, values: number | null, error: string | null) => ({
      url: b.url,
      state,
      values,
      error,
      checkedAt: now(),
      latencyMs: now() - start,
    });
    if (!b.url) return done('unannounced', null, 'the blinder has not announced a URL yet');
    let c: JsonClient;
    try {
      c = clientFor(b);
    } catch (e) {
      return done('down', null, message(e));
    }
    // /health first: a blinder that does not answer it costs one timeout, not two.
    try {
      const health = await within(c.request<{ status?: string }>('GET', '/health'), timeoutMs);
      if (health?.status !== 'ok') return done('down', null, 'unexpected /health answer');
    } catch (e) {
      return done('down', null, message(e));
    }
    let r: { status?: string; blinderId?: string; values?: number };
    try {
      r = await within(c.request('GET', '/ready'), timeoutMs);
    } catch (e) {
      return done('not-ready', null, message(e));
    }
    if (r?.status !== 'ready' || r.blinderId !== b.id) {
      return done('not-ready', null, `unexpected /ready answer (blinder ${String(r?.blinderId)})`);
    }
    return done('ready', Number.isSafeInteger(r.values) ? r.values! : null, null);
  };

  const refresh = async () => {
    const list = d.blinders();
    let next = 0;
    const worker = async () => {
      while (next < list.length) {
        const b = list[next++]!;
        probes.set(b.id, await probe(b));
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, worker));
    // Drop clients of URLs no blinder announces any more.
    const live = new Set(list.map((b) => `${b.url}|${b.identityFingerprint}`));
    for (const [k, c] of clients) {
      if (!live.has(k)) {
        c.close();
        clients.delete(k);
      }
    }
    refreshedAt = now();
  };

  return {
    async list() {
      // Stale results, or a blinder registered or re-announced since the last refresh.
      const unprobed = d.blinders().some((b) => probes.get(b.id)?.url !== b.url);
      if (unprobed || now() - refreshedAt >= ttlMs) {
        inFlight ??= refresh().finally(() => {
          inFlight = undefined;
        });
        await inFlight;
      }
      const positions = new Map<string, { keyring: string; position: number }[]>();
      for (const ch of d.chains()) {
        ch.blinders.forEach((id, position) => {
          const l = positions.get(id) ?? [];
          l.push({ keyring: ch.keyring, position });
          positions.set(id, l);
        });
      }
      const blinders = d.blinders().map((b): BlinderHealth => {
        const p = probes.get(b.id);
        // Registered or re-announced while the refresh ran: not probed yet.
        const stale = p !== undefined && p.url !== b.url;
        return {
          id: b.id,
          name: b.name,
          url: b.url,
          identityFingerprint: b.identityFingerprint,
          keyrings: (positions.get(b.id) ?? []).sort((x, y) => x.keyring.localeCompare(y.keyring)),
          state: !p || stale ? (b.url ? 'down' : 'unannounced') : p.state,
          values: !p || stale ? null : p.values,
          error: !p || stale ? (b.url ? 'not probed yet' : null) : p.error,
          checkedAt: !p || stale ? null : p.checkedAt,
          latencyMs: !p || stale ? null : p.latencyMs,
          lastRelayAt: d.lastRelay(b.id),
        };
      });
      return { now: now(), blinders };
    },
    close() {
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  };
}

/** BLINDFOLD_BLINDER_HEALTH_TTL_MS: how long probe results are reused (100 ms .. 60 s). */
export function blinderHealthTtlFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.BLINDFOLD_BLINDER_HEALTH_TTL_MS;
  if (v === undefined) return undefined;
  if (!/^\d{3,5}$/.test(v) || Number(v) < 100 || Number(v) > 60_000) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      'BLINDFOLD_BLINDER_HEALTH_TTL_MS must be 100 to 60000 (ms)',
    );
  }
  return Number(v);
}

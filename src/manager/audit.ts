/**
 * The audit log writer: one entry per request (who, what item, which key version, outcome),
 * never a secret value, appended to the store's hash chain (SPEC.md §8).
 *
 * Entries are group-committed: requests that arrive in the same event-loop turn share one
 * transaction, and each request waits until its entry is durable. A request whose audit entry
 * cannot be written fails (as in Vault): nothing happens unaudited.
 */
import type { AuditEntry, Store } from '../store/types.ts';

export interface AuditInput {
  actor: string;
  action: string;
  keyring?: string | null;
  item?: string | null;
  keyVersion?: number | null;
  outcome?: AuditEntry['outcome'];
  code?: string | null;
  requestId?: string | null;
}

export interface AuditLog {
  record(e: AuditInput): Promise<void>;
  /** Like record, for paths that must not wait (refusals); failures are logged, not thrown. */
  enqueue(e: AuditInput): Promise<void>;
  flush(): Promise<void>;
}

export function createAuditLog(
  store: Pick<Store, 'appendAudit'>,
  opts: { now?: () => number; onError?: (e: unknown) => void; maxBatch?: number } = {},
): AuditLog {
  const now = opts.now ?? Date.now;
  const maxBatch = opts.maxBatch ?? 512;
  let queue: { entry: AuditEntry; resolve: () => void; reject: (e: unknown) => void }[] = [];
  let scheduled = false;
  let writing: Promise<void> = Promise.resolve();

  const flushOnce = async () => {
    scheduled = false;
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      try {
        await store.appendAudit(batch.map((b) => b.entry));
        for (const b of batch) b.resolve();
      } catch (e) {
        for (const b of batch) b.reject(e);
      }
    }
  };

  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      writing = writing.then(flushOnce, flushOnce);
    });
  };

  const record = (e: AuditInput): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      queue.push({
        entry: {
          ts: now(),
          actor: e.actor,
          action: e.action,
          keyring: e.keyring ?? null,
          item: e.item ?? null,
          keyVersion: e.keyVersion ?? null,
          outcome: e.outcome ?? 'ok',
          code: e.code ?? null,
          requestId: e.requestId ?? null,
        },
        resolve,
        reject,
      });
      schedule();
    });

  return {
    record,
    enqueue: (e) => record(e).catch((err) => opts.onError?.(err)),
    flush: async () => {
      schedule();
      await new Promise<void>((r) => setImmediate(r));
      await writing;
    },
  };
}

/**
 * Request coalescing for recoveries (issue #9, SPEC.md §7 `POST /v1/recover/batch`): concurrent
 * `openItem` calls of one appliance are gathered into one batch request, so the TLS record, HTTP
 * parsing, JSON framing and mTLS peer lookup are paid once per batch instead of once per item.
 *
 * Bounds (both hard):
 *   - size: a batch never holds more than `maxItems` items (the route accepts 1..256);
 *   - delay: an item never waits more than `maxDelayMs` before its batch is sent.
 * A batch also leaves at once when fewer than `maxInFlight` batches are in flight (the sender is
 * idle): a lone request pays one event-loop turn, not the delay. Under load the in-flight batches
 * are the clock, like a database's group commit: items gather while the previous batch travels.
 * What gathers while nothing is in flight leaves split in `maxInFlight` batches, so that a closed
 * group of callers keeps both sides busy (a pipeline) instead of taking turns.
 *
 * Every submitted item settles exactly once: with its own answer, with its own error (the route
 * answers per element: one bad ticket does not fail its neighbours), or, when the whole batch
 * fails (no answer, ERR_INTERNAL), with that batch error. Nothing is retried here: the client
 * below already retries what is safe to retry (recovery is idempotent), so a failed batch is
 * neither lost silently nor sent twice by this layer.
 */
import { BlindfoldError, ERROR_CODES, type ErrorCode } from '../core/errors.ts';

export interface CoalescerOptions {
  /** Most items in one batch (1..256; default 64). */
  maxItems?: number;
  /** Longest an item waits before its batch is sent, in ms (default 2). */
  maxDelayMs?: number;
  /** Batches in flight at once before items start to wait (default 2). */
  maxInFlight?: number;
}

/** One element of the batch answer: the item's result or its own error. */
export type BatchResult<R> = { ok: R } | { error: { code: string; message: string } };

export interface Coalescer<Q, R> {
  submit(item: Q): Promise<R>;
  /** Items waiting, and batches in flight (for tests and metrics). */
  stats(): { queued: number; inFlight: number; batches: number; largest: number };
}

interface Pending<Q, R> {
  item: Q;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

export const MAX_BATCH_ITEMS = 256;

export function createCoalescer<Q, R>(
  send: (items: Q[]) => Promise<BatchResult<R>[]>,
  o: CoalescerOptions = {},
): Coalescer<Q, R> {
  const maxItems = o.maxItems ?? 64;
  const maxDelayMs = o.maxDelayMs ?? 2;
  const maxInFlight = o.maxInFlight ?? 2;
  if (!Number.isInteger(maxItems) || maxItems < 1 || maxItems > MAX_BATCH_ITEMS) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      `batch size must be an integer from 1 to ${MAX_BATCH_ITEMS}`,
    );
  }
  if (!(maxDelayMs >= 0) || !Number.isFinite(maxDelayMs)) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'batch delay must be a finite number ≥ 0');
  }
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'batches in flight must be an integer ≥ 1');
  }
  let queue: Pending<Q, R>[] = [];
  let inFlight = 0;
  let batches = 0;
  let largest = 0;
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;

  const dispatch = (split = false) => {
    if (timer) clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
    timer = undefined;
    immediate = undefined;
    // What gathered while nothing was in flight (split: the idle sender's turn) leaves in
    // maxInFlight batches; otherwise in batches of at most maxItems. A closed group of callers
    // (c requests answered together, each sending its next at once) would otherwise travel as
    // one batch forever, and the two sides would take turns instead of working at once
    // (measured, docs/PERFORMANCE.md "perf6": at concurrency 8 every batch held all 8 items and
    // one batch was ever in flight). Split in two, this side blinds and unblinds one half while
    // the manager works on the other.
    const slots = split && inFlight === 0 ? maxInFlight : 1;
    const per = Math.min(maxItems, Math.ceil(queue.length / slots));
    while (queue.length > 0) {
      const batch = queue.slice(0, per);
      queue = queue.slice(batch.length);
      run(batch);
    }
  };

  const run = (batch: Pending<Q, R>[]) => {
    inFlight++;
    batches++;
    largest = Math.max(largest, batch.length);
    let settled = false;
    const done = () => {
      inFlight--;
      // The sender has room again: what gathered meanwhile leaves now (self-clocking).
      if (queue.length > 0 && inFlight < maxInFlight) dispatch();
    };
    send(batch.map((p) => p.item)).then(
      (results) => {
        settled = true;
        if (!Array.isArray(results) || results.length !== batch.length) {
          const e = new BlindfoldError(
            'ERR_INTERNAL',
            `the batch answer has ${Array.isArray(results) ? results.length : 'no'} results for ${batch.length} requests`,
          );
          for (const p of batch) p.reject(e);
        } else {
          for (let i = 0; i < batch.length; i++) {
            const r = results[i]!;
            if ('ok' in r) batch[i]!.resolve(r.ok);
            else batch[i]!.reject(itemError(r.error));
          }
        }
        done();
      },
      (e) => {
        if (settled) return;
        for (const p of batch) p.reject(e);
        done();
      },
    );
  };

  const schedule = () => {
    if (queue.length >= maxItems) {
      // A full batch leaves now; split too if nothing is in flight (a closed group of maxItems
      // callers or more would otherwise travel as one full batch forever).
      dispatch(true);
      return;
    }
    if (inFlight < maxInFlight) {
      // Idle sender: leave after this turn, so the calls made in the same turn share the batch.
      immediate ??= setImmediate(dispatch, true);
      return;
    }
    timer ??= setTimeout(dispatch, maxDelayMs);
  };

  return {
    submit(item: Q): Promise<R> {
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        schedule();
      });
    },
    stats: () => ({ queued: queue.length, inFlight, batches, largest }),
  };
}

/** An element's error, with its stable code when the server sent a known one. */
function itemError(e: { code: string; message: string }): BlindfoldError {
  const code: ErrorCode = (ERROR_CODES as readonly string[]).includes(e?.code)
    ? (e.code as ErrorCode)
    : 'ERR_INTERNAL';
  return new BlindfoldError(code, typeof e?.message === 'string' ? e.message : 'request failed');
}

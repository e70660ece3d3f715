/**
 * A ring buffer of per-interval request samples (rate, errors, latency) for the web console's
 * charts: the Prometheus counters of src/server/common.ts say "how many since start"; the console
 * wants "how many per interval over the last hour" without a Prometheus server. In memory, per
 * process (each replica keeps its own); SPEC.md §7.1 `GET /v1/metrics/history`.
 */
import { DURATION_BUCKETS, type HttpTotals, type Metrics } from './common.ts';

export interface MetricsSample {
  /** End of the interval, Unix ms. */
  ts: number;
  requests: number;
  errors4xx: number;
  errors5xx: number;
  /** Mean request duration in the interval, ms (0 without requests). */
  latencyMeanMs: number;
  /** Upper bound of the histogram bucket holding the 95th percentile, ms (0 without requests). */
  latencyP95Ms: number;
}

export interface MetricsHistoryOptions {
  /** Sample interval (default 5000 ms). */
  intervalMs?: number;
  /** Samples kept (default 720: one hour at 5 s). */
  capacity?: number;
  now?: () => number;
}

const copy = (t: HttpTotals): HttpTotals => ({ ...t, buckets: [...t.buckets] });

export class MetricsHistory {
  readonly intervalMs: number;
  readonly capacity: number;
  private readonly samples: MetricsSample[] = [];
  private last: HttpTotals;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly metrics: Metrics,
    o: MetricsHistoryOptions = {},
  ) {
    this.intervalMs = o.intervalMs ?? 5000;
    this.capacity = o.capacity ?? 720;
    this.now = o.now ?? Date.now;
    this.last = copy(metrics.http);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Closes the current interval: the difference of the totals since the previous sample. */
  sample(): MetricsSample {
    const cur = copy(this.metrics.http);
    const prev = this.last;
    this.last = cur;
    const requests = cur.requests - prev.requests;
    const buckets = cur.buckets.map((b, i) => b - prev.buckets[i]!);
    let p95 = 0;
    if (requests > 0) {
      const want = Math.ceil(requests * 0.95);
      const i = buckets.findIndex((b) => b >= want);
      // Beyond the largest bound: report that bound (the histogram cannot say more).
      p95 = (DURATION_BUCKETS[i < 0 ? DURATION_BUCKETS.length - 1 : i] ?? 0) * 1000;
    }
    const s: MetricsSample = {
      ts: this.now(),
      requests,
      errors4xx: cur.errors4xx - prev.errors4xx,
      errors5xx: cur.errors5xx - prev.errors5xx,
      latencyMeanMs: requests > 0 ? ((cur.durationSum - prev.durationSum) / requests) * 1000 : 0,
      latencyP95Ms: p95,
    };
    this.samples.push(s);
    if (this.samples.length > this.capacity)
      this.samples.splice(0, this.samples.length - this.capacity);
    return s;
  }

  list(sinceTs = 0): MetricsSample[] {
    return this.samples.filter((s) => s.ts > sinceTs);
  }
}

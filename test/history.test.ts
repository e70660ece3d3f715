/**
 * The request history behind the console's charts (src/server/history.ts): per-interval deltas of
 * the running totals, the p95 bucket bound, and a bounded ring.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DURATION_BUCKETS, Metrics } from '../src/server/common.ts';
import { MetricsHistory } from '../src/server/history.ts';

function record(m: Metrics, seconds: number, status: number) {
  const t = m.http;
  t.requests++;
  if (status >= 500) t.errors5xx++;
  else if (status >= 400) t.errors4xx++;
  t.durationSum += seconds;
  for (let i = 0; i < DURATION_BUCKETS.length; i++)
    if (seconds <= DURATION_BUCKETS[i]!) t.buckets[i]!++;
}

test('samples are per-interval deltas with mean and p95 bucket bound', () => {
  const m = new Metrics();
  let now = 1000;
  const h = new MetricsHistory(m, { intervalMs: 5000, capacity: 3, now: () => now });
  for (let i = 0; i < 19; i++) record(m, 0.002, 200); // ≤ 2.5 ms bucket
  record(m, 0.3, 503); // the slowest 5 %: ≤ 500 ms bucket
  now = 6000;
  const s1 = h.sample();
  assert.deepEqual(
    { ...s1, latencyMeanMs: Math.round(s1.latencyMeanMs * 1000) / 1000 },
    { ts: 6000, requests: 20, errors4xx: 0, errors5xx: 1, latencyMeanMs: 16.9, latencyP95Ms: 2.5 },
  );
  record(m, 0.3, 404);
  now = 11000;
  const s2 = h.sample();
  assert.equal(s2.requests, 1);
  assert.equal(s2.errors4xx, 1);
  assert.equal(s2.errors5xx, 0);
  assert.equal(s2.latencyP95Ms, 500);
  now = 16000;
  const s3 = h.sample();
  assert.deepEqual([s3.requests, s3.latencyMeanMs, s3.latencyP95Ms], [0, 0, 0]);
  record(m, 30, 200); // beyond the largest bound: reported as that bound
  now = 21000;
  assert.equal(h.sample().latencyP95Ms, DURATION_BUCKETS.at(-1)! * 1000);
  // Bounded: the oldest sample went; `since` filters by time.
  assert.deepEqual(
    h.list().map((s) => s.ts),
    [11000, 16000, 21000],
  );
  assert.deepEqual(
    h.list(16000).map((s) => s.ts),
    [21000],
  );
});

/**
 * The HTTP metrics of every server (server/common.ts installMetrics): one counter series per
 * route, method and status, one duration histogram per route, and the console's running totals,
 * checked through Fastify's inject() (no socket needed).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import { installErrorHandling, installMetrics, Metrics } from '../src/server/common.ts';

test('installMetrics counts each route, method and status, with escaped labels', async () => {
  const app = Fastify();
  const metrics = new Metrics();
  installErrorHandling(app);
  installMetrics(app, metrics, 'svc"x');
  app.get<{ Params: { id: string } }>('/v1/things/:id', async (req, reply) =>
    req.params.id === 'gone' ? reply.status(410).send({ ok: false }) : { ok: true },
  );
  app.post('/v1/things', async (_req, reply) => reply.status(201).send({ ok: true }));
  await app.ready();
  for (let i = 0; i < 3; i++) assert.equal((await app.inject('/v1/things/1')).statusCode, 200);
  assert.equal((await app.inject('/v1/things/2')).statusCode, 200);
  assert.equal((await app.inject('/v1/things/gone')).statusCode, 410);
  assert.equal((await app.inject({ method: 'POST', url: '/v1/things' })).statusCode, 201);
  assert.equal((await app.inject('/nowhere')).statusCode, 404);
  const text = metrics.render();
  const value = (series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  const svc = 'service="svc_x"';
  assert.equal(
    value(`blindfold_http_requests_total{${svc},route="/v1/things/:id",method="GET",status="200"}`),
    4,
  );
  assert.equal(
    value(`blindfold_http_requests_total{${svc},route="/v1/things/:id",method="GET",status="410"}`),
    1,
  );
  assert.equal(
    value(`blindfold_http_requests_total{${svc},route="/v1/things",method="POST",status="201"}`),
    1,
  );
  assert.equal(
    value(`blindfold_http_requests_total{${svc},route="unknown",method="GET",status="404"}`),
    1,
  );
  assert.equal(
    value(`blindfold_http_request_duration_seconds_count{${svc},route="/v1/things/:id"}`),
    5,
  );
  assert.equal(
    value(
      `blindfold_http_request_duration_seconds_bucket{${svc},route="/v1/things/:id",le="+Inf"}`,
    ),
    5,
  );
  assert.deepEqual(
    { requests: metrics.http.requests, e4: metrics.http.errors4xx, e5: metrics.http.errors5xx },
    { requests: 7, e4: 2, e5: 0 },
  );
  assert.equal(metrics.http.buckets.at(-1), 7); // every request took under 5 s
  await app.close();
});

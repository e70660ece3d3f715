/**
 * Serves the web console at /ui (same origin as the manager API, so no CORS and no cookies: the
 * page sends the operator token as a bearer header from sessionStorage, hence no CSRF surface).
 *
 * The page is plain TypeScript bundled by esbuild on the first request and kept in memory: no
 * build step at install time, and managers that never serve the console (tests, replicas behind
 * an API gateway) never pay for the bundle. The bundle includes src/core (libsodium as WASM), so
 * the master-key concealment and the audit-chain check run the same code as the services.
 *
 * Headers: a strict Content-Security-Policy (scripts only from this origin, no inline script or
 * style, WebAssembly allowed for libsodium, requests only to this origin), no framing, no
 * referrer, no caching (a new manager version serves a new bundle).
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { BlindfoldError } from '../core/errors.ts';

const here = dirname(fileURLToPath(import.meta.url));

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

let bundle: Promise<string> | undefined;

/** The console bundle (esbuild, in-process), built once per process. */
export function consoleBundle(): Promise<string> {
  bundle ??= (async () => {
    const esbuild = await import('esbuild');
    const out = await esbuild.build({
      entryPoints: [join(here, 'app', 'main.ts')],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      minify: true,
      legalComments: 'none',
      logLevel: 'silent',
    });
    return out.outputFiles[0]!.text;
  })();
  bundle.catch(() => {
    bundle = undefined; // a failed build is retried at the next request
  });
  return bundle;
}

function secure(reply: FastifyReply, type: string): FastifyReply {
  return reply
    .header('content-type', type)
    .header('content-security-policy', CONSOLE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cross-origin-opener-policy', 'same-origin')
    .header('cache-control', 'no-store');
}

export function registerConsole(app: FastifyInstance): void {
  const asset = (name: string) => readFile(join(here, 'static', name), 'utf8');
  app.get('/ui', async (_request, reply) => reply.redirect('/ui/', 302));
  app.get('/ui/', async (_request, reply) =>
    secure(reply, 'text/html; charset=utf-8').send(await asset('index.html')),
  );
  app.get('/ui/app.css', async (_request, reply) =>
    secure(reply, 'text/css; charset=utf-8').send(await asset('app.css')),
  );
  app.get('/ui/app.js', async (request, reply) => {
    let js: string;
    try {
      js = await consoleBundle();
    } catch (cause) {
      request.log.error({ err: cause }, 'console bundle failed');
      throw new BlindfoldError('ERR_INTERNAL', 'the console bundle could not be built', { cause });
    }
    return secure(reply, 'text/javascript; charset=utf-8').send(js);
  });
}

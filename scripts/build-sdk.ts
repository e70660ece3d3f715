/**
 * Builds the SDK's browser bundle with esbuild (SPEC.md §11.9): dist/blindfold-sdk.js, one ES
 * module with src/core and libsodium inside, no node: imports. `npm run build:sdk`; the browser
 * test calls buildSdk() in-process, so a fresh clone needs no build step before `npm test`.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export async function buildSdk(outfile = resolve(ROOT, 'dist/blindfold-sdk.js')): Promise<string> {
  await mkdir(dirname(outfile), { recursive: true });
  await build({
    entryPoints: [resolve(ROOT, 'src/sdk/index.ts')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: false,
    sourcemap: false,
    logLevel: 'warning',
    // libsodium's emscripten glue probes for Node modules it never uses in a browser.
    external: [],
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  return outfile;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildSdk(process.argv[2] ? resolve(process.argv[2]) : undefined);
  console.log(`wrote ${out}`);
}

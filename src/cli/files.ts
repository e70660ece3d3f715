/**
 * `blindfold encrypt` and `blindfold decrypt`: files or stdin/stdout, constant memory whatever the
 * size, a progress bar on a terminal, and atomic output (temp file, fsync, rename) so that a
 * failure never leaves a half-written or truncated file — and never unverified plaintext.
 */
import { createReadStream } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { type ChunkPool, parallelFor } from '../appliance/chunks.ts';
import type { JsonClient } from '../appliance/client.ts';
import { decryptFileAt, encryptFileAt } from '../appliance/positional.ts';
import {
  decryptRange,
  decryptStream,
  encryptStream,
  readFileHeader,
  readFilePieces,
  readHeader,
} from '../appliance/stream.ts';
import { fromB64u, toB64u, zeroize } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { decodeHeader } from '../core/format.ts';
import { createAtomicWriteStream, toIoError } from '../util/atomic.ts';

export interface FileJob {
  input: string; // path or '-'
  output?: string; // path or '-'
  keyring?: string;
  range?: { start: number; end: number };
  progress?: boolean;
}

/** A progress bar on stderr, redrawn at most every 100 ms; `at(bytes)` moves it. */
function progressBar(total: number | undefined, label: string) {
  let done = 0;
  let lastDraw = 0;
  const draw = (final = false) => {
    const now = Date.now();
    if (!final && now - lastDraw < 100) return;
    lastDraw = now;
    const mb = (done / 1e6).toFixed(1);
    if (total) {
      const pct = Math.min(100, (100 * done) / Math.max(total, 1));
      const width = 30;
      const fill = Math.round((pct / 100) * width);
      process.stderr.write(
        `\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${pct.toFixed(0)}% ${mb} MB`,
      );
    } else {
      process.stderr.write(`\r${label} ${mb} MB`);
    }
    if (final) process.stderr.write('\n');
  };
  return {
    at(bytes: number) {
      done = bytes;
      draw();
    },
    end() {
      draw(true);
    },
  };
}

/** Passes `src` through, drawing a progress bar on stderr (pieces pass untouched and at once). */
async function* withProgress(
  src: AsyncIterable<Uint8Array>,
  total: number | undefined,
  label: string,
): AsyncGenerator<Uint8Array> {
  const bar = progressBar(total, label);
  let done = 0;
  for await (const chunk of src) {
    done += chunk.length;
    bar.at(done);
    yield chunk;
  }
  bar.end();
}

/**
 * A regular input file of at least PARALLEL_MIN_BYTES going to a file: the positional path
 * (appliance/positional.ts), where every thread reads and writes its own segments. Returns the
 * open input and the pool, or undefined for the stream path (stdin, stdout, pipes, small files,
 * one core).
 */
async function positionalInput(
  input: string,
  output: string,
  total: number | undefined,
): Promise<{ fh: FileHandle; pool: ChunkPool } | undefined> {
  if (input === '-' || output === '-' || total === undefined) return undefined;
  const pool = await parallelFor(total);
  if (!pool) return undefined;
  let fh: FileHandle;
  try {
    fh = await open(input, 'r');
  } catch (e) {
    throw toIoError(e, 'read', input);
  }
  if (!(await fh.stat()).isFile()) {
    await fh.close();
    return undefined;
  }
  return { fh, pool };
}

/**
 * With BLINDFOLD_STREAM_STATS=1, one line on stderr saying which path a stream took (serial, or
 * parallel with how many worker threads and segments, `local` of them done by the calling thread
 * while the workers were busy): a debug metric, used by the CLI tests.
 */
function streamStats(op: string, pool: ChunkPool | undefined, positional = false): void {
  if (process.env.BLINDFOLD_STREAM_STATS !== '1') return;
  const s = pool?.stats();
  process.stderr.write(
    s
      ? `stream-stats ${op} parallel workers=${s.workers} segments=${s.segments} bytes=${s.bytes} local=${s.local} path=${positional ? 'positional' : 'stream'}\n`
      : `stream-stats ${op} serial\n`,
  );
}

async function openOutput(path: string | undefined) {
  if (!path || path === '-') {
    return {
      stream: process.stdout as Writable,
      commit: async () => {},
      abort: async () => {},
      end: false,
    };
  }
  const w = await createAtomicWriteStream(path, { mode: 0o600 });
  return { stream: w.stream, commit: () => w.commit(), abort: () => w.abort(), end: true };
}

function defaultOutput(input: string, decrypting: boolean): string | undefined {
  if (input === '-') return '-';
  if (decrypting) return input.endsWith('.bf') ? input.slice(0, -3) : `${input}.out`;
  return `${input}.bf`;
}

export async function encryptFile(
  local: JsonClient,
  job: FileJob,
): Promise<{ output: string; bytes: number }> {
  const keyring = job.keyring ?? 'default';
  let total: number | undefined;
  if (job.input !== '-') {
    try {
      total = (await stat(job.input)).size;
    } catch (e) {
      throw toIoError(e, 'read', job.input);
    }
  }
  const outPath = job.output ?? defaultOutput(job.input, false)!;
  const dk = await local.request<{ header: string; dek: string }>('POST', '/v1/datakey', {
    keyring,
  });
  const header = fromB64u(dk.header, 'header');
  const dek = fromB64u(dk.dek, 'dek');
  const fileNonce = decodeHeader(header).fields.fileNonce;
  let pos: Awaited<ReturnType<typeof positionalInput>>;
  try {
    pos = await positionalInput(job.input, outPath, total);
  } catch (e) {
    zeroize(dek);
    throw e;
  }
  if (pos) return encryptPositional(job, outPath, pos, { header, dek, fileNonce }, total!);
  const out = await openOutput(outPath);
  try {
    // A file is read through two reused buffers (readFilePieces: no garbage per read).
    const src: AsyncIterable<Uint8Array> =
      job.input === '-' ? process.stdin : readFilePieces(job.input);
    const input =
      job.progress && total !== undefined && total > 8 << 20
        ? withProgress(src, total, 'encrypting')
        : src;
    const parallel = await parallelFor(total);
    const r = await encryptStream(input, out.stream, {
      header,
      dek,
      fileNonce,
      end: out.end,
      parallel,
    });
    streamStats('encrypt', parallel);
    await out.commit();
    return { output: outPath, bytes: r.plainSize };
  } catch (e) {
    await out.abort();
    throw e instanceof BlindfoldError ? e : toIoError(e, 'encrypt', job.input);
  } finally {
    zeroize(dek);
  }
}

/**
 * The positional path works on descriptors, so its ERR_IO messages name no file: say which (the
 * atomic writer's own errors already do, and pass unchanged).
 */
function namingFiles(
  e: unknown,
  what: 'encrypt' | 'decrypt',
  input: string,
  output: string,
): BlindfoldError {
  if (!(e instanceof BlindfoldError)) return toIoError(e, what, input);
  if (e.code !== 'ERR_IO' || e.message.includes(input) || e.message.includes(output)) return e;
  return new BlindfoldError('ERR_IO', `cannot ${what} ${input} to ${output}: ${e.message}`, {
    cause: e,
  });
}

/** encryptFile for a regular file to a file: every core reads, seals and writes its own segments. */
async function encryptPositional(
  job: FileJob,
  outPath: string,
  pos: { fh: FileHandle; pool: ChunkPool },
  secrets: { header: Uint8Array; dek: Uint8Array; fileNonce: Uint8Array },
  total: number,
): Promise<{ output: string; bytes: number }> {
  const bar = job.progress && total > 8 << 20 ? progressBar(total, 'encrypting') : undefined;
  let out: Awaited<ReturnType<typeof createAtomicWriteStream>> | undefined;
  try {
    out = await createAtomicWriteStream(outPath, { mode: 0o600 });
    const r = await encryptFileAt(pos.fh.fd, out.fd, {
      ...secrets,
      pool: pos.pool,
      onProgress: bar ? (n) => bar.at(n) : undefined,
    });
    bar?.end();
    streamStats('encrypt', pos.pool, true);
    await out.commit();
    return { output: outPath, bytes: r.plainSize };
  } catch (e) {
    await out?.abort();
    throw namingFiles(e, 'encrypt', job.input, outPath);
  } finally {
    zeroize(secrets.dek);
    await pos.fh.close().catch(() => {});
  }
}

export async function decryptFile(
  local: JsonClient,
  job: FileJob,
): Promise<{ output: string; bytes: number }> {
  const outPath = job.output ?? defaultOutput(job.input, true)!;
  if (job.range) {
    if (job.input === '-') {
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', '--range needs a file, not stdin');
    }
    const header = await readFileHeader(job.input);
    const dek = await openDek(local, await rawHeader(job.input, header.headerLength));
    try {
      const bytes = await decryptRange(job.input, job.range.start, job.range.end, dek, header);
      const out = await openOutput(outPath);
      try {
        await new Promise<void>((resolve, reject) => {
          out.stream.write(bytes, (err) => (err ? reject(err) : resolve()));
        });
        if (out.end) out.stream.end();
        await out.commit();
      } catch (e) {
        await out.abort();
        throw toIoError(e, 'write', outPath);
      }
      return { output: outPath, bytes: bytes.length };
    } finally {
      zeroize(dek);
    }
  }
  let total: number | undefined;
  if (job.input !== '-') {
    try {
      total = (await stat(job.input)).size;
    } catch (e) {
      throw toIoError(e, 'read', job.input);
    }
  }
  const pos = await positionalInput(job.input, outPath, total);
  if (pos) return decryptPositional(local, job, outPath, pos, total!);
  const src: AsyncIterable<Uint8Array> =
    job.input === '-' ? process.stdin : readFilePieces(job.input);
  const input =
    job.progress && total !== undefined && total > 8 << 20
      ? withProgress(src, total, 'decrypting')
      : src;
  const { header, headerBytes, payload } = await readHeader(input);
  const dek = await openDek(local, headerBytes);
  const out = await openOutput(outPath);
  try {
    const parallel = await parallelFor(total);
    const r = await decryptStream(payload, out.stream, {
      dek,
      fileNonce: header.fields.fileNonce,
      end: out.end,
      parallel,
    });
    streamStats('decrypt', parallel);
    await out.commit();
    return { output: outPath, bytes: r.plainSize };
  } catch (e) {
    await out.abort();
    throw e instanceof BlindfoldError ? e : toIoError(e, 'decrypt', job.input);
  } finally {
    zeroize(dek);
  }
}

/** decryptFile for a regular file to a file: every core reads, opens and writes its own segments. */
async function decryptPositional(
  local: JsonClient,
  job: FileJob,
  outPath: string,
  pos: { fh: FileHandle; pool: ChunkPool },
  total: number,
): Promise<{ output: string; bytes: number }> {
  let dek: Uint8Array | undefined;
  let out: Awaited<ReturnType<typeof createAtomicWriteStream>> | undefined;
  try {
    const header = await readFileHeader(pos.fh);
    dek = await openDek(local, await rawHeader(pos.fh, header.headerLength));
    const bar = job.progress && total > 8 << 20 ? progressBar(total, 'decrypting') : undefined;
    out = await createAtomicWriteStream(outPath, { mode: 0o600 });
    const r = await decryptFileAt(pos.fh.fd, header.headerLength, out.fd, {
      dek,
      fileNonce: header.fields.fileNonce,
      pool: pos.pool,
      onProgress: bar ? (n) => bar.at(header.headerLength + n) : undefined,
    });
    bar?.end();
    streamStats('decrypt', pos.pool, true);
    await out.commit();
    return { output: outPath, bytes: r.plainSize };
  } catch (e) {
    await out?.abort();
    throw namingFiles(e, 'decrypt', job.input, outPath);
  } finally {
    if (dek) zeroize(dek);
    await pos.fh.close().catch(() => {});
  }
}

async function rawHeader(path: string | FileHandle, len: number): Promise<Uint8Array> {
  if (typeof path !== 'string') {
    const b = Buffer.alloc(len);
    await path.read(b, 0, len, 0);
    return new Uint8Array(b);
  }
  const f = await open(path, 'r');
  try {
    const b = Buffer.alloc(len);
    await f.read(b, 0, len, 0);
    return new Uint8Array(b);
  } finally {
    await f.close();
  }
}

async function openDek(local: JsonClient, headerBytes: Uint8Array): Promise<Uint8Array> {
  const r = await local.request<{ dek: string }>('POST', '/v1/datakey/open', {
    header: toB64u(headerBytes),
  });
  return fromB64u(r.dek, 'dek');
}

/** Replaces a file's header with one under the newest key versions; chunks are copied as they are. */
export async function rewrapFile(
  local: JsonClient,
  input: string,
  output?: string,
): Promise<{ input: string; output: string; payloadBytes: number }> {
  const header = await readFileHeader(input);
  const oldHeader = await rawHeader(input, header.headerLength);
  const r = await local.request<{ header: string }>('POST', '/v1/datakey/rewrap', {
    header: toB64u(oldHeader),
  });
  const newHeader = fromB64u(r.header, 'header');
  const outPath = output ?? input;
  const out = await openOutput(outPath);
  try {
    let payloadBytes = 0;
    const src = createReadStream(input, { start: header.headerLength, highWaterMark: 1 << 20 });
    await new Promise<void>((resolve, reject) =>
      out.stream.write(newHeader, (e) => (e ? reject(e) : resolve())),
    );
    for await (const c of src) {
      payloadBytes += (c as Buffer).length;
      if (!out.stream.write(c)) await new Promise((res) => out.stream.once('drain', res));
    }
    if (out.end) out.stream.end();
    await out.commit();
    return { input, output: outPath, payloadBytes };
  } catch (e) {
    await out.abort();
    throw e instanceof BlindfoldError ? e : toIoError(e, 'rewrap', input);
  }
}

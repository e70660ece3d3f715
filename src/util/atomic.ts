/**
 * Atomic file writes: the destination path shows either its old content or the complete new
 * content, never a partial file, even across a crash.
 *
 * The recipe (POSIX rename(2) is atomic within one file system): write a temporary file in the
 * SAME directory (`.<base>.<random>.tmp`, created with O_EXCL and mode 0o600 by default, so a
 * secret is never readable by others, not even while it is being written), fsync it, rename it
 * over the destination, then fsync the directory so that the rename itself is durable. On any
 * failure, or on abort(), the temporary file is closed and unlinked. A crash can leave a stale
 * `.<base>.*.tmp`, never a damaged destination.
 *
 * Every file-system error becomes BlindfoldError('ERR_IO') naming the destination path; a full
 * disk (ENOSPC, EDQUOT) says so plainly.
 */
import { randomBytes } from 'node:crypto';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { BlindfoldError } from '../core/errors.ts';

export interface AtomicWriteOptions {
  /** Permission bits of the new file (subject to the umask). Default 0o600. */
  mode?: number;
  /** fsync the file and its directory before returning (default true). */
  fsync?: boolean;
}

export interface AtomicWriteStream {
  /** Write the new content here (e.g. as a stream.pipeline destination). */
  stream: Writable;
  /** The temporary file being written (in the destination's directory). */
  readonly tempPath: string;
  /**
   * The temporary file's descriptor, for positional writes (appliance/positional.ts) instead of
   * `stream`: never both. Closed by commit() and abort().
   */
  readonly fd: number;
  /** Ends the stream if needed, fsyncs the file, renames it over the destination, fsyncs the directory. */
  commit(): Promise<void>;
  /** Discards everything: closes and unlinks the temporary file. Idempotent; a no-op after commit. */
  abort(): Promise<void>;
}

const REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'a path component is not a directory',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files',
  EIO: 'I/O error',
  EFBIG: 'file too large',
  EXDEV: 'cross-device rename',
};

/** Maps a file-system error to ERR_IO with a message naming the path. BlindfoldErrors pass through. */
export function toIoError(e: unknown, action: string, path: string): BlindfoldError {
  if (e instanceof BlindfoldError) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new BlindfoldError('ERR_IO', `no space left on device writing ${path}`, { cause: e });
  }
  const reason = (code && REASONS[code]) ?? (e instanceof Error ? e.message : String(e));
  return new BlindfoldError(
    'ERR_IO',
    `cannot ${action} ${path}: ${reason}${code ? ` (${code})` : ''}`,
    { cause: e },
  );
}

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

async function writeAll(fh: FileHandle, b: Uint8Array): Promise<void> {
  for (let off = 0; off < b.length; ) {
    const { bytesWritten } = await fh.write(b, off, b.length - off, null);
    off += bytesWritten;
  }
}

/** A Writable over a FileHandle that reports ERR_IO and leaves closing to its owner. */
/**
 * Marks a Writable whose write callback fires only once the chunk's bytes are out of the buffer
 * (written to a file descriptor), and that keeps no reference to it afterwards: a producer may
 * then reuse a buffer once `writableLength` is back to 0 (appliance/stream.ts, issue #9 memory).
 */
export const RELEASES_WRITTEN_CHUNKS = Symbol.for('blindfold.releasesWrittenChunks');

class FileHandleWritable extends Writable {
  readonly [RELEASES_WRITTEN_CHUNKS] = true;
  readonly #fh: FileHandle;
  readonly #path: string;

  constructor(fh: FileHandle, path: string) {
    // Room for several 1 MiB writes (appliance/stream.ts writes whole 1 MiB buffers): the
    // producer fills the next buffer while this one is written, instead of waiting for a drain
    // after every write (docs/PERFORMANCE.md "perf6").
    super({ highWaterMark: 4 << 20 });
    this.#fh = fh;
    this.#path = path;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    writeAll(this.#fh, chunk).then(
      () => cb(),
      (e) => cb(toIoError(e, 'write', this.#path)),
    );
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (e?: Error | null) => void): void {
    const bufs = chunks.map((c) => c.chunk);
    (async () => {
      // writev may write less than asked; finish the rest buffer by buffer.
      let n = (await this.#fh.writev(bufs)).bytesWritten;
      for (const b of bufs) {
        if (n >= b.length) {
          n -= b.length;
          continue;
        }
        await writeAll(this.#fh, b.subarray(n));
        n = 0;
      }
    })().then(
      () => cb(),
      (e) => cb(toIoError(e, 'write', this.#path)),
    );
  }
}

async function openTemp(path: string, mode: number): Promise<{ fh: FileHandle; tempPath: string }> {
  const tempPath = tempPathFor(path);
  try {
    return { fh: await open(tempPath, 'wx', mode), tempPath };
  } catch (e) {
    throw toIoError(e, 'create a temporary file for', path);
  }
}

/** fsync a directory so that a rename in it survives a crash. Some platforms cannot; that is fine. */
async function syncDir(dir: string): Promise<void> {
  let dh: FileHandle | undefined;
  try {
    dh = await open(dir, 'r');
    await dh.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw e;
  } finally {
    await dh?.close().catch(() => {});
  }
}

async function discard(fh: FileHandle | undefined, tempPath: string): Promise<void> {
  await fh?.close().catch(() => {});
  await unlink(tempPath).catch(() => {});
}

/** Writes `data` to `path` atomically (see the module comment). */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const { fh, tempPath } = await openTemp(path, opts.mode ?? 0o600);
  let open_: FileHandle | undefined = fh;
  try {
    await writeAll(fh, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    if (opts.fsync ?? true) await fh.sync();
    await fh.close();
    open_ = undefined;
    await rename(tempPath, path);
    if (opts.fsync ?? true) await syncDir(dirname(path));
  } catch (e) {
    await discard(open_, tempPath);
    throw toIoError(e, 'write', path);
  }
}

/**
 * Opens a temporary file next to `path` and returns a stream into it. Call commit() to publish the
 * content, or abort() to discard it; until commit() the destination is untouched.
 */
export async function createAtomicWriteStream(
  path: string,
  opts: AtomicWriteOptions = {},
): Promise<AtomicWriteStream> {
  const { fh, tempPath } = await openTemp(path, opts.mode ?? 0o600);
  const doSync = opts.fsync ?? true;
  const stream = new FileHandleWritable(fh, path);
  let state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';
  let fhOpen = true;

  const abort = async (): Promise<void> => {
    if (state === 'committed' || state === 'aborted') return;
    state = 'aborted';
    stream.destroy();
    await discard(fhOpen ? fh : undefined, tempPath);
    fhOpen = false;
  };

  const commit = async (): Promise<void> => {
    if (state !== 'open') {
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', `atomic write of ${path} already ${state}`);
    }
    state = 'committing';
    try {
      if (!stream.writableEnded) stream.end();
      await finished(stream);
      if (doSync) await fh.sync();
      await fh.close();
      fhOpen = false;
      await rename(tempPath, path);
      state = 'committed';
      if (doSync) await syncDir(dirname(path));
    } catch (e) {
      if (state === 'committed') throw toIoError(e, 'sync the directory of', path);
      state = 'aborted';
      stream.destroy();
      await discard(fhOpen ? fh : undefined, tempPath);
      fhOpen = false;
      throw toIoError(e, 'write', path);
    }
  };

  return { stream, tempPath, fd: fh.fd, commit, abort };
}

/** Measurement helpers shared by bench/run.ts and bench/child.ts. */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { ChunkPool } from '../src/appliance/chunks.ts';
import { decryptStream, encryptStream, sealFileHeader } from '../src/appliance/stream.ts';
import { freshFileSecrets } from '../src/core/format.ts';
import { mul, randomPoint, randomScalar } from '../src/core/group.ts';
import { RELEASES_WRITTEN_CHUNKS } from '../src/util/atomic.ts';

/**
 * crypto_scalarmult_ristretto255 (through group.ts `mul`) on one core for `ms` milliseconds:
 * the raw limit of the ec-elgamal modes. Each result feeds the next multiplication.
 */
export function scalarMultLoop(ms: number): { ops: number; ms: number } {
  const scalars = Array.from({ length: 16 }, () => randomScalar());
  let p = randomPoint();
  let ops = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < ms) {
    for (let i = 0; i < 64; i++) p = mul(scalars[i & 15]!, p);
    ops += 64;
    now = performance.now();
  }
  return { ops, ms: now - t0 };
}

/** The q-quantile (0..1) of an ascending array, nearest rank. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

/**
 * Raw AES-256-GCM of node:crypto on one core for `ms`: one cipher object per 64 KiB chunk, as
 * encryptStream does (SPEC.md §6 chunks). MB/s.
 */
export function rawAes(direction: 'seal' | 'open', ms: number): number {
  const key = createSecretKey(randomBytes(32));
  const chunk = randomBytes(65536);
  const nonce = Buffer.alloc(12);
  const c0 = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  const sealed = c0.update(chunk);
  c0.final();
  const tag = c0.getAuthTag();
  let bytes = 0;
  let i = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < ms) {
    for (let k = 0; k < 16; k++, i++) {
      if (direction === 'seal') {
        nonce.writeUInt32BE(i >>> 0, 8);
        const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
        c.update(chunk);
        c.final();
        c.getAuthTag();
      } else {
        const d = createDecipheriv('aes-256-gcm', key, Buffer.alloc(12), { authTagLength: 16 });
        d.setAuthTag(tag);
        d.update(sealed);
        d.final();
      }
      bytes += chunk.length;
    }
    now = performance.now();
  }
  return bytes / 1e6 / ((now - t0) / 1000);
}

/**
 * A file's secrets and header without a manager: the header wraps the DEK under a random KEK,
 * which is all encryptStream and decryptStream see (bench/stream-mem.ts, memoryToNull).
 */
export function standaloneFileSecrets(): {
  dek: Uint8Array;
  fileNonce: Uint8Array;
  header: Uint8Array;
} {
  const { dek, fileNonce } = freshFileSecrets();
  const header = sealFileHeader(
    {
      scheme: 1,
      mode: 1,
      keyring: 'bench',
      masterVersion: 1,
      managerKeyVersion: 1,
      itemId: randomBytes(16),
      itemData: new Uint8Array(0),
      ticket: new Uint8Array(0),
      fileNonce,
    },
    randomBytes(32),
    dek,
  );
  return { dek, fileNonce, header };
}

/** One direction of a memory → null run: MB/s, and what it cost whatever the wall clock says. */
export interface MemoryRun {
  mbs: number;
  /** CPU of every thread of the process, seconds per GB. */
  cpuPerGB: number;
  /** Minor page faults per MiB (perf7: freed pages faulted in again). */
  faultsPerMiB: number;
}

/**
 * encryptStream and decryptStream from memory to a destination that drops what it gets (marked
 * RELEASES_WRITTEN_CHUNKS, as a file destination is, so the stream recycles its output buffers):
 * the crypto path without the disk. Seals `bytes` from one random 1 MiB piece repeated; opens a
 * 64 MB sealed sample repeatedly up to `bytes`. Each direction is warmed up first (JIT in this
 * thread and in the workers).
 */
/** Warm-up of each memoryToNull direction, as long as the AES limit's (bench/child.ts). */
export const WARM_UP_MS = 200;

export async function memoryToNull(
  bytes: number,
  parallel: ChunkPool | undefined,
  minMs = 0,
): Promise<{ seal: MemoryRun; open: MemoryRun }> {
  const { dek, fileNonce, header } = standaloneFileSecrets();
  const piece = randomBytes(1 << 20);
  function* plain(total: number): Generator<Buffer> {
    for (let done = 0; done < total; done += piece.length) {
      yield done + piece.length <= total ? piece : piece.subarray(0, total - done);
    }
  }
  const sink = (keep?: Buffer[]) => {
    const w = new Writable({
      highWaterMark: 1 << 22,
      write(chunk: Buffer, _enc, cb) {
        keep?.push(chunk);
        cb();
      },
    });
    if (!keep) Object.defineProperty(w, RELEASES_WRITTEN_CHUNKS, { value: true });
    return w;
  };
  const sampleBytes = 64e6;
  const parts: Buffer[] = [];
  await encryptStream(plain(sampleBytes), sink(parts), { header, dek, fileNonce });
  const sealed = Buffer.concat(parts).subarray(header.length);
  parts.length = 0;
  const open = async (total: number) => {
    for (let done = 0; done < total; done += sampleBytes) {
      await decryptStream(
        (function* () {
          for (let o = 0; o < sealed.length; o += 1 << 20) yield sealed.subarray(o, o + (1 << 20));
        })(),
        sink(),
        { dek, fileNonce, parallel },
      );
    }
    return Math.ceil(total / sampleBytes) * sampleBytes;
  };
  const seal = async (total: number) => {
    await encryptStream(plain(total), sink(), { header, dek, fileNonce, parallel });
    return total;
  };
  const measure = async (run: (total: number) => Promise<number>): Promise<MemoryRun> => {
    // Warm-up, as long as the AES limit's (rawAes 200 ms in bench/child.ts): JIT in this thread
    // and in the workers, the heaps grown to their working size.
    for (const w0 = performance.now(); performance.now() - w0 < WARM_UP_MS; )
      await run(sampleBytes);
    // At least `bytes`, and at least `minMs` (as long as the limit is measured: a 128 MB run is
    // over in ~50 ms, too short for a figure on a shared machine).
    const c0 = process.cpuUsage();
    const f0 = process.resourceUsage().minorPageFault;
    const t0 = performance.now();
    let done = 0;
    do done += await run(bytes);
    while (performance.now() - t0 < minMs);
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    return {
      mbs: done / 1e6 / (ms / 1000),
      cpuPerGB: ((c.user + c.system) / 1e6) * (1e9 / done),
      faultsPerMiB: ((process.resourceUsage().minorPageFault - f0) * 2 ** 20) / done,
    };
  };
  return { seal: await measure(seal), open: await measure(open) };
}

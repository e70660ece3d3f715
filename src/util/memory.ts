/**
 * How the file path keeps its garbage small and cheap (issue #9: constant memory, and speed).
 *
 * node:crypto returns a fresh buffer for every 64 KiB chunk, so the stream collects its own
 * garbage every few MiB (`minorCollection`, chunks.ts), which keeps the peak resident set of a
 * 1 GB stream under 150 MB. But glibc's malloc gives the free top of a heap back to the kernel as
 * soon as it exceeds M_TRIM_THRESHOLD, 128 KiB at process start; so every page freed by a
 * collection was returned, and faulted in (zeroed by the kernel) again by the next chunks:
 * 46-180 minor page faults per MiB sealed, 0.5-0.7 CPU s per GB in the kernel, and the parallel
 * path ran at a third of the serial path's speed per core (docs/PERFORMANCE.md, "perf7").
 *
 * glibc raises both thresholds by itself when a block larger than the mmap threshold (and at most
 * 32 MiB, DEFAULT_MMAP_THRESHOLD_MAX) is freed: the mmap threshold to that block's size and the
 * trim threshold to twice it (mallopt(3), "dynamic mmap threshold"). So `keepFreedMemory` frees
 * one 16 MiB block, once per process: afterwards each heap keeps up to 32 MiB of freed memory for
 * reuse, enough for the ~8 MiB a thread frees per collection. No environment variable and no
 * re-exec (GLIBC_TUNABLES is read only at process start); on another C library it is a harmless
 * 16 MiB allocation (never touched: the block is fresh mmap'd memory, already zero).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (o?: { type: 'minor' | 'major' }) => void;
let collect: Collect | undefined;

/**
 * V8's gc() without starting node with --expose-gc (the flag, then a context that sees it). The
 * flag is process-wide: contexts and worker threads made afterwards see a global `gc` too.
 */
function gcFunction(): Collect {
  if (!collect) {
    const g = (globalThis as { gc?: unknown }).gc;
    if (typeof g === 'function') collect = g as Collect;
    else {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as Collect;
    }
  }
  return collect;
}

/** A minor collection (scavenge) of this thread's isolate: young buffers die in it. */
export function minorCollection(): void {
  gcFunction()({ type: 'minor' });
}

/**
 * The stream collects its garbage after sealing or opening this many bytes on one thread: with
 * V8 left alone, node:crypto's per-chunk buffers pile up to ~50-64 MB per isolate before a
 * collection frees them all at once, which raises the peak and, being above glibc's trim
 * threshold even once raised (below), is returned to the kernel and faulted in again.
 */
export const GARBAGE_BYTES = 8 << 20;
let since = 0;

/** This thread sealed or opened `bytes` more: a minor collection every GARBAGE_BYTES. */
export function collectStreamGarbage(bytes: number): void {
  since += bytes;
  if (since < GARBAGE_BYTES) return;
  since = 0;
  minorCollection();
}

/** The block whose freeing raises glibc's thresholds: 16 MiB mmap, 32 MiB trim. */
export const KEEP_FREED_BLOCK = 16 << 20;

let kept: Promise<void> | undefined;

/**
 * Frees one KEEP_FREED_BLOCK block so that glibc keeps freed memory for reuse (see above). Once
 * per process, at load (below; the thresholds are process-wide, worker threads included).
 * Resolves once the block is freed: V8 frees array buffers after a collection, possibly on a
 * background thread, so this polls for at most 250 ms and then resolves anyway (the effect is
 * only speed).
 */
export function keepFreedMemory(): Promise<void> {
  kept ??= (async () => {
    const before = process.memoryUsage().arrayBuffers;
    let block: ArrayBuffer | null = new ArrayBuffer(KEEP_FREED_BLOCK);
    if (block.byteLength !== KEEP_FREED_BLOCK) return; // read once: the allocation is not elided
    block = null;
    minorCollection();
    for (let waited = 0; waited < 250; waited += 5) {
      if (process.memoryUsage().arrayBuffers < before + KEEP_FREED_BLOCK / 2) return;
      await new Promise((r) => setTimeout(r, 5));
      minorCollection();
    }
  })();
  return kept;
}

// At load, while the heap is small: the block must come from mmap for glibc to raise the
// thresholds when it is freed, and once a heap holds a free region of 16 MiB (after a large
// collection, say) malloc serves the block from there instead and nothing changes. The bench
// process showed it: called only when its first stream started, the trim threshold stayed low.
void keepFreedMemory();

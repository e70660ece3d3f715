/**
 * The worker side of src/appliance/chunks.ts: seals or opens a segment of consecutive chunks of
 * one stream with AES-256-GCM (SPEC.md §6: chunk i's nonce is chunkNonce(i, last), no AAD). A
 * stream's payload key arrives with the first job this worker gets for it and is kept as a
 * KeyObject until `forget`; its bytes are zeroed at once.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { CHUNK_NONCE_SIZE, CHUNK_SIZE, chunkNonce, TAG_SIZE } from '../core/format.ts';

export interface ChunkJob {
  id: number;
  op: 'seal' | 'open';
  stream: number;
  key?: Uint8Array;
  /** Index of the segment's first chunk. */
  first: number;
  /** `count` plaintext chunks of CHUNK_SIZE (seal) or sealed chunks of CHUNK_SIZE + 16 (open). */
  data: Uint8Array;
  count: number;
}

export type ChunkReply =
  | { id: number; out: Uint8Array; data: Uint8Array }
  | { id: number; failed: true; data: Uint8Array };

const SEALED = CHUNK_SIZE + TAG_SIZE;

if (parentPort) {
  const port = parentPort;
  const keys = new Map<number, KeyObject>();
  const nonce = Buffer.alloc(CHUNK_NONCE_SIZE);
  port.on('message', (m: ChunkJob | { op: 'forget'; stream: number }) => {
    if (m.op === 'forget') {
      keys.delete(m.stream);
      return;
    }
    if (m.key) {
      keys.set(m.stream, createSecretKey(m.key));
      m.key.fill(0);
    }
    const key = keys.get(m.stream)!;
    const data = m.data;
    if (m.op === 'seal') {
      const out = new Uint8Array(m.count * SEALED);
      for (let i = 0; i < m.count; i++) {
        const c = createCipheriv('aes-256-gcm', key, chunkNonce(m.first + i, false, nonce), {
          authTagLength: TAG_SIZE,
        });
        out.set(c.update(data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)), i * SEALED);
        c.final();
        out.set(c.getAuthTag(), i * SEALED + CHUNK_SIZE);
      }
      data.fill(0); // plaintext
      port.postMessage({ id: m.id, out, data } satisfies ChunkReply, [
        out.buffer as ArrayBuffer,
        data.buffer as ArrayBuffer,
      ]);
      return;
    }
    const out = new Uint8Array(m.count * CHUNK_SIZE);
    for (let i = 0; i < m.count; i++) {
      const d = createDecipheriv('aes-256-gcm', key, chunkNonce(m.first + i, false, nonce), {
        authTagLength: TAG_SIZE,
      });
      d.setAuthTag(data.subarray(i * SEALED + CHUNK_SIZE, (i + 1) * SEALED));
      const pt = d.update(data.subarray(i * SEALED, i * SEALED + CHUNK_SIZE));
      try {
        d.final();
      } catch {
        // Unverified plaintext never leaves the worker.
        pt.fill(0);
        out.fill(0);
        port.postMessage({ id: m.id, failed: true, data } satisfies ChunkReply, [
          data.buffer as ArrayBuffer,
        ]);
        return;
      }
      out.set(pt, i * CHUNK_SIZE);
      pt.fill(0);
    }
    port.postMessage({ id: m.id, out, data } satisfies ChunkReply, [
      out.buffer as ArrayBuffer,
      data.buffer as ArrayBuffer,
    ]);
  });
  port.postMessage({ ready: true });
}

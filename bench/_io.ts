import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { randomFillSync, randomBytes } from 'node:crypto';
import { writeFileSync, rmSync } from 'node:fs';
import { encryptStream, sealFileHeader } from '../src/appliance/stream.ts';
import { freshFileSecrets } from '../src/core/format.ts';
const f = '/tmp/bf_io_plain'; const size = 256e6;
const b = Buffer.allocUnsafe(size); randomFillSync(b); writeFileSync(f, b);
for (const hwm of [1<<16, 1<<20]) {
  let t0 = performance.now();
  await pipeline(createReadStream(f, { highWaterMark: hwm }), createWriteStream('/tmp/bf_io_out'));
  console.log('copy', hwm, (size/1e6/((performance.now()-t0)/1000)).toFixed(0), 'MB/s');
  const { dek, fileNonce } = freshFileSecrets();
  const header = sealFileHeader({ scheme: 1, mode: 2, keyring: 'k', masterVersion: 1, managerKeyVersion: 1, itemId: randomBytes(16), itemData: randomBytes(16), ticket: randomBytes(64), fileNonce } as any, randomBytes(32), dek);
  t0 = performance.now();
  await encryptStream(createReadStream(f, { highWaterMark: hwm }), createWriteStream('/tmp/bf_io_out'), { header, dek, fileNonce });
  console.log('enc', hwm, (size/1e6/((performance.now()-t0)/1000)).toFixed(0), 'MB/s');
}
rmSync(f); rmSync('/tmp/bf_io_out');

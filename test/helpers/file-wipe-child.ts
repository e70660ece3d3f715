/**
 * A child process for test/file-wipe.test.ts: encrypts a file (argv: path, positional | stream,
 * input, output) with the worker pool, keeps the process and its workers alive, says "done", and
 * waits for stdin to close, so that the parent can scan its memory for the file's plaintext.
 */
import { closeSync, createWriteStream, openSync } from 'node:fs';
import { createChunkPool } from '../../src/appliance/chunks.ts';
import { encryptFileAt } from '../../src/appliance/positional.ts';
import { encryptStream, readFilePieces } from '../../src/appliance/stream.ts';
import { fileSecrets } from './file-fixtures.ts';

const [path, input, output] = process.argv.slice(2) as [string, string, string];
const pool = await createChunkPool(1);
const s = fileSecrets();
if (path === 'positional') {
  const fin = openSync(input, 'r');
  const fout = openSync(output, 'w');
  try {
    await encryptFileAt(fin, fout, { ...s, pool });
  } finally {
    closeSync(fin);
    closeSync(fout);
  }
} else {
  await encryptStream(readFilePieces(input), createWriteStream(output), { ...s, parallel: pool });
}
// The workers forget the stream (and wipe their buffers) on a message of their own: let it land.
await new Promise((r) => setTimeout(r, 300));
process.stdout.write('done\n');
process.stdin.resume();
process.stdin.on('end', () => {
  void pool.close().then(() => process.exit(0));
});

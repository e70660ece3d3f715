import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { isBlindfoldError } from '../src/core/errors.ts';
import { createAtomicWriteStream, toIoError, writeFileAtomic } from '../src/util/atomic.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-atomic-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ls = async () => (await readdir(dir)).sort();
const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

describe('writeFileAtomic', () => {
  test('creates the file whole, mode 0o600, no temporary file left', async () => {
    const p = join(dir, 'a.bin');
    const data = randomBytes(300_000);
    await writeFileAtomic(p, data);
    assert.deepEqual(await readFile(p), data);
    assert.equal((await stat(p)).mode & 0o777, 0o600);
    assert.deepEqual(await ls(), ['a.bin']);
    await rm(p);
  });

  test('replaces an existing file; strings are written as UTF-8; mode option', async () => {
    const p = join(dir, 'b.txt');
    await writeFile(p, 'old');
    await writeFileAtomic(p, 'new ✓', { mode: 0o640 });
    assert.equal(await readFile(p, 'utf8'), 'new ✓');
    assert.deepEqual(await ls(), ['b.txt']);
    await rm(p);
  });

  test('a missing directory is ERR_IO naming the path, and nothing is created', async () => {
    const p = join(dir, 'no', 'such', 'c.bin');
    await assert.rejects(
      writeFileAtomic(p, 'x'),
      (e: unknown) => isBlindfoldError(e, 'ERR_IO') && e.message.includes(p),
    );
    assert.deepEqual(await ls(), []);
  });
});

describe('createAtomicWriteStream', () => {
  test('the destination keeps its old content until commit, then appears whole', async () => {
    const p = join(dir, 'd.bin');
    await writeFile(p, 'original');
    const w = await createAtomicWriteStream(p);
    assert.match(w.tempPath, /\/\.d\.bin\.[0-9a-f]{12}\.tmp$/);
    const data = randomBytes(4 << 20);
    for (let o = 0; o < data.length; o += 1 << 20) {
      const ok = w.stream.write(data.subarray(o, o + (1 << 20)));
      if (!ok) await new Promise((r) => w.stream.once('drain', r));
      assert.equal(await readFile(p, 'utf8'), 'original');
    }
    assert.ok(await exists(w.tempPath));
    await w.commit();
    assert.deepEqual(await readFile(p), data);
    assert.equal((await stat(p)).mode & 0o777, 0o600);
    assert.deepEqual(await ls(), ['d.bin']);
    await w.abort(); // a no-op after commit
    assert.deepEqual(await readFile(p), data);
    await assert.rejects(w.commit(), (e: unknown) => isBlindfoldError(e, 'ERR_INVALID_ARGUMENT'));
    await rm(p);
  });

  test('works as a pipeline destination (the pipeline ends the stream)', async () => {
    const p = join(dir, 'e.bin');
    const w = await createAtomicWriteStream(p);
    const parts = [randomBytes(10), randomBytes(100_000), randomBytes(1)];
    await pipeline(parts, w.stream);
    await w.commit();
    assert.deepEqual(await readFile(p), Buffer.concat(parts));
    await rm(p);
  });

  test('abort leaves nothing, and leaves an existing file intact', async () => {
    const p = join(dir, 'f.bin');
    const w = await createAtomicWriteStream(p);
    w.stream.write(randomBytes(100_000));
    await w.abort();
    await w.abort(); // idempotent
    assert.deepEqual(await ls(), []);
    await assert.rejects(w.commit(), (e: unknown) => isBlindfoldError(e, 'ERR_INVALID_ARGUMENT'));

    await writeFile(p, 'keep me');
    const w2 = await createAtomicWriteStream(p);
    w2.stream.write(randomBytes(100_000));
    await w2.abort();
    assert.equal(await readFile(p, 'utf8'), 'keep me');
    assert.deepEqual(await ls(), ['f.bin']);
    await rm(p);
  });

  test('a source that fails mid-way: abort leaves no temporary file and the old file', async () => {
    const p = join(dir, 'g.bin');
    await writeFile(p, 'previous');
    const w = await createAtomicWriteStream(p);
    async function* failing() {
      yield randomBytes(200_000);
      throw new Error('source broke');
    }
    await assert.rejects(pipeline(failing(), w.stream), /source broke/);
    // the stream was destroyed by the pipeline: commit refuses and cleans up
    await assert.rejects(w.commit(), (e: unknown) => isBlindfoldError(e, 'ERR_IO'));
    await w.abort();
    assert.equal(await readFile(p, 'utf8'), 'previous');
    assert.deepEqual(await ls(), ['g.bin']);
    await rm(p);
  });

  test('a failing write (EFBIG under `ulimit -f`) is ERR_IO and leaves no temporary file', {
    skip: process.platform !== 'linux',
  }, async () => {
    const sub = join(dir, 'limited');
    const code = `
      process.on('SIGXFSZ', () => {});
      const { writeFileAtomic, createAtomicWriteStream } = await import(${JSON.stringify(new URL('../src/util/atomic.ts', import.meta.url).pathname)});
      const { pipeline } = await import('node:stream/promises');
      const { mkdirSync, readdirSync } = await import('node:fs');
      const dir = ${JSON.stringify(sub)};
      mkdirSync(dir);
      const out = [];
      try { await writeFileAtomic(dir + '/a', new Uint8Array(1 << 20)); out.push('no error'); } catch (e) { out.push(e.code, e.message); }
      const w = await createAtomicWriteStream(dir + '/b');
      try { await pipeline([Buffer.alloc(1 << 20)], w.stream); out.push('no error'); } catch (e) { out.push(e.code); await w.abort(); }
      out.push(readdirSync(dir).length);
      console.log(JSON.stringify(out));
    `;
    const r = spawnSync(
      'bash',
      [
        '-c',
        `ulimit -f 64 && exec "${process.execPath}" --import tsx --input-type=module -e "$0"`,
        code,
      ],
      {
        encoding: 'utf8',
        cwd: new URL('..', import.meta.url).pathname,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const [c1, msg, c2, left] = JSON.parse(r.stdout.trim());
    assert.equal(c1, 'ERR_IO');
    assert.match(msg, /limited\/a: file too large \(EFBIG\)/);
    assert.equal(c2, 'ERR_IO');
    assert.equal(left, 0);
  });

  test('creating the temporary file in a missing directory is ERR_IO', async () => {
    await assert.rejects(createAtomicWriteStream(join(dir, 'nope', 'x')), (e: unknown) =>
      isBlindfoldError(e, 'ERR_IO'),
    );
  });
});

describe('error mapping', () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: something`), { code });
  test('ENOSPC and EDQUOT say the disk is full', () => {
    for (const c of ['ENOSPC', 'EDQUOT']) {
      const e = toIoError(errno(c), 'write', '/data/x.bf');
      assert.equal(e.code, 'ERR_IO');
      assert.equal(e.message, 'no space left on device writing /data/x.bf');
      assert.equal((e.cause as NodeJS.ErrnoException).code, c);
    }
  });
  test('other errors name the action, the path and the errno', () => {
    assert.equal(
      toIoError(errno('EACCES'), 'write', '/p').message,
      'cannot write /p: permission denied (EACCES)',
    );
    assert.equal(
      toIoError(errno('EWEIRD'), 'write', '/p').message,
      'cannot write /p: EWEIRD: something (EWEIRD)',
    );
    assert.equal(toIoError(new Error('plain'), 'read', '/p').message, 'cannot read /p: plain');
  });
});

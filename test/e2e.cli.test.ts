/**
 * The command line through real processes: `blindfold up` (manager + appliance processes), then
 * `blindfold encrypt/decrypt` on files of several sizes (100 MB included), byte ranges, and the
 * failures that must lose nothing: tampered and truncated files, a manager that is down, bad
 * arguments. Each failure exits non-zero with a stable code and leaves no output file. And
 * `blindfold up --locations 3` (a blinder process too): a hom3 round trip and a clean stop.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createJsonClient } from '../src/appliance/client.ts';
import { equalBytes } from '../src/core/bytes.ts';
import { BIN, cleanup, tmpDir } from './helpers/deploy.ts';

function run(args: string[], env: NodeJS.ProcessEnv, input?: Buffer) {
  return new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    p.on('exit', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    p.stdin.end(input);
  });
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

// Fixed ports for `blindfold up` are drawn below Linux's ephemeral range (32768-60999): a port in
// it can be taken at any moment by the local end of some outgoing connection (another test's, or
// PostgreSQL's), and then `up` fails with EADDRINUSE (seen once in CI with a port of 52312).
const port = 20000 + Math.floor(Math.random() * 5900);

describe('blindfold CLI against `blindfold up` (real processes)', () => {
  let home: string;
  let work: string;
  let up: ChildProcess;
  let env: NodeJS.ProcessEnv;
  let upLog = '';

  const startUp = async () => {
    up = spawn(
      process.execPath,
      [BIN, 'up', '--port', String(port), '--local-port', String(port + 1)],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    up.stdout!.on('data', (d: Buffer) => {
      upLog += d.toString();
    });
    up.stderr!.on('data', (d: Buffer) => {
      upLog += d.toString();
    });
    for (let i = 0; i < 600 && !upLog.includes('Blindfold is up'); i++) {
      if (up.exitCode !== null) throw new Error(`up exited: ${upLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(upLog, /Blindfold is up/);
  };
  const stopUp = async () => {
    if (up && up.exitCode === null) {
      const done = new Promise((r) => up.once('exit', r));
      up.kill('SIGTERM');
      await done;
    }
  };

  before(async () => {
    home = await tmpDir();
    work = await tmpDir();
    env = { ...process.env, BLINDFOLD_HOME: home, BLINDFOLD_LOG: 'warn' };
    delete env.BLINDFOLD_ROOT_KEY;
    await startUp();
  });
  after(async () => {
    await stopUp();
    await cleanup(home, work);
  });

  test('round trips of 0, 1, 65535, 65536, 65537 bytes and 100 MB; ranges', async () => {
    for (const size of [0, 1, 65535, 65536, 65537]) {
      const f = join(work, `f${size}`);
      const data = randomBytes(size);
      await writeFile(f, data);
      const e = await run(['encrypt', f], env);
      assert.equal(e.code, 0, e.stderr);
      const d = await run(['decrypt', `${f}.bf`, '-o', `${f}.out`], env);
      assert.equal(d.code, 0, d.stderr);
      assert.deepEqual(await readFile(`${f}.out`), data);
    }
    const big = join(work, 'big');
    const chunk = randomBytes(1 << 20);
    await writeFile(big, Buffer.concat(Array.from({ length: 100 }, () => chunk)));
    assert.equal((await run(['encrypt', big], env)).code, 0);
    // 1600 chunks of 64 KiB, each with a 16-byte tag, after a header of a few hundred bytes.
    const headerLen = (await stat(`${big}.bf`)).size - 100 * (1 << 20) - 1600 * 16;
    assert.ok(headerLen >= 120 && headerLen < 2000, `header length ${headerLen}`);
    const d = await run(['decrypt', `${big}.bf`, '-o', `${big}.out`], env);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(await sha256File(`${big}.out`), await sha256File(big));
    const r = await run(['decrypt', `${big}.bf`, '--range', '70000000:70000100', '-o', '-'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout, chunk.subarray(70000000 % (1 << 20), (70000000 % (1 << 20)) + 100));
  });

  test('a file of 8 MiB or more goes through the worker threads both ways (file to file: positional) and round-trips', async () => {
    // BLINDFOLD_STREAM_STATS=1 makes the CLI report the path its stream took (src/cli/files.ts).
    const statsEnv = { ...env, BLINDFOLD_STREAM_STATS: '1' };
    const f = join(work, 'par');
    const data = randomBytes(9 * (1 << 20) + 123); // 9 whole segments of 16 chunks, then 123 bytes
    await writeFile(f, data);
    const e = await run(['encrypt', f], statsEnv);
    assert.equal(e.code, 0, e.stderr);
    const em =
      /stream-stats encrypt parallel workers=(\d+) segments=(\d+) bytes=(\d+) local=(\d+) path=positional/.exec(
        e.stderr,
      );
    assert.ok(em, `encrypt did not take the parallel path: ${e.stderr}`);
    assert.ok(Number(em[1]) >= 1);
    // Every segment followed by more bytes is sealed in parallel: by a worker, or by the main
    // thread while the workers have enough in flight; the final chunk on the main thread.
    assert.equal(Number(em[2]), 9);
    assert.equal(Number(em[3]), 9 * (1 << 20));
    assert.ok(Number(em[2]) - Number(em[4]) >= 1, 'no segment went to a worker');
    const d = await run(['decrypt', `${f}.bf`, '-o', `${f}.out`], statsEnv);
    assert.equal(d.code, 0, d.stderr);
    const dm =
      /stream-stats decrypt parallel workers=(\d+) segments=(\d+) bytes=(\d+) local=(\d+) path=positional/.exec(
        d.stderr,
      );
    assert.ok(dm, `decrypt did not take the parallel path: ${d.stderr}`);
    assert.equal(Number(dm[2]), 9);
    assert.ok(Number(dm[2]) - Number(dm[4]) >= 1, 'no segment went to a worker');
    assert.equal(Number(dm[3]), 9 * 16 * ((1 << 16) + 16));
    assert.ok(equalBytes(await readFile(`${f}.out`), data), 'round trip differs');
    // From stdin the size is unknown: the stream path, in parallel; its file decrypts the same.
    const p = await run(['encrypt', '-', '-o', `${f}.piped.bf`], statsEnv, data);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stderr, /stream-stats encrypt parallel workers=\d+ segments=9 .* path=stream/);
    const pd = await run(['decrypt', `${f}.piped.bf`, '-o', '-'], statsEnv);
    assert.equal(pd.code, 0, pd.stderr);
    assert.match(pd.stderr, /stream-stats decrypt parallel .* path=stream/);
    assert.ok(equalBytes(pd.stdout, data), 'stdin round trip differs');
    // Below 8 MiB the serial path is the faster one, and is taken.
    const small = join(work, 'ser');
    await writeFile(small, data.subarray(0, 1 << 20));
    const s = await run(['encrypt', small], statsEnv);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stderr, /stream-stats encrypt serial/);
  });

  test('stdin to stdout', async () => {
    const data = randomBytes(200000);
    const e = await run(['encrypt', '-', '-o', '-'], env, data);
    assert.equal(e.code, 0, e.stderr);
    const d = await run(['decrypt', '-', '-o', '-'], env, e.stdout);
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(d.stdout, data);
  });

  test('tampered, truncated and appended files fail with a stable code and leave no output', async () => {
    const f = join(work, 'victim');
    await writeFile(f, randomBytes(300000));
    assert.equal((await run(['encrypt', f], env)).code, 0);
    const good = await readFile(`${f}.bf`);
    const cases: [string, Buffer, RegExp][] = [
      [
        'chunk byte flipped',
        Buffer.from(good).fill(good[good.length - 100]! ^ 1, good.length - 100, good.length - 99),
        /ERR_DECRYPT/,
      ],
      [
        'header byte flipped',
        Buffer.from(good).fill(good[60]! ^ 1, 60, 61),
        /ERR_(DECRYPT|TICKET_INVALID|DECODE)/,
      ],
      [
        'truncated at a chunk boundary',
        good.subarray(0, good.length - (300000 % 65536) - 16),
        /ERR_TRUNCATED/,
      ],
      ['truncated mid-chunk', good.subarray(0, good.length - 7), /ERR_(DECRYPT|TRUNCATED)/],
      ['appended bytes', Buffer.concat([good, Buffer.alloc(20)]), /ERR_DECRYPT/],
      ['not a Blindfold file', Buffer.from('hello world, this is plain text'), /ERR_DECODE/],
    ];
    for (const [name, bytes, code] of cases) {
      const p = join(work, 'bad.bf');
      await writeFile(p, bytes);
      const out = join(work, 'bad.out');
      const r = await run(['decrypt', p, '-o', out], env);
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, code, name);
      assert.doesNotMatch(r.stderr, /ERR_INTERNAL|at .*\.ts/, `${name}: no stack trace`);
      assert.equal(existsSync(out), false, `${name}: no output file`);
    }
  });

  test('a full disk: clear ERR_IO, no partial file, nothing else lost', async (t) => {
    const small = join(work, 'small-fs');
    await mkdir(small);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=128k', 'tmpfs', small]);
    if (m.status !== 0) {
      t.skip(
        'cannot mount a small tmpfs here (needs root); the atomic-write tests cover ENOSPC mapping',
      );
      return;
    }
    try {
      const f = join(work, 'too-big');
      await writeFile(f, randomBytes(400000));
      const e = await run(['encrypt', f, '-o', join(small, 'too-big.bf')], env);
      assert.equal(e.code, 1, e.stderr);
      assert.match(e.stderr, /ERR_IO.*no space left on device/);
      assert.deepEqual(await readdir(small), [], 'no partial or temporary file left');
      // A file that fits still works on the same file system.
      await writeFile(join(work, 'fits'), randomBytes(1000));
      assert.equal(
        (await run(['encrypt', join(work, 'fits'), '-o', join(small, 'fits.bf')], env)).code,
        0,
      );
    } finally {
      spawnSync('umount', [small]);
    }
  });

  test('bad arguments get a usage error (exit 2), --help works everywhere', async () => {
    for (const args of [
      ['encrypt'],
      ['decrypt', 'a', 'b'],
      ['frobnicate'],
      ['decrypt', 'x.bf', '--range', '5:2'],
    ]) {
      const r = await run(args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /ERR_INVALID_ARGUMENT/);
    }
    for (const args of [
      ['--help'],
      ['up', '--help'],
      ['encrypt', '--help'],
      ['decrypt', '--help'],
      ['manager', '--help'],
      ['keys', 'rotate', '--help'],
      ['audit', 'verify', '--help'],
      ['appliance', 'init', '--help'],
    ]) {
      const r = await run(args, env);
      assert.equal(r.code, 0, args.join(' '));
      assert.match(r.stdout.toString(), /Usage|blindfold/);
    }
    const r = await run(['encrypt', join(work, 'does-not-exist')], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_IO.*no such file/);
  });

  test('status, key rotation, audit verify; restart keeps all data; manager down is a clear error', async () => {
    const f = join(work, 'keep');
    const data = randomBytes(5000);
    await writeFile(f, data);
    assert.equal((await run(['encrypt', f], env)).code, 0);
    const s = await run(['status'], env);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout.toString(), /"manager": "reachable"/);
    const rot = await run(['keys', 'rotate'], env);
    assert.equal(rot.code, 0, rot.stderr);
    assert.match(rot.stderr, /manager key version 2/);
    // Rewrap moves the file to the newest versions without touching its chunks.
    const before = await readFile(`${f}.bf`);
    const rw = await run(['rewrap', `${f}.bf`], env);
    assert.equal(rw.code, 0, rw.stderr);
    const after = await readFile(`${f}.bf`);
    const managerVersionAt = (b: Buffer) => b.readUInt32BE(12 + 2 + 2 + b.readUInt16BE(14) + 4);
    assert.equal(managerVersionAt(before), 1);
    assert.equal(managerVersionAt(after), 2);
    assert.deepEqual(after.subarray(after.length - 5016), before.subarray(before.length - 5016));
    const v = await run(['audit', 'verify'], env);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout.toString(), /audit chain valid/);

    await stopUp();
    const down = await run(['decrypt', `${f}.bf`, '-o', `${f}.out`], env);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /ERR_UNAVAILABLE/);
    assert.equal(existsSync(`${f}.out`), false);

    upLog = '';
    await startUp();
    const d = await run(['decrypt', `${f}.bf`, '-o', `${f}.out`], env);
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(await readFile(`${f}.out`), data);
  });
});

/** Child processes of `pid` (Linux /proc: the 4th field of /proc/N/stat is the parent). */
async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = await readFile(`/proc/${d}/stat`, 'utf8');
      // comm (2nd field) may hold spaces: parse after its closing parenthesis.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('`blindfold up --locations 3` (manager, appliance and a blinder as real processes)', () => {
  test('banner, encrypt and decrypt through the hom3 chain, clean stop', async () => {
    const home = await tmpDir();
    const work = await tmpDir();
    const env: NodeJS.ProcessEnv = { ...process.env, BLINDFOLD_HOME: home, BLINDFOLD_LOG: 'warn' };
    delete env.BLINDFOLD_ROOT_KEY;
    const base = 26000 + Math.floor(Math.random() * 6000); // below the ephemeral range, see `port`
    const up = spawn(
      process.execPath,
      [BIN, 'up', '--locations', '3', '--port', String(base), '--local-port', String(base + 1)],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    up.stdout!.on('data', (d: Buffer) => {
      log += d.toString();
    });
    up.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
    });
    const exited = new Promise<number | null>((r) => up.once('exit', (c) => r(c)));
    try {
      for (let i = 0; i < 600 && !log.includes('Blindfold is up'); i++) {
        if (up.exitCode !== null) throw new Error(`up exited: ${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(log, /Blindfold is up \(3 locations\)/);
      const blinder = /blinder (bl-[0-9a-f]{16}) on (https:\/\/127\.0\.0\.1:(\d+))/.exec(log);
      assert.ok(blinder, log);
      assert.equal(Number(blinder[3]), base + 11);
      // manager, blinder and appliance: three processes of their own.
      const kids = await childrenOf(up.pid!);
      assert.equal(kids.length, 3, `children of up: ${kids}`);

      const f = join(work, 'three');
      const data = randomBytes(70000);
      await writeFile(f, data);
      const e = await run(['encrypt', f], env);
      assert.equal(e.code, 0, e.stderr);
      const d = await run(['decrypt', `${f}.bf`, '-o', `${f}.out`], env);
      assert.equal(d.code, 0, d.stderr);
      assert.deepEqual(await readFile(`${f}.out`), data);
      // The keyring is hom3 through that blinder, and the blinder audited both requests.
      const s = await run(['status'], env);
      assert.equal(s.code, 0, s.stderr);
      assert.match(s.stdout.toString(), /"mode": "hom3"/);
      const token = (await readFile(join(home, 'blinder-1', 'blinder.token'), 'utf8')).trim();
      const caPem = await readFile(join(home, 'manager', 'pki', 'ca.pem'), 'utf8');
      const c = createJsonClient({ baseUrl: blinder[2]!, caPem, token, retries: 0 });
      try {
        const audit = await c.request<{ entries: { action: string; outcome: string }[] }>(
          'GET',
          '/v1/audit',
        );
        const ok = (a: string) => audit.entries.some((x) => x.action === a && x.outcome === 'ok');
        assert.ok(ok('chain.setup') && ok('chain.create') && ok('chain.recover'));
      } finally {
        c.close();
      }

      up.kill('SIGTERM');
      assert.equal(await exited, 0, log);
      for (const pid of kids) assert.equal(alive(pid), false, `process ${pid} left running`);
    } finally {
      if (up.exitCode === null) {
        up.kill('SIGKILL');
        await exited;
      }
      await cleanup(home, work);
    }
  });
});

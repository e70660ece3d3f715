/**
 * `blindfold up --threshold 2/3` through real processes (ephemeral ports): n manager nodes and an
 * appliance; the CLI encrypts and decrypts through them while nodes are killed. (Restarting
 * nodes with nothing lost is tested in threshold.test.ts.)
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BIN, cleanup, tmpDir } from './helpers/deploy.ts';

function run(args: string[], env: NodeJS.ProcessEnv) {
  return new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    p.on('exit', (code) => resolve({ code, stderr: err }));
  });
}

describe('blindfold up --threshold 2/3 (real processes)', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let up: ChildProcess | undefined;
  let log = '';

  const startUp = async () => {
    log = '';
    up = spawn(
      process.execPath,
      [BIN, 'up', '--threshold', '2/3', '--port', '0', '--local-port', '0'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    up.stdout!.on('data', (d: Buffer) => {
      log += d.toString();
    });
    up.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
    });
    for (let i = 0; i < 600 && !log.includes('Blindfold is up'); i++) {
      if (up.exitCode !== null) throw new Error(`up exited: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(log, /Blindfold is up: 2-of-3 threshold manager nodes/);
  };
  const stopUp = async () => {
    if (up && up.exitCode === null) {
      const done = new Promise((r) => up!.once('exit', r));
      up.kill('SIGTERM');
      await done;
    }
  };
  const nodePid = (j: number) => {
    const m = new RegExp(`manager node ${j}: https://127\\.0\\.0\\.1:\\d+ \\(pid (\\d+)`).exec(log);
    assert.ok(m, log);
    return Number(m[1]);
  };

  before(async () => {
    home = await tmpDir();
    env = { ...process.env, BLINDFOLD_HOME: home, BLINDFOLD_LOG: 'warn' };
    delete env.BLINDFOLD_ROOT_KEY;
    await startUp();
  });
  after(async () => {
    await stopUp();
    await cleanup(home);
  });

  test('prints every node; encrypt/decrypt survive one killed node and fail clearly with two', async () => {
    for (const j of [1, 2, 3]) assert.ok(nodePid(j) > 0);
    assert.match(log, /appliance local API: http:\/\/127\.0\.0\.1:\d+/);
    const f = join(home, 'data.txt');
    const data = randomBytes(100000);
    await writeFile(f, data);
    assert.equal((await run(['encrypt', f], env)).code, 0);

    process.kill(nodePid(2), 'SIGKILL');
    const st = await new Promise<string>((resolve) => {
      const p = spawn(process.execPath, [BIN, 'status'], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      p.on('exit', () => resolve(out));
    });
    const nodes = (JSON.parse(st) as { nodes: { index: number; status: string }[] }).nodes;
    assert.deepEqual(
      nodes.map((n) => [n.index, n.status.split(':')[0]]),
      [
        [1, 'reachable'],
        [2, 'unreachable'],
        [3, 'reachable'],
      ],
    );
    const d1 = await run(['decrypt', `${f}.bf`, '-o', `${f}.1`], env);
    assert.equal(d1.code, 0, d1.stderr);
    assert.deepEqual(await readFile(`${f}.1`), data);

    process.kill(nodePid(3), 'SIGKILL');
    const d2 = await run(['decrypt', `${f}.bf`, '-o', `${f}.2`], env);
    assert.notEqual(d2.code, 0);
    assert.match(d2.stderr, /ERR_UNAVAILABLE/);
    assert.match(d2.stderr, /1 of 3 manager nodes answered, 2 are needed/);

    // A second `up` on the same directory restarts every node (new ports): nothing was lost.
  });
});

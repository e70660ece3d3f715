/**
 * The `blindfold` command. Every subcommand validates its arguments, answers `--help`, and fails
 * with `error [CODE]: message` on stderr and a non-zero exit status, never a stack trace.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { enrollAppliance, loadState } from '../appliance/appliance.ts';
import { createJsonClient, type JsonClient } from '../appliance/client.ts';
import { readLocalInfo, startAppliance } from '../appliance/run.ts';
import { verifyChain } from '../core/audit.ts';
import { BlindfoldError, isBlindfoldError } from '../core/errors.ts';
import { OPERATOR_TOKEN_FILE, rootKeyFromEnv, startManager } from '../manager/run.ts';
import { loadRootKey } from '../manager/seal.ts';
import type { StoredAuditEntry } from '../store/types.ts';
import { cmdCluster, ensureIdentityFile, ensureKeyring, readIdentityFile } from './cluster.ts';
import { decryptFile, encryptFile, rewrapFile } from './files.ts';
import { cmdKeysDelete, cmdKms } from './kms.ts';

const HELP: Record<string, string> = {
  main: `blindfold — a key manager that never sees the keys it manages

Usage: blindfold <command> [options]

Commands:
  up                 run a manager and one appliance locally (what "npm start" does)
  manager            run a manager
  appliance identity make this appliance's identity key first (to bind an invite to it)
  appliance init     enroll an appliance with a manager and conceal (or receive) a master key
  appliance run      run an enrolled appliance's local API (and serve cluster transfers)
  cluster            invite, members, revoke, credentials: the appliance cluster
  blinder init|run   register and run a blinder (hom3/homN modes, a location of its own)
  encrypt FILE       encrypt a file (or - for stdin) through the local appliance
  decrypt FILE       decrypt a file (or - for stdin); --range START:END for a byte range
  status             show the local deployment
  rewrap FILE        move a file to the newest key versions without re-encrypting it
  keys rotate        rotate a keyring's manager key or master key
  keys delete NAME   schedule a keyring's deletion (keys undelete NAME cancels)
  kms                applications, API tokens and key policies of the KMS API
  audit verify       verify the manager's audit hash chain

Global options:
  --home DIR         data directory (default $BLINDFOLD_HOME or ./.blindfold)
  -h, --help         help for any command
`,
  up: `Usage: blindfold up [--home DIR] [--port 7300] [--local-port 7301] [--mode hom2] [--scheme ec-elgamal]
                    [--replicas N --store postgres://USER@HOST:PORT/DB] [--locations N]
                    [--threshold t/n]

Starts a manager (SQLite under DIR/manager) and one appliance (DIR/appliance) on loopback.
With --replicas N (and a PostgreSQL --store), N manager processes serve the same appliances on
ports 7300, 7302, 7303, ...; the appliance spreads load over them and fails over.
With --locations 3 (hom3) or more (homN), N − 2 blinder processes (DIR/blinder-i, each with its
own root key DIR/secrets/blinder-i.key) on ports 7311, 7312, ... join the keyring "default".
With --threshold t/n, n manager nodes (ports 7300, 7302, 7303, ...; --port 0 for ephemeral ones)
each hold a Shamir share of the appliance's key, their own SQLite store under DIR/nodes/node-j and
their own root key (DIR/secrets/node-j.root.key); any t of them answer every request, so up to
n - t may be down (SPEC.md §5.6; ec-elgamal only).
The first run creates the local CA, a root key file (DIR/secrets/root.key), the operator token,
a keyring "default" and the appliance's concealed master key. Later runs keep all data.
In production, give the manager its root key from outside its data directory
(BLINDFOLD_ROOT_KEY or --root-key-file): see docs/OPERATIONS.md.
`,
  manager: `Usage: blindfold manager [--home DIR] [--host 127.0.0.1] [--port 7300]
                         [--store sqlite|sqlite:PATH|postgres://USER@HOST:PORT/DB]
                         [--hostname NAME ...] [--root-key-file FILE] [--insecure-http]
                         [--workers N]

--workers sets the worker threads that run the group operations of recoveries and item
creations (default: cores − 1, the main thread being busy with TLS, HTTP and the store; none on a
single core; 0 runs them on the main thread).

--hostname adds a DNS name or IP address to the server certificate (repeat it for several), for
appliances that reach the manager by a name other than localhost.

The root key comes from BLINDFOLD_ROOT_KEY (base64url, 32 bytes) or --root-key-file (mode 0600).
Without one the manager refuses to start: stealing its database alone must yield nothing.
TLS is on by default (a local CA is created at first start); --insecure-http serves plain HTTP,
on which appliances cannot authenticate (mutual TLS).
`,
  'appliance init': `Usage: blindfold appliance init --manager URL --ca FILE
                              (--token TOKEN | --secret S | --allow-listed | --attestation FILE)
                              [--name NAME] [--keyring default] [--import-key FILE] [--wait 60]
                              [--home DIR]

Enrolls, vouched for by an invite token (criterion i, "blindfold cluster invite") or by the
manager's credentials database (criterion ii: a pre-shared secret, an allow-listed identity key
made with "blindfold appliance identity", or an attestation document). Then, for --keyring:
if the keyring has no master yet, generates one here and conceals it at once; if this appliance
holds it, adds a new master-key version; with --import-key, conceals those 32 bytes; otherwise
receives the master from a member, re-concealed for this appliance (waits up to --wait seconds
for the voucher or another member to serve it). The plain master key is never stored or sent.
`,
  'appliance identity': `Usage: blindfold appliance identity [--home DIR]

Creates the appliance's identity key (DIR/identity.key, 0600) if absent and prints its
fingerprint, for "blindfold cluster invite --fingerprint" or an allow-listed credential.
`,
  'appliance run': `Usage: blindfold appliance run [--home DIR] [--port 7301] [--cache-size N] [--cache-ttl SECONDS]
                              [--console-imports] [--kms-cors ORIGIN[,ORIGIN...]]

Serves the local API on 127.0.0.1 (token in DIR/local-api.token) and the KMS API for
applications under /kms/v1 (application tokens; reference at /kms/v1/docs). Item keys live in
memory only while a request uses them; --cache-size N (default 0: off) keeps up to N item keys for
--cache-ttl seconds (default 60), wiped on eviction. --console-imports accepts master keys
entered in the web console (SPEC.md §5.9): the appliance publishes an import key, whose
fingerprint "blindfold status" shows, and polls the manager for imports sealed to it.
--kms-cors lets browser pages of those origins call the KMS API.
`,
  encrypt: `Usage: blindfold encrypt FILE|- [-o OUT|-] [--keyring default] [--home DIR]

Output defaults to FILE.bf. Written atomically: a failure leaves no partial file.
`,
  decrypt: `Usage: blindfold decrypt FILE|- [-o OUT|-] [--range START:END] [--home DIR]

Output defaults to FILE without .bf. Every chunk is authenticated before it is written; a
tampered or truncated file fails and leaves no output. --range decrypts bytes [START, END) only.
`,
  status: `Usage: blindfold status [--home DIR]\n`,
  'keys rotate': `Usage: blindfold keys rotate [--keyring default] [--master] [--home DIR]

Without --master: a new manager-key version (operator), and the running appliance re-conceals its
master under it without anyone seeing the master. With --master: a new master-key version,
generated and concealed on the appliance. New files use the new versions; existing files keep
decrypting with theirs (nothing is retired). "blindfold rewrap FILE" moves a file to the newest
versions by replacing its header only.
`,
  rewrap: `Usage: blindfold rewrap FILE [-o OUT] [--home DIR]

Re-wraps the file's data key under a new item with the keyring's newest key versions and copies
the encrypted chunks unchanged (no re-encryption). Without -o the file is replaced atomically.
`,
  'audit verify': `Usage: blindfold audit verify [--home DIR] [--manager URL]

Reads the whole audit log through the operator API and checks its hash chain.
`,
};

function home(values: { home?: string }): string {
  return resolve(values.home ?? process.env.BLINDFOLD_HOME ?? '.blindfold');
}

function usage(key: string, message: string): never {
  throw new BlindfoldError('ERR_INVALID_ARGUMENT', `${message}\n\n${HELP[key] ?? HELP.main}`);
}

const common = { home: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;

type OptionSpec = Record<
  string,
  { type: 'string' | 'boolean'; short?: string; multiple?: boolean }
>;
/** Parsed options: strings for string options, booleans for flags (parseArgs guarantees it). */
// biome-ignore lint/suspicious/noExplicitAny: values are typed by the option spec at runtime
type Values = Record<string, any>;

function parse(
  key: string,
  args: string[],
  options: OptionSpec,
): { values: Values; positionals: string[] } {
  try {
    return parseArgs({
      args,
      options: { ...common, ...options },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    usage(key, (e as Error).message);
  }
}

function int(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v))
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `${name} must be a whole number`);
  return Number(v);
}

async function localClient(h: string): Promise<JsonClient> {
  const info = await readLocalInfo(join(h, 'appliance'));
  return createJsonClient({ baseUrl: info.url, token: info.token, retries: 2, timeoutMs: 60000 });
}

async function operatorClient(h: string, url?: string): Promise<JsonClient> {
  const mh = join(h, 'manager');
  const token = (await readFile(join(mh, OPERATOR_TOKEN_FILE), 'utf8').catch(() => '')).trim();
  if (!token) {
    throw new BlindfoldError(
      'ERR_UNAUTHENTICATED',
      `no operator token in ${mh}: is this a manager home?`,
    );
  }
  const caPem = await readFile(join(mh, 'pki', 'ca.pem'), 'utf8');
  let base = url;
  if (!base) {
    try {
      base = JSON.parse(await readFile(join(mh, 'manager.json'), 'utf8')).url as string;
    } catch (cause) {
      throw new BlindfoldError('ERR_UNAVAILABLE', `no running manager found in ${mh}`, { cause });
    }
  }
  return createJsonClient({ baseUrl: base, caPem, token });
}

async function waitForSignal(close: () => Promise<void>): Promise<void> {
  await new Promise<void>((resolveWait) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      close().then(resolveWait, resolveWait);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

async function cmdManager(args: string[]) {
  const { values } = parse('manager', args, {
    host: { type: 'string' },
    port: { type: 'string' },
    store: { type: 'string' },
    'root-key-file': { type: 'string' },
    'insecure-http': { type: 'boolean' },
    hostname: { type: 'string', multiple: true },
    workers: { type: 'string' },
  });
  if (values.help) return console.log(HELP.manager);
  const h = values.home ? resolve(values.home) : join(home(values), 'manager');
  const rootKey =
    rootKeyFromEnv(process.env) ??
    (values['root-key-file'] ? await loadRootKey({ file: values['root-key-file'] }) : undefined);
  if (!rootKey) {
    throw new BlindfoldError(
      'ERR_SEALED',
      'no root key: set BLINDFOLD_ROOT_KEY or pass --root-key-file (see blindfold manager --help)',
    );
  }
  const m = await startManager({
    home: h,
    host: values.host,
    port: int(values.port, '--port', 7300),
    rootKey,
    store: values.store,
    insecureHttp: values['insecure-http'],
    hostnames: values.hostname,
    workers: values.workers === undefined ? undefined : int(values.workers, '--workers', 0),
    logger: { level: process.env.BLINDFOLD_LOG ?? 'warn' },
  });
  const { writeFileAtomic } = await import('../util/atomic.ts');
  await writeFileAtomic(
    join(h, 'manager.json'),
    `${JSON.stringify({ url: m.url, pid: process.pid })}\n`,
  );
  console.error(`blindfold manager listening on ${m.url}`);
  await waitForSignal(() => m.close());
}

async function cmdApplianceInit(args: string[]) {
  const { values } = parse('appliance init', args, {
    manager: { type: 'string' },
    ca: { type: 'string' },
    token: { type: 'string' },
    name: { type: 'string' },
    keyring: { type: 'string' },
    'import-key': { type: 'string' },
    secret: { type: 'string' },
    'allow-listed': { type: 'boolean' },
    attestation: { type: 'string' },
    wait: { type: 'string' },
  });
  if (values.help) return console.log(HELP['appliance init']);
  const h = values.home ? resolve(values.home) : join(home(values), 'appliance');
  const keyring = values.keyring ?? 'default';
  const importKey = values['import-key'] ? await readImportKey(values['import-key']) : undefined;
  let state = await loadState(h).catch(() => undefined);
  if (!state) {
    const ways = [values.token, values.secret, values['allow-listed'], values.attestation].filter(
      (x) => x !== undefined,
    ).length;
    if (!values.manager || !values.ca || ways !== 1) {
      usage(
        'appliance init',
        'a new appliance needs --manager, --ca and one of --token, --secret, --allow-listed, --attestation',
      );
    }
    const caPem = await readFile(values.ca, 'utf8').catch((cause) => {
      throw new BlindfoldError('ERR_IO', `cannot read the CA certificate ${values.ca}`, { cause });
    });
    const credential = values.secret
      ? { kind: 'secret' as const, secret: values.secret as string }
      : values['allow-listed']
        ? { kind: 'fingerprint' as const }
        : values.attestation
          ? {
              kind: 'attestation' as const,
              document: new Uint8Array(
                await readFile(values.attestation).catch((cause) => {
                  throw new BlindfoldError('ERR_IO', `cannot read ${values.attestation}`, {
                    cause,
                  });
                }),
              ),
            }
          : undefined;
    state = await enrollAppliance({
      dir: h,
      managerUrl: values.manager,
      caPem,
      token: values.token,
      credential,
      name: values.name ?? 'appliance',
      identityKeyPem: await readIdentityFile(h),
    });
    console.error(`enrolled as ${state.applianceId}`);
  }
  const { Appliance } = await import('../appliance/appliance.ts');
  const a = new Appliance({ dir: h, state });
  let how: string;
  try {
    how = await ensureKeyring(a, keyring, {
      importKey,
      waitMs: 1000 * int(values.wait, '--wait', 60),
    });
  } finally {
    a.close();
  }
  if (how === 'created') {
    console.error(
      `master key for keyring "${keyring}" generated and concealed; the plain key was wiped`,
    );
  }
}

async function cmdApplianceIdentity(args: string[]) {
  const { values } = parse('appliance identity', args, {});
  if (values.help) return console.log(HELP['appliance identity']);
  const h = values.home ? resolve(values.home) : join(home(values), 'appliance');
  const id = await ensureIdentityFile(h);
  console.log(id.fingerprint);
}

async function readImportKey(path: string): Promise<Uint8Array> {
  const raw = await readFile(path).catch((cause) => {
    throw new BlindfoldError('ERR_IO', `cannot read ${path}`, { cause });
  });
  const b = new Uint8Array(raw);
  if (b.length !== 32) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      `--import-key needs exactly 32 bytes of key material, ${path} has ${b.length}`,
    );
  }
  return b;
}

async function cmdApplianceRun(args: string[]) {
  const { values } = parse('appliance run', args, {
    port: { type: 'string' },
    'cache-size': { type: 'string' },
    'cache-ttl': { type: 'string' },
    'console-imports': { type: 'boolean' },
    'kms-cors': { type: 'string' },
  });
  if (values.help) return console.log(HELP['appliance run']);
  const h = values.home ? resolve(values.home) : join(home(values), 'appliance');
  const a = await startAppliance({
    home: h,
    port: int(values.port, '--port', 7301),
    logger: { level: process.env.BLINDFOLD_LOG ?? 'warn' },
    cache: {
      maxEntries: int(values['cache-size'], '--cache-size', 0),
      ttlMs: 1000 * int(values['cache-ttl'], '--cache-ttl', 60),
    },
    consoleImports: values['console-imports'] === true,
    kmsCorsOrigins: values['kms-cors']
      ? values['kms-cors'].split(',').map((x: string) => x.trim())
      : undefined,
  });
  console.error(`blindfold appliance ${a.appliance.id} local API on ${a.url}`);
  await waitForSignal(() => a.close());
}

async function cmdUp(args: string[]) {
  const { values } = parse('up', args, {
    port: { type: 'string' },
    'local-port': { type: 'string' },
    mode: { type: 'string' },
    scheme: { type: 'string' },
    replicas: { type: 'string' },
    store: { type: 'string' },
    locations: { type: 'string' },
    threshold: { type: 'string' },
  });
  if (values.help) return console.log(HELP.up);
  const { parseThreshold } = await import('./threshold.ts');
  const threshold = values.threshold ? parseThreshold(values.threshold) : undefined;
  const { up } = await import('./up.ts');
  await up({
    home: home(values),
    port: int(values.port, '--port', 7300),
    localPort: int(values['local-port'], '--local-port', 7301),
    mode: values.mode ?? 'hom2',
    scheme: values.scheme,
    replicas: int(values.replicas, '--replicas', 1),
    store: values.store,
    locations: int(values.locations, '--locations', 2),
    threshold,
  });
}

function parseRange(s: string): { start: number; end: number } {
  const m = /^(\d+):(\d+)$/.exec(s);
  if (!m)
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      '--range takes START:END (bytes, END exclusive)',
    );
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!(end > start))
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', '--range END must be greater than START');
  return { start, end };
}

async function cmdCrypt(which: 'encrypt' | 'decrypt', args: string[]) {
  const { values, positionals } = parse(which, args, {
    output: { type: 'string', short: 'o' },
    keyring: { type: 'string' },
    range: { type: 'string' },
  });
  if (values.help) return console.log(HELP[which]);
  if (positionals.length !== 1) usage(which, `${which} takes exactly one FILE (or - for stdin)`);
  if (which === 'encrypt' && values.range) usage(which, '--range is for decrypt');
  const local = await localClient(home(values));
  try {
    const job = {
      input: positionals[0]!,
      output: values.output,
      keyring: values.keyring,
      range: values.range ? parseRange(values.range) : undefined,
      progress: process.stderr.isTTY === true,
    };
    const r = which === 'encrypt' ? await encryptFile(local, job) : await decryptFile(local, job);
    if (r.output !== '-') console.error(`${which}ed ${r.bytes} bytes -> ${r.output}`);
  } finally {
    local.close();
  }
}

async function cmdStatus(args: string[]) {
  const { values } = parse('status', args, {});
  if (values.help) return console.log(HELP.status);
  const local = await localClient(home(values));
  try {
    const s = await local.request<Record<string, unknown>>('GET', '/v1/status');
    console.log(JSON.stringify(s, null, 2));
  } finally {
    local.close();
  }
}

async function cmdKeysRotate(args: string[]) {
  const { values } = parse('keys rotate', args, {
    keyring: { type: 'string' },
    master: { type: 'boolean' },
  });
  if (values.help) return console.log(HELP['keys rotate']);
  const h = home(values);
  const keyring = values.keyring ?? 'default';
  if (!values.master) {
    // Rotation adds first: the manager creates the new version, then the appliance re-conceals
    // its master under it; nothing is retired, so every existing file keeps decrypting.
    const op = await operatorClient(h);
    try {
      await op.request('POST', `/v1/keyrings/${keyring}/rotate`);
    } finally {
      op.close();
    }
  }
  const local = await localClient(h);
  try {
    const v = await local.request<{ masterVersion: number; managerVersion: number }>(
      'POST',
      '/v1/keys/rotate',
      {
        keyring,
        master: values.master === true,
      },
    );
    console.error(
      `keyring ${keyring}: new items use master key version ${v.masterVersion}, manager key version ${v.managerVersion}`,
    );
  } finally {
    local.close();
  }
}

async function cmdRewrap(args: string[]) {
  const { values, positionals } = parse('rewrap', args, { output: { type: 'string', short: 'o' } });
  if (values.help) return console.log(HELP.rewrap);
  if (positionals.length !== 1) usage('rewrap', 'rewrap takes exactly one FILE');
  const local = await localClient(home(values));
  try {
    const r = await rewrapFile(local, positionals[0]!, values.output);
    console.error(
      `rewrapped ${r.input} -> ${r.output} (header only; ${r.payloadBytes} payload bytes copied)`,
    );
  } finally {
    local.close();
  }
}

async function cmdAuditVerify(args: string[]) {
  const { values } = parse('audit verify', args, { manager: { type: 'string' } });
  if (values.help) return console.log(HELP['audit verify']);
  const op = await operatorClient(home(values), values.manager);
  try {
    const all: StoredAuditEntry[] = [];
    let after = 0;
    for (;;) {
      const page = await op.request<{ entries: StoredAuditEntry[] }>(
        'GET',
        `/v1/audit?afterSeq=${after}&limit=10000`,
      );
      all.push(...page.entries);
      if (page.entries.length < 10000) break;
      after = page.entries[page.entries.length - 1]!.seq;
    }
    const r = verifyChain(all);
    if (!r.ok) {
      throw new BlindfoldError(
        'ERR_DECRYPT',
        `audit chain broken at entry ${r.brokenAt}: ${r.reason}`,
      );
    }
    console.log(`audit chain valid: ${r.checked} entries`);
  } finally {
    op.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  try {
    switch (cmd) {
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        console.log(HELP.main);
        return cmd === undefined ? 2 : 0;
      case 'up':
        await cmdUp(argv.slice(1));
        return 0;
      case 'manager':
        await cmdManager(argv.slice(1));
        return 0;
      case 'appliance':
        if (sub === 'init') await cmdApplianceInit(rest);
        else if (sub === 'identity') await cmdApplianceIdentity(rest);
        else if (sub === 'run' || sub === undefined || sub.startsWith('-')) {
          await cmdApplianceRun(sub === 'run' ? rest : argv.slice(1));
        } else usage('main', `unknown appliance command "${sub}"`);
        return 0;
      case 'encrypt':
      case 'decrypt':
        await cmdCrypt(cmd, argv.slice(1));
        return 0;
      case 'status':
        await cmdStatus(argv.slice(1));
        return 0;
      case 'rewrap':
        await cmdRewrap(argv.slice(1));
        return 0;
      case 'keys':
        if (sub === 'delete' || sub === 'undelete') {
          await cmdKeysDelete({ home, operatorClient }, sub, rest);
          return 0;
        }
        if (sub !== 'rotate') usage('main', 'did you mean "blindfold keys rotate"?');
        await cmdKeysRotate(rest);
        return 0;
      case 'kms':
        await cmdKms({ home, operatorClient }, argv.slice(1));
        return 0;
      case 'cluster':
        await cmdCluster(
          {
            home,
            operatorClient,
            localClientAt: async (dir) => {
              const info = await readLocalInfo(dir);
              return createJsonClient({ baseUrl: info.url, token: info.token, retries: 2 });
            },
          },
          argv.slice(1),
        );
        return 0;
      case 'blinder': {
        const { cmdBlinder } = await import('./blinder.ts');
        await cmdBlinder(argv.slice(1), home({}));
        return 0;
      }
      case 'audit':
        if (sub !== 'verify') usage('main', 'did you mean "blindfold audit verify"?');
        await cmdAuditVerify(rest);
        return 0;
      default:
        usage('main', `unknown command "${cmd}"`);
    }
  } catch (e) {
    if (isBlindfoldError(e)) {
      process.stderr.write(`error [${e.code}]: ${e.message}\n`);
      return e.code === 'ERR_INVALID_ARGUMENT' ? 2 : 1;
    }
    process.stderr.write(`error [ERR_INTERNAL]: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}

/**
 * `blindfold blinder init|run` (SPEC.md §5.4, docs/OPERATIONS.md "Blinders").
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { initBlinder, startBlinder } from '../blinder/run.ts';
import { BlindfoldError } from '../core/errors.ts';
import { rootKeyFromEnv } from '../manager/run.ts';
import { loadRootKey } from '../manager/seal.ts';

export const BLINDER_HELP = {
  init: `Usage: blindfold blinder init --home DIR --manager URL --ca FILE --operator-token-file FILE
                              [--name NAME] [--hostname NAME ...]

Creates the blinder's identity key in DIR/blinder.json (0600) and registers it with the manager
(an operator action: it needs the manager's operator token), which certifies it with its CA for
loopback and every --hostname. Prints the blinder id to name in "hom3"/"homN" keyrings.
`,
  run: `Usage: blindfold blinder run --home DIR [--host 127.0.0.1] [--port 7310] [--root-key-file FILE]

Serves the chain routes over mutual TLS and announces its URL to the manager. The root key that
seals its blinding values comes from BLINDFOLD_ROOT_KEY or --root-key-file (mode 0600); use a key
of its own, never the manager's: a blinder is a location of its own (SPEC.md §5.4).
`,
};

function usage(which: keyof typeof BLINDER_HELP, message: string): never {
  throw new BlindfoldError('ERR_INVALID_ARGUMENT', `${message}\n\n${BLINDER_HELP[which]}`);
}

export async function cmdBlinder(args: string[], defaultHome: string): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'init') {
    const { values } = parseArgs({
      args: rest,
      options: {
        home: { type: 'string' },
        manager: { type: 'string' },
        ca: { type: 'string' },
        'operator-token-file': { type: 'string' },
        name: { type: 'string' },
        hostname: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) return console.log(BLINDER_HELP.init);
    if (!values.manager || !values.ca || !values['operator-token-file']) {
      usage('init', '--manager, --ca and --operator-token-file are required');
    }
    const h = values.home ? resolve(values.home) : join(defaultHome, 'blinder');
    const s = await initBlinder({
      home: h,
      managerUrl: values.manager,
      caPem: await readFile(values.ca, 'utf8'),
      operatorToken: (await readFile(values['operator-token-file'], 'utf8')).trim(),
      name: values.name ?? 'blinder',
      hostnames: values.hostname,
    });
    console.log(s.blinderId);
    return;
  }
  if (sub === 'run') {
    const { values } = parseArgs({
      args: rest,
      options: {
        home: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        'root-key-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) return console.log(BLINDER_HELP.run);
    if (values.port !== undefined && !/^\d{1,5}$/.test(values.port)) {
      usage('run', '--port must be a whole number');
    }
    const rootKey =
      rootKeyFromEnv(process.env) ??
      (values['root-key-file'] ? await loadRootKey({ file: values['root-key-file'] }) : undefined);
    if (!rootKey) {
      throw new BlindfoldError(
        'ERR_SEALED',
        'no root key: set BLINDFOLD_ROOT_KEY or pass --root-key-file (see blindfold blinder run --help)',
      );
    }
    const b = await startBlinder({
      home: values.home ? resolve(values.home) : join(defaultHome, 'blinder'),
      rootKey,
      host: values.host,
      port: values.port === undefined ? 7310 : Number(values.port),
      logger: { level: process.env.BLINDFOLD_LOG ?? 'warn' },
    });
    console.error(`blindfold blinder ${b.blinder.id} listening on ${b.url}`);
    await new Promise<void>((done) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        b.close().then(done, done);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return;
  }
  throw new BlindfoldError(
    'ERR_INVALID_ARGUMENT',
    `unknown blinder command "${sub ?? ''}": use init or run\n\n${BLINDER_HELP.init}\n${BLINDER_HELP.run}`,
  );
}

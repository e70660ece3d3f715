/**
 * `blindfold kms …`: the operator's side of the KMS API (SPEC.md §11.7) — applications, their
 * tokens, key policies — and `blindfold keys delete|undelete` (scheduled deletion, §7.4).
 */
import { parseArgs } from 'node:util';
import type { JsonClient } from '../appliance/client.ts';
import { BlindfoldError } from '../core/errors.ts';

export interface KmsCliContext {
  home: (values: { home?: string }) => string;
  operatorClient: (home: string, url?: string) => Promise<JsonClient>;
}

export const KMS_HELP: Record<string, string> = {
  kms: `Usage: blindfold kms <command> [--home DIR] [--manager URL]

Applications, their API tokens and key policies of the KMS API (served by appliances under
/kms/v1; reference at /kms/v1/docs):

  kms app create NAME                       create an application; prints its id
  kms app list                              list applications
  kms app enable|disable APP_ID             (a disabled application's tokens stop working)
  kms token create APP_ID --scope S ...     issue a token (shown once) with these scopes:
        [--ttl SECONDS]                     create-key describe generate-data-key decrypt
                                            encrypt re-encrypt manage
  kms token list APP_ID                     list an application's tokens (never the token)
  kms token revoke TOKEN_ID                 revoke a token
  kms policy set KEY APP_ID=OP,OP ...       replace a key's policy (no grant: nobody may use it)
  kms policy show KEY                       show a key's policy
`,
  keys: `Usage: blindfold keys delete KEYRING [--days 7..30] [--home DIR] [--manager URL]
       blindfold keys undelete KEYRING

"delete" schedules the keyring's deletion (default in 30 days): it is unusable at once, and its
keys are destroyed when the date comes; "undelete" cancels it.
`,
};

function usage(key: string, message: string): never {
  throw new BlindfoldError('ERR_INVALID_ARGUMENT', `${message}\n\n${KMS_HELP[key]}`);
}

function parse(
  key: string,
  args: string[],
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {},
) {
  try {
    return parseArgs({
      args,
      options: {
        home: { type: 'string' },
        manager: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        ...options,
      },
      allowPositionals: true,
      strict: true,
    }) as {
      values: Record<string, string | string[] | boolean | undefined>;
      positionals: string[];
    };
  } catch (e) {
    return usage(key, (e as Error).message);
  }
}

async function withOperator<T>(
  ctx: KmsCliContext,
  values: Record<string, unknown>,
  f: (op: JsonClient) => Promise<T>,
): Promise<T> {
  const op = await ctx.operatorClient(
    ctx.home(values as { home?: string }),
    typeof values.manager === 'string' ? values.manager : undefined,
  );
  try {
    return await f(op);
  } finally {
    op.close();
  }
}

export async function cmdKms(ctx: KmsCliContext, argv: string[]): Promise<void> {
  const [area, verb, ...rest] = argv;
  if (area === undefined || area === 'help' || area === '-h' || area === '--help') {
    console.log(KMS_HELP.kms);
    return;
  }
  const { values, positionals } = parse('kms', rest, {
    scope: { type: 'string', multiple: true },
    ttl: { type: 'string' },
  });
  if (values.help) return console.log(KMS_HELP.kms);
  const arg = (i: number, what: string) => positionals[i] ?? usage('kms', `missing ${what}`);
  const key = `${area} ${verb ?? ''}`.trim();
  await withOperator(ctx, values, async (op) => {
    switch (key) {
      case 'app create': {
        const a = await op.request<{ id: string; name: string }>('POST', '/v1/kms/applications', {
          name: arg(0, 'NAME'),
        });
        console.log(`${a.id}\t${a.name}`);
        return;
      }
      case 'app list': {
        const r = await op.request<{
          applications: { id: string; name: string; status: string }[];
        }>('GET', '/v1/kms/applications');
        for (const a of r.applications) console.log(`${a.id}\t${a.status}\t${a.name}`);
        return;
      }
      case 'app enable':
      case 'app disable': {
        await op.request('POST', `/v1/kms/applications/${arg(0, 'APP_ID')}/status`, {
          status: verb === 'enable' ? 'enabled' : 'disabled',
        });
        console.log(`${positionals[0]} ${verb}d`);
        return;
      }
      case 'token create': {
        const scopes = (values.scope as string[] | undefined) ?? [];
        if (scopes.length === 0) usage('kms', 'give at least one --scope');
        const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
        if (ttl !== undefined && !(Number.isInteger(ttl) && ttl >= 0)) {
          usage('kms', '--ttl must be a whole number of seconds');
        }
        const t = await op.request<{ id: string; token: string }>(
          'POST',
          `/v1/kms/applications/${arg(0, 'APP_ID')}/tokens`,
          { scopes, ...(ttl !== undefined ? { ttlSeconds: ttl } : {}) },
        );
        console.error(`token ${t.id} (shown once; only its hash is stored):`);
        console.log(t.token);
        return;
      }
      case 'token list': {
        const r = await op.request<{
          tokens: { id: string; scopes: string[]; revokedAt: number | null; expiresAt: number }[];
        }>('GET', `/v1/kms/applications/${arg(0, 'APP_ID')}/tokens`);
        for (const t of r.tokens) {
          const state =
            t.revokedAt !== null
              ? 'revoked'
              : t.expiresAt && t.expiresAt < Date.now()
                ? 'expired'
                : 'active';
          console.log(`${t.id}\t${state}\t${t.scopes.join(',')}`);
        }
        return;
      }
      case 'token revoke': {
        await op.request('POST', `/v1/kms/tokens/${arg(0, 'TOKEN_ID')}/revoke`, {});
        console.log(`${positionals[0]} revoked`);
        return;
      }
      case 'policy set': {
        const keyId = arg(0, 'KEY');
        const grants = positionals.slice(1).map((g) => {
          const m = /^(app-[0-9a-f]{16})=([a-z,-]*)$/.exec(g);
          if (!m) usage('kms', `grants are APP_ID=OP,OP (got "${g}")`);
          return { applicationId: m[1]!, operations: m[2]!.split(',').filter(Boolean) };
        });
        const r = await op.request<{ grants: { applicationId: string; operations: string[] }[] }>(
          'PUT',
          `/v1/kms/keys/${keyId}/policy`,
          { grants },
        );
        for (const g of r.grants) console.log(`${g.applicationId}\t${g.operations.join(',')}`);
        return;
      }
      case 'policy show': {
        const r = await op.request<{ grants: { applicationId: string; operations: string[] }[] }>(
          'GET',
          `/v1/kms/keys/${arg(0, 'KEY')}/policy`,
        );
        for (const g of r.grants) console.log(`${g.applicationId}\t${g.operations.join(',')}`);
        return;
      }
      default:
        usage('kms', `unknown kms command "${key}"`);
    }
  });
}

/** `blindfold keys delete|undelete KEYRING`. */
export async function cmdKeysDelete(ctx: KmsCliContext, verb: string, args: string[]) {
  const { values, positionals } = parse('keys', args, { days: { type: 'string' } });
  if (values.help) return console.log(KMS_HELP.keys);
  const name = positionals[0] ?? usage('keys', 'missing KEYRING');
  await withOperator(ctx, values, async (op) => {
    if (verb === 'delete') {
      const days = values.days === undefined ? undefined : Number(values.days);
      const k = await op.request<{ deletionAt: number }>('POST', `/v1/keyrings/${name}/deletion`, {
        ...(days !== undefined ? { pendingDays: days } : {}),
      });
      console.log(
        `keyring ${name} is unusable now and will be destroyed at ${new Date(k.deletionAt).toISOString()}; "blindfold keys undelete ${name}" cancels`,
      );
    } else {
      await op.request('DELETE', `/v1/keyrings/${name}/deletion`);
      console.log(`keyring ${name}: deletion cancelled`);
    }
  });
}

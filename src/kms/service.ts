/**
 * The KMS control point in the manager (SPEC.md §11): applications, their scoped API tokens and
 * per-key grants live in the manager's store (shared by replicas), and every KMS call an
 * appliance relays is authorized here (token, scope, grant, application and key state, rate)
 * before the manager touches a secret, then audited with the application's id. The data plane
 * itself (wrapping, AES-GCM, unblinding) runs on the appliance (src/kms/appliance.ts).
 */
import { randomBytes } from 'node:crypto';
import { toB64u, toHex, utf8 } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';
import type { AuditLog } from '../manager/audit.ts';
import type { CreateItemInput, Manager, RecoverInput } from '../manager/manager.ts';
import type {
  KeyringRecord,
  KmsApplicationRecord,
  KmsGrantRecord,
  KmsTokenRecord,
  Store,
} from '../store/types.ts';

/** Operations a grant may allow on a key (SPEC.md §11.2). */
export const KEY_OPERATIONS = [
  'describe',
  'generate-data-key',
  'decrypt',
  'encrypt',
  're-encrypt',
  'manage',
] as const;
export type KeyOperation = (typeof KEY_OPERATIONS)[number];
/** Token scopes: the key operations plus creating keys. */
export const SCOPES = [...KEY_OPERATIONS, 'create-key'] as const;
export type Scope = (typeof SCOPES)[number];

export const TOKEN_PREFIX = 'bf-app-';

export interface RateLimit {
  /** Sustained requests per second per application. */
  ratePerSecond: number;
  /** Bucket size: requests allowed in a burst. */
  burst: number;
}

export interface KmsDeps {
  store: Store;
  audit: AuditLog;
  manager: Manager;
  now?: () => number;
  rate?: RateLimit;
}

export interface Caller {
  applicationId: string;
  tokenId: string;
}

/** Per-application token buckets (in this manager process; SPEC.md §11.6). */
class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly limit: RateLimit) {}

  /** Takes one token or returns the milliseconds until one is available. */
  take(key: string, now: number): number {
    const { ratePerSecond, burst } = this.limit;
    const b = this.buckets.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) * ratePerSecond) / 1000);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) * 1000) / ratePerSecond);
  }
}

function bad(message: string): BlindfoldError {
  return new BlindfoldError('ERR_INVALID_ARGUMENT', message);
}

export class KmsService {
  private readonly now: () => number;
  private readonly buckets: TokenBuckets;

  constructor(private readonly d: KmsDeps) {
    this.now = d.now ?? Date.now;
    this.buckets = new TokenBuckets(d.rate ?? { ratePerSecond: 200, burst: 400 });
  }

  // -- operator: applications, tokens, grants ------------------------------------------------------

  async createApplication(actor: string, name: string): Promise<KmsApplicationRecord> {
    if (!/^[A-Za-z0-9._ -]{1,64}$/.test(name)) {
      throw bad('application names are 1 to 64 letters, digits, spaces, ".", "_" or "-"');
    }
    const now = this.now();
    const app: KmsApplicationRecord = {
      id: `app-${toHex(randomBytes(8))}`,
      name,
      status: 'enabled',
      createdAt: now,
      updatedAt: now,
    };
    try {
      await this.d.store.insertKmsApplication(app);
    } catch (e) {
      if (e instanceof BlindfoldError && e.code === 'ERR_CONFLICT') {
        throw new BlindfoldError('ERR_CONFLICT', `an application named "${name}" already exists`);
      }
      throw e;
    }
    await this.d.audit.record({ actor, action: 'kms.application.create', item: app.id });
    return app;
  }

  listApplications(): Promise<KmsApplicationRecord[]> {
    return this.d.store.listKmsApplications();
  }

  async setApplicationStatus(actor: string, id: string, status: 'enabled' | 'disabled') {
    await this.d.store.setKmsApplicationStatus(id, status, this.now());
    await this.d.audit.record({
      actor,
      action: `kms.application.${status === 'enabled' ? 'enable' : 'disable'}`,
      item: id,
    });
    return (await this.d.store.getKmsApplication(id))!;
  }

  /** A new token; the token itself is returned once and only its SHA-256 is stored. */
  async createToken(actor: string, applicationId: string, scopes: string[], ttlSeconds = 0) {
    const app = await this.d.store.getKmsApplication(applicationId);
    if (!app) throw new BlindfoldError('ERR_NOT_FOUND', `no application ${applicationId}`);
    const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
    if (unknown.length > 0 || scopes.length === 0) {
      throw bad(`scopes must be a non-empty subset of: ${SCOPES.join(', ')}`);
    }
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 0) throw bad('ttlSeconds must be ≥ 0');
    const token = `${TOKEN_PREFIX}${toB64u(randomBytes(32))}`;
    const now = this.now();
    const rec: KmsTokenRecord = {
      id: `tok-${toHex(randomBytes(8))}`,
      tokenHash: toHex(sha256(utf8(token))),
      applicationId,
      scopes: [...new Set(scopes)],
      expiresAt: ttlSeconds === 0 ? 0 : now + ttlSeconds * 1000,
      createdAt: now,
      revokedAt: null,
    };
    await this.d.store.insertKmsToken(rec);
    await this.d.audit.record({ actor, action: 'kms.token.create', item: rec.id });
    return { token, ...publicToken(rec) };
  }

  async listTokens(applicationId: string) {
    return (await this.d.store.listKmsTokens(applicationId)).map(publicToken);
  }

  async revokeToken(actor: string, id: string): Promise<void> {
    await this.d.store.revokeKmsToken(id, this.now());
    await this.d.audit.record({ actor, action: 'kms.token.revoke', item: id });
  }

  /** Replaces a key's policy: the complete list of grants (SPEC.md §11.2). */
  async putPolicy(
    actor: string,
    keyring: string,
    grants: { applicationId: string; operations: string[] }[],
  ): Promise<KmsGrantRecord[]> {
    this.d.manager.keyring(keyring);
    const now = this.now();
    for (const g of grants) {
      if (!(await this.d.store.getKmsApplication(g.applicationId))) {
        throw new BlindfoldError('ERR_NOT_FOUND', `no application ${g.applicationId}`);
      }
      const badOps = g.operations.filter((o) => !(KEY_OPERATIONS as readonly string[]).includes(o));
      if (badOps.length > 0) throw bad(`operations must be among: ${KEY_OPERATIONS.join(', ')}`);
    }
    const wanted = new Set(grants.map((g) => g.applicationId));
    if (wanted.size !== grants.length) throw bad('one grant per application');
    for (const old of await this.d.store.listKmsGrants(keyring)) {
      if (!wanted.has(old.applicationId)) {
        await this.d.store.putKmsGrant({ ...old, operations: [], updatedAt: now });
      }
    }
    for (const g of grants) {
      await this.d.store.putKmsGrant({
        keyring,
        applicationId: g.applicationId,
        operations: [...new Set(g.operations)],
        updatedAt: now,
      });
    }
    await this.d.audit.record({ actor, action: 'kms.policy.put', keyring });
    return this.d.store.listKmsGrants(keyring);
  }

  async getPolicy(keyring: string): Promise<KmsGrantRecord[]> {
    this.d.manager.keyring(keyring);
    return this.d.store.listKmsGrants(keyring);
  }

  // -- authorization of relayed application calls ----------------------------------------------------

  /**
   * Resolves and checks an application's token for `operation` (on `keyring`, if any). Order:
   * token known, not revoked, not expired (ERR_UNAUTHENTICATED); application enabled; scope;
   * rate (ERR_RATE_LIMITED); key exists (ERR_NOT_FOUND) and grants the operation (ERR_FORBIDDEN).
   * The key's own state (disabled, pending deletion, deleted) is checked by the item operations.
   */
  async authorize(token: string, operation: Scope, keyring?: string): Promise<Caller> {
    if (!token.startsWith(TOKEN_PREFIX) || token.length > 128) {
      throw new BlindfoldError(
        'ERR_UNAUTHENTICATED',
        'send Authorization: Bearer <application token "bf-app-…" from the operator>',
      );
    }
    const rec = await this.d.store.getKmsTokenByHash(toHex(sha256(utf8(token))));
    const now = this.now();
    if (!rec) throw new BlindfoldError('ERR_UNAUTHENTICATED', 'unknown application token');
    if (rec.revokedAt !== null) {
      throw new BlindfoldError('ERR_UNAUTHENTICATED', `token ${rec.id} was revoked`);
    }
    if (rec.expiresAt !== 0 && now >= rec.expiresAt) {
      throw new BlindfoldError('ERR_UNAUTHENTICATED', `token ${rec.id} has expired`);
    }
    const caller = { applicationId: rec.applicationId, tokenId: rec.id };
    try {
      const app = await this.d.store.getKmsApplication(rec.applicationId);
      if (app?.status !== 'enabled') {
        throw new BlindfoldError('ERR_FORBIDDEN', `application ${rec.applicationId} is disabled`);
      }
      if (!rec.scopes.includes(operation)) {
        throw new BlindfoldError(
          'ERR_FORBIDDEN',
          `token ${rec.id} lacks the scope "${operation}"; ask the operator for a token with it`,
        );
      }
      const wait = this.buckets.take(rec.applicationId, now);
      if (wait > 0) {
        throw new BlindfoldError(
          'ERR_RATE_LIMITED',
          `application ${rec.applicationId} exceeded its request rate; retry after ${wait} ms`,
        );
      }
      if (keyring !== undefined && operation !== 'create-key') {
        // A deleted key says so (its grants went with its secrets).
        await this.d.manager.liveKeyring(keyring);
        const grants = await this.d.store.listKmsGrants(keyring);
        const g = grants.find((x) => x.applicationId === rec.applicationId);
        if (!g?.operations.includes(operation)) {
          throw new BlindfoldError(
            'ERR_FORBIDDEN',
            `application ${rec.applicationId} may not ${operation} with key ${keyring}; the key's policy must grant it`,
          );
        }
      }
    } catch (e) {
      this.refused(caller.applicationId, operation, keyring, e);
      throw e;
    }
    return caller;
  }

  /** One audit entry per refused call, with the application as actor (SPEC.md §8). */
  refused(applicationId: string, operation: string, keyring: string | undefined, e: unknown) {
    const code = e instanceof BlindfoldError ? e.code : 'ERR_INTERNAL';
    void this.d.audit.enqueue({
      actor: applicationId,
      action: `kms.${operation}`,
      keyring: keyring !== undefined && /^[a-z0-9._-]{1,64}$/.test(keyring) ? keyring : null,
      outcome: code === 'ERR_INTERNAL' ? 'error' : 'refused',
      code,
    });
  }

  private async ok(caller: Caller, operation: string, keyring?: string, item?: Uint8Array) {
    await this.d.audit.record({
      actor: caller.applicationId,
      action: `kms.${operation}`,
      keyring: keyring ?? null,
      item: item ? toHex(item) : null,
    });
  }

  // -- relayed data-plane calls ------------------------------------------------------------------------

  /** Item creation for an application: authorize, check the context binding, create, audit. */
  async createItem(
    applianceId: string,
    token: string,
    operation: 'generate-data-key' | 'encrypt' | 're-encrypt',
    contextHash: Uint8Array,
    input: CreateItemInput,
  ) {
    const caller = await this.authorize(token, operation, input.keyring);
    try {
      checkContextBinding(input.entropy, contextHash);
      const out = await this.d.manager.createItem(applianceId, input);
      await this.ok(caller, operation, input.keyring, out.itemId);
      return out;
    } catch (e) {
      this.refused(caller.applicationId, operation, input.keyring, e);
      throw e;
    }
  }

  async recover(
    applianceId: string,
    token: string,
    operation: 'decrypt' | 're-encrypt',
    contextHash: Uint8Array,
    input: RecoverInput,
    requestId?: string,
  ) {
    const caller = await this.authorize(token, operation, input.keyring);
    try {
      checkContextBinding(input.entropy, contextHash);
      const out = await this.d.manager.recover(applianceId, input, requestId);
      await this.ok(caller, operation, input.keyring, input.itemId);
      return out;
    } catch (e) {
      this.refused(caller.applicationId, operation, input.keyring, e);
      throw e;
    }
  }

  // -- relayed key management ----------------------------------------------------------------------------

  /** Creates a keyring for an application, which gets every operation on it. */
  async createKey(token: string, name: string, mode: string, scheme?: string) {
    const caller = await this.authorize(token, 'create-key');
    try {
      const k = await this.d.manager.createKeyring(caller.applicationId, { name, mode, scheme });
      await this.d.store.putKmsGrant({
        keyring: name,
        applicationId: caller.applicationId,
        operations: [...KEY_OPERATIONS],
        updatedAt: this.now(),
      });
      return k;
    } catch (e) {
      this.refused(caller.applicationId, 'create-key', name, e);
      throw e;
    }
  }

  /** The keys an application holds any grant on (scope describe). */
  async listKeys(token: string): Promise<KeyringRecord[]> {
    const caller = await this.authorize(token, 'describe');
    const out: KeyringRecord[] = [];
    for (const k of this.d.manager.listKeyrings()) {
      const grants = await this.d.store.listKmsGrants(k.name);
      if (grants.some((g) => g.applicationId === caller.applicationId)) out.push(k);
    }
    return out;
  }

  async describeKey(token: string, name: string) {
    await this.authorize(token, 'describe', name);
    return this.d.manager.describeKeyring(name);
  }

  /** enable, disable, schedule or cancel deletion (scope and grant "manage"). */
  async manageKey(
    token: string,
    name: string,
    action: 'enable' | 'disable' | 'schedule-deletion' | 'cancel-deletion' | 'rotate',
    pendingDays?: number,
  ): Promise<KeyringRecord> {
    const caller = await this.authorize(token, 'manage', name);
    try {
      const actor = caller.applicationId;
      let k: KeyringRecord;
      if (action === 'enable' || action === 'disable') {
        k = await this.d.manager.setKeyringStatus(
          actor,
          name,
          action === 'enable' ? 'enabled' : 'disabled',
        );
      } else if (action === 'schedule-deletion') {
        k = await this.d.manager.scheduleKeyringDeletion(actor, name, pendingDays);
      } else if (action === 'cancel-deletion') {
        k = await this.d.manager.cancelKeyringDeletion(actor, name);
      } else {
        // A rotation is a new master version, made by the appliance right after this
        // authorization (SPEC.md §11.5); here only the decision is recorded.
        k = this.d.manager.keyring(name);
        if (k.status !== 'enabled' || k.deletionAt != null) {
          throw new BlindfoldError('ERR_FORBIDDEN', `key ${name} is not usable; cannot rotate`);
        }
        await this.ok(caller, 'rotate', name);
      }
      return k;
    } catch (e) {
      this.refused(caller.applicationId, action, name, e);
      throw e;
    }
  }
}

function publicToken(r: KmsTokenRecord) {
  return {
    id: r.id,
    applicationId: r.applicationId,
    scopes: r.scopes,
    expiresAt: r.expiresAt,
    createdAt: r.createdAt,
    revokedAt: r.revokedAt,
  };
}

/** A KMS item's entropy is nonce[16] ‖ contextHash[32] (SPEC.md §11.3). */
function checkContextBinding(entropy: Uint8Array, contextHash: Uint8Array): void {
  if (entropy.length !== 48 || contextHash.length !== 32) {
    throw bad('a KMS item carries 48 bytes of entropy: nonce ‖ contextHash');
  }
  let diff = 0;
  for (let i = 0; i < 32; i++) diff |= entropy[16 + i]! ^ contextHash[i]!;
  if (diff !== 0) throw bad('the item entropy does not carry this contextHash');
}

/**
 * The blinder (seed: homomorphic agent / server C; SPEC.md §5.4): a location of its own that holds
 * only E_j = Enc_{D_A}(R_j) per appliance, keyring and version, created by sampleUnknown so that
 * R_j never exists in plain, and applies it (setup) or removes it (requests) homomorphically.
 *
 * Who may call what (mutual TLS, certificates of the manager CA):
 * - setup: an appliance, for its own key (the manager's signed key statement names it);
 * - forward: the first blinder of a keyring's chain takes requests only from the appliance the
 *   request is signed by; every later blinder only from its predecessor in the chain. The chain
 *   comes from the manager, never from the request, so no caller can skip a blinder.
 */
import { createPublicKey, type KeyObject, verify as verifySignature } from 'node:crypto';
import { createJsonClient, type JsonClient } from '../appliance/client.ts';
import { fromB64u, toB64u, toHex } from '../core/bytes.ts';
import { chainMode, chainRequestStatement } from '../core/chain.ts';
import { BlindfoldError } from '../core/errors.ts';
import { isChainMode } from '../core/protocol.ts';
import { getScheme } from '../core/schemes/index.ts';
import type { AuditLog } from '../manager/audit.ts';
import { keyStatement } from '../manager/manager.ts';
import type { Sealer } from '../manager/seal.ts';
import { type ChainAnswerJson, type ChainEnvelopeJson, decodeEnvelope } from './envelope.ts';
import type { BlinderStore } from './store.ts';

export interface BlinderState {
  format: 1;
  blinderId: string;
  name: string;
  managerUrl: string;
  caPem: string;
  certificatePem: string;
  identityKeyPem: string;
}

export interface ChainInfo {
  keyring: string;
  mode: string;
  scheme: string;
  blinders: { id: string; url: string; fingerprint: string }[];
}

export interface SetupInput {
  keyring: string;
  managerVersion: number;
  masterVersion: number;
  mode: string;
  scheme: string;
  publicKey: string;
  signature: string;
  ciphertext: string;
}

export interface Peer {
  fingerprint: string;
  publicKey: KeyObject;
}

export interface BlinderDeps {
  state: BlinderState;
  store: BlinderStore;
  sealer: Sealer;
  audit: AuditLog;
  now?: () => number;
  /** How long a keyring's chain read from the manager is reused (default 2000 ms). */
  chainTtlMs?: number;
  /** Timeout for the next hop (default 15 000 ms). */
  hopTimeoutMs?: number;
}

/** A next hop refused us while we routed by a cached chain (see Blinder.forward). */
class StaleRoute extends Error {
  constructor(readonly inner: BlindfoldError) {
    super(inner.message);
  }
}

export function valueSecretName(a: string, k: string, v: number, m: number): string {
  return `blinder/${a}/${k}/v${v}/m${m}`;
}

const applianceIdOf = (fpr: string) => `ap-${fpr.slice(0, 16)}`;

export class Blinder {
  /** Homomorphic operations performed (metrics). */
  groupOps = 0;
  readonly manager: JsonClient;
  private readonly chains = new Map<string, { at: number; chain: ChainInfo }>();
  private readonly hops = new Map<string, JsonClient>();
  /** Decoded (D_A, E_j) per appliance key: E_j is fixed once made, so decode it once. */
  private readonly values = new Map<string, { scheme: string; pk: unknown; e: unknown }>();
  private readonly now: () => number;
  private readonly caKey: KeyObject;

  constructor(private readonly d: BlinderDeps) {
    this.now = d.now ?? Date.now;
    this.caKey = createPublicKey(d.state.caPem);
    this.manager = this.client(d.state.managerUrl);
  }

  get id(): string {
    return this.d.state.blinderId;
  }

  private client(url: string, pin?: string): JsonClient {
    return createJsonClient({
      baseUrl: url,
      caPem: this.d.state.caPem,
      certPem: this.d.state.certificatePem,
      keyPem: this.d.state.identityKeyPem,
      pinFingerprint: pin,
      retries: 0,
      timeoutMs: this.d.hopTimeoutMs ?? 15000,
    });
  }

  close(): void {
    this.manager.close();
    for (const c of this.hops.values()) c.close();
  }

  /** Tells the manager where this blinder listens (at every start). */
  async announce(url: string): Promise<void> {
    await this.manager.request('POST', '/v1/blinders/announce', { url });
  }

  async chain(keyring: string, fresh = false): Promise<ChainInfo> {
    const hit = this.chains.get(keyring);
    if (!fresh && hit && this.now() - hit.at < (this.d.chainTtlMs ?? 2000)) return hit.chain;
    let chain: ChainInfo;
    try {
      chain = await this.manager.request<ChainInfo>('GET', `/v1/keyrings/${keyring}/chain`);
    } catch (e) {
      if (e instanceof BlindfoldError && e.code === 'ERR_UNAVAILABLE') {
        throw new BlindfoldError(
          'ERR_UNAVAILABLE',
          `blinder ${this.id} cannot reach the manager to read the chain of ${keyring}: ${e.message}`,
          { cause: e },
        );
      }
      throw e;
    }
    this.chains.set(keyring, { at: this.now(), chain });
    return chain;
  }

  private position(chain: ChainInfo): number {
    const i = chain.blinders.findIndex((b) => b.id === this.id);
    if (i < 0) {
      throw new BlindfoldError(
        'ERR_FORBIDDEN',
        `blinder ${this.id} is not in the chain of keyring ${chain.keyring}`,
      );
    }
    return i;
  }

  /**
   * Setup (sub-process I): the appliance sends Enc(M ⊕ T) under its own key, with the manager's
   * signed key statement; we create E_j once per key (sampleUnknown), answer C ⊕ E_j.
   */
  async setup(peer: Peer, input: SetupInput): Promise<{ ciphertext: string }> {
    const applianceId = applianceIdOf(peer.fingerprint);
    try {
      const publicKey = fromB64u(input.publicKey, 'publicKey');
      const statement = keyStatement(
        applianceId,
        input.keyring,
        input.managerVersion,
        input.masterVersion,
        input.mode,
        input.scheme,
        publicKey,
      );
      const signed = verifySignature(
        'sha256',
        statement,
        this.caKey,
        Buffer.from(fromB64u(input.signature, 'signature')),
      );
      if (!signed) {
        throw new BlindfoldError(
          'ERR_UNAUTHENTICATED',
          'the key statement is not signed by the manager for this appliance',
        );
      }
      if (!isChainMode(input.mode)) {
        throw new BlindfoldError('ERR_INVALID_ARGUMENT', `mode ${input.mode} uses no blinders`);
      }
      const chain = await this.chain(input.keyring);
      this.position(chain);
      if (chain.mode !== input.mode || chain.scheme !== input.scheme) {
        throw new BlindfoldError(
          'ERR_INVALID_ARGUMENT',
          `keyring ${input.keyring} is ${chain.mode}/${chain.scheme}`,
        );
      }
      const scheme = getScheme(input.scheme);
      const pk = scheme.decodePublicKey(publicKey);
      const c = scheme.decodeCiphertext(pk, fromB64u(input.ciphertext, 'ciphertext'));
      const e = await this.value(applianceId, input, scheme, pk, publicKey);
      this.groupOps++;
      const out = chainMode.blinderSetup(scheme, pk, c, e);
      await this.d.audit.record({
        actor: applianceId,
        action: 'chain.setup',
        keyring: input.keyring,
        keyVersion: input.managerVersion,
      });
      return { ciphertext: toB64u(scheme.encodeCiphertext(pk, out)) };
    } catch (e) {
      this.refused(applianceId, 'chain.setup', input.keyring, null, e);
      throw e;
    }
  }

  /** E_j for an appliance key, created at the first setup (never in plain, SPEC.md §3.6). */
  private async value(
    applianceId: string,
    input: { keyring: string; managerVersion: number; masterVersion: number; scheme: string },
    scheme: ReturnType<typeof getScheme>,
    pk: unknown,
    publicKey: Uint8Array,
  ): Promise<unknown> {
    const name = valueSecretName(
      applianceId,
      input.keyring,
      input.managerVersion,
      input.masterVersion,
    );
    let rec = await this.d.store.getValue(
      applianceId,
      input.keyring,
      input.managerVersion,
      input.masterVersion,
    );
    if (!rec) {
      const e = scheme.encodeCiphertext(pk, scheme.sampleUnknown(pk));
      rec = await this.d.store.putValue({
        applianceId,
        keyring: input.keyring,
        managerVersion: input.managerVersion,
        masterVersion: input.masterVersion,
        scheme: input.scheme,
        publicKey,
        sealed: this.d.sealer.seal(name, e),
        createdAt: this.now(),
      });
    }
    if (
      rec.scheme !== input.scheme ||
      Buffer.compare(Buffer.from(rec.publicKey), Buffer.from(publicKey)) !== 0
    ) {
      throw new BlindfoldError(
        'ERR_CONFLICT',
        'this appliance key version was set up under another public key',
      );
    }
    return scheme.decodeCiphertext(pk, this.d.sealer.open(name, rec.sealed));
  }

  /**
   * A request (sub-processes II and III): check who sent it, remove R_j, pass it to the next hop
   * and return its answer unchanged (nested chain, SPEC.md §5.4).
   */
  async forward(peer: Peer, body: ChainEnvelopeJson): Promise<ChainAnswerJson> {
    const item = body.itemId ? toHex(fromB64u(body.itemId, 'itemId')) : null;
    try {
      let out: ChainAnswerJson;
      try {
        out = await this.route(peer, body, false);
      } catch (e) {
        // A refusal by the next hop may come from our cached chain being older than the
        // manager's (a blinder was added): read it again and route once more.
        if (!(e instanceof StaleRoute)) throw e;
        out = await this.route(peer, body, true);
      }
      await this.d.audit.record({
        actor: body.applianceId,
        action: `chain.${body.op}`,
        keyring: body.keyring,
        item,
        keyVersion: body.managerVersion,
      });
      return out;
    } catch (e) {
      const err = e instanceof StaleRoute ? e.inner : e;
      this.refused(body.applianceId, `chain.${body.op}`, body.keyring, item, err);
      throw err;
    }
  }

  private async route(peer: Peer, body: ChainEnvelopeJson, fresh: boolean) {
    const env = decodeEnvelope(body);
    let chain = await this.chain(body.keyring, fresh);
    let i = this.position(chain);
    const fromOk = (c: ChainInfo, j: number) =>
      j === 0
        ? applianceIdOf(peer.fingerprint) === body.applianceId
        : c.blinders[j - 1]!.fingerprint === peer.fingerprint;
    if (!fromOk(chain, i) && !fresh) {
      chain = await this.chain(body.keyring, true); // the chain may have changed
      i = this.position(chain);
      fresh = true;
    }
    if (!fromOk(chain, i)) {
      throw new BlindfoldError(
        'ERR_FORBIDDEN',
        i === 0
          ? 'the first blinder takes requests only from the appliance that signed them'
          : `blinder ${this.id} takes requests for ${body.keyring} only from ${chain.blinders[i - 1]!.id}`,
      );
    }
    if (i === 0) {
      const ok = verifySignature(
        'sha256',
        chainRequestStatement(env),
        peer.publicKey,
        Buffer.from(env.signature),
      );
      if (!ok) throw new BlindfoldError('ERR_UNAUTHENTICATED', 'invalid appliance authorization');
    }
    const v = await this.loadValue(body);
    const scheme = getScheme(v.scheme);
    const { pk, e } = v;
    const c = scheme.decodeCiphertext(pk, env.ciphertext);
    this.groupOps++;
    const next = chainMode.blinderForward(scheme, pk, c, e);
    try {
      return await this.next(chain, i, {
        ...body,
        ciphertext: toB64u(scheme.encodeCiphertext(pk, next)),
      });
    } catch (err) {
      if (!fresh && err instanceof BlindfoldError && err.code === 'ERR_FORBIDDEN') {
        throw new StaleRoute(err);
      }
      throw err;
    }
  }

  private async loadValue(body: ChainEnvelopeJson) {
    const key = `${body.applianceId}|${body.keyring}|${body.managerVersion}|${body.masterVersion}`;
    const hit = this.values.get(key);
    if (hit) return hit;
    const rec = await this.d.store.getValue(
      body.applianceId,
      body.keyring,
      body.managerVersion,
      body.masterVersion,
    );
    if (!rec) {
      throw new BlindfoldError(
        'ERR_CONFLICT',
        `appliance ${body.applianceId} has not run its concealment of ${body.keyring} (manager version ${body.managerVersion}, master version ${body.masterVersion}) through blinder ${this.id}: run the chain setup`,
      );
    }
    const scheme = getScheme(rec.scheme);
    const pk = scheme.decodePublicKey(rec.publicKey);
    const e = scheme.decodeCiphertext(
      pk,
      this.d.sealer.open(
        valueSecretName(body.applianceId, body.keyring, body.managerVersion, body.masterVersion),
        rec.sealed,
      ),
    );
    const v = { scheme: rec.scheme, pk, e };
    if (this.values.size >= 10_000) this.values.clear();
    this.values.set(key, v);
    return v;
  }

  private async next(
    chain: ChainInfo,
    i: number,
    body: ChainEnvelopeJson,
  ): Promise<ChainAnswerJson> {
    const last = i === chain.blinders.length - 1;
    const hop = last ? undefined : chain.blinders[i + 1]!;
    const what = hop ? `blinder ${hop.id} at ${hop.url || '(no URL announced)'}` : 'the manager';
    let out: ChainAnswerJson;
    try {
      if (hop && !hop.url) throw new BlindfoldError('ERR_UNAVAILABLE', 'no URL announced');
      const client = hop ? this.hopClient(hop) : this.manager;
      out = await client.request<ChainAnswerJson>(
        'POST',
        hop ? '/v1/chain/forward' : '/v1/chain/relay',
        body,
      );
    } catch (e) {
      if (hop) this.chains.delete(chain.keyring); // it may have moved: read the chain again
      if (e instanceof BlindfoldError && e.code === 'ERR_UNAVAILABLE') {
        throw new BlindfoldError(
          'ERR_UNAVAILABLE',
          `blinder ${this.id} cannot reach ${what}: ${e.message}`,
          { cause: e },
        );
      }
      throw e;
    }
    if (
      typeof out !== 'object' ||
      out === null ||
      typeof out.answer !== 'string' ||
      !/^[A-Za-z0-9_-]{1,4000}$/.test(out.answer)
    ) {
      throw new BlindfoldError(
        'ERR_UNAVAILABLE',
        `${what} answered something that is not an answer`,
      );
    }
    return {
      answer: out.answer,
      ...(typeof out.itemId === 'string' ? { itemId: out.itemId } : {}),
      ...(typeof out.ticket === 'string' ? { ticket: out.ticket } : {}),
      ...(typeof out.managerVersion === 'number' ? { managerVersion: out.managerVersion } : {}),
    };
  }

  private hopClient(hop: { id: string; url: string; fingerprint: string }): JsonClient {
    const key = `${hop.url}|${hop.fingerprint}`;
    let c = this.hops.get(key);
    if (!c) {
      c = this.client(hop.url, hop.fingerprint);
      this.hops.set(key, c);
    }
    return c;
  }

  private refused(
    actor: string,
    action: string,
    keyring: string,
    item: string | null,
    e: unknown,
  ): void {
    const code = e instanceof BlindfoldError ? e.code : 'ERR_INTERNAL';
    void this.d.audit.enqueue({
      actor,
      action,
      keyring,
      item,
      outcome: code === 'ERR_INTERNAL' ? 'error' : 'refused',
      code,
    });
  }
}

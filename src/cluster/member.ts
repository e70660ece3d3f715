/**
 * The appliance's side of the cluster (SPEC.md §5.7): vouching by invite, serving re-concealment
 * transfers as a trusted member, and receiving them as a newcomer.
 *
 * Serving (member A, for newcomer B, per concealment (masterVersion, managerVersion) of the keyring):
 *   hom    (C', β) = transfer.blind(D_A, Enc_{D_A}(M)) → manager → Enc_{D_B}(M ⊙ β) and B's key
 *          statement (verified against the pinned CA) → transfer.unblindCiphertext → Enc_{D_B}(M)
 *   split  δ = op.random() → manager (r_B = r_A ⊕ δ);  (M ⊕ r_A) ⊕ δ = M ⊕ r_B
 * then seals {concealments} to B's identity key, signed by A (package.ts), and posts the package.
 * Before anything, A verifies B's membership certificate, and if A invited B itself with a pinned
 * fingerprint, that B's identity key is the pinned one: the manager (the CA, which holds d_B)
 * cannot slip in a key of its own.
 *
 * Receiving (B): opens and authenticates the package, checks it is for this transfer, keyring,
 * target and the versions the manager recorded, confirms each D_B with its own signed key statement,
 * RE-RANDOMIZES (hom: fresh ciphertext randomness, hom2-opt: a fresh β by a fresh optSeed;
 * split: δ' with r_B' = r_B ⊕ δ' at the manager), writes its state with the new concealments
 * marked pending, acknowledges, then clears the marks. A crash before the acknowledgement
 * leaves pending concealments that are dropped at the next start (the manager still holds the
 * package or reopens the transfer); a crash after it leaves marks that are confirmed by asking the
 * manager. Nothing secret is ever written anywhere but the state file, and only concealed.
 */
import { createPublicKey, randomBytes, verify as verifySignature } from 'node:crypto';
import type { Appliance, Concealment, KeyAnswer, KeyringState } from '../appliance/appliance.ts';
import { saveState } from '../appliance/appliance.ts';
import { fromB64u, fromUtf8, toB64u, utf8, zeroize } from '../core/bytes.ts';
import { BlindfoldError, type ErrorCode, isBlindfoldError } from '../core/errors.ts';
import { getSplitOperator } from '../core/operators.ts';
import { isMode, type Mode, reconceal } from '../core/protocol.ts';
import { seededRng } from '../core/random.ts';
import { getScheme } from '../core/schemes/index.ts';
import { keyStatement } from '../manager/manager.ts';
import { inviteId, verifyMembership } from './membership.ts';
import { openPackage, sealPackage } from './package.ts';
import type { TransferView } from './service.ts';

/** What the package carries (JSON, inside the sealed, signed envelope of package.ts). */
export interface TransferPayload {
  v: 1;
  transferId: string;
  keyring: string;
  mode: Mode;
  scheme: string;
  target: string;
  /** SHA-256 of the target's identity key, hex: the key the package is sealed to. */
  targetFingerprint: string;
  sender: string;
  concealments: {
    masterVersion: number;
    managerVersion: number;
    publicKey?: string;
    concealed: string;
  }[];
}

interface ClaimAnswer extends TransferView {
  mode: string;
  scheme: string;
  targetCertificatePem: string;
  claimTtlMs: number;
}

export interface MemberOptions {
  /** Called with every error of the background loop (default: ignore; the loop retries). */
  onError?: (e: unknown) => void;
  now?: () => number;
  /**
   * Test-only hook (never set in production code paths): sees each package's plaintext payload
   * before it is sealed, i.e. everything the serving member computed for the newcomer.
   */
  onPayload?: (payload: Uint8Array) => void;
}

const sameVersions = (
  a: { masterVersion: number; managerVersion: number }[],
  b: { masterVersion: number; managerVersion: number }[],
) => {
  const key = (x: { masterVersion: number; managerVersion: number }) =>
    `${x.masterVersion}/${x.managerVersion}`;
  const sa = new Set(a.map(key));
  const sb = new Set(b.map(key));
  return (
    sa.size === a.length &&
    sb.size === b.length &&
    sa.size === sb.size &&
    [...sa].every((x) => sb.has(x))
  );
};

export class ClusterMember {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly now: () => number;

  constructor(
    readonly appliance: Appliance,
    private readonly o: MemberOptions = {},
  ) {
    this.now = o.now ?? Date.now;
  }

  private get state() {
    return this.appliance.state;
  }

  private async save(): Promise<void> {
    await saveState(this.appliance.home, this.appliance.state);
  }

  private request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.appliance.client.request<T>(method, path, body);
  }

  // -- vouching (criterion i) ----------------------------------------------------------------

  /**
   * An invite for an appliance this one sets up: a one-time token from the manager, bound to
   * the newcomer's identity fingerprint when given. The invite is remembered (with the pinned
   * fingerprint) so that this appliance serves the newcomer only under that key.
   */
  async invite(o: { fingerprint?: string; ttlSeconds?: number; keyrings?: string[] } = {}) {
    const out = await this.request<{
      token: string;
      expiresAt: number;
      invite: string;
      voucher: string;
      keyrings: string[];
    }>('POST', '/v1/cluster/invites', {
      ...(o.fingerprint ? { fingerprint: o.fingerprint } : {}),
      ...(o.ttlSeconds ? { ttlSeconds: o.ttlSeconds } : {}),
      keyrings: o.keyrings ?? [],
    });
    const now = this.now();
    // Keep invites a while after expiry: the newcomer may enroll at the last second and be served later.
    const invites = (this.state.invites ?? []).filter((i) => i.expiresAt > now - 7 * 86400_000);
    invites.push({
      invite: inviteId(out.token),
      fingerprint: o.fingerprint ?? null,
      keyrings: out.keyrings,
      expiresAt: out.expiresAt,
    });
    this.appliance.state = { ...this.state, invites };
    await this.save();
    return out;
  }

  // -- the background loop -----------------------------------------------------------------------

  /** Polls the manager (one cheap GET) every `intervalMs` and serves or receives what it finds. */
  start(intervalMs = 1000): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      void this.tick();
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      await this.step();
    } catch (e) {
      this.o.onError?.(e);
    } finally {
      this.busy = false;
    }
  }

  /**
   * One round: settles concealments left pending by a crash, serves every transfer offered to
   * this member, and receives this appliance's own sealed packages. Returns how many transfers
   * it served or received.
   */
  async step(): Promise<number> {
    await this.resumePending();
    const work = await this.request<{ serve: TransferView[]; receive: TransferView[] }>(
      'GET',
      '/v1/cluster/work',
    );
    let n = 0;
    for (const t of work.serve) {
      try {
        await this.serve(t.id);
        n++;
      } catch (e) {
        this.o.onError?.(e);
      }
    }
    for (const t of work.receive) {
      if (t.status !== 'sealed' || !t.package) continue;
      try {
        await this.receive(t);
        n++;
      } catch (e) {
        this.o.onError?.(e);
      }
    }
    return n;
  }

  // -- serving a transfer (member A) ---------------------------------------------------------------

  private async release(id: string, code: ErrorCode): Promise<void> {
    await this.request('POST', `/v1/cluster/transfers/${id}/release`, { code }).catch(() => {});
  }

  /** Claims a transfer and serves it completely (see the module comment). */
  async serve(id: string): Promise<void> {
    const t = await this.request<ClaimAnswer>('POST', `/v1/cluster/transfers/${id}/claim`);
    let payload: Uint8Array | undefined;
    try {
      const target = verifyMembership(t.targetCertificatePem, this.state.caPem, this.now());
      if (target.claim.applianceId !== t.target) {
        throw new BlindfoldError(
          'ERR_UNAUTHENTICATED',
          'the target certificate names another appliance',
        );
      }
      if (target.claim.vouchedBy === this.appliance.id) {
        // We invited it: it must be an invite of ours, under the key we pinned, if we pinned one.
        const inv = (this.state.invites ?? []).find((i) => i.invite === target.claim.invite);
        if (!inv) {
          throw new BlindfoldError(
            'ERR_UNAUTHENTICATED',
            `${t.target} claims to be vouched for by this appliance, which made no such invite`,
          );
        }
        if (inv.fingerprint && inv.fingerprint !== target.fingerprint) {
          throw new BlindfoldError(
            'ERR_UNAUTHENTICATED',
            `${t.target} presents an identity key other than the one pinned in the invite`,
          );
        }
      }
      const ks = this.state.keyrings[t.keyring];
      const list = (ks?.concealments ?? []).filter((c) => !c.pending);
      if (!ks || list.length === 0) {
        throw new BlindfoldError('ERR_FORBIDDEN', `this appliance holds no master of ${t.keyring}`);
      }
      if (ks.mode !== t.mode || ks.scheme !== t.scheme) {
        throw new BlindfoldError('ERR_CONFLICT', `keyring ${t.keyring} changed mode or scheme`);
      }
      const concealments: TransferPayload['concealments'] = [];
      for (const c of list) concealments.push(await this.reconcealFor(t, ks, c));
      payload = utf8(
        JSON.stringify({
          v: 1,
          transferId: t.id,
          keyring: t.keyring,
          mode: ks.mode,
          scheme: ks.scheme,
          target: t.target,
          targetFingerprint: target.fingerprint,
          sender: this.appliance.id,
          concealments,
        } satisfies TransferPayload),
      );
      this.o.onPayload?.(payload);
      const pkg = sealPackage({
        transferId: t.id,
        payload,
        recipientSpki: target.spkiDer,
        senderKeyPem: this.state.identityKeyPem,
        senderCertificatePem: this.state.certificatePem,
      });
      await this.request('POST', `/v1/cluster/transfers/${t.id}/package`, { package: toB64u(pkg) });
    } catch (e) {
      // Give the transfer back at once (audited with the code) rather than after the claim lapses.
      await this.release(t.id, isBlindfoldError(e) ? e.code : 'ERR_INTERNAL');
      throw e;
    } finally {
      zeroize(payload);
    }
  }

  private async reconcealFor(
    t: ClaimAnswer,
    ks: KeyringState,
    c: Concealment,
  ): Promise<TransferPayload['concealments'][number]> {
    const path = `/v1/cluster/transfers/${t.id}/reencrypt`;
    const versions = { masterVersion: c.masterVersion, managerVersion: c.managerVersion };
    if (ks.mode === 'split') {
      const op = getSplitOperator(ks.scheme);
      const { delta, blindedMaster } = reconceal.splitRequest(op, fromB64u(c.concealed));
      await this.request('POST', path, { ...versions, delta: toB64u(delta) });
      zeroize(delta);
      return { ...versions, concealed: toB64u(blindedMaster) };
    }
    const scheme = getScheme(ks.scheme);
    const transfer = scheme.transfer;
    if (!transfer) {
      throw new BlindfoldError('ERR_UNSUPPORTED_SCHEME', `${ks.scheme} cannot re-conceal`);
    }
    const pk = scheme.decodePublicKey(fromB64u(c.publicKey ?? '', 'publicKey'));
    const concealed = scheme.decodeCiphertext(pk, fromB64u(c.concealed, 'concealed'));
    const { ciphertext, blind } = transfer.blind(pk, concealed);
    try {
      const out = await this.request<{ ciphertext: string; publicKey: string; signature: string }>(
        'POST',
        path,
        { ...versions, blinded: toB64u(scheme.encodeCiphertext(pk, ciphertext)) },
      );
      // B's key, as the manager signed it for B, this keyring and these versions.
      const pubB = fromB64u(out.publicKey, 'publicKey');
      const statement = keyStatement(
        t.target,
        t.keyring,
        c.managerVersion,
        c.masterVersion,
        ks.mode,
        ks.scheme,
        pubB,
      );
      const ok = verifySignature(
        'sha256',
        statement,
        createPublicKey(this.state.caPem),
        Buffer.from(fromB64u(out.signature, 'signature')),
      );
      if (!ok) {
        throw new BlindfoldError(
          'ERR_UNAUTHENTICATED',
          "the target's key statement does not verify",
        );
      }
      const pkB = scheme.decodePublicKey(pubB);
      const ct = transfer.unblindCiphertext(
        pkB,
        blind,
        scheme.decodeCiphertext(pkB, fromB64u(out.ciphertext, 'ciphertext')),
      );
      return {
        ...versions,
        publicKey: out.publicKey,
        concealed: toB64u(scheme.encodeCiphertext(pkB, ct)),
      };
    } finally {
      scheme.wipeBlind(blind);
    }
  }

  // -- receiving a transfer (newcomer B) ---------------------------------------------------------

  private async reject(id: string, e: unknown): Promise<void> {
    const code = isBlindfoldError(e) ? e.code : 'ERR_INTERNAL';
    await this.request('POST', `/v1/cluster/transfers/${id}/reject`, { code }).catch(() => {});
  }

  /** Opens, checks, re-randomizes, stores and acknowledges a sealed transfer. */
  async receive(t: TransferView): Promise<void> {
    if (!t.package) throw new BlindfoldError('ERR_CONFLICT', `transfer ${t.id} has no package yet`);
    if (this.state.keyrings[t.keyring]?.concealments.some((c) => !c.pending)) {
      throw new BlindfoldError('ERR_CONFLICT', `this appliance already holds keyring ${t.keyring}`);
    }
    let p: TransferPayload;
    try {
      const opened = openPackage({
        transferId: t.id,
        pkg: fromB64u(t.package, 'package'),
        recipientKeyPem: this.state.identityKeyPem,
        caPem: this.state.caPem,
        now: this.now(),
      });
      p = JSON.parse(fromUtf8(opened.payload)) as TransferPayload;
      zeroize(opened.payload);
      const info = await this.request<{ mode: string; scheme: string }>(
        'GET',
        `/v1/keyrings/${t.keyring}/current`,
      );
      if (
        p.v !== 1 ||
        p.transferId !== t.id ||
        p.keyring !== t.keyring ||
        p.target !== this.appliance.id ||
        p.sender !== opened.sender.claim.applianceId ||
        p.sender !== t.claimedBy ||
        !isMode(p.mode) ||
        p.mode !== info.mode ||
        p.scheme !== info.scheme ||
        !Array.isArray(p.concealments) ||
        !sameVersions(p.concealments, t.versions)
      ) {
        throw new BlindfoldError(
          'ERR_UNAUTHENTICATED',
          'the transfer package does not match the transfer (keyring, target, sender or versions)',
        );
      }
    } catch (e) {
      await this.reject(t.id, e);
      throw e;
    }
    const next: Concealment[] = [];
    const ack: {
      masterVersion: number;
      managerVersion: number;
      delta?: string;
      blinded?: string;
    }[] = [];
    try {
      for (const c of p.concealments) {
        const versions = { masterVersion: c.masterVersion, managerVersion: c.managerVersion };
        if (p.mode === 'split') {
          // Our own δ': the voucher's view (M ⊕ r_B) is no longer what we hold.
          const op = getSplitOperator(p.scheme);
          const received = fromB64u(c.concealed, 'concealed');
          op.check(received);
          const delta = op.random();
          next.push({ ...versions, concealed: toB64u(op.op(received, delta)), pending: t.id });
          ack.push({ ...versions, delta: toB64u(delta) });
          zeroize(delta, received);
          continue;
        }
        const scheme = getScheme(p.scheme);
        // Our own signed key statement for these versions: the package must be for that key.
        const a = await this.request<KeyAnswer>('POST', `/v1/keyrings/${t.keyring}/keys`, versions);
        this.appliance.checkKeyStatement(a);
        if (a.publicKey !== c.publicKey) {
          throw new BlindfoldError(
            'ERR_UNAUTHENTICATED',
            'the package conceals the master under a key that is not ours',
          );
        }
        const pk = scheme.decodePublicKey(fromB64u(a.publicKey, 'publicKey'));
        const ct = scheme.rerandomize(pk, scheme.decodeCiphertext(pk, fromB64u(c.concealed)));
        const mine: Concealment = {
          ...versions,
          publicKey: a.publicKey,
          concealed: toB64u(scheme.encodeCiphertext(pk, ct)),
          pending: t.id,
        };
        if (p.mode === 'hom2-opt') {
          // A fresh β_B of our own: X_B = M ⊙ β_B is set at the acknowledgement.
          const optSeed = new Uint8Array(randomBytes(32));
          const { ciphertext, blind } = scheme.blind(pk, ct, seededRng(optSeed));
          scheme.wipeBlind(blind);
          mine.optSeed = toB64u(optSeed);
          zeroize(optSeed);
          ack.push({ ...versions, blinded: toB64u(scheme.encodeCiphertext(pk, ciphertext)) });
        } else {
          ack.push(versions);
        }
        next.push(mine);
      }
    } catch (e) {
      await this.reject(t.id, e);
      throw e;
    }
    // Stored first (marked pending), acknowledged second: see the module comment.
    const prev = this.state.keyrings[t.keyring];
    const ks: KeyringState = {
      mode: p.mode,
      scheme: p.scheme,
      concealments: [...(prev?.concealments ?? []).filter((c) => c.pending !== t.id), ...next],
    };
    this.appliance.state = {
      ...this.state,
      keyrings: { ...this.state.keyrings, [t.keyring]: ks },
    };
    await this.save();
    try {
      await this.request('POST', `/v1/cluster/transfers/${t.id}/ack`, { concealments: ack });
    } catch (e) {
      if (isBlindfoldError(e) && e.code !== 'ERR_UNAVAILABLE' && e.code !== 'ERR_STORAGE') {
        await this.dropPending(t.id); // refused for good: nothing of it stays
      }
      throw e;
    }
    await this.confirmPending(t.id);
  }

  private async confirmPending(id: string): Promise<void> {
    const keyrings: Record<string, KeyringState> = {};
    for (const [name, ks] of Object.entries(this.state.keyrings)) {
      keyrings[name] = {
        ...ks,
        concealments: ks.concealments.map((c) => {
          if (c.pending !== id) return c;
          const { pending: _done, ...rest } = c;
          return rest;
        }),
      };
    }
    this.appliance.state = { ...this.state, keyrings };
    await this.save();
  }

  private async dropPending(id: string): Promise<void> {
    const keyrings: Record<string, KeyringState> = {};
    for (const [name, ks] of Object.entries(this.state.keyrings)) {
      const concealments = ks.concealments.filter((c) => c.pending !== id);
      if (concealments.length > 0) keyrings[name] = { ...ks, concealments };
    }
    this.appliance.state = { ...this.state, keyrings };
    await this.save();
  }

  /** After a crash between storing and acknowledging: ask the manager how it ended. */
  async resumePending(): Promise<void> {
    const ids = new Set<string>();
    for (const ks of Object.values(this.state.keyrings)) {
      for (const c of ks.concealments) if (c.pending) ids.add(c.pending);
    }
    for (const id of ids) {
      let status: string;
      try {
        status = (await this.request<TransferView>('GET', `/v1/cluster/transfers/${id}`)).status;
      } catch (e) {
        if (isBlindfoldError(e) && (e.code === 'ERR_NOT_FOUND' || e.code === 'ERR_FORBIDDEN')) {
          status = 'gone';
        } else throw e;
      }
      if (status === 'done') await this.confirmPending(id);
      else await this.dropPending(id); // the manager still has the package or reopens the transfer
    }
  }

  /**
   * Newcomer: asks for keyring K's master (or finds the transfer its invite created) and waits,
   * bounded, for a member to serve it; then receives it. The error on timeout names the voucher.
   */
  async join(
    keyring: string,
    o: { timeoutMs?: number; pollMs?: number } = {},
  ): Promise<{ transfer: string; from: string | null }> {
    await this.resumePending();
    if (this.state.keyrings[keyring]?.concealments.some((c) => !c.pending)) {
      throw new BlindfoldError('ERR_CONFLICT', `this appliance already holds keyring ${keyring}`);
    }
    let t = await this.request<TransferView>('POST', '/v1/cluster/transfers', { keyring });
    const deadline = this.now() + (o.timeoutMs ?? 60_000);
    for (;;) {
      if (t.status === 'sealed' && t.package) {
        await this.receive(t);
        return { transfer: t.id, from: t.claimedBy };
      }
      if (this.now() >= deadline) {
        const who = t.voucher
          ? `its voucher ${t.voucher} (or, after a few seconds, any trusted member holding keyring ${keyring})`
          : `a trusted member holding keyring ${keyring}`;
        throw new BlindfoldError(
          'ERR_UNAVAILABLE',
          `no member served transfer ${t.id} of keyring ${keyring} in time: ${who} must be running ("blindfold appliance run"); run the same command again to keep waiting`,
        );
      }
      await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
      t = await this.request<TransferView>('GET', `/v1/cluster/transfers/${t.id}`);
    }
  }
}

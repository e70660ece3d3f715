/**
 * Master-key import from the web console, the appliance's side (SPEC.md §5.9).
 *
 * The appliance keeps an import key pair (X25519, in appliance.json like its identity key),
 * publishes the public half to the manager signed by its identity key, polls for pending imports,
 * opens each (only it can), checks that it is for this appliance, keyring and versions and, in
 * hom modes, that the page concealed under this appliance's own key for those versions (its own
 * key statement, verified against the pinned CA), re-randomizes, stores the concealment and
 * reports back. A crash between storing and reporting is harmless: the next poll finds the
 * concealment already stored and reports success.
 */
import { createPrivateKey, sign } from 'node:crypto';
import { fromB64u, toB64u, zeroize } from '../core/bytes.ts';
import { BlindfoldError, isBlindfoldError } from '../core/errors.ts';
import {
  generateImportKeyPair,
  importKeyFingerprint,
  importKeyStatement,
  openImport,
} from '../core/imports.ts';
import { getSplitOperator } from '../core/operators.ts';
import { isMode } from '../core/protocol.ts';
import { getScheme } from '../core/schemes/index.ts';
import {
  type Appliance,
  type Concealment,
  type KeyAnswer,
  type KeyringState,
  saveState,
} from './appliance.ts';

interface PendingImport {
  id: string;
  keyring: string;
  masterVersion: number;
  managerVersion: number;
  sealed: string;
}

export class ImportReceiver {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private published = false;

  constructor(
    private readonly a: Appliance,
    private readonly o: { onError?: (e: unknown) => void } = {},
  ) {}

  /** The import key pair, created (and saved) at first use. */
  async keyPair(): Promise<{ publicKey: Uint8Array; secretKey: Uint8Array }> {
    let k = this.a.state.importKey;
    if (!k) {
      const kp = generateImportKeyPair();
      k = { publicKey: toB64u(kp.publicKey), secretKey: toB64u(kp.secretKey) };
      zeroize(kp.secretKey);
      this.a.state = { ...this.a.state, importKey: k };
      await saveState(this.a.home, this.a.state);
    }
    return { publicKey: fromB64u(k.publicKey), secretKey: fromB64u(k.secretKey) };
  }

  /** What `blindfold status` shows, to compare with the console (SPEC.md §5.9). */
  fingerprint(): string | undefined {
    const k = this.a.state.importKey;
    return k ? importKeyFingerprint(fromB64u(k.publicKey)) : undefined;
  }

  async publish(): Promise<void> {
    const { publicKey, secretKey } = await this.keyPair();
    zeroize(secretKey);
    const signature = sign('sha256', importKeyStatement(this.a.id, publicKey), {
      key: createPrivateKey(this.a.state.identityKeyPem),
      dsaEncoding: 'ieee-p1363',
    });
    await this.a.client.request('PUT', '/v1/import-key', {
      publicKey: toB64u(publicKey),
      signature: toB64u(new Uint8Array(signature)),
    });
    this.published = true;
  }

  start(intervalMs = 1000): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
    void this.tick();
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

  /** One round: publish the key if not yet done, then adopt every pending import. */
  async step(): Promise<number> {
    if (!this.published) await this.publish();
    const { imports } = await this.a.client.request<{ imports: PendingImport[] }>(
      'GET',
      '/v1/imports/pending',
    );
    let n = 0;
    for (const imp of imports) {
      let code: string | undefined;
      try {
        await this.adopt(imp);
        n++;
      } catch (e) {
        // Transport trouble: retry at the next round. Anything else is this import's verdict.
        if (!isBlindfoldError(e) || e.code === 'ERR_UNAVAILABLE' || e.code === 'ERR_STORAGE') {
          throw e;
        }
        code = e.code;
        this.o.onError?.(e);
      }
      await this.a.client.request('POST', `/v1/imports/${imp.id}/result`, code ? { code } : {});
    }
    return n;
  }

  private async adopt(imp: PendingImport): Promise<void> {
    const info = await this.a.client.request<{ mode: string; scheme: string }>(
      'GET',
      `/v1/keyrings/${imp.keyring}/current`,
    );
    if (!isMode(info.mode)) {
      throw new BlindfoldError('ERR_UNSUPPORTED_SCHEME', `unknown mode ${info.mode}`);
    }
    const existing = this.a.state.keyrings[imp.keyring];
    if (existing && (existing.mode !== info.mode || existing.scheme !== info.scheme)) {
      throw new BlindfoldError('ERR_CONFLICT', 'the keyring changed mode or scheme');
    }
    const done = existing?.concealments.some(
      (c) =>
        !c.pending &&
        c.masterVersion === imp.masterVersion &&
        c.managerVersion === imp.managerVersion,
    );
    if (done) return; // stored before a crash, not reported yet
    const kp = await this.keyPair();
    let payload: ReturnType<typeof openImport>;
    try {
      payload = openImport(fromB64u(imp.sealed, 'sealed'), kp, {
        applianceId: this.a.id,
        keyring: imp.keyring,
        mode: info.mode,
        scheme: info.scheme,
        masterVersion: imp.masterVersion,
        managerVersion: imp.managerVersion,
      });
    } finally {
      zeroize(kp.secretKey);
    }
    let c: Concealment;
    if (info.mode === 'split') {
      const op = getSplitOperator(info.scheme);
      const concealed = fromB64u(payload.concealed, 'concealed');
      op.check(concealed);
      c = {
        masterVersion: imp.masterVersion,
        managerVersion: imp.managerVersion,
        concealed: payload.concealed,
      };
    } else {
      const scheme = getScheme(info.scheme);
      // Our own key for these versions, signed by the pinned CA: the page must have used it.
      const a = await this.a.client.request<KeyAnswer>('POST', `/v1/keyrings/${imp.keyring}/keys`, {
        managerVersion: imp.managerVersion,
        masterVersion: imp.masterVersion,
      });
      this.a.checkKeyStatement(a);
      if (a.publicKey !== payload.publicKey) {
        throw new BlindfoldError(
          'ERR_UNAUTHENTICATED',
          'the import was concealed under a key that is not this appliance key for its versions',
        );
      }
      const pk = scheme.decodePublicKey(fromB64u(a.publicKey));
      // Fresh randomness: the page's ciphertext randomness says nothing about what we store.
      const ct = scheme.rerandomize(
        pk,
        scheme.decodeCiphertext(pk, fromB64u(payload.concealed, 'concealed')),
      );
      c = {
        masterVersion: imp.masterVersion,
        managerVersion: imp.managerVersion,
        publicKey: a.publicKey,
        concealed: toB64u(scheme.encodeCiphertext(pk, ct)),
      };
      if (info.mode === 'hom2-opt') {
        c.optSeed = await this.a.optSetupFor(
          imp.keyring,
          imp.managerVersion,
          imp.masterVersion,
          scheme,
          pk,
          ct,
        );
      }
    }
    const ks: KeyringState = existing ?? { mode: info.mode, scheme: info.scheme, concealments: [] };
    ks.concealments.push(c);
    this.a.state = { ...this.a.state, keyrings: { ...this.a.state.keyrings, [imp.keyring]: ks } };
    await saveState(this.a.home, this.a.state);
  }
}

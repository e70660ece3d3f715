/**
 * Fixtures shared by the file-format tests (stream, stream-parallel, positional): a fixed KEK and
 * header fields, fresh file secrets with a sealed header, and a Writable that keeps what it gets.
 */
import { Writable } from 'node:stream';
import { sealFileHeader } from '../../src/appliance/stream.ts';
import { freshFileSecrets, type HeaderFields } from '../../src/core/format.ts';

export const kek = new Uint8Array(32).fill(0x4b);

export const baseFields: Omit<HeaderFields, 'fileNonce'> = {
  scheme: 1,
  mode: 1,
  keyring: 'test',
  masterVersion: 1,
  managerKeyVersion: 1,
  itemId: new Uint8Array(16).fill(0x1d),
  itemData: new Uint8Array([1, 2, 3]),
  ticket: new Uint8Array(0),
};

/** A fresh DEK and fileNonce, and the header that wraps the DEK under `kek`. */
export function fileSecrets(): { dek: Uint8Array; fileNonce: Uint8Array; header: Uint8Array } {
  const { dek, fileNonce } = freshFileSecrets();
  return { dek, fileNonce, header: sealFileHeader({ ...baseFields, fileNonce }, kek, dek) };
}

/** Keeps a copy of every piece written to it. */
export class Sink extends Writable {
  parts: Buffer[] = [];
  override _write(c: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.parts.push(Buffer.from(c));
    cb();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

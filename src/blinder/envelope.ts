/**
 * The JSON form of a request that travels along a blinder chain (SPEC.md §5.4, §7.4): the same
 * body at every hop except `ciphertext`, which each blinder replaces. Shared by the appliance
 * (sender), the blinders and the manager (receiver of the last hop).
 */
import { fromB64u, toB64u } from '../core/bytes.ts';
import type { ChainEnvelope } from '../manager/manager.ts';
import { b64u, keyringName, version } from '../server/common.ts';

export interface ChainEnvelopeJson {
  op: 'create' | 'recover';
  applianceId: string;
  keyring: string;
  itemId?: string;
  masterVersion: number;
  managerVersion: number;
  entropy?: string;
  ticket?: string;
  ttlSeconds?: number;
  aux?: string;
  issuedAt: number;
  nonce: string;
  signature: string;
  ciphertext: string;
}

export const chainEnvelopeSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'op',
    'applianceId',
    'keyring',
    'masterVersion',
    'managerVersion',
    'issuedAt',
    'nonce',
    'signature',
    'ciphertext',
  ],
  properties: {
    op: { type: 'string', enum: ['create', 'recover'] },
    applianceId: { type: 'string', pattern: '^ap-[0-9a-f]{16}$' },
    keyring: keyringName,
    itemId: b64u(16, 16),
    masterVersion: version,
    managerVersion: version,
    entropy: b64u(64),
    ticket: b64u(512, 1),
    ttlSeconds: { type: 'integer', minimum: 0, maximum: 1e9 },
    aux: b64u(64, 1),
    issuedAt: { type: 'integer', minimum: 0, maximum: 2 ** 53 - 1 },
    nonce: b64u(16, 16),
    signature: b64u(128, 8),
    ciphertext: b64u(70000, 1),
  },
} as const;

/** The answer a chain returns: the manager's, unchanged at every hop. */
export const chainAnswerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['answer'],
  properties: {
    itemId: { type: 'string' },
    managerVersion: { type: 'integer' },
    ticket: { type: 'string' },
    answer: { type: 'string' },
  },
} as const;

export interface ChainAnswerJson {
  itemId?: string;
  managerVersion?: number;
  ticket?: string;
  answer: string;
}

export function decodeEnvelope(j: ChainEnvelopeJson): ChainEnvelope {
  return {
    op: j.op,
    applianceId: j.applianceId,
    keyring: j.keyring,
    itemId: fromB64u(j.itemId ?? '', 'itemId'),
    masterVersion: j.masterVersion,
    managerVersion: j.managerVersion,
    entropy: fromB64u(j.entropy ?? '', 'entropy'),
    ticket: fromB64u(j.ticket ?? '', 'ticket'),
    ttlSeconds: j.ttlSeconds ?? 0,
    aux: fromB64u(j.aux ?? '', 'aux'),
    issuedAt: j.issuedAt,
    nonce: fromB64u(j.nonce, 'nonce'),
    signature: fromB64u(j.signature, 'signature'),
    ciphertext: fromB64u(j.ciphertext, 'ciphertext'),
  };
}

export function encodeEnvelope(e: ChainEnvelope): ChainEnvelopeJson {
  const j: ChainEnvelopeJson = {
    op: e.op,
    applianceId: e.applianceId,
    keyring: e.keyring,
    masterVersion: e.masterVersion,
    managerVersion: e.managerVersion,
    issuedAt: e.issuedAt,
    nonce: toB64u(e.nonce),
    signature: toB64u(e.signature),
    ciphertext: toB64u(e.ciphertext),
  };
  if (e.itemId.length > 0) j.itemId = toB64u(e.itemId);
  if (e.entropy.length > 0) j.entropy = toB64u(e.entropy);
  if (e.ticket.length > 0) j.ticket = toB64u(e.ticket);
  if (e.ttlSeconds > 0) j.ttlSeconds = e.ttlSeconds;
  if (e.aux.length > 0) j.aux = toB64u(e.aux);
  return j;
}

/**
 * Secrets the server hands out (API keys, agent credentials, activation codes): random,
 * shown once, stored only as a SHA-256 hash, recognisable by a short prefix.
 */
import { createHash, randomBytes } from 'node:crypto';

export type SecretKind = 'key' | 'agent' | 'activation';

const PREFIX: Record<SecretKind, string> = { key: 'bhk_', agent: 'bha_', activation: 'bhc_' };

export interface IssuedSecret {
  /** The whole secret: give it to its owner once, never store it. */
  readonly secret: string;
  /** What is stored to recognise it. */
  readonly hash: string;
  /** Safe to show in lists. */
  readonly prefix: string;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function issueSecret(kind: SecretKind): IssuedSecret {
  const secret = `${PREFIX[kind]}${randomBytes(24).toString('base64url')}`;
  return { secret, hash: hashSecret(secret), prefix: secret.slice(0, 10) };
}

export function secretKind(secret: string): SecretKind | null {
  for (const [kind, prefix] of Object.entries(PREFIX))
    if (secret.startsWith(prefix)) return kind as SecretKind;
  return null;
}

export function newId(): string {
  return randomBytes(9).toString('base64url');
}

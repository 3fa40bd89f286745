/**
 * Who is calling, and what they may do. Every route but health (and agent pairing, whose
 * activation code is its credential) requires a bearer credential: an API key with a role,
 * or an agent's own credential. Permissions are declared per route, so the role matrix is
 * one table here, and a route without a declared permission is refused at start-up.
 */
import type { FastifyRequest } from 'fastify';
import type { Role } from '../store/schema.js';
import type { Store } from '../store/store.js';
import { hashSecret } from './credentials.js';
import { errors } from './errors.js';

export type Permission =
  /** Read anything a person may see (not secrets). */
  | 'read'
  /** Change workloads, labels and enforcement modes. */
  | 'estate:write'
  /** Change the draft policy (a policy editor only within its scope). */
  | 'policy:write'
  /** Provision and roll back. */
  | 'policy:provision'
  /** Pairing profiles, activation codes, agent revocation. */
  | 'agents:manage'
  /** API keys. */
  | 'keys:manage'
  /** The calling agent's own channel. */
  | 'agent:self'
  /** No credential needed. */
  | 'public';

const EVERYTHING: ReadonlySet<Permission> = new Set([
  'read',
  'estate:write',
  'policy:write',
  'policy:provision',
  'agents:manage',
  'keys:manage',
]);

/**
 * The role matrix. Owner and admin hold the same permissions; what sets the owner apart is
 * checked where it applies (only an owner creates or revokes an owner key).
 */
const ROLE_PERMISSIONS: Record<Role, ReadonlySet<Permission>> = {
  owner: EVERYTHING,
  admin: EVERYTHING,
  'policy-editor': new Set(['read', 'policy:write']),
  'read-only': new Set(['read']),
};

export const PERMISSION_WORDS: Record<Permission, string> = {
  read: 'read',
  'estate:write': 'change workloads, labels or enforcement modes',
  'policy:write': 'change the draft policy',
  'policy:provision': 'provision or roll back policy',
  'agents:manage': 'manage pairing profiles, activation codes or agents',
  'keys:manage': 'manage API keys',
  'agent:self': 'use the agent channel',
  public: 'call this',
};

export type Principal =
  | {
      readonly kind: 'user';
      readonly keyId: string;
      readonly name: string;
      readonly role: Role;
      /** A policy editor's limit: rulesets whose scope lies within these labels. */
      readonly scope: Readonly<Record<string, readonly string[]>> | null;
    }
  | { readonly kind: 'agent'; readonly agentId: string; readonly workload: string };

export function actorOf(p: Principal | null): string {
  if (!p) return 'anonymous';
  return p.kind === 'user' ? `key:${p.keyId} (${p.name})` : `agent:${p.agentId} (${p.workload})`;
}

export function allows(p: Principal, permission: Permission): boolean {
  if (permission === 'public') return true;
  if (p.kind === 'agent') return permission === 'agent:self';
  return ROLE_PERMISSIONS[p.role].has(permission);
}

function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

/**
 * Recently seen credentials, so that an agent's every heartbeat and flow batch does not cost
 * two lookups. Entries live a few seconds; the app clears the cache whenever a credential is
 * revoked or its owner deleted, so revocation takes effect at once on this replica (and
 * within the time to live on any other).
 */
export class CredentialCache {
  private readonly entries = new Map<string, { principal: Principal; expires: number }>();
  constructor(private readonly ttlMs = 5_000) {}

  get(hash: string): Principal | undefined {
    const e = this.entries.get(hash);
    if (!e) return undefined;
    if (e.expires < Date.now()) {
      this.entries.delete(hash);
      return undefined;
    }
    return e.principal;
  }

  set(hash: string, principal: Principal): void {
    if (this.entries.size > 100_000) this.entries.clear();
    this.entries.set(hash, { principal, expires: Date.now() + this.ttlMs });
  }

  clear(): void {
    this.entries.clear();
  }
}

/** Finds the principal behind a request's credential, or null. */
export async function authenticate(
  store: Store,
  request: FastifyRequest,
  cache?: CredentialCache,
): Promise<Principal | null> {
  const token = bearer(request);
  if (!token) return null;
  const hash = hashSecret(token);
  const cached = cache?.get(hash);
  if (cached) return cached;
  const principal = await lookUp(store, hash);
  if (principal) cache?.set(hash, principal);
  return principal;
}

async function lookUp(store: Store, hash: string): Promise<Principal | null> {
  const key = await store.db
    .selectFrom('api_keys')
    .select(['id', 'name', 'role', 'scope'])
    .where('hash', '=', hash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  if (key) {
    return {
      kind: 'user',
      keyId: key.id,
      name: key.name,
      role: key.role,
      scope: key.scope ? (JSON.parse(key.scope) as Record<string, string[]>) : null,
    };
  }
  const agent = await store.db
    .selectFrom('agents')
    .select(['id', 'workload'])
    .where('credential_hash', '=', hash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return agent ? { kind: 'agent', agentId: agent.id, workload: agent.workload } : null;
}

/** Throws the right error unless the principal holds the permission. */
export function requirePermission(p: Principal | null, permission: Permission): void {
  if (permission === 'public') return;
  if (!p) throw errors.unauthenticated();
  if (!allows(p, permission)) throw errors.forbidden(PERMISSION_WORDS[permission]);
}

/** The calling agent (the route's `agent:self` permission has already made sure it is one). */
export function callingAgent(request: FastifyRequest): { agentId: string; workload: string } {
  const p = request.principal;
  if (p?.kind !== 'agent') throw errors.forbidden('use the agent channel');
  return { agentId: p.agentId, workload: p.workload };
}

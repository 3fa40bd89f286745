/**
 * Pairing profiles, activation codes, agents, and the agent channel itself.
 *
 * An administrator makes a pairing profile (the labels and enforcement mode new workloads
 * get) and activation codes for it (with an expiry and a use limit, shown once). An agent
 * pairs with a code and receives its own credential, which is all it uses from then on:
 * heartbeats, inventory, its compiled policy (pushed as server-sent events, fetched with an
 * ETag, acknowledged), and flow-summary batches. An agent can reach only its own workload's
 * data; an API key cannot use the agent channel at all.
 */
import { sql } from 'kysely';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Db } from '../../store/store.js';
import { AgentStreams } from '../agent-events.js';
import {
  ackBody,
  heartbeatBody,
  inventoryAddresses,
  inventoryBody,
  labels,
  mode,
  pairBody,
  type Inventory,
} from '../agent-schemas.js';
import { callingAgent } from '../auth.js';
import { change } from '../change.js';
import { hashSecret, issueSecret, newId } from '../credentials.js';
import { compiledFor, redistribute } from '../distribution.js';
import { errors } from '../errors.js';
import type { RouteOptions } from '../context.js';

/** True when `revision` is newer than the agent row's applied revision (or none is recorded). */
function newer(revision: number) {
  return sql<boolean>`(applied_revision is null or applied_revision < ${revision})`;
}

/** How often an agent without an open event stream should poll its policy. */
export const POLL_INTERVAL_SECONDS = 30;
const DAY = 86_400;

// ---------------------------------------------------------------- views

const profileView = z.object({
  id: z.string(),
  name: z.string(),
  labels: z.record(z.string(), z.string()),
  mode: z.string(),
  createdAt: z.string(),
});
type ProfileRow = { id: string; name: string; labels: string; mode: string; created_at: string };
const viewProfile = (p: ProfileRow): z.infer<typeof profileView> => ({
  id: p.id,
  name: p.name,
  labels: JSON.parse(p.labels) as Record<string, string>,
  mode: p.mode,
  createdAt: p.created_at,
});

const codeView = z.object({
  id: z.string(),
  profileId: z.string(),
  prefix: z.string(),
  expiresAt: z.string(),
  maxUses: z.number(),
  uses: z.number(),
  revokedAt: z.string().nullable(),
  createdAt: z.string(),
  state: z.enum(['usable', 'expired', 'used-up', 'revoked']),
});
type CodeRow = {
  id: string;
  profile_id: string;
  prefix: string;
  expires_at: string;
  max_uses: number;
  uses: number;
  revoked_at: string | null;
  created_at: string;
};
const CODE_COLUMNS = [
  'id',
  'profile_id',
  'prefix',
  'expires_at',
  'max_uses',
  'uses',
  'revoked_at',
  'created_at',
] as const;
function codeState(c: CodeRow, now = new Date().toISOString()): z.infer<typeof codeView>['state'] {
  if (c.revoked_at) return 'revoked';
  if (c.expires_at <= now) return 'expired';
  if (Number(c.uses) >= Number(c.max_uses)) return 'used-up';
  return 'usable';
}
const viewCode = (c: CodeRow): z.infer<typeof codeView> => ({
  id: c.id,
  profileId: c.profile_id,
  prefix: c.prefix,
  expiresAt: c.expires_at,
  maxUses: Number(c.max_uses),
  uses: Number(c.uses),
  revokedAt: c.revoked_at,
  createdAt: c.created_at,
  state: codeState(c),
});

const agentView = z.object({
  id: z.string(),
  workload: z.string(),
  status: z.string(),
  mode: z.string().nullable(),
  lastHeartbeatAt: z.string().nullable(),
  appliedRevision: z.number().nullable(),
  appliedVersion: z.number().nullable(),
  currentRevision: z.number().nullable(),
  currentPolicyVersion: z.number().nullable(),
  upToDate: z.boolean(),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
});
type AgentListRow = {
  id: string;
  workload: string;
  status: string;
  last_heartbeat_at: string | null;
  applied_revision: number | null;
  applied_version: number | null;
  created_at: string;
  revoked_at: string | null;
  mode: string | null;
  current_revision: number | null;
  current_version: number | null;
};
const num = (v: number | string | null): number | null => (v === null ? null : Number(v));
const viewAgent = (a: AgentListRow): z.infer<typeof agentView> => ({
  id: a.id,
  workload: a.workload,
  status: a.status,
  mode: a.mode,
  lastHeartbeatAt: a.last_heartbeat_at,
  appliedRevision: num(a.applied_revision),
  appliedVersion: num(a.applied_version),
  currentRevision: num(a.current_revision),
  currentPolicyVersion: num(a.current_version),
  upToDate: a.current_revision !== null && num(a.applied_revision) === num(a.current_revision),
  createdAt: a.created_at,
  revokedAt: a.revoked_at,
});

function agentQuery(db: Db) {
  return db
    .selectFrom('agents')
    .leftJoin('workloads', 'workloads.name', 'agents.workload')
    .leftJoin('compiled_policies', 'compiled_policies.workload', 'agents.workload')
    .select([
      'agents.id',
      'agents.workload',
      'agents.status',
      'agents.last_heartbeat_at',
      'agents.applied_revision',
      'agents.applied_version',
      'agents.created_at',
      'agents.revoked_at',
      'workloads.mode',
      'compiled_policies.revision as current_revision',
      'compiled_policies.policy_version as current_version',
    ]);
}

const sortedUnique = (xs: readonly string[]): string[] => [...new Set(xs)].sort();

/** What the audit log keeps of an inventory (not every listening socket). */
function inventorySummary(
  addresses: readonly string[],
  users: readonly string[],
  inventory: Inventory | null,
): Record<string, unknown> {
  return {
    addresses,
    users,
    hostname: inventory?.hostname ?? null,
    os: inventory?.os ?? null,
    interfaces: inventory?.interfaces.map((i) => i.name) ?? [],
    listening: inventory?.listening.length ?? 0,
  };
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === '*' || t === etag);
}

const idParams = z.object({ id: z.string().min(1).max(128) });

export const agentRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  const streams = new AgentStreams();
  app.addHook('preClose', async () => streams.endAll());

  // ------------------------------------------------------------ pairing profiles

  app.get(
    '/pairing-profiles',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'List pairing profiles',
        tags: ['agents'],
        response: { 200: z.object({ items: z.array(profileView) }) },
      },
    },
    async () => {
      const rows = await ctx.store.db
        .selectFrom('pairing_profiles')
        .select(['id', 'name', 'labels', 'mode', 'created_at'])
        .orderBy('name')
        .execute();
      return { items: rows.map(viewProfile) };
    },
  );

  app.post(
    '/pairing-profiles',
    {
      config: { permission: 'agents:manage' },
      schema: {
        summary: 'Create a pairing profile: the labels and mode that paired workloads get',
        tags: ['agents'],
        body: z.strictObject({
          name: z
            .string()
            .regex(
              /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/,
              'is not a name (1-128 letters, digits, ".", "_", ":" or "-")',
            ),
          labels: labels.default({}),
          mode: mode.default('visibility'),
        }),
        response: { 201: profileView },
      },
    },
    async (request, reply) => {
      const row: ProfileRow = {
        id: newId(),
        name: request.body.name,
        labels: JSON.stringify(request.body.labels),
        mode: request.body.mode,
        created_at: new Date().toISOString(),
      };
      await change(ctx, request, async (trx, audit) => {
        const existing = await trx
          .selectFrom('pairing_profiles')
          .select('id')
          .where('name', '=', row.name)
          .executeTakeFirst();
        if (existing) throw errors.conflict(`a pairing profile named "${row.name}" already exists`);
        await trx.insertInto('pairing_profiles').values(row).execute();
        await audit({
          type: 'pairing-profile.create',
          kind: 'PairingProfile',
          name: row.id,
          after: viewProfile(row),
        });
      });
      return reply.code(201).send(viewProfile(row));
    },
  );

  app.delete(
    '/pairing-profiles/:id',
    {
      config: { permission: 'agents:manage' },
      schema: {
        summary: 'Delete a pairing profile and its activation codes (paired agents stay)',
        tags: ['agents'],
        params: idParams,
        response: { 200: profileView },
      },
    },
    async (request) =>
      change(ctx, request, async (trx, audit) => {
        const row = await trx
          .selectFrom('pairing_profiles')
          .select(['id', 'name', 'labels', 'mode', 'created_at'])
          .where('id', '=', request.params.id)
          .executeTakeFirst();
        if (!row) throw errors.notFound('pairing profile', request.params.id);
        await trx.deleteFrom('activation_codes').where('profile_id', '=', row.id).execute();
        await trx.deleteFrom('pairing_profiles').where('id', '=', row.id).execute();
        await audit({
          type: 'pairing-profile.delete',
          kind: 'PairingProfile',
          name: row.id,
          before: viewProfile(row),
        });
        return viewProfile(row);
      }),
  );

  // ------------------------------------------------------------ activation codes

  app.post(
    '/pairing-profiles/:id/activation-codes',
    {
      config: { permission: 'agents:manage' },
      schema: {
        summary: 'Create an activation code for a profile; the code is in this response only',
        tags: ['agents'],
        params: idParams,
        body: z.strictObject({
          expiresInSeconds: z
            .number()
            .int()
            .min(60)
            .max(365 * DAY)
            .default(DAY),
          maxUses: z.number().int().min(1).max(1_000_000).default(1),
        }),
        response: { 201: codeView.extend({ code: z.string() }) },
      },
    },
    async (request, reply) => {
      const secret = issueSecret('activation');
      const now = new Date();
      const row: CodeRow = {
        id: newId(),
        profile_id: request.params.id,
        prefix: secret.prefix,
        expires_at: new Date(now.getTime() + request.body.expiresInSeconds * 1000).toISOString(),
        max_uses: request.body.maxUses,
        uses: 0,
        revoked_at: null,
        created_at: now.toISOString(),
      };
      await change(ctx, request, async (trx, audit) => {
        const profile = await trx
          .selectFrom('pairing_profiles')
          .select('id')
          .where('id', '=', request.params.id)
          .executeTakeFirst();
        if (!profile) throw errors.notFound('pairing profile', request.params.id);
        await trx
          .insertInto('activation_codes')
          .values({ ...row, hash: secret.hash })
          .execute();
        await audit({
          type: 'activation-code.create',
          kind: 'ActivationCode',
          name: row.id,
          after: viewCode(row),
        });
      });
      return reply.code(201).send({ ...viewCode(row), code: secret.secret });
    },
  );

  app.get(
    '/pairing-profiles/:id/activation-codes',
    {
      config: { permission: 'read' },
      schema: {
        summary: "List a profile's activation codes (never the codes themselves)",
        tags: ['agents'],
        params: idParams,
        response: { 200: z.object({ items: z.array(codeView) }) },
      },
    },
    async (request) => {
      const profile = await ctx.store.db
        .selectFrom('pairing_profiles')
        .select('id')
        .where('id', '=', request.params.id)
        .executeTakeFirst();
      if (!profile) throw errors.notFound('pairing profile', request.params.id);
      const rows = await ctx.store.db
        .selectFrom('activation_codes')
        .select(CODE_COLUMNS)
        .where('profile_id', '=', request.params.id)
        .orderBy('created_at')
        .execute();
      return { items: rows.map(viewCode) };
    },
  );

  app.delete(
    '/pairing-profiles/:id/activation-codes/:codeId',
    {
      config: { permission: 'agents:manage' },
      schema: {
        summary: 'Revoke an activation code',
        tags: ['agents'],
        params: z.object({ id: z.string().min(1).max(128), codeId: z.string().min(1).max(128) }),
        response: { 200: codeView },
      },
    },
    async (request) =>
      change(ctx, request, async (trx, audit) => {
        const code = await trx
          .selectFrom('activation_codes')
          .select(CODE_COLUMNS)
          .where('id', '=', request.params.codeId)
          .where('profile_id', '=', request.params.id)
          .executeTakeFirst();
        if (!code) throw errors.notFound('activation code', request.params.codeId);
        if (code.revoked_at) return viewCode(code);
        const revoked = { ...code, revoked_at: new Date().toISOString() };
        await trx
          .updateTable('activation_codes')
          .set({ revoked_at: revoked.revoked_at })
          .where('id', '=', code.id)
          .execute();
        await audit({
          type: 'activation-code.revoke',
          kind: 'ActivationCode',
          name: code.id,
          before: viewCode(code),
          after: viewCode(revoked),
        });
        return viewCode(revoked);
      }),
  );

  // ------------------------------------------------------------ pairing

  app.post(
    '/agents/pair',
    {
      // The activation code in the body is the credential.
      config: { permission: 'public' },
      schema: {
        summary:
          'Pair an agent with an activation code: creates (or adopts) its workload and returns its credential, once',
        tags: ['agent channel'],
        security: [],
        body: pairBody,
        response: {
          201: z.object({
            agentId: z.string(),
            credential: z.string(),
            workload: z.string(),
            pollIntervalSeconds: z.number(),
          }),
        },
      },
    },
    async (request, reply) => {
      const { activationCode, hostname, addresses, ...rest } = request.body;
      const inventory: Inventory = { hostname, ...rest };
      const secret = issueSecret('agent');
      const agentId = newId();
      const { changed } = await change(ctx, request, async (trx, audit) => {
        const now = new Date().toISOString();
        const code = await trx
          .selectFrom('activation_codes')
          .select([...CODE_COLUMNS])
          .where('hash', '=', hashSecret(activationCode))
          .executeTakeFirst();
        if (!code) throw errors.activationCodeInvalid();
        const state = codeState(code, now);
        if (state === 'revoked') throw errors.activationCodeRevoked(code.prefix);
        if (state === 'expired') throw errors.activationCodeExpired(code.prefix, code.expires_at);
        if (state === 'used-up')
          throw errors.activationCodeUsedUp(code.prefix, Number(code.max_uses));
        const profile = await trx
          .selectFrom('pairing_profiles')
          .select(['id', 'name', 'labels', 'mode'])
          .where('id', '=', code.profile_id)
          .executeTakeFirstOrThrow();
        const profileLabels = JSON.parse(profile.labels) as Record<string, string>;
        const users = sortedUnique(inventory.users);
        const existing = await trx
          .selectFrom('workloads')
          .selectAll()
          .where('name', '=', hostname)
          .executeTakeFirst();
        if (existing) {
          const active = await trx
            .selectFrom('agents')
            .select('id')
            .where('workload', '=', hostname)
            .where('revoked_at', 'is', null)
            .executeTakeFirst();
          if (active) {
            throw errors.conflict(
              `workload "${hostname}" already has an agent (${active.id}): revoke it first (POST /api/v1/agents/${active.id}/revoke)`,
            );
          }
          const before = {
            addresses: JSON.parse(existing.addresses) as string[],
            labels: JSON.parse(existing.labels) as Record<string, string>,
            mode: existing.mode,
            managed: existing.managed === 1,
          };
          const after = {
            addresses,
            labels: { ...before.labels, ...profileLabels },
            mode: profile.mode,
            managed: true,
          };
          await trx
            .updateTable('workloads')
            .set({
              addresses: JSON.stringify(after.addresses),
              labels: JSON.stringify(after.labels),
              mode: after.mode,
              managed: 1,
              users: JSON.stringify(users),
              inventory: JSON.stringify(inventory),
              updated_at: now,
            })
            .where('name', '=', hostname)
            .execute();
          await audit({ type: 'workload.adopt', kind: 'Workload', name: hostname, before, after });
        } else {
          await trx
            .insertInto('workloads')
            .values({
              name: hostname,
              addresses: JSON.stringify(addresses),
              labels: profile.labels,
              mode: profile.mode,
              managed: 1,
              users: JSON.stringify(users),
              inventory: JSON.stringify(inventory),
              created_at: now,
              updated_at: now,
            })
            .execute();
          await audit({
            type: 'workload.create',
            kind: 'Workload',
            name: hostname,
            after: { addresses, labels: profileLabels, mode: profile.mode, managed: true },
          });
        }
        // Counted under a guard, so concurrent pairings cannot exceed the limit.
        const used = await trx
          .updateTable('activation_codes')
          .set((eb) => ({ uses: eb('uses', '+', 1) }))
          .where('id', '=', code.id)
          .where('uses', '<', code.max_uses)
          .executeTakeFirst();
        if (Number(used.numUpdatedRows) !== 1)
          throw errors.activationCodeUsedUp(code.prefix, Number(code.max_uses));
        await trx
          .insertInto('agents')
          .values({
            id: agentId,
            workload: hostname,
            credential_hash: secret.hash,
            status: 'paired',
            last_heartbeat_at: null,
            applied_version: null,
            applied_revision: null,
            created_at: now,
            revoked_at: null,
          })
          .execute();
        await audit({
          type: 'agent.pair',
          kind: 'Agent',
          name: agentId,
          after: {
            id: agentId,
            workload: hostname,
            profile: profile.name,
            activationCode: code.prefix,
            adopted: existing !== undefined,
          },
        });
        return { changed: await redistribute(trx, ctx.compileCache) };
      });
      ctx.policies.announce(changed);
      return reply.code(201).send({
        agentId,
        credential: secret.secret,
        workload: hostname,
        pollIntervalSeconds: POLL_INTERVAL_SECONDS,
      });
    },
  );

  // ------------------------------------------------------------ the agent's own channel

  const policyState = z.object({
    workload: z.string(),
    revision: z.number().nullable(),
    policyVersion: z.number().nullable(),
    mode: z.string(),
    pollIntervalSeconds: z.number(),
  });

  async function currentState(workload: string): Promise<z.infer<typeof policyState>> {
    const row = await ctx.store.db
      .selectFrom('workloads')
      .leftJoin('compiled_policies', 'compiled_policies.workload', 'workloads.name')
      .select(['workloads.mode', 'compiled_policies.revision', 'compiled_policies.policy_version'])
      .where('workloads.name', '=', workload)
      .executeTakeFirst();
    if (!row) throw errors.notFound('workload', workload);
    return {
      workload,
      revision: num(row.revision),
      policyVersion: num(row.policy_version),
      mode: row.mode,
      pollIntervalSeconds: POLL_INTERVAL_SECONDS,
    };
  }

  app.post(
    '/agent/heartbeat',
    {
      config: { permission: 'agent:self' },
      schema: {
        summary: "The agent's heartbeat; answers with its current policy revision",
        tags: ['agent channel'],
        body: heartbeatBody,
        response: { 200: policyState },
      },
    },
    async (request) => {
      const { agentId, workload } = callingAgent(request);
      const { appliedRevision, appliedVersion, status } = request.body;
      // A heartbeat sent before an apply can arrive after that apply's acknowledgement (an
      // agent's calls run on more than one connection): what it says was applied only ever
      // moves the record forward.
      await ctx.store.db
        .updateTable('agents')
        .set({
          last_heartbeat_at: new Date().toISOString(),
          status: status ?? 'ok',
          ...(appliedRevision !== undefined
            ? {
                applied_revision: sql<number>`case when ${newer(appliedRevision)} then ${appliedRevision} else applied_revision end`,
                ...(appliedVersion !== undefined
                  ? {
                      applied_version: sql<number>`case when ${newer(appliedRevision)} then ${appliedVersion} else applied_version end`,
                    }
                  : {}),
              }
            : appliedVersion !== undefined
              ? { applied_version: appliedVersion }
              : {}),
        })
        .where('id', '=', agentId)
        .where('revoked_at', 'is', null)
        .execute();
      return currentState(workload);
    },
  );

  app.put(
    '/agent/inventory',
    {
      config: { permission: 'agent:self' },
      schema: {
        summary:
          "Report the agent's inventory (hostname, OS, interfaces, listening sockets, users)",
        tags: ['agent channel'],
        body: inventoryBody,
        response: {
          200: z.object({
            workload: z.string(),
            changed: z.boolean(),
            addresses: z.array(z.string()),
            users: z.array(z.string()),
          }),
        },
      },
    },
    async (request) => {
      const { workload } = callingAgent(request);
      const inventory = request.body;
      const result = await change(ctx, request, async (trx, audit) => {
        const row = await trx
          .selectFrom('workloads')
          .select(['addresses', 'users', 'inventory'])
          .where('name', '=', workload)
          .executeTakeFirst();
        if (!row) throw errors.notFound('workload', workload);
        const oldAddresses = JSON.parse(row.addresses) as string[];
        const oldUsers = JSON.parse(row.users) as string[];
        const reported = inventoryAddresses(inventory);
        const addresses = reported.length > 0 ? reported : oldAddresses;
        const users = sortedUnique(inventory.users);
        const text = JSON.stringify(inventory);
        const estateChanged =
          JSON.stringify(addresses) !== JSON.stringify(oldAddresses) ||
          JSON.stringify(users) !== JSON.stringify(oldUsers);
        if (!estateChanged && text === row.inventory) {
          return { changed: false, addresses, users, revisions: [] };
        }
        await trx
          .updateTable('workloads')
          .set({
            addresses: JSON.stringify(addresses),
            users: JSON.stringify(users),
            inventory: text,
            updated_at: new Date().toISOString(),
          })
          .where('name', '=', workload)
          .execute();
        await audit({
          type: 'workload.inventory',
          kind: 'Workload',
          name: workload,
          before: inventorySummary(
            oldAddresses,
            oldUsers,
            row.inventory ? (JSON.parse(row.inventory) as Inventory) : null,
          ),
          after: inventorySummary(addresses, users, inventory),
        });
        const revisions = estateChanged ? await redistribute(trx, ctx.compileCache) : [];
        return { changed: true, addresses, users, revisions };
      });
      ctx.policies.announce(result.revisions);
      return {
        workload,
        changed: result.changed,
        addresses: result.addresses,
        users: result.users,
      };
    },
  );

  app.get(
    '/agent/policy',
    {
      config: { permission: 'agent:self' },
      schema: {
        summary:
          "The agent's compiled policy; send If-None-Match with the revision's ETag to get 304 when unchanged",
        tags: ['agent channel'],
      },
    },
    async (request, reply) => {
      const { workload } = callingAgent(request);
      const policy = await compiledFor(ctx.store.db, workload);
      if (!policy) throw errors.notFound('compiled policy of workload', workload);
      const etag = `"${policy.revision}"`;
      void reply.header('etag', etag).header('cache-control', 'no-cache');
      if (etagMatches(request.headers['if-none-match'], etag)) return reply.code(304).send();
      return policy;
    },
  );

  app.get(
    '/agent/events',
    {
      config: { permission: 'agent:self' },
      schema: {
        summary:
          'Server-sent events: a `policy` event with the current revision, then one per new revision',
        tags: ['agent channel'],
      },
    },
    async (request, reply) => {
      const { agentId, workload } = callingAgent(request);
      const state = await currentState(workload);
      streams.serve(reply, ctx.policies, agentId, workload, {
        revision: state.revision,
        policyVersion: state.policyVersion,
      });
      return reply;
    },
  );

  app.post(
    '/agent/policy/ack',
    {
      config: { permission: 'agent:self' },
      schema: {
        summary: 'Acknowledge a policy revision as applied, or report that applying it failed',
        tags: ['agent channel'],
        body: ackBody,
        response: { 200: z.object({ recorded: z.boolean() }) },
      },
    },
    async (request) => {
      const { agentId, workload } = callingAgent(request);
      const { revision, policyVersion, result, error } = request.body;
      const now = new Date().toISOString();
      if (result === 'applied') {
        await ctx.store.db
          .updateTable('agents')
          .set({
            // A late acknowledgement of an older revision must not move the record back.
            applied_revision: sql<number>`case when ${newer(revision)} then ${revision} else applied_revision end`,
            applied_version: sql<number>`case when ${newer(revision)} then ${policyVersion} else applied_version end`,
            status: 'ok',
            last_heartbeat_at: now,
          })
          .where('id', '=', agentId)
          .execute();
      } else {
        await change(ctx, request, async (trx, audit) => {
          await trx
            .updateTable('agents')
            .set({ status: 'apply-failed', last_heartbeat_at: now })
            .where('id', '=', agentId)
            .execute();
          await audit({
            type: 'agent.policy-failed',
            kind: 'Agent',
            name: agentId,
            after: { workload, revision, policyVersion, error: error ?? null },
          });
        });
      }
      return { recorded: true };
    },
  );

  // ------------------------------------------------------------ agent administration

  app.get(
    '/agents',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'List agents: status, last heartbeat, applied vs current revision, mode',
        tags: ['agents'],
        response: { 200: z.object({ items: z.array(agentView) }) },
      },
    },
    async () => {
      const rows = await agentQuery(ctx.store.db)
        .orderBy('agents.created_at')
        .orderBy('agents.id')
        .execute();
      return { items: rows.map(viewAgent) };
    },
  );

  app.get(
    '/agents/:id',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'Show one agent',
        tags: ['agents'],
        params: idParams,
        response: { 200: agentView },
      },
    },
    async (request) => {
      const row = await agentQuery(ctx.store.db)
        .where('agents.id', '=', request.params.id)
        .executeTakeFirst();
      if (!row) throw errors.notFound('agent', request.params.id);
      return viewAgent(row);
    },
  );

  app.post(
    '/agents/:id/revoke',
    {
      config: { permission: 'agents:manage' },
      schema: {
        summary: "Revoke an agent's credential: it stops working at once",
        tags: ['agents'],
        params: idParams,
        response: { 200: agentView },
      },
    },
    async (request) => {
      const view = await change(ctx, request, async (trx, audit) => {
        const row = await agentQuery(trx)
          .where('agents.id', '=', request.params.id)
          .executeTakeFirst();
        if (!row) throw errors.notFound('agent', request.params.id);
        if (row.revoked_at) return viewAgent(row);
        const revoked = { ...row, status: 'revoked', revoked_at: new Date().toISOString() };
        await trx
          .updateTable('agents')
          .set({ status: revoked.status, revoked_at: revoked.revoked_at })
          .where('id', '=', row.id)
          .execute();
        await audit({
          type: 'agent.revoke',
          kind: 'Agent',
          name: row.id,
          before: viewAgent(row),
          after: viewAgent(revoked),
        });
        return viewAgent(revoked);
      });
      streams.endFor(view.id);
      return view;
    },
  );
};

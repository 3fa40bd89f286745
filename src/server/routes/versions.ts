/**
 * Policy versions: numbered, immutable snapshots of the draft. Provisioning shows first what
 * would change (the engine's diff and the workloads whose compiled policy changes), then
 * makes the draft version N+1 and the active one; rollback provisions an earlier version's
 * content as a new version and resets the draft to it.
 */
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Transaction } from 'kysely';
import { compilePolicy, type CompiledPolicy } from '../../policy/compile/endpoint.js';
import { nftState } from '../../policy/compile/nft.js';
import { diffPolicies } from '../../policy/diff.js';
import type { Database } from '../../store/schema.js';
import type { Db } from '../../store/store.js';
import { actorOf } from '../auth.js';
import { change } from '../change.js';
import { compiledBody, redistribute, type CompileCache } from '../distribution.js';
import { errors } from '../errors.js';
import {
  activePolicy,
  activeVersion,
  canonicalOrder,
  loadDraft,
  loadVersion,
  loadWorkloads,
  resolveStored,
  type StoredDocument,
} from '../policy-state.js';
import { requireResolvable, stableJson, writeDraft } from './policy.js';
import type { RouteOptions } from '../context.js';

/** Most access changes a preview lists; the total is always given. */
export const MAX_ACCESS_CHANGES = 500;
/** Bound on the diff's grid of representative flows, so a preview stays quick. */
const MAX_DIFF_FLOWS = 500_000;

export const sameDocuments = (a: readonly StoredDocument[], b: readonly StoredDocument[]) => {
  const canon = (docs: readonly StoredDocument[]) =>
    stableJson(canonicalOrder(docs).map((d) => ({ kind: d.kind, name: d.name, spec: d.spec })));
  return canon(a) === canon(b);
};

/** The workloads whose stored compiled policy differs from `compiled`, by name. */
async function changedWorkloads(db: Db, compiled: CompiledPolicy): Promise<string[]> {
  const rows = await db.selectFrom('compiled_policies').select(['workload', 'compiled']).execute();
  const stored = new Map(rows.map((r) => [r.workload, r.compiled]));
  const changed: string[] = [];
  for (const [name, endpoint] of compiled.endpoints) {
    if (stored.get(name) !== compiledBody(nftState(endpoint, compiled.peerSets)))
      changed.push(name);
  }
  return changed.sort();
}

/** The diff between the active version and `target`, and the workloads whose policy changes. */
async function preview(db: Db, cache: CompileCache, target: readonly StoredDocument[]) {
  const { version, documents: active } = await activePolicy(db);
  const workloads = await loadWorkloads(db);
  const after = requireResolvable(target, workloads);
  const changes = !sameDocuments(active, target);
  // An unchanged draft is the active version: the same resolved policy on both sides tells
  // the diff that nothing can differ, and the active version's compile is likely cached.
  const before = changes ? resolveStored(active, workloads) : after;
  const diff = diffPolicies(before, after, MAX_DIFF_FLOWS);
  const cached = changes ? null : cache.compiledFor(version ?? 0, workloads);
  const workloadsChanged = await changedWorkloads(db, cached?.compiled ?? compilePolicy(after));
  return {
    activeVersion: version,
    changes,
    diff: {
      objects: diff.objects.map((o) => ({ ...o, fields: [...o.fields] })),
      rules: diff.rules.map((r) => ({ ...r, fields: [...r.fields] })),
      access: diff.access.slice(0, MAX_ACCESS_CHANGES),
      accessTotal: diff.access.length,
      accessTruncated: diff.access.length > MAX_ACCESS_CHANGES,
      flowsCompared: diff.flowsCompared,
    },
    workloads: workloadsChanged,
  };
}

const previewView = z.object({
  activeVersion: z.number().nullable(),
  changes: z.boolean(),
  diff: z.object({
    objects: z.array(
      z.object({
        change: z.string(),
        kind: z.string(),
        name: z.string(),
        fields: z.array(z.string()),
      }),
    ),
    rules: z.array(
      z.object({ change: z.string(), ruleId: z.string(), fields: z.array(z.string()) }),
    ),
    access: z.array(
      z.object({
        from: z.string(),
        to: z.string(),
        service: z.string(),
        before: z.string(),
        after: z.string(),
        decidedBy: z.unknown(),
        direction: z.enum(['gains', 'loses']),
      }),
    ),
    accessTotal: z.number(),
    accessTruncated: z.boolean(),
    flowsCompared: z.number(),
  }),
  workloads: z.array(z.string()),
});

const versionSummary = z.object({
  version: z.number(),
  message: z.string(),
  createdAt: z.string(),
  createdBy: z.string(),
  restores: z.number().nullable(),
  active: z.boolean(),
  objects: z.number(),
});

const provisioned = z.object({
  version: z.number(),
  message: z.string(),
  restores: z.number().nullable(),
  workloadsChanged: z.array(z.string()),
});

/** Makes `documents` version N+1, active, and recompiles; in the caller's transaction. */
export async function provisionIn(
  trx: Transaction<Database>,
  cache: CompileCache,
  documents: readonly StoredDocument[],
  message: string,
  createdBy: string,
  restores: number | null,
) {
  const last = await trx
    .selectFrom('policy_versions')
    .select((eb) => eb.fn.max('version').as('max'))
    .executeTakeFirst();
  const version = Number(last?.max ?? 0) + 1;
  const value = JSON.stringify(version);
  await trx
    .insertInto('policy_versions')
    .values({
      version,
      message,
      objects: JSON.stringify(documents),
      created_at: new Date().toISOString(),
      created_by: createdBy,
      restores,
    })
    .execute();
  await trx
    .insertInto('meta')
    .values({ key: 'active_version', value })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
    .execute();
  return { version, changed: await redistribute(trx, cache) };
}

export const versionRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  app.get(
    '/policy/versions',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'Every policy version, newest first',
        tags: ['policy'],
        response: {
          200: z.object({ active: z.number().nullable(), items: z.array(versionSummary) }),
        },
      },
    },
    async () => {
      const active = await activeVersion(ctx.store.db);
      const rows = await ctx.store.db
        .selectFrom('policy_versions')
        .selectAll()
        .orderBy('version', 'desc')
        .execute();
      return {
        active,
        items: rows.map((r) => ({
          version: r.version,
          message: r.message,
          createdAt: r.created_at,
          createdBy: r.created_by,
          restores: r.restores,
          active: r.version === active,
          objects: (JSON.parse(r.objects) as unknown[]).length,
        })),
      };
    },
  );

  app.get(
    '/policy/versions/:version',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'One policy version with its documents',
        tags: ['policy'],
        params: z.object({ version: z.coerce.number().int().min(1) }),
        response: {
          200: versionSummary
            .omit({ objects: true })
            .extend({ documents: z.array(z.record(z.string(), z.unknown())) }),
        },
      },
    },
    async (request) => {
      const row = await ctx.store.db
        .selectFrom('policy_versions')
        .selectAll()
        .where('version', '=', request.params.version)
        .executeTakeFirst();
      if (!row) throw errors.notFound('policy version', String(request.params.version));
      const active = await activeVersion(ctx.store.db);
      return {
        version: row.version,
        message: row.message,
        createdAt: row.created_at,
        createdBy: row.created_by,
        restores: row.restores,
        active: row.version === active,
        documents: (JSON.parse(row.objects) as StoredDocument[]).map((d) => d.spec),
      };
    },
  );

  app.get(
    '/policy/provision/preview',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'What provisioning the draft would change: the diff and the workloads affected',
        tags: ['policy'],
        response: { 200: previewView },
      },
    },
    async () => preview(ctx.store.db, ctx.compileCache, await loadDraft(ctx.store.db)),
  );

  app.post(
    '/policy/provision',
    {
      config: { permission: 'policy:provision' },
      schema: {
        summary: 'Make the draft the next, active, immutable version (dryRun: only preview)',
        tags: ['policy'],
        querystring: z.strictObject({ dryRun: z.enum(['true', 'false']).optional() }),
        body: z.strictObject({
          message: z.string().trim().min(1, 'say what this version changes').max(1024),
          dryRun: z.boolean().optional(),
        }),
        response: { 200: previewView, 201: provisioned },
      },
    },
    async (request, reply) => {
      if (request.query.dryRun === 'true' || request.body.dryRun === true)
        return reply
          .code(200)
          .send(await preview(ctx.store.db, ctx.compileCache, await loadDraft(ctx.store.db)));
      const { message } = request.body;
      const { version, changed } = await change(ctx, request, async (trx, audit) => {
        const draft = await loadDraft(trx);
        const { version: activeNow, documents: active } = await activePolicy(trx);
        if (sameDocuments(active, draft))
          throw errors.conflict(
            activeNow
              ? `nothing to provision: the draft is the same as active version ${activeNow}`
              : 'nothing to provision: the draft is empty and no version is active',
          );
        requireResolvable(draft, await loadWorkloads(trx));
        const result = await provisionIn(
          trx,
          ctx.compileCache,
          draft,
          message,
          actorOf(request.principal),
          null,
        );
        await audit({
          type: 'policy.provision',
          kind: 'PolicyVersion',
          name: String(result.version),
          before: { version: activeNow },
          after: { version: result.version, message, objects: draft.length },
        });
        return result;
      });
      ctx.policies.announce(changed);
      return reply.code(201).send({
        version,
        message,
        restores: null,
        workloadsChanged: changed.map((c) => c.workload).sort(),
      });
    },
  );

  app.post(
    '/policy/rollback',
    {
      config: { permission: 'policy:provision' },
      schema: {
        summary:
          "Provision an earlier version's content as a new version, and reset the draft to it",
        tags: ['policy'],
        body: z.strictObject({
          version: z.number().int().min(1),
          message: z.string().trim().min(1).max(1024).optional(),
        }),
        response: { 201: provisioned },
      },
    },
    async (request, reply) => {
      const target = request.body.version;
      const message = request.body.message ?? `rollback to version ${target}`;
      const { version, changed } = await change(ctx, request, async (trx, audit) => {
        const documents = await loadVersion(trx, target);
        if (!documents) throw errors.notFound('policy version', String(target));
        const { version: activeNow, documents: active } = await activePolicy(trx);
        if (sameDocuments(active, documents))
          throw errors.conflict(
            `nothing to roll back: active version ${activeNow} already has the content of version ${target}`,
          );
        requireResolvable(documents, await loadWorkloads(trx), `version ${target}`);
        await writeDraft(trx, audit, request.principal, { put: documents, remove: [] }, true);
        const result = await provisionIn(
          trx,
          ctx.compileCache,
          documents,
          message,
          actorOf(request.principal),
          target,
        );
        await audit({
          type: 'policy.rollback',
          kind: 'PolicyVersion',
          name: String(result.version),
          before: { version: activeNow },
          after: { version: result.version, restores: target, message },
        });
        return result;
      });
      ctx.policies.announce(changed);
      return reply.code(201).send({
        version,
        message,
        restores: target,
        workloadsChanged: changed.map((c) => c.workload).sort(),
      });
    },
  );
};

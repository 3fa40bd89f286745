/**
 * Workloads: the estate. Listed and filtered by labels, added by hand (unmanaged appliances),
 * edited, deleted, and switched between enforcement modes by selector. Every change keeps
 * the draft and the active version resolvable (else 422, nothing stored) and recompiles the
 * affected workloads' policy in the same transaction.
 */
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Transaction } from 'kysely';
import { ENFORCEMENT_MODES } from '../../policy/model.js';
import { workloadDocument } from '../../policy-as-code/schema.js';
import type { Database, WorkloadRow } from '../../store/schema.js';
import type { ServerContext } from '../context.js';
import { change, type Audit } from '../change.js';
import { redistribute } from '../distribution.js';
import { errors } from '../errors.js';
import { requireEstateResolvable, stableJson } from './policy.js';
import type { RouteOptions } from '../context.js';

export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 100;

const labelKey = z.string().regex(/^[a-z][a-z0-9_.-]{0,62}$/, {
  error: (iss) => `${JSON.stringify(iss.input)} is not a label key`,
});
const labelValue = z.string().min(1, 'a label value may not be empty').max(128);

/** `app=shop,app=pay,env=prod`: same key ORed, different keys ANDed. */
const labelQuery = z.string().transform((text, ctx) => {
  const out: Record<string, string[]> = {};
  for (const part of text.split(',').map((p) => p.trim())) {
    if (!part) continue;
    const m = /^([a-z][a-z0-9_.-]{0,62})=(.{1,128})$/.exec(part);
    if (!m) {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(part)} is not key=value (e.g. labels=app=shop,env=prod)`,
      });
      return z.NEVER;
    }
    (out[m[1]!] ??= []).push(m[2]!);
  }
  return out;
});

const selector = z.strictObject({
  labels: z
    .record(labelKey, z.union([labelValue, z.array(labelValue).min(1, 'list at least one value')]))
    .transform((m) =>
      Object.fromEntries(Object.entries(m).map(([k, v]) => [k, typeof v === 'string' ? [v] : v])),
    )
    .refine((m) => Object.keys(m).length > 0, 'give at least one label'),
});

/** The body of a workload write: the Workload document, `kind` optional. */
const workloadBody = workloadDocument.extend({ kind: z.literal('Workload').optional() });
/** Added by hand: no agent manages it unless the body says so. */
const createBody = workloadBody.extend({ managed: z.boolean().default(false) });
const updateBody = z
  .strictObject({
    addresses: workloadBody.shape.addresses.optional(),
    labels: z.record(labelKey, labelValue).optional(),
    mode: z.enum(ENFORCEMENT_MODES).optional(),
    managed: z.boolean().optional(),
    users: z.array(z.string().min(1)).optional(),
  })
  .refine((b) => Object.keys(b).length > 0, 'change at least one field');

const workloadView = z.object({
  kind: z.literal('Workload'),
  name: z.string(),
  addresses: z.array(z.string()),
  labels: z.record(z.string(), z.string()),
  mode: z.enum(ENFORCEMENT_MODES),
  managed: z.boolean(),
  users: z.array(z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
});
type WorkloadView = z.infer<typeof workloadView>;

const view = (r: WorkloadRow): WorkloadView => ({
  kind: 'Workload',
  name: r.name,
  addresses: JSON.parse(r.addresses) as string[],
  labels: JSON.parse(r.labels) as Record<string, string>,
  mode: r.mode as WorkloadView['mode'],
  managed: r.managed === 1,
  users: JSON.parse(r.users) as string[],
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** What a person controls: the view without timestamps, for before/after and no-op checks. */
const content = (v: WorkloadView) => {
  const { createdAt: _c, updatedAt: _u, ...rest } = v;
  return rest;
};

function matches(labels: Record<string, string>, sel: Record<string, string[]>): boolean {
  return Object.entries(sel).every(([k, values]) => {
    const v = labels[k];
    return v !== undefined && values.includes(v);
  });
}

async function findRow(db: Transaction<Database>, name: string): Promise<WorkloadRow | undefined> {
  return db.selectFrom('workloads').selectAll().where('name', '=', name).executeTakeFirst();
}

export type WorkloadFields = Pick<
  WorkloadView,
  'name' | 'addresses' | 'labels' | 'mode' | 'managed' | 'users'
>;

/** Creates or replaces one workload in the transaction and audits a real change. */
export async function putWorkload(
  trx: Transaction<Database>,
  audit: Audit,
  w: WorkloadFields,
  now: string,
): Promise<{ view: WorkloadView; action: 'created' | 'changed' | 'unchanged' }> {
  const row = await findRow(trx, w.name);
  const before = row ? view(row) : null;
  const values: Pick<WorkloadRow, 'addresses' | 'labels' | 'mode' | 'managed' | 'users'> = {
    addresses: JSON.stringify(w.addresses),
    labels: JSON.stringify(w.labels),
    mode: w.mode,
    managed: w.managed ? 1 : 0,
    users: JSON.stringify(w.users),
  };
  if (row && before) {
    const after: WorkloadView = { ...before, ...w, kind: 'Workload', updatedAt: now };
    if (stableJson(content(before)) === stableJson(content(after)))
      return { view: before, action: 'unchanged' };
    await trx
      .updateTable('workloads')
      .set({ ...values, updated_at: now })
      .where('name', '=', w.name)
      .execute();
    await audit({
      type: 'workload.update',
      kind: 'Workload',
      name: w.name,
      before: content(before),
      after: content(after),
    });
    return { view: after, action: 'changed' };
  }
  await trx
    .insertInto('workloads')
    .values({ name: w.name, ...values, inventory: null, created_at: now, updated_at: now })
    .execute();
  const created: WorkloadView = { kind: 'Workload', ...w, createdAt: now, updatedAt: now };
  await audit({ type: 'workload.create', kind: 'Workload', name: w.name, after: content(created) });
  return { view: created, action: 'created' };
}

/** Deletes one workload (its compiled policy and agents with it) and audits it; null if absent. */
export async function deleteWorkload(
  trx: Transaction<Database>,
  audit: Audit,
  name: string,
): Promise<WorkloadView | null> {
  const row = await findRow(trx, name);
  if (!row) return null;
  await trx.deleteFrom('compiled_policies').where('workload', '=', name).execute();
  await trx.deleteFrom('workloads').where('name', '=', name).execute();
  await audit({ type: 'workload.delete', kind: 'Workload', name, before: content(view(row)) });
  return view(row);
}

/** Runs a workload change: checks the policy still resolves, recompiles, announces. */
async function estateChange<T>(
  ctx: ServerContext,
  request: Parameters<typeof change>[1],
  work: (trx: Transaction<Database>, audit: Audit) => Promise<T>,
): Promise<T> {
  const { result, changed } = await change(ctx, request, async (trx, audit) => {
    const result = await work(trx, audit);
    await requireEstateResolvable(trx);
    return { result, changed: await redistribute(trx, ctx.compileCache) };
  });
  ctx.policies.announce(changed);
  return result;
}

const nameParams = z.object({ name: z.string().min(1).max(128) });

export const workloadRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  app.get(
    '/workloads',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'List workloads, optionally filtered by labels (app=shop,env=prod)',
        tags: ['workloads'],
        querystring: z.strictObject({
          labels: labelQuery.optional(),
          limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE),
          offset: z.coerce.number().int().min(0).default(0),
        }),
        response: {
          200: z.object({
            items: z.array(workloadView),
            total: z.number(),
            limit: z.number(),
            offset: z.number(),
          }),
        },
      },
    },
    async (request) => {
      const { labels, limit, offset } = request.query;
      const rows = await ctx.store.db.selectFrom('workloads').selectAll().orderBy('name').execute();
      const all = rows.map(view).filter((w) => !labels || matches(w.labels, labels));
      return { items: all.slice(offset, offset + limit), total: all.length, limit, offset };
    },
  );

  app.get(
    '/workloads/:name',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'One workload',
        tags: ['workloads'],
        params: nameParams,
        response: { 200: workloadView },
      },
    },
    async (request) => {
      const row = await ctx.store.db
        .selectFrom('workloads')
        .selectAll()
        .where('name', '=', request.params.name)
        .executeTakeFirst();
      if (!row) throw errors.notFound('Workload', request.params.name);
      return view(row);
    },
  );

  app.post(
    '/workloads',
    {
      config: { permission: 'estate:write' },
      schema: {
        summary: 'Add a workload by hand (unmanaged unless "managed: true")',
        tags: ['workloads'],
        body: createBody,
        response: { 201: workloadView },
      },
    },
    async (request, reply) => {
      const { kind: _k, ...w } = request.body;
      const created = await estateChange(ctx, request, async (trx, audit) => {
        if (await findRow(trx, w.name))
          throw errors.conflict(
            `workload "${w.name}" already exists: change it with PATCH /api/v1/workloads/${w.name}`,
          );
        return putWorkload(trx, audit, w, new Date().toISOString());
      });
      return reply.code(201).send(created.view);
    },
  );

  app.post(
    '/workloads/apply',
    {
      config: { permission: 'estate:write' },
      schema: {
        summary: 'Create or replace each Workload document, all in one transaction',
        tags: ['workloads'],
        body: z.strictObject({ workloads: z.array(workloadBody).max(10_000) }),
        response: {
          200: z.object({
            results: z.array(
              z.object({
                kind: z.literal('Workload'),
                name: z.string(),
                action: z.enum(['created', 'changed', 'unchanged']),
              }),
            ),
          }),
        },
      },
    },
    async (request) => {
      const seen = new Map<string, number>();
      const problems: { path: string; message: string }[] = [];
      request.body.workloads.forEach((w, i) => {
        const first = seen.get(w.name);
        if (first !== undefined)
          problems.push({
            path: `body.workloads[${i}].name`,
            message: `"${w.name}" is also workloads[${first}]`,
          });
        seen.set(w.name, i);
      });
      if (problems.length) throw errors.validation(problems);
      const results = await estateChange(ctx, request, async (trx, audit) => {
        const now = new Date().toISOString();
        const out = [];
        for (const { kind: _k, ...w } of request.body.workloads) {
          const r = await putWorkload(trx, audit, w, now);
          out.push({ kind: 'Workload' as const, name: w.name, action: r.action });
        }
        return out;
      });
      return { results };
    },
  );

  app.patch(
    '/workloads/:name',
    {
      config: { permission: 'estate:write' },
      schema: {
        summary: "Change a workload's labels, addresses, users, mode or managed flag",
        tags: ['workloads'],
        params: nameParams,
        body: updateBody,
        response: { 200: workloadView },
      },
    },
    async (request) => {
      const { name } = request.params;
      const result = await estateChange(ctx, request, async (trx, audit) => {
        const row = await findRow(trx, name);
        if (!row) throw errors.notFound('Workload', name);
        const current = content(view(row));
        return putWorkload(trx, audit, { ...current, ...request.body }, new Date().toISOString());
      });
      return result.view;
    },
  );

  app.delete(
    '/workloads/:name',
    {
      config: { permission: 'estate:write' },
      schema: {
        summary: 'Delete a workload (refused while a rule names it)',
        tags: ['workloads'],
        params: nameParams,
        response: { 200: workloadView },
      },
    },
    async (request) => {
      const { name } = request.params;
      return estateChange(ctx, request, async (trx, audit) => {
        const deleted = await deleteWorkload(trx, audit, name);
        if (!deleted) throw errors.notFound('Workload', name);
        return deleted;
      });
    },
  );

  app.post(
    '/workloads/mode',
    {
      config: { permission: 'estate:write' },
      schema: {
        summary: 'Set the enforcement mode of every workload a selector picks, in one change',
        tags: ['workloads'],
        body: z.strictObject({ selector, mode: z.enum(ENFORCEMENT_MODES) }),
        response: {
          200: z.object({ matched: z.number(), changed: z.array(z.string()) }),
        },
      },
    },
    async (request) => {
      const { selector: sel, mode } = request.body;
      return estateChange(ctx, request, async (trx, audit) => {
        const rows = await trx.selectFrom('workloads').selectAll().orderBy('name').execute();
        const picked = rows.map(view).filter((w) => matches(w.labels, sel.labels));
        const now = new Date().toISOString();
        const changed: string[] = [];
        for (const w of picked) {
          const r = await putWorkload(trx, audit, { ...content(w), mode }, now);
          if (r.action === 'changed') changed.push(w.name);
        }
        return { matched: picked.length, changed };
      });
    },
  );
};

/**
 * The demo estate in one call: a newcomer with no agents sees a real map at once. It writes
 * the workloads, the draft and a provisioned version through the same functions (and the
 * same audit events) as the workloads, policy and versions routes, then puts weeks of
 * simulated traffic straight into the flow store and waits until the map can show it.
 */
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { DEMO_WEEKS, generateDemo } from '../../demo/index.js';
import { actorOf, requirePermission } from '../auth.js';
import { change } from '../change.js';
import { ApiError } from '../errors.js';
import { activePolicy, type StoredDocument } from '../policy-state.js';
import type { RouteOptions } from '../context.js';
import { requireEstateResolvable, writeDraft } from './policy.js';
import { provisionIn, sameDocuments } from './versions.js';
import { deleteWorkload, putWorkload } from './workloads.js';

export const DEMO_MESSAGE = 'demo estate';

const fields = z
  .strictObject({
    weeks: z
      .number({ error: 'weeks must be a number' })
      .int('weeks must be a whole number')
      .min(DEMO_WEEKS.min, `weeks must be at least ${DEMO_WEEKS.min}`)
      .max(DEMO_WEEKS.max, `weeks must be at most ${DEMO_WEEKS.max}`)
      .default(DEMO_WEEKS.default),
    replace: z.boolean({ error: 'replace must be true or false' }).default(false),
  })
  .default({ weeks: DEMO_WEEKS.default, replace: false });
/** A bare POST (no body, as a button sends it) means the defaults. */
const body = z.preprocess((v) => (v === null ? undefined : v), fields);

const loaded = z.object({
  workloads: z.number(),
  edges: z.number(),
  buckets: z.number(),
  policyVersion: z.number(),
});

export const demoRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  app.post(
    '/demo',
    {
      // It also writes the draft and provisions it: checked below, so a 403 names what is missing.
      config: { permission: 'estate:write' },
      schema: {
        summary:
          'Load a simulated estate (apps, environments, networks) with weeks of traffic into an empty control plane',
        tags: ['demo'],
        body,
        response: { 200: loaded },
      },
    },
    async (request) => {
      requirePermission(request.principal, 'policy:write');
      requirePermission(request.principal, 'policy:provision');
      const { weeks, replace } = request.body;
      const demo = generateDemo({ now: new Date(), weeks });
      const documents: StoredDocument[] = demo.documents.map((d) => ({ ...d }));
      const { version, changed, replaced } = await change(ctx, request, async (trx, audit) => {
        const existing = await trx.selectFrom('workloads').select('name').execute();
        if (existing.length > 0 && !replace)
          throw new ApiError(
            'ESTATE_NOT_EMPTY',
            409,
            `the estate already has ${existing.length} workloads: the demo replaces them, their agents and the draft, so ask for it with "replace": true (bulkhead demo --replace)`,
          );
        const keep = new Set(demo.workloads.map((w) => w.name));
        for (const { name } of existing)
          if (!keep.has(name)) await deleteWorkload(trx, audit, name);
        const now = new Date().toISOString();
        for (const w of demo.workloads) await putWorkload(trx, audit, w, now);
        await writeDraft(trx, audit, request.principal, { put: documents, remove: [] }, true);
        const active = await activePolicy(trx);
        if (active.version !== null && sameDocuments(active.documents, documents)) {
          // Loaded before: the active version already is the demo's policy.
          await requireEstateResolvable(trx);
          return { version: active.version, changed: [], replaced: existing.length > 0 };
        }
        const result = await provisionIn(
          trx,
          ctx.compileCache,
          documents,
          DEMO_MESSAGE,
          actorOf(request.principal),
          null,
        );
        await audit({
          type: 'policy.provision',
          kind: 'PolicyVersion',
          name: String(result.version),
          before: { version: active.version },
          after: { version: result.version, message: DEMO_MESSAGE, objects: documents.length },
        });
        await requireEstateResolvable(trx);
        return { ...result, replaced: existing.length > 0 };
      });
      ctx.policies.announce(changed);
      // The old estate's traffic goes with it, or a second load would count the demo twice.
      // No audit event of its own: the reset is part of the demo's change, which the
      // workload, draft and policy events above already record.
      if (replaced) await ctx.flows.reset();
      await ctx.flows.recordTraffic(demo.traffic);
      // The map answers from rolled-up, decided edges: wait for both before answering.
      await ctx.flows.catchUp();
      const status = await ctx.flows.status();
      return {
        workloads: demo.workloads.length,
        edges: status.edges,
        buckets: demo.traffic.length,
        policyVersion: version,
      };
    },
  );
};

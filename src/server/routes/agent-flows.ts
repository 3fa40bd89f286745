/**
 * Flow-summary batches from agents, the one route that takes traffic at volume. Its body is
 * read by the context's FlowBatchReader (in the server, on another core) rather than by the
 * route's schema in this thread: the schema is the same, and so are the 400s it gives; the
 * route keeps it for the OpenAPI document. A retried batch id is stored once.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { appendLoggedBatch } from '../../store/flows.js';
import { flowsBody } from '../agent-schemas.js';
import { callingAgent } from '../auth.js';
import type { RouteOptions } from '../context.js';
import { errors } from '../errors.js';

export const agentFlowRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  // In this plugin only: JSON bodies arrive as bytes, for the reader to parse and check.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) =>
    done(null, body),
  );

  app.post(
    '/agent/flows',
    {
      config: { permission: 'agent:self' },
      schema: {
        summary:
          'Upload a batch of flow summaries; a retried batch id is stored once (answered with duplicate: true)',
        tags: ['agent channel'],
        body: flowsBody,
        response: {
          200: z.object({ batchId: z.string(), accepted: z.number(), duplicate: z.boolean() }),
        },
      },
      // The body is checked against flowsBody by the reader below.
      validatorCompiler: () => (body: unknown) => ({ value: body }),
    },
    async (request) => {
      const { agentId, workload } = callingAgent(request);
      const raw = request.body as unknown;
      if (!Buffer.isBuffer(raw)) throw errors.badRequest('send the batch as a JSON body');
      const reading = await ctx.flowBatches.read(raw);
      if (!reading.ok) throw errors.validation(reading.details);
      const { batchId } = reading;
      const known = async (): Promise<{ summaries: number } | undefined> =>
        ctx.store.db
          .selectFrom('flow_batches')
          .select('summaries')
          .where('agent_id', '=', agentId)
          .where('batch_id', '=', batchId)
          .executeTakeFirst();
      // No look-up first: the batch row's primary key decides, so a retry costs one
      // failed insert and a fresh batch no extra query.
      try {
        await appendLoggedBatch(
          ctx.store,
          {
            agent_id: agentId,
            batch_id: batchId,
            received_at: new Date().toISOString(),
            summaries: reading.summaries,
          },
          workload,
          reading.logTexts,
        );
      } catch (e) {
        // The batch is already stored (a retry, perhaps a concurrent one): it stays stored once.
        const raced = await known();
        if (raced) return { batchId, accepted: Number(raced.summaries), duplicate: true };
        throw e;
      }
      return { batchId, accepted: reading.summaries, duplicate: false };
    },
  );
};

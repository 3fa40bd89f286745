/**
 * What an agent reports about its own integrity, each an audit event: its firewall table
 * was changed behind its back (and whether it restored it), or it had to drop flow
 * telemetry. Both say something happened on a host that nobody asked for; the audit log is
 * where a security team looks for that.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { flowsDroppedBody, tamperBody } from '../agent-schemas.js';
import { callingAgent } from '../auth.js';
import { change } from '../change.js';
import type { RouteOptions } from '../context.js';

const recorded = z.object({ recorded: z.boolean() });

export const agentTamperRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  app.post(
    '/agent/tamper',
    {
      config: { permission: 'agent:self' },
      schema: {
        summary:
          "Report that the agent's firewall table was changed behind its back, and whether it was restored",
        tags: ['agent channel'],
        body: tamperBody,
        response: { 200: recorded },
      },
    },
    async (request) => {
      const { agentId, workload } = callingAgent(request);
      await change(ctx, request, async (_trx, audit) => {
        await audit({
          type: 'agent.tamper',
          kind: 'Agent',
          name: agentId,
          after: { workload, ...request.body },
        });
      });
      return { recorded: true };
    },
  );

  app.post(
    '/agent/flows-dropped',
    {
      config: { permission: 'agent:self' },
      schema: {
        summary:
          'Report flow batches the agent dropped because its spool was full while the control plane was away',
        tags: ['agent channel'],
        body: flowsDroppedBody,
        response: { 200: recorded },
      },
    },
    async (request) => {
      const { agentId, workload } = callingAgent(request);
      await change(ctx, request, async (_trx, audit) => {
        await audit({
          type: 'agent.flows-dropped',
          kind: 'Agent',
          name: agentId,
          after: { workload, ...request.body },
        });
      });
      return { recorded: true };
    },
  );
};

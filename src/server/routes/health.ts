import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { RouteOptions } from '../context.js';
import { VERSION } from '../../version.js';

export const healthRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  app.get(
    '/health',
    {
      config: { permission: 'public' },
      schema: {
        summary: 'Liveness and store reachability (no credential needed)',
        tags: ['health'],
        response: {
          200: z.object({
            status: z.literal('ok'),
            version: z.string(),
            store: z.enum(['sqlite', 'postgres']),
          }),
        },
      },
    },
    async () => {
      await ctx.store.dialect.check(ctx.store.db);
      return { status: 'ok' as const, version: VERSION, store: ctx.store.dialect.name };
    },
  );
};

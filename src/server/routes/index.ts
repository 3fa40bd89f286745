/** Every resource's routes, registered under /api/v1. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ServerContext } from '../app.js';
import { healthRoutes } from './health.js';
import { keyRoutes } from './keys.js';

export interface RouteOptions {
  readonly ctx: ServerContext;
}

export const registerRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  await app.register(healthRoutes, { ctx });
  await app.register(keyRoutes, { ctx });
};

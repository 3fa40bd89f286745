import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { RouteOptions } from './index.js';

export const auditRoutes: FastifyPluginAsyncZod<RouteOptions> = async (_app, _opts) => {};

/** Every resource's routes, registered under /api/v1. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { RouteOptions } from '../context.js';
import { agentRoutes } from './agents.js';
import { agentFlowRoutes } from './agent-flows.js';
import { agentTamperRoutes } from './agent-tamper.js';
import { auditRoutes } from './audit.js';
import { demoRoutes } from './demo.js';
import { flowRoutes } from './flows.js';
import { generateRoutes } from './generate.js';
import { healthRoutes } from './health.js';
import { keyRoutes } from './keys.js';
import { labelRoutes } from './labels.js';
import { policyRoutes } from './policy.js';
import { versionRoutes } from './versions.js';
import { workloadRoutes } from './workloads.js';

export const registerRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  for (const routes of [
    healthRoutes,
    keyRoutes,
    workloadRoutes,
    policyRoutes,
    versionRoutes,
    agentRoutes,
    agentTamperRoutes,
    agentFlowRoutes,
    auditRoutes,
    labelRoutes,
    demoRoutes,
    flowRoutes,
    generateRoutes,
  ]) {
    await app.register(routes, { ctx });
  }
};

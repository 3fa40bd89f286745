/**
 * The control plane's HTTP application: REST under /api/v1, described at
 * /api/v1/openapi.json, every input validated by a zod schema, every route authenticated
 * by its declared permission, every error a JSON body with a stable code.
 */
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import {
  jsonSchemaTransform,
  serializerCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { ZodType } from 'zod';
import type { Store } from '../store/store.js';
import { AuditFeed } from './audit.js';
import {
  authenticate,
  CredentialCache,
  requirePermission,
  type Permission,
  type Principal,
} from './auth.js';
import type { ServerContext } from './context.js';
import { CompileCache, PolicyHub } from './distribution.js';
import { inlineBatchReader, threadBatchReader } from './flow-batches.js';
import { createFlowStore, type FlowStoreOptions } from './flows/service.js';
import { ApiError, errors } from './errors.js';
import { registerRoutes } from './routes/index.js';
import { registerUi } from './ui.js';
import { issueDetails } from './validation.js';
import { VERSION } from '../version.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the caller must hold; every route declares one. */
    permission?: Permission;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export interface BuildOptions {
  readonly store: Store;
  /** A pino logger; none (silent) by default, as in tests. */
  readonly logger?: FastifyBaseLogger;
  /** Largest accepted request body, in bytes. */
  readonly bodyLimit?: number;
  /** TLS certificate and key (PEM); plain HTTP without. */
  readonly https?: { readonly cert: Buffer; readonly key: Buffer };
  /** The flow store's retention and pacing (defaults: minute 1d, hour 90d, day 400d). */
  readonly flows?: FlowStoreOptions;
  /** Read agents' flow batches in a worker thread (the server does; tests read inline). */
  readonly readFlowBatchesInThread?: boolean;
}

export const API_PREFIX = '/api/v1';
export const DEFAULT_BODY_LIMIT = 8 * 1024 * 1024;

export async function buildServer(options: BuildOptions): Promise<FastifyInstance> {
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const base = {
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    bodyLimit,
    genReqId: () => crypto.randomUUID(),
  };
  // The HTTPS server differs only in its raw server type, which no route touches.
  const server: FastifyInstance = options.https
    ? Fastify({ ...base, https: { ...options.https } })
    : Fastify(base);
  const app = server.withTypeProvider<ZodTypeProvider>();

  const audit = new AuditFeed();
  const ctx: ServerContext = {
    store: options.store,
    audit,
    policies: new PolicyHub(),
    credentials: new CredentialCache(),
    compileCache: new CompileCache(),
    flows: createFlowStore({ store: options.store, audit, log: server.log }, options.flows),
    flowBatches: options.readFlowBatchesInThread
      ? threadBatchReader((err) =>
          server.log.error({ err }, 'reading flow batches in a worker failed; reading them here'),
        )
      : inlineBatchReader(),
  };
  app.decorate('bulkhead', ctx);
  // The flow store's loop (started by `serve`) must stop before the store closes.
  app.addHook('onClose', async () => {
    await ctx.flows.stop();
    await ctx.flowBatches.close();
  });
  app.decorateRequest('principal', null);

  // Bad input is reported with the same plain messages as policy files, located in the request.
  app.setValidatorCompiler(({ schema, httpPart }) => (data: unknown) => {
    const result = (schema as ZodType).safeParse(data, { reportInput: true });
    if (result.success) return { value: result.data };
    const part = httpPart === 'querystring' ? 'query' : (httpPart ?? 'body');
    return {
      error: errors.validation(issueDetails(result.error.issues, part)),
    };
  });
  app.setSerializerCompiler(serializerCompiler);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Bulkhead control plane',
        version: VERSION,
        description: 'Microsegmentation: workloads, labels, policy, agents.',
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: [{ apiKey: [] }],
    },
    transform: jsonSchemaTransform,
  });

  app.addHook('onRoute', (route) => {
    if (route.url.startsWith(API_PREFIX) && route.config?.permission === undefined) {
      throw new Error(`route ${String(route.method)} ${route.url} declares no permission`);
    }
  });

  app.addHook('onRequest', async (request) => {
    const permission = request.routeOptions.config?.permission;
    if (permission === undefined || permission === 'public') return;
    request.principal = await authenticate(ctx.store, request, ctx.credentials);
    requirePermission(request.principal, permission);
  });

  app.setNotFoundHandler((request, reply) => {
    const e = errors.routeNotFound(request.method, request.url.split('?')[0] ?? request.url);
    void reply.code(e.statusCode).send({ error: { code: e.code, message: e.message } });
  });

  app.setErrorHandler((error, request, reply) => {
    let e: ApiError;
    if (error instanceof ApiError) e = error;
    else if ((error as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      e = errors.bodyTooLarge(bodyLimit);
    else if ((error as { code?: string }).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      e = errors.unsupportedMediaType(String(request.headers['content-type'] ?? ''));
    } else if (
      (error as { code?: string }).code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
      (error as { code?: string }).code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
    ) {
      e = errors.badRequest(`the body is not valid JSON: ${(error as Error).message}`);
    } else if (
      typeof (error as { statusCode?: number }).statusCode === 'number' &&
      (error as { statusCode: number }).statusCode < 500
    ) {
      e = errors.badRequest((error as Error).message);
    } else {
      request.log.error({ err: error }, 'unhandled error');
      e = errors.internal(request.id);
    }
    void reply.code(e.statusCode).send({
      error: {
        code: e.code,
        message: e.message,
        ...(e.details.length ? { details: e.details } : {}),
      },
    });
  });

  await app.register(registerRoutes, { prefix: API_PREFIX, ctx });
  app.get(
    `${API_PREFIX}/openapi.json`,
    { config: { permission: 'public' }, schema: { hide: true } },
    () => app.swagger(),
  );
  await registerUi(server);
  return app;
}

declare module 'fastify' {
  interface FastifyInstance {
    bulkhead: ServerContext;
  }
}

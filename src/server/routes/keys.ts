import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ROLES, type Role } from '../../store/schema.js';
import { change } from '../change.js';
import { issueSecret, newId } from '../credentials.js';
import { errors } from '../errors.js';
import type { RouteOptions } from '../context.js';

const labelKey = z.string().regex(/^[a-z][a-z0-9_.-]{0,62}$/, 'is not a label key');
const keyView = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(ROLES),
  scope: z.record(z.string(), z.array(z.string())).nullable(),
  prefix: z.string(),
  createdAt: z.string(),
  createdBy: z.string().nullable(),
  revokedAt: z.string().nullable(),
});

type KeyRow = {
  id: string;
  name: string;
  role: Role;
  scope: string | null;
  prefix: string;
  created_at: string;
  created_by: string | null;
  revoked_at: string | null;
};

const view = (k: KeyRow): z.infer<typeof keyView> => ({
  id: k.id,
  name: k.name,
  role: k.role,
  scope: k.scope ? (JSON.parse(k.scope) as Record<string, string[]>) : null,
  prefix: k.prefix,
  createdAt: k.created_at,
  createdBy: k.created_by,
  revokedAt: k.revoked_at,
});

export const keyRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  app.get(
    '/keys',
    {
      config: { permission: 'keys:manage' },
      schema: {
        summary: 'List API keys (never the keys themselves)',
        tags: ['keys'],
        response: { 200: z.object({ items: z.array(keyView) }) },
      },
    },
    async () => {
      const rows = await ctx.store.db
        .selectFrom('api_keys')
        .select(['id', 'name', 'role', 'scope', 'prefix', 'created_at', 'created_by', 'revoked_at'])
        .orderBy('created_at')
        .execute();
      return { items: rows.map(view) };
    },
  );

  app.post(
    '/keys',
    {
      config: { permission: 'keys:manage' },
      schema: {
        summary: 'Create an API key; the key is in this response only',
        tags: ['keys'],
        body: z.strictObject({
          name: z.string().min(1).max(128),
          role: z.enum(ROLES),
          scope: z.record(labelKey, z.array(z.string().min(1)).min(1)).optional(),
        }),
        response: { 201: keyView.extend({ key: z.string() }) },
      },
    },
    async (request, reply) => {
      const { name, role, scope } = request.body;
      const caller = request.principal;
      if (role === 'owner' && (caller?.kind !== 'user' || caller.role !== 'owner'))
        throw errors.forbidden('create an owner key');
      if (scope && role !== 'policy-editor')
        throw errors.badRequest('body.scope: only a policy-editor key has a scope');
      const secret = issueSecret('key');
      const row: KeyRow = {
        id: newId(),
        name,
        role,
        scope: scope ? JSON.stringify(scope) : null,
        prefix: secret.prefix,
        created_at: new Date().toISOString(),
        created_by: caller?.kind === 'user' ? caller.keyId : null,
        revoked_at: null,
      };
      await change(ctx, request, async (trx, audit) => {
        await trx
          .insertInto('api_keys')
          .values({ ...row, hash: secret.hash, last_used_at: null })
          .execute();
        await audit({ type: 'key.create', kind: 'ApiKey', name: row.id, after: view(row) });
      });
      return reply.code(201).send({ ...view(row), key: secret.secret });
    },
  );

  app.delete(
    '/keys/:id',
    {
      config: { permission: 'keys:manage' },
      schema: {
        summary: 'Revoke an API key',
        tags: ['keys'],
        params: z.object({ id: z.string() }),
        response: { 200: keyView },
      },
    },
    async (request) => {
      return change(ctx, request, async (trx, audit) => {
        const key = await trx
          .selectFrom('api_keys')
          .select([
            'id',
            'name',
            'role',
            'scope',
            'prefix',
            'created_at',
            'created_by',
            'revoked_at',
          ])
          .where('id', '=', request.params.id)
          .executeTakeFirst();
        if (!key) throw errors.notFound('API key', request.params.id);
        const caller = request.principal;
        if (key.role === 'owner' && (caller?.kind !== 'user' || caller.role !== 'owner'))
          throw errors.forbidden('revoke an owner key');
        if (key.revoked_at) return view(key);
        const revoked = { ...key, revoked_at: new Date().toISOString() };
        await trx
          .updateTable('api_keys')
          .set({ revoked_at: revoked.revoked_at })
          .where('id', '=', key.id)
          .execute();
        await audit({
          type: 'key.revoke',
          kind: 'ApiKey',
          name: key.id,
          before: view(key),
          after: view(revoked),
        });
        return view(revoked);
      });
    },
  );
};

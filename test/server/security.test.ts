/**
 * Security properties of EVERY route, found by enumeration (so routes added later are
 * covered too): the role matrix (401 without a credential, 403 exactly when the role lacks
 * the route's declared permission, never 5xx) and bad input (a table of malformed bodies and
 * queries: always 4xx with a JSON error naming the field, never 5xx, nothing stored).
 * Calls go over a real socket, so a streaming route answers with its status and is dropped.
 */
import { request as httpRequest } from 'node:http';
import type { FastifyInstance, RouteOptions as FastifyRouteOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z, type ZodType } from 'zod';
import { buildServer } from '../../src/server/app.js';
import {
  allows,
  PERMISSION_WORDS,
  type Permission,
  type Principal,
} from '../../src/server/auth.js';
import { ensureOwnerKey } from '../../src/server/bootstrap.js';
import { hashSecret } from '../../src/server/credentials.js';
import { ROLES, type Role } from '../../src/store/schema.js';
import {
  OWNER_KEY,
  postgresSkipReason,
  STORE_KINDS,
  testStore,
  type TestStore,
} from '../support/server.js';

interface SeenRoute {
  readonly method: string;
  readonly url: string;
  readonly permission: Permission | undefined;
  readonly schema: { body?: unknown; querystring?: unknown; params?: unknown } | undefined;
}

// Every route any app registers, recorded by an onRoute hook on the app (keyed by the root).
const seen = vi.hoisted(() => new Map<object, SeenRoute[]>());
vi.mock('fastify', async (importOriginal) => {
  const mod = await importOriginal<{ default: (...args: unknown[]) => FastifyInstance }>();
  const factory = (...args: unknown[]) => {
    const app = mod.default(...args);
    const routes: SeenRoute[] = [];
    seen.set(app, routes);
    app.addHook('onRoute', (route: FastifyRouteOptions) => {
      for (const method of [route.method].flat())
        routes.push({
          method: String(method),
          url: route.url,
          permission: route.config?.permission,
          schema: route.schema,
        });
    });
    return app;
  };
  return { ...mod, default: factory, fastify: factory };
});

const BODY_LIMIT = 64 * 1024;
const OVERSIZE = 4 * 1024 * 1024 + 64 * 1024; // over every route's limit (CSV takes 4 MiB)
const AGENT_TOKEN = 'agent-credential-for-security-tests-0123456789';

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: unknown;
  maxLength?: number;
  maxItems?: number;
  pattern?: string;
  enum?: unknown[];
  items?: JsonSchema;
};

function jsonSchema(schema: unknown): JsonSchema | null {
  if (!schema || typeof (schema as ZodType).safeParse !== 'function') return null;
  try {
    return z.toJSONSchema(schema as ZodType, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  } catch {
    return null;
  }
}

const typeOf = (s: JsonSchema): string | undefined => (Array.isArray(s.type) ? undefined : s.type);

/** A value of the wrong type for a property, or null when any value might be fine. */
function wrongValue(s: JsonSchema): unknown {
  switch (typeOf(s)) {
    case 'string':
      return 12345;
    case 'number':
    case 'integer':
      return 'not-a-number';
    case 'boolean':
      return 'not-a-boolean';
    case 'array':
      return 'not-an-array';
    case 'object':
      return 7;
    default:
      return s.enum ? '%%not-one-of-them%%' : null;
  }
}

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly contentType: string;
}

function callHttp(
  port: number,
  method: string,
  path: string,
  options: { token?: string | null; contentType?: string; body?: string | Buffer } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.contentType) headers['content-type'] = options.contentType;
    if (options.body !== undefined)
      headers['content-length'] = String(Buffer.byteLength(options.body));
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      // A streaming answer never ends by itself: its status is what counts.
      const timer = setTimeout(() => {
        res.destroy();
        finish();
      }, 500);
      const finish = () => {
        clearTimeout(timer);
        resolve({
          status: res.statusCode ?? 0,
          body,
          contentType: String(res.headers['content-type'] ?? ''),
        });
      };
      res.on('data', (c: string) => (body += c));
      res.on('end', finish);
      res.on('error', finish);
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      // The server may refuse an oversized body before reading it all.
      if (e.code === 'EPIPE' || e.code === 'ECONNRESET') reject(e);
      else reject(e);
    });
    if (options.body !== undefined) req.end(options.body);
    else req.end();
  });
}

function errorOf(a: Answer): { code: string; message: string } {
  expect(a.contentType, a.body).toContain('application/json');
  const parsed = JSON.parse(a.body) as { error?: { code?: unknown; message?: unknown } };
  expect(typeof parsed.error?.code, a.body).toBe('string');
  expect(typeof parsed.error?.message, a.body).toBe('string');
  return parsed.error as { code: string; message: string };
}

describe.each(STORE_KINDS)('security of every route on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  let ts: TestStore;
  let app: FastifyInstance;
  let port: number;
  let routes: SeenRoute[];
  const principals = new Map<string, { token: string; principal: Principal }>();

  beforeAll(async () => {
    if (skip) return;
    ts = await testStore(kind);
    app = await buildServer({ store: ts.store, bodyLimit: BODY_LIMIT });
    await ensureOwnerKey(app.bulkhead, OWNER_KEY);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    port = typeof address === 'object' && address ? address.port : 0;
    routes = (seen.get(app) ?? []).filter((r) => r.method !== 'HEAD');

    principals.set('owner', {
      token: OWNER_KEY,
      principal: { kind: 'user', keyId: 'x', name: 'owner', role: 'owner', scope: null },
    });
    for (const role of ROLES.filter((r): r is Exclude<Role, 'owner'> => r !== 'owner')) {
      const r = await callHttp(port, 'POST', '/api/v1/keys', {
        token: OWNER_KEY,
        contentType: 'application/json',
        body: JSON.stringify({ name: `matrix-${role}`, role }),
      });
      expect(r.status, r.body).toBe(201);
      principals.set(role, {
        token: (JSON.parse(r.body) as { key: string }).key,
        principal: { kind: 'user', keyId: 'x', name: role, role, scope: null },
      });
    }
    // An agent-like principal: a workload and an agent row holding a credential's hash.
    const now = new Date().toISOString();
    await ts.store.db
      .insertInto('workloads')
      .values({
        name: 'matrix-host',
        addresses: '["198.18.7.7"]',
        labels: '{}',
        mode: 'visibility',
        managed: 1,
        users: '[]',
        inventory: null,
        created_at: now,
        updated_at: now,
      })
      .execute();
    await ts.store.db
      .insertInto('agents')
      .values({
        id: 'matrix-agent',
        workload: 'matrix-host',
        credential_hash: hashSecret(AGENT_TOKEN),
        status: 'online',
        last_heartbeat_at: null,
        applied_version: null,
        applied_revision: null,
        created_at: now,
        revoked_at: null,
      })
      .execute();
    principals.set('agent', {
      token: AGENT_TOKEN,
      principal: { kind: 'agent', agentId: 'matrix-agent', workload: 'matrix-host' },
    });
  });
  afterAll(async () => {
    if (skip) return;
    await app.close();
    await ts.cleanup();
  });

  /** The URL with each parameter filled by a value of its declared type. */
  function concrete(route: SeenRoute): string {
    const params = jsonSchema(route.schema?.params)?.properties ?? {};
    return route.url.replace(/:([A-Za-z0-9_]+)/g, (_m, name: string) => {
      const t = params[name] ? typeOf(params[name]) : undefined;
      return t === 'integer' || t === 'number' ? '1' : 'no-such-thing';
    });
  }

  async function counts(): Promise<Record<string, number>> {
    const tables = await ts.store.db.introspection.getTables();
    const out: Record<string, number> = {};
    for (const t of tables) {
      if (t.name.startsWith('kysely_')) continue;
      const row = await ts.store.db
        .selectFrom(t.name as 'audit_events')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .executeTakeFirstOrThrow();
      out[t.name] = Number(row.n);
    }
    return out;
  }

  it.skipIf(skip)('finds the routes, every API route with a declared permission', () => {
    const api = routes.filter((r) => r.url.startsWith('/api/v1/'));
    expect(api.length).toBeGreaterThanOrEqual(6);
    for (const r of api) expect(r.permission, `${r.method} ${r.url}`).toBeDefined();
    const urls = api.map((r) => `${r.method} ${r.url}`);
    for (const u of [
      'GET /api/v1/health',
      'GET /api/v1/keys',
      'GET /api/v1/audit-events',
      'GET /api/v1/audit-events/stream',
      'POST /api/v1/labels/import',
      'GET /api/v1/labels/export.csv',
    ])
      expect(urls).toContain(u);
  });

  it.skipIf(skip)(
    'role matrix: 401 without a credential, 403 exactly when the role lacks the permission, never 5xx',
    async () => {
      const failures: string[] = [];
      for (const route of routes.filter((r) => r.url.startsWith('/api/v1/'))) {
        const permission = route.permission!;
        const url = concrete(route);
        const label = `${route.method} ${url} (${permission})`;
        const anon = await callHttp(port, route.method, url, { token: null });
        if (anon.status >= 500) failures.push(`${label} anonymous: ${anon.status} ${anon.body}`);
        if (permission !== 'public' && anon.status !== 401)
          failures.push(`${label} anonymous: ${anon.status}, not 401`);
        const bogus = await callHttp(port, route.method, url, { token: 'not-a-real-key' });
        if (permission !== 'public' && bogus.status !== 401)
          failures.push(`${label} bogus key: ${bogus.status}, not 401`);
        for (const [who, { token, principal }] of principals) {
          const a = await callHttp(port, route.method, url, { token });
          const generic = `your role may not ${PERMISSION_WORDS[permission]}`;
          if (a.status >= 500) failures.push(`${label} as ${who}: ${a.status} ${a.body}`);
          else if (allows(principal, permission)) {
            if (a.status === 401) failures.push(`${label} as ${who}: 401 though allowed`);
            if (a.status === 403 && errorOf(a).message === generic)
              failures.push(`${label} as ${who}: refused for its role though allowed`);
          } else {
            if (a.status !== 403) failures.push(`${label} as ${who}: ${a.status}, not 403`);
            else {
              const e = errorOf(a);
              if (e.code !== 'FORBIDDEN' || e.message !== generic)
                failures.push(`${label} as ${who}: ${e.code} ${e.message}`);
            }
          }
        }
      }
      expect(failures).toEqual([]);
    },
  );

  it.skipIf(skip)(
    'bad input on every route with a body or query schema: 4xx, JSON naming the field, nothing stored',
    async () => {
      const failures: string[] = [];
      const before = await counts();
      const checked = new Set<string>();
      let cases = 0;
      const check = (label: string, a: Answer, expectField?: string) => {
        cases++;
        checked.add(label.split(' ').slice(0, 2).join(' '));
        if (a.status < 400 || a.status >= 500) {
          failures.push(`${label}: ${a.status} ${a.body.slice(0, 300)}`);
          return;
        }
        let e: { code: string; message: string };
        try {
          e = errorOf(a);
        } catch {
          failures.push(`${label}: not a JSON error: ${a.body.slice(0, 300)}`);
          return;
        }
        if (expectField && !e.message.includes(expectField))
          failures.push(`${label}: ${e.code} "${e.message}" does not name ${expectField}`);
      };
      for (const route of routes.filter((r) => r.url.startsWith('/api/v1/'))) {
        const url = concrete(route);
        const body = jsonSchema(route.schema?.body);
        const query = jsonSchema(route.schema?.querystring);
        if (!body && !query) continue;
        // As a principal that holds the route's permission, so the input is what fails.
        const holder = [...principals.values()].find((p) => allows(p.principal, route.permission!));
        if (!holder) continue;
        const send = (path: string, contentType: string | undefined, payload?: string) =>
          callHttp(port, route.method, path, {
            token: holder.token,
            ...(contentType ? { contentType } : {}),
            ...(payload !== undefined ? { body: payload } : {}),
          });
        const label = `${route.method} ${url}`;
        if (body) {
          const json = (v: unknown) => send(url, 'application/json', JSON.stringify(v));
          check(`${label} invalid JSON`, await send(url, 'application/json', '{"a": [1, '));
          check(`${label} wrong content type`, await send(url, 'application/xml', '<a/>'));
          check(`${label} no body`, await send(url, undefined));
          for (const v of [null, 42, true, [], [{}]])
            check(`${label} body ${JSON.stringify(v)}`, await json(v));
          check(
            `${label} over the size limit`,
            await send(url, 'application/json', JSON.stringify({ x: 'a'.repeat(OVERSIZE) })),
          );
          if (typeOf(body) === 'object') {
            if (body.required?.length)
              check(`${label} {}`, await json({}), `body.${body.required[0]}`);
            if (body.additionalProperties === false)
              check(
                `${label} unknown field`,
                await json({ zz_unknown_field: 1 }),
                'zz_unknown_field',
              );
            for (const [prop, ps] of Object.entries(body.properties ?? {})) {
              const wrong = wrongValue(ps);
              if (wrong !== null)
                check(
                  `${label} body.${prop} wrong type`,
                  await json({ [prop]: wrong }),
                  `body.${prop}`,
                );
              if (ps.maxLength !== undefined && ps.maxLength < OVERSIZE / 2)
                check(
                  `${label} body.${prop} too long`,
                  await json({ [prop]: 'a'.repeat(ps.maxLength + 1) }),
                  `body.${prop}`,
                );
              if (ps.maxItems !== undefined && ps.maxItems < 100_000)
                check(
                  `${label} body.${prop} too many items`,
                  await json({ [prop]: new Array<unknown>(ps.maxItems + 1).fill('x') }),
                  `body.${prop}`,
                );
            }
          }
        }
        if (query && typeOf(query) === 'object') {
          // Without a body schema the query is what fails first, so it must be named.
          const name = (field: string) => (body ? undefined : field);
          const q = (params: Record<string, string>) =>
            send(`${url}?${new URLSearchParams(params).toString()}`, undefined);
          if (query.additionalProperties === false)
            check(`${label} unknown query parameter`, await q({ zz_unknown: '1' }), name('query'));
          for (const [param, ps] of Object.entries(query.properties ?? {})) {
            const t = typeOf(ps);
            let bad: string | null = null;
            if (t === 'number' || t === 'integer') bad = 'not-a-number';
            else if (t === 'boolean') bad = 'not-a-boolean';
            else if (ps.enum) bad = '%%not-one-of-them%%';
            else if (ps.maxLength !== undefined) bad = 'a'.repeat(ps.maxLength + 1);
            if (bad !== null)
              check(
                `${label} query.${param}=${bad.slice(0, 20)}`,
                await q({ [param]: bad }),
                name(`query.${param}`),
              );
          }
        }
      }
      expect(failures).toEqual([]);
      expect(cases).toBeGreaterThan(20);
      expect(checked).toContain('POST /api/v1/labels/import');
      expect(checked).toContain('GET /api/v1/audit-events');
      expect(checked).toContain('POST /api/v1/keys');
      expect(await counts()).toEqual(before);
    },
  );
});

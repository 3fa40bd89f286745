import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  OWNER_KEY,
  postgresSkipReason,
  STORE_KINDS,
  testServer,
  type TestServer,
} from '../support/server.js';

describe.each(STORE_KINDS)('control plane foundation on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  let s: TestServer;
  beforeEach(async () => {
    if (!skip) s = await testServer(kind);
  });
  afterEach(async () => {
    if (!skip) await s.close();
  });

  it.skipIf(skip)('answers health without a credential, naming the store', async () => {
    const r = await s.call({ method: 'GET', url: '/api/v1/health', token: null });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ status: 'ok', store: kind });
  });

  it.skipIf(skip)(
    'refuses every other route without a valid credential, as JSON with a code',
    async () => {
      const none = await s.call({ method: 'GET', url: '/api/v1/keys', token: null });
      expect(none.statusCode).toBe(401);
      expect(none.json()).toEqual({
        error: {
          code: 'UNAUTHENTICATED',
          message: expect.stringContaining('Authorization: Bearer') as unknown,
        },
      });
      const wrong = await s.call({ method: 'GET', url: '/api/v1/keys', token: 'not-a-key' });
      expect(wrong.statusCode).toBe(401);
    },
  );

  it.skipIf(skip)('describes itself as OpenAPI', async () => {
    const r = await s.call({ method: 'GET', url: '/api/v1/openapi.json', token: null });
    expect(r.statusCode).toBe(200);
    const doc = r.json<{ openapi: string; paths: Record<string, unknown> }>();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toContain('/api/v1/keys');
  });

  it.skipIf(skip)(
    'creates a key shown once, lets it work by role, revokes it, and audits both',
    async () => {
      const created = await s.call({
        method: 'POST',
        url: '/api/v1/keys',
        payload: { name: 'auditor', role: 'read-only' },
      });
      expect(created.statusCode).toBe(201);
      const { key, id } = created.json<{ key: string; id: string }>();
      expect((await s.call({ method: 'GET', url: '/api/v1/health', token: key })).statusCode).toBe(
        200,
      );
      const listByReader = await s.call({ method: 'GET', url: '/api/v1/keys', token: key });
      expect(listByReader.statusCode).toBe(403);
      expect(listByReader.json()).toMatchObject({
        error: { code: 'FORBIDDEN', message: 'your role may not manage API keys' },
      });
      const list = await s.call({ method: 'GET', url: '/api/v1/keys' });
      expect(JSON.stringify(list.json())).not.toContain(key);
      expect((await s.call({ method: 'DELETE', url: `/api/v1/keys/${id}` })).statusCode).toBe(200);
      expect((await s.call({ method: 'GET', url: '/api/v1/keys', token: key })).statusCode).toBe(
        401,
      );
      const audit = await s.store.db
        .selectFrom('audit_events')
        .select(['type', 'resource_name', 'actor'])
        .orderBy('id')
        .execute();
      expect(audit.map((a) => a.type)).toEqual(['key.create', 'key.create', 'key.revoke']);
      expect(audit[1]!.actor).toMatch(/^key:.+ \(owner\)$/);
    },
  );

  it.skipIf(skip)(
    'rejects bad input with the field and the problem, and stores nothing',
    async () => {
      const r = await s.call({
        method: 'POST',
        url: '/api/v1/keys',
        payload: { name: '', role: 'superuser', extra: 1 },
      });
      expect(r.statusCode).toBe(400);
      const body = r.json<{
        error: { code: string; details: { path: string; message: string }[] };
      }>();
      expect(body.error.code).toBe('VALIDATION_FAILED');
      const paths = body.error.details.map((d) => d.path);
      expect(paths).toEqual(expect.arrayContaining(['body.name', 'body.role']));
      expect(await s.store.db.selectFrom('api_keys').select('id').execute()).toHaveLength(1);
      const bad = await s.call({
        method: 'POST',
        url: '/api/v1/keys',
        payload: '{not json',
        headers: { 'content-type': 'application/json' },
      });
      expect(bad.statusCode).toBe(400);
      expect(bad.json()).toMatchObject({ error: { code: 'BAD_REQUEST' } });
    },
  );

  it.skipIf(skip)('keeps the owner key across a restart', async () => {
    s = await s.restart();
    expect(
      (await s.call({ method: 'GET', url: '/api/v1/keys', token: OWNER_KEY })).statusCode,
    ).toBe(200);
  });
});

import { readFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { postgresSkipReason, STORE_KINDS, testServer, type TestServer } from '../support/server.js';

async function documents(file: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(`examples/estate/${file}`, 'utf8');
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Record<string, unknown> | null)
    .filter((d): d is Record<string, unknown> => d !== null);
}

describe.each(STORE_KINDS)('workloads, draft and versions on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  let s: TestServer;
  beforeEach(async () => {
    if (!skip) s = await testServer(kind);
  });
  afterEach(async () => {
    if (!skip) await s.close();
  });

  const count = async (
    table: 'workloads' | 'policy_objects' | 'policy_versions' | 'audit_events',
  ) =>
    Number(
      (
        await s.store.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  async function loadEstate(): Promise<void> {
    const w = await s.call({
      method: 'POST',
      url: '/api/v1/workloads/apply',
      payload: { workloads: await documents('workloads.yaml') },
    });
    expect(w.statusCode, w.body).toBe(200);
    const d = await s.call({
      method: 'POST',
      url: '/api/v1/policy/draft/apply',
      payload: {
        documents: [...(await documents('objects.yaml')), ...(await documents('rulesets.yaml'))],
      },
    });
    expect(d.statusCode, d.body).toBe(200);
  }

  const revisions = async () =>
    Object.fromEntries(
      (
        await s.store.db.selectFrom('compiled_policies').select(['workload', 'revision']).execute()
      ).map((r) => [r.workload, r.revision]),
    );

  it.skipIf(skip)(
    'workload CRUD: add by hand, filter by labels, page, update, delete',
    async () => {
      const created = await s.call({
        method: 'POST',
        url: '/api/v1/workloads',
        payload: {
          name: 'nas-1',
          addresses: ['10.0.0.5'],
          labels: { role: 'storage', env: 'prod' },
        },
      });
      expect(created.statusCode, created.body).toBe(201);
      expect(created.json()).toMatchObject({ name: 'nas-1', managed: false, mode: 'visibility' });
      await loadEstate();
      const list = await s.call({
        method: 'GET',
        url: '/api/v1/workloads?labels=app=shop,app=payments,env=prod',
      });
      const names = list
        .json<{ items: { name: string }[]; total: number }>()
        .items.map((w) => w.name);
      expect(names).toEqual([
        'pay-api-1',
        'pay-db-1',
        'shop-api-1',
        'shop-db-1',
        'shop-web-1',
        'shop-web-2',
        'vault-hsm',
      ]);
      const page = await s.call({ method: 'GET', url: '/api/v1/workloads?limit=2&offset=1' });
      expect(page.json()).toMatchObject({ limit: 2, offset: 1, total: 13 });
      expect(
        (await s.call({ method: 'GET', url: '/api/v1/workloads?limit=5000' })).statusCode,
      ).toBe(400);
      const bad = await s.call({ method: 'GET', url: '/api/v1/workloads?labels=app' });
      expect(bad.json()).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
      const upd = await s.call({
        method: 'PATCH',
        url: '/api/v1/workloads/nas-1',
        payload: { labels: { role: 'storage', env: 'staging' }, mode: 'full' },
      });
      expect(upd.statusCode, upd.body).toBe(200);
      expect(
        (await s.call({ method: 'GET', url: '/api/v1/workloads/nas-1' })).json(),
      ).toMatchObject({
        labels: { env: 'staging' },
        mode: 'full',
      });
      expect((await s.call({ method: 'DELETE', url: '/api/v1/workloads/nas-1' })).statusCode).toBe(
        200,
      );
      expect((await s.call({ method: 'GET', url: '/api/v1/workloads/nas-1' })).statusCode).toBe(
        404,
      );
      const types = (
        await s.store.db
          .selectFrom('audit_events')
          .select('type')
          .where('resource_name', '=', 'nas-1')
          .execute()
      ).map((e) => e.type);
      expect(types).toEqual(['workload.create', 'workload.update', 'workload.delete']);
    },
  );

  it.skipIf(skip)('refuses a duplicate address with a located 422 and stores nothing', async () => {
    await loadEstate();
    const before = { w: await count('workloads'), a: await count('audit_events') };
    const r = await s.call({
      method: 'POST',
      url: '/api/v1/workloads',
      payload: { name: 'clash', addresses: ['198.18.1.11'] },
    });
    expect(r.statusCode).toBe(422);
    const body = r.json<{ error: { code: string; message: string } }>();
    expect(body.error.code).toBe('POLICY_INVALID');
    expect(body.error.message).toMatch(/Workload "(clash|shop-web-1)"/);
    expect({ w: await count('workloads'), a: await count('audit_events') }).toEqual(before);
  });

  it.skipIf(skip)(
    'sets the mode by selector in one change, one audit event per workload',
    async () => {
      await loadEstate();
      const r = await s.call({
        method: 'POST',
        url: '/api/v1/workloads/mode',
        payload: { selector: { labels: { env: 'staging' } }, mode: 'full' },
      });
      expect(r.statusCode, r.body).toBe(200);
      expect(r.json()).toEqual({
        matched: 3,
        changed: ['pay-api-s1', 'shop-db-s1', 'shop-web-s1'],
      });
      const events = await s.store.db
        .selectFrom('audit_events')
        .select('resource_name')
        .where('type', '=', 'workload.update')
        .execute();
      expect(events.map((e) => e.resource_name).sort()).toEqual([
        'pay-api-s1',
        'shop-db-s1',
        'shop-web-s1',
      ]);
    },
  );

  it.skipIf(skip)('draft CRUD with URL/body checks, and located 422s storing nothing', async () => {
    await loadEstate();
    const get = await s.call({ method: 'GET', url: '/api/v1/policy/draft/Ruleset/shop' });
    expect(get.json()).toMatchObject({ kind: 'Ruleset', name: 'shop' });
    const ruleset = { kind: 'Ruleset', name: 'ops', rules: [] };
    const put = await s.call({
      method: 'PUT',
      url: '/api/v1/policy/draft/Ruleset/ops',
      payload: ruleset,
    });
    expect(put.json()).toEqual({ kind: 'Ruleset', name: 'ops', action: 'created' });
    const same = await s.call({
      method: 'PUT',
      url: '/api/v1/policy/draft/Ruleset/ops',
      payload: ruleset,
    });
    expect(same.json()).toMatchObject({ action: 'unchanged' });
    const mismatch = await s.call({
      method: 'PUT',
      url: '/api/v1/policy/draft/Ruleset/other',
      payload: ruleset,
    });
    expect(mismatch.statusCode).toBe(400);
    expect(mismatch.json()).toMatchObject({ error: { details: [{ path: 'body.name' }] } });
    const badPort = await s.call({
      method: 'POST',
      url: '/api/v1/policy/draft/apply',
      payload: { documents: [{ kind: 'Service', name: 'x', ports: ['70000/tcp'] }] },
    });
    expect(badPort.statusCode).toBe(400);
    expect(badPort.json()).toMatchObject({
      error: { details: [{ path: 'body.documents[0].ports[0]' }] },
    });

    const before = { o: await count('policy_objects'), a: await count('audit_events') };
    const unknownRef = await s.call({
      method: 'POST',
      url: '/api/v1/policy/draft/apply',
      payload: {
        documents: [
          { kind: 'Service', name: 'ssh', ports: ['22/tcp'] },
          {
            kind: 'Ruleset',
            name: 'broken',
            rules: [
              {
                name: 'r',
                sources: { labelGroups: ['nope'] },
                destinations: 'all',
                services: ['nosuch'],
              },
            ],
          },
        ],
      },
    });
    expect(unknownRef.statusCode).toBe(422);
    const err = unknownRef.json<{ error: { message: string; details: { path: string }[] } }>()
      .error;
    expect(err.details.length).toBeGreaterThanOrEqual(2);
    expect(err.message).toContain('Ruleset "broken": rules[0]');
    const del = await s.call({
      method: 'DELETE',
      url: '/api/v1/policy/draft/IpList/corporate-users',
    });
    expect(del.statusCode).toBe(422);
    expect(del.json<{ error: { message: string } }>().error.message).toContain('Ruleset "shop"');
    expect({ o: await count('policy_objects'), a: await count('audit_events') }).toEqual(before);

    expect(
      (await s.call({ method: 'DELETE', url: '/api/v1/policy/draft/Ruleset/ops' })).json(),
    ).toMatchObject({
      action: 'deleted',
    });
    expect(
      (await s.call({ method: 'DELETE', url: '/api/v1/policy/draft/Ruleset/ops' })).statusCode,
    ).toBe(404);
    const audit = await s.store.db
      .selectFrom('audit_events')
      .select(['type', 'before', 'after'])
      .where('resource_name', '=', 'ops')
      .orderBy('id')
      .execute();
    expect(audit.map((a) => a.type)).toEqual(['draft.create', 'draft.delete']);
    expect(audit[1]!.before).toContain('"ops"');
  });

  it.skipIf(skip)('limits a scoped policy editor to rulesets within its scope', async () => {
    await loadEstate();
    const key = (
      await s.call({
        method: 'POST',
        url: '/api/v1/keys',
        payload: { name: 'shop team', role: 'policy-editor', scope: { app: ['shop'] } },
      })
    ).json<{ key: string }>().key;
    const mine = {
      kind: 'Ruleset',
      name: 'shop-extra',
      scope: { labels: { app: 'shop', env: 'prod' } },
      rules: [],
    };
    const ok = await s.call({
      method: 'PUT',
      url: '/api/v1/policy/draft/Ruleset/shop-extra',
      payload: mine,
      token: key,
    });
    expect(ok.statusCode, ok.body).toBe(200);
    const wider = { ...mine, name: 'wide', scope: { labels: { app: ['shop', 'payments'] } } };
    const r1 = await s.call({
      method: 'PUT',
      url: '/api/v1/policy/draft/Ruleset/wide',
      payload: wider,
      token: key,
    });
    expect(r1.statusCode).toBe(403);
    const service = { kind: 'Service', name: 'ssh', ports: ['22/tcp'] };
    const r2 = await s.call({
      method: 'PUT',
      url: '/api/v1/policy/draft/Service/ssh',
      payload: service,
      token: key,
    });
    expect(r2.statusCode).toBe(403);
    const r3 = await s.call({
      method: 'DELETE',
      url: '/api/v1/policy/draft/Ruleset/payments',
      token: key,
    });
    expect(r3.statusCode).toBe(403);
    const r4 = await s.call({
      method: 'POST',
      url: '/api/v1/policy/provision',
      payload: { message: 'x' },
      token: key,
    });
    expect(r4.statusCode).toBe(403);
  });

  it.skipIf(skip)(
    'provisions, previews, refuses no-op, rolls back, and survives a restart',
    async () => {
      await loadEstate();
      expect((await s.call({ method: 'GET', url: '/api/v1/policy/versions/1' })).statusCode).toBe(
        404,
      );
      const preview = await s.call({ method: 'GET', url: '/api/v1/policy/provision/preview' });
      expect(preview.statusCode, preview.body).toBe(200);
      const pv = preview.json<{
        changes: boolean;
        diff: { rules: unknown[] };
        workloads: string[];
      }>();
      expect(pv.changes).toBe(true);
      expect(pv.diff.rules.length).toBe(10);
      const dry = await s.call({
        method: 'POST',
        url: '/api/v1/policy/provision?dryRun=true',
        payload: { message: 'x' },
      });
      expect(dry.statusCode).toBe(200);
      expect(await count('policy_versions')).toBe(0);

      const rev0 = await revisions();
      const v1 = await s.call({
        method: 'POST',
        url: '/api/v1/policy/provision',
        payload: { message: 'first' },
      });
      expect(v1.statusCode, v1.body).toBe(201);
      expect(v1.json()).toMatchObject({ version: 1, message: 'first' });
      expect(v1.json<{ workloadsChanged: string[] }>().workloadsChanged.sort()).toEqual(
        pv.workloads,
      );
      const again = await s.call({
        method: 'POST',
        url: '/api/v1/policy/provision',
        payload: { message: 'again' },
      });
      expect(again.statusCode).toBe(409);
      expect(again.json<{ error: { message: string } }>().error.message).toContain(
        'nothing to provision',
      );
      // The draft is now the active version: its preview changes nothing and no workload.
      const unchanged = (
        await s.call({ method: 'GET', url: '/api/v1/policy/provision/preview' })
      ).json<{ changes: boolean; workloads: string[]; diff: { accessTotal: number } }>();
      expect(unchanged).toMatchObject({ changes: false, workloads: [], diff: { accessTotal: 0 } });

      // Change only the payments ruleset: only payments workloads' compiled policy changes.
      const rev1 = await revisions();
      expect(Object.keys(rev1).filter((w) => rev1[w] !== rev0[w])).toEqual(pv.workloads);
      const pay = (
        await s.call({ method: 'GET', url: '/api/v1/policy/draft/Ruleset/payments' })
      ).json<{
        rules: unknown[];
      }>();
      await s.call({
        method: 'PUT',
        url: '/api/v1/policy/draft/Ruleset/payments',
        payload: { ...pay, rules: pay.rules.slice(0, 2) },
      });
      const v2 = await s.call({
        method: 'POST',
        url: '/api/v1/policy/provision',
        payload: { message: 'no hsm' },
      });
      expect(v2.json()).toMatchObject({ version: 2 });
      const rev2 = await revisions();
      const bumped = Object.keys(rev2)
        .filter((w) => rev2[w] !== rev1[w])
        .sort();
      expect(bumped).toEqual(v2.json<{ workloadsChanged: string[] }>().workloadsChanged);
      expect(bumped.length).toBeGreaterThan(0);
      expect(bumped.every((w) => w.startsWith('pay-'))).toBe(true);

      const rb = await s.call({
        method: 'POST',
        url: '/api/v1/policy/rollback',
        payload: { version: 1 },
      });
      expect(rb.statusCode, rb.body).toBe(201);
      expect(rb.json()).toMatchObject({ version: 3, restores: 1 });
      const payNow = (
        await s.call({ method: 'GET', url: '/api/v1/policy/draft/Ruleset/payments' })
      ).json<{
        rules: unknown[];
      }>();
      expect(payNow.rules).toHaveLength(3);
      expect(
        (await s.call({ method: 'POST', url: '/api/v1/policy/rollback', payload: { version: 9 } }))
          .statusCode,
      ).toBe(404);
      const v1Again = (await s.call({ method: 'GET', url: '/api/v1/policy/versions/1' })).json<{
        message: string;
        documents: unknown[];
      }>();
      expect(v1Again.message).toBe('first');

      s = await s.restart();
      const versions = await s.call({ method: 'GET', url: '/api/v1/policy/versions' });
      expect(versions.json()).toMatchObject({
        active: 3,
        items: [
          { version: 3, restores: 1, active: true },
          { version: 2, message: 'no hsm' },
          { version: 1, message: 'first' },
        ],
      });
      const v3 = (await s.call({ method: 'GET', url: '/api/v1/policy/versions/3' })).json<{
        documents: unknown[];
      }>();
      expect(v3.documents).toEqual(v1Again.documents);
      const types = (await s.store.db.selectFrom('audit_events').select('type').execute()).map(
        (e) => e.type,
      );
      expect(types.filter((t) => t.startsWith('policy.'))).toEqual([
        'policy.provision',
        'policy.provision',
        'policy.rollback',
      ]);
    },
  );
});

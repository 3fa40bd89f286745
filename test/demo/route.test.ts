import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MapResult } from '../../src/analysis/flows/model.js';
import { cli } from '../support/cli.js';
import { OWNER_KEY, testServer, type TestServer } from '../support/server.js';

interface Loaded {
  workloads: number;
  edges: number;
  buckets: number;
  policyVersion: number;
}

describe('POST /api/v1/demo on a fresh SQLite store', () => {
  let s: TestServer;
  let loaded: Loaded;

  beforeAll(async () => {
    s = await testServer('sqlite');
    const res = await s.call({ method: 'POST', url: '/api/v1/demo', payload: { weeks: 1 } });
    expect(res.statusCode, res.body).toBe(200);
    loaded = res.json<Loaded>();
  }, 120_000);
  afterAll(async () => {
    await s?.close();
  });

  it('loads the estate, provisions its policy and answers with what it loaded', async () => {
    expect(loaded.workloads).toBeGreaterThanOrEqual(60);
    expect(loaded.edges).toBeGreaterThan(300);
    expect(loaded.buckets).toBeGreaterThan(10_000);
    expect(loaded.policyVersion).toBe(1);
    const workloads = await s.call({ method: 'GET', url: '/api/v1/workloads?limit=1000' });
    expect(workloads.json<{ total: number }>().total).toBe(loaded.workloads);
    const versions = await s.call({ method: 'GET', url: '/api/v1/policy/versions' });
    expect(versions.json()).toMatchObject({ active: 1, items: [{ message: 'demo estate' }] });
    const audit = await s.call({ method: 'GET', url: '/api/v1/audit-events?limit=500' });
    const types = new Set(audit.json<{ items: { type: string }[] }>().items.map((e) => e.type));
    expect([...types]).toEqual(
      expect.arrayContaining(['workload.create', 'draft.create', 'policy.provision']),
    );
  });

  it('leaves nothing to provision: the preview of the unchanged draft changes no workload', async () => {
    const res = await s.call({ method: 'GET', url: '/api/v1/policy/provision/preview' });
    expect(res.statusCode, res.body).toBe(200);
    const preview = res.json<{
      changes: boolean;
      workloads: string[];
      diff: { rules: unknown[]; objects: unknown[]; accessTotal: number };
    }>();
    expect(preview).toMatchObject({ changes: false, workloads: [] });
    expect(preview.diff).toMatchObject({ rules: [], objects: [], accessTotal: 0 });
  });

  it('makes the map show the apps by environment, the networks around them, and every decision', async () => {
    const map: MapResult = await s.app.bulkhead.flows.map({
      window: { since: '7d' },
      groupBy: ['app', 'env'],
    });
    const ids = new Set(map.nodes.map((n) => n.id));
    for (const id of [
      'g:app=shop;env=prod',
      'g:app=shop;env=dev',
      'g:app=payments;env=prod',
      'g:app=crm;env=prod',
      'g:app=hr;env=staging',
      'g:app=directory;env=prod',
      'g:app=monitoring;env=prod',
      'a:internet',
      'a:corporate-users',
      'a:partners',
      'a:10.40.0.0/16',
    ])
      expect(ids, id).toContain(id);
    const decisions = new Set(map.edges.map((e) => e.decision));
    expect(decisions).toEqual(new Set(['allowed', 'potentially-blocked', 'blocked']));
    const charges = map.edges.find(
      (e) => e.source === 'g:app=shop;env=prod' && e.target === 'g:app=payments;env=prod',
    );
    expect(charges?.decision).toBe('allowed');
    const lateral = map.edges.find(
      (e) => e.source === 'g:app=shop;env=dev' && e.target === 'g:app=payments;env=prod',
    );
    expect(lateral?.decision).toBe('blocked');
    // The last hour answers in minutes, with traffic in it.
    const lastHour = await s.app.bulkhead.flows.map({ window: { since: '1h' } });
    expect(lastHour.window.resolution).toBe('minute');
    expect(lastHour.edges.reduce((n, e) => n + e.connections, 0)).toBeGreaterThan(100);
  });

  it('refuses to load over an estate that has workloads, unless asked to replace it', async () => {
    const again = await s.call({ method: 'POST', url: '/api/v1/demo', payload: {} });
    expect(again.statusCode).toBe(409);
    const { error } = again.json<{ error: { code: string; message: string } }>();
    expect(error.code).toBe('ESTATE_NOT_EMPTY');
    expect(error.message).toContain('"replace": true');
    // A bare POST (no body, as a button might send it) means the defaults.
    expect((await s.call({ method: 'POST', url: '/api/v1/demo' })).statusCode).toBe(409);
    const replaced = await s.call({
      method: 'POST',
      url: '/api/v1/demo',
      payload: { weeks: 1, replace: true },
    });
    expect(replaced.statusCode, replaced.body).toBe(200);
    // The same policy again: no new version.
    expect(replaced.json<Loaded>()).toMatchObject({
      workloads: loaded.workloads,
      policyVersion: 1,
    });
  });

  it('needs estate, policy and provisioning rights, and names a bad field', async () => {
    const created = await s.call({
      method: 'POST',
      url: '/api/v1/keys',
      payload: { name: 'editor', role: 'policy-editor' },
    });
    const { key } = created.json<{ key: string }>();
    const res = await s.call({ method: 'POST', url: '/api/v1/demo', payload: {}, token: key });
    expect(res.statusCode).toBe(403);
    const bad = await s.call({ method: 'POST', url: '/api/v1/demo', payload: { weeks: 12 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('weeks');
  });

  it('bulkhead demo tells the user to --replace on a loaded estate', async () => {
    const url = await s.app.listen({ port: 0, host: '127.0.0.1' });
    process.env.BULKHEAD_URL = url;
    process.env.BULKHEAD_TOKEN = OWNER_KEY;
    try {
      const refused = await cli('demo', '--weeks', '1');
      expect(refused.code).toBe(1);
      expect(refused.err).toContain('ESTATE_NOT_EMPTY');
      expect((await cli('demo', '--weeks', '0')).code).toBe(2);
      const ok = await cli('demo', '--weeks', '1', '--replace');
      expect(ok.code, ok.err).toBe(0);
      expect(ok.out).toMatch(/loaded the demo estate: \d+ workloads, \d+ flow edges/);
    } finally {
      delete process.env.BULKHEAD_URL;
      delete process.env.BULKHEAD_TOKEN;
    }
  });
});

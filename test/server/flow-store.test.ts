import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FlowRow, FlowSort, MapResult } from '../../src/analysis/flows/model.js';
import { FLOW_SORT_KEYS } from '../../src/analysis/flows/model.js';
import { AuditFeed } from '../../src/server/audit.js';
import { createFlowStore, type FlowStoreInternals } from '../../src/server/flows/service.js';
import { appendFlowBatch, type NewFlowSummary } from '../../src/store/flows.js';
import {
  addWorkloads,
  postgresSkipReason,
  STORE_KINDS,
  testServer,
  type TestServer,
} from '../support/server.js';

const MIN = 60_000;
const now = Date.now();
const ago = (ms: number) => new Date(now - ms).toISOString();

let batch = 0;
async function summaries(
  s: TestServer,
  rows: (Partial<NewFlowSummary> & Pick<NewFlowSummary, 'workload' | 'src' | 'dst'>)[],
): Promise<void> {
  const full = rows.map((r) => ({
    agent_id: 'a',
    batch_id: `b${batch}`,
    proto: 'tcp',
    dport: null,
    process: null,
    first_seen: ago(12 * MIN),
    last_seen: ago(10 * MIN),
    connections: 1,
    bytes: 100,
    decision: null,
    ...r,
  }));
  await appendFlowBatch(
    s.store,
    {
      agent_id: 'a',
      batch_id: `b${batch++}`,
      received_at: new Date().toISOString(),
      summaries: full.length,
    },
    full,
  );
}

const workloads = [
  { name: 'web-1', addresses: ['10.1.0.11'], labels: { app: 'shop', env: 'prod', role: 'web' } },
  { name: 'api-1', addresses: ['10.1.0.21'], labels: { app: 'shop', env: 'prod', role: 'api' } },
  { name: 'db-1', addresses: ['10.1.0.31'], labels: { app: 'shop', env: 'prod', role: 'db' } },
  { name: 'pay-1', addresses: ['10.2.0.11'], labels: { app: 'pay', env: 'prod', role: 'api' } },
  { name: 'box-1', addresses: ['10.3.0.5'], labels: { env: 'prod' } },
];

const shopRuleset = (extra: Record<string, unknown>[] = []) => ({
  kind: 'Ruleset',
  name: 'shop',
  scope: { labels: { app: ['shop'] } },
  rules: [
    {
      name: 'web-to-api',
      sources: { labels: { role: ['web'] } },
      destinations: { labels: { role: ['api'] } },
      services: ['8080/tcp'],
    },
    {
      name: 'users-to-web',
      sources: { ipLists: ['corporate'] },
      destinations: { labels: { role: ['web'] } },
      services: ['443/tcp'],
    },
    ...extra,
  ],
});

const webToDb = {
  name: 'web-to-db',
  sources: { labels: { role: ['web'] } },
  destinations: { labels: { role: ['db'] } },
  services: ['3306/tcp'],
};

const BY_CONNECTIONS: FlowSort = { key: 'connections', descending: true };

describe.each(STORE_KINDS)('flow store on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  let s: TestServer;
  beforeEach(async () => {
    if (skip) return;
    s = await testServer(kind);
    await addWorkloads(s, workloads, (w) => ({
      managed: w.name !== 'box-1',
      mode: w.name === 'pay-1' ? 'visibility' : 'full',
    }));
    const d = await s.call({
      method: 'POST',
      url: '/api/v1/policy/draft/apply',
      payload: {
        documents: [
          { kind: 'IpList', name: 'corporate', include: ['198.19.0.0/16'] },
          shopRuleset(),
        ],
      },
    });
    expect(d.statusCode, d.body).toBe(200);
    const p = await s.call({
      method: 'POST',
      url: '/api/v1/policy/provision',
      payload: { message: 'v1' },
    });
    expect(p.statusCode, p.body).toBe(201);
  });
  afterEach(async () => {
    if (!skip) await s.close();
  });

  const flows = () => s.app.bulkhead.flows;
  const all = async (filter = {}) =>
    (await flows().explore({ window: { since: '24h' }, ...filter }, BY_CONNECTIONS, 1000, null))
      .items;
  const describeRow = (r: FlowRow) =>
    `${r.source.workload ?? `${r.source.address}(${r.source.group})`} > ${r.destination.workload ?? `${r.destination.address}(${r.destination.group})`} ${r.proto}/${r.port ?? ''} ${r.process ?? '-'} ${r.connections}`;

  async function standardTraffic(): Promise<void> {
    await summaries(s, [
      // One conversation seen by both agents: the destination's report counts, with its process.
      {
        workload: 'api-1',
        src: '10.1.0.11',
        dst: '10.1.0.21',
        dport: 8080,
        process: 'java',
        connections: 5,
      },
      {
        workload: 'web-1',
        src: '10.1.0.11',
        dst: '10.1.0.21',
        dport: 8080,
        process: 'curl',
        connections: 5,
      },
      // Blocked at the source: the destination never saw it, so the source's report counts.
      {
        workload: 'web-1',
        src: '10.1.0.11',
        dst: '10.1.0.31',
        dport: 3306,
        process: 'php',
        connections: 2,
        decision: 'blocked',
      },
      // Imported: no reporting side, always kept.
      {
        workload: '',
        src: '198.19.4.4',
        dst: '10.1.0.11',
        dport: 443,
        process: 'nginx',
        connections: 7,
      },
      {
        workload: 'web-1',
        src: '8.8.8.8',
        dst: '10.1.0.11',
        dport: 443,
        process: 'nginx',
        connections: 3,
      },
      {
        workload: 'api-1',
        src: '10.1.0.21',
        dst: '10.9.3.4',
        dport: 5432,
        process: 'java',
        connections: 4,
      },
      // To an unmanaged workload: only the source reports it.
      {
        workload: 'pay-1',
        src: '10.2.0.11',
        dst: '10.3.0.5',
        dport: 22,
        process: 'ssh',
        connections: 1,
      },
    ]);
  }

  it.skipIf(skip)(
    'counts a conversation once, keeps imports, and groups outside addresses',
    async () => {
      await standardTraffic();
      await flows().catchUp();
      const rows = await all();
      expect(rows.map(describeRow)).toEqual([
        '198.19.4.4(corporate) > web-1 tcp/443 nginx 7',
        'web-1 > api-1 tcp/8080 java 5',
        'api-1 > 10.9.3.4(10.9.0.0/16) tcp/5432 - 4',
        '8.8.8.8(internet) > web-1 tcp/443 nginx 3',
        'web-1 > db-1 tcp/3306 - 2',
        'pay-1 > box-1 tcp/22 - 1',
      ]);
      const byPair = Object.fromEntries(
        rows.map((r) => [
          `${r.source.workload ?? r.source.address}>${r.destination.workload ?? r.destination.address}`,
          r,
        ]),
      );
      expect(byPair['web-1>api-1']).toMatchObject({
        decision: 'allowed',
        decidedBy: 'allow rule shop/web-to-api',
      });
      expect(byPair['web-1>db-1']).toMatchObject({ decision: 'blocked', draftDecision: 'blocked' });
      expect(byPair['198.19.4.4>web-1']).toMatchObject({
        decision: 'allowed',
        decidedBy: 'allow rule shop/users-to-web',
      });
      expect(byPair['web-1>api-1']!.source).toEqual({
        workload: 'web-1',
        labels: workloads[0]!.labels,
      });
      const status = await flows().status();
      expect(status).toMatchObject({ pendingSummaries: 0, edges: 6, decisionsCurrent: true });
      expect(status.rolledUpTo).toBeGreaterThan(0);
    },
  );

  it.skipIf(skip)(
    'draws the map by app and env, and breaks an expanded group into roles',
    async () => {
      await standardTraffic();
      await flows().catchUp();
      const map = await flows().map({ window: { since: '1h' }, groupBy: ['app', 'env'] });
      expect(map.window.resolution).toBe('minute');
      expect(map.nodes.map((n) => `${n.id} "${n.label}" ${n.workloads}`)).toEqual([
        'a:10.9.0.0/16 "10.9.0.0/16" 0',
        'a:corporate "corporate" 0',
        'a:internet "internet" 0',
        'g:app=;env=prod "no app · prod" 1',
        'g:app=pay;env=prod "pay · prod" 1',
        'g:app=shop;env=prod "shop · prod" 3',
      ]);
      const edge = (m: MapResult, id: string) => m.edges.find((e) => e.id === id);
      const shop = 'g:app=shop;env=prod';
      expect(edge(map, `${shop}>${shop}`)).toMatchObject({
        connections: 7,
        flows: 2,
        decision: 'blocked',
        byDecision: { allowed: 5, blocked: 2, 'potentially-blocked': 0 },
      });
      expect(edge(map, `a:corporate>${shop}`)?.services).toEqual([
        { proto: 'tcp', port: 443, process: 'nginx', connections: 7, decision: 'allowed' },
      ]);
      expect(map.nodes.find((n) => n.id === shop)).toMatchObject({
        mode: 'full',
        labels: { app: 'shop', env: 'prod' },
      });

      const expanded = await flows().map({ window: { since: '1h' }, expand: [shop] });
      const children = expanded.nodes.filter((n) => n.parent === shop);
      expect(children.map((n) => `${n.id} "${n.label}"`)).toEqual([
        'g:app=shop;env=prod;role=api "api"',
        'g:app=shop;env=prod;role=db "db"',
        'g:app=shop;env=prod;role=web "web"',
      ]);
      expect(expanded.edges.map((e) => `${e.id} ${e.connections}`)).toEqual([
        'a:corporate>g:app=shop;env=prod;role=web 7',
        'g:app=shop;env=prod;role=web>g:app=shop;env=prod;role=api 5',
        'g:app=shop;env=prod;role=api>a:10.9.0.0/16 4',
        'a:internet>g:app=shop;env=prod;role=web 3',
        'g:app=shop;env=prod;role=web>g:app=shop;env=prod;role=db 2',
        'g:app=pay;env=prod>g:app=;env=prod 1',
      ]);
      const hosts = await flows().map({ expand: [shop], expandBy: ['workload'] });
      expect(hosts.nodes.filter((n) => n.parent === shop).map((n) => n.id)).toEqual([
        'w:api-1',
        'w:db-1',
        'w:web-1',
      ]);
      const single = await flows().map({ groupBy: ['workload'], source: [{ workload: 'web-1' }] });
      expect(single.nodes.map((n) => n.id)).toEqual(['w:api-1', 'w:db-1', 'w:web-1']);
    },
  );

  it.skipIf(skip)('filters, sorts and pages the explorer, every row exactly once', async () => {
    await standardTraffic();
    await flows().catchUp();
    const ids = (rows: readonly FlowRow[]) => rows.map((r) => r.id);
    const everything = await all();
    expect(everything).toHaveLength(6);
    for (const key of FLOW_SORT_KEYS) {
      for (const descending of [false, true]) {
        const sort = { key, descending };
        const seen: number[] = [];
        let cursor: string | null = null;
        do {
          const page = await flows().explore({}, sort, 4, cursor);
          expect(page.total).toBe(6);
          seen.push(...ids(page.items));
          cursor = page.nextCursor;
        } while (cursor !== null);
        expect(seen.sort((a, b) => a - b)).toEqual(ids(everything).sort((a, b) => a - b));
      }
    }
    const byPort = await flows().explore({}, { key: 'port', descending: false }, 10, null);
    expect(byPort.items.map((r) => r.port)).toEqual([22, 443, 443, 3306, 5432, 8080]);

    const names = async (filter: object) => (await all(filter)).map(describeRow);
    expect(await names({ source: [{ labels: { role: ['web'] } }] })).toEqual([
      'web-1 > api-1 tcp/8080 java 5',
      'web-1 > db-1 tcp/3306 - 2',
    ]);
    expect(
      await names({
        destination: [{ group: 'internet' }, { address: '10.0.0.0/8' }],
        ports: [{ proto: 'tcp', port: 5432 }],
      }),
    ).toEqual(['api-1 > 10.9.3.4(10.9.0.0/16) tcp/5432 - 4']);
    expect(await names({ either: [{ workload: 'box-1' }] })).toEqual(['pay-1 > box-1 tcp/22 - 1']);
    expect(await names({ source: [{ labels: { app: [''] } }] })).toEqual([]);
    expect(await names({ destination: [{ labels: { app: [''] } }] })).toEqual([
      'pay-1 > box-1 tcp/22 - 1',
    ]);
    expect(await names({ processes: ['nginx'], decisions: ['allowed'] })).toEqual([
      '198.19.4.4(corporate) > web-1 tcp/443 nginx 7',
    ]);
    expect(await names({ decisions: ['blocked'] })).toEqual([
      'api-1 > 10.9.3.4(10.9.0.0/16) tcp/5432 - 4',
      '8.8.8.8(internet) > web-1 tcp/443 nginx 3',
      'web-1 > db-1 tcp/3306 - 2',
    ]);
    expect(await names({ decisions: ['potentially-blocked'] })).toEqual([
      'pay-1 > box-1 tcp/22 - 1',
    ]);

    const exported: FlowRow[] = [];
    for await (const r of flows().exportRows({}, { key: 'bytes', descending: false }))
      exported.push(r);
    expect(exported).toHaveLength(6);
    await expect(flows().explore({}, BY_CONNECTIONS, 10, 'nonsense')).rejects.toThrow(/cursor/);
    await expect(
      flows().explore({ window: { since: 'yesterday' } }, BY_CONNECTIONS, 10, null),
    ).rejects.toThrow(/since/);
  });

  it.skipIf(skip)(
    're-decides edges after a draft change, a provision and a label change',
    async () => {
      await standardTraffic();
      await flows().catchUp();
      const row = async (src: string, dst: string) =>
        (await all()).find((r) => r.source.workload === src && r.destination.workload === dst)!;
      expect(await row('web-1', 'db-1')).toMatchObject({
        decision: 'blocked',
        draftDecision: 'blocked',
      });

      const put = await s.call({
        method: 'PUT',
        url: '/api/v1/policy/draft/Ruleset/shop',
        payload: shopRuleset([webToDb]),
      });
      expect(put.statusCode, put.body).toBe(200);
      expect((await flows().status()).decisionsCurrent).toBe(false);
      await flows().catchUp();
      expect((await flows().status()).decisionsCurrent).toBe(true);
      expect(await row('web-1', 'db-1')).toMatchObject({
        decision: 'blocked',
        decidedBy: 'default deny (no allow rule)',
        draftDecision: 'allowed',
        draftDecidedBy: 'allow rule shop/web-to-db',
      });
      expect(await all({ decisions: ['allowed'], policy: 'draft' })).toHaveLength(3);
      expect(await all({ decisions: ['allowed'] })).toHaveLength(2);

      const p = await s.call({
        method: 'POST',
        url: '/api/v1/policy/provision',
        payload: { message: 'v2' },
      });
      expect(p.statusCode, p.body).toBe(201);
      await flows().catchUp();
      expect(await row('web-1', 'db-1')).toMatchObject({
        decision: 'allowed',
        draftDecision: 'allowed',
      });

      // api-1 is no longer an api: web may not reach it, and the map shows it under its new role.
      const patch = await s.call({
        method: 'PATCH',
        url: '/api/v1/workloads/api-1',
        payload: { labels: { app: 'shop', env: 'prod', role: 'batch' } },
      });
      expect(patch.statusCode, patch.body).toBe(200);
      await flows().catchUp();
      expect(await row('web-1', 'api-1')).toMatchObject({
        decision: 'blocked',
        draftDecision: 'blocked',
      });
      const map = await flows().map({ expand: ['g:app=shop;env=prod'] });
      expect(map.edges.map((e) => e.id)).toContain(
        'g:app=shop;env=prod;role=web>g:app=shop;env=prod;role=batch',
      );
    },
  );

  it.skipIf(skip)('keeps buckets at every resolution and answers a series', async () => {
    await summaries(s, [
      {
        workload: 'api-1',
        src: '10.1.0.11',
        dst: '10.1.0.21',
        dport: 8080,
        connections: 2,
        first_seen: ago(3 * 86_400_000 + MIN),
        last_seen: ago(3 * 86_400_000),
      },
      {
        workload: 'api-1',
        src: '10.1.0.11',
        dst: '10.1.0.21',
        dport: 8080,
        connections: 3,
        first_seen: ago(2 * 3_600_000),
        last_seen: ago(2 * 3_600_000),
      },
      { workload: 'api-1', src: '10.1.0.11', dst: '10.1.0.21', dport: 8080, connections: 4 },
    ]);
    await flows().catchUp();
    const count = async (table: 'flow_minutes' | 'flow_hours' | 'flow_days') =>
      (await s.store.db.selectFrom(table).select(['bucket', 'connections']).execute()).length;
    // Three days back is past the minute buckets' retention (a day): not written there at all.
    expect(await count('flow_minutes')).toBe(2);
    expect(await count('flow_hours')).toBe(3);
    expect(await count('flow_days')).toBeGreaterThanOrEqual(2);
    const total = async (since: string) => (await all({ window: { since } }))[0]?.connections;
    expect(await total('1h')).toBe(4);
    expect(await total('24h')).toBe(7);
    expect(await total('7d')).toBe(9);
    const series = await flows().timeseries({ window: { since: '6h' } });
    expect(series.window.resolution).toBe('minute');
    // 6 h of minutes, and the minute now is in unless now is exactly on a minute.
    expect([360, 361]).toContain(series.points.length);
    expect(series.points.reduce((n, p) => n + p.connections, 0)).toBe(7);
    const hourly = await flows().timeseries(
      { window: { since: '7d' }, destination: [{ workload: 'api-1' }] },
      'hour',
    );
    expect(hourly.points.filter((p) => p.connections > 0).map((p) => p.byDecision.allowed)).toEqual(
      [2, 3, 4],
    );
    const daily = await flows().timeseries({ window: { since: '30d' } });
    expect(daily.window.resolution).toBe('day');
    expect(daily.points.reduce((n, p) => n + p.connections, 0)).toBe(9);
  });

  it.skipIf(skip)('deletes buckets older than retention', async () => {
    await summaries(s, [
      {
        workload: 'api-1',
        src: '10.1.0.11',
        dst: '10.1.0.21',
        dport: 8080,
        connections: 2,
        first_seen: ago(3 * 86_400_000),
        last_seen: ago(3 * 86_400_000),
      },
      { workload: 'api-1', src: '10.1.0.11', dst: '10.1.0.21', dport: 8080, connections: 4 },
    ]);
    const store: FlowStoreInternals = createFlowStore(
      { store: s.store, audit: new AuditFeed() },
      { retention: { minute: 3600, hour: 86_400, day: 2 * 86_400 }, summaryGraceSeconds: 0 },
    );
    await store.catchUp();
    const rolledUpTo = (await store.status()).rolledUpTo;
    await store.retentionNow();
    // Rolled-up summaries leave the ingest log once their grace period (here none) is over.
    expect(await s.store.db.selectFrom('flow_summaries').select('id').execute()).toEqual([]);
    expect(await store.status()).toMatchObject({ rolledUpTo, pendingSummaries: 0 });
    for (const table of ['flow_minutes', 'flow_hours', 'flow_days'] as const) {
      const rows = await s.store.db.selectFrom(table).select('connections').execute();
      expect(
        rows.map((r) => Number(r.connections)),
        table,
      ).toEqual([4]);
    }
    expect((await store.status()).retention).toEqual({ minute: 3600, hour: 86_400, day: 172_800 });
    await store.stop();
  });

  it.skipIf(skip)('takes traffic written straight into the aggregates', async () => {
    const lastSeen = ago(5 * MIN);
    await flows().recordTraffic([
      {
        key: {
          source: { workload: 'web-1' },
          destination: { workload: 'api-1' },
          proto: 'tcp',
          port: 8080,
          process: 'java',
        },
        firstSeen: lastSeen,
        lastSeen,
        connections: 10,
        bytes: 1000,
      },
      {
        key: {
          source: { address: '::ffff:198.19.1.1' },
          destination: { workload: 'web-1' },
          proto: 'tcp',
          port: 443,
          process: null,
        },
        firstSeen: lastSeen,
        lastSeen,
        connections: 1,
        bytes: 10,
      },
    ]);
    expect((await all()).map(describeRow)).toEqual([
      'web-1 > api-1 tcp/8080 java 10',
      '198.19.1.1(corporate) > web-1 tcp/443 - 1',
    ]);
  });

  it.skipIf(skip)(
    'starts over on reset: old traffic and the old log are gone, new traffic counts once',
    async () => {
      await standardTraffic();
      // Another replica over the same database rolls it up, caching the edges' ids.
      const replica = createFlowStore({ store: s.store, audit: new AuditFeed() });
      await replica.catchUp();
      await flows().catchUp();
      await flows().recordTraffic([
        {
          key: {
            source: { workload: 'web-1' },
            destination: { workload: 'api-1' },
            proto: 'tcp',
            port: 8080,
            process: 'java',
          },
          firstSeen: ago(5 * MIN),
          lastSeen: ago(5 * MIN),
          connections: 10,
          bytes: 1000,
        },
      ]);
      // Reported before the reset but not rolled up yet: it goes with the old traffic.
      await summaries(s, [
        { workload: 'api-1', src: '10.1.0.11', dst: '10.1.0.21', dport: 8080, process: 'java' },
      ]);
      await flows().reset();
      expect(await all()).toEqual([]);
      expect(await flows().status()).toMatchObject({ edges: 0, pendingSummaries: 0 });
      for (const table of ['flow_minutes', 'flow_hours', 'flow_days'] as const)
        expect(await s.store.db.selectFrom(table).select('edge_id').execute(), table).toEqual([]);

      await summaries(s, [
        {
          workload: 'api-1',
          src: '10.1.0.11',
          dst: '10.1.0.21',
          dport: 8080,
          process: 'java',
          connections: 3,
        },
      ]);
      await replica.catchUp();
      await flows().catchUp();
      expect((await all()).map(describeRow)).toEqual(['web-1 > api-1 tcp/8080 java 3']);
      await replica.stop();
    },
  );
});

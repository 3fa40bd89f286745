/**
 * The flow API as a user meets it: an estate with a policy, flows imported, then the map's
 * groups and edge decisions, the explorer's filters and pages, the CSV and JSON export, and
 * what a bad parameter or a bad import line is answered with.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlowPage, FlowRow, MapResult, TimeSeries } from '../../src/analysis/flows/model.js';
import { EXPORT_COLUMNS } from '../../src/server/routes/flows.js';
import {
  addWorkloads,
  postgresSkipReason,
  STORE_KINDS,
  testServer,
  type TestServer,
} from '../support/server.js';

const MIN = 60_000;
const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * MIN).toISOString();

const workloads = [
  { name: 'web-1', addresses: ['10.1.0.11'], labels: { app: 'shop', env: 'prod', role: 'web' } },
  { name: 'api-1', addresses: ['10.1.0.21'], labels: { app: 'shop', env: 'prod', role: 'api' } },
  { name: 'db-1', addresses: ['10.1.0.31'], labels: { app: 'shop', env: 'prod', role: 'db' } },
  { name: 'pay-1', addresses: ['10.2.0.11'], labels: { app: 'pay', env: 'prod', role: 'api' } },
];

const HEADER = 'src,dst,proto,port,process,first_seen,last_seen,connections,bytes';
const csvRow = (src: string, dst: string, port: number, process: string, connections: number) =>
  `${src},${dst},tcp,${port},${process},${at(40)},${at(30)},${connections},${connections * 1000}`;

/** 4 conversations inside the estate, one from the internet, 30 from a documentation range. */
const SCANNERS = 30;
const trafficCsv = [
  HEADER,
  csvRow('10.1.0.11', '10.1.0.21', 8080, 'java', 10),
  csvRow('10.1.0.11', '10.1.0.31', 3306, 'mysqld', 2),
  csvRow('10.2.0.11', '10.1.0.21', 8080, 'java', 3),
  csvRow('8.8.8.8', '10.1.0.11', 443, 'nginx', 4),
  ...Array.from({ length: SCANNERS }, (_, i) =>
    csvRow(`198.51.100.${i + 1}`, '10.1.0.11', 443, 'nginx', 1),
  ),
].join('\n');
const FLOWS = 4 + SCANNERS;

describe.each(STORE_KINDS)('flow API on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  let s: TestServer;

  const get = async <T>(url: string): Promise<T> => {
    const r = await s.call({ method: 'GET', url: `/api/v1${url}` });
    expect(r.statusCode, r.body).toBe(200);
    return r.json<T>();
  };
  const badRequest = async (url: string): Promise<string> => {
    const r = await s.call({ method: 'GET', url: `/api/v1${url}` });
    expect(r.statusCode, r.body).toBe(400);
    return r.json<{ error: { message: string } }>().error.message;
  };
  const importFile = (format: string, payload: string, contentType = 'text/plain') =>
    s.call({
      method: 'POST',
      url: `/api/v1/flows/import?format=${format}`,
      headers: { 'content-type': contentType },
      payload,
    });
  const allRows = async (query: string): Promise<readonly FlowRow[]> =>
    (await get<FlowPage>(`/flows?limit=1000&${query}`)).items;

  beforeAll(async () => {
    if (skip) return;
    s = await testServer(kind);
    await addWorkloads(s, workloads);
    const d = await s.call({
      method: 'POST',
      url: '/api/v1/policy/draft/apply',
      payload: {
        documents: [
          {
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
            ],
          },
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
    const imported = await importFile('csv', trafficCsv, 'text/csv');
    expect(imported.statusCode, imported.body).toBe(200);
    expect(imported.json()).toMatchObject({ accepted: FLOWS, skipped: 0 });
    await s.app.bulkhead.flows.catchUp();
  });
  afterAll(async () => {
    if (!skip) await s.close();
  });

  it.skipIf(skip)('maps groups and the decisions on the edges between them', async () => {
    const m = await get<MapResult>('/flows/map?groupBy=app,env&since=1h');
    expect(m.groupBy).toEqual(['app', 'env']);
    expect(m.policy).toBe('active');
    const ids = m.nodes.map((n) => n.id);
    expect(ids).toEqual(
      expect.arrayContaining(['g:app=shop;env=prod', 'g:app=pay;env=prod', 'a:internet']),
    );
    const shop = m.nodes.find((n) => n.id === 'g:app=shop;env=prod')!;
    expect(shop).toMatchObject({ kind: 'group', workloads: 3, mode: 'full' });
    const edge = (from: string, to: string) =>
      m.edges.find((e) => e.source === from && e.target === to);
    // Inside shop: web to api is allowed, web to db is not; the edge shows the worst.
    expect(edge('g:app=shop;env=prod', 'g:app=shop;env=prod')).toMatchObject({
      connections: 12,
      decision: 'blocked',
      byDecision: { allowed: 10, blocked: 2, 'potentially-blocked': 0 },
      flows: 2,
    });
    expect(edge('g:app=pay;env=prod', 'g:app=shop;env=prod')).toMatchObject({
      connections: 3,
      decision: 'blocked',
    });
    expect(edge('a:internet', 'g:app=shop;env=prod')).toMatchObject({
      connections: 4 + SCANNERS,
      decision: 'blocked',
    });

    // Expanded, shop breaks down by role inside its group.
    const x = await get<MapResult>(
      `/flows/map?groupBy=app,env&expand=${encodeURIComponent('g:app=shop;env=prod')}&expandBy=role`,
    );
    const children = x.nodes.filter((n) => n.parent === 'g:app=shop;env=prod').map((n) => n.id);
    expect(children.sort()).toEqual([
      'g:app=shop;env=prod;role=api',
      'g:app=shop;env=prod;role=db',
      'g:app=shop;env=prod;role=web',
    ]);
    expect(
      x.edges.find(
        (e) =>
          e.source === 'g:app=shop;env=prod;role=web' && e.target === 'g:app=shop;env=prod;role=db',
      ),
    ).toMatchObject({ decision: 'blocked', services: [{ proto: 'tcp', port: 3306 }] });
  });

  it.skipIf(skip)('filters flows by end, port, process and decision', async () => {
    const toDb = await allRows('dst=workload:db-1');
    expect(toDb).toHaveLength(1);
    expect(toDb[0]).toMatchObject({
      source: { workload: 'web-1' },
      destination: { workload: 'db-1' },
      port: 3306,
      decision: 'blocked',
    });
    expect(await allRows('port=8080/tcp')).toHaveLength(2);
    expect((await allRows('src=app=pay')).map((r) => r.destination.workload)).toEqual(['api-1']);
    expect(await allRows(`any=${encodeURIComponent('ip:198.51.100.0/24')}`)).toHaveLength(SCANNERS);
    const allowed = await allRows('decision=allowed');
    expect(allowed.map((r) => `${r.source.workload}>${r.destination.workload}`)).toEqual([
      'web-1>api-1',
    ]);
    expect(await allRows('process=mysqld&process=java')).toHaveLength(3);
    // Two end filters of one kind are ORed; different kinds ANDed.
    expect(await allRows('src=workload:web-1&src=workload:pay-1&port=8080/tcp')).toHaveLength(2);
  });

  it.skipIf(skip)('pages through every flow once, in the order asked', async () => {
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `/flows?since=24h&sort=-connections&limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page: FlowPage = await get<FlowPage>(q);
      expect(page.total).toBe(FLOWS);
      expect(page.items.length).toBeLessThanOrEqual(7);
      seen.push(...page.items.map((r) => r.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(Math.ceil(FLOWS / 7));
    expect(new Set(seen).size).toBe(FLOWS);
    const first = (await get<FlowPage>('/flows?sort=-connections&limit=1')).items[0]!;
    expect(first).toMatchObject({ connections: 10, process: 'java' });
  });

  it.skipIf(skip)('exports every matching flow as CSV and as one JSON array', async () => {
    const r = await s.call({
      method: 'GET',
      url: '/api/v1/flows/export?format=csv&sort=-connections',
    });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/csv/);
    expect(r.headers['content-disposition']).toMatch(/^attachment; filename="flows-.*\.csv"$/);
    const lines = r.body.trimEnd().split('\r\n');
    expect(lines[0]).toBe(EXPORT_COLUMNS.join(','));
    expect(lines[0]).toBe(
      'source,source_labels,destination,destination_labels,proto,port,process,connections,blocked,bytes,first_seen,last_seen,decision,decided_by,draft_decision,draft_decided_by',
    );
    expect(lines).toHaveLength(FLOWS + 1);
    expect(lines[1]).toMatch(
      /^web-1,"app=shop,env=prod,role=web",api-1,"app=shop,env=prod,role=api",tcp,8080,java,10,0,10000,[^,]+,[^,]+,allowed,allow rule shop\/web-to-api,/,
    );
    expect(lines.filter((l) => l.startsWith('198.51.100.'))).toHaveLength(SCANNERS);

    const j = await s.call({
      method: 'GET',
      url: '/api/v1/flows/export?format=json&dst=workload:db-1',
    });
    expect(j.statusCode, j.body).toBe(200);
    expect(j.headers['content-disposition']).toMatch(/\.json"$/);
    const rows = j.json<FlowRow[]>();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ destination: { workload: 'db-1' }, decision: 'blocked' });

    const none = await s.call({
      method: 'GET',
      url: '/api/v1/flows/export?format=json&port=9/udp',
    });
    expect(none.json()).toEqual([]);
  });

  it.skipIf(skip)('reports traffic over time and the store status', async () => {
    const ts = await get<TimeSeries>('/flows/timeseries?since=1h');
    expect(ts.window.resolution).toBe('minute');
    const total = ts.points.reduce((n, p) => n + p.connections, 0);
    expect(total).toBe(10 + 2 + 3 + 4 + SCANNERS);
    expect(ts.points.reduce((n, p) => n + p.byDecision.allowed, 0)).toBe(10);
    const status = await get<{
      pendingSummaries: number;
      edges: number;
      decisionsCurrent: boolean;
    }>('/flows/status');
    expect(status).toMatchObject({ pendingSummaries: 0, edges: FLOWS, decisionsCurrent: true });
  });

  it.skipIf(skip)('answers a bad parameter with a 400 naming it', async () => {
    expect(await badRequest('/flows?port=70000/tcp')).toBe(
      'query.port: "70000/tcp" is not a port (1-65535)',
    );
    expect(await badRequest('/flows?src=shop')).toMatch(/^query\.src: "shop" is not an end filter/);
    expect(await badRequest('/flows?src=App=shop')).toMatch(
      /^query\.src: "App=shop" in "App=shop" is not a label/,
    );
    expect(await badRequest('/flows?dst=ip:10.0.0.1/8')).toMatch(/^query\.dst: .*host bits/);
    expect(await badRequest('/flows?sort=-size')).toMatch(/^query\.sort: "-size" is not a sort/);
    expect(await badRequest('/flows?since=1y')).toMatch(/^query\.since: "1y" is not a duration/);
    expect(await badRequest('/flows?decision=denied')).toMatch(
      /^query\.decision: "denied" is not a decision/,
    );
    expect(await badRequest('/flows?since=1h&from=2026-01-01T00:00:00Z')).toBe(
      'query.since: give either since or from/to, not both',
    );
    expect(await badRequest('/flows?limit=0')).toMatch(/^query\.limit:/);
    expect(await badRequest('/flows?cursor=garbage')).toMatch(/^query\.cursor:/);
    expect(await badRequest('/flows/map?groupBy=App')).toMatch(
      /^query\.groupBy: "App" is not a label key/,
    );
    expect(await badRequest('/flows/export?format=xml')).toMatch(/^query\.format:/);
    expect(await badRequest('/flows?color=red')).toMatch(/color/);
  });

  it.skipIf(skip)('refuses a flow file with a bad line whole, naming the line', async () => {
    const before = (await get<FlowPage>('/flows?limit=1')).total;
    const bad = [
      HEADER,
      csvRow('10.1.0.11', '10.1.0.21', 9090, 'java', 1),
      `10.1.0.11,10.1.0.21,tcp,70000,java,${at(5)},${at(4)},1,1`,
    ].join('\n');
    const r = await importFile('csv', bad, 'text/csv');
    expect(r.statusCode).toBe(400);
    const err = r.json<{ error: { code: string; message: string; details: unknown[] } }>().error;
    expect(err.code).toBe('VALIDATION_FAILED');
    expect(err.message).toContain('nothing was stored');
    expect(err.message).toContain('line 3, port: "70000" is not a port (1-65535)');
    expect(err.details).toEqual([
      { path: 'line 3, port', message: '"70000" is not a port (1-65535)' },
    ]);
    await s.app.bulkhead.flows.catchUp();
    expect((await get<FlowPage>('/flows?limit=1')).total).toBe(before);

    const json = await importFile('json', '[{"src": "10.1.0.11"}]', 'application/json');
    expect(json.statusCode).toBe(400);
    expect(json.json<{ error: { message: string } }>().error.message).toContain(
      'line 1, [0].dst: undefined is not an IP address',
    );
    const empty = await importFile('csv', '', 'text/csv');
    expect(empty.statusCode).toBe(400);
  });

  it.skipIf(skip)('imports conntrack and JSON, audited, and needs estate:write', async () => {
    const conntrack = await importFile(
      'conntrack',
      `tcp      6 431999 ESTABLISHED src=10.2.0.11 dst=10.1.0.31 sport=40000 dport=5432 packets=3 bytes=300 src=10.1.0.31 dst=10.2.0.11 sport=5432 dport=40000 packets=2 bytes=200 [ASSURED] mark=0 use=1\n`,
    );
    expect(conntrack.statusCode, conntrack.body).toBe(200);
    const json = await importFile(
      'json',
      JSON.stringify([
        {
          src: '10.2.0.11',
          dst: '10.1.0.31',
          proto: 'tcp',
          port: 5433,
          process: '=HYPERLINK("http://x")',
          firstSeen: at(3),
          lastSeen: at(2),
          connections: 2,
          bytes: 10,
        },
      ]),
      'application/json',
    );
    expect(json.statusCode, json.body).toBe(200);
    const { batchId } = json.json<{ batchId: string }>();
    await s.app.bulkhead.flows.catchUp();
    const rows = await allRows('src=workload:pay-1&dst=workload:db-1');
    expect(rows.map((r) => r.port).sort()).toEqual([5432, 5433]);
    // A process name a spreadsheet would run as a formula is exported as text.
    const csv = await s.call({
      method: 'GET',
      url: '/api/v1/flows/export?format=csv&port=5433/tcp',
    });
    expect(csv.body.split('\r\n')[1]).toContain(',tcp,5433,"\'=HYPERLINK(""http://x"")",2,');

    const audit = await get<{
      items: { type: string; resource: { name: string }; after: unknown }[];
    }>('/audit-events?type=flows.import');
    expect(audit.items.find((e) => e.resource.name === batchId)?.after).toMatchObject({
      format: 'json',
      summaries: 1,
      connections: 2,
    });

    const key = await s.call({
      method: 'POST',
      url: '/api/v1/keys',
      payload: { name: 'reader', role: 'read-only' },
    });
    expect(key.statusCode, key.body).toBe(201);
    const token = key.json<{ key: string }>().key;
    const denied = await s.call({
      method: 'POST',
      url: '/api/v1/flows/import?format=csv',
      token,
      headers: { 'content-type': 'text/csv' },
      payload: trafficCsv,
    });
    expect(denied.statusCode).toBe(403);
    const read = await s.call({ method: 'GET', url: '/api/v1/flows/status', token });
    expect(read.statusCode).toBe(200);
  });

  it.skipIf(skip)('describes every flow route in the OpenAPI document', async () => {
    const doc = await get<{ paths: Record<string, unknown> }>('/openapi.json');
    for (const path of [
      '/api/v1/flows/map',
      '/api/v1/flows',
      '/api/v1/flows/export',
      '/api/v1/flows/timeseries',
      '/api/v1/flows/status',
      '/api/v1/flows/import',
    ])
      expect(Object.keys(doc.paths)).toContain(path);
  });
});

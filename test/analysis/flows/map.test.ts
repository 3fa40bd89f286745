import { describe, expect, it } from 'vitest';
import { aggregateMap, groupId, MAX_SERVICES } from '../../../src/analysis/flows/map.js';
import type { FlowWindow, MapQuery } from '../../../src/analysis/flows/model.js';
import { edge, estate, traffic } from './fixtures.js';

const window: FlowWindow = {
  from: '2026-11-23T00:00:00.000Z',
  to: '2026-11-24T00:00:00.000Z',
  resolution: 'hour',
};

const webToApi = traffic(
  edge({
    source: { workload: 'web-1' },
    destination: { workload: 'api-1' },
    port: 8080,
    process: 'java',
  }),
  10,
);
const web2ToApi = traffic(
  edge({
    source: { workload: 'web-2' },
    destination: { workload: 'api-1' },
    port: 8080,
    process: 'java',
  }),
  5,
  500,
  '2026-11-23T09:00:00.000Z',
  '2026-11-23T12:00:00.000Z',
);
const apiToDb = traffic(
  edge(
    { source: { workload: 'api-1' }, destination: { workload: 'db-1' }, port: 3306 },
    'blocked',
    {
      draft: { decision: 'allowed', decidedBy: 'allow rule shop/api-to-db' },
    },
  ),
  2,
);
const apiToPay = traffic(
  edge(
    { source: { workload: 'api-1' }, destination: { workload: 'pay-1' }, port: 443 },
    'potentially-blocked',
  ),
  3,
);
const netToWeb = traffic(
  edge({ source: { address: '8.8.8.8' }, destination: { workload: 'web-1' } }),
  4,
);
const net2ToWeb = traffic(
  edge({ source: { address: '1.1.1.1' }, destination: { workload: 'web-1' } }),
  1,
);
const toBox = traffic(
  edge({ source: { workload: 'pay-1' }, destination: { workload: 'box-1' }, port: 22 }),
  1,
);
const gone = traffic(
  edge({ source: { workload: 'old-host' }, destination: { workload: 'db-1' }, port: 3306 }),
  1,
);
const edges = [webToApi, web2ToApi, apiToDb, apiToPay, netToWeb, net2ToWeb, toBox];

const map = (query: MapQuery, list = edges, includeIdle = true) =>
  aggregateMap({ query, window, edges: list, workloads: estate, includeIdle });

describe('the map', () => {
  it('groups by app and env by default, missing labels as an empty value', () => {
    const m = map({});
    expect(m.groupBy).toEqual(['app', 'env']);
    expect(m.policy).toBe('active');
    expect(m.window).toBe(window);
    expect(m.nodes).toEqual([
      { id: 'a:internet', kind: 'addresses', label: 'internet', labels: {}, workloads: 0 },
      {
        id: 'g:app=;env=prod',
        kind: 'group',
        label: 'no app · prod',
        labels: { env: 'prod' },
        workloads: 1,
        mode: 'full',
      },
      {
        id: 'g:app=pay;env=prod',
        kind: 'group',
        label: 'pay · prod',
        labels: { app: 'pay', env: 'prod' },
        workloads: 1,
        mode: 'full',
      },
      {
        id: 'g:app=shop;env=prod',
        kind: 'group',
        label: 'shop · prod',
        labels: { app: 'shop', env: 'prod' },
        workloads: 4,
        mode: 'mixed',
      },
    ]);
    const shop = 'g:app=shop;env=prod';
    expect(m.edges.map((e) => `${e.id} ${e.connections} ${e.flows} ${e.decision}`)).toEqual([
      `${shop}>${shop} 17 3 blocked`,
      `a:internet>${shop} 5 2 allowed`,
      `${shop}>g:app=pay;env=prod 3 1 potentially-blocked`,
      'g:app=pay;env=prod>g:app=;env=prod 1 1 allowed',
    ]);
    const inner = m.edges[0]!;
    expect(inner).toMatchObject({
      source: shop,
      target: shop,
      bytes: 1700,
      firstSeen: '2026-11-23T09:00:00.000Z',
      lastSeen: '2026-11-23T12:00:00.000Z',
      byDecision: { allowed: 15, 'potentially-blocked': 0, blocked: 2 },
    });
    expect(inner.services).toEqual([
      { proto: 'tcp', port: 8080, process: 'java', connections: 15, decision: 'allowed' },
      { proto: 'tcp', port: 3306, process: null, connections: 2, decision: 'blocked' },
    ]);
  });

  it('shows the draft verdicts when asked', () => {
    const m = map({ policy: 'draft' });
    expect(m.policy).toBe('draft');
    expect(m.edges[0]).toMatchObject({
      decision: 'allowed',
      byDecision: { allowed: 17, blocked: 0 },
    });
  });

  it('breaks an expanded group into roles, or into workloads', () => {
    const shop = 'g:app=shop;env=prod';
    const m = map({ expand: [shop] });
    expect(m.nodes.filter((n) => n.parent === shop)).toEqual([
      {
        id: `${shop};role=api`,
        kind: 'group',
        label: 'api',
        labels: { app: 'shop', env: 'prod', role: 'api' },
        workloads: 1,
        parent: shop,
        mode: 'full',
      },
      {
        id: `${shop};role=db`,
        kind: 'group',
        label: 'db',
        labels: { app: 'shop', env: 'prod', role: 'db' },
        workloads: 1,
        parent: shop,
        mode: 'full',
      },
      {
        id: `${shop};role=web`,
        kind: 'group',
        label: 'web',
        labels: { app: 'shop', env: 'prod', role: 'web' },
        workloads: 2,
        parent: shop,
        mode: 'mixed',
      },
    ]);
    expect(m.nodes.find((n) => n.id === shop)).toMatchObject({ workloads: 4 });
    expect(m.edges.map((e) => e.id)).toEqual([
      `${shop};role=web>${shop};role=api`,
      `a:internet>${shop};role=web`,
      `${shop};role=api>g:app=pay;env=prod`,
      `${shop};role=api>${shop};role=db`,
      'g:app=pay;env=prod>g:app=;env=prod',
    ]);
    const hosts = map({ expand: [shop], expandBy: ['workload'] });
    expect(
      hosts.nodes.filter((n) => n.parent === shop).map((n) => `${n.id} ${n.kind} ${n.mode}`),
    ).toEqual([
      'w:api-1 workload full',
      'w:db-1 workload full',
      'w:web-1 workload full',
      'w:web-2 workload visibility',
    ]);
  });

  it('draws single workloads, and any label keys', () => {
    const m = map({ groupBy: ['workload'] }, edges, false);
    expect(m.nodes.map((n) => n.id)).toEqual([
      'a:internet',
      'w:api-1',
      'w:box-1',
      'w:db-1',
      'w:pay-1',
      'w:web-1',
      'w:web-2',
    ]);
    expect(m.nodes.find((n) => n.id === 'w:web-2')).toMatchObject({
      kind: 'workload',
      label: 'web-2',
      labels: { app: 'shop', env: 'prod', role: 'web' },
      workloads: 1,
      mode: 'visibility',
    });
    const roles = map({ groupBy: ['role'] });
    expect(roles.nodes.map((n) => n.label)).toEqual(['internet', 'no role', 'api', 'db', 'web']);
    expect(groupId(['role'], {})).toBe('g:role=');
  });

  it('without idle groups shows only nodes with traffic; a workload gone since is still drawn', () => {
    const m = map({}, [gone], false);
    expect(m.nodes.map((n) => `${n.id} ${n.workloads}`)).toEqual([
      'g:app=;env= 1',
      'g:app=shop;env=prod 4',
    ]);
    expect(m.nodes[0]).toMatchObject({ label: 'no app · no env', mode: 'unknown' });
  });

  it('keeps at most 25 services per edge, busiest first', () => {
    const many = Array.from({ length: 30 }, (_, i) =>
      traffic(
        edge({ source: { workload: 'web-1' }, destination: { workload: 'api-1' }, port: 2000 + i }),
        i + 1,
      ),
    );
    const m = map({ groupBy: ['workload'] }, many, false);
    expect(m.edges[0]!.services).toHaveLength(MAX_SERVICES);
    expect(m.edges[0]!.services[0]).toMatchObject({ port: 2029, connections: 30 });
    expect(m.edges[0]!.flows).toBe(30);
  });

  it('names the most severe decision with connections behind it', () => {
    const quietBlock = traffic(
      edge(
        { source: { workload: 'web-1' }, destination: { workload: 'api-1' }, port: 9 },
        'blocked',
      ),
      0,
    );
    const m = map({ groupBy: ['workload'] }, [webToApi, quietBlock], false);
    expect(m.edges[0]!.decision).toBe('allowed');
    const only = map({ groupBy: ['workload'] }, [quietBlock], false);
    expect(only.edges[0]!.decision).toBe('blocked');
  });
});

import { describe, expect, it } from 'vitest';
import { edgeFilter, narrows } from '../../../src/analysis/flows/filter.js';
import type { FlowFilter } from '../../../src/analysis/flows/model.js';
import { byName, edge } from './fixtures.js';

const webToApi = edge({
  source: { workload: 'web-1' },
  destination: { workload: 'api-1' },
  port: 8080,
  process: 'java',
});
const apiToDb = edge(
  { source: { workload: 'api-1' }, destination: { workload: 'db-1' }, port: 3306 },
  'blocked',
);
const netToWeb = edge(
  { source: { address: '8.8.8.8' }, destination: { workload: 'web-1' }, proto: 'udp', port: 53 },
  'potentially-blocked',
  { draft: { decision: 'blocked', decidedBy: 'x' } },
);
const payToBox = edge({
  source: { workload: 'pay-1' },
  destination: { workload: 'box-1' },
  port: 22,
});
const apiToSubnet = edge({
  source: { workload: 'api-1' },
  destination: { address: '10.9.3.4' },
  proto: 'icmp',
  port: null,
});
const all = [webToApi, apiToDb, netToWeb, payToBox, apiToSubnet];

const pick = (filter: FlowFilter) => all.filter(edgeFilter(filter, byName)).map((e) => e.id);
const ids = (...edges: { id: number }[]) => edges.map((e) => e.id);

describe('flow filters', () => {
  it('accepts everything when empty, and says whether it narrows', () => {
    expect(pick({})).toEqual(ids(...all));
    expect(narrows({ window: { since: '1h' }, policy: 'draft' })).toBe(false);
    expect(narrows({ ports: [{ proto: 'tcp' }] })).toBe(true);
  });

  it('matches labels on the workloads now: keys ANDed, values ORed, empty for missing', () => {
    expect(pick({ source: [{ labels: { role: ['web'] } }] })).toEqual(ids(webToApi));
    expect(pick({ destination: [{ labels: { app: ['shop'], role: ['api', 'db'] } }] })).toEqual(
      ids(webToApi, apiToDb),
    );
    expect(pick({ destination: [{ labels: { app: [''] } }] })).toEqual(ids(payToBox));
    expect(pick({ source: [{ labels: { app: ['shop'], env: ['staging'] } }] })).toEqual([]);
    // an address end has no labels
    expect(pick({ source: [{ labels: { app: [''] } }] })).toEqual([]);
  });

  it('matches workloads by name, addresses by CIDR (workload ends by their addresses) and groups', () => {
    expect(pick({ either: [{ workload: 'db-1' }] })).toEqual(ids(apiToDb));
    expect(pick({ source: [{ address: '8.8.0.0/16' }] })).toEqual(ids(netToWeb));
    expect(pick({ destination: [{ address: '10.1.0.31' }] })).toEqual(ids(apiToDb));
    expect(pick({ destination: [{ address: '10.0.0.0/8' }] })).toEqual(
      ids(webToApi, apiToDb, netToWeb, payToBox, apiToSubnet),
    );
    expect(pick({ either: [{ group: 'internet' }] })).toEqual(ids(netToWeb));
    expect(pick({ destination: [{ group: '10.9.0.0/16' }] })).toEqual(ids(apiToSubnet));
    expect(() => pick({ source: [{ workload: 'x' }, { address: '10.0.0.1/8' }] })).toThrow(
      /^src\[1\]: .*host bits/,
    );
  });

  it('ORs inside a list and ANDs the lists', () => {
    expect(pick({ source: [{ workload: 'web-1' }, { workload: 'pay-1' }] })).toEqual(
      ids(webToApi, payToBox),
    );
    expect(
      pick({ source: [{ workload: 'web-1' }, { workload: 'pay-1' }], ports: [{ port: 22 }] }),
    ).toEqual(ids(payToBox));
  });

  it('matches ports by protocol and number, processes and decisions under the chosen policy', () => {
    expect(pick({ ports: [{ proto: 'udp', port: 53 }, { proto: 'icmp' }] })).toEqual(
      ids(netToWeb, apiToSubnet),
    );
    expect(pick({ ports: [{ proto: 'tcp', port: 53 }] })).toEqual([]);
    expect(pick({ processes: ['java', 'sshd'] })).toEqual(ids(webToApi));
    expect(pick({ decisions: ['blocked'] })).toEqual(ids(apiToDb));
    expect(pick({ decisions: ['blocked'], policy: 'draft' })).toEqual(ids(apiToDb, netToWeb));
  });
});

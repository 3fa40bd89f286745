/** Small hand-made edges and workloads for the flow store's pure tests. */
import type { EdgeWithTraffic } from '../../../src/analysis/flows/map.js';
import type { Edge, EdgeKey } from '../../../src/analysis/flows/model.js';
import type { Decision } from '../../../src/policy/decide.js';
import type { Workload } from '../../../src/policy/model.js';

export const workload = (
  name: string,
  labels: Record<string, string>,
  address: string,
  mode: Workload['mode'] = 'full',
): Workload => ({ name, addresses: [address], labels, mode, managed: true, users: [] });

export const estate: Workload[] = [
  workload('web-1', { app: 'shop', env: 'prod', role: 'web' }, '10.1.0.11'),
  workload('web-2', { app: 'shop', env: 'prod', role: 'web' }, '10.1.0.12', 'visibility'),
  workload('api-1', { app: 'shop', env: 'prod', role: 'api' }, '10.1.0.21'),
  workload('db-1', { app: 'shop', env: 'prod', role: 'db' }, '10.1.0.31'),
  workload('pay-1', { app: 'pay', env: 'prod', role: 'api' }, '10.2.0.11'),
  workload('box-1', { env: 'prod' }, '10.3.0.5'),
];
export const byName = new Map(estate.map((w) => [w.name, w]));

let nextId = 1;
export function edge(
  key: Partial<EdgeKey> & Pick<EdgeKey, 'source' | 'destination'>,
  decision: Decision = 'allowed',
  more: Partial<Edge> = {},
): Edge {
  const src = key.source;
  const dst = key.destination;
  const group = (e: EdgeKey['source']) =>
    e.address === undefined ? null : e.address.startsWith('10.') ? '10.9.0.0/16' : 'internet';
  return {
    id: nextId++,
    proto: 'tcp',
    port: 443,
    process: null,
    ...key,
    sourceGroup: group(src),
    destinationGroup: group(dst),
    active: { decision, decidedBy: `${decision} by test` },
    draft: { decision, decidedBy: `${decision} by test` },
    ...more,
  };
}

export function traffic(
  e: Edge,
  connections: number,
  bytes = connections * 100,
  firstSeen = '2026-11-23T10:00:00.000Z',
  lastSeen = '2026-11-23T11:00:00.000Z',
): EdgeWithTraffic {
  return {
    edge: e,
    traffic: { edgeId: e.id, connections, blocked: 0, bytes, firstSeen, lastSeen },
  };
}

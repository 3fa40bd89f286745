/**
 * The application dependency map: edges with their traffic, folded into nodes chosen by
 * label keys (app and env by default), single workloads, or address groups. A group the
 * user expands is broken into children (by role, or into workloads) inside it, so the map
 * zooms from applications into tiers into hosts without ever drawing a hairball.
 */
import { DECISIONS, type Decision } from '../../policy/decide.js';
import type { Workload } from '../../policy/model.js';
import { verdictOf } from './filter.js';
import type {
  DecisionCounts,
  Edge,
  EdgeTraffic,
  FlowEnd,
  FlowWindow,
  MapEdge,
  MapNode,
  MapQuery,
  MapResult,
  MapService,
  PolicyView,
} from './model.js';

export const DEFAULT_GROUP_BY: readonly string[] = ['app', 'env'];
export const DEFAULT_EXPAND_BY: readonly string[] = ['role'];
export const MAX_SERVICES = 25;

export interface EdgeWithTraffic {
  readonly edge: Edge;
  readonly traffic: EdgeTraffic;
}

export interface MapInput {
  readonly query: MapQuery;
  readonly window: FlowWindow;
  /** The edges that passed the filter, with their traffic in the window. */
  readonly edges: readonly EdgeWithTraffic[];
  /** The estate now. */
  readonly workloads: readonly Workload[];
  /** Whether to show every group of the estate, traffic or not (when nothing narrows the map). */
  readonly includeIdle: boolean;
}

const SEVERITY: Readonly<Record<Decision, number>> = {
  allowed: 0,
  'potentially-blocked': 1,
  blocked: 2,
};

export const byWorkload = (keys: readonly string[]): boolean =>
  keys.length === 1 && keys[0] === 'workload';

/** `g:app=shop;env=prod`: each key's value, empty when missing. */
export function groupId(keys: readonly string[], labels: Readonly<Record<string, string>>): string {
  return `g:${keys.map((k) => `${k}=${labels[k] ?? ''}`).join(';')}`;
}

function groupLabel(keys: readonly string[], labels: Readonly<Record<string, string>>): string {
  return keys.map((k) => labels[k] || `no ${k}`).join(' · ');
}

function zeroCounts(): Record<Decision, number> {
  return { allowed: 0, 'potentially-blocked': 0, blocked: 0 };
}

interface NodeAcc {
  id: string;
  kind: MapNode['kind'];
  label: string;
  labels: Record<string, string>;
  parent?: string;
}

interface EdgeAcc {
  source: string;
  target: string;
  connections: number;
  bytes: number;
  firstSeen: string;
  lastSeen: string;
  byDecision: Record<Decision, number>;
  worst: Decision;
  services: Map<string, MapService & { connections: number }>;
  flows: number;
}

/** Builds the map: nodes for every end (and every group of the estate when asked), edges between them. */
export function aggregateMap(input: MapInput): MapResult {
  const { query } = input;
  const groupBy = query.groupBy?.length ? query.groupBy : DEFAULT_GROUP_BY;
  const expandBy = query.expandBy?.length ? query.expandBy : DEFAULT_EXPAND_BY;
  const expand = new Set(query.expand ?? []);
  const policy: PolicyView = query.policy ?? 'active';
  const workloads = new Map(input.workloads.map((w) => [w.name, w]));
  const nodes = new Map<string, NodeAcc>();

  const node = (
    id: string,
    kind: MapNode['kind'],
    label: string,
    labels: Record<string, string>,
    parent?: string,
  ): NodeAcc => {
    let n = nodes.get(id);
    if (!n) {
      n = { id, kind, label, labels };
      if (parent !== undefined) n.parent = parent;
      nodes.set(id, n);
    }
    return n;
  };

  const shared = (keys: readonly string[], labels: Readonly<Record<string, string>>) =>
    Object.fromEntries(keys.filter((k) => labels[k]).map((k) => [k, labels[k]!]));

  /** The node ids a workload sits in: its group, then (expanded) its child; or its own node. */
  const placement = (
    name: string,
  ): {
    id: string;
    kind: MapNode['kind'];
    label: string;
    labels: Record<string, string>;
    parent?: string;
  }[] => {
    const labels = workloads.get(name)?.labels ?? {};
    if (byWorkload(groupBy))
      return [{ id: `w:${name}`, kind: 'workload', label: name, labels: { ...labels } }];
    const gid = groupId(groupBy, labels);
    const out: {
      id: string;
      kind: MapNode['kind'];
      label: string;
      labels: Record<string, string>;
      parent?: string;
    }[] = [
      {
        id: gid,
        kind: 'group',
        label: groupLabel(groupBy, labels),
        labels: shared(groupBy, labels),
      },
    ];
    if (!expand.has(gid)) return out;
    if (byWorkload(expandBy)) {
      out.push({
        id: `w:${name}`,
        kind: 'workload',
        label: name,
        labels: { ...labels },
        parent: gid,
      });
      return out;
    }
    const childKeys = [...groupBy, ...expandBy.filter((k) => !groupBy.includes(k))];
    out.push({
      id: groupId(childKeys, labels),
      kind: 'group',
      label: groupLabel(expandBy, labels),
      labels: shared(childKeys, labels),
      parent: gid,
    });
    return out;
  };

  // Who is inside each node, counted over the whole estate (not only workloads with traffic).
  const members = new Map<string, { names: Set<string>; modes: Set<string> }>();
  const join = (id: string, name: string, mode: string) => {
    let m = members.get(id);
    if (!m) members.set(id, (m = { names: new Set(), modes: new Set() }));
    m.names.add(name);
    m.modes.add(mode);
  };
  for (const w of input.workloads) {
    for (const p of placement(w.name)) join(p.id, w.name, w.managed ? w.mode : 'unmanaged');
  }

  /** The innermost node a workload (possibly gone from the estate since) is drawn in. */
  const placed = new Map<string, ReturnType<typeof placement>>();
  const workloadNode = (name: string): string => {
    // Each end of every edge lands here: a busy map asks for the same workloads many times.
    let places = placed.get(name);
    if (!places) placed.set(name, (places = placement(name)));
    let id = '';
    for (const p of places) {
      node(p.id, p.kind, p.label, p.labels, p.parent);
      if (!workloads.has(name)) join(p.id, name, 'unknown');
      id = p.id;
    }
    return id;
  };

  const endNode = (end: FlowEnd, group: string | null): string => {
    if (end.workload !== undefined) return workloadNode(end.workload);
    const name = group ?? end.address;
    return node(`a:${name}`, 'addresses', name, {}).id;
  };

  if (input.includeIdle) for (const w of input.workloads) workloadNode(w.name);

  const edges = new Map<string, EdgeAcc>();
  for (const { edge, traffic } of input.edges) {
    const source = endNode(edge.source, edge.sourceGroup);
    const target = endNode(edge.destination, edge.destinationGroup);
    const id = `${source}>${target}`;
    let acc = edges.get(id);
    if (!acc) {
      acc = {
        source,
        target,
        connections: 0,
        bytes: 0,
        firstSeen: traffic.firstSeen,
        lastSeen: traffic.lastSeen,
        byDecision: zeroCounts(),
        worst: 'allowed',
        services: new Map(),
        flows: 0,
      };
      edges.set(id, acc);
    }
    const decision = verdictOf(edge, policy).decision;
    acc.connections += traffic.connections;
    acc.bytes += traffic.bytes;
    if (traffic.firstSeen < acc.firstSeen) acc.firstSeen = traffic.firstSeen;
    if (traffic.lastSeen > acc.lastSeen) acc.lastSeen = traffic.lastSeen;
    acc.byDecision[decision] += traffic.connections;
    acc.flows++;
    const sk = `${edge.proto}/${edge.port ?? ''}/${edge.process ?? ''}/${decision}`;
    const s = acc.services.get(sk);
    if (s) s.connections += traffic.connections;
    else
      acc.services.set(sk, {
        proto: edge.proto,
        port: edge.port,
        process: edge.process,
        connections: traffic.connections,
        decision,
      });
  }

  const mapEdges: MapEdge[] = [...edges.entries()].map(([id, a]) => {
    // The most severe decision with connections behind it; with none at all, the most severe seen.
    let worst: Decision = 'allowed';
    for (const d of DECISIONS) if (a.byDecision[d] > 0 && SEVERITY[d] > SEVERITY[worst]) worst = d;
    if (a.connections === 0) {
      for (const s of a.services.values())
        if (SEVERITY[s.decision] > SEVERITY[worst]) worst = s.decision;
    }
    const services = [...a.services.values()]
      .sort(
        (x, y) =>
          y.connections - x.connections ||
          (x.port ?? -1) - (y.port ?? -1) ||
          x.proto.localeCompare(y.proto) ||
          (x.process ?? '').localeCompare(y.process ?? ''),
      )
      .slice(0, MAX_SERVICES);
    const byDecision: DecisionCounts = { ...a.byDecision };
    return {
      id,
      source: a.source,
      target: a.target,
      connections: a.connections,
      bytes: a.bytes,
      firstSeen: a.firstSeen,
      lastSeen: a.lastSeen,
      decision: worst,
      byDecision,
      services,
      flows: a.flows,
    };
  });
  mapEdges.sort((x, y) => y.connections - x.connections || (x.id < y.id ? -1 : 1));

  const mapNodes: MapNode[] = [...nodes.values()]
    .map((n) => {
      const m = members.get(n.id);
      const modes = m ? [...m.modes] : [];
      const count = m?.names.size ?? 0;
      const mode =
        n.kind === 'addresses' || count === 0
          ? undefined
          : modes.length === 1
            ? modes[0]!
            : 'mixed';
      return {
        id: n.id,
        kind: n.kind,
        label: n.label,
        labels: n.labels,
        workloads: count,
        ...(n.parent !== undefined ? { parent: n.parent } : {}),
        ...(mode !== undefined ? { mode } : {}),
      };
    })
    .sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));

  return { window: input.window, policy, groupBy, nodes: mapNodes, edges: mapEdges };
}

/**
 * What changes between two versions of a policy: the rules a person edited, and, more to
 * the point for a reviewer, which peers gain or lose access to which workload on which port.
 *
 * Access changes are found by deciding a grid of representative flows under both versions.
 * Flows that differ only inside one port range, or between addresses of one IP list interval,
 * are decided alike, so one representative per boundary is exact and keeps the grid small.
 * The grid is then decided once per class of flows that decide() cannot tell apart, and only
 * where a changed rule, endpoint or workload reaches (flow-classes.ts): a small edit of a
 * large estate decides few flows.
 */
import { AddressSet, formatAddress, type IpFamily } from './addresses.js';
import {
  decide,
  type Decision,
  type DecidedBy,
  type FlowDecision,
  type FlowEndpoint,
} from './decide.js';
import { flowClasses, type GridVersion, type Probe } from './flow-classes.js';
import type { Rule, Ruleset, ServicePort, Workload } from './model.js';
import type { ResolvedPolicy } from './resolve.js';

export type ChangeKind = 'added' | 'removed' | 'changed';

export interface RuleChange {
  readonly change: ChangeKind;
  /** `ruleset/rule` */
  readonly ruleId: string;
  /** Which fields differ, for a changed rule. */
  readonly fields: readonly string[];
}

export interface ObjectChange {
  readonly change: ChangeKind;
  readonly kind:
    'Workload' | 'LabelGroup' | 'IpList' | 'UserGroup' | 'Service' | 'Ruleset' | 'Settings';
  readonly name: string;
  readonly fields: readonly string[];
}

/** A flow whose decision differs between the versions; at least one end is a workload. */
export interface AccessChange {
  readonly from: string;
  readonly to: string;
  readonly service: string;
  readonly before: Decision;
  readonly after: Decision;
  readonly decidedBy: DecidedBy;
  /** gains: fewer of its flows are blocked after; loses: more are. */
  readonly direction: 'gains' | 'loses';
}

export interface PolicyDiff {
  readonly rules: readonly RuleChange[];
  readonly objects: readonly ObjectChange[];
  readonly access: readonly AccessChange[];
  /** How many representative flows were compared (deciding one per class, see flow-classes.ts). */
  readonly flowsCompared: number;
}

const stable = (v: unknown): string =>
  JSON.stringify(v, (_k, value: unknown) =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(
          Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
        )
      : value,
  );

function changedFields<T extends object>(a: T, b: T, skip: readonly string[] = []): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys]
    .filter(
      (k) =>
        !skip.includes(k) &&
        stable((a as Record<string, unknown>)[k]) !== stable((b as Record<string, unknown>)[k]),
    )
    .sort();
}

function diffNamed<T extends { name: string }>(
  kind: ObjectChange['kind'],
  before: readonly T[],
  after: readonly T[],
  skip: readonly string[] = [],
): ObjectChange[] {
  const old = new Map(before.map((o) => [o.name, o]));
  const now = new Map(after.map((o) => [o.name, o]));
  const out: ObjectChange[] = [];
  for (const [name, o] of old) {
    const n = now.get(name);
    if (!n) out.push({ change: 'removed', kind, name, fields: [] });
    else {
      const fields = changedFields(o, n, skip);
      if (fields.length) out.push({ change: 'changed', kind, name, fields });
    }
  }
  for (const name of now.keys())
    if (!old.has(name)) out.push({ change: 'added', kind, name, fields: [] });
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function diffRules(before: readonly Ruleset[], after: readonly Ruleset[]): RuleChange[] {
  const index = (sets: readonly Ruleset[]) => {
    const m = new Map<string, { rule: Rule; scope: Ruleset['scope'] }>();
    for (const s of sets)
      for (const r of s.rules) m.set(`${s.name}/${r.name}`, { rule: r, scope: s.scope });
    return m;
  };
  const old = index(before);
  const now = index(after);
  const out: RuleChange[] = [];
  for (const [id, o] of old) {
    const n = now.get(id);
    if (!n) out.push({ change: 'removed', ruleId: id, fields: [] });
    else {
      const fields = changedFields(o.rule, n.rule);
      if (stable(o.scope) !== stable(n.scope)) fields.push('scope');
      if (fields.length) out.push({ change: 'changed', ruleId: id, fields: fields.sort() });
    }
  }
  for (const id of now.keys())
    if (!old.has(id)) out.push({ change: 'added', ruleId: id, fields: [] });
  return out.sort((a, b) => (a.ruleId < b.ruleId ? -1 : a.ruleId > b.ruleId ? 1 : 0));
}

function probeLabel(p: Probe): string {
  if (p.port !== undefined) return `${p.proto}/${p.port}${p.process ? ` (${p.process})` : ''}`;
  return p.icmpType !== undefined ? `${p.proto}/${p.icmpType}` : p.proto;
}

/**
 * One probe per port-range boundary (and just past it), per protocol, for both versions;
 * where a service is bound to a process, the same boundaries again as served by that process.
 */
function representativeProbes(policies: readonly ResolvedPolicy[]): Probe[] {
  const seen = new Set<string>();
  const out: Probe[] = [];
  const push = (p: Probe) => {
    const key = probeLabel(p);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(p);
    }
  };
  const add = (sp: ServicePort) => {
    if (!('ports' in sp)) {
      push({ proto: sp.proto, icmpType: sp.icmpType ?? 0 });
      return;
    }
    const { from, to } = sp.ports;
    const edges = [from - 1, from, to, to + 1].filter((p) => p >= 1 && p <= 65535);
    for (const port of edges) {
      push({ proto: sp.proto, port });
      if (sp.process && port >= from && port <= to)
        push({ proto: sp.proto, port, process: sp.process });
    }
  };
  for (const p of policies) {
    for (const r of p.rules) if (r.services !== 'all') r.services.forEach(add);
    for (const a of p.alwaysAllowed) a.ports.forEach(add);
  }
  // Rules for "all services" need one probe of each kind that no port rule mentions.
  for (const proto of ['tcp', 'udp'] as const) push({ proto, port: 1 });
  push({ proto: 'icmp', icmpType: 0 });
  push({ proto: 'icmpv6', icmpType: 0 });
  const order = (p: Probe) =>
    `${p.proto}/${String(p.port ?? p.icmpType ?? 0).padStart(5, '0')}/${p.process ?? ''}`;
  return out.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
}

/**
 * Non-workload peers: one address from every piece that the IP lists of both versions cut
 * the address space into. Each piece starts at an interval's first address or just past an
 * interval's last, so those addresses are a complete set of representatives.
 */
function representativeOutsiders(policies: readonly ResolvedPolicy[]): Map<string, string> {
  const starts: Record<IpFamily, Set<bigint>> = { 4: new Set(), 6: new Set() };
  const lists = new Map<string, AddressSet>();
  for (const p of policies)
    for (const l of p.source.ipLists) lists.set(l.name, AddressSet.of(l.include, l.exclude));
  const limit: Record<IpFamily, bigint> = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n };
  for (const p of policies) {
    for (const r of p.rules) {
      for (const side of [r.sources, r.destinations]) {
        for (const family of [4, 6] as IpFamily[]) {
          for (const iv of side.ipAddresses.intervals(family)) {
            starts[family].add(iv.start);
            if (iv.end < limit[family]) starts[family].add(iv.end + 1n);
          }
        }
      }
    }
  }
  const out = new Map<string, string>();
  for (const family of [4, 6] as IpFamily[]) {
    for (const v of [...starts[family]].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
      const address = formatAddress(family, v);
      if (policies.some((q) => q.workloadAt(address))) continue;
      const inLists = [...lists]
        .filter(([, set]) => set.hasValue(family, v))
        .map(([name]) => name)
        .sort();
      out.set(
        address,
        `${address} (${inLists.length ? `in ${inLists.join(', ')}` : 'in no IP list'})`,
      );
    }
  }
  return out;
}

function endpointIn(policy: ResolvedPolicy, name: string): FlowEndpoint | null {
  const w: Workload | undefined = policy.workloadByName.get(name);
  const address = w?.addresses[0];
  return w && address !== undefined ? { address, workload: w } : null;
}

function outsiderIn(policy: ResolvedPolicy, address: string): FlowEndpoint {
  const w = policy.workloadAt(address);
  return w ? { address, workload: w } : { address };
}

const SEVERITY: Record<Decision, number> = { allowed: 0, 'potentially-blocked': 1, blocked: 2 };

interface Peer {
  readonly id: string;
  readonly workload?: string;
  readonly address?: string;
}

/** The flows whose decisions the diff compares: every peer to every peer, by every probe. */
export interface AccessGrid {
  /** The workloads of both versions by name, then the representative outsiders. */
  readonly peers: readonly Peer[];
  readonly probes: readonly Probe[];
  readonly versions: readonly [GridVersion, GridVersion];
  /** peers² x probes: the grid's extent, as reported and as bounded. */
  readonly size: number;
}

export function accessGrid(before: ResolvedPolicy, after: ResolvedPolicy): AccessGrid {
  const names = [...new Set([...before.workloads, ...after.workloads].map((w) => w.name))].sort();
  const outsiders = representativeOutsiders([before, after]);
  const probes = representativeProbes([before, after]);
  const peers: Peer[] = [
    ...names.map((n) => ({ id: n, workload: n })),
    ...[...outsiders].map(([a, label]) => ({ id: label, address: a })),
  ];
  const version = (policy: ResolvedPolicy): GridVersion => ({
    policy,
    endpoints: peers.map((peer) =>
      peer.workload !== undefined
        ? endpointIn(policy, peer.workload)
        : outsiderIn(policy, peer.address!),
    ),
  });
  return {
    peers,
    probes,
    versions: [version(before), version(after)],
    size: peers.length ** 2 * probes.length,
  };
}

/** Calls `visit` with (source, destination, probe) indices for each flow to compare, in report order. */
export function forEachFlow(
  grid: AccessGrid,
  visit: (source: number, destination: number, probe: number) => void,
): void {
  const { peers, probes, versions } = grid;
  peers.forEach((dst, d) => {
    peers.forEach((src, s) => {
      // Between two outsiders no firewall of ours stands; a workload to itself is loopback.
      if (src === dst || (src.workload === undefined && dst.workload === undefined)) return;
      // A workload that exists in only one version has no "before" (or "after") to compare.
      if (versions.some((v) => !v.endpoints[s] || !v.endpoints[d])) return;
      for (let p = 0; p < probes.length; p++) visit(s, d, p);
    });
  });
}

export function accessChange(
  grid: AccessGrid,
  source: number,
  destination: number,
  probe: number,
  before: FlowDecision,
  after: FlowDecision,
): AccessChange {
  return {
    from: grid.peers[source]!.id,
    to: grid.peers[destination]!.id,
    service: probeLabel(grid.probes[probe]!),
    before: before.decision,
    after: after.decision,
    decidedBy: after.decidedBy,
    direction: SEVERITY[after.decision] < SEVERITY[before.decision] ? 'gains' : 'loses',
  };
}

/** A grid flow's decisions under both versions, or null where they are the same. */
type Outcome = { readonly before: FlowDecision; readonly after: FlowDecision } | null;

/**
 * Decides grid flows (by peer and probe index) under both versions: once per class of
 * flows (see flow-classes.ts), and not at all where no change can reach the flow.
 */
function decisionsCompared(
  versions: readonly [GridVersion, GridVersion],
  probes: readonly Probe[],
) {
  const classes = flowClasses(versions, probes);
  const memo = new Map<number, Outcome>();
  const decideIn = (v: GridVersion, s: number, d: number, p: number) =>
    decide(v.policy, { source: v.endpoints[s]!, destination: v.endpoints[d]!, ...probes[p]! });
  const outcome = (s: number, d: number, p: number): Outcome => {
    if (!classes.mayDiffer(s, d, p)) return null;
    const before = decideIn(versions[0], s, d, p);
    const after = decideIn(versions[1], s, d, p);
    return before.decision === after.decision ? null : { before, after };
  };
  return (s: number, d: number, p: number): Outcome => {
    const { peerClass, peerClasses, probeClass, probeClasses } = classes;
    const key = (peerClass[s]! * peerClasses + peerClass[d]!) * probeClasses + probeClass[p]!;
    let known = memo.get(key);
    if (known === undefined) memo.set(key, (known = outcome(s, d, p)));
    return known;
  };
}

/**
 * Compares two resolved policies. `maxFlows` bounds the access grid (workloads x peers x
 * probes per version); beyond it the access part is left empty and `flowsCompared` is 0.
 */
export function diffPolicies(
  before: ResolvedPolicy,
  after: ResolvedPolicy,
  maxFlows = 2_000_000,
): PolicyDiff {
  const objects = [
    ...diffNamed('Workload', before.source.workloads, after.source.workloads),
    ...diffNamed('LabelGroup', before.source.labelGroups, after.source.labelGroups),
    ...diffNamed('IpList', before.source.ipLists, after.source.ipLists),
    ...diffNamed('UserGroup', before.source.userGroups, after.source.userGroups),
    ...diffNamed('Service', before.source.services, after.source.services),
    ...diffNamed('Ruleset', before.source.rulesets, after.source.rulesets, ['rules']),
  ];
  if (stable(before.source.settings) !== stable(after.source.settings)) {
    objects.push({
      change: 'changed',
      kind: 'Settings',
      name: 'settings',
      fields: ['alwaysAllowed'],
    });
  }
  const rules = diffRules(before.source.rulesets, after.source.rulesets);

  const grid = accessGrid(before, after);
  if (grid.size > maxFlows) return { rules, objects, access: [], flowsCompared: 0 };
  // One policy on both sides decides every flow alike.
  if (before === after) return { rules, objects, access: [], flowsCompared: grid.size };
  const compare = decisionsCompared(grid.versions, grid.probes);
  const access: AccessChange[] = [];
  forEachFlow(grid, (s, d, p) => {
    const outcome = compare(s, d, p);
    if (outcome) access.push(accessChange(grid, s, d, p, outcome.before, outcome.after));
  });
  return { rules, objects, access, flowsCompared: grid.size };
}

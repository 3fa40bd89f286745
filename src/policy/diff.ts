/**
 * What changes between two versions of a policy: the rules a person edited, and, more to
 * the point for a reviewer, which peers gain or lose access to which workload on which port.
 *
 * Access changes are found by deciding a grid of representative flows under both versions.
 * Flows that differ only inside one port range, or between addresses of one IP list interval,
 * are decided alike, so one representative per boundary is exact and keeps the grid small.
 */
import { AddressSet, formatAddress, type IpFamily } from './addresses.js';
import {
  decide,
  type Decision,
  type DecidedBy,
  type FlowEndpoint,
  type FlowProtocol,
} from './decide.js';
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
  /** How many representative flows were decided under each version. */
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

interface Probe {
  readonly proto: FlowProtocol;
  readonly port?: number;
  readonly icmpType?: number;
  readonly process?: string;
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

const SEVERITY: Record<Decision, number> = { allowed: 0, 'potentially-blocked': 1, blocked: 2 };

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

  const names = [...new Set([...before.workloads, ...after.workloads].map((w) => w.name))].sort();
  const outsiders = representativeOutsiders([before, after]);
  const probes = representativeProbes([before, after]);
  const gridSize = (names.length + outsiders.size) ** 2 * probes.length;
  const access: AccessChange[] = [];
  if (gridSize > maxFlows) return { rules, objects, access, flowsCompared: 0 };

  const endpointIn = (p: ResolvedPolicy, name: string): FlowEndpoint | null => {
    const w: Workload | undefined = p.workloadByName.get(name);
    const address = w?.addresses[0];
    return w && address !== undefined ? { address, workload: w } : null;
  };
  const outsiderIn = (p: ResolvedPolicy, address: string): FlowEndpoint => {
    const w = p.workloadAt(address);
    return w ? { address, workload: w } : { address };
  };
  type Peer = { readonly id: string; readonly workload?: string; readonly address?: string };
  const peers: Peer[] = [
    ...names.map((n) => ({ id: n, workload: n })),
    ...[...outsiders].map(([a, label]) => ({ id: label, address: a })),
  ];
  const peerIn = (p: ResolvedPolicy, peer: Peer): FlowEndpoint | null =>
    peer.workload !== undefined ? endpointIn(p, peer.workload) : outsiderIn(p, peer.address!);

  for (const dst of peers) {
    for (const src of peers) {
      // Between two outsiders no firewall of ours stands; a workload to itself is loopback.
      if (src === dst || (src.workload === undefined && dst.workload === undefined)) continue;
      const srcBefore = peerIn(before, src);
      const srcAfter = peerIn(after, src);
      const dstBefore = peerIn(before, dst);
      const dstAfter = peerIn(after, dst);
      // A workload that exists in only one version has no "before" (or "after") to compare.
      if (!srcBefore || !srcAfter || !dstBefore || !dstAfter) continue;
      for (const probe of probes) {
        const b = decide(before, { source: srcBefore, destination: dstBefore, ...probe });
        const a = decide(after, { source: srcAfter, destination: dstAfter, ...probe });
        if (b.decision === a.decision) continue;
        access.push({
          from: src.id,
          to: dst.id,
          service: probeLabel(probe),
          before: b.decision,
          after: a.decision,
          decidedBy: a.decidedBy,
          direction: SEVERITY[a.decision] < SEVERITY[b.decision] ? 'gains' : 'loses',
        });
      }
    }
  }
  return { rules, objects, access, flowsCompared: gridSize };
}

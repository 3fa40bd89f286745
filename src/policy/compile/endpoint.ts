/**
 * The computed per-workload state a firewall consumes (kept apart from the user's rule
 * types, as a datapath wants it): for each enforcing workload, its inbound and outbound
 * rules in precedence order, each naming one shared peer set.
 *
 * Peer sets are computed once for the estate and named by their meaning, so the same
 * selector is the same set on every host and across versions: a label change becomes a
 * set-element change, and the rule count grows with rules, never with peers.
 */
import { AddressSet, parseAddressEntry, type Interval } from '../addresses.js';
import type { EnforcementMode, RuleAction, ServicePort, Workload } from '../model.js';
import {
  clauseMatches,
  type ResolvedActors,
  type ResolvedAlwaysAllowed,
  type ResolvedPolicy,
  type ResolvedRule,
  type WorkloadClause,
} from '../resolve.js';

export interface PeerSet {
  /** Stable name derived from `key`: `p_` and 12 hex digits. */
  readonly id: string;
  /** Canonical meaning, e.g. `app=shop&env=prod&role=web | ip-list:corporate`. */
  readonly key: string;
  readonly label: string;
  readonly addresses: AddressSet;
}

export type Direction = 'inbound' | 'outbound';

export interface CompiledRule {
  readonly ruleId: string;
  readonly action: RuleAction;
  /** The addresses on the other end: sources for inbound rules, destinations for outbound. */
  readonly peer: string;
  readonly services: 'all' | readonly ServicePort[];
}

export interface EndpointPolicy {
  readonly workload: string;
  readonly mode: EnforcementMode;
  /** In the order a firewall must evaluate them: override-deny, allow, deny; then policy order. */
  readonly inbound: readonly CompiledRule[];
  readonly outbound: readonly CompiledRule[];
  /** Ids of the peer sets the rules name, sorted. */
  readonly peerSets: readonly string[];
  readonly alwaysAllowed: readonly ResolvedAlwaysAllowed[];
}

export interface CompiledPolicy {
  readonly endpoints: ReadonlyMap<string, EndpointPolicy>;
  readonly peerSets: ReadonlyMap<string, PeerSet>;
}

const ACTION_RANK: Record<RuleAction, number> = { 'override-deny': 0, allow: 1, deny: 2 };

/** 48 bits of FNV-1a, as hex: short, stable, and the same on every host. */
export function stableId(text: string): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x01000193 ^ 0x5bd1e995) >>> 0;
  }
  return (h1.toString(16).padStart(8, '0') + h2.toString(16).padStart(8, '0')).slice(0, 12);
}

export function enforces(w: Workload): boolean {
  return w.managed && w.mode !== 'idle';
}

/**
 * Finds the workloads a clause selects, using a label index so that a clause costs about
 * the size of its smallest posting list rather than the size of the estate.
 */
class WorkloadIndex {
  private readonly byLabel = new Map<string, number[]>();
  private readonly byName = new Map<string, number>();
  private readonly all: number[];
  private readonly clauseCache = new Map<string, readonly number[]>();
  readonly intervals: { v4: Interval[]; v6: Interval[] }[];

  constructor(
    readonly workloads: readonly Workload[],
    private readonly userGroupMembers: ResolvedPolicy['userGroupMembers'],
  ) {
    this.all = workloads.map((_, i) => i);
    this.intervals = workloads.map((w, i) => {
      this.byName.set(w.name, i);
      for (const [k, v] of Object.entries(w.labels)) {
        const key = `${k}\u0000${v}`;
        let list = this.byLabel.get(key);
        if (!list) this.byLabel.set(key, (list = []));
        list.push(i);
      }
      const own = { v4: [] as Interval[], v6: [] as Interval[] };
      for (const a of w.addresses) {
        const p = parseAddressEntry(a);
        (p.family === 4 ? own.v4 : own.v6).push(p.interval);
      }
      return own;
    });
  }

  select(clause: WorkloadClause): readonly number[] {
    const cached = this.clauseCache.get(clause.key);
    if (cached) return cached;
    let candidates: readonly number[] | null = null;
    if (clause.names) {
      candidates = [...clause.names].map((n) => this.byName.get(n)).filter((i): i is number => i !== undefined);
    }
    for (const [k, values] of clause.labels) {
      let size = 0;
      const lists: number[][] = [];
      for (const v of values) {
        const list = this.byLabel.get(`${k}\u0000${v}`);
        if (list) {
          lists.push(list);
          size += list.length;
        }
      }
      if (candidates === null || size < candidates.length) {
        candidates = lists.length === 1 ? lists[0]! : lists.flat().sort((a, b) => a - b);
      }
    }
    const pool = candidates ?? this.all;
    const result = pool === this.all && clause.labels.size === 0 && clause.userGroup === null
      ? this.all
      : pool.filter((i) => clauseMatches(clause, this.workloads[i]!, this.userGroupMembers));
    this.clauseCache.set(clause.key, result);
    return result;
  }

  selectActors(actors: ResolvedActors): readonly number[] {
    if (actors.clauses.length === 1) return this.select(actors.clauses[0]!);
    const seen = new Set<number>();
    for (const c of actors.clauses) for (const i of this.select(c)) seen.add(i);
    return [...seen].sort((a, b) => a - b);
  }
}

/**
 * Compiles a resolved policy into every enforcing workload's endpoint policy.
 * Workloads that enforce nothing (idle, unmanaged) get an endpoint policy with no rules,
 * so the agent knows to remove its table.
 */
export function compilePolicy(policy: ResolvedPolicy): CompiledPolicy {
  const index = new WorkloadIndex(policy.workloads, policy.userGroupMembers);
  const peerSets = new Map<string, PeerSet>();
  const peerIdByKey = new Map<string, string>();

  const peerSetFor = (actors: ResolvedActors): string => {
    const known = peerIdByKey.get(actors.key);
    if (known) return known;
    let id = `p_${stableId(actors.key)}`;
    for (let n = 2; peerSets.has(id); n++) id = `p_${stableId(`${actors.key}#${n}`)}`;
    const v4: Interval[] = [...actors.ipAddresses.v4];
    const v6: Interval[] = [...actors.ipAddresses.v6];
    for (const i of index.selectActors(actors)) {
      const own = index.intervals[i]!;
      for (const iv of own.v4) v4.push(iv);
      for (const iv of own.v6) v6.push(iv);
    }
    peerSets.set(id, { id, key: actors.key, label: actors.label, addresses: AddressSet.fromIntervals(v4, v6) });
    peerIdByKey.set(actors.key, id);
    return id;
  };

  const inbound: CompiledRule[][] = policy.workloads.map(() => []);
  const outbound: CompiledRule[][] = policy.workloads.map(() => []);
  const enforcing = policy.workloads.map(enforces);

  const place = (rule: ResolvedRule, local: ResolvedActors, peer: ResolvedActors, into: CompiledRule[][]): void => {
    let compiled: CompiledRule | null = null;
    for (const i of index.selectActors(local)) {
      if (!enforcing[i]) continue;
      compiled ??= { ruleId: rule.id, action: rule.action, peer: peerSetFor(peer), services: rule.services };
      into[i]!.push(compiled);
    }
  };

  for (const rule of policy.rules) {
    place(rule, rule.destinations, rule.sources, inbound);
    place(rule, rule.sources, rule.destinations, outbound);
  }

  const ruleOrder = new Map(policy.rules.map((r) => [r.id, r.order]));
  const byPrecedence = (a: CompiledRule, b: CompiledRule): number =>
    ACTION_RANK[a.action] - ACTION_RANK[b.action] || ruleOrder.get(a.ruleId)! - ruleOrder.get(b.ruleId)!;

  const endpoints = new Map<string, EndpointPolicy>();
  policy.workloads.forEach((w, i) => {
    const inRules = enforcing[i] ? inbound[i]!.sort(byPrecedence) : [];
    const outRules = enforcing[i] ? outbound[i]!.sort(byPrecedence) : [];
    const sets = new Set<string>();
    for (const r of inRules) sets.add(r.peer);
    for (const r of outRules) sets.add(r.peer);
    endpoints.set(w.name, {
      workload: w.name,
      mode: enforcing[i] ? w.mode : 'idle',
      inbound: inRules,
      outbound: outRules,
      peerSets: [...sets].sort(),
      alwaysAllowed: enforcing[i] ? policy.alwaysAllowed : [],
    });
  });
  return { endpoints, peerSets };
}

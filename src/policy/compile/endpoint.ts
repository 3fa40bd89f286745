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
import { stableId } from './stable-id.js';
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

export function enforces(w: Workload): boolean {
  return w.managed && w.mode !== 'idle';
}

/**
 * Finds the workloads a clause selects, using a label index so that a clause costs about
 * the size of its smallest posting list rather than the size of the estate. Selections are
 * cached per clause and per actor side; `replace` keeps both exact when a workload changes.
 */
class WorkloadIndex {
  private readonly byLabel = new Map<string, number[]>();
  private readonly byName = new Map<string, number>();
  private readonly all: number[];
  private readonly clauseCache = new Map<
    string,
    { clause: WorkloadClause; result: readonly number[] }
  >();
  private readonly actorsCache = new Map<
    string,
    { actors: ResolvedActors; result: readonly number[] }
  >();
  readonly workloads: Workload[];
  readonly intervals: { v4: Interval[]; v6: Interval[] }[];

  constructor(
    workloads: readonly Workload[],
    private readonly userGroupMembers: ResolvedPolicy['userGroupMembers'],
  ) {
    this.workloads = workloads.slice();
    this.all = workloads.map((_, i) => i);
    this.intervals = workloads.map((w, i) => {
      this.byName.set(w.name, i);
      for (const k in w.labels) {
        const key = `${k}\u0000${w.labels[k]}`;
        let list = this.byLabel.get(key);
        if (!list) this.byLabel.set(key, (list = []));
        list.push(i);
      }
      return ownIntervals(w);
    });
  }

  indexOf(name: string): number | undefined {
    return this.byName.get(name);
  }

  select(clause: WorkloadClause): readonly number[] {
    const cached = this.clauseCache.get(clause.key);
    if (cached) return cached.result;
    let candidates: readonly number[] | null = null;
    if (clause.names) {
      candidates = [...clause.names]
        .map((n) => this.byName.get(n))
        .filter((i): i is number => i !== undefined);
      candidates = [...new Set(candidates)].sort((a, b) => a - b);
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
    const result =
      pool === this.all && clause.labels.size === 0 && clause.userGroup === null
        ? this.all
        : pool.filter((i) => clauseMatches(clause, this.workloads[i]!, this.userGroupMembers));
    this.clauseCache.set(clause.key, { clause, result });
    return result;
  }

  selectActors(actors: ResolvedActors): readonly number[] {
    if (actors.clauses.length === 1) return this.select(actors.clauses[0]!);
    if (actors.clauses.length === 0) return [];
    const cached = this.actorsCache.get(actors.key);
    if (cached) return cached.result;
    const seen = new Set<number>();
    for (const c of actors.clauses) for (const i of this.select(c)) seen.add(i);
    const result = [...seen].sort((a, b) => a - b);
    this.actorsCache.set(actors.key, { actors, result });
    return result;
  }

  /** Whether a side's workload clauses select this workload. */
  selectsWorkload(actors: ResolvedActors, w: Workload): boolean {
    for (const c of actors.clauses) if (clauseMatches(c, w, this.userGroupMembers)) return true;
    return false;
  }

  /** Replaces workload `i` (same name), keeping the label index and the caches exact. */
  replace(i: number, next: Workload): void {
    const prev = this.workloads[i]!;
    for (const k in prev.labels) {
      if (next.labels[k] === prev.labels[k]) continue;
      const list = this.byLabel.get(`${k}\u0000${prev.labels[k]}`);
      if (list) {
        const at = lowerBound(list, i);
        if (list[at] === i) list.splice(at, 1);
      }
    }
    for (const k in next.labels) {
      if (next.labels[k] === prev.labels[k]) continue;
      const key = `${k}\u0000${next.labels[k]}`;
      let list = this.byLabel.get(key);
      if (!list) this.byLabel.set(key, (list = []));
      const at = lowerBound(list, i);
      if (list[at] !== i) list.splice(at, 0, i);
    }
    this.workloads[i] = next;
    this.intervals[i] = ownIntervals(next);
    const m = this.userGroupMembers;
    for (const [key, entry] of this.clauseCache) {
      if (clauseMatches(entry.clause, prev, m) || clauseMatches(entry.clause, next, m))
        this.clauseCache.delete(key);
    }
    for (const [key, entry] of this.actorsCache) {
      if (this.selectsWorkload(entry.actors, prev) || this.selectsWorkload(entry.actors, next))
        this.actorsCache.delete(key);
    }
  }
}

function lowerBound(list: readonly number[], value: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function ownIntervals(w: Workload): { v4: Interval[]; v6: Interval[] } {
  const own = { v4: [] as Interval[], v6: [] as Interval[] };
  for (const a of w.addresses) {
    const p = parseAddressEntry(a);
    (p.family === 4 ? own.v4 : own.v6).push(p.interval);
  }
  return own;
}

/**
 * What a compile leaves behind so that a later change to a few workloads can be compiled
 * incrementally. Kept off the public types (in a WeakMap keyed by the result), and used once:
 * an incremental recompile takes it over for its own result.
 */
interface CompileState {
  readonly rules: readonly ResolvedRule[];
  /** The rules in the order a firewall evaluates them: override-deny, allow, deny; then policy order. */
  readonly byPrecedence: readonly ResolvedRule[];
  /** Rule -> its position in `rules`. */
  readonly position: ReadonlyMap<ResolvedRule, number>;
  readonly alwaysAllowed: readonly ResolvedAlwaysAllowed[];
  readonly userGroupMembers: ResolvedPolicy['userGroupMembers'];
  readonly index: WorkloadIndex;
  readonly enforcing: boolean[];
  /** Per rule (by position in `rules`), the compiled rule shared by every host it lands on. */
  readonly inboundRule: (CompiledRule | null)[];
  readonly outboundRule: (CompiledRule | null)[];
  /** Peer set id -> the rule side it stands for. */
  readonly peerActors: Map<string, ResolvedActors>;
  readonly peerIdByKey: Map<string, string>;
  /** Whether two peer set keys ever hashed to the same id (then ids depend on order). */
  collided: boolean;
  consumed: boolean;
}

const compileStates = new WeakMap<CompiledPolicy, CompileState>();

function precedenceOrder(
  rules: readonly ResolvedRule[],
  position: ReadonlyMap<ResolvedRule, number>,
): ResolvedRule[] {
  return rules
    .slice()
    .sort(
      (a, b) =>
        ACTION_RANK[a.action] - ACTION_RANK[b.action] ||
        a.order - b.order ||
        position.get(a)! - position.get(b)!,
    );
}

function buildPeerSet(
  state: Pick<CompileState, 'index'>,
  id: string,
  actors: ResolvedActors,
): PeerSet {
  const v4: Interval[] = [...actors.ipAddresses.v4];
  const v6: Interval[] = [...actors.ipAddresses.v6];
  const intervals = state.index.intervals;
  for (const i of state.index.selectActors(actors)) {
    const own = intervals[i]!;
    for (const iv of own.v4) v4.push(iv);
    for (const iv of own.v6) v6.push(iv);
  }
  return { id, key: actors.key, label: actors.label, addresses: AddressSet.fromIntervals(v4, v6) };
}

function makeEndpoint(
  w: Workload,
  enforcing: boolean,
  inRules: CompiledRule[],
  outRules: CompiledRule[],
  alwaysAllowed: readonly ResolvedAlwaysAllowed[],
): EndpointPolicy {
  const sets = new Set<string>();
  for (const r of inRules) sets.add(r.peer);
  for (const r of outRules) sets.add(r.peer);
  return {
    workload: w.name,
    mode: enforcing ? w.mode : 'idle',
    inbound: enforcing ? inRules : [],
    outbound: enforcing ? outRules : [],
    peerSets: [...sets].sort(),
    alwaysAllowed: enforcing ? alwaysAllowed : [],
  };
}

/**
 * Compiles a resolved policy into every enforcing workload's endpoint policy.
 * Workloads that enforce nothing (idle, unmanaged) get an endpoint policy with no rules,
 * so the agent knows to remove its table.
 */
export function compilePolicy(policy: ResolvedPolicy): CompiledPolicy {
  const index = new WorkloadIndex(policy.workloads, policy.userGroupMembers);
  const peerSets = new Map<string, PeerSet>();
  const enforcing = policy.workloads.map(enforces);
  const position = new Map<ResolvedRule, number>();
  policy.rules.forEach((r, i) => position.set(r, i));
  const state: CompileState = {
    rules: policy.rules,
    byPrecedence: precedenceOrder(policy.rules, position),
    position,
    alwaysAllowed: policy.alwaysAllowed,
    userGroupMembers: policy.userGroupMembers,
    index,
    enforcing,
    inboundRule: policy.rules.map(() => null),
    outboundRule: policy.rules.map(() => null),
    peerActors: new Map(),
    peerIdByKey: new Map(),
    collided: false,
    consumed: false,
  };

  const anyEnforcing = (indices: readonly number[]): boolean => {
    for (const i of indices) if (enforcing[i]) return true;
    return false;
  };

  // First pass, in policy order: the peer sets some enforcing host needs. Creating them in
  // this order keeps ids (on a hash collision) and the map's order independent of precedence.
  policy.rules.forEach((rule, r) => {
    if (anyEnforcing(index.selectActors(rule.destinations))) {
      const peer = peerSetFor(state, peerSets, rule.sources);
      state.inboundRule[r] = {
        ruleId: rule.id,
        action: rule.action,
        peer,
        services: rule.services,
      };
    }
    if (anyEnforcing(index.selectActors(rule.sources))) {
      const peer = peerSetFor(state, peerSets, rule.destinations);
      state.outboundRule[r] = {
        ruleId: rule.id,
        action: rule.action,
        peer,
        services: rule.services,
      };
    }
  });

  // Second pass, in precedence order: each host's rule lists come out already sorted.
  const inbound: CompiledRule[][] = policy.workloads.map(() => []);
  const outbound: CompiledRule[][] = policy.workloads.map(() => []);
  for (const rule of state.byPrecedence) {
    const r = position.get(rule)!;
    const inRule = state.inboundRule[r];
    if (inRule)
      for (const i of index.selectActors(rule.destinations))
        if (enforcing[i]) inbound[i]!.push(inRule);
    const outRule = state.outboundRule[r];
    if (outRule)
      for (const i of index.selectActors(rule.sources))
        if (enforcing[i]) outbound[i]!.push(outRule);
  }

  const endpoints = new Map<string, EndpointPolicy>();
  policy.workloads.forEach((w, i) => {
    endpoints.set(
      w.name,
      makeEndpoint(w, enforcing[i]!, inbound[i]!, outbound[i]!, policy.alwaysAllowed),
    );
  });
  const compiled: CompiledPolicy = { endpoints, peerSets };
  compileStates.set(compiled, state);
  return compiled;
}

function peerSetFor(
  state: CompileState,
  peerSets: Map<string, PeerSet>,
  actors: ResolvedActors,
): string {
  const known = state.peerIdByKey.get(actors.key);
  if (known) return known;
  let id = `p_${stableId(actors.key)}`;
  for (let n = 2; peerSets.has(id); n++) {
    state.collided = true;
    id = `p_${stableId(`${actors.key}#${n}`)}`;
  }
  peerSets.set(id, buildPeerSet(state, id, actors));
  state.peerIdByKey.set(actors.key, id);
  state.peerActors.set(id, actors);
  return id;
}

export interface IncrementalCompile {
  readonly compiled: CompiledPolicy;
  /** True when the change could not be compiled incrementally and a full compile ran. */
  readonly full: boolean;
  /** Peer sets whose addresses changed, that appeared, or that are no longer needed; sorted. */
  readonly changedPeerSets: readonly string[];
  /** Workloads whose own endpoint policy (rules, mode) changed; sorted by name. */
  readonly changedEndpoints: readonly string[];
  /**
   * Workloads whose firewall state may have changed: the changed endpoints and every
   * enforcing workload that names a changed peer set. Sorted by name.
   */
  readonly affectedWorkloads: readonly string[];
}

/** Beyond this many changed workloads a full compile is about as fast and simpler. */
const INCREMENTAL_LIMIT = 1000;

function sameRules(a: readonly ResolvedRule[], b: readonly ResolvedRule[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (
      x.id !== y.id ||
      x.action !== y.action ||
      x.order !== y.order ||
      x.sources.key !== y.sources.key ||
      x.destinations.key !== y.destinations.key ||
      !sameAddresses(x.sources.ipAddresses, y.sources.ipAddresses) ||
      !sameAddresses(x.destinations.ipAddresses, y.destinations.ipAddresses) ||
      (x.services !== y.services && JSON.stringify(x.services) !== JSON.stringify(y.services))
    ) {
      return false;
    }
  }
  return true;
}

function sameIntervals(a: readonly Interval[], b: readonly Interval[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++)
    if (a[i]!.start !== b[i]!.start || a[i]!.end !== b[i]!.end) return false;
  return true;
}

function sameAddresses(a: AddressSet, b: AddressSet): boolean {
  return a === b || (sameIntervals(a.v4, b.v4) && sameIntervals(a.v6, b.v6));
}

function fullRecompile(next: ResolvedPolicy): IncrementalCompile {
  const compiled = compilePolicy(next);
  return {
    compiled,
    full: true,
    changedPeerSets: [...compiled.peerSets.keys()].sort(),
    changedEndpoints: [...compiled.endpoints.keys()].sort(),
    affectedWorkloads: [...compiled.endpoints.keys()].sort(),
  };
}

/**
 * For each of `ids`, the enforcing workloads whose rules name it: the hosts on the local side
 * of every compiled rule with that peer set.
 */
function peerSetUsers(state: CompileState, ids: ReadonlySet<string>): Map<string, Set<number>> {
  const users = new Map<string, Set<number>>();
  for (const id of ids) users.set(id, new Set());
  const visit = (
    slot: (CompiledRule | null)[],
    local: (rule: ResolvedRule) => ResolvedActors,
  ): void => {
    slot.forEach((compiled, r) => {
      if (!compiled) return;
      const into = users.get(compiled.peer);
      if (!into) return;
      for (const i of state.index.selectActors(local(state.rules[r]!)))
        if (state.enforcing[i]) into.add(i);
    });
  };
  visit(state.inboundRule, (rule) => rule.destinations);
  visit(state.outboundRule, (rule) => rule.sources);
  return users;
}

/**
 * Recompiles after a few workloads changed (labels, mode, addresses, logged-in users),
 * touching only what they can affect: the changed workloads' own rules, and the peer sets
 * that selected them before or select them now. The result equals `compilePolicy(next)`
 * (same endpoints, same peer sets; new peer sets come last in the map's order).
 *
 * `previous` must come from `compilePolicy` or from this function, and `next` must differ
 * from the policy it was compiled from only in the workloads (same names, same order; any
 * workload object that is not the same object as before counts as changed, whatever
 * `changedWorkloads` says). Otherwise, or when many workloads changed, or when `previous`
 * was already used for an incremental recompile, this falls back to a full compile and
 * says so in `full`.
 */
export function recompileAfterLabelChange(
  previous: CompiledPolicy,
  next: ResolvedPolicy,
  changedWorkloads: Iterable<string>,
): IncrementalCompile {
  const state = compileStates.get(previous);
  if (!state || state.consumed || state.collided) return fullRecompile(next);
  const index = state.index;
  if (next.workloads.length !== index.workloads.length) return fullRecompile(next);
  if (next.userGroupMembers !== state.userGroupMembers) {
    const a = state.userGroupMembers;
    const b = next.userGroupMembers;
    if (a.size !== b.size) return fullRecompile(next);
    for (const [g, members] of a) {
      const other = b.get(g);
      if (!other || other.size !== members.size || [...members].some((m) => !other.has(m)))
        return fullRecompile(next);
    }
  }
  if (!sameRules(state.rules, next.rules)) return fullRecompile(next);
  if (
    next.alwaysAllowed !== state.alwaysAllowed &&
    JSON.stringify(next.alwaysAllowed, (_k, v: unknown) =>
      typeof v === 'bigint' ? v.toString() : v,
    ) !==
      JSON.stringify(state.alwaysAllowed, (_k, v: unknown) =>
        typeof v === 'bigint' ? v.toString() : v,
      )
  ) {
    return fullRecompile(next);
  }

  // Which workloads changed: the ones named, and any whose object is not the one compiled.
  const changed = new Set<number>();
  for (const name of changedWorkloads) {
    const i = index.indexOf(name);
    if (i === undefined) return fullRecompile(next);
    changed.add(i);
  }
  for (let i = 0; i < next.workloads.length; i++) {
    const w = next.workloads[i]!;
    if (w !== index.workloads[i]) {
      if (w.name !== index.workloads[i]!.name) return fullRecompile(next);
      changed.add(i);
      if (changed.size > INCREMENTAL_LIMIT) return fullRecompile(next);
    }
  }
  if (changed.size > INCREMENTAL_LIMIT) return fullRecompile(next);

  // From here on the state is taken over by the new result.
  state.consumed = true;
  const peerSets = new Map(previous.peerSets);
  const endpoints = new Map(previous.endpoints);
  const touchedSets = new Set<string>();

  // 1. The label index and the peer sets that selected a changed workload before or now.
  for (const i of changed) {
    const prev = index.workloads[i]!;
    const now = next.workloads[i]!;
    for (const [id, actors] of state.peerActors) {
      if (touchedSets.has(id)) continue;
      if (index.selectsWorkload(actors, prev) || index.selectsWorkload(actors, now))
        touchedSets.add(id);
    }
    index.replace(i, now);
    state.enforcing[i] = enforces(now);
  }
  const changedPeerSets = new Set<string>();
  for (const id of touchedSets) {
    const before = peerSets.get(id)!;
    const after = buildPeerSet(state, id, state.peerActors.get(id)!);
    if (!sameAddresses(before.addresses, after.addresses)) {
      peerSets.set(id, after);
      changedPeerSets.add(id);
    }
  }

  // 2. The changed workloads' own rules, in precedence order.
  const position = state.position;
  const createdSets: string[] = [];
  const ensureRule = (rule: ResolvedRule, r: number, inbound: boolean): CompiledRule => {
    const slot = inbound ? state.inboundRule : state.outboundRule;
    const existing = slot[r];
    if (existing) return existing;
    const peerActors = inbound ? rule.sources : rule.destinations;
    const known = state.peerIdByKey.has(peerActors.key);
    const peer = peerSetFor(state, peerSets, peerActors);
    if (!known) createdSets.push(peer);
    const compiled: CompiledRule = {
      ruleId: rule.id,
      action: rule.action,
      peer,
      services: rule.services,
    };
    slot[r] = compiled;
    return compiled;
  };
  const changedEndpoints = new Set<number>();
  const maybeUnused = new Set<string>();
  for (const i of changed) {
    const w = index.workloads[i]!;
    const inRules: CompiledRule[] = [];
    const outRules: CompiledRule[] = [];
    if (state.enforcing[i]) {
      // Many rules share a side (the same selector in the same scope): test each side once.
      const memo = new Map<string, boolean>();
      const selects = (actors: ResolvedActors): boolean => {
        let hit = memo.get(actors.key);
        if (hit === undefined) memo.set(actors.key, (hit = index.selectsWorkload(actors, w)));
        return hit;
      };
      for (const rule of state.byPrecedence) {
        const r = position.get(rule)!;
        if (selects(rule.destinations)) inRules.push(ensureRule(rule, r, true));
        if (selects(rule.sources)) outRules.push(ensureRule(rule, r, false));
      }
    }
    const before = previous.endpoints.get(w.name)!;
    const after = makeEndpoint(w, state.enforcing[i]!, inRules, outRules, state.alwaysAllowed);
    // Peer sets this host no longer names may be named by no host at all now.
    for (const id of before.peerSets) if (!after.peerSets.includes(id)) maybeUnused.add(id);
    if (!sameEndpoint(before, after)) {
      endpoints.set(w.name, after);
      changedEndpoints.add(i);
    }
  }
  for (const id of createdSets) changedPeerSets.add(id);

  // 3. Peer sets no host names any more: a full compile would not have made them.
  const users = peerSetUsers(state, new Set([...maybeUnused, ...changedPeerSets]));
  for (const id of maybeUnused) {
    if (users.get(id)!.size > 0) continue;
    const actors = state.peerActors.get(id)!;
    peerSets.delete(id);
    state.peerActors.delete(id);
    state.peerIdByKey.delete(actors.key);
    changedPeerSets.add(id);
    state.inboundRule.forEach((c, r) => {
      if (c?.peer === id) state.inboundRule[r] = null;
    });
    state.outboundRule.forEach((c, r) => {
      if (c?.peer === id) state.outboundRule[r] = null;
    });
  }

  const affected = new Set<number>(changedEndpoints);
  for (const id of changedPeerSets) for (const i of users.get(id) ?? []) affected.add(i);
  const names = (set: Iterable<number>): string[] =>
    [...set].map((i) => index.workloads[i]!.name).sort();

  const compiled: CompiledPolicy = { endpoints, peerSets };
  const nextState: CompileState = { ...state, consumed: false };
  compileStates.set(compiled, nextState);
  return {
    compiled,
    full: false,
    changedPeerSets: [...changedPeerSets].sort(),
    changedEndpoints: names(changedEndpoints),
    affectedWorkloads: names(affected),
  };
}

function sameEndpoint(a: EndpointPolicy, b: EndpointPolicy): boolean {
  const sameList = (x: readonly CompiledRule[], y: readonly CompiledRule[]): boolean =>
    x.length === y.length && x.every((r, k) => r === y[k]);
  return (
    a.mode === b.mode &&
    sameList(a.inbound, b.inbound) &&
    sameList(a.outbound, b.outbound) &&
    (a.alwaysAllowed === b.alwaysAllowed ||
      (a.alwaysAllowed.length === 0 && b.alwaysAllowed.length === 0)) &&
    a.peerSets.length === b.peerSets.length &&
    a.peerSets.every((id, k) => id === b.peerSets[k])
  );
}

/**
 * The real `decide()`, asked what a policy does to observed flows with every workload in full
 * enforcement: the strictest reading, so what it allows is allowed in any mode.
 *
 * A million flows cannot each be decided (every call parses both addresses and walks every
 * rule). Two things keep it exact and fast:
 * - flows whose ends are alike to the policy get one decision: an end is described by what
 *   `decide()` reads of it (the labels clauses read, its name if a clause names it, the user
 *   groups clauses name that it belongs to, which IP lists named by rules and which
 *   always-allowed endpoints hold its address); a flow by its two ends, its service (the
 *   process only if some entry names one) and whether both ends are one workload;
 * - `decide()` gets the policy with only the rules that could match a side of the flow, in
 *   their order: for the destination's inbound side, rules whose destinations select it and
 *   whose sources select or hold the source; for the source's outbound side, the converse.
 *   decide() consults no other rule, so its answer is the same.
 * test/policy/generate-judge.test.ts checks both against plain `decide()` on random policies.
 */
import { AddressSet } from '../addresses.js';
import { decide, type Flow, type FlowDecision, type SideJudgement } from '../decide.js';
import type { Policy, ServicePort, Workload } from '../model.js';
import {
  clauseMatches,
  resolvePolicy,
  type ResolvedPolicy,
  type ResolvedRule,
  type WorkloadClause,
} from '../resolve.js';
import { AddressClasses } from './address-classes.js';
import type { Endpoint } from './endpoints.js';
import { isTransport, type ObservedService } from './types.js';

/** The policy with every workload managed and in full enforcement. */
export function fullEnforcement(policy: Policy): Policy {
  return {
    ...policy,
    workloads: policy.workloads.map((w) => ({ ...w, mode: 'full', managed: true })),
  };
}

/** A side's judgement, without the workload's name: flows of alike ends share one. */
export type SideVerdict = Pick<SideJudgement, 'side' | 'outcome' | 'decidedBy'>;

/** decide()'s answer, as much of it as holds for every flow of the same class. */
export interface Verdict {
  readonly decision: FlowDecision['decision'];
  readonly decidedBy: FlowDecision['decidedBy'];
  readonly side: FlowDecision['side'];
  readonly inbound: SideVerdict | null;
  readonly outbound: SideVerdict | null;
}

const SOURCES = 0;
const DESTINATIONS = 1;

/** A clause of a rule side, as the index files it. */
interface Entry {
  readonly rule: number;
  readonly side: typeof SOURCES | typeof DESTINATIONS;
  readonly clause: WorkloadClause;
}

/** Rule indexes that select a class of workloads, per side, ascending. */
interface Selection {
  readonly asSource: readonly number[];
  readonly asDestination: readonly number[];
}

/** What the judge knows of an end. */
interface EndClass {
  /** Equal for ends decide() cannot tell apart. */
  readonly id: number;
  readonly selection: Selection | null;
  /** Rule indexes whose sources' / destinations' IP lists hold the end's address. */
  readonly inSourceLists: readonly number[];
  readonly inDestinationLists: readonly number[];
  /**
   * The workload's number (-1 for an address): equal numbers make a flow a workload's own.
   * Read here, with the class, rather than from the ends' workloads on every decision.
   */
  readonly workload: number;
}

/** A clause is filed under each combination of its values when there are at most this many. */
const MAX_COMBINATIONS = 16;
/** A workload's used labels are looked up in every subset when there are at most this many. */
const MAX_SUBSET_LABELS = 12;

export class FullEnforcementJudge {
  /** The policy as decided: every workload managed, in full mode. Throws PolicyError if invalid. */
  readonly resolved: ResolvedPolicy;
  private readonly rules: readonly ResolvedRule[];
  /** Clauses by every combination of their labels (`app=x\u0001role=web`): exact hits. */
  private readonly composite = new Map<string, Entry[]>();
  /** Clauses with too many combinations, by their most selective label (checked on use). */
  private readonly bucketsRest = new Map<string, Entry[]>();
  /** Every labelled clause by its most selective label, for workloads with many labels. */
  private readonly bucketsAll = new Map<string, Entry[]>();
  /** Clauses without labels (all workloads, names, user groups): checked for every class. */
  private readonly unindexed: Entry[] = [];
  private readonly named = new Set<string>();
  private readonly userGroups: string[];
  /** The label keys some clause reads; no other label can tell two workloads apart. */
  private readonly usedKeys = new Set<string>();
  /** Whether some service entry names a process, so that the process can matter. */
  private readonly processMatters: boolean;
  private readonly addresses: AddressClasses;
  /** Per IP list (by index): the rules naming it on their sources / destinations. */
  private readonly setRules: [number[][], number[][]] = [[], []];
  private readonly ids = new Map<string, number>();
  /** Workload name -> its number in EndClass.workload. */
  private readonly workloadNumbers = new Map<string, number>();
  private readonly selectorClasses = new Map<string, number>();
  private readonly selections = new Map<number, Selection>();
  private readonly listRules = new Map<number, [number[], number[]]>();
  /** By the end's ordinal: an array index, not a hash lookup, per flow. */
  private readonly endClasses: (EndClass | undefined)[] = [];
  /**
   * By the source's end class (an array index), the destination's, then the service key:
   * small integers all, but for process-bound and ICMP services (see serviceKey).
   */
  private readonly decisions: (Map<number, Map<number | string, Verdict>> | undefined)[] = [];
  private computed = 0;

  constructor(policy: Policy) {
    this.resolved = resolvePolicy(fullEnforcement(policy));
    this.rules = this.resolved.rules;
    const labelCount = new Map<string, number>();
    for (const w of this.resolved.workloads)
      for (const [k, v] of Object.entries(w.labels))
        labelCount.set(`${k}=${v}`, (labelCount.get(`${k}=${v}`) ?? 0) + 1);
    const userGroups = new Set<string>();
    // IP lists by name, each with the rules naming it per side. A side's addresses are the
    // union of its lists', so classing addresses by list (not by each side's combination of
    // lists, which would repeat a list's addresses in every combination) is exact.
    const lists = new Map<string, number>();
    this.rules.forEach((r, i) => {
      ([SOURCES, DESTINATIONS] as const).forEach((side) => {
        const actors = side === SOURCES ? r.sources : r.destinations;
        for (const c of actors.clauses) {
          if (c.names) for (const n of c.names) this.named.add(n);
          if (c.userGroup !== null) userGroups.add(c.userGroup);
          for (const k of c.labels.keys()) this.usedKeys.add(k);
          this.index({ rule: i, side, clause: c }, labelCount);
        }
        for (const name of actors.ipLists) {
          let index = lists.get(name);
          if (index === undefined) {
            lists.set(name, (index = lists.size));
            this.setRules[0].push([]);
            this.setRules[1].push([]);
          }
          const rules = this.setRules[side][index]!;
          if (rules[rules.length - 1] !== i) rules.push(i);
        }
      });
    });
    const listByName = new Map(this.resolved.source.ipLists.map((l) => [l.name, l]));
    const listSets = [...lists.keys()].map((name) => {
      const l = listByName.get(name)!;
      return AddressSet.of(l.include, l.exclude);
    });
    this.userGroups = [...userGroups].sort();
    const bound = (ports: readonly ServicePort[]): boolean =>
      ports.some((p) => 'ports' in p && p.process !== undefined);
    this.processMatters =
      this.rules.some((r) => r.services !== 'all' && bound(r.services)) ||
      this.resolved.alwaysAllowed.some((a) => bound(a.ports));
    // Lists first, so that a list's index is its place in setRules; always-allowed after.
    this.addresses = new AddressClasses([
      ...listSets,
      ...this.resolved.alwaysAllowed.map((a) => a.addresses),
    ]);
  }

  private index(e: Entry, labelCount: ReadonlyMap<string, number>): void {
    const labels = [...e.clause.labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (labels.length === 0) {
      this.unindexed.push(e);
      return;
    }
    let best: { key: string; values: ReadonlySet<string>; count: number } | null = null;
    let combinations = 1;
    for (const [k, vs] of labels) {
      combinations *= vs.size;
      let count = 0;
      for (const v of vs) count += labelCount.get(`${k}=${v}`) ?? 0;
      if (!best || count < best.count) best = { key: k, values: vs, count };
    }
    const file = (map: Map<string, Entry[]>, key: string): void => {
      const list = map.get(key);
      if (list) list.push(e);
      else map.set(key, [e]);
    };
    for (const v of best!.values) file(this.bucketsAll, `${best!.key}=${v}`);
    if (combinations > MAX_COMBINATIONS) {
      for (const v of best!.values) file(this.bucketsRest, `${best!.key}=${v}`);
      return;
    }
    let keys = [''];
    for (const [k, vs] of labels)
      keys = keys.flatMap((prefix) =>
        [...vs].map((v) => `${prefix}${prefix ? '\u0001' : ''}${k}=${v}`),
      );
    for (const key of keys) file(this.composite, key);
  }

  private intern(text: string): number {
    let id = this.ids.get(text);
    if (id === undefined) this.ids.set(text, (id = this.ids.size));
    return id;
  }

  /**
   * What any clause can read of a workload: the labels clauses use, its name if a clause
   * names it, the user groups clauses name that it belongs to. Equal for workloads every
   * clause selects alike.
   */
  private selectorClass(w: Workload): number {
    let id = this.selectorClasses.get(w.name);
    if (id !== undefined) return id;
    const labels = Object.entries(w.labels)
      .filter(([k]) => this.usedKeys.has(k))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join('\u0001');
    const members = this.resolved.userGroupMembers;
    const users = this.userGroups
      .filter((g) => w.users.some((u) => members.get(g)?.has(u)))
      .join('\u0001');
    const name = this.named.has(w.name) ? w.name : '';
    id = this.intern(`w${labels}\u0002${name}\u0002${users}`);
    this.selectorClasses.set(w.name, id);
    return id;
  }

  /** The rules whose sources, and those whose destinations, select a workload (alike ones share). */
  private selection(w: Workload): Selection {
    const cls = this.selectorClass(w);
    const known = this.selections.get(cls);
    if (known) return known;
    const members = this.resolved.userGroupMembers;
    const found: [Set<number>, Set<number>] = [new Set(), new Set()];
    const consider = (e: Entry, check: boolean): void => {
      if (!check || clauseMatches(e.clause, w, members)) found[e.side].add(e.rule);
    };
    for (const e of this.unindexed) consider(e, true);
    const labels = Object.entries(w.labels)
      .filter(([k]) => this.usedKeys.has(k))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`);
    if (labels.length <= MAX_SUBSET_LABELS) {
      // Every subset of the workload's labels: a clause filed under it asks for exactly those.
      for (let mask = 1; mask < 1 << labels.length; mask++) {
        const key = labels.filter((_, i) => mask & (1 << i)).join('\u0001');
        for (const e of this.composite.get(key) ?? [])
          consider(e, e.clause.names !== null || e.clause.userGroup !== null);
      }
      for (const l of labels) for (const e of this.bucketsRest.get(l) ?? []) consider(e, true);
    } else {
      for (const l of labels) for (const e of this.bucketsAll.get(l) ?? []) consider(e, true);
    }
    const sorted = (s: Set<number>): number[] => [...s].sort((a, b) => a - b);
    const selection = { asSource: sorted(found[0]), asDestination: sorted(found[1]) };
    this.selections.set(cls, selection);
    return selection;
  }

  /** The rules whose sources' and destinations' IP lists hold the addresses of a class. */
  private inLists(cls: number): [number[], number[]] {
    let hit = this.listRules.get(cls);
    if (hit) return hit;
    const sets = this.addresses.setsOf(cls).filter((i) => i < this.setRules[0].length);
    const gather = (side: 0 | 1): number[] =>
      [...new Set(sets.flatMap((i) => this.setRules[side][i]!))].sort((a, b) => a - b);
    hit = [gather(SOURCES), gather(DESTINATIONS)];
    this.listRules.set(cls, hit);
    return hit;
  }

  private endClass(end: Endpoint): EndClass {
    let c = this.endClasses[end.ordinal];
    if (c) return c;
    const addressClass = this.addresses.classOf(end.family, end.value);
    const [inSourceLists, inDestinationLists] = this.inLists(addressClass);
    if (end.kind === 'address') {
      c = {
        id: this.intern(`a${addressClass}`),
        selection: null,
        inSourceLists,
        inDestinationLists,
        workload: -1,
      };
    } else {
      const w = this.workloadOf(end);
      let workload = this.workloadNumbers.get(w.name);
      if (workload === undefined)
        this.workloadNumbers.set(w.name, (workload = this.workloadNumbers.size));
      c = {
        id: this.intern(`${this.selectorClass(w)}@${addressClass}`),
        selection: this.selection(w),
        inSourceLists,
        inDestinationLists,
        workload,
      };
    }
    // Grown in order, so that the array stays a plain (packed) one.
    while (this.endClasses.length <= end.ordinal) this.endClasses.push(undefined);
    this.endClasses[end.ordinal] = c;
    return c;
  }

  /** decide() on the flow, every workload in full enforcement. */
  decide(source: Endpoint, destination: Endpoint, service: ObservedService): Verdict {
    const s = this.endClass(source);
    const d = this.endClass(destination);
    const self = s.workload >= 0 && s.workload === d.workload;
    while (this.decisions.length <= s.id) this.decisions.push(undefined); // grown in order
    let bySource = this.decisions[s.id];
    if (!bySource) this.decisions[s.id] = bySource = new Map();
    let byPair = bySource.get(d.id);
    if (!byPair) bySource.set(d.id, (byPair = new Map<number | string, Verdict>()));
    const key = this.serviceKey(service, self);
    let verdict = byPair.get(key);
    if (verdict) return verdict;
    // Outbound: the source's rules whose destinations select or hold the destination.
    // Inbound: the destination's rules whose sources select or hold the source.
    const asSource = s.selection?.asSource ?? [];
    const asDestination = d.selection?.asDestination ?? [];
    const outbound = intersect(
      asSource,
      union(d.selection?.asDestination ?? [], d.inDestinationLists),
    );
    const inbound = intersect(asDestination, union(s.selection?.asSource ?? [], s.inSourceLists));
    const rules = union(outbound, inbound).map((i) => this.rules[i]!);
    const src =
      source.kind === 'workload'
        ? { address: source.address, workload: this.workloadOf(source) }
        : { address: source.address };
    const dst =
      destination.kind === 'workload'
        ? { address: destination.address, workload: this.workloadOf(destination) }
        : { address: destination.address };
    const flow: Flow = isTransport(service)
      ? {
          source: src,
          destination: dst,
          proto: service.proto,
          port: service.port,
          process: service.process,
        }
      : { source: src, destination: dst, proto: service.proto, icmpType: service.icmpType };
    verdict = decide({ ...this.resolved, rules }, flow);
    byPair.set(key, verdict);
    this.computed++;
    return verdict;
  }

  /**
   * Equal for services decide() cannot tell apart in a flow. A port (most flows) is a number,
   * built without allocating, which the decision cache hashes for free; the rest is text.
   */
  private serviceKey(service: ObservedService, self: boolean): number | string {
    if (isTransport(service)) {
      if (service.process === undefined || !this.processMatters)
        return ((service.proto === 'udp' ? 65536 : 0) + service.port) * 2 + (self ? 1 : 0);
      return `${service.proto}${service.port}@${service.process}${self ? '!' : ''}`;
    }
    return `${service.proto}/${service.icmpType ?? ''}${self ? '!' : ''}`;
  }

  private workloadOf(end: Extract<Endpoint, { kind: 'workload' }>): Workload {
    const w = this.resolved.workloadByName.get(end.workload.name);
    if (!w) throw new Error(`workload "${end.workload.name}" is not in the judged policy`);
    return w;
  }

  /** How many distinct decisions were computed (the rest were shared). */
  get decisionsComputed(): number {
    return this.computed;
  }
}

function intersect(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i]! < b[j]!) i++;
    else if (a[i]! > b[j]!) j++;
    else {
      out.push(a[i]!);
      i++;
      j++;
    }
  }
  return out;
}

function union(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) out.push(a[i++]!);
    else if (i >= a.length || b[j]! < a[i]!) out.push(b[j++]!);
    else {
      out.push(a[i]!);
      i++;
      j++;
    }
  }
  return out;
}

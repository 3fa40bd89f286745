/**
 * The real `decide()`, asked what a policy does to observed flows with every workload in full
 * enforcement: the strictest reading, so what it allows is allowed in any mode.
 *
 * A million flows cannot each be decided (every call parses both addresses and walks every
 * rule). Two things keep it exact and fast:
 * - flows whose ends are alike to the policy get one decision: an end is described by what
 *   `decide()` reads of it (the rules whose sources and whose destinations select it, found
 *   from the labels clauses read, its name if a clause names it and the user groups clauses
 *   name that it belongs to; which IP lists named by rules and which always-allowed
 *   endpoints hold its address); a flow by its two ends, its service (the process only if
 *   some entry names one) and whether both ends are one workload;
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
import { TripleNumbers } from './triples.js';
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
  /** Equal for equal selections. */
  readonly id: number;
}

/** What the judge knows of a class of ends (ends decide() cannot tell apart). */
interface EndClass {
  /** The rules that select the end (a workload) as a source / as a destination. */
  readonly selection: Selection | null;
  /** The rules whose sources / destinations select or hold the end, as a peer matches them. */
  readonly asPeerSource: readonly number[];
  readonly asPeerDestination: readonly number[];
}

/** What the judge reads of a workload. */
interface WorkloadFacts {
  /** The judged policy's own (every workload in full enforcement). */
  readonly workload: Workload;
  /** Numbers the workloads in order of first sight: equal numbers make a flow a workload's own. */
  readonly number: number;
  readonly selection: Selection;
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
  /** The same, in order. */
  private readonly sortedUsedKeys: readonly string[];
  /** Whether some service entry names a process, so that the process can matter. */
  private readonly processMatters: boolean;
  private readonly addresses: AddressClasses;
  /** Per IP list (by index): the rules naming it on their sources / destinations. */
  private readonly setRules: [number[][], number[][]] = [[], []];
  /** Selector classes by their text (see selectorClass), and the rules that select each. */
  private readonly selectorIds = new Map<string, number>();
  private readonly selections = new Map<number, Selection>();
  /** Selections by their rules, numbered: equal for selector classes the rules treat alike. */
  private readonly selectionIds = new Map<string, number>();
  /** What the judge reads of each workload (by name), read once. */
  private readonly workloadFacts = new Map<string, WorkloadFacts>();
  private readonly listRules = new Map<number, [number[], number[]]>();
  /**
   * End classes, numbered by (address class, selection + 1 or 0 for an address). Workloads
   * that the same rules select, at addresses the same lists hold, are alike to decide(),
   * however their labels differ: with few rules, thousands of selector classes are a handful.
   */
  private readonly classNumbers = new TripleNumbers(256);
  private readonly classes: EndClass[] = [];
  /**
   * By the end's ordinal (an array index per flow, not a hash lookup): its class id, and its
   * workload's number (-1 for an address), equal numbers making a flow a workload's own;
   * -1 before the end is first seen.
   */
  private readonly endClassIds: number[] = [];
  private readonly endWorkloads: number[] = [];
  /** By the end's ordinal: what the judge read of its workload (null for an address). */
  private readonly endFacts: (WorkloadFacts | null)[] = [];
  /** Services decide() tells apart, numbered (see serviceNumber). */
  private readonly serviceTexts = new Map<string, number>();
  /** Numbers (source class, destination class, service number and selfness) by first sight. */
  private readonly verdictNumbers = new TripleNumbers(1024);
  private readonly verdicts: Verdict[] = [];

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
    this.sortedUsedKeys = [...this.usedKeys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
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

  /**
   * What any clause can read of a workload: the labels clauses use, its name if a clause
   * names it, the user groups clauses name that it belongs to. Equal for workloads every
   * clause selects alike.
   */
  private selectorClass(w: Workload, usedLabels: readonly string[]): number {
    const labels = usedLabels.join('\u0001');
    const members = this.resolved.userGroupMembers;
    const users = this.userGroups
      .filter((g) => w.users.some((u) => members.get(g)?.has(u)))
      .join('\u0001');
    const name = this.named.has(w.name) ? w.name : '';
    return intern(this.selectorIds, `w${labels}\u0002${name}\u0002${users}`);
  }

  /** The rules whose sources, and those whose destinations, select a workload (alike ones share). */
  private selection(w: Workload, cls: number, labels: readonly string[]): Selection {
    const known = this.selections.get(cls);
    if (known) return known;
    const members = this.resolved.userGroupMembers;
    const found: [Set<number>, Set<number>] = [new Set(), new Set()];
    const consider = (e: Entry, check: boolean): void => {
      if (!check || clauseMatches(e.clause, w, members)) found[e.side].add(e.rule);
    };
    for (const e of this.unindexed) consider(e, true);
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
    const asSource = sorted(found[0]);
    const asDestination = sorted(found[1]);
    const id = intern(this.selectionIds, `${asSource.join(',')}|${asDestination.join(',')}`);
    const selection = { asSource, asDestination, id };
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

  /** The judged policy's workload of that name, its number and the rules that select it. */
  private factsOf(name: string): WorkloadFacts {
    let facts = this.workloadFacts.get(name);
    if (facts) return facts;
    const workload = this.resolved.workloadByName.get(name);
    if (!workload) throw new Error(`workload "${name}" is not in the judged policy`);
    // The labels some clause reads, as `key=value` in key order.
    const labels: string[] = [];
    for (const k of this.sortedUsedKeys)
      if (Object.hasOwn(workload.labels, k)) labels.push(`${k}=${workload.labels[k]}`);
    const selector = this.selectorClass(workload, labels);
    facts = {
      workload,
      number: this.workloadFacts.size,
      selection: this.selection(workload, selector, labels),
    };
    this.workloadFacts.set(name, facts);
    return facts;
  }

  /** The end's class id (computed on its first sight). */
  private classOf(end: Endpoint): number {
    const known = this.endClassIds[end.ordinal];
    if (known !== undefined && known >= 0) return known;
    const addressClass =
      end.ipv4 >= 0 ? this.addresses.classOf4(end.ipv4) : this.addresses.classOf(6, end.value);
    const facts = end.kind === 'workload' ? this.factsOf(end.workload.name) : null;
    const classes = this.classNumbers.size;
    const id = this.classNumbers.number(addressClass, facts ? facts.selection.id + 1 : 0, 0);
    if (id === classes) {
      const [inSourceLists, inDestinationLists] = this.inLists(addressClass);
      const selection = facts ? facts.selection : null;
      this.classes.push({
        selection,
        asPeerSource: union(selection?.asSource ?? [], inSourceLists),
        asPeerDestination: union(selection?.asDestination ?? [], inDestinationLists),
      });
    }
    // Grown in order, so that the arrays stay plain (packed) ones.
    while (this.endClassIds.length <= end.ordinal) {
      this.endClassIds.push(-1);
      this.endWorkloads.push(-1);
      this.endFacts.push(null);
    }
    this.endClassIds[end.ordinal] = id;
    this.endWorkloads[end.ordinal] = facts ? facts.number : -1;
    this.endFacts[end.ordinal] = facts;
    return id;
  }

  /** decide() on the flow, every workload in full enforcement. */
  decide(source: Endpoint, destination: Endpoint, service: ObservedService): Verdict {
    const s = this.classOf(source);
    const d = this.classOf(destination);
    const n = this.numberVerdict(
      s,
      d,
      this.serviceNumber(service),
      this.isOwnFlow(source.ordinal, destination.ordinal),
      source,
      destination,
      service,
    );
    return this.verdicts[n]!;
  }

  /**
   * The number of decide()'s verdict on a flow between the ends of those ordinals (among
   * `ends`, the resolver's list) on a service, given with its serviceNumber. Flows alike to
   * decide() share a number; read the verdict with verdict(). This is decide() for a hundred
   * thousand flows: it reads the ends' classes by ordinal and touches an end itself only
   * when its class or the verdict is new.
   */
  verdictNumber(
    ends: readonly Endpoint[],
    source: number,
    destination: number,
    service: ObservedService,
    serviceNumber: number,
  ): number {
    let s = this.endClassIds[source];
    if (s === undefined || s < 0) s = this.classOf(ends[source]!);
    let d = this.endClassIds[destination];
    if (d === undefined || d < 0) d = this.classOf(ends[destination]!);
    const own = this.isOwnFlow(source, destination);
    return this.numberVerdict(s, d, serviceNumber, own, ends[source]!, ends[destination]!, service);
  }

  verdict(number: number): Verdict {
    return this.verdicts[number]!;
  }

  /** Whether both ends (classed already) are one workload. */
  private isOwnFlow(source: number, destination: number): boolean {
    const w = this.endWorkloads[source]!;
    return w >= 0 && w === this.endWorkloads[destination];
  }

  private numberVerdict(
    s: number,
    d: number,
    serviceNumber: number,
    own: boolean,
    source: Endpoint,
    destination: Endpoint,
    service: ObservedService,
  ): number {
    const known = this.verdictNumbers.size;
    const n = this.verdictNumbers.number(s, d, serviceNumber * 2 + (own ? 1 : 0));
    if (n === known) this.verdicts.push(this.computeVerdict(s, d, source, destination, service));
    return n;
  }

  private computeVerdict(
    sourceClass: number,
    destinationClass: number,
    source: Endpoint,
    destination: Endpoint,
    service: ObservedService,
  ): Verdict {
    const s = this.classes[sourceClass]!;
    const d = this.classes[destinationClass]!;
    // Outbound: the source's rules whose destinations select or hold the destination.
    // Inbound: the destination's rules whose sources select or hold the source.
    const outbound = intersect(s.selection?.asSource ?? [], d.asPeerDestination);
    const inbound = intersect(d.selection?.asDestination ?? [], s.asPeerSource);
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
    return decide({ ...this.resolved, rules }, flow);
  }

  /**
   * A number per service, equal for services decide() cannot tell apart in a flow: a port
   * (most flows) is its own number, a process only counts if some entry names one.
   */
  serviceNumber(service: ObservedService): number {
    if (isTransport(service) && (service.process === undefined || !this.processMatters))
      return (service.proto === 'udp' ? 65536 : 0) + service.port;
    const text = isTransport(service)
      ? `${service.proto}${service.port}@${service.process}`
      : `${service.proto}/${service.icmpType ?? ''}`;
    let n = this.serviceTexts.get(text);
    if (n === undefined) this.serviceTexts.set(text, (n = 2 * 65536 + this.serviceTexts.size));
    return n;
  }

  /** The judged policy's own workload of an end (classed already). */
  private workloadOf(end: Extract<Endpoint, { kind: 'workload' }>): Workload {
    return this.endFacts[end.ordinal]!.workload;
  }

  /** How many distinct decisions were computed (the rest were shared). */
  get decisionsComputed(): number {
    return this.verdicts.length;
  }
}

/** The text's number: 0, 1, 2... in order of first sight. */
function intern(ids: Map<string, number>, text: string): number {
  let id = ids.get(text);
  if (id === undefined) ids.set(text, (id = ids.size));
  return id;
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

/**
 * Where a flow's rule goes and what it says, by granularity. A rule lives in the ruleset of
 * the workload that must admit it: the destination's, since a rule's destinations are always
 * limited to its ruleset's scope (its sources may reach outside it with extraScope); for a
 * flow to an unmanaged peer, the source's. One rule then opens both sides: the destination's
 * inbound and the source's outbound.
 *
 * | granularity     | inside a ruleset            | across rulesets (extraScope)       |
 * | --------------- | --------------------------- | ---------------------------------- |
 * | env             | all -> all, any service     | env -> all, observed services      |
 * | app             | all -> all, any service     | app+env -> all, observed services  |
 * | tier            | role -> role, any service   | app+env+role -> role, observed     |
 * | service/process | role -> role, observed      | app+env+role -> role, observed     |
 *
 * Rulesets are per environment (env) or per application and environment (the others).
 * Unmanaged peers are IP lists on the other side, always with the observed services.
 */
import type { Workload } from '../model.js';
import type { Endpoint } from './endpoints.js';
import { peerListKey, type PeerList } from './peers.js';
import { TripleNumbers } from './triples.js';
import type { Granularity, LabelKeys } from './types.js';

/** key=value pairs, sorted by key: a ruleset's scope or a rule side's selector. */
export type LabelPairs = readonly (readonly [string, string])[];

export type Actor =
  /** Every workload in the ruleset's scope. */
  | { readonly kind: 'scope' }
  | { readonly kind: 'labels'; readonly labels: LabelPairs }
  | { readonly kind: 'peers'; readonly list: PeerList };

/** any service; the observed ones; the observed ones bound to their serving process. */
export type ServicesPlan = 'all' | 'observed' | 'observed-with-process';

export interface Placement {
  readonly ruleset: LabelPairs;
  readonly sources: Actor;
  readonly destinations: Actor;
  readonly extraScope: boolean;
  readonly services: ServicesPlan;
  /** Equal for flows that belong to one rule. */
  readonly key: string;
}

export interface MissingLabels {
  readonly workload: Workload;
  readonly keys: readonly string[];
}

export type PlaceResult =
  | {
      readonly placement: Placement;
      /** Numbers the placer's results (0, 1, ...): equal for flows of alike ends. */
      readonly number: number;
      readonly missing?: undefined;
    }
  | { readonly missing: readonly MissingLabels[]; readonly placement?: undefined };

export function pairsKey(pairs: LabelPairs): string {
  return pairs.map(([k, v]) => `${k}=${v}`).join(',');
}

export function actorKey(a: Actor): string {
  switch (a.kind) {
    case 'scope':
      return 'scope';
    case 'labels':
      return `labels:${pairsKey(a.labels)}`;
    case 'peers':
      return peerListKey(a.list);
  }
}

/** What a workload contributes to placements, read once per workload. */
interface Described {
  /** Equal for workloads placed alike (same ruleset, local and foreign actors). */
  readonly id: number;
  readonly ruleset: LabelPairs;
  readonly rulesetKey: string;
  readonly local: Actor;
  readonly foreign: LabelPairs;
}

/**
 * Places flows at one granularity. A placement depends only on what each end contributes,
 * so it is computed once per pair of such contributions and shared by every flow between
 * them (a million flows fall on a few thousand pairs).
 */
export class Placer {
  private readonly required: readonly string[];
  private readonly byWorkload = new Map<string, Described | MissingLabels>();
  /** By the values of the labels read (as JSON). */
  private readonly byLabels = new Map<string, Described>();
  private readonly ids = new Map<string, number>();
  private readonly peerIds = new Map<PeerList, number>();
  /** Placements by pair of contributions (see pairCode), numbered on first sight. */
  private readonly pairs = new TripleNumbers(256);
  private readonly placed: Extract<PlaceResult, { placement: Placement }>[] = [];
  /** By end ordinal: what each end contributes (an array index per flow, not a lookup). */
  private readonly contributions: (Described | MissingLabels | PeerList | undefined)[] = [];
  /** By end ordinal: its contribution's pair code, or -1 if it lacks labels. */
  private readonly codes: number[] = [];

  constructor(
    private readonly granularity: Granularity,
    private readonly keys: LabelKeys,
  ) {
    this.required =
      granularity === 'env'
        ? [keys.env]
        : granularity === 'app'
          ? [keys.app, keys.env]
          : [keys.app, keys.env, keys.role];
  }

  private describe(w: Workload): Described | MissingLabels {
    let d = this.byWorkload.get(w.name);
    if (d) return d;
    const missing = this.required.filter((k) => w.labels[k] === undefined);
    if (missing.length > 0) {
      d = { workload: w, keys: missing };
    } else {
      // Workloads alike in the labels read share one description (hundreds share each).
      const alike = JSON.stringify(this.required.map((k) => w.labels[k]));
      d = this.byLabels.get(alike);
      if (!d) this.byLabels.set(alike, (d = this.described(w)));
    }
    this.byWorkload.set(w.name, d);
    return d;
  }

  private described(w: Workload): Described {
    const pairs = (...ks: string[]): LabelPairs =>
      ks.map((k) => [k, w.labels[k]!] as const).sort(([a], [b]) => (a < b ? -1 : 1));
    const { app, env, role } = this.keys;
    const g = this.granularity;
    const byRole = g === 'tier' || g === 'service' || g === 'process';
    const ruleset = g === 'env' ? pairs(env) : pairs(app, env);
    const local: Actor = byRole ? { kind: 'labels', labels: pairs(role) } : { kind: 'scope' };
    const foreign = g === 'env' ? pairs(env) : byRole ? pairs(app, env, role) : pairs(app, env);
    const text = `${pairsKey(ruleset)}|${actorKey(local)}|${pairsKey(foreign)}`;
    let id = this.ids.get(text);
    if (id === undefined) this.ids.set(text, (id = this.ids.size));
    return { id, ruleset, rulesetKey: pairsKey(ruleset), local, foreign };
  }

  /** The end's pair code (-1 if it lacks labels), working out its contribution on first sight. */
  private codeOf(
    ends: readonly Endpoint[],
    ordinal: number,
    peer: (end: Extract<Endpoint, { kind: 'address' }>) => PeerList,
  ): number {
    const known = this.codes[ordinal];
    if (known !== undefined && known > -2) return known;
    const end = ends[ordinal]!;
    const c = end.kind === 'workload' ? this.describe(end.workload) : peer(end);
    // Grown in order, so that the arrays stay plain (packed) ones; -2: not seen yet.
    while (this.codes.length <= ordinal) {
      this.codes.push(-2);
      this.contributions.push(undefined);
    }
    this.contributions[ordinal] = c;
    return (this.codes[ordinal] = 'keys' in c ? -1 : this.pairCode(c));
  }

  /** Workloads' contributions by their id (even), peers' by their list's (odd). */
  private pairCode(c: Described | PeerList): number {
    if ('id' in c) return 2 * c.id;
    let id = this.peerIds.get(c);
    if (id === undefined) this.peerIds.set(c, (id = this.peerIds.size));
    return 2 * id + 1;
  }

  /**
   * The rule for a flow with at least one workload end, or the labels its ends lack. The ends
   * are given by ordinal among `ends` (the resolver's list); `peer` names an unmanaged end's
   * IP list (the same object for the same list).
   */
  place(
    ends: readonly Endpoint[],
    source: number,
    destination: number,
    peer: (end: Extract<Endpoint, { kind: 'address' }>) => PeerList,
  ): PlaceResult {
    const s = this.codeOf(ends, source, peer);
    const d = this.codeOf(ends, destination, peer);
    if (s < 0 || d < 0) {
      const missing = [this.contributions[source], this.contributions[destination]];
      return { missing: missing.filter((x): x is MissingLabels => x !== undefined && 'keys' in x) };
    }
    const known = this.pairs.size;
    const n = this.pairs.number(s, d, 0);
    if (n === known) {
      const placement = this.compute(
        this.contributions[source] as Described | PeerList,
        this.contributions[destination] as Described | PeerList,
      );
      this.placed.push({ placement, number: n });
    }
    return this.placed[n]!;
  }

  private compute(s: Described | PeerList, d: Described | PeerList): Placement {
    const g = this.granularity;
    const withProcess: ServicesPlan = g === 'process' ? 'observed-with-process' : 'observed';
    const sw = 'id' in s ? s : null;
    const dw = 'id' in d ? d : null;
    if (sw && dw) {
      if (sw.rulesetKey === dw.rulesetKey) {
        const services: ServicesPlan =
          g === 'service' ? 'observed' : g === 'process' ? withProcess : 'all';
        return make(dw.ruleset, sw.local, dw.local, false, services);
      }
      return make(dw.ruleset, { kind: 'labels', labels: sw.foreign }, dw.local, true, withProcess);
    }
    // The peer is not ours: its serving process is neither known nor checkable.
    if (sw)
      return make(sw.ruleset, sw.local, { kind: 'peers', list: d as PeerList }, false, 'observed');
    if (dw)
      return make(dw.ruleset, { kind: 'peers', list: s as PeerList }, dw.local, false, withProcess);
    throw new Error('a flow between two unmanaged peers has no rule to generate');
  }
}

function make(
  ruleset: LabelPairs,
  sources: Actor,
  destinations: Actor,
  extraScope: boolean,
  services: ServicesPlan,
): Placement {
  const key = `${pairsKey(ruleset)}|${actorKey(sources)}|${actorKey(destinations)}|${extraScope}|${services}`;
  return { ruleset, sources, destinations, extraScope, services, key };
}

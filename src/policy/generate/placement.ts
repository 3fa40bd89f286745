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
  | { readonly placement: Placement; readonly missing?: undefined }
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
  private readonly ids = new Map<string, number>();
  private readonly peerIds = new Map<PeerList, number>();
  private readonly pairs = new Map<number, Map<number, PlaceResult>>();
  /** By end ordinal: what each end contributes (an array index per flow, not a lookup). */
  private readonly contributions: (Described | MissingLabels | PeerList | undefined)[] = [];

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
      d = { id, ruleset, rulesetKey: pairsKey(ruleset), local, foreign };
    }
    this.byWorkload.set(w.name, d);
    return d;
  }

  private contribution(
    end: Endpoint,
    peer: (end: Extract<Endpoint, { kind: 'address' }>) => PeerList,
  ): Described | MissingLabels | PeerList {
    let c = this.contributions[end.ordinal];
    if (c !== undefined) return c;
    c = end.kind === 'workload' ? this.describe(end.workload) : peer(end);
    while (this.contributions.length <= end.ordinal) this.contributions.push(undefined);
    this.contributions[end.ordinal] = c;
    return c;
  }

  /** Peers get negative ids, apart from workloads' contributions. */
  private peerId(list: PeerList): number {
    let id = this.peerIds.get(list);
    if (id === undefined) this.peerIds.set(list, (id = -1 - this.peerIds.size));
    return id;
  }

  /**
   * The rule for a flow with at least one workload end, or the labels its ends lack.
   * `peer` names an unmanaged end's IP list (the same object for the same list).
   */
  place(
    src: Endpoint,
    dst: Endpoint,
    peer: (end: Extract<Endpoint, { kind: 'address' }>) => PeerList,
  ): PlaceResult {
    const s = this.contribution(src, peer);
    const d = this.contribution(dst, peer);
    if ('keys' in s || 'keys' in d)
      return { missing: [s, d].filter((x): x is MissingLabels => 'keys' in x) };
    const sid = 'id' in s ? s.id : this.peerId(s);
    const did = 'id' in d ? d.id : this.peerId(d);
    let bySource = this.pairs.get(sid);
    if (!bySource) this.pairs.set(sid, (bySource = new Map<number, PlaceResult>()));
    let placed = bySource.get(did);
    if (!placed) bySource.set(did, (placed = this.compute(s, d)));
    return placed;
  }

  private compute(s: Described | PeerList, d: Described | PeerList): PlaceResult {
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
): PlaceResult {
  const key = `${pairsKey(ruleset)}|${actorKey(sources)}|${actorKey(destinations)}|${extraScope}|${services}`;
  return { placement: { ruleset, sources, destinations, extraScope, services, key } };
}

/**
 * The flow store's vocabulary, shared by the roll-up, the store, the queries, the API and
 * the UI. An **edge** is one distinct conversation shape (source, destination, protocol,
 * port, serving process); its **traffic** is counted in time buckets at three resolutions.
 * Decisions live on the edge, not on the buckets, so re-deciding after a policy or label
 * change touches each distinct edge once, however many weeks of buckets stand behind it.
 */
import type { Decision, FlowProtocol } from '../../policy/decide.js';

export const RESOLUTIONS = ['minute', 'hour', 'day'] as const;
export type Resolution = (typeof RESOLUTIONS)[number];
export const RESOLUTION_SECONDS: Readonly<Record<Resolution, number>> = {
  minute: 60,
  hour: 3600,
  day: 86400,
};

/** One end of an edge: a workload of the estate, or an address outside it. */
export type FlowEnd =
  | { readonly workload: string; readonly address?: undefined }
  | { readonly address: string; readonly workload?: undefined };

/** What identifies an edge. `port` is null for ICMP; `process` is the destination's serving process. */
export interface EdgeKey {
  readonly source: FlowEnd;
  readonly destination: FlowEnd;
  readonly proto: FlowProtocol;
  readonly port: number | null;
  readonly process: string | null;
}

/** What one policy (the active version, or the draft) says about an edge. */
export interface EdgeVerdict {
  readonly decision: Decision;
  /** What decided it, as `formatDecidedBy` writes it (e.g. `allow rule shop/web-to-api`). */
  readonly decidedBy: string;
}

export interface Edge extends EdgeKey {
  readonly id: number;
  /** For an address end: the IP list or subnet it is shown as (e.g. `internet`, `10.20.0.0/16`). */
  readonly sourceGroup: string | null;
  readonly destinationGroup: string | null;
  readonly active: EdgeVerdict;
  readonly draft: EdgeVerdict;
}

/** Traffic on one edge over a window (the sum of its buckets there). */
export interface EdgeTraffic {
  readonly edgeId: number;
  readonly connections: number;
  /** Of `connections`, those an enforcing agent reported blocked: attempts, not conversations. */
  readonly blocked: number;
  readonly bytes: number;
  /** Canonical UTC ISO text. */
  readonly firstSeen: string;
  readonly lastSeen: string;
}

/** A time window, [from, to), in canonical UTC ISO text, and the resolution that answers it. */
export interface FlowWindow {
  readonly from: string;
  readonly to: string;
  readonly resolution: Resolution;
}

// ------------------------------------------------------------------ questions and answers

/**
 * Which ends a filter accepts. Text forms (query strings, CLI flags):
 * `app=shop,env=prod` (labels: different keys ANDed, the same key repeated ORed),
 * `workload:shop-web-1`, `ip:10.0.0.0/8` (an address or CIDR), `group:internet`.
 */
export type EndFilter =
  | { readonly labels: Readonly<Record<string, readonly string[]>> }
  | { readonly workload: string }
  | { readonly address: string }
  | { readonly group: string };

/** `443/tcp`, `53/udp`, `tcp` (any port), `icmp`. */
export interface PortFilter {
  readonly proto?: FlowProtocol;
  readonly port?: number;
}

/** When: a duration back from now (`15m`, `1h`, `24h`, `7d`, `90d`), or an explicit [from, to). */
export type WindowRequest =
  | { readonly since: string }
  | { readonly from: string; readonly to: string }
  | { readonly from: string };

export type PolicyView = 'active' | 'draft';

/** One filter for every flow question; each list is ORed inside, the lists ANDed together. */
export interface FlowFilter {
  readonly window?: WindowRequest;
  readonly source?: readonly EndFilter[];
  readonly destination?: readonly EndFilter[];
  /** Either end matches. */
  readonly either?: readonly EndFilter[];
  readonly ports?: readonly PortFilter[];
  readonly processes?: readonly string[];
  /** Filters on the decision under `policy`. */
  readonly decisions?: readonly Decision[];
  /** Whose verdict is shown (and filtered by `decisions`): the active version's (default) or the draft's. */
  readonly policy?: PolicyView;
}

/**
 * Node ids: `g:app=shop;env=prod` (a label group; an expanded group's children add keys,
 * `g:app=shop;env=prod;role=web`; a missing label is `key=` with an empty value),
 * `w:shop-web-1` (one workload), `a:internet` (an address group).
 */
export interface MapQuery extends FlowFilter {
  /** Label keys to group by, or `['workload']` for one node per workload. Default `['app', 'env']`. */
  readonly groupBy?: readonly string[];
  /** Group node ids to break down into children (compound nodes). */
  readonly expand?: readonly string[];
  /** How an expanded group is broken down. Default `['role']`; `['workload']` for single workloads. */
  readonly expandBy?: readonly string[];
}

export interface MapNode {
  readonly id: string;
  readonly kind: 'group' | 'workload' | 'addresses';
  /** What a person reads: `shop · prod`, `shop-web-1`, `internet`. */
  readonly label: string;
  /** The labels every member shares (groups), or the workload's own labels. */
  readonly labels: Readonly<Record<string, string>>;
  /** Workloads inside (1 for a workload node; 0 for addresses). */
  readonly workloads: number;
  /** The expanded group this node sits in. */
  readonly parent?: string;
  /** A workload node's enforcement mode; a group's when all members share one, else `mixed`. */
  readonly mode?: string;
}

export interface MapService {
  readonly proto: FlowProtocol;
  readonly port: number | null;
  readonly process: string | null;
  readonly connections: number;
  readonly decision: Decision;
}

export type DecisionCounts = Readonly<Record<Decision, number>>;

export interface MapEdge {
  readonly id: string;
  readonly source: string;
  readonly target: string;
  readonly connections: number;
  readonly bytes: number;
  readonly firstSeen: string;
  readonly lastSeen: string;
  /** The most severe decision with any connections behind it (blocked > potentially-blocked > allowed). */
  readonly decision: Decision;
  /** Connections by decision. */
  readonly byDecision: DecisionCounts;
  /** The busiest services on this edge (at most 25), busiest first. */
  readonly services: readonly MapService[];
  /** Distinct flow-store edges behind this map edge. */
  readonly flows: number;
}

export interface MapResult {
  readonly window: FlowWindow;
  readonly policy: PolicyView;
  readonly groupBy: readonly string[];
  readonly nodes: readonly MapNode[];
  readonly edges: readonly MapEdge[];
}

/** An end as the explorer shows it. */
export type EndView =
  | {
      readonly workload: string;
      readonly labels: Readonly<Record<string, string>>;
      readonly address?: undefined;
    }
  | { readonly address: string; readonly group: string | null; readonly workload?: undefined };

export interface FlowRow {
  /** The flow-store edge. */
  readonly id: number;
  readonly source: EndView;
  readonly destination: EndView;
  readonly proto: FlowProtocol;
  readonly port: number | null;
  readonly process: string | null;
  readonly connections: number;
  /** Of `connections`, the attempts an enforcing agent reported blocked. */
  readonly blocked: number;
  readonly bytes: number;
  readonly firstSeen: string;
  readonly lastSeen: string;
  /** Under the active version. */
  readonly decision: Decision;
  readonly decidedBy: string;
  readonly draftDecision: Decision;
  readonly draftDecidedBy: string;
}

export const FLOW_SORT_KEYS = [
  'connections',
  'bytes',
  'firstSeen',
  'lastSeen',
  'source',
  'destination',
  'port',
] as const;
export type FlowSortKey = (typeof FLOW_SORT_KEYS)[number];
/** A key, descending when `descending`; ties broken by edge id so pages never overlap. */
export interface FlowSort {
  readonly key: FlowSortKey;
  readonly descending: boolean;
}

export interface FlowPage {
  readonly window: FlowWindow;
  readonly items: readonly FlowRow[];
  /** Opaque; null on the last page. */
  readonly nextCursor: string | null;
  /** Rows matching the filter in the window. */
  readonly total: number;
}

export interface TimePoint {
  /** Bucket start, canonical UTC ISO text. */
  readonly t: string;
  readonly connections: number;
  readonly bytes: number;
  readonly byDecision: DecisionCounts;
}

export interface TimeSeries {
  readonly window: FlowWindow;
  readonly points: readonly TimePoint[];
}

export interface FlowStoreStatus {
  /** The last flow-summary id rolled up into the aggregates. */
  readonly rolledUpTo: number;
  /** Summaries stored but not yet rolled up. */
  readonly pendingSummaries: number;
  readonly edges: number;
  /** False while edges wait to be re-decided after a policy, label or mode change. */
  readonly decisionsCurrent: boolean;
  /** How long each resolution is kept, in seconds. */
  readonly retention: Readonly<Record<Resolution, number>>;
  /** Why the last round of the background roll-up failed, while it keeps failing. */
  readonly lastError?: string;
}

/** Traffic written straight into the aggregates (the demo estate, benchmarks, imports already summed). */
export interface TrafficRecord {
  readonly key: EdgeKey;
  /** Any time inside the bucket; canonical UTC ISO text. */
  readonly firstSeen: string;
  readonly lastSeen: string;
  readonly connections: number;
  /** Of `connections`, those an enforcing agent reported blocked (default none). */
  readonly blocked?: number;
  readonly bytes: number;
}

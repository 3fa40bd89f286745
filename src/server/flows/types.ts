/**
 * What the control plane's flow store does for its routes, CLI-facing APIs and the demo:
 * one object, created with the server and started by `serve`, so routes never reach into
 * the aggregates' tables themselves.
 */
import type {
  FlowFilter,
  FlowPage,
  FlowRow,
  FlowSort,
  FlowStoreStatus,
  MapQuery,
  MapResult,
  TimeSeries,
  TrafficRecord,
  Resolution,
  WindowRequest,
} from '../../analysis/flows/model.js';
import type { ObservedFlow } from '../../policy/generate/index.js';

export interface FlowQueries {
  map(query: MapQuery): Promise<MapResult>;
  explore(
    filter: FlowFilter,
    sort: FlowSort,
    limit: number,
    cursor: string | null,
  ): Promise<FlowPage>;
  /** Every matching row in `sort` order, read a page at a time (no row cap). */
  exportRows(filter: FlowFilter, sort: FlowSort): AsyncIterable<FlowRow>;
  timeseries(filter: FlowFilter, resolution?: Resolution): Promise<TimeSeries>;
  status(): Promise<FlowStoreStatus>;
  /**
   * Every edge with traffic in the window as the policy generator reads it: its ends, its
   * service (and serving process), and its connections and first/last seen there.
   */
  observedFlows(window: WindowRequest, options?: ObservedFlowOptions): Promise<ObservedTraffic>;
}

export interface ObservedFlowOptions {
  /**
   * Count connection attempts an enforcing agent blocked as traffic too. Off by default: an
   * attempt that was dropped is not a conversation that works, and proposing a rule for it
   * could open the very path enforcement stopped (say, a compromised host probing).
   */
  readonly includeBlocked?: boolean;
}

export interface ObservedTraffic {
  readonly flows: ObservedFlow[];
  /** Blocked attempts not counted in `flows` (none when they were included). */
  readonly blockedLeftOut: { readonly flows: number; readonly connections: number };
}

export interface FlowStoreService extends FlowQueries {
  /** Starts the background roll-up, re-decision and retention loop. */
  start(): void;
  stop(): Promise<void>;
  /** Rolls up every stored summary and re-decides stale edges now (tests, the CLI's --wait). */
  catchUp(): Promise<void>;
  /** Marks every edge's decisions stale (policy, label, mode or address changes). */
  policyChanged(): void;
  /** Adds traffic straight to the aggregates at every resolution. */
  recordTraffic(records: readonly TrafficRecord[]): Promise<void>;
  /**
   * Empties the aggregates and edges (every resolution, in one transaction) and moves the
   * roll-up past every summary already in the log, so none of it is counted again.
   */
  reset(): Promise<void>;
}

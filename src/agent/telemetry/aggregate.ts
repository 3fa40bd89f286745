/**
 * Flow aggregation: individual connections become flow summaries, one per (source,
 * destination, protocol, destination port, local process, decision) in each flush
 * interval, with the first and last time seen, the number of connections and their bytes.
 * The source port is left out on purpose: it is ephemeral, and keeping it would make one
 * summary per connection.
 *
 * Pure: no I/O; time is given.
 */
import type { FlowDecision, FlowProto, FlowSummary } from '../wire.js';

export interface FlowObservation {
  readonly src: string;
  readonly dst: string;
  readonly proto: FlowProto;
  readonly dport?: number;
  readonly process?: string;
  readonly decision?: FlowDecision;
  /** Epoch milliseconds. */
  readonly at: number;
  /** New connections this observation stands for (0: bytes of one already counted). */
  readonly connections: number;
  readonly bytes: number;
}

interface Entry {
  readonly src: string;
  readonly dst: string;
  readonly proto: FlowProto;
  readonly dport: number | undefined;
  readonly process: string | undefined;
  readonly decision: FlowDecision | undefined;
  first: number;
  last: number;
  connections: number;
  bytes: number;
}

export class FlowAggregator {
  private entries = new Map<string, Entry>();
  private dropped = 0;

  /** At most `maxFlows` distinct summaries per interval; more are counted, not kept. */
  constructor(private readonly maxFlows = 100_000) {}

  add(o: FlowObservation): void {
    const k = `${o.src}|${o.dst}|${o.proto}|${o.dport ?? ''}|${o.process ?? ''}|${o.decision ?? ''}`;
    const e = this.entries.get(k);
    if (e) {
      if (o.at < e.first) e.first = o.at;
      if (o.at > e.last) e.last = o.at;
      e.connections += o.connections;
      e.bytes += o.bytes;
      return;
    }
    if (this.entries.size >= this.maxFlows) {
      this.dropped++;
      return;
    }
    // One shape for every entry (absent fields are undefined): no spreads on the hot path.
    this.entries.set(k, {
      src: o.src,
      dst: o.dst,
      proto: o.proto,
      dport: o.dport,
      process: o.process,
      decision: o.decision,
      first: o.at,
      last: o.at,
      connections: o.connections,
      bytes: o.bytes,
    });
  }

  get size(): number {
    return this.entries.size;
  }

  /** The summaries so far, and a fresh start; `overflow` counts observations left out. */
  drain(): { summaries: FlowSummary[]; overflow: number } {
    const summaries: FlowSummary[] = [];
    for (const e of this.entries.values()) {
      summaries.push({
        src: e.src,
        dst: e.dst,
        proto: e.proto,
        ...(e.dport !== undefined ? { dport: e.dport } : {}),
        ...(e.process !== undefined ? { process: e.process } : {}),
        firstSeen: new Date(e.first).toISOString(),
        lastSeen: new Date(e.last).toISOString(),
        connections: e.connections,
        bytes: e.bytes,
        ...(e.decision !== undefined ? { decision: e.decision } : {}),
      });
    }
    const overflow = this.dropped;
    this.entries = new Map();
    this.dropped = 0;
    return { summaries, overflow };
  }
}

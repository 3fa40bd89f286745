/**
 * The edges as queries see them, kept in memory: a window's answer joins thousands of
 * traffic sums to their edges, and a map lookup is far cheaper than a join per question.
 * New edges are read on demand (by id, which only grows); re-decided ones are replaced by
 * the pass that re-decides them.
 */
import type { Edge } from '../../analysis/flows/model.js';
import type { Decision, FlowProtocol } from '../../policy/decide.js';
import { readEdges, type EdgeRow } from '../../store/flow-store.js';
import type { Db } from '../../store/store.js';

export function edgeFromRow(r: EdgeRow): Edge {
  return {
    id: r.id,
    source:
      r.src_workload !== null ? { workload: r.src_workload } : { address: r.src_address ?? '' },
    destination:
      r.dst_workload !== null ? { workload: r.dst_workload } : { address: r.dst_address ?? '' },
    proto: r.proto as FlowProtocol,
    port: r.port === null ? null : Number(r.port),
    process: r.process,
    sourceGroup: r.src_group,
    destinationGroup: r.dst_group,
    active: { decision: r.decision as Decision, decidedBy: r.decided_by },
    draft: { decision: r.draft_decision as Decision, decidedBy: r.draft_decided_by },
  };
}

const PAGE = 50_000;

export class EdgeCache {
  private readonly edges = new Map<number, Edge>();
  private maxId = 0;
  private refreshing: Promise<void> | null = null;
  /** Bumped by `clear`: a read begun before it must not fill the cache afterwards. */
  private epoch = 0;

  constructor(private readonly db: () => Db) {}

  get size(): number {
    return this.edges.size;
  }

  /** Reads edges stored since the last look. */
  refresh(): Promise<void> {
    this.refreshing ??= this.readNew().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async readNew(): Promise<void> {
    const epoch = this.epoch;
    for (;;) {
      const rows = await readEdges(this.db(), this.maxId, PAGE);
      // Cleared meanwhile: these rows may predate what cleared it; read again from the start.
      if (this.epoch !== epoch) return this.readNew();
      for (const r of rows) {
        this.edges.set(r.id, edgeFromRow(r));
        if (r.id > this.maxId) this.maxId = r.id;
      }
      if (rows.length < PAGE) return;
    }
  }

  /** The edges with these ids (reading new ones first if any is unknown). */
  async lookup(ids: Iterable<number>): Promise<Map<number, Edge>> {
    const out = new Map<number, Edge>();
    let missing = false;
    for (const id of ids) {
      const e = this.edges.get(id);
      if (e) out.set(id, e);
      else missing = true;
    }
    if (!missing) return out;
    await this.refresh();
    for (const id of ids) {
      const e = this.edges.get(id);
      if (e) out.set(id, e);
    }
    return out;
  }

  /** Every known edge (after reading new ones). */
  async all(): Promise<Iterable<Edge>> {
    await this.refresh();
    return this.edges.values();
  }

  /** Replaces an edge the re-decision pass changed (only if already loaded; else it is read later). */
  replace(edge: Edge): void {
    if (this.edges.has(edge.id)) this.edges.set(edge.id, edge);
  }

  /** Forgets every edge (they are read again on the next question). */
  clear(): void {
    this.epoch++;
    this.edges.clear();
    this.maxId = 0;
  }
}

/**
 * Turning traffic into the flow store's rows: each item names its edge and carries counts;
 * a chunk is pre-summed per (bucket, edge) in memory, then written with one upsert per
 * resolution, so however many summaries one busy edge has in a minute, its bucket is
 * written once per chunk.
 */
import { edgeKeyText } from '../../analysis/flows/edge-key.js';
import {
  RESOLUTION_SECONDS,
  RESOLUTIONS,
  type EdgeKey,
  type Resolution,
} from '../../analysis/flows/model.js';
import {
  addTraffic,
  addTrafficFromMinutes,
  upsertEdges,
  type BucketDelta,
  type NewEdgeRow,
} from '../../store/flow-store.js';
import type { Database } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import type { Transaction } from 'kysely';
import { judgeEdge, type Estate } from './estate.js';

export interface TrafficItem {
  readonly key: EdgeKey;
  /** The addresses seen at each end (kept on the edge for a workload that later disappears). */
  readonly sourceAddress: string | null;
  readonly destinationAddress: string | null;
  /** Epoch milliseconds. */
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly connections: number;
  /** Of `connections`, those an enforcing agent reported blocked. */
  readonly blocked: number;
  readonly bytes: number;
}

export interface Pending {
  readonly key: EdgeKey;
  readonly sourceAddress: string | null;
  readonly destinationAddress: string | null;
}

interface Sum {
  readonly bucket: number;
  /** The edge's place in `keys`. */
  readonly slot: number;
  connections: number;
  blocked: number;
  bytes: number;
  firstSeen: number;
  lastSeen: number;
}

/**
 * One resolution's sums, by bucket then slot: small-integer keys hash cheaply, and the
 * bucket last added to (a chunk of the log is mostly in time order) is found without a lookup.
 */
class BucketSums {
  private readonly byBucket = new Map<number, Map<number, Sum>>();
  private lastIndex = -1;
  private last: Map<number, Sum> | undefined;
  size = 0;

  add(index: number, bucket: number, slot: number, t: Traffic): void {
    let sums = this.last;
    if (index !== this.lastIndex || !sums) {
      sums = this.byBucket.get(index);
      if (!sums) this.byBucket.set(index, (sums = new Map<number, Sum>()));
      this.lastIndex = index;
      this.last = sums;
    }
    const s = sums.get(slot);
    if (s) {
      s.connections += t.connections;
      s.blocked += t.blocked;
      s.bytes += t.bytes;
      if (t.firstSeen < s.firstSeen) s.firstSeen = t.firstSeen;
      if (t.lastSeen > s.lastSeen) s.lastSeen = t.lastSeen;
      return;
    }
    sums.set(slot, {
      bucket,
      slot,
      connections: t.connections,
      blocked: t.blocked,
      bytes: t.bytes,
      firstSeen: t.firstSeen,
      lastSeen: t.lastSeen,
    });
    this.size++;
  }

  *values(): IterableIterator<Sum> {
    for (const sums of this.byBucket.values()) yield* sums.values();
  }
}

/** Counts and times (epoch milliseconds) of traffic on one edge. */
export interface Traffic {
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly connections: number;
  /** Of `connections`, those reported blocked (attempts that did not go through). */
  readonly blocked: number;
  readonly bytes: number;
}

/** Edge ids by key text, so a known edge costs no query; bounded, it starts over when full. */
export class EdgeIdCache {
  private readonly ids = new Map<string, number>();
  constructor(private readonly max = 1_000_000) {}
  get(key: string): number | undefined {
    return this.ids.get(key);
  }
  addAll(ids: ReadonlyMap<string, number>): void {
    if (this.ids.size + ids.size > this.max) this.ids.clear();
    for (const [k, v] of ids) this.ids.set(k, v);
  }
  clear(): void {
    this.ids.clear();
  }
}

/**
 * A batch's traffic summed and packed, ready to write: what a chunk of the log comes to.
 * Plain arrays and typed arrays only, so it crosses to and from a worker thread cheaply.
 */
export interface SummedTraffic {
  /** Each edge's key text, by slot. */
  readonly keys: readonly string[];
  readonly edges: readonly Pending[];
  /** Per resolution, SUM_FIELDS numbers per (bucket, edge) sum, in SUM_FIELDS order. */
  readonly sums: Readonly<Record<Resolution, Float64Array>>;
  /** Minute sums only: the store sums hours and days itself (sumsCoarserBuckets). */
  readonly minutesOnly: boolean;
  readonly keepFrom: Readonly<Record<Resolution, number>>;
}

/** A packed sum's fields, in order. */
const SUM_FIELDS = [
  'bucket',
  'slot',
  'connections',
  'blocked',
  'bytes',
  'firstSeen',
  'lastSeen',
] as const;
const SUM_WIDTH = SUM_FIELDS.length;

/** At most this many edges per batch (far more than any chunk of the log names). */
const SLOTS = 2 ** 24;

export class TrafficBatch {
  /** The batch's edges by key text, each with its slot (its index in `keys`). */
  private readonly slots = new Map<string, number>();
  private readonly keys: string[] = [];
  private readonly edges: Pending[] = [];
  private readonly sums: Record<Resolution, BucketSums> = {
    minute: new BucketSums(),
    hour: new BucketSums(),
    day: new BucketSums(),
  };
  count = 0;

  /**
   * `keepFrom`: per resolution, the first bucket (epoch seconds) retention still keeps;
   * traffic older than that is not written at that resolution (an import of last month
   * writes no minute buckets that retention would delete a moment later).
   */
  constructor(
    private readonly keepFrom: Readonly<Record<Resolution, number>>,
    /** Keep minute sums only, for a store that sums hours and days itself (sumsCoarserBuckets). */
    private readonly minutesOnly = false,
  ) {}

  add(item: TrafficItem): void {
    this.addTo(edgeKeyText(item.key), item, item);
  }

  /** Adds traffic to the edge `edge` names by `keyText` (its canonical key text). */
  addTo(keyText: string, edge: Pending, traffic: Traffic): void {
    let slot = this.slots.get(keyText);
    if (slot === undefined) {
      if (this.keys.length >= SLOTS)
        throw new Error(`a traffic batch holds at most ${SLOTS} edges`);
      slot = this.keys.length;
      this.slots.set(keyText, slot);
      this.keys.push(keyText);
      this.edges.push(edge);
    }
    // The bucket a summary counts in is the one holding its last_seen.
    const seconds = Math.floor(traffic.lastSeen / 1000);
    if (this.minutesOnly) {
      // Every minute, even one older than minute retention keeps: its hour or day may be kept.
      const index = Math.floor(seconds / 60);
      this.sums.minute.add(index, index * 60, slot, traffic);
      this.count++;
      return;
    }
    for (const r of RESOLUTIONS) {
      if (seconds < this.keepFrom[r]) continue;
      const size = RESOLUTION_SECONDS[r];
      const index = Math.floor(seconds / size);
      this.sums[r].add(index, index * size, slot, traffic);
    }
    this.count++;
  }

  /** The batch summed and packed (see SummedTraffic). */
  summed(): SummedTraffic {
    const pack = (r: Resolution): Float64Array => {
      const out = new Float64Array(this.sums[r].size * SUM_WIDTH);
      let i = 0;
      for (const s of this.sums[r].values()) {
        out[i] = s.bucket;
        out[i + 1] = s.slot;
        out[i + 2] = s.connections;
        out[i + 3] = s.blocked;
        out[i + 4] = s.bytes;
        out[i + 5] = s.firstSeen;
        out[i + 6] = s.lastSeen;
        i += SUM_WIDTH;
      }
      return out;
    };
    return {
      keys: this.keys,
      edges: this.edges,
      sums: { minute: pack('minute'), hour: pack('hour'), day: pack('day') },
      minutesOnly: this.minutesOnly,
      keepFrom: this.keepFrom,
    };
  }

  /** Writes the batch inside `trx` (see writeTraffic). */
  write(
    store: Store,
    trx: Transaction<Database>,
    estate: Estate,
    revision: number,
    known: EdgeIdCache,
  ): Promise<Map<string, number>> {
    return writeTraffic(store, trx, this.summed(), estate, revision, known);
  }
}

/**
 * Writes summed traffic inside `trx`: new edges (decided under `estate`) and the buckets.
 * Returns the ids of edges it inserted or looked up, for the caller to cache once committed.
 */
export async function writeTraffic(
  store: Store,
  trx: Transaction<Database>,
  traffic: SummedTraffic,
  estate: Estate,
  revision: number,
  known: EdgeIdCache,
): Promise<Map<string, number>> {
  const { keys, edges } = traffic;
  const ids: number[] = new Array<number>(keys.length);
  const fresh: NewEdgeRow[] = [];
  const freshSlots = new Map<string, number>();
  keys.forEach((keyText, slot) => {
    const id = known.get(keyText);
    if (id !== undefined) ids[slot] = id;
    else {
      fresh.push(newEdgeRow(keyText, edges[slot]!, estate, revision));
      freshSlots.set(keyText, slot);
    }
  });
  const found = await upsertEdges(store, trx, fresh);
  for (const [k, v] of found) ids[freshSlots.get(k)!] = v;
  if (traffic.minutesOnly) {
    await addTrafficFromMinutes(trx, traffic.keepFrom, deltas(traffic.sums.minute, ids));
    return found;
  }
  for (const r of RESOLUTIONS) await addTraffic(store, trx, r, deltas(traffic.sums[r], ids));
  return found;
}

/** One resolution's packed sums as deltas for the store, with the edges' ids. */
function deltas(sums: Float64Array, ids: readonly number[]): BucketDelta[] {
  const out: BucketDelta[] = new Array<BucketDelta>(sums.length / SUM_WIDTH);
  for (let i = 0, j = 0; i < sums.length; i += SUM_WIDTH, j++) {
    out[j] = {
      bucket: sums[i]!,
      edgeId: ids[sums[i + 1]!]!,
      connections: sums[i + 2]!,
      blocked: sums[i + 3]!,
      bytes: sums[i + 4]!,
      firstSeen: sums[i + 5]!,
      lastSeen: sums[i + 6]!,
    };
  }
  return out;
}

export function newEdgeRow(
  keyText: string,
  p: Pending,
  estate: Estate,
  revision: number,
): NewEdgeRow {
  const { key } = p;
  const judged = judgeEdge(estate, key, {
    source: p.sourceAddress,
    destination: p.destinationAddress,
  });
  return {
    key: keyText,
    src_workload: key.source.workload ?? null,
    src_address: key.source.address ?? p.sourceAddress,
    dst_workload: key.destination.workload ?? null,
    dst_address: key.destination.address ?? p.destinationAddress,
    proto: key.proto,
    port: key.port,
    process: key.process,
    src_group: judged.sourceGroup,
    dst_group: judged.destinationGroup,
    decision: judged.active.decision,
    decided_by: judged.active.decidedBy,
    draft_decision: judged.draft.decision,
    draft_decided_by: judged.draft.decidedBy,
    decided_revision: revision,
  };
}

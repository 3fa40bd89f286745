/**
 * The control plane's flow store: a background loop that rolls the ingest log up into edges
 * and time buckets, re-decides edges after any change that can alter a decision, and drops
 * what retention no longer keeps; and the questions the map, the explorer and the plots ask.
 *
 * The loop never blocks ingest (agents only append to the log) and never crashes the server:
 * a failure is logged, kept for `status()`, and retried after a pause.
 */
import { edgeAddress } from '../../analysis/flows/edge-key.js';
import { edgeFilter, narrows, verdictOf } from '../../analysis/flows/filter.js';
import { flowRow, pageRows, compareRows } from '../../analysis/flows/explore.js';
import { aggregateMap, type EdgeWithTraffic } from '../../analysis/flows/map.js';
import {
  RESOLUTION_SECONDS,
  RESOLUTIONS,
  type EdgeKey,
  type FlowEnd,
  type FlowFilter,
  type FlowPage,
  type FlowRow,
  type FlowSort,
  type FlowStoreStatus,
  type MapQuery,
  type MapResult,
  type Resolution,
  type TimePoint,
  type TimeSeries,
  type TrafficRecord,
  type WindowRequest,
} from '../../analysis/flows/model.js';
import {
  bucketStart,
  DEFAULT_RETENTION,
  flowWindow,
  FlowQueryError,
  isoOfSeconds,
  resolveWindow,
  splitSegments,
  windowSegments,
  type ResolvedWindow,
  type Retention,
} from '../../analysis/flows/window.js';
import { DECISIONS, type Decision } from '../../policy/decide.js';
import type { ObservedFlow, ObservedService } from '../../policy/generate/index.js';
import {
  bucketTotals,
  clearFlowTables,
  countEdges,
  countStaleEdges,
  countSummariesAfter,
  DECISION_REVISION,
  deleteBucketsBefore,
  deleteLogUpTo,
  FLOW_STORE_EPOCH,
  lastLogId,
  lockFlowWriters,
  readCounter,
  readCounters,
  readStaleEdges,
  sumsCoarserBuckets,
  ROLLUP_CURSOR,
  updateVerdicts,
  writeCounter,
  type TrafficSum,
  type VerdictUpdate,
} from '../../store/flow-store.js';
import type { Store, StoreOptions } from '../../store/store.js';
import type { AuditEvent, AuditFeed } from '../audit.js';
import { errors } from '../errors.js';
import { EdgeCache, edgeFromRow } from './edges.js';
import { judgeEdge, loadEstate, type Estate } from './estate.js';
import { EdgeIdCache, TrafficBatch, writeTraffic } from './ingest.js';
import { Attributor } from './rollup.js';
import {
  inlineSummarizer,
  threadSummarizer,
  type LogChunkSummary,
  type LogSummarizer,
  type SummarizeRequest,
} from './summarizer.js';
import {
  inlineWindowReader,
  readerCount,
  threadWindowReader,
  type WindowReader,
} from './window-reader.js';
import type { FlowStoreService, ObservedFlowOptions, ObservedTraffic } from './types.js';

/** Where the loop reports what went wrong (a pino logger fits). */
export interface FlowStoreLog {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface FlowStoreDeps {
  readonly store: Store;
  readonly audit: AuditFeed;
  readonly log?: FlowStoreLog;
}

export interface FlowStoreOptions {
  /** Seconds each resolution is kept. */
  readonly retention?: Partial<Record<Resolution, number>>;
  /** Summaries rolled up (and edges re-decided) per transaction. */
  readonly chunk?: number;
  /** Pause between rounds of the loop when there is nothing to do. */
  readonly intervalMs?: number;
  /** How long rolled-up summaries stay in the ingest log, in seconds. */
  readonly summaryGraceSeconds?: number;
  /**
   * Sum the log in a worker thread that opens the store with these options (the server's
   * own; a file or PostgreSQL), so the main thread keeps taking batches meanwhile.
   */
  readonly summarizeIn?: StoreOptions;
  /**
   * Sum a question's window in worker threads that open the store with these options (a
   * SQLite file), a piece of the window each, so one question uses every core. Ignored on
   * PostgreSQL, which sums a large window on parallel workers of its own.
   */
  readonly readWindowsIn?: StoreOptions;
  /** Reader threads for `readWindowsIn`; default one per core, up to 4 (1: none). */
  readonly windowReaders?: number;
  readonly now?: () => Date;
}

/** Audit event types after which decisions (or address groups) may differ. */
const DECISION_EVENTS = /^(workload|policy|draft|version|label|ip-list|ruleset|settings)[.-]/;

export function affectsDecisions(event: Pick<AuditEvent, 'type' | 'before' | 'after'>): boolean {
  if (!DECISION_EVENTS.test(event.type)) return false;
  // An agent's inventory changes often (listening sockets); only its addresses and logged-in
  // users can change a decision.
  if (event.type === 'workload.inventory') {
    const part = (v: unknown, key: 'addresses' | 'users') =>
      JSON.stringify((v as Record<string, unknown> | null)?.[key] ?? null);
    return (
      part(event.before, 'addresses') !== part(event.after, 'addresses') ||
      part(event.before, 'users') !== part(event.after, 'users')
    );
  }
  return true;
}

const DEFAULT_CHUNK = 20_000;
/**
 * Summaries rolled up per transaction by default: a chunk's buckets are written once however
 * many of its summaries they hold, so larger chunks write fewer rows (and commit less often).
 * On SQLite a chunk runs on the server's one connection and on the event loop, so ingest and
 * questions wait for it: there it stays near a tenth of a second. PostgreSQL writes on a
 * connection of its own, and the event loop is free while it does.
 */
const DEFAULT_ROLLUP_CHUNK: Readonly<Record<'sqlite' | 'postgres', number>> = {
  sqlite: 20_000,
  postgres: 100_000,
};
const RETENTION_EVERY_MS = 60_000;
/** How long one round of the loop may work before it lets the event loop breathe. */
const ROUND_BUDGET_MS = 250;
const MAX_POINTS = 10_000;
/** Log rows retention deletes per statement (each holds up to a batch of summaries). */
const LOG_ROWS_DELETED = 1000;

interface LoadedEstate {
  readonly estate: Estate;
  /** Summaries to edges under this estate (who owns an address is part of the answer). */
  readonly attributor: Attributor;
  readonly generation: number;
  /** The decision revision edges decided under this estate are stamped with. */
  readonly revision: number;
}

const consoleLog: FlowStoreLog = {
  error: (obj, msg) => console.error(`flow store: ${msg}`, obj),
  warn: (obj, msg) => console.warn(`flow store: ${msg}`, obj),
};

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A FlowQueryError becomes a 400 naming the query parameter. */
function asApiError(e: unknown): unknown {
  if (e instanceof FlowQueryError)
    return errors.validation([
      { path: `query.${e.field}`, message: e.message.slice(e.field.length + 2) },
    ]);
  return e;
}

/** A key with its address ends in canonical text (as the roll-up writes them). */
function canonicalKey(key: EdgeKey): EdgeKey {
  const end = (e: FlowEnd): FlowEnd =>
    e.address === undefined ? e : { address: edgeAddress(e.address) };
  return { ...key, source: end(key.source), destination: end(key.destination) };
}

/** An edge's service as the generator reads it: ICMP has no port, a transport edge needs one. */
function observedService(key: EdgeKey): ObservedService | null {
  if (key.proto === 'icmp' || key.proto === 'icmpv6') return { proto: key.proto };
  if (key.port === null) return null;
  return key.process === null
    ? { proto: key.proto, port: key.port }
    : { proto: key.proto, port: key.port, process: key.process };
}

/** What tests reach beyond the service's interface. */
export interface FlowStoreInternals extends FlowStoreService {
  /** Deletes what retention no longer keeps, now. */
  retentionNow(): Promise<void>;
}

export function createFlowStore(
  deps: FlowStoreDeps,
  options: FlowStoreOptions = {},
): FlowStoreInternals {
  return new FlowStore(deps, options);
}

class FlowStore implements FlowStoreInternals {
  private readonly store: Store;
  private readonly log: FlowStoreLog;
  private readonly retention: Retention;
  private readonly chunk: number;
  private readonly rollUpChunk: number;
  private readonly intervalMs: number;
  private readonly graceSeconds: number;
  private readonly now: () => Date;
  private readonly ids = new EdgeIdCache();
  private readonly edges: EdgeCache;
  private readonly onAudit = (e: AuditEvent) => {
    if (affectsDecisions(e)) this.policyChanged();
  };

  /** Bumped by every change that can alter decisions. */
  private generation = 1;
  private loaded: Promise<LoadedEstate> | null = null;
  /** The generation the current re-decision pass is for (0: none yet). */
  private passGeneration = 0;
  private passCursor = 0;
  /** Whether the current pass has re-decided any edge. */
  private passTouched = false;
  /** Whether the stored edges are known to match the newest generation. */
  private decided = false;
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private lastRetention = 0;
  private lastError: string | null = null;
  /** (when, cursor) pairs: summaries up to a cursor may go once it is older than the grace. */
  private checkpoints: { at: number; upTo: number }[] = [];
  /** The next chunk of the log, summed ahead after cursor `after` (see readAhead). */
  private ahead: {
    after: number;
    generation: number;
    chunk: Promise<LogChunkSummary | null>;
  } | null = null;
  /** Sums chunks of the log in this thread. */
  private readonly inline: LogSummarizer;
  /** Sums chunks of the log: `inline`, or a worker thread's. */
  private summarizer: LogSummarizer;
  /** The reset epoch the cached edge ids belong to (-1: not read yet). */
  private epoch = -1;
  /** Sums a window's buckets per edge: in this thread, or in worker threads. */
  private windowReader: WindowReader;

  constructor(
    private readonly deps: FlowStoreDeps,
    options: FlowStoreOptions,
  ) {
    this.store = deps.store;
    this.log = deps.log ?? consoleLog;
    this.retention = { ...DEFAULT_RETENTION, ...options.retention };
    this.chunk = options.chunk ?? DEFAULT_CHUNK;
    this.rollUpChunk = options.chunk ?? DEFAULT_ROLLUP_CHUNK[deps.store.dialect.name];
    this.intervalMs = options.intervalMs ?? 1000;
    this.graceSeconds = options.summaryGraceSeconds ?? 3600;
    this.now = options.now ?? (() => new Date());
    this.edges = new EdgeCache(() => this.store.db);
    this.inline = inlineSummarizer(this.store, async (generation) => {
      const loaded = await this.estate();
      // The estate moved on since the request was made: the caller discards this chunk.
      if (loaded.generation !== generation) this.log.warn({ generation }, 'stale estate');
      return loaded.attributor;
    });
    this.summarizer = options.summarizeIn ? threadSummarizer(options.summarizeIn) : this.inline;
    const readers = options.windowReaders ?? readerCount();
    this.windowReader =
      options.readWindowsIn && deps.store.dialect.name === 'sqlite' && readers > 1
        ? threadWindowReader(options.readWindowsIn, readers)
        : inlineWindowReader(deps.store);
    deps.audit.on('event', this.onAudit);
  }

  // ---------------------------------------------------------------- lifecycle

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.deps.audit.off('event', this.onAudit);
    await this.queue.catch(() => undefined);
    await this.summarizer.close();
    await this.windowReader.close();
  }

  policyChanged(): void {
    this.generation++;
    this.loaded = null;
    this.decided = false;
    if (this.running) this.schedule(0);
  }

  catchUp(): Promise<void> {
    return this.exclusive(async () => {
      while ((await this.rollUpOnce()) !== null);
      while (!(await this.redecideOnce()));
    });
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.exclusive(() => this.round()).then(
        (more) => this.schedule(more ? 0 : this.intervalMs),
        (e: unknown) => {
          this.lastError = errorText(e);
          this.log.error({ err: e }, 'flow store round failed; retrying');
          this.schedule(this.intervalMs * 5);
        },
      );
    }, ms);
    this.timer.unref?.();
  }

  /** Runs `work` after whatever the store is already doing (one writer at a time in-process). */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const p = this.queue.then(work);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** One round: roll up, re-decide, retention, each within a budget. True when work is left. */
  private async round(): Promise<boolean> {
    const started = Date.now();
    let more = false;
    for (;;) {
      const n = await this.rollUpOnce();
      if (n === null || n < this.rollUpChunk) break;
      // A chunk's work settles in promise callbacks only: without a turn of the event loop
      // here, requests that arrived meanwhile would wait for the whole round.
      await new Promise((resolve) => setImmediate(resolve));
      if (Date.now() - started > ROUND_BUDGET_MS) {
        more = true;
        break;
      }
    }
    while (!more) {
      if (await this.redecideOnce()) break;
      if (Date.now() - started > ROUND_BUDGET_MS) more = true;
    }
    if (Date.now() - this.lastRetention >= RETENTION_EVERY_MS) {
      await this.applyRetention();
      this.lastRetention = Date.now();
    }
    this.lastError = null;
    return more;
  }

  // ---------------------------------------------------------------- the estate

  private estate(): Promise<LoadedEstate> {
    if (this.loaded) return this.loaded;
    const generation = this.generation;
    const loading = (async () => {
      const revision = await readCounter(this.store.db, DECISION_REVISION);
      const estate = await loadEstate(this.store.db);
      if (estate.problems.length > 0)
        this.log.warn({ problems: estate.problems }, 'some decisions cannot be computed');
      return { estate, attributor: new Attributor(estate.ownerOf), generation, revision };
    })();
    this.loaded = loading;
    // A failed load is not kept: the next question tries again.
    loading.catch(() => {
      if (this.loaded === loading) this.loaded = null;
    });
    return loading;
  }

  // ---------------------------------------------------------------- roll-up

  /**
   * Rolls up one chunk of the ingest log; returns how many summaries it read (0 when another
   * writer moved the cursor meanwhile, so the chunk was not the next one), null at the end.
   */
  private async rollUpOnce(): Promise<number | null> {
    // Edges rolled up from here on are decided under the newest revision: the pass then has
    // only the edges stored before to re-decide, not also the ones this roll-up adds.
    await this.beginPassIfDue();
    const { estate, revision, generation } = await this.estate();
    const cursor = await readCounter(this.store.db, ROLLUP_CURSOR);
    const chunk = await this.summarizeAfter(cursor, generation);
    if (chunk.rows === 0) return null;
    if (chunk.unreadable.length > 0)
      this.log.warn(
        { rows: chunk.unreadable },
        'ingest log rows that are not a JSON array of summaries were skipped',
      );
    // Summing the next chunk overlaps writing this one.
    if (chunk.summaries >= this.rollUpChunk) this.readAhead(chunk.upTo, generation);
    const found = await this.store.transaction(async (trx) => {
      await lockFlowWriters(this.store, trx);
      const counters = await readCounters(trx, [ROLLUP_CURSOR, FLOW_STORE_EPOCH]);
      this.sameEpoch(counters[FLOW_STORE_EPOCH]);
      // A reset (or another replica's roll-up) moved the cursor after the chunk was read.
      if (counters[ROLLUP_CURSOR] !== chunk.after) return null;
      const ids = await writeTraffic(this.store, trx, chunk.traffic, estate, revision, this.ids);
      await writeCounter(trx, ROLLUP_CURSOR, chunk.upTo);
      return ids;
    });
    if (!found) {
      this.ahead = null;
      return 0;
    }
    this.ids.addAll(found);
    this.checkpoint(chunk.upTo);
    return chunk.summaries;
  }

  private summarizeRequest(after: number, generation: number): SummarizeRequest {
    return {
      after,
      limit: this.rollUpChunk,
      generation,
      keepFrom: this.keepFrom(),
      minutesOnly: sumsCoarserBuckets(this.store),
    };
  }

  /** The chunk of the log after `cursor`, summed: the one read ahead if it fits, else now. */
  private async summarizeAfter(cursor: number, generation: number): Promise<LogChunkSummary> {
    const ahead = this.ahead;
    this.ahead = null;
    const early =
      ahead?.after === cursor && ahead.generation === generation ? await ahead.chunk : null;
    if (early) return early;
    try {
      return await this.summarizer.summarize(this.summarizeRequest(cursor, generation));
    } catch (e) {
      if (this.summarizer === this.inline) throw e;
      // The worker thread is gone: the roll-up carries on in this thread.
      this.log.error({ err: e }, 'summing the flow log in a worker failed; summing it here');
      void this.summarizer.close().catch(() => undefined);
      this.summarizer = this.inline;
      return this.summarizer.summarize(this.summarizeRequest(cursor, generation));
    }
  }

  /**
   * Starts summing the chunk after `after` while this one is written, when that can run
   * alongside: in the worker thread, or on PostgreSQL (another connection reads). A failed
   * read just means reading it again.
   */
  private readAhead(after: number, generation: number): void {
    if (this.summarizer === this.inline && this.store.dialect.name !== 'postgres') return;
    this.ahead = {
      after,
      generation,
      chunk: this.summarizer.summarize(this.summarizeRequest(after, generation)).catch(() => null),
    };
  }

  /** Summaries up to `upTo` are rolled up (or skipped for good): retention may delete them later. */
  private checkpoint(upTo: number): void {
    const now = Date.now();
    const last = this.checkpoints[this.checkpoints.length - 1];
    if (last && now - last.at < 60_000) last.upTo = upTo;
    else this.checkpoints.push({ at: now, upTo });
  }

  /**
   * Called by a writer holding the flow writers' lock: if a reset (here or in another
   * replica) happened since the edge ids were cached, they name deleted edges; forget them.
   */
  private sameEpoch(epoch: number): void {
    if (epoch === this.epoch) return;
    this.ids.clear();
    this.edges.clear();
    this.epoch = epoch;
  }

  reset(): Promise<void> {
    return this.exclusive(async () => {
      const { upTo, epoch } = await this.store.transaction(async (trx) => {
        await lockFlowWriters(this.store, trx);
        const counters = await readCounters(trx, [ROLLUP_CURSOR, FLOW_STORE_EPOCH]);
        await clearFlowTables(this.store, trx);
        // Past the end of the log: what agents reported before the reset is never counted.
        const end = Math.max(counters[ROLLUP_CURSOR], await lastLogId(trx));
        await writeCounter(trx, ROLLUP_CURSOR, end);
        await writeCounter(trx, FLOW_STORE_EPOCH, counters[FLOW_STORE_EPOCH] + 1);
        return { upTo: end, epoch: counters[FLOW_STORE_EPOCH] + 1 };
      });
      this.sameEpoch(epoch);
      this.ahead = null;
      // The re-decision pass, if one is under way, looks again from the first edge.
      this.passCursor = 0;
      if (upTo > 0) this.checkpoint(upTo);
    });
  }

  async recordTraffic(records: readonly TrafficRecord[]): Promise<void> {
    for (let i = 0; i < records.length; i += this.chunk) {
      const part = records.slice(i, i + this.chunk);
      await this.exclusive(async () => {
        const { estate, revision } = await this.estate();
        const batch = new TrafficBatch(this.keepFrom(), sumsCoarserBuckets(this.store));
        for (const r of part) {
          const firstSeen = Date.parse(r.firstSeen);
          const lastSeen = Date.parse(r.lastSeen);
          if (Number.isNaN(firstSeen) || Number.isNaN(lastSeen))
            throw new FlowQueryError('lastSeen', `"${r.lastSeen}" is not an ISO 8601 time`);
          const key = canonicalKey(r.key);
          batch.add({
            key,
            sourceAddress: key.source.address ?? null,
            destinationAddress: key.destination.address ?? null,
            firstSeen,
            lastSeen,
            connections: r.connections,
            blocked: r.blocked ?? 0,
            bytes: r.bytes,
          });
        }
        const found = await this.store.transaction(async (trx) => {
          await lockFlowWriters(this.store, trx);
          this.sameEpoch(await readCounter(trx, FLOW_STORE_EPOCH));
          return batch.write(this.store, trx, estate, revision, this.ids);
        });
        this.ids.addAll(found);
      });
    }
  }

  // ---------------------------------------------------------------- re-decision

  /** Starts a re-decision pass if the newest generation has none yet. */
  private async beginPassIfDue(): Promise<void> {
    if (this.passGeneration === this.generation) return;
    // A new pass: a new revision, so every edge decided before it counts as stale.
    const generation = this.generation;
    await this.store.transaction(async (trx) => {
      await lockFlowWriters(this.store, trx);
      const revision = await readCounter(trx, DECISION_REVISION);
      await writeCounter(trx, DECISION_REVISION, revision + 1);
    });
    this.passGeneration = generation;
    this.passCursor = 0;
    // Edges decided from here on carry the new revision.
    this.loaded = null;
  }

  /**
   * Re-decides one chunk of stale edges. Returns true when every edge is decided under the
   * newest generation (nothing left to do).
   */
  private async redecideOnce(): Promise<boolean> {
    if (this.decided && this.passGeneration === this.generation) return true;
    await this.beginPassIfDue();
    const { estate, revision, generation } = await this.estate();
    if (generation !== this.passGeneration) return false;
    const rows = await readStaleEdges(this.store.db, revision, this.passCursor, this.chunk);
    if (rows.length === 0) {
      if (this.passCursor === 0) {
        this.decided = this.generation === generation;
        // Queries read the re-decided edges afresh (one racing the pass may have cached an old verdict).
        if (this.decided && this.passTouched) this.edges.clear();
        this.passTouched = false;
        return this.decided;
      }
      // Edges stored out of id order meanwhile (another writer) are found by a last look from 0.
      this.passCursor = 0;
      return false;
    }
    const updates: VerdictUpdate[] = [];
    for (const r of rows) {
      const edge = edgeFromRow(r);
      const v = judgeEdge(estate, edge, { source: r.src_address, destination: r.dst_address });
      updates.push({
        id: r.id,
        srcGroup: v.sourceGroup,
        dstGroup: v.destinationGroup,
        decision: v.active.decision,
        decidedBy: v.active.decidedBy,
        draftDecision: v.draft.decision,
        draftDecidedBy: v.draft.decidedBy,
        revision,
      });
    }
    await this.store.transaction((trx) => updateVerdicts(this.store, trx, updates));
    rows.forEach((r, i) => {
      const u = updates[i]!;
      this.edges.replace({
        ...edgeFromRow(r),
        sourceGroup: u.srcGroup,
        destinationGroup: u.dstGroup,
        active: { decision: u.decision as Decision, decidedBy: u.decidedBy },
        draft: { decision: u.draftDecision as Decision, decidedBy: u.draftDecidedBy },
      });
    });
    this.passCursor = rows[rows.length - 1]!.id;
    this.passTouched = true;
    return false;
  }

  // ---------------------------------------------------------------- retention

  /** Per resolution, the first bucket retention keeps now. */
  private keepFrom(): Record<Resolution, number> {
    const nowSeconds = Math.floor(this.now().getTime() / 1000);
    const out = {} as Record<Resolution, number>;
    for (const r of RESOLUTIONS) out[r] = bucketStart(nowSeconds - this.retention[r], r);
    return out;
  }

  private async applyRetention(): Promise<void> {
    const keepFrom = this.keepFrom();
    for (const r of RESOLUTIONS) await deleteBucketsBefore(this.store.db, r, keepFrom[r]);
    const cutoff = Date.now() - this.graceSeconds * 1000;
    let upTo = 0;
    while (this.checkpoints.length > 0 && this.checkpoints[0]!.at <= cutoff)
      upTo = this.checkpoints.shift()!.upTo;
    if (upTo > 0) {
      while ((await deleteLogUpTo(this.store.db, upTo, LOG_ROWS_DELETED)) > 0);
    }
  }

  /** Runs retention now (tests). */
  retentionNow(): Promise<void> {
    return this.exclusive(() => this.applyRetention());
  }

  // ---------------------------------------------------------------- questions

  async status(): Promise<FlowStoreStatus> {
    const db = this.store.db;
    const rolledUpTo = await readCounter(db, ROLLUP_CURSOR);
    const revision = await readCounter(db, DECISION_REVISION);
    const stale = await countStaleEdges(db, revision);
    return {
      rolledUpTo,
      pendingSummaries: await countSummariesAfter(db, rolledUpTo),
      edges: await countEdges(db),
      decisionsCurrent: stale === 0 && this.decided && this.passGeneration === this.generation,
      retention: { ...this.retention },
      ...(this.lastError !== null ? { lastError: this.lastError } : {}),
    };
  }

  /** The edges passing `filter` with their traffic in the window. */
  private async rows(
    filter: FlowFilter,
    resolution?: Resolution,
  ): Promise<{
    rows: EdgeWithTraffic[];
    estate: Estate;
    window: ReturnType<typeof resolveWindow>;
  }> {
    const window = resolveWindow(filter.window, this.now(), this.retention, resolution);
    const [{ estate }, sums] = await Promise.all([this.estate(), this.sumWindow(window)]);
    const matches = edgeFilter(filter, estate.byName);
    const edges = await this.edges.lookup(sums.map((s) => s.edgeId));
    const rows: EdgeWithTraffic[] = [];
    for (const s of sums) {
      const edge = edges.get(s.edgeId);
      if (!edge || !matches(edge)) continue;
      rows.push({
        edge,
        traffic: {
          edgeId: s.edgeId,
          connections: s.connections,
          blocked: s.blocked,
          bytes: s.bytes,
          firstSeen: new Date(s.firstSeen).toISOString(),
          lastSeen: new Date(s.lastSeen).toISOString(),
        },
      });
    }
    return { rows, estate, window };
  }

  /** Each edge's traffic over the window, read from the coarsest buckets that fit. */
  private async sumWindow(window: ResolvedWindow): Promise<TrafficSum[]> {
    const segments = windowSegments(window.from, window.to, window.resolution);
    const reader = this.windowReader;
    try {
      return await reader.sum(splitSegments(segments, reader.parallelism));
    } catch (e) {
      if (!reader.inThreads || this.windowReader !== reader) throw e;
      // The reader threads failed: questions are answered in this thread from now on.
      this.log.error({ err: e }, 'summing a window in worker threads failed; summing here');
      this.windowReader = inlineWindowReader(this.store);
      void reader.close().catch(() => undefined);
      return this.windowReader.sum(segments);
    }
  }

  async map(query: MapQuery): Promise<MapResult> {
    try {
      const { rows, estate, window } = await this.rows(query);
      return aggregateMap({
        query,
        window: flowWindow(window),
        edges: rows,
        workloads: estate.workloads,
        includeIdle: !narrows(query),
      });
    } catch (e) {
      throw asApiError(e);
    }
  }

  async explore(
    filter: FlowFilter,
    sort: FlowSort,
    limit: number,
    cursor: string | null,
  ): Promise<FlowPage> {
    try {
      const { rows, estate, window } = await this.rows(filter);
      const page = pageRows(rows, sort, limit, cursor);
      return {
        window: flowWindow(window),
        items: page.items.map((r) => flowRow(r, estate.byName)),
        nextCursor: page.nextCursor,
        total: page.total,
      };
    } catch (e) {
      throw asApiError(e);
    }
  }

  async *exportRows(filter: FlowFilter, sort: FlowSort): AsyncIterable<FlowRow> {
    let result: Awaited<ReturnType<FlowStore['rows']>>;
    try {
      result = await this.rows(filter);
    } catch (e) {
      throw asApiError(e);
    }
    const { rows, estate } = result;
    rows.sort(compareRows(sort));
    for (const r of rows) yield flowRow(r, estate.byName);
  }

  async observedFlows(
    window: WindowRequest,
    options: ObservedFlowOptions = {},
  ): Promise<ObservedTraffic> {
    let rows: EdgeWithTraffic[];
    try {
      rows = (await this.rows({ window })).rows;
    } catch (e) {
      throw asApiError(e);
    }
    const flows: ObservedFlow[] = [];
    const blockedLeftOut = { flows: 0, connections: 0 };
    for (const { edge, traffic } of rows) {
      const service = observedService(edge);
      // A transport edge always has a port; one without could not become a rule anyway.
      if (!service) continue;
      let connections = traffic.connections;
      if (!options.includeBlocked && traffic.blocked > 0) {
        connections -= traffic.blocked;
        blockedLeftOut.connections += traffic.blocked;
        // Only an edge with nothing but blocked attempts drops out of the generator's input.
        if (connections <= 0) {
          blockedLeftOut.flows++;
          continue;
        }
      }
      flows.push({
        source: edge.source,
        destination: edge.destination,
        service,
        connections,
        firstSeen: traffic.firstSeen,
        lastSeen: traffic.lastSeen,
      });
    }
    return { flows, blockedLeftOut };
  }

  async timeseries(filter: FlowFilter, resolution?: Resolution): Promise<TimeSeries> {
    try {
      const window = resolveWindow(filter.window, this.now(), this.retention, resolution);
      const size = RESOLUTION_SECONDS[window.resolution];
      const count = (window.to - window.from) / size;
      if (count > MAX_POINTS)
        throw new FlowQueryError(
          'resolution',
          `a ${window.resolution} series over this window has ${count} points (at most ${MAX_POINTS}): choose a coarser resolution or a shorter window`,
        );
      const { estate } = await this.estate();
      const policy = filter.policy ?? 'active';
      const matches = edgeFilter(filter, estate.byName);
      // Totals per bucket, then the blocked and potentially blocked shares by their edges:
      // a few grouped queries instead of every (bucket, edge) row of the window.
      const chosen: Record<Decision, number[]> = {
        allowed: [],
        'potentially-blocked': [],
        blocked: [],
      };
      for (const e of await this.edges.all())
        if (matches(e)) chosen[verdictOf(e, policy).decision].push(e.id);
      const db = this.store.db;
      const { from, to } = window;
      const read = (ids?: number[]) =>
        ids && ids.length === 0
          ? Promise.resolve(new Map<number, { connections: number; bytes: number }>())
          : bucketTotals(db, window.resolution, from, to, ids);
      const [total, blocked, marked] = await Promise.all([
        read(narrows(filter) ? DECISIONS.flatMap((d) => chosen[d]) : undefined),
        read(chosen.blocked),
        read(chosen['potentially-blocked']),
      ]);
      const points = new Map<
        number,
        { connections: number; bytes: number; byDecision: Record<Decision, number> }
      >();
      for (let b = from; b < to; b += size) {
        const t = total.get(b);
        const bl = blocked.get(b)?.connections ?? 0;
        const pb = marked.get(b)?.connections ?? 0;
        const connections = t?.connections ?? 0;
        points.set(b, {
          connections,
          bytes: t?.bytes ?? 0,
          byDecision: { allowed: connections - bl - pb, 'potentially-blocked': pb, blocked: bl },
        });
      }
      const out: TimePoint[] = [...points.entries()].map(([b, p]) => ({
        t: isoOfSeconds(b),
        connections: p.connections,
        bytes: p.bytes,
        byDecision: p.byDecision,
      }));
      return { window: flowWindow(window), points: out };
    } catch (e) {
      throw asApiError(e);
    }
  }
}

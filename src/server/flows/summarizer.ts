/**
 * Reading a chunk of the ingest log and summing it into traffic per edge and bucket: the
 * CPU-heavy half of the roll-up (JSON, addresses, edge keys). It only reads, so it can run
 * in a worker thread with a store connection of its own while the main thread keeps taking
 * agents' batches; writing the sums stays with the one writer in the main thread.
 *
 * Two implementations behind one interface: inline (tests, an in-memory store) and in a
 * worker thread (the server).
 */
import type { Resolution } from '../../analysis/flows/model.js';
import { readLog } from '../../store/flow-store.js';
import type { Store, StoreOptions } from '../../store/store.js';
import { startWorker, workerModule } from '../worker-module.js';
import { TrafficBatch, type SummedTraffic } from './ingest.js';
import { addSummaries, type Attributor } from './rollup.js';

export interface SummarizeRequest {
  /** The roll-up cursor: the last log row already rolled up. */
  readonly after: number;
  /** Summaries wanted (log rows are taken whole, so a few more may come). */
  readonly limit: number;
  /** The estate generation to attribute addresses under (see FlowStore.generation). */
  readonly generation: number;
  readonly keepFrom: Readonly<Record<Resolution, number>>;
  readonly minutesOnly: boolean;
}

export interface LogChunkSummary {
  readonly after: number;
  /** The last log row read (0 when there was none). */
  readonly upTo: number;
  readonly rows: number;
  readonly summaries: number;
  /** Log rows that are not a JSON array of summaries (skipped). */
  readonly unreadable: readonly number[];
  readonly traffic: SummedTraffic;
}

export interface LogSummarizer {
  summarize(request: SummarizeRequest): Promise<LogChunkSummary>;
  close(): Promise<void>;
}

/** Reads and sums a chunk with `attributor` (the caller's, for the request's generation). */
export async function summarizeChunk(
  store: Store,
  request: SummarizeRequest,
  attributor: Attributor,
): Promise<LogChunkSummary> {
  const chunk = await readLog(store, store.db, request.after, request.limit);
  const batch = new TrafficBatch(request.keepFrom, request.minutesOnly);
  addSummaries(batch, chunk.entries, attributor);
  return {
    after: request.after,
    upTo: chunk.entries.length > 0 ? chunk.entries[chunk.entries.length - 1]!.id : 0,
    rows: chunk.entries.length,
    summaries: chunk.summaries,
    unreadable: chunk.unreadable,
    traffic: batch.summed(),
  };
}

/** In the caller's thread, with the caller's attributor for a generation. */
export function inlineSummarizer(
  store: Store,
  attributorFor: (generation: number) => Promise<Attributor>,
): LogSummarizer {
  return {
    summarize: async (request) =>
      summarizeChunk(store, request, await attributorFor(request.generation)),
    close: () => Promise.resolve(),
  };
}

/** What the worker is started with. */
export interface WorkerSetup {
  readonly store: StoreOptions;
}

/**
 * In a worker thread with its own connection to the store (which must be a file or a
 * server: an in-memory SQLite database is not shared). Requests are answered in order.
 */
export function threadSummarizer(store: StoreOptions): LogSummarizer {
  const worker = startWorker<SummarizeRequest, LogChunkSummary>(
    'flow log summarizer',
    workerModule(import.meta.url, 'summarizer-thread'),
    { store } satisfies WorkerSetup,
  );
  return { summarize: (request) => worker.call(request), close: () => worker.close() };
}

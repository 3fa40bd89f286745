/**
 * Storing a batch of flow summaries, the one write that takes agent traffic at volume. The
 * ingest log keeps a batch as it came: one `flow_log` row holding its summaries as a JSON
 * array of tuples, so storing 500 summaries costs one row, not 500 (the per-row insert was
 * a quarter of the server's time per summary on SQLite, and most of PostgreSQL's). The
 * roll-up expands a row back into summaries; `flow_summaries` is a view that does the same
 * for anyone reading the log with SQL. The batch's `flow_batches` row and its log rows land
 * in one transaction.
 */
import type { Insertable } from 'kysely';
import type { FlowBatchesTable, FlowLogTable } from './schema.js';
import type { Store } from './store.js';

export type NewFlowBatch = Insertable<FlowBatchesTable>;

/** A summary to store, as the `flow_summaries` view shows it (less the log row's id). */
export interface NewFlowSummary {
  readonly agent_id: string;
  readonly batch_id: string;
  readonly workload: string;
  readonly src: string;
  readonly dst: string;
  readonly proto: string;
  readonly dport?: number | null;
  readonly process?: string | null;
  /** Canonical UTC ISO text. */
  readonly first_seen: string;
  readonly last_seen: string;
  readonly connections: number;
  readonly bytes: number;
  readonly decision?: string | null;
}

/**
 * At most this many summaries per log row: an import of a large file becomes several rows,
 * so the roll-up, which takes rows whole, still reads the log in chunks of a bounded size.
 */
export const LOG_ROW_SUMMARIES = 5000;

/**
 * A summary in the log, in this order: src, dst, proto, dport, process, first_seen,
 * last_seen, connections, bytes, decision.
 */
export type LoggedSummary = readonly [
  src: string,
  dst: string,
  proto: string,
  dport: number | null,
  process: string | null,
  first_seen: string,
  last_seen: string,
  connections: number,
  bytes: number,
  decision: string | null,
];

/** One log row's summaries as stored: a JSON array of LoggedSummary tuples. */
/** A summary as the log keeps it: without who reported it, which its log row says. */
export type LoggableSummary = Omit<NewFlowSummary, 'agent_id' | 'batch_id' | 'workload'>;

/** One log row's text: a JSON array of `rows[from..to)` as LoggedSummary tuples. */
export function logText(rows: readonly LoggableSummary[], from: number, to: number): string {
  let text = '[';
  for (let i = from; i < to; i++) {
    const r = rows[i]!;
    const tuple: LoggedSummary = [
      r.src,
      r.dst,
      r.proto,
      r.dport ?? null,
      r.process ?? null,
      r.first_seen,
      r.last_seen,
      r.connections,
      r.bytes,
      r.decision ?? null,
    ];
    if (i > from) text += ',';
    text += JSON.stringify(tuple);
  }
  return `${text}]`;
}

/** Log rows per INSERT statement (5 parameters each: well within both databases' limits). */
const LOG_ROWS_PER_INSERT = 1000;

/** One log row to be: `count` summaries as `text` (see logText). */
export interface LogRowText {
  readonly count: number;
  readonly text: string;
}

/**
 * Stores one batch: its `flow_batches` row (whose primary key makes a retried batch fail
 * with a unique violation, which the caller turns into "duplicate") and its summaries, one
 * log row per reporting workload (an agent's batch has one) and at most LOG_ROW_SUMMARIES.
 */
export async function appendFlowBatch(
  store: Store,
  batch: NewFlowBatch,
  rows: readonly NewFlowSummary[],
): Promise<void> {
  const byWorkload = new Map<string, NewFlowSummary[]>();
  for (const r of rows) {
    const same = byWorkload.get(r.workload);
    if (same) same.push(r);
    else byWorkload.set(r.workload, [r]);
  }
  const logRows: Insertable<FlowLogTable>[] = [];
  for (const [workload, summaries] of byWorkload) {
    for (let from = 0; from < summaries.length; from += LOG_ROW_SUMMARIES) {
      const to = Math.min(summaries.length, from + LOG_ROW_SUMMARIES);
      logRows.push(
        logRow(batch, workload, { count: to - from, text: logText(summaries, from, to) }),
      );
    }
  }
  await insertBatch(store, batch, logRows);
}

/** Stores one batch already turned into log text (see appendFlowBatch), all from `workload`. */
export function appendLoggedBatch(
  store: Store,
  batch: NewFlowBatch,
  workload: string,
  texts: readonly LogRowText[],
): Promise<void> {
  return insertBatch(
    store,
    batch,
    texts.map((t) => logRow(batch, workload, t)),
  );
}

function logRow(batch: NewFlowBatch, workload: string, t: LogRowText): Insertable<FlowLogTable> {
  return {
    agent_id: batch.agent_id,
    batch_id: batch.batch_id,
    workload,
    count: t.count,
    summaries: t.text,
  };
}

async function insertBatch(
  store: Store,
  batch: NewFlowBatch,
  logRows: readonly Insertable<FlowLogTable>[],
): Promise<void> {
  await store.transaction(async (trx) => {
    await trx.insertInto('flow_batches').values(batch).execute();
    for (let i = 0; i < logRows.length; i += LOG_ROWS_PER_INSERT)
      await trx
        .insertInto('flow_log')
        .values(logRows.slice(i, i + LOG_ROWS_PER_INSERT))
        .execute();
  });
}

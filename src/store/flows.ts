/**
 * Writing flow summaries, the one table that takes agent traffic at volume, so each
 * database gets the statement it runs fastest: on SQLite one prepared single-row INSERT
 * run per row inside the caller's transaction (no SQL to build or parse per batch); on
 * PostgreSQL one array per column through UNNEST (13 parameters instead of 13 per row).
 */
import { sql, type Insertable } from 'kysely';
import type { SqliteConnection, StoreDialect } from './dialect/dialect.js';
import type { FlowSummariesTable } from './schema.js';
import type { Db } from './store.js';

export type NewFlowSummary = Insertable<FlowSummariesTable>;

const SQLITE_INSERT = `insert into flow_summaries
  (agent_id, batch_id, workload, src, dst, proto, dport, process, first_seen, last_seen, connections, bytes, decision)
  values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

const prepared = new WeakMap<SqliteConnection, { run(...params: unknown[]): unknown }>();

/** Inserts flow summaries; call it inside a transaction (`store.transaction`). */
export async function insertFlowSummaries(
  db: Db,
  dialect: StoreDialect,
  rows: readonly NewFlowSummary[],
): Promise<void> {
  if (rows.length === 0) return;
  const connection = dialect.sqliteConnection();
  if (connection) {
    let insert = prepared.get(connection);
    if (!insert) prepared.set(connection, (insert = connection.prepare(SQLITE_INSERT)));
    for (const r of rows) {
      insert.run(
        r.agent_id,
        r.batch_id,
        r.workload,
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
      );
    }
    return Promise.resolve();
  }
  const column = <K extends keyof NewFlowSummary>(k: K) => rows.map((r) => r[k] ?? null);
  await sql`
    insert into flow_summaries
      (agent_id, batch_id, workload, src, dst, proto, dport, process, first_seen, last_seen, connections, bytes, decision)
    select * from unnest(
      ${column('agent_id')}::text[], ${column('batch_id')}::text[], ${column('workload')}::text[],
      ${column('src')}::text[], ${column('dst')}::text[], ${column('proto')}::text[],
      ${column('dport')}::integer[], ${column('process')}::text[],
      ${column('first_seen')}::text[], ${column('last_seen')}::text[],
      ${column('connections')}::integer[], ${column('bytes')}::bigint[], ${column('decision')}::text[]
    )`.execute(db);
}

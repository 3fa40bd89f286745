/**
 * Storing a batch of flow summaries, the one write that takes agent traffic at volume, so
 * each database gets the statement it runs fastest: on SQLite one prepared single-row
 * INSERT run per row (no SQL to build or parse per batch); on PostgreSQL one COPY of the
 * whole batch in text format (no parameters, no planning, the least work per row the
 * server offers). Either way the batch row and its summaries land in one transaction.
 */
import type { Insertable } from 'kysely';
import copyStreams from 'pg-copy-streams';
import type pg from 'pg';
import type { SqliteConnection } from './dialect/dialect.js';
import type { FlowBatchesTable, FlowSummariesTable } from './schema.js';
import type { Store } from './store.js';

export type NewFlowBatch = Insertable<FlowBatchesTable>;
export type NewFlowSummary = Insertable<FlowSummariesTable>;

/** The columns in the order both statements write them. */
const COLUMNS = [
  'agent_id',
  'batch_id',
  'workload',
  'src',
  'dst',
  'proto',
  'dport',
  'process',
  'first_seen',
  'last_seen',
  'connections',
  'bytes',
  'decision',
] as const satisfies readonly (keyof NewFlowSummary)[];

const SQLITE_INSERT = `insert into flow_summaries (${COLUMNS.join(', ')})
  values (${COLUMNS.map(() => '?').join(', ')})`;

const prepared = new WeakMap<SqliteConnection, { run(...params: unknown[]): unknown }>();

/**
 * Stores one batch: its `flow_batches` row (whose primary key makes a retried batch fail
 * with a unique violation, which the caller turns into "duplicate") and its summaries.
 */
export async function appendFlowBatch(
  store: Store,
  batch: NewFlowBatch,
  rows: readonly NewFlowSummary[],
): Promise<void> {
  const pool = store.dialect.postgresPool();
  if (pool) return copyBatch(pool, batch, rows);
  await store.transaction(async (trx) => {
    await trx.insertInto('flow_batches').values(batch).execute();
    const connection = store.dialect.sqliteConnection();
    if (!connection) throw new Error(`${store.dialect.name}: no connection for flow summaries`);
    let insert = prepared.get(connection);
    if (!insert) prepared.set(connection, (insert = connection.prepare(SQLITE_INSERT)));
    for (const r of rows) insert.run(...COLUMNS.map((c) => r[c] ?? null));
  });
}

async function copyBatch(
  pool: pg.Pool,
  batch: NewFlowBatch,
  rows: readonly NewFlowSummary[],
): Promise<void> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('begin');
    try {
      await client.query(
        'insert into flow_batches (agent_id, batch_id, received_at, summaries) values ($1, $2, $3, $4)',
        [batch.agent_id, batch.batch_id, batch.received_at, batch.summaries],
      );
      if (rows.length > 0) await copyRows(client, rows);
      await client.query('commit');
    } catch (e) {
      await client.query('rollback').catch(() => {
        // The connection itself failed: the pool must not hand it out again.
        broken = true;
      });
      throw e;
    }
  } finally {
    client.release(broken);
  }
}

function copyRows(client: pg.PoolClient, rows: readonly NewFlowSummary[]): Promise<void> {
  let text = '';
  for (const r of rows) {
    for (let i = 0; i < COLUMNS.length; i++) {
      text += copyField(r[COLUMNS[i]!]);
      text += i === COLUMNS.length - 1 ? '\n' : '\t';
    }
  }
  return new Promise((resolve, reject) => {
    const stream = client.query(
      copyStreams.from(`copy flow_summaries (${COLUMNS.join(', ')}) from stdin`),
    );
    stream.on('finish', resolve);
    stream.on('error', reject);
    stream.end(text);
  });
}

const COPY_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
};

const COPY_SPECIAL = /[\\\t\n\r]/;

/** One field in COPY's text format: \N for null, and its four special characters escaped. */
function copyField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '\\N';
  if (typeof value === 'number') return String(value);
  // Almost every value has nothing to escape; testing first spares building a new string.
  return COPY_SPECIAL.test(value) ? value.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!) : value;
}

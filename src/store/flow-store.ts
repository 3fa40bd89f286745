/**
 * The flow store's tables: edges, and traffic per (bucket, edge) at three resolutions.
 * Writes come in chunks of thousands, so each database gets the statement it runs fastest:
 * on SQLite prepared statements of a few hundred rows each inside the caller's transaction;
 * on PostgreSQL one statement per chunk over `unnest` of column arrays (a handful of
 * parameters however many rows), the hour and day buckets summed by the server from the
 * minutes. Reads are one aggregate query per window.
 *
 * Every write here must run inside `store.transaction` (SQLite's prepared statements use
 * the one connection Kysely holds for that transaction).
 */
import type BetterSqlite3 from 'better-sqlite3';
import { sql, type SelectQueryBuilder, type Transaction } from 'kysely';
import { RESOLUTION_SECONDS, type Resolution } from '../analysis/flows/model.js';
import type { Database, FlowEdgesTable } from './schema.js';
import type { LoggedSummary } from './flows.js';
import type { Db, Store } from './store.js';

export const BUCKET_TABLE: Readonly<
  Record<Resolution, 'flow_minutes' | 'flow_hours' | 'flow_days'>
> = {
  minute: 'flow_minutes',
  hour: 'flow_hours',
  day: 'flow_days',
};

export type EdgeRow = Omit<FlowEdgesTable, 'id'> & { id: number };
export type NewEdgeRow = Omit<FlowEdgesTable, 'id'>;

/** Traffic to add to one bucket of one edge. Times in epoch milliseconds. */
export interface BucketDelta {
  readonly bucket: number;
  readonly edgeId: number;
  readonly connections: number;
  /** Of `connections`, those reported blocked. */
  readonly blocked: number;
  readonly bytes: number;
  readonly firstSeen: number;
  readonly lastSeen: number;
}

/** An edge's traffic summed over a window. Times in epoch milliseconds. */
export interface TrafficSum {
  readonly edgeId: number;
  readonly connections: number;
  /** Of `connections`, those reported blocked. */
  readonly blocked: number;
  readonly bytes: number;
  readonly firstSeen: number;
  readonly lastSeen: number;
}

export interface VerdictUpdate {
  readonly id: number;
  readonly srcGroup: string | null;
  readonly dstGroup: string | null;
  readonly decision: string;
  readonly decidedBy: string;
  readonly draftDecision: string;
  readonly draftDecidedBy: string;
  readonly revision: number;
}

type Statement = BetterSqlite3.Statement;

/** The SQLite connection behind Kysely (only used inside a transaction), or null on PostgreSQL. */
function sqliteOf(store: Store): BetterSqlite3.Database | null {
  return store.dialect.sqliteConnection() as BetterSqlite3.Database | null;
}

const statements = new WeakMap<object, Map<string, Statement>>();
function prepared(db: BetterSqlite3.Database, text: string): Statement {
  let byText = statements.get(db);
  if (!byText) statements.set(db, (byText = new Map<string, Statement>()));
  let s = byText.get(text);
  if (!s) byText.set(text, (s = db.prepare(text)));
  return s;
}

const EDGE_COLUMNS = [
  'key',
  'src_workload',
  'src_address',
  'dst_workload',
  'dst_address',
  'proto',
  'port',
  'process',
  'src_group',
  'dst_group',
  'decision',
  'decided_by',
  'draft_decision',
  'draft_decided_by',
  'decided_revision',
] as const satisfies readonly (keyof NewEdgeRow)[];

const EDGE_PG_TYPES: Readonly<Record<(typeof EDGE_COLUMNS)[number], string>> = {
  key: 'text',
  src_workload: 'text',
  src_address: 'text',
  dst_workload: 'text',
  dst_address: 'text',
  proto: 'text',
  port: 'integer',
  process: 'text',
  src_group: 'text',
  dst_group: 'text',
  decision: 'text',
  decided_by: 'text',
  draft_decision: 'text',
  draft_decided_by: 'text',
  decided_revision: 'bigint',
};

/** Rows per PostgreSQL statement: large enough to amortise a round trip, small enough to plan. */
const PG_CHUNK = 50_000;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Inserts the edges not stored yet and returns every given edge's id by key (an edge
 * stored meanwhile, by another writer, keeps its row and verdicts).
 */
export async function upsertEdges(
  store: Store,
  trx: Transaction<Database>,
  edges: readonly NewEdgeRow[],
): Promise<Map<string, number>> {
  const ids = new Map<string, number>();
  if (edges.length === 0) return ids;
  const lite = sqliteOf(store);
  if (lite) {
    const insert = prepared(
      lite,
      `insert into flow_edges (${EDGE_COLUMNS.join(', ')}) values (${EDGE_COLUMNS.map(() => '?').join(', ')})
       on conflict (key) do nothing`,
    );
    const select = prepared(lite, 'select id from flow_edges where key = ?');
    for (const e of edges) {
      insert.run(...EDGE_COLUMNS.map((c) => e[c]));
      const row = select.get(e.key) as { id: number } | undefined;
      if (!row) throw new Error(`flow edge ${e.key} vanished while it was stored`);
      ids.set(e.key, Number(row.id));
    }
    return ids;
  }
  for (const part of chunks(edges, PG_CHUNK)) {
    const arrays = EDGE_COLUMNS.map(
      (c) => sql`${part.map((e) => e[c])}::${sql.raw(EDGE_PG_TYPES[c])}[]`,
    );
    await sql`insert into flow_edges (${sql.raw(EDGE_COLUMNS.join(', '))})
      select * from unnest(${sql.join(arrays)})
      on conflict (key) do nothing`.execute(trx);
    const rows = await sql<{ id: number; key: string }>`select id, key from flow_edges
      where key = any(${part.map((e) => e.key)}::text[])`.execute(trx);
    for (const r of rows.rows) ids.set(r.key, Number(r.id));
  }
  for (const e of edges)
    if (!ids.has(e.key)) throw new Error(`flow edge ${e.key} vanished while it was stored`);
  return ids;
}

/**
 * A PostgreSQL array literal of whole numbers, `{1,2,3}`: built by one join, where handing
 * the driver a JavaScript array has it escape and quote every element on its own.
 */
function bigintArray<T>(items: readonly T[], value: (item: T) => number): string {
  const out = new Array<number>(items.length);
  for (let i = 0; i < items.length; i++) out[i] = value(items[i]!);
  return `{${out.join(',')}}`;
}

/** Rows per SQLite upsert statement: one statement binds and steps for many rows at once. */
const SQLITE_ROWS = 200;

function sqliteUpsertText(table: string, rows: number): string {
  const values = Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?, ?)').join(', ');
  return `insert into ${table} (bucket, edge_id, connections, blocked, bytes, first_seen, last_seen)
    values ${values}
    on conflict (bucket, edge_id) do update set
      connections = connections + excluded.connections,
      blocked = blocked + excluded.blocked,
      bytes = bytes + excluded.bytes,
      first_seen = min(first_seen, excluded.first_seen),
      last_seen = max(last_seen, excluded.last_seen)`;
}

/** Upserts deltas (one per (bucket, edge)) SQLITE_ROWS at a time, then the rest one by one. */
function sqliteUpsert(
  lite: BetterSqlite3.Database,
  table: string,
  deltas: readonly BucketDelta[],
): void {
  const many = prepared(lite, sqliteUpsertText(table, SQLITE_ROWS));
  const one = prepared(lite, sqliteUpsertText(table, 1));
  const params = new Array<number>(SQLITE_ROWS * 7);
  let i = 0;
  for (; i + SQLITE_ROWS <= deltas.length; i += SQLITE_ROWS) {
    for (let j = 0; j < SQLITE_ROWS; j++) {
      const d = deltas[i + j]!;
      const p = j * 7;
      params[p] = d.bucket;
      params[p + 1] = d.edgeId;
      params[p + 2] = d.connections;
      params[p + 3] = d.blocked;
      params[p + 4] = d.bytes;
      params[p + 5] = d.firstSeen;
      params[p + 6] = d.lastSeen;
    }
    many.run(params);
  }
  for (; i < deltas.length; i++) {
    const d = deltas[i]!;
    one.run(d.bucket, d.edgeId, d.connections, d.blocked, d.bytes, d.firstSeen, d.lastSeen);
  }
}

/** PostgreSQL: what adding to an existing bucket does. */
const BUCKET_UPDATE = (table: string) => sql`on conflict (bucket, edge_id) do update set
  connections = ${sql.table(table)}.connections + excluded.connections,
  blocked = ${sql.table(table)}.blocked + excluded.blocked,
  bytes = ${sql.table(table)}.bytes + excluded.bytes,
  first_seen = least(${sql.table(table)}.first_seen, excluded.first_seen),
  last_seen = greatest(${sql.table(table)}.last_seen, excluded.last_seen)`;

/** Adds traffic to buckets (summing into existing ones). One delta per (bucket, edge) per call. */
export async function addTraffic(
  store: Store,
  trx: Transaction<Database>,
  resolution: Resolution,
  deltas: readonly BucketDelta[],
): Promise<void> {
  if (deltas.length === 0) return;
  const table = BUCKET_TABLE[resolution];
  const lite = sqliteOf(store);
  if (lite) {
    sqliteUpsert(lite, table, deltas);
    return;
  }
  for (const part of chunks(deltas, PG_CHUNK)) {
    const column = (f: (d: BucketDelta) => number) => sql`${bigintArray(part, f)}::bigint[]`;
    await sql`insert into ${sql.table(table)} (bucket, edge_id, connections, blocked, bytes, first_seen, last_seen)
      select * from unnest(
        ${column((d) => d.bucket)}, ${column((d) => d.edgeId)},
        ${column((d) => d.connections)}, ${column((d) => d.blocked)}, ${column((d) => d.bytes)},
        ${column((d) => d.firstSeen)}, ${column((d) => d.lastSeen)})
      ${BUCKET_UPDATE(table)}`.execute(trx);
  }
}

/**
 * Whether the database sums a chunk's minute traffic into hours and days itself (see
 * addTrafficFromMinutes): on PostgreSQL the rows it never has to receive and parse are
 * most of what an upsert costs there. SQLite, in-process, takes each resolution's sums.
 */
export function sumsCoarserBuckets(store: Store): boolean {
  return store.dialect.name === 'postgres';
}

/**
 * PostgreSQL: adds minute deltas (one per (minute, edge)) to the minute buckets, and summed
 * by hour and by day to those buckets, in one statement; each resolution only from the
 * first bucket `keepFrom` says retention keeps (bucket boundaries, so a minute's start
 * compares as its traffic's times do).
 */
export async function addTrafficFromMinutes(
  trx: Transaction<Database>,
  keepFrom: Readonly<Record<Resolution, number>>,
  deltas: readonly BucketDelta[],
): Promise<void> {
  const coarser = (r: 'hour' | 'day') => {
    const size = RESOLUTION_SECONDS[r];
    return sql`insert into ${sql.table(BUCKET_TABLE[r])} (bucket, edge_id, connections, blocked, bytes, first_seen, last_seen)
      select bucket - bucket % ${size}, edge_id, sum(connections)::bigint, sum(blocked)::bigint,
        sum(bytes)::bigint,
        min(first_seen), max(last_seen)
      from d where bucket >= ${keepFrom[r]} group by 1, 2
      ${BUCKET_UPDATE(BUCKET_TABLE[r])}`;
  };
  for (const part of chunks(deltas, PG_CHUNK)) {
    const column = (f: (d: BucketDelta) => number) => sql`${bigintArray(part, f)}::bigint[]`;
    await sql`with d (bucket, edge_id, connections, blocked, bytes, first_seen, last_seen) as (
        select * from unnest(
          ${column((d) => d.bucket)}, ${column((d) => d.edgeId)},
          ${column((d) => d.connections)}, ${column((d) => d.blocked)}, ${column((d) => d.bytes)},
          ${column((d) => d.firstSeen)}, ${column((d) => d.lastSeen)})),
      minutes as (
        insert into flow_minutes (bucket, edge_id, connections, blocked, bytes, first_seen, last_seen)
        select * from d where bucket >= ${keepFrom.minute}
        ${BUCKET_UPDATE('flow_minutes')}),
      hours as (${coarser('hour')})
      ${coarser('day')}`.execute(trx);
  }
}

/** Each edge's traffic in [from, to) (bucket starts, epoch seconds). */
export async function windowTraffic(
  store: Store,
  resolution: Resolution,
  from: number,
  to: number,
): Promise<TrafficSum[]> {
  if (store.dialect.name !== 'postgres') return sumBuckets(store.db, resolution, from, to);
  return store.db.transaction().execute(async (trx) => {
    // Summing a busy window groups 50k edges: PostgreSQL's default 4 MB of work memory
    // spills that hash to disk, and compiling the plan (JIT) costs more than it saves.
    // Measured on 1.2M hour rows: 600 ms as it was, 400 ms with these.
    await sql`set local work_mem = '64MB'`.execute(trx);
    await sql`set local jit = off`.execute(trx);
    return sumBuckets(trx, resolution, from, to);
  });
}

async function sumBuckets(
  db: Db,
  resolution: Resolution,
  from: number,
  to: number,
): Promise<TrafficSum[]> {
  const rows = await db
    .selectFrom(BUCKET_TABLE[resolution])
    .select((eb) => [
      'edge_id',
      eb.fn.sum<number>('connections').as('connections'),
      eb.fn.sum<number>('blocked').as('blocked'),
      eb.fn.sum<number>('bytes').as('bytes'),
      eb.fn.min<number>('first_seen').as('first_seen'),
      eb.fn.max<number>('last_seen').as('last_seen'),
    ])
    .where('bucket', '>=', from)
    .where('bucket', '<', to)
    .groupBy('edge_id')
    .execute();
  return rows.map((r) => ({
    edgeId: Number(r.edge_id),
    connections: Number(r.connections),
    blocked: Number(r.blocked),
    bytes: Number(r.bytes),
    firstSeen: Number(r.first_seen),
    lastSeen: Number(r.last_seen),
  }));
}

/** Traffic per bucket in [from, to), over every edge or only the given ones. */
export async function bucketTotals(
  db: Db,
  resolution: Resolution,
  from: number,
  to: number,
  edgeIds?: readonly number[],
): Promise<Map<number, { connections: number; bytes: number }>> {
  const totals = new Map<number, { connections: number; bytes: number }>();
  const read = async (ids?: readonly number[]) => {
    let q = db
      .selectFrom(BUCKET_TABLE[resolution])
      .select((eb) => [
        'bucket',
        eb.fn.sum<number>('connections').as('connections'),
        eb.fn.sum<number>('bytes').as('bytes'),
      ])
      .where('bucket', '>=', from)
      .where('bucket', '<', to);
    if (ids) q = q.where('edge_id', 'in', ids);
    for (const r of await q.groupBy('bucket').execute()) {
      const bucket = Number(r.bucket);
      const t = totals.get(bucket);
      if (t) {
        t.connections += Number(r.connections);
        t.bytes += Number(r.bytes);
      } else totals.set(bucket, { connections: Number(r.connections), bytes: Number(r.bytes) });
    }
  };
  if (!edgeIds) await read();
  // Within both databases' limits on bound parameters.
  else for (const ids of chunks(edgeIds, 30_000)) await read(ids);
  return totals;
}

/** Edges after `afterId`, by id. */
export async function readEdges(db: Db, afterId: number, limit: number): Promise<EdgeRow[]> {
  const rows = await db
    .selectFrom('flow_edges')
    .selectAll()
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    ...r,
    id: Number(r.id),
    decided_revision: Number(r.decided_revision),
  }));
}

/** Edges decided under a revision older than `revision`, after `afterId`, by id. */
export async function readStaleEdges(
  db: Db,
  revision: number,
  afterId: number,
  limit: number,
): Promise<EdgeRow[]> {
  const rows = await db
    .selectFrom('flow_edges')
    .selectAll()
    .where('id', '>', afterId)
    .where('decided_revision', '<', revision)
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    ...r,
    id: Number(r.id),
    decided_revision: Number(r.decided_revision),
  }));
}

/** How many rows a query selects (PostgreSQL answers count(*) as text, hence Number). */
async function rowCount<T extends keyof Database>(
  query: SelectQueryBuilder<Database, T, object>,
): Promise<number> {
  const row = await query
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export function countStaleEdges(db: Db, revision: number): Promise<number> {
  return rowCount(db.selectFrom('flow_edges').where('decided_revision', '<', revision));
}

export function countEdges(db: Db): Promise<number> {
  return rowCount(db.selectFrom('flow_edges'));
}

/** Writes re-computed verdicts and address groups. */
export async function updateVerdicts(
  store: Store,
  trx: Transaction<Database>,
  updates: readonly VerdictUpdate[],
): Promise<void> {
  if (updates.length === 0) return;
  const lite = sqliteOf(store);
  if (lite) {
    const update = prepared(
      lite,
      `update flow_edges set src_group = ?, dst_group = ?, decision = ?, decided_by = ?,
         draft_decision = ?, draft_decided_by = ?, decided_revision = ? where id = ?`,
    );
    for (const u of updates)
      update.run(
        u.srcGroup,
        u.dstGroup,
        u.decision,
        u.decidedBy,
        u.draftDecision,
        u.draftDecidedBy,
        u.revision,
        u.id,
      );
    return;
  }
  for (const part of chunks(updates, PG_CHUNK)) {
    await sql`update flow_edges as e set
        src_group = v.src_group, dst_group = v.dst_group, decision = v.decision,
        decided_by = v.decided_by, draft_decision = v.draft_decision,
        draft_decided_by = v.draft_decided_by, decided_revision = v.decided_revision
      from unnest(
        ${part.map((u) => u.id)}::bigint[], ${part.map((u) => u.srcGroup)}::text[],
        ${part.map((u) => u.dstGroup)}::text[], ${part.map((u) => u.decision)}::text[],
        ${part.map((u) => u.decidedBy)}::text[], ${part.map((u) => u.draftDecision)}::text[],
        ${part.map((u) => u.draftDecidedBy)}::text[], ${part.map((u) => u.revision)}::bigint[])
        as v(id, src_group, dst_group, decision, decided_by, draft_decision, draft_decided_by, decided_revision)
      where e.id = v.id`.execute(trx);
  }
}

/** How much time one retention delete covers, so that no statement holds the writer long. */
const DELETE_SPAN: Readonly<Record<Resolution, number>> = {
  minute: 3600,
  hour: 86_400,
  day: 30 * 86_400,
};

/** Deletes buckets that start before `bucket` (epoch seconds), a span at a time; returns how many. */
export async function deleteBucketsBefore(
  db: Db,
  resolution: Resolution,
  bucket: number,
): Promise<number> {
  const table = BUCKET_TABLE[resolution];
  const oldest = await db
    .selectFrom(table)
    .select((eb) => eb.fn.min<number>('bucket').as('bucket'))
    .executeTakeFirst();
  if (oldest?.bucket === null || oldest?.bucket === undefined) return 0;
  let deleted = 0;
  for (let upTo = Number(oldest.bucket); upTo < bucket;) {
    upTo = Math.min(upTo + DELETE_SPAN[resolution], bucket);
    const result = await db.deleteFrom(table).where('bucket', '<', upTo).executeTakeFirst();
    deleted += Number(result.numDeletedRows);
  }
  return deleted;
}

/**
 * Deletes every edge and bucket inside `trx`. On PostgreSQL TRUNCATE (as transactional as
 * DELETE there, but it leaves no dead rows for vacuum to chase); on SQLite a DELETE without
 * a condition, which SQLite already carries out by dropping the tables' pages.
 */
export async function clearFlowTables(store: Store, trx: Transaction<Database>): Promise<void> {
  const tables = [...Object.values(BUCKET_TABLE), 'flow_edges'] as const;
  if (store.dialect.name === 'postgres') {
    await sql`truncate ${sql.join(tables.map((t) => sql.table(t)))}`.execute(trx);
    return;
  }
  for (const t of tables) await trx.deleteFrom(t).execute();
}

// ------------------------------------------------------------------ the ingest log and cursors

/** One row of the ingest log: a batch's summaries (or part of an import's), expanded. */
export interface LogEntry {
  readonly id: number;
  /** The reporting agent's workload ('' for imports). */
  readonly workload: string;
  readonly summaries: readonly LoggedSummary[];
}

/**
 * Log rows read per query while gathering a chunk: the first page is small, later ones are
 * sized by the summaries per row seen so far (an agent's batch is a row of hundreds, a mixed
 * import many rows of a few), so a chunk takes a few queries and reads little past its end.
 */
const FIRST_LOG_PAGE = 20;
const MAX_LOG_PAGE = 5000;

type LogRow = readonly [id: number, workload: string, summaries: string];

/**
 * Log rows after `afterId`, oldest first, until they hold at least `limit` summaries (rows
 * are taken whole, so a chunk may hold a few more). A row that is not a JSON array (the log
 * is a table anyone with the database can write) is returned with no summaries and counted
 * in `unreadable`, so that one bad row cannot stop the roll-up for good.
 */
export async function readLog(
  store: Store,
  db: Db,
  afterId: number,
  limit: number,
): Promise<{ entries: LogEntry[]; summaries: number; unreadable: number[] }> {
  const entries: LogEntry[] = [];
  const unreadable: number[] = [];
  let summaries = 0;
  let after = afterId;
  let page = FIRST_LOG_PAGE;
  while (summaries < limit) {
    const rows = await readLogRows(store, db, after, page);
    for (const [id, workload, text] of rows) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
      if (!Array.isArray(parsed)) {
        unreadable.push(Number(id));
        entries.push({ id: Number(id), workload, summaries: [] });
      } else {
        entries.push({ id: Number(id), workload, summaries: parsed as LoggedSummary[] });
        summaries += parsed.length;
      }
      after = Number(id);
      if (summaries >= limit) break;
    }
    if (rows.length < page) break;
    const perRow = Math.max(1, summaries / entries.length);
    page = Math.min(
      MAX_LOG_PAGE,
      Math.max(FIRST_LOG_PAGE, Math.ceil((limit - summaries) / perRow)),
    );
  }
  return { entries, summaries, unreadable };
}

const LOG_AFTER = 'select id, workload, summaries from flow_log where id > ? order by id limit ?';

async function readLogRows(
  store: Store,
  db: Db,
  afterId: number,
  limit: number,
): Promise<readonly LogRow[]> {
  const lite = sqliteOf(store);
  if (lite) return prepared(lite, LOG_AFTER).raw(true).all(afterId, limit) as LogRow[];
  const rows = await db
    .selectFrom('flow_log')
    .select(['id', 'workload', 'summaries'])
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((r) => [Number(r.id), r.workload, r.summaries] as const);
}

/** How many summaries the log holds after `afterId`. */
export async function countSummariesAfter(db: Db, afterId: number): Promise<number> {
  const row = await db
    .selectFrom('flow_log')
    .select((eb) => eb.fn.sum<number>('count').as('n'))
    .where('id', '>', afterId)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** The newest log row's id (0 when the log is empty). */
export async function lastLogId(db: Db): Promise<number> {
  const row = await db
    .selectFrom('flow_log')
    .select((eb) => eb.fn.max<number>('id').as('id'))
    .executeTakeFirst();
  return row?.id === null || row?.id === undefined ? 0 : Number(row.id);
}

/** Deletes rolled-up log rows with ids up to `id`, at most `limit` of them; returns how many. */
export async function deleteLogUpTo(db: Db, id: number, limit: number): Promise<number> {
  const first = await db
    .selectFrom('flow_log')
    .select((eb) => eb.fn.min<number>('id').as('id'))
    .executeTakeFirst();
  if (first?.id === null || first?.id === undefined) return 0;
  const upTo = Math.min(id, Number(first.id) + limit - 1);
  const result = await db.deleteFrom('flow_log').where('id', '<=', upTo).executeTakeFirst();
  return Number(result.numDeletedRows);
}

export const ROLLUP_CURSOR = 'flow_rollup_cursor';
export const DECISION_REVISION = 'flow_decision_revision';
/**
 * Bumped by every reset: a writer that sees it change drops the edge ids it cached (another
 * replica may have deleted those edges), so no traffic is written against a deleted edge.
 */
export const FLOW_STORE_EPOCH = 'flow_store_epoch';

/**
 * Makes the flow store's writers (control-plane replicas sharing a PostgreSQL database) take
 * turns until the transaction ends, so no summary is rolled up twice. SQLite has one writer.
 */
export async function lockFlowWriters(store: Store, trx: Transaction<Database>): Promise<void> {
  if (store.dialect.name !== 'postgres') return;
  await sql`select pg_advisory_xact_lock(480511)`.execute(trx);
  // A roll-up lost to a crash is simply rolled up again (its cursor moves in the same
  // transaction), so its commit need not wait for the disk.
  await sql`set local synchronous_commit = off`.execute(trx);
}

/** A number kept in `meta` (0 when unset). */
export async function readCounter(db: Db, key: string): Promise<number> {
  const row = await db.selectFrom('meta').select('value').where('key', '=', key).executeTakeFirst();
  return row ? Number(JSON.parse(row.value)) : 0;
}

/** Several numbers kept in `meta` in one query (0 for each unset one). */
export async function readCounters<K extends string>(
  db: Db,
  keys: readonly K[],
): Promise<Record<K, number>> {
  const rows = await db
    .selectFrom('meta')
    .select(['key', 'value'])
    .where('key', 'in', keys)
    .execute();
  const out = Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
  for (const r of rows) out[r.key as K] = Number(JSON.parse(r.value));
  return out;
}

export async function writeCounter(db: Db, key: string, value: number): Promise<void> {
  await db
    .insertInto('meta')
    .values({ key, value: JSON.stringify(value) })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value: JSON.stringify(value) }))
    .execute();
}

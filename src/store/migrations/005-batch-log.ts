/**
 * The ingest log keeps batches, not rows: `flow_log` holds each batch's summaries as one JSON
 * array (see src/store/flows.ts for why). Summaries not rolled up yet move into it, in their
 * order, so the roll-up carries on where it was; those already rolled up were only kept for
 * a grace period and go. `flow_summaries` becomes a view of the log, one row per summary,
 * for whoever reads the log with SQL.
 */
import { sql, type Kysely } from 'kysely';
import type { MigrationContext } from './context.js';

/** The meta key of the roll-up's cursor (ROLLUP_CURSOR in src/store/flow-store.ts). */
const CURSOR = 'flow_rollup_cursor';

/** The tuple order of a logged summary (LoggedSummary in src/store/flows.ts). */
const FIELDS = [
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
] as const;

export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('flow_log')
    .addColumn('id', ctx.autoIdType, (c) => c.primaryKey().$call(ctx.autoIncrement))
    .addColumn('agent_id', 'text', (c) => c.notNull())
    .addColumn('batch_id', 'text', (c) => c.notNull())
    .addColumn('workload', 'text', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .addColumn('summaries', 'text', (c) => c.notNull())
    .execute();

  const row = (
    await sql<{ value: string }>`select value from meta where key = ${CURSOR}`.execute(db)
  ).rows[0];
  const cursor = row ? Number(JSON.parse(row.value)) : 0;
  const tuple = sql.raw(FIELDS.join(', '));
  if (ctx.dialect === 'sqlite') {
    await sql`insert into flow_log (agent_id, batch_id, workload, count, summaries)
      select agent_id, batch_id, workload, count(*), json_group_array(json_array(${tuple}))
        from (select * from flow_summaries where id > ${cursor} order by id)
       group by agent_id, batch_id, workload
       order by min(id)`.execute(db);
  } else {
    await sql`insert into flow_log (agent_id, batch_id, workload, count, summaries)
      select agent_id, batch_id, workload, count(*),
             json_agg(json_build_array(${tuple}) order by id)::text
        from flow_summaries where id > ${cursor}
       group by agent_id, batch_id, workload
       order by min(id)`.execute(db);
  }
  // The cursor now counts log rows, and every row in the log is still to be rolled up.
  if (row) await sql`update meta set value = '0' where key = ${CURSOR}`.execute(db);
  await db.schema.dropTable('flow_summaries').execute();

  const column = (i: number, name: string, cast = '') =>
    ctx.dialect === 'sqlite'
      ? `json_extract(e.value, '$[${i}]') as ${name}`
      : `${cast ? '(' : ''}e ->> ${i}${cast ? `)::${cast}` : ''} as ${name}`;
  const casts: Partial<Record<(typeof FIELDS)[number], string>> = {
    dport: 'integer',
    connections: 'bigint',
    bytes: 'bigint',
  };
  const columns = FIELDS.map((f, i) => column(i, f, casts[f])).join(', ');
  const elements =
    ctx.dialect === 'sqlite'
      ? 'flow_log l, json_each(l.summaries) e'
      : 'flow_log l cross join lateral jsonb_array_elements(l.summaries::jsonb) e';
  await sql
    .raw(
      `create view flow_summaries as
         select l.id, l.agent_id, l.batch_id, l.workload, ${columns} from ${elements}`,
    )
    .execute(db);
}

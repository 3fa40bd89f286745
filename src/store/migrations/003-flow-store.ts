/**
 * The flow store: distinct edges (with their decisions under the active version and the
 * draft) and their traffic summed per time bucket at three resolutions. Buckets are keyed
 * (bucket, edge_id) so a window is one range scan of the primary key; on SQLite the tables
 * are WITHOUT ROWID, so that scan reads the rows themselves rather than an index and then
 * the table. Times on buckets are epoch numbers (bucket start in seconds, first and last
 * seen in milliseconds): the aggregates compare and sum them by the million.
 */
import { sql, type Kysely } from 'kysely';
import type { MigrationContext } from './context.js';

export const BUCKET_TABLES = ['flow_minutes', 'flow_hours', 'flow_days'] as const;

export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  // Only SQLite spells its auto-increment id `integer`.
  const sqlite = ctx.autoIdType === 'integer';
  await db.schema
    .createTable('flow_edges')
    .addColumn('id', ctx.autoIdType, (c) => c.primaryKey().$call(ctx.autoIncrement))
    .addColumn('key', 'text', (c) => c.notNull().unique())
    .addColumn('src_workload', 'text')
    .addColumn('src_address', 'text')
    .addColumn('dst_workload', 'text')
    .addColumn('dst_address', 'text')
    .addColumn('proto', 'text', (c) => c.notNull())
    .addColumn('port', 'integer')
    .addColumn('process', 'text')
    .addColumn('src_group', 'text')
    .addColumn('dst_group', 'text')
    .addColumn('decision', 'text', (c) => c.notNull())
    .addColumn('decided_by', 'text', (c) => c.notNull())
    .addColumn('draft_decision', 'text', (c) => c.notNull())
    .addColumn('draft_decided_by', 'text', (c) => c.notNull())
    .addColumn('decided_revision', 'bigint', (c) => c.notNull())
    .execute();

  for (const table of BUCKET_TABLES) {
    await db.schema
      .createTable(table)
      .addColumn('bucket', 'bigint', (c) => c.notNull())
      .addColumn('edge_id', 'bigint', (c) => c.notNull())
      .addColumn('connections', 'bigint', (c) => c.notNull())
      .addColumn('bytes', 'bigint', (c) => c.notNull())
      .addColumn('first_seen', 'bigint', (c) => c.notNull())
      .addColumn('last_seen', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint(`${table}_pk`, ['bucket', 'edge_id'])
      .$call((t) => (sqlite ? t.modifyEnd(sql`without rowid`) : t))
      .execute();
  }
}

/**
 * flow_summaries is the ingest log: agents append to it at volume and the flow store reads
 * it forward by id. No query reads it by last_seen, so that index only taxed every insert
 * (about a quarter of PostgreSQL's time per summary); time-window questions go to the
 * flow store's own aggregates.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('flow_summaries_last_seen').ifExists().execute();
}

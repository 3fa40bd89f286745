/**
 * Blocked attempts apart from traffic that went through: when an agent enforces, what it
 * drops is still reported (a security team wants to see it), but a dropped attempt is not a
 * conversation that works. The policy generator must not propose rules for it, so each
 * bucket keeps how many of its connections were reported blocked.
 */
import type { Kysely } from 'kysely';
import type { MigrationContext } from './context.js';
import { BUCKET_TABLES } from './003-flow-store.js';

export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  for (const table of BUCKET_TABLES) {
    await db.schema
      .alterTable(table)
      .addColumn('blocked', 'bigint', (c) => c.notNull().defaultTo(0))
      .execute();
  }
}

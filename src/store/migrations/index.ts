/**
 * Versioned migrations, in code so that they ship inside the build. Each migration is
 * written once for both databases; the few spellings that differ come from the context.
 */
import type { Kysely, Migration, MigrationProvider } from 'kysely';
import * as initial from './001-initial.js';
import * as flowLog from './002-flow-log.js';
import * as flowStore from './003-flow-store.js';
import * as blockedAttempts from './004-blocked-attempts.js';
import * as batchLog from './005-batch-log.js';
import type { MigrationContext } from './context.js';

type MigrationModule = { up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> };

const MIGRATIONS: Record<string, MigrationModule> = {
  '001-initial': initial,
  '002-flow-log': flowLog,
  '003-flow-store': flowStore,
  '004-blocked-attempts': blockedAttempts,
  '005-batch-log': batchLog,
};

export function migrationProvider(ctx: MigrationContext): MigrationProvider {
  return {
    getMigrations(): Promise<Record<string, Migration>> {
      return Promise.resolve(
        Object.fromEntries(
          Object.entries(MIGRATIONS).map(([name, m]) => [
            name,
            { up: (db: Kysely<unknown>) => m.up(db, ctx) },
          ]),
        ),
      );
    },
  };
}

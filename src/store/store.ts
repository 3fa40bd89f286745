/**
 * Opening the store: SQLite under the data directory by default, PostgreSQL when a
 * database URL is given; migrations run on open, so a fresh start needs no set-up.
 */
import { join } from 'node:path';
import { Migrator, type Kysely, type Transaction } from 'kysely';
import { postgresDialect } from './dialect/postgres.js';
import { sqliteDialect } from './dialect/sqlite.js';
import type { StoreDialect } from './dialect/dialect.js';
import { migrationProvider } from './migrations/index.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database> | Transaction<Database>;

export interface Store {
  readonly db: Kysely<Database>;
  readonly dialect: StoreDialect;
  /** Runs `work` in one transaction: everything it writes lands together or not at all. */
  transaction<T>(work: (trx: Transaction<Database>) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** PostgreSQL connection URL; without it, SQLite under `dataDir`. */
  readonly databaseUrl?: string;
  readonly dataDir?: string;
  /** PostgreSQL schema (tests use one per run). */
  readonly schema?: string;
}

export class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

export function dialectFor(options: StoreOptions): StoreDialect {
  if (options.databaseUrl) {
    return postgresDialect({
      url: options.databaseUrl,
      ...(options.schema ? { schema: options.schema } : {}),
    });
  }
  return sqliteDialect(
    options.dataDir === ':memory:'
      ? ':memory:'
      : join(options.dataDir ?? '.bulkhead', 'bulkhead.db'),
  );
}

export async function openStore(options: StoreOptions): Promise<Store> {
  const dialect = dialectFor(options);
  const cannotOpen = (e: unknown) =>
    new StoreError(`cannot open the store at ${dialect.location}: ${(e as Error).message}`, {
      cause: e,
    });
  let db: Kysely<Database>;
  try {
    db = dialect.open();
  } catch (e) {
    throw cannotOpen(e);
  }
  try {
    await dialect.check(db);
    const migrator = new Migrator({
      db,
      provider: migrationProvider(dialect.migration),
      ...(dialect.migrationSchema ? { migrationTableSchema: dialect.migrationSchema } : {}),
    });
    const { error, results } = await migrator.migrateToLatest();
    if (error) {
      const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
      throw new StoreError(
        `migration ${failed} failed on ${dialect.location}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  } catch (e) {
    await db.destroy();
    if (e instanceof StoreError) throw e;
    throw cannotOpen(e);
  }
  return {
    db,
    dialect,
    transaction: (work) => db.transaction().execute(work),
    close: () => db.destroy(),
  };
}

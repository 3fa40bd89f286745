/** The embedded store: one SQLite file, zero set-up. */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import type { Database } from '../schema.js';
import type { StoreDialect } from './dialect.js';

export function sqliteDialect(file: string): StoreDialect {
  let connection: SQLite.Database | null = null;
  return {
    name: 'sqlite',
    location: file,
    migration: {
      dialect: 'sqlite',
      autoIdType: 'integer',
      autoIncrement: (c) => c.autoIncrement(),
    },
    open(): Kysely<Database> {
      if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
      const db = new SQLite(file);
      connection = db;
      // WAL lets readers go on while a writer commits; foreign keys are off by default in SQLite.
      db.pragma('journal_mode = WAL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      db.pragma('synchronous = NORMAL');
      return new Kysely<Database>({ dialect: new SqliteDialect({ database: db }) });
    },
    async isUniqueViolation(error: unknown) {
      return Promise.resolve(
        (error as { code?: string }).code?.startsWith('SQLITE_CONSTRAINT') ?? false,
      );
    },
    sqliteConnection: () => connection,
    postgresPool: () => null,
    async check(db) {
      await sql`select 1`.execute(db);
    },
  };
}

/** The embedded store: one SQLite file, zero set-up. */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import type { Database } from '../schema.js';
import type { StoreDialect } from './dialect.js';

/**
 * `mkdir -p`, a level at a time. Node's own recursive mkdir never returns for a path under
 * /proc (it retries ENOENT there forever), so `--data-dir /proc/x` would hang the server
 * instead of failing with the path it cannot make.
 */
function makeDirectories(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d); d = dirname(d)) {
    missing.push(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing.reverse()) mkdirSync(d);
}

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
      if (file !== ':memory:') makeDirectories(dirname(file));
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

/**
 * What differs between the databases, and nothing more: how to connect, how a migration
 * spells an auto-increment id, and how a unique violation looks. Everything else (queries,
 * migrations, transactions) is written once against Kysely.
 */
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { MigrationContext } from '../migrations/context.js';
import type { Database } from '../schema.js';

export interface StoreDialect {
  readonly name: 'sqlite' | 'postgres';
  /** Where the data lives, for logs (no password). */
  readonly location: string;
  readonly migration: MigrationContext;
  /**
   * The schema that holds the migration bookkeeping (PostgreSQL): named explicitly, since
   * Kysely otherwise looks for its tables in every schema of the database and could take
   * another store's for ours.
   */
  readonly migrationSchema?: string;
  open(): Kysely<Database>;
  /** Prepares the connection (e.g. creates the schema) and proves it works. */
  check(db: Kysely<Database>): Promise<void>;
  isUniqueViolation(error: unknown): Promise<boolean>;
  /**
   * The SQLite connection itself, for the one bulk write that needs a prepared statement
   * (flow summaries); null for PostgreSQL. Kysely's SQLite driver has a single connection,
   * so a statement run on it inside a Kysely transaction belongs to that transaction.
   */
  sqliteConnection(): SqliteConnection | null;
  /**
   * The PostgreSQL pool behind Kysely, for the one bulk write that needs COPY (flow
   * summaries), which Kysely cannot issue; null for SQLite.
   */
  postgresPool(): pg.Pool | null;
}

/** The part of a better-sqlite3 connection the store uses directly. */
export interface SqliteConnection {
  prepare(sql: string): { run(...params: unknown[]): unknown };
}

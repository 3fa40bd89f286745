/** PostgreSQL, for control planes with several replicas sharing one database. */
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from '../schema.js';
import type { StoreDialect } from './dialect.js';

// COUNT(*) and BIGINT come back as text by default; every count and byte total here fits a double.
pg.types.setTypeParser(20, (v) => Number(v));

export interface PostgresOptions {
  readonly url: string;
  /** A schema of its own (created if missing); tests use one per run. */
  readonly schema?: string;
  readonly poolSize?: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function postgresDialect(options: PostgresOptions): StoreDialect {
  const schema = options.schema;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new Error(`postgres schema "${schema}" must be lower-case letters, digits and _`);
  }
  let pool: pg.Pool | null = null;
  return {
    name: 'postgres',
    location: `${options.url.replace(/\/\/[^@/]*@/, '//***@')}${schema ? ` (schema ${schema})` : ''}`,
    migration: { dialect: 'postgres', autoIdType: 'bigserial', autoIncrement: (c) => c },
    migrationSchema: schema ?? 'public',
    open(): Kysely<Database> {
      pool = new pg.Pool({
        connectionString: options.url,
        max: options.poolSize ?? 10,
        ...(schema ? { options: `-c search_path=${schema}` } : {}),
      });
      // An idle connection that the server ends (a restart, a dropped database) is reported
      // here; without a listener Node would crash the process. The pool discards that client
      // and the next query opens a fresh connection, which reports any lasting problem.
      pool.on('error', () => undefined);
      return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    },
    async isUniqueViolation(error: unknown) {
      return Promise.resolve((error as { code?: string }).code === '23505');
    },
    sqliteConnection: () => null,
    postgresPool: () => pool,
    async check(db) {
      if (schema) await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
      await sql`select 1`.execute(db);
    },
  };
}

/** Drops a schema and everything in it (test clean-up). */
export async function dropPostgresSchema(url: string, schema: string): Promise<void> {
  if (!SCHEMA_NAME.test(schema)) throw new Error(`bad schema name "${schema}"`);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`drop schema if exists "${schema}" cascade`);
  } finally {
    await client.end();
  }
}

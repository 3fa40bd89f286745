/**
 * API tests run against both stores: the embedded SQLite (a fresh file per test) and
 * PostgreSQL (a database of its own per test, dropped after: a database rather than a
 * schema, because Kysely's migrator looks at every schema of its database, and another
 * test dropping its schema at that moment would fail this one). PostgreSQL tests say clearly
 * why they are skipped when no server answers at DATABASE_URL_TEST (default 127.0.0.1:5432/test).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import pg from 'pg';
import { buildServer } from '../../src/server/app.js';
import { ensureOwnerKey } from '../../src/server/bootstrap.js';
import { openStore, type Store, type StoreOptions } from '../../src/store/store.js';

export const POSTGRES_URL =
  process.env.DATABASE_URL_TEST ?? 'postgres://postgres@127.0.0.1:5432/test';
export const OWNER_KEY = 'owner-key-for-tests-0123456789';

async function postgresReachable(): Promise<string | null> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return null;
  } catch (e) {
    return `PostgreSQL not reachable at ${POSTGRES_URL.replace(/\/\/[^@/]*@/, '//***@')}: ${(e as Error).message}`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Why PostgreSQL tests are skipped, or null when they run. Computed once per test file. */
export const postgresSkipReason: string | null = await postgresReachable();
if (postgresSkipReason) console.warn(`SKIPPED PostgreSQL tests: ${postgresSkipReason}`);

export type StoreKind = 'sqlite' | 'postgres';
export const STORE_KINDS: readonly StoreKind[] = ['sqlite', 'postgres'];

export interface TestStore {
  readonly store: Store;
  /** Opens the same data again (a restart). */
  reopen(): Promise<Store>;
  cleanup(): Promise<void>;
}

let counter = 0;

/** Where a fresh, empty store of `kind` lives (nothing opened or migrated yet). */
export async function freshStoreOptions(
  kind: StoreKind,
): Promise<{ options: StoreOptions; cleanup: () => Promise<void> }> {
  if (kind === 'sqlite') {
    const dir = await mkdtemp(join(tmpdir(), 'bulkhead-store-'));
    return { options: { dataDir: dir }, cleanup: () => rm(dir, { recursive: true, force: true }) };
  }
  const database = `bh_test_${process.pid}_${Date.now().toString(36)}_${counter++}`;
  await adminQuery(`create database "${database}"`);
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${database}`;
  return {
    options: { databaseUrl: url.toString() },
    cleanup: () => adminQuery(`drop database if exists "${database}" with (force)`),
  };
}

export async function testStore(kind: StoreKind): Promise<TestStore> {
  const fresh = await freshStoreOptions(kind);
  const store = await openStore(fresh.options);
  return {
    store,
    reopen: () => openStore(fresh.options),
    cleanup: async () => {
      await store.close().catch(() => undefined);
      await fresh.cleanup();
    },
  };
}

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

export interface TestServer {
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly kind: StoreKind;
  /** Calls the API in-process as the owner (or with `token`, or none when null). */
  call(options: InjectOptions & { token?: string | null }): Promise<LightMyRequestResponse>;
  /** Closes the app and builds a new one over the same data (a restart). */
  restart(): Promise<TestServer>;
  close(): Promise<void>;
}

export async function testServer(kind: StoreKind, existing?: TestStore): Promise<TestServer> {
  const ts = existing ?? (await testStore(kind));
  const store = existing ? await existing.reopen() : ts.store;
  const app = await buildServer({ store });
  await ensureOwnerKey(app.bulkhead, OWNER_KEY);
  const server: TestServer = {
    app,
    store,
    kind,
    call: ({ token, ...options }) => {
      const auth = token === null ? {} : { authorization: `Bearer ${token ?? OWNER_KEY}` };
      return app.inject({ ...options, headers: { ...auth, ...(options.headers ?? {}) } });
    },
    async restart() {
      await app.close();
      await store.close();
      return testServer(kind, ts);
    },
    async close() {
      await app.close();
      if (existing) await store.close().catch(() => undefined);
      await ts.cleanup();
    },
  };
  return server;
}

/** Adds workloads through the API (each must answer 201), `extra` fields decided per workload. */
export async function addWorkloads<W extends { name: string }>(
  s: TestServer,
  workloads: readonly W[],
  extra: (w: W) => Record<string, unknown> = () => ({ managed: true, mode: 'full' }),
): Promise<void> {
  for (const w of workloads) {
    const r = await s.call({
      method: 'POST',
      url: '/api/v1/workloads',
      payload: { ...w, ...extra(w) },
    });
    if (r.statusCode !== 201)
      throw new Error(`adding workload ${w.name}: ${r.statusCode} ${r.body}`);
  }
}

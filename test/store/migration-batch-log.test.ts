/**
 * Migration 005 turns the ingest log from a row per summary into a row per batch. Summaries
 * an older version logged but had not rolled up yet must survive it, in order, and be rolled
 * up after it; those already rolled up go.
 */
import { Migrator, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { migrationProvider } from '../../src/store/migrations/index.js';
import { countSummariesAfter, readLog, ROLLUP_CURSOR } from '../../src/store/flow-store.js';
import { dialectFor, openStore, type Store } from '../../src/store/store.js';
import { freshStoreOptions, postgresSkipReason, STORE_KINDS } from '../support/server.js';

describe.each(STORE_KINDS)('the batch log migration on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it.skipIf(skip)('moves the summaries not rolled up yet into the batch log', async () => {
    const fresh = await freshStoreOptions(kind);
    cleanups.push(fresh.cleanup);
    const dialect = dialectFor(fresh.options);
    const old = dialect.open();
    try {
      const migrator = new Migrator({
        db: old,
        provider: migrationProvider(dialect.migration),
        ...(dialect.migrationSchema ? { migrationTableSchema: dialect.migrationSchema } : {}),
      });
      const { error } = await migrator.migrateTo('004-blocked-attempts');
      expect(error).toBeUndefined();
      // Five summaries in two batches of one agent and an import; the first two rolled up.
      const summary = (batch: string, workload: string, dport: number) =>
        sql`insert into flow_summaries (agent_id, batch_id, workload, src, dst, proto, dport,
              process, first_seen, last_seen, connections, bytes, decision)
            values ('a', ${batch}, ${workload}, '10.0.0.1', '10.0.0.2', 'tcp', ${dport},
              ${dport === 3 ? 'say "hi"' : null}, '2026-11-23T10:00:00.000Z',
              '2026-11-23T10:00:01.000Z', ${dport}, ${dport * 100},
              ${dport === 4 ? 'blocked' : null})`.execute(old);
      for (const [batch, workload, dport] of [
        ['b1', 'w', 1],
        ['b1', 'w', 2],
        ['b1', 'w', 3],
        ['b2', 'w', 4],
        ['import-1', '', 5],
      ] as const)
        await summary(batch, workload, dport);
      const ids = await sql<{ id: number }>`select id from flow_summaries order by id`.execute(old);
      await sql`insert into meta (key, value) values (${ROLLUP_CURSOR}, ${JSON.stringify(Number(ids.rows[1]!.id))})`.execute(
        old,
      );
    } finally {
      await old.destroy();
    }

    const store: Store = await openStore(fresh.options);
    cleanups.push(() => store.close());
    const cursor = await store.db
      .selectFrom('meta')
      .select('value')
      .where('key', '=', ROLLUP_CURSOR)
      .executeTakeFirst();
    expect(cursor?.value).toBe('0');
    expect(await countSummariesAfter(store.db, 0)).toBe(3);
    const { entries } = await store.transaction((trx) => readLog(store, trx, 0, 100));
    expect(entries.map((e) => [e.workload, e.summaries.map((t) => t[3])])).toEqual([
      ['w', [3]],
      ['w', [4]],
      ['', [5]],
    ]);
    expect(entries[0]!.summaries[0]).toEqual([
      '10.0.0.1',
      '10.0.0.2',
      'tcp',
      3,
      'say "hi"',
      '2026-11-23T10:00:00.000Z',
      '2026-11-23T10:00:01.000Z',
      3,
      300,
      null,
    ]);
    expect(entries[1]!.summaries[0]![9]).toBe('blocked');
  });
});

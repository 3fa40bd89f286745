import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  addTraffic,
  bucketTotals,
  countEdges,
  countStaleEdges,
  deleteBucketsBefore,
  countSummariesAfter,
  deleteLogUpTo,
  lastLogId,
  readEdges,
  readLog,
  type LogEntry,
  updateVerdicts,
  upsertEdges,
  windowTraffic,
  type NewEdgeRow,
} from '../../src/store/flow-store.js';
import { appendFlowBatch, LOG_ROW_SUMMARIES } from '../../src/store/flows.js';
import type { Store } from '../../src/store/store.js';
import { postgresSkipReason, STORE_KINDS, testStore, type TestStore } from '../support/server.js';

const edgeRow = (key: string, more: Partial<NewEdgeRow> = {}): NewEdgeRow => ({
  key,
  src_workload: 'web',
  src_address: '10.0.0.1',
  dst_workload: null,
  dst_address: '8.8.8.8',
  proto: 'udp',
  port: 53,
  process: null,
  src_group: null,
  dst_group: 'internet',
  decision: 'allowed',
  decided_by: 'x',
  draft_decision: 'blocked',
  draft_decided_by: 'y',
  decided_revision: 1,
  ...more,
});

describe.each(STORE_KINDS)('flow store tables on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  let ts: TestStore;
  let store: Store;
  beforeEach(async () => {
    if (skip) return;
    ts = await testStore(kind);
    store = ts.store;
  });
  afterEach(async () => {
    if (!skip) await ts.cleanup();
  });

  it.skipIf(skip)('stores an edge once and returns its id each time', async () => {
    const first = await store.transaction((trx) =>
      upsertEdges(store, trx, [edgeRow('a'), edgeRow('b')]),
    );
    const again = await store.transaction((trx) =>
      upsertEdges(store, trx, [edgeRow('b', { decision: 'blocked' }), edgeRow('c')]),
    );
    expect(again.get('b')).toBe(first.get('b'));
    expect(new Set([...first.values(), again.get('c')]).size).toBe(3);
    expect(await countEdges(store.db)).toBe(3);
    const rows = await readEdges(store.db, 0, 10);
    // an edge stored already keeps its verdicts
    expect(rows.find((r) => r.key === 'b')).toMatchObject({
      decision: 'allowed',
      port: 53,
      process: null,
    });
    expect(await readEdges(store.db, rows[1]!.id, 10)).toHaveLength(1);
  });

  it.skipIf(skip)('adds traffic into buckets and sums a window per edge', async () => {
    const ids = await store.transaction((trx) =>
      upsertEdges(store, trx, [edgeRow('a'), edgeRow('b')]),
    );
    const a = ids.get('a')!;
    const b = ids.get('b')!;
    const delta = (
      bucket: number,
      edgeId: number,
      connections: number,
      first: number,
      last: number,
    ) => ({
      bucket,
      edgeId,
      connections,
      // Every fourth connection an enforcing agent's blocked attempt.
      blocked: Math.floor(connections / 4),
      bytes: connections * 10,
      firstSeen: first,
      lastSeen: last,
    });
    await store.transaction((trx) =>
      addTraffic(store, trx, 'hour', [
        delta(3600, a, 1, 3_700_000, 3_800_000),
        delta(7200, a, 2, 7_300_000, 7_400_000),
      ]),
    );
    await store.transaction((trx) =>
      addTraffic(store, trx, 'hour', [
        delta(3600, a, 4, 3_650_000, 3_750_000),
        delta(3600, b, 8, 3_600_000, 3_600_000),
      ]),
    );
    const sums = (await windowTraffic(store, 'hour', 0, 10_800)).sort(
      (x, y) => x.edgeId - y.edgeId,
    );
    expect(sums).toEqual([
      {
        edgeId: a,
        connections: 7,
        blocked: 1,
        bytes: 70,
        firstSeen: 3_650_000,
        lastSeen: 7_400_000,
      },
      {
        edgeId: b,
        connections: 8,
        blocked: 2,
        bytes: 80,
        firstSeen: 3_600_000,
        lastSeen: 3_600_000,
      },
    ]);
    expect(await windowTraffic(store, 'hour', 7200, 10_800)).toEqual([
      {
        edgeId: a,
        connections: 2,
        blocked: 0,
        bytes: 20,
        firstSeen: 7_300_000,
        lastSeen: 7_400_000,
      },
    ]);
    expect(await windowTraffic(store, 'minute', 0, 10_800)).toEqual([]);
    const totals = await bucketTotals(store.db, 'hour', 0, 10_800);
    expect([...totals.entries()].sort()).toEqual([
      [3600, { connections: 13, bytes: 130 }],
      [7200, { connections: 2, bytes: 20 }],
    ]);
    expect([...(await bucketTotals(store.db, 'hour', 0, 10_800, [b])).entries()]).toEqual([
      [3600, { connections: 8, bytes: 80 }],
    ]);
    expect(await deleteBucketsBefore(store.db, 'hour', 7200)).toBe(2);
    expect(await windowTraffic(store, 'hour', 0, 10_800)).toHaveLength(1);
  });

  it.skipIf(skip)('updates verdicts and finds the stale edges', async () => {
    const ids = await store.transaction((trx) =>
      upsertEdges(store, trx, [edgeRow('a'), edgeRow('b')]),
    );
    expect(await countStaleEdges(store.db, 2)).toBe(2);
    await store.transaction((trx) =>
      updateVerdicts(store, trx, [
        {
          id: ids.get('a')!,
          srcGroup: null,
          dstGroup: 'dns',
          decision: 'blocked',
          decidedBy: 'deny rule x/y',
          draftDecision: 'allowed',
          draftDecidedBy: 'allow rule x/z',
          revision: 2,
        },
      ]),
    );
    expect(await countStaleEdges(store.db, 2)).toBe(1);
    expect((await readEdges(store.db, 0, 10)).find((r) => r.key === 'a')).toMatchObject({
      dst_group: 'dns',
      decision: 'blocked',
      decided_by: 'deny rule x/y',
      draft_decision: 'allowed',
      decided_revision: 2,
    });
  });

  it.skipIf(skip)(
    'logs each batch as one row, read forward whole, and deletes what was rolled up',
    async () => {
      const row = (batch: string, i: number) => ({
        agent_id: 'a',
        batch_id: batch,
        workload: 'w',
        src: '10.0.0.1',
        dst: '10.0.0.2',
        proto: 'tcp',
        dport: i,
        process: i === 1 ? 'tab\there "quoted"' : null,
        first_seen: '2026-11-23T10:00:00.000Z',
        last_seen: '2026-11-23T10:00:01.000Z',
        connections: 1,
        bytes: 2 ** 40,
        decision: i === 2 ? 'blocked' : null,
      });
      const append = (batch: string, ports: number[]) =>
        appendFlowBatch(
          store,
          { agent_id: 'a', batch_id: batch, received_at: '2026-11-23T10:00:02.000Z', summaries: 3 },
          ports.map((i) => row(batch, i)),
        );
      await append('b1', [1, 2, 3]);
      await append('b2', [4, 5]);
      await append('b3', [6]);
      const ports = (entries: LogEntry[]) => entries.flatMap((e) => e.summaries.map((t) => t[3]));

      // Rows are taken whole: asking for 2 summaries gets the first batch's 3.
      const first = await store.transaction((trx) => readLog(store, trx, 0, 2));
      expect(ports(first.entries)).toEqual([1, 2, 3]);
      expect(first.summaries).toBe(3);
      expect(first.entries[0]).toMatchObject({ workload: 'w' });
      expect(first.entries[0]!.summaries[0]).toEqual([
        '10.0.0.1',
        '10.0.0.2',
        'tcp',
        1,
        'tab\there "quoted"',
        '2026-11-23T10:00:00.000Z',
        '2026-11-23T10:00:01.000Z',
        1,
        2 ** 40,
        null,
      ]);
      const afterFirst = first.entries[0]!.id;
      const rest = await store.transaction((trx) => readLog(store, trx, afterFirst, 10));
      expect(ports(rest.entries)).toEqual([4, 5, 6]);
      expect(await countSummariesAfter(store.db, afterFirst)).toBe(3);
      expect(await lastLogId(store.db)).toBe(rest.entries[1]!.id);

      // The view shows one row per summary, as the table did.
      const viewed = await store.db
        .selectFrom('flow_summaries')
        .select(['batch_id', 'dport', 'process', 'bytes', 'decision'])
        .orderBy('dport')
        .execute();
      expect(viewed.map((v) => [v.batch_id, Number(v.dport)])).toEqual([
        ['b1', 1],
        ['b1', 2],
        ['b1', 3],
        ['b2', 4],
        ['b2', 5],
        ['b3', 6],
      ]);
      expect(viewed[0]).toMatchObject({ process: 'tab\there "quoted"', decision: null });
      expect(Number(viewed[0]!.bytes)).toBe(2 ** 40);
      expect(viewed[1]!.decision).toBe('blocked');

      // A row someone wrote by hand that is not a JSON array is skipped, not fatal.
      await store.db
        .insertInto('flow_log')
        .values({ agent_id: 'x', batch_id: 'x', workload: 'w', count: 1, summaries: '{oops' })
        .execute();
      const withBad = await store.transaction((trx) => readLog(store, trx, afterFirst, 10));
      expect(withBad.unreadable).toHaveLength(1);
      expect(ports(withBad.entries)).toEqual([4, 5, 6]);

      const upTo = rest.entries[0]!.id;
      expect(await deleteLogUpTo(store.db, upTo, 1)).toBe(1);
      expect(await deleteLogUpTo(store.db, upTo, 1)).toBe(1);
      expect(await deleteLogUpTo(store.db, upTo, 1)).toBe(0);
      const left = await store.transaction((trx) => readLog(store, trx, 0, 10));
      expect(ports(left.entries)).toEqual([6]);
    },
  );

  it.skipIf(skip)('splits a large import into log rows of a bounded size', async () => {
    const rows = Array.from({ length: LOG_ROW_SUMMARIES * 2 + 1 }, (_, i) => ({
      agent_id: 'import',
      batch_id: 'big',
      workload: '',
      src: '10.0.0.1',
      dst: '10.0.0.2',
      proto: 'udp',
      dport: 1 + (i % 60_000),
      first_seen: '2026-11-23T10:00:00.000Z',
      last_seen: '2026-11-23T10:00:01.000Z',
      connections: 1,
      bytes: 10,
    }));
    await appendFlowBatch(
      store,
      {
        agent_id: 'import',
        batch_id: 'big',
        received_at: '2026-11-23T10:00:02.000Z',
        summaries: rows.length,
      },
      rows,
    );
    const logged = await store.db.selectFrom('flow_log').select('count').orderBy('id').execute();
    expect(logged.map((r) => Number(r.count))).toEqual([LOG_ROW_SUMMARIES, LOG_ROW_SUMMARIES, 1]);
    expect(await countSummariesAfter(store.db, 0)).toBe(rows.length);
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  addTraffic,
  bucketTotals,
  countEdges,
  countStaleEdges,
  deleteBucketsBefore,
  deleteSummariesUpTo,
  readEdges,
  readSummaries,
  updateVerdicts,
  upsertEdges,
  windowTraffic,
  type NewEdgeRow,
} from '../../src/store/flow-store.js';
import { appendFlowBatch } from '../../src/store/flows.js';
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
    const sums = (await windowTraffic(store.db, 'hour', 0, 10_800)).sort(
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
    expect(await windowTraffic(store.db, 'hour', 7200, 10_800)).toEqual([
      {
        edgeId: a,
        connections: 2,
        blocked: 0,
        bytes: 20,
        firstSeen: 7_300_000,
        lastSeen: 7_400_000,
      },
    ]);
    expect(await windowTraffic(store.db, 'minute', 0, 10_800)).toEqual([]);
    const totals = await bucketTotals(store.db, 'hour', 0, 10_800);
    expect([...totals.entries()].sort()).toEqual([
      [3600, { connections: 13, bytes: 130 }],
      [7200, { connections: 2, bytes: 20 }],
    ]);
    expect([...(await bucketTotals(store.db, 'hour', 0, 10_800, [b])).entries()]).toEqual([
      [3600, { connections: 8, bytes: 80 }],
    ]);
    expect(await deleteBucketsBefore(store.db, 'hour', 7200)).toBe(2);
    expect(await windowTraffic(store.db, 'hour', 0, 10_800)).toHaveLength(1);
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

  it.skipIf(skip)('reads the ingest log forward by id and deletes what was rolled up', async () => {
    const row = (i: number) => ({
      agent_id: 'a',
      batch_id: 'b',
      workload: 'w',
      src: '10.0.0.1',
      dst: '10.0.0.2',
      proto: 'tcp',
      dport: i,
      process: null,
      first_seen: '2026-11-23T10:00:00.000Z',
      last_seen: '2026-11-23T10:00:01.000Z',
      connections: 1,
      bytes: 2 ** 40,
      decision: null,
    });
    await appendFlowBatch(
      store,
      { agent_id: 'a', batch_id: 'b', received_at: '2026-11-23T10:00:02.000Z', summaries: 5 },
      [1, 2, 3, 4, 5].map(row),
    );
    const first = await store.transaction((trx) => readSummaries(store, trx, 0, 3));
    expect(first.map((s) => s.dport)).toEqual([1, 2, 3]);
    expect(first[0]).toMatchObject({
      bytes: 2 ** 40,
      process: null,
      decision: null,
      workload: 'w',
    });
    const rest = await store.transaction((trx) => readSummaries(store, trx, first[2]!.id, 10));
    expect(rest.map((s) => s.dport)).toEqual([4, 5]);
    expect(await deleteSummariesUpTo(store.db, first[2]!.id, 2)).toBe(2);
    expect(await deleteSummariesUpTo(store.db, first[2]!.id, 2)).toBe(1);
    expect(await deleteSummariesUpTo(store.db, first[2]!.id, 2)).toBe(0);
    const left = await store.transaction((trx) => readSummaries(store, trx, 0, 10));
    expect(left.map((s) => s.dport)).toEqual([4, 5]);
  });
});

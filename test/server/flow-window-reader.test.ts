/**
 * A question's window summed in pieces by reader threads (SQLite's; PostgreSQL sums a large
 * window on parallel workers of its own) answers exactly what summing it whole on one
 * connection answers: the same rows with the same counts, bytes and times, for windows that
 * mix minute, hour and day buckets. A reader thread that cannot work costs nothing but speed.
 */
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EdgeKey, FlowSort, TrafficRecord } from '../../src/analysis/flows/model.js';
import { AuditFeed } from '../../src/server/audit.js';
import { createFlowStore } from '../../src/server/flows/service.js';
import type { FlowStoreService } from '../../src/server/flows/types.js';
import { mergeSums, packSums } from '../../src/server/flows/window-reader.js';
import { openStore, type Store, type StoreOptions } from '../../src/store/store.js';
import { freshStoreOptions } from '../support/server.js';

describe('merging the pieces of a window', () => {
  it('sums counts and bytes per edge, and keeps the earliest and latest times', () => {
    const piece = (edgeId: number, connections: number, first: number, last: number) => ({
      edgeId,
      connections,
      blocked: connections > 2 ? 1 : 0,
      bytes: connections * 10,
      firstSeen: first,
      lastSeen: last,
    });
    const merged = mergeSums([
      packSums([piece(1, 2, 100, 200), piece(2, 5, 50, 60)]),
      packSums([piece(1, 3, 90, 150)]),
      packSums([]),
      packSums([piece(3, 1, 10, 20), piece(1, 1, 300, 400)]),
    ]);
    expect(merged.sort((a, b) => a.edgeId - b.edgeId)).toEqual([
      { edgeId: 1, connections: 6, blocked: 1, bytes: 60, firstSeen: 90, lastSeen: 400 },
      { edgeId: 2, connections: 5, blocked: 1, bytes: 50, firstSeen: 50, lastSeen: 60 },
      { edgeId: 3, connections: 1, blocked: 0, bytes: 10, firstSeen: 10, lastSeen: 20 },
    ]);
  });
});

describe('window reader threads on sqlite', () => {
  const kind = 'sqlite';
  const now = new Date('2026-11-24T10:37:20.000Z');
  let options: StoreOptions;
  let store: Store;
  let cleanup: () => Promise<void>;
  const services: FlowStoreService[] = [];
  let logged: string[] = [];
  const log = {
    warn: (_: object, msg: string) => logged.push(msg),
    error: (_: object, msg: string) => logged.push(msg),
  };
  const open = (o: Parameters<typeof createFlowStore>[1]) => {
    const service = createFlowStore(
      { store, audit: new AuditFeed(), log },
      {
        retention: { minute: 2 * 86_400, hour: 30 * 86_400, day: 400 * 86_400 },
        now: () => now,
        ...o,
      },
    );
    services.push(service);
    return service;
  };

  beforeEach(async () => {
    logged = [];
    const fresh = await freshStoreOptions(kind);
    options = fresh.options;
    cleanup = fresh.cleanup;
    store = await openStore(options);
    // 30 edges; traffic every 7 minutes for the last 2 days, every 3 hours for 12 days more.
    const key = (i: number): EdgeKey => ({
      source: { address: `10.9.0.${1 + (i % 10)}` },
      destination: { address: `10.8.0.${1 + (i % 3)}` },
      proto: 'tcp',
      port: 8000 + i,
      process: null,
    });
    const records: TrafficRecord[] = [];
    const record = (i: number, minutesAgo: number) => {
      const at = new Date(now.getTime() - minutesAgo * 60_000 - i * 1000).toISOString();
      records.push({
        key: key(i),
        firstSeen: at,
        lastSeen: at,
        connections: 1 + ((i + minutesAgo) % 5),
        blocked: (i + minutesAgo) % 11 === 0 ? 1 : 0,
        bytes: 100 * (1 + (minutesAgo % 7)),
      });
    };
    for (let i = 0; i < 30; i++) {
      for (let m = i; m < 2 * 1440; m += 7) record(i, m);
      for (let m = 2 * 1440 + i * 3; m < 14 * 1440; m += 180) record(i, m);
    }
    const writer = open({});
    await writer.recordTraffic(records);
    await writer.catchUp();
  });
  afterEach(async () => {
    for (const s of services.splice(0)) await s.stop();
    await store.close();
    await cleanup();
  });

  const sort: FlowSort = { key: 'connections', descending: true };
  const windows = [
    { since: '1h' },
    { since: '24h' },
    { since: '7d' },
    { since: '14d' },
    { from: '2026-11-20T09:13:00.000Z', to: '2026-11-23T22:41:00.000Z' },
  ];
  const answers = async (flows: FlowStoreService) => {
    const out: unknown[] = [];
    for (const window of windows) {
      const page = await flows.explore({ window }, sort, 1000, null);
      out.push(page.total, page.items);
      out.push((await flows.map({ window, groupBy: ['app'] })).edges);
    }
    return out;
  };

  it('answer as one reader does, whatever the number of readers', async () => {
    const one = await answers(open({ windowReaders: 1 }));
    // Something to compare: every window found traffic.
    expect(one.filter((x) => typeof x === 'number').every((n) => n > 0)).toBe(true);
    expect(await answers(open({ readWindowsIn: options, windowReaders: 2 }))).toEqual(one);
    expect(await answers(open({ readWindowsIn: options, windowReaders: 3 }))).toEqual(one);
    expect(await answers(open({ readWindowsIn: options }))).toEqual(one);
  });

  it('carry on in the calling thread when reader threads cannot open the store', async () => {
    const one = await answers(open({ windowReaders: 1 }));
    expect(logged).toEqual([]);
    // A store the reader threads cannot open (its directory would be inside a file): each
    // fails, and the question is answered here.
    const file = join(tmpdir(), `bulkhead-not-a-dir-${process.pid}`);
    await writeFile(file, '');
    const broken = open({ readWindowsIn: { dataDir: join(file, 'data') }, windowReaders: 2 });
    expect(await answers(broken)).toEqual(one);
    expect(logged).toEqual(['summing a window in worker threads failed; summing here']);
    expect(await answers(broken)).toEqual(one);
    expect(logged).toHaveLength(1);
    await rm(file);
  });
});

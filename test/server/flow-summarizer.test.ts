/**
 * Summing the ingest log in a worker thread (the server's way) gives exactly what summing it
 * in the calling thread gives, on both stores: the same edges in the same slots, the same
 * sums per bucket, the same cursor positions, blocked attempts and skipped rows included.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Workload } from '../../src/policy/model.js';
import { addressOwners } from '../../src/server/flows/estate.js';
import { Attributor } from '../../src/server/flows/rollup.js';
import {
  inlineSummarizer,
  threadSummarizer,
  type SummarizeRequest,
} from '../../src/server/flows/summarizer.js';
import { appendFlowBatch, type NewFlowSummary } from '../../src/store/flows.js';
import { openStore, type Store } from '../../src/store/store.js';
import { freshStoreOptions, postgresSkipReason, STORE_KINDS } from '../support/server.js';
import type { StoreOptions } from '../../src/store/store.js';

describe.each(STORE_KINDS)('summing the flow log in a worker thread on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  let options: StoreOptions;
  let store: Store;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    if (skip) return;
    const fresh = await freshStoreOptions(kind);
    options = fresh.options;
    cleanup = fresh.cleanup;
    store = await openStore(options);
  });
  afterEach(async () => {
    if (skip) return;
    await store.close();
    await cleanup();
  });

  it.skipIf(skip)('gives what summing it inline gives', async () => {
    const now = Date.now();
    const at = (minutesAgo: number) => new Date(now - minutesAgo * 60_000).toISOString();
    const summary = (i: number): NewFlowSummary => ({
      agent_id: 'a',
      batch_id: `b${i % 3}`,
      workload: 'db-1',
      src: `10.1.0.${1 + (i % 7)}`,
      dst: '10.1.0.31',
      proto: i % 5 === 0 ? 'udp' : 'tcp',
      dport: 5432 + (i % 2),
      process: i % 2 ? 'postgres' : null,
      first_seen: at(90 - (i % 90)),
      last_seen: at(89 - (i % 89)),
      connections: 1 + (i % 4),
      bytes: 100 * i,
      decision: i % 9 === 0 ? 'blocked' : null,
    });
    for (let b = 0; b < 3; b++)
      await appendFlowBatch(
        store,
        { agent_id: 'a', batch_id: `b${b}`, received_at: at(0), summaries: 400 },
        Array.from({ length: 400 }, (_, i) => summary(b * 400 + i)),
      );
    await store.db
      .insertInto('flow_log')
      .values({ agent_id: 'x', batch_id: 'x', workload: 'w', count: 1, summaries: 'not json' })
      .execute();
    await store.db
      .insertInto('workloads')
      .values({
        name: 'db-1',
        addresses: JSON.stringify(['10.1.0.31']),
        labels: '{}',
        mode: 'visibility',
        managed: 1,
        users: '[]',
        inventory: null,
        created_at: at(0),
        updated_at: at(0),
      })
      .execute();

    const owners = addressOwners([
      { name: 'db-1', addresses: ['10.1.0.31'], labels: {}, mode: 'visibility', managed: true },
    ] as unknown as Workload[]);
    const inline = inlineSummarizer(store, () => Promise.resolve(new Attributor(owners)));
    const thread = threadSummarizer(options);
    try {
      const keepFrom = { minute: 0, hour: 0, day: 0 };
      for (const minutesOnly of [false, true]) {
        let after = 0;
        for (;;) {
          const request: SummarizeRequest = {
            after,
            limit: 500,
            generation: 1,
            keepFrom,
            minutesOnly,
          };
          const [mine, theirs] = await Promise.all([
            inline.summarize(request),
            thread.summarize(request),
          ]);
          expect(theirs).toEqual(mine);
          if (mine.rows === 0) break;
          after = mine.upTo;
        }
      }
      const whole = await thread.summarize({
        after: 0,
        limit: 10_000,
        generation: 1,
        keepFrom,
        minutesOnly: false,
      });
      expect(whole).toMatchObject({ rows: 4, summaries: 1200 });
      expect(whole.unreadable).toHaveLength(1);
      expect(whole.traffic.keys.length).toBeGreaterThan(10);
      // Every connection is counted in some minute, and blocked ones apart.
      const minute = whole.traffic.sums.minute;
      let connections = 0;
      let blocked = 0;
      for (let i = 0; i < minute.length; i += 7) {
        connections += minute[i + 2]!;
        blocked += minute[i + 3]!;
      }
      const all = Array.from({ length: 1200 }, (_, i) => summary(i));
      expect(connections).toBe(all.reduce((n, s) => n + s.connections, 0));
      expect(blocked).toBe(
        all.filter((s) => s.decision === 'blocked').reduce((n, s) => n + s.connections, 0),
      );
    } finally {
      await thread.close();
    }
  });
});

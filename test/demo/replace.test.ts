import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { postgresSkipReason, STORE_KINDS, testServer, type TestServer } from '../support/server.js';

/** What a user sees of the traffic: every edge's connections over the last 30 days, and the edge count. */
async function totals(
  s: TestServer,
): Promise<{ connections: number; bytes: number; edges: number }> {
  const flows = s.app.bulkhead.flows;
  const map = await flows.map({ window: { since: '30d' } });
  const lastHour = await flows.map({ window: { since: '1h' } });
  return {
    connections:
      map.edges.reduce((n, e) => n + e.connections, 0) +
      lastHour.edges.reduce((n, e) => n + e.connections, 0),
    bytes: map.edges.reduce((n, e) => n + e.bytes, 0),
    edges: (await flows.status()).edges,
  };
}

describe.each(STORE_KINDS)('POST /api/v1/demo with replace on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  let s: TestServer;
  beforeEach(async () => {
    // The demo's traffic follows the clock (office hours, the last hours per minute): a
    // fixed clock makes both loads generate exactly the same traffic.
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2026-03-04T10:17:00.000Z') });
    if (!skip) s = await testServer(kind);
  });
  afterEach(async () => {
    vi.useRealTimers();
    if (!skip) await s.close();
  });

  const load = async (replace: boolean) => {
    const res = await s.call({
      method: 'POST',
      url: '/api/v1/demo',
      payload: { weeks: 1, replace },
    });
    expect(res.statusCode, res.body).toBe(200);
  };

  it.skipIf(skip)(
    'shows the same traffic after loading the demo twice as after loading it once',
    async () => {
      await load(false);
      const once = await totals(s);
      expect(once.connections).toBeGreaterThan(0);
      await load(true);
      expect(await totals(s)).toEqual(once);
    },
    240_000,
  );
});

import { describe, expect, it } from 'vitest';
import { decodeCursor, flowRow, pageRows } from '../../../src/analysis/flows/explore.js';
import { FLOW_SORT_KEYS, type FlowSort } from '../../../src/analysis/flows/model.js';
import type { EdgeWithTraffic } from '../../../src/analysis/flows/map.js';
import { byName, edge, traffic } from './fixtures.js';

// Many ties on purpose: pages must still never overlap nor skip.
const rows: EdgeWithTraffic[] = [];
for (let i = 0; i < 37; i++) {
  const e = edge({
    source: i % 3 === 0 ? { address: `8.8.8.${i}` } : { workload: ['web-1', 'api-1'][i % 2]! },
    destination: { workload: ['db-1', 'api-1', 'box-1'][i % 3]! },
    port: i % 4 === 0 ? null : 1000 + (i % 5),
  });
  rows.push(
    traffic(
      e,
      i % 7,
      (i % 4) * 10,
      `2026-11-23T10:0${i % 3}:00.000Z`,
      `2026-11-23T11:0${i % 6}:00.000Z`,
    ),
  );
}

function pages(sort: FlowSort, limit: number): { ids: number[]; pages: number } {
  const ids: number[] = [];
  let cursor: string | null = null;
  let n = 0;
  do {
    const page = pageRows(rows.slice().reverse(), sort, limit, cursor);
    expect(page.total).toBe(rows.length);
    ids.push(...page.items.map((r) => r.edge.id));
    cursor = page.nextCursor;
    n++;
  } while (cursor !== null);
  return { ids, pages: n };
}

describe('explorer paging', () => {
  it('visits every row exactly once, in order, for every sort and page size', () => {
    for (const key of FLOW_SORT_KEYS) {
      for (const descending of [false, true]) {
        const sort = { key, descending };
        const whole = pageRows(rows.slice(), sort, 1000, null);
        expect(whole.nextCursor).toBeNull();
        for (const limit of [1, 5, 36, 37]) {
          const got = pages(sort, limit);
          expect(got.ids, `${key} ${descending} ${limit}`).toEqual(
            whole.items.map((r) => r.edge.id),
          );
          expect(got.pages).toBe(Math.ceil(rows.length / limit));
        }
      }
    }
  });

  it('sorts by the key, then by edge id', () => {
    const page = pageRows(rows.slice(), { key: 'connections', descending: true }, 5, null);
    expect(page.items.map((r) => r.traffic.connections)).toEqual([6, 6, 6, 6, 6]);
    const ids = page.items.map((r) => r.edge.id);
    expect(ids).toEqual(ids.slice().sort((a, b) => a - b));
    const ports = pageRows(rows.slice(), { key: 'port', descending: false }, 100, null);
    expect(ports.items[0]!.edge.port).toBeNull();
  });

  it('refuses a cursor it did not make, or one from another sort', () => {
    const sort: FlowSort = { key: 'bytes', descending: false };
    const first = pageRows(rows.slice(), sort, 3, null);
    expect(() => decodeCursor('%%%', sort)).toThrow(/^cursor: /);
    expect(() => decodeCursor(Buffer.from('{"a":1}').toString('base64url'), sort)).toThrow(
      /^cursor: /,
    );
    expect(() =>
      pageRows(rows.slice(), { key: 'bytes', descending: true }, 3, first.nextCursor),
    ).toThrow(/belongs to sort "bytes", not "-bytes"/);
  });

  it('shows ends with their labels now, or their address group', () => {
    const row = flowRow(rows[3]!, byName);
    expect(row.source).toEqual({ address: '8.8.8.3', group: 'internet' });
    expect(row.destination).toEqual({
      workload: 'db-1',
      labels: { app: 'shop', env: 'prod', role: 'db' },
    });
    expect(row).toMatchObject({ decision: 'allowed', draftDecision: 'allowed', connections: 3 });
  });
});

/**
 * The flow explorer's rows: one per edge with traffic in the window, sorted by any column
 * and paged by an opaque cursor that names the last row shown (its sort value and edge id),
 * so paging visits every row exactly once however the rows are sorted.
 */
import type { Workload } from '../../policy/model.js';
import type { EdgeWithTraffic } from './map.js';
import type { EndView, FlowEnd, FlowRow, FlowSort, FlowSortKey } from './model.js';
import { FlowQueryError } from './window.js';

export const DEFAULT_SORT: FlowSort = { key: 'connections', descending: true };

function endView(
  end: FlowEnd,
  group: string | null,
  workloads: ReadonlyMap<string, Workload>,
): EndView {
  if (end.workload !== undefined)
    return { workload: end.workload, labels: { ...(workloads.get(end.workload)?.labels ?? {}) } };
  return { address: end.address, group };
}

export function flowRow(
  { edge, traffic }: EdgeWithTraffic,
  workloads: ReadonlyMap<string, Workload>,
): FlowRow {
  return {
    id: edge.id,
    source: endView(edge.source, edge.sourceGroup, workloads),
    destination: endView(edge.destination, edge.destinationGroup, workloads),
    proto: edge.proto,
    port: edge.port,
    process: edge.process,
    connections: traffic.connections,
    blocked: traffic.blocked,
    bytes: traffic.bytes,
    firstSeen: traffic.firstSeen,
    lastSeen: traffic.lastSeen,
    decision: edge.active.decision,
    decidedBy: edge.active.decidedBy,
    draftDecision: edge.draft.decision,
    draftDecidedBy: edge.draft.decidedBy,
  };
}

type SortValue = number | string;

function endText(end: FlowEnd): string {
  return end.workload ?? end.address;
}

/** The value a row is sorted by; ports sort numerically with ICMP (no port) first. */
export function sortValue(row: EdgeWithTraffic, key: FlowSortKey): SortValue {
  switch (key) {
    case 'connections':
      return row.traffic.connections;
    case 'bytes':
      return row.traffic.bytes;
    case 'firstSeen':
      return row.traffic.firstSeen;
    case 'lastSeen':
      return row.traffic.lastSeen;
    case 'source':
      return endText(row.edge.source);
    case 'destination':
      return endText(row.edge.destination);
    case 'port':
      return row.edge.port ?? -1;
  }
}

function compareValues(a: SortValue, b: SortValue): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Orders by the sort key (descending when asked), ties by ascending edge id. */
export function compareRows(sort: FlowSort): (a: EdgeWithTraffic, b: EdgeWithTraffic) => number {
  return (a, b) => {
    const c = compareValues(sortValue(a, sort.key), sortValue(b, sort.key));
    if (c !== 0) return sort.descending ? -c : c;
    return a.edge.id - b.edge.id;
  };
}

interface CursorBody {
  /** The sort it belongs to, e.g. `-connections`. */
  readonly s: string;
  /** The last row's sort value and edge id. */
  readonly v: SortValue;
  readonly i: number;
}

const sortText = (sort: FlowSort): string => `${sort.descending ? '-' : ''}${sort.key}`;

export function encodeCursor(sort: FlowSort, last: EdgeWithTraffic): string {
  const body: CursorBody = { s: sortText(sort), v: sortValue(last, sort.key), i: last.edge.id };
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

export function decodeCursor(cursor: string, sort: FlowSort): { value: SortValue; id: number } {
  let body: CursorBody;
  try {
    body = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as CursorBody;
  } catch {
    throw new FlowQueryError('cursor', 'is not a cursor from a previous page');
  }
  if (
    typeof body !== 'object' ||
    body === null ||
    (typeof body.v !== 'number' && typeof body.v !== 'string') ||
    typeof body.i !== 'number' ||
    typeof body.s !== 'string'
  )
    throw new FlowQueryError('cursor', 'is not a cursor from a previous page');
  if (body.s !== sortText(sort))
    throw new FlowQueryError(
      'cursor',
      `belongs to sort "${body.s}", not "${sortText(sort)}": start again without a cursor`,
    );
  return { value: body.v, id: body.i };
}

export interface Paged {
  readonly items: readonly EdgeWithTraffic[];
  readonly nextCursor: string | null;
  readonly total: number;
}

/** Sorts rows (in place) and takes the page after `cursor`. */
export function pageRows(
  rows: EdgeWithTraffic[],
  sort: FlowSort,
  limit: number,
  cursor: string | null,
): Paged {
  const compare = compareRows(sort);
  rows.sort(compare);
  let start = 0;
  if (cursor !== null) {
    const after = decodeCursor(cursor, sort);
    // The first row ordered after the cursor's (value, id): binary search over the sorted rows.
    let lo = 0;
    let hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const r = rows[mid]!;
      let c = compareValues(sortValue(r, sort.key), after.value);
      if (sort.descending) c = -c;
      if (c === 0) c = r.edge.id - after.id;
      if (c <= 0) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const items = rows.slice(start, start + limit);
  const more = start + limit < rows.length;
  return {
    items,
    nextCursor: more && items.length > 0 ? encodeCursor(sort, items[items.length - 1]!) : null,
    total: rows.length,
  };
}

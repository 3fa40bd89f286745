/**
 * Flows from an uploaded file, judged as the flow store would judge them, without storing
 * anything: each summary is attributed to workloads by address (as the roll-up attributes an
 * imported summary), summaries of one edge are summed, and each edge is decided under the
 * active version and the draft. The rows have the flow store's shape, so a simulation reads
 * them exactly as it reads retained flows.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { attributeSummary, edgeKeyText } from '../analysis/flows/edge-key.js';
import { flowRow } from '../analysis/flows/explore.js';
import type { EdgeKey, FlowRow } from '../analysis/flows/model.js';
import type { ImportedFlow } from '../importers/flows/index.js';
import { judgeEdge, type Estate } from './flows/estate.js';

/**
 * Edges judged between yields to the event loop: a file of tens of thousands of distinct flows
 * takes seconds to decide, and agents' heartbeats and other requests must not wait for it.
 */
const JUDGED_PER_TURN = 1000;

interface EdgeSum {
  readonly id: number;
  readonly key: EdgeKey;
  /** The addresses first seen for it: a workload end is decided at one of its own addresses. */
  readonly sourceAddress: string;
  readonly destinationAddress: string;
  connections: number;
  bytes: number;
  firstSeen: string;
  lastSeen: string;
}

export interface FileFlows {
  /** One row per distinct edge, most connections first (ties in order of first appearance). */
  readonly rows: readonly FlowRow[];
  /** The earliest first-seen and latest last-seen time in the file (null: no flows). */
  readonly firstSeen: string | null;
  readonly lastSeen: string | null;
}

/**
 * The file's summaries as flow rows under `estate`. A row's id is its edge's place in the file
 * (1 for the first distinct edge): these edges are not in the flow store, so they have no id there.
 */
export async function fileFlowRows(
  estate: Estate,
  summaries: readonly ImportedFlow[],
): Promise<FileFlows> {
  const edges = new Map<string, EdgeSum>();
  let firstSeen: string | null = null;
  let lastSeen: string | null = null;
  for (const s of summaries) {
    // No reporting side (workload ''), as /flows/import stores them: the file is all there is.
    const a = attributeSummary(
      {
        workload: '',
        src: s.src,
        dst: s.dst,
        proto: s.proto,
        dport: s.dport,
        process: s.process,
        decision: null,
      },
      estate.ownerOf,
    );
    if (!a.kept) continue;
    if (firstSeen === null || s.first_seen < firstSeen) firstSeen = s.first_seen;
    if (lastSeen === null || s.last_seen > lastSeen) lastSeen = s.last_seen;
    const text = edgeKeyText(a.key);
    const sum = edges.get(text);
    if (sum) {
      sum.connections += s.connections;
      sum.bytes += s.bytes;
      if (s.first_seen < sum.firstSeen) sum.firstSeen = s.first_seen;
      if (s.last_seen > sum.lastSeen) sum.lastSeen = s.last_seen;
      continue;
    }
    edges.set(text, {
      id: edges.size + 1,
      key: a.key,
      sourceAddress: s.src,
      destinationAddress: s.dst,
      connections: s.connections,
      bytes: s.bytes,
      firstSeen: s.first_seen,
      lastSeen: s.last_seen,
    });
  }

  const rows: FlowRow[] = [];
  for (const e of edges.values()) {
    if (rows.length > 0 && rows.length % JUDGED_PER_TURN === 0) await nextTurn();
    const v = judgeEdge(estate, e.key, {
      source: e.sourceAddress,
      destination: e.destinationAddress,
    });
    rows.push(
      flowRow(
        {
          edge: {
            ...e.key,
            id: e.id,
            sourceGroup: v.sourceGroup,
            destinationGroup: v.destinationGroup,
            active: v.active,
            draft: v.draft,
          },
          traffic: {
            edgeId: e.id,
            connections: e.connections,
            // A file says nothing of enforcement: none of its connections count as blocked attempts.
            blocked: 0,
            bytes: e.bytes,
            firstSeen: e.firstSeen,
            lastSeen: e.lastSeen,
          },
        },
        estate.byName,
      ),
    );
  }
  // The order the retained simulation reads the flow store in.
  rows.sort((a, b) => b.connections - a.connections || a.id - b.id);
  return { rows, firstSeen, lastSeen };
}

/** Rows as the stream a simulation reads. */
export async function* eachRow(rows: readonly FlowRow[]): AsyncGenerator<FlowRow> {
  yield* rows;
}

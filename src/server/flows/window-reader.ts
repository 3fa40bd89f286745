/**
 * Summing a window's buckets per edge: the cost of every map and explorer question, which
 * grows with the rows in the window (50k busy edges put 3M minute rows in an hour). The
 * window is cut into pieces (see splitSegments) that are summed side by side and merged.
 *
 * Two implementations behind one interface: inline, the window's segments on the server's
 * own connection (PostgreSQL parallelizes a large sum itself); and worker threads, each
 * with a connection of its own to the same SQLite file, so a question uses every core.
 */
import { cpus } from 'node:os';
import type { WindowSegment } from '../../analysis/flows/window.js';
import { windowTraffic, type TrafficSum } from '../../store/flow-store.js';
import type { Store, StoreOptions } from '../../store/store.js';
import { startWorker, workerModule, type WorkerChannel } from '../worker-module.js';

export interface WindowReader {
  /** Pieces worth cutting a window into. */
  readonly parallelism: number;
  /** Whether the pieces are read in worker threads (which can fail apart from the store). */
  readonly inThreads: boolean;
  /** The pieces' traffic, summed per edge. */
  sum(pieces: readonly WindowSegment[]): Promise<TrafficSum[]>;
  close(): Promise<void>;
}

/** Per edge: id, connections, blocked, bytes, first seen, last seen (ms), one after another. */
export type PackedSums = Float64Array;
const PACKED_WIDTH = 6;

export function packSums(sums: readonly TrafficSum[]): PackedSums {
  const out = new Float64Array(sums.length * PACKED_WIDTH);
  sums.forEach((s, i) => {
    const p = i * PACKED_WIDTH;
    out[p] = s.edgeId;
    out[p + 1] = s.connections;
    out[p + 2] = s.blocked;
    out[p + 3] = s.bytes;
    out[p + 4] = s.firstSeen;
    out[p + 5] = s.lastSeen;
  });
  return out;
}

/** The pieces' sums merged into one per edge. */
export function mergeSums(parts: readonly PackedSums[]): TrafficSum[] {
  if (parts.length === 1) return unpack(parts[0]!);
  const slot = new Map<number, number>();
  const merged: number[] = [];
  for (const part of parts) {
    for (let p = 0; p < part.length; p += PACKED_WIDTH) {
      const at = slot.get(part[p]!);
      if (at === undefined) {
        slot.set(part[p]!, merged.length);
        for (let k = 0; k < PACKED_WIDTH; k++) merged.push(part[p + k]!);
        continue;
      }
      merged[at + 1]! += part[p + 1]!;
      merged[at + 2]! += part[p + 2]!;
      merged[at + 3]! += part[p + 3]!;
      merged[at + 4] = Math.min(merged[at + 4]!, part[p + 4]!);
      merged[at + 5] = Math.max(merged[at + 5]!, part[p + 5]!);
    }
  }
  return unpack(merged);
}

function unpack(packed: ArrayLike<number>): TrafficSum[] {
  const out = new Array<TrafficSum>(packed.length / PACKED_WIDTH);
  for (let p = 0, i = 0; p < packed.length; p += PACKED_WIDTH, i++)
    out[i] = {
      edgeId: packed[p]!,
      connections: packed[p + 1]!,
      blocked: packed[p + 2]!,
      bytes: packed[p + 3]!,
      firstSeen: packed[p + 4]!,
      lastSeen: packed[p + 5]!,
    };
  return out;
}

/** Reads a piece on a reader thread's own connection, packed to move to the main thread. */
export async function sumPiece(store: Store, piece: WindowSegment): Promise<PackedSums> {
  return packSums(await windowTraffic(store, piece.resolution, piece.from, piece.to));
}

/**
 * In the caller's thread, the window's segments as they are. PostgreSQL already sums a large
 * window on parallel workers of its own; cutting it into pieces as well only crowded the
 * cores (measured: an hour over 50k busy edges, p95 1.0 s whole, 1.3 s in two pieces).
 */
export function inlineWindowReader(store: Store): WindowReader {
  return {
    parallelism: 1,
    inThreads: false,
    async sum(pieces) {
      const parts = await Promise.all(
        pieces.map((p) => windowTraffic(store, p.resolution, p.from, p.to)),
      );
      return parts.length === 1 ? parts[0]! : mergeSums(parts.map(packSums));
    },
    close: () => Promise.resolve(),
  };
}

/** Readers worth running: one per core, at most four. */
export function readerCount(): number {
  return Math.max(1, Math.min(4, cpus().length));
}

/** What a reader thread is started with. */
export interface ReaderSetup {
  readonly store: StoreOptions;
}

/**
 * `threads` worker threads, each with its own connection to the store (a file: an in-memory
 * SQLite database is not shared). Pieces go to the readers in turn. A reader that fails
 * fails its question, with the reader named; the next question starts the readers again.
 */
export function threadWindowReader(store: StoreOptions, threads = readerCount()): WindowReader {
  let readers: WorkerChannel<WindowSegment, PackedSums>[] | null = null;
  const start = () =>
    Array.from({ length: threads }, (_, i) =>
      startWorker<WindowSegment, PackedSums>(
        `flow window reader ${i + 1}`,
        workerModule(import.meta.url, 'window-reader-thread'),
        { store } satisfies ReaderSetup,
      ),
    );
  return {
    parallelism: threads,
    inThreads: true,
    async sum(pieces) {
      const running = (readers ??= start());
      try {
        return mergeSums(
          await Promise.all(pieces.map((p, i) => running[i % running.length]!.call(p))),
        );
      } catch (e) {
        if (readers === running) {
          readers = null;
          await Promise.all(running.map((r) => r.close().catch(() => undefined)));
        }
        throw e;
      }
    },
    async close() {
      const running = readers;
      readers = null;
      if (running) await Promise.all(running.map((r) => r.close()));
    },
  };
}

/**
 * A worker thread behind threadWindowReader: opens the store on a connection of its own and
 * sums the window pieces it is given, in order.
 */
import { workerData } from 'node:worker_threads';
import { openStore } from '../../store/store.js';
import { serveRequests } from '../worker-module.js';
import type { WindowSegment } from '../../analysis/flows/window.js';
import { sumPiece, type PackedSums, type ReaderSetup } from './window-reader.js';

const setup = workerData as ReaderSetup;
const store = await openStore(setup.store);

serveRequests<WindowSegment, PackedSums>(
  (piece) => sumPiece(store, piece),
  // The sums move to the main thread rather than being copied.
  (sums) => [sums.buffer as ArrayBuffer],
);

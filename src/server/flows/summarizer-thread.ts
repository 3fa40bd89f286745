/**
 * The worker thread behind threadSummarizer: opens the store on a connection of its own and
 * answers summarize requests in order. Who owns which address is read from the store for
 * each new estate generation the main thread names, so both threads attribute alike.
 */
import { workerData } from 'node:worker_threads';
import { openStore } from '../../store/store.js';
import { loadWorkloads } from '../policy-state.js';
import { addressOwners } from './estate.js';
import { Attributor } from './rollup.js';
import { serveRequests } from '../worker-module.js';
import {
  summarizeChunk,
  type LogChunkSummary,
  type SummarizeRequest,
  type WorkerSetup,
} from './summarizer.js';

const setup = workerData as WorkerSetup;
const store = await openStore(setup.store);

let attributor: { generation: number; value: Attributor } | null = null;

async function attributorFor(generation: number): Promise<Attributor> {
  if (attributor?.generation === generation) return attributor.value;
  const value = new Attributor(addressOwners(await loadWorkloads(store.db)));
  attributor = { generation, value };
  return value;
}

serveRequests<SummarizeRequest, LogChunkSummary>(
  async (request) => summarizeChunk(store, request, await attributorFor(request.generation)),
  // The sums' buffers move to the main thread rather than being copied.
  (summary) => Object.values(summary.traffic.sums).map((a) => a.buffer as ArrayBuffer),
);

/**
 * The worker thread behind threadSummarizer: opens the store on a connection of its own and
 * answers summarize requests in order. Who owns which address is read from the store for
 * each new estate generation the main thread names, so both threads attribute alike.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openStore } from '../../store/store.js';
import { loadWorkloads } from '../policy-state.js';
import { addressOwners } from './estate.js';
import { Attributor } from './rollup.js';
import {
  summarizeChunk,
  type SummarizeRequest,
  type WorkerAnswer,
  type WorkerSetup,
} from './summarizer.js';

const port = parentPort;
if (!port) throw new Error('summarizer-thread runs as a worker thread only');
const setup = workerData as WorkerSetup;
const store = await openStore(setup.store);

let attributor: { generation: number; value: Attributor } | null = null;

async function attributorFor(generation: number): Promise<Attributor> {
  if (attributor?.generation === generation) return attributor.value;
  const value = new Attributor(addressOwners(await loadWorkloads(store.db)));
  attributor = { generation, value };
  return value;
}

let queue: Promise<void> = Promise.resolve();

port.on('message', (message: { id: number; request: SummarizeRequest }) => {
  queue = queue.then(async () => {
    let answer: WorkerAnswer;
    try {
      const summary = await summarizeChunk(
        store,
        message.request,
        await attributorFor(message.request.generation),
      );
      answer = { id: message.id, summary };
    } catch (e) {
      answer = { id: message.id, error: e instanceof Error ? e.message : String(e) };
    }
    // The sums' buffers move to the main thread rather than being copied.
    const transfer =
      'summary' in answer
        ? Object.values(answer.summary.traffic.sums).map((a) => a.buffer as ArrayBuffer)
        : [];
    port.postMessage(answer, transfer);
  });
});

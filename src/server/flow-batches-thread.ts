/** The worker thread behind threadBatchReader: reads each batch body it is sent. */
import { readFlowBatch, type BatchReading } from './flow-batches.js';
import { serveRequests } from './worker-module.js';

serveRequests<Uint8Array, BatchReading>((body) => readFlowBatch(body));

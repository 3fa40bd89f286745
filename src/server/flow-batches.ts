/**
 * Reading an agent's flow-summary batch: the JSON body, checked field by field against the
 * schema, turned into the ingest log's text. At 100k summaries a second this is most of the
 * work an upload costs, so the server does it in a worker thread (one core parses and checks
 * while the main thread authenticates, stores and answers); tests do it inline. Either way
 * a bad batch is a 400 naming each field, exactly as any other route reports it.
 */
import { logText, LOG_ROW_SUMMARIES } from '../store/flows.js';
import { flowsBody } from './agent-schemas.js';
import type { ErrorDetail } from './errors.js';
import { issueDetails } from './validation.js';
import { startWorker, workerModule } from './worker-module.js';

export type BatchReading =
  | {
      readonly ok: true;
      readonly batchId: string;
      readonly summaries: number;
      /** The batch as ingest log rows' text, each of at most LOG_ROW_SUMMARIES summaries. */
      readonly logTexts: readonly { readonly count: number; readonly text: string }[];
    }
  | { readonly ok: false; readonly details: readonly ErrorDetail[] };

/** Reads one batch body (UTF-8 JSON). */
export function readFlowBatch(body: Uint8Array | string): BatchReading {
  let json: unknown;
  try {
    json = JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8'));
  } catch (e) {
    return {
      ok: false,
      details: [{ path: 'body', message: `is not valid JSON: ${(e as Error).message}` }],
    };
  }
  const checked = flowsBody.safeParse(json, { reportInput: true });
  if (!checked.success) return { ok: false, details: issueDetails(checked.error.issues, 'body') };
  const { batchId, summaries } = checked.data;
  const rows = summaries.map((s) => ({
    src: s.src,
    dst: s.dst,
    proto: s.proto,
    dport: s.dport ?? null,
    process: s.process ?? null,
    first_seen: s.firstSeen,
    last_seen: s.lastSeen,
    connections: s.connections,
    bytes: s.bytes,
    decision: s.decision ?? null,
  }));
  const logTexts: { count: number; text: string }[] = [];
  for (let from = 0; from < rows.length; from += LOG_ROW_SUMMARIES) {
    const to = Math.min(rows.length, from + LOG_ROW_SUMMARIES);
    logTexts.push({ count: to - from, text: logText(rows, from, to) });
  }
  return { ok: true, batchId, summaries: rows.length, logTexts };
}

export interface FlowBatchReader {
  read(body: Buffer): Promise<BatchReading>;
  close(): Promise<void>;
}

export function inlineBatchReader(): FlowBatchReader {
  return {
    read: (body) => Promise.resolve(readFlowBatch(body)),
    close: () => Promise.resolve(),
  };
}

/** In a worker thread; if the worker fails, reading goes on inline. */
export function threadBatchReader(onFailure: (e: Error) => void): FlowBatchReader {
  const worker = startWorker<Uint8Array, BatchReading>(
    'flow batch reader',
    workerModule(import.meta.url, 'flow-batches-thread'),
    null,
  );
  let failed = false;
  return {
    async read(body) {
      if (failed) return readFlowBatch(body);
      try {
        // A copy moves to the worker; the request's own buffer may be pooled memory.
        return await worker.call(new Uint8Array(body));
      } catch (e) {
        failed = true;
        onFailure(e as Error);
        return readFlowBatch(body);
      }
    },
    close: () => worker.close(),
  };
}

/**
 * Flow files a person brings to the control plane: Bulkhead's own CSV and JSON, conntrack
 * dumps and event logs, and NetFlow as nfdump writes it as CSV. Each is read whole into
 * flow summaries for the ingest log, or rejected whole with every bad line named.
 */
import { parseBulkheadCsv, parseBulkheadJson } from './bulkhead.js';
import { parseConntrack } from './conntrack.js';
import { parseNfdumpCsv } from './netflow.js';
import type { ImportResult } from './summary.js';

import type { FlowImportFormat } from './formats.js';

export { FLOW_IMPORT_FORMATS, type FlowImportFormat } from './formats.js';

export {
  ImportError,
  formatProblem,
  type ImportProblem,
  type ImportResult,
  type ImportedFlow,
} from './summary.js';

/** Reads a file of `format`; throws ImportError naming each bad line. `now` dates undated conntrack lines. */
export function readFlowFile(
  format: FlowImportFormat,
  text: string,
  now: Date = new Date(),
): ImportResult {
  switch (format) {
    case 'csv':
      return parseBulkheadCsv(text);
    case 'json':
      return parseBulkheadJson(text);
    case 'conntrack':
      return parseConntrack(text, now);
    case 'netflow':
      return parseNfdumpCsv(text);
  }
}

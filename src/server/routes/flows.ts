/**
 * Flows, read and brought in: the map (groups of workloads and the traffic between them,
 * with each edge's decision), the explorer's pages, a streamed export of every matching
 * row, traffic over time, the flow store's progress, and imports of flow files (Bulkhead
 * CSV/JSON, conntrack, nfdump CSV) into the ingest log. Every question is answered by the
 * flow store (ctx.flows); these routes only read parameters and shape answers.
 */
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { FlowRow } from '../../analysis/flows/model.js';
import { FlowQueryError } from '../../analysis/flows/window.js';
import { ImportError, readFlowFile } from '../../importers/flows/index.js';
import { appendFlowBatch } from '../../store/flows.js';
import { change } from '../change.js';
import type { RouteOptions } from '../context.js';
import { newId } from '../credentials.js';
import { ApiError, errors } from '../errors.js';
import {
  exportQuery,
  filterPart,
  flowFilterOf,
  flowPageView,
  flowRowView,
  flowsQuery,
  flowStoreStatusView,
  importQuery,
  importResultView,
  mapQuery,
  mapQueryOf,
  mapResultView,
  timeSeriesView,
  timeseriesQuery,
} from '../flows-schemas.js';

/** The agent id imported summaries are stored under (no agent reported them). */
export const IMPORT_AGENT_ID = 'import';

/** A question the flow store could not answer as asked becomes a 400 naming the parameter. */
async function asked<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    throw queryError(e);
  }
}

function queryError(e: unknown): unknown {
  if (!(e instanceof FlowQueryError)) return e;
  const prefix = `${e.field}: `;
  return errors.validation([
    {
      path: `query.${e.field}`,
      message: e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message,
    },
  ]);
}

// ------------------------------------------------------------------ export

export const EXPORT_COLUMNS = [
  'source',
  'source_labels',
  'destination',
  'destination_labels',
  'proto',
  'port',
  'process',
  'connections',
  'blocked',
  'bytes',
  'first_seen',
  'last_seen',
  'decision',
  'decided_by',
  'draft_decision',
  'draft_decided_by',
] as const;

/**
 * One CSV cell. Process names and labels come from the hosts, so a cell a spreadsheet would
 * run as a formula (`=`, `+`, `-`, `@` first) is written with a leading quote.
 */
function csvCell(value: string): string {
  const v = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(v) || v !== v.trim() ? `"${v.replace(/"/g, '""')}"` : v;
}

const endName = (end: FlowRow['source']): string =>
  end.workload !== undefined ? end.workload : end.address;
/** A workload's labels in the filters' text form (`app=shop,env=prod`); an address's group. */
const endLabels = (end: FlowRow['source']): string =>
  end.workload !== undefined
    ? Object.entries(end.labels)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => `${k}=${v}`)
        .join(',')
    : '';

function csvLine(r: FlowRow): string {
  return `${[
    endName(r.source),
    endLabels(r.source),
    endName(r.destination),
    endLabels(r.destination),
    r.proto,
    r.port === null ? '' : String(r.port),
    r.process ?? '',
    String(r.connections),
    String(r.blocked),
    String(r.bytes),
    r.firstSeen,
    r.lastSeen,
    r.decision,
    r.decidedBy,
    r.draftDecision,
    r.draftDecidedBy,
  ]
    .map(csvCell)
    .join(',')}\r\n`;
}

/** Writes are gathered into chunks of about this size: a row at a time would be a syscall each. */
const CHUNK = 64 * 1024;

async function* exportText(
  format: 'csv' | 'json',
  first: IteratorResult<FlowRow>,
  rest: AsyncIterator<FlowRow>,
): AsyncGenerator<string> {
  let text = format === 'csv' ? `${EXPORT_COLUMNS.join(',')}\r\n` : '[';
  let count = 0;
  try {
    for (let next = first; !next.done; next = await rest.next()) {
      if (format === 'csv') text += csvLine(next.value);
      else text += `${count === 0 ? '\n' : ',\n'}${JSON.stringify(next.value)}`;
      count++;
      if (text.length >= CHUNK) {
        yield text;
        text = '';
      }
    }
  } finally {
    // A client that hangs up stops the store's reading too (no-op when it ran out).
    await rest.return?.();
  }
  if (format === 'json') text += count === 0 ? ']\n' : '\n]\n';
  yield text;
}

// ------------------------------------------------------------------ routes

export const flowRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  // Imports take the file as text whatever its type, so a JSON file's problems are reported
  // by line like any other format's (only this plugin's routes are affected).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    ['application/json', 'text/csv', 'application/csv', 'text/plain'],
    { parseAs: 'string' },
    (_request, body, done) => done(null, body),
  );

  app.get(
    '/flows/map',
    {
      config: { permission: 'read' },
      schema: {
        summary:
          'The traffic map: groups of workloads (and address groups) and the edges between them',
        description:
          'Nodes group workloads by the groupBy label keys (or one per workload); expand breaks chosen groups down by expandBy. Each edge carries its connections and the most severe decision behind them under the chosen policy (active or draft).',
        tags: ['flows'],
        querystring: mapQuery,
        response: { 200: mapResultView },
      },
    },
    async (request) => asked(() => ctx.flows.map(mapQueryOf(request.query))),
  );

  app.get(
    '/flows',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'Flows matching a filter, a page at a time (follow nextCursor)',
        tags: ['flows'],
        querystring: flowsQuery,
        response: { 200: flowPageView },
      },
    },
    async (request) => {
      const q = request.query;
      return asked(() =>
        ctx.flows.explore(flowFilterOf(filterPart(q)), q.sort, q.limit, q.cursor ?? null),
      );
    },
  );

  app.get(
    '/flows/export',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'Every flow matching a filter, streamed as CSV or as one JSON array',
        description: `CSV columns: ${EXPORT_COLUMNS.join(', ')}. JSON: an array of the rows GET /flows pages through.`,
        tags: ['flows'],
        querystring: exportQuery,
        produces: ['text/csv', 'application/json'],
        response: { 200: z.array(flowRowView) },
      },
    },
    async (request, reply) => {
      const q = request.query;
      const all = ctx.flows.exportRows(flowFilterOf(filterPart(q)), q.sort);
      const rows = all[Symbol.asyncIterator]();
      // The first row is read before answering, so a question the store refuses is still a 400.
      const first = await asked(() => rows.next());
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      return (
        reply
          .type(q.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8')
          .header('content-disposition', `attachment; filename="flows-${stamp}.${q.format}"`)
          .header('cache-control', 'no-store')
          // A stream bypasses the serializer; the response schema documents the JSON form.
          .send(Readable.from(exportText(q.format, first, rows)) as never)
      );
    },
  );

  app.get(
    '/flows/timeseries',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'Connections and bytes over time for flows matching a filter, by decision',
        tags: ['flows'],
        querystring: timeseriesQuery,
        response: { 200: timeSeriesView },
      },
    },
    async (request) => {
      const { resolution, ...q } = request.query;
      return asked(() => ctx.flows.timeseries(flowFilterOf(filterPart(q)), resolution));
    },
  );

  app.get(
    '/flows/status',
    {
      config: { permission: 'read' },
      schema: {
        summary:
          "The flow store's progress: summaries rolled up and pending, edges, whether decisions are current",
        tags: ['flows'],
        response: { 200: flowStoreStatusView },
      },
    },
    async () => ctx.flows.status(),
  );

  app.post(
    '/flows/import',
    {
      config: { permission: 'estate:write' },
      schema: {
        summary:
          'Import a flow file into the flow store: Bulkhead CSV or JSON, conntrack, or nfdump CSV',
        description:
          'The body is the file as text. A file with any bad line is refused whole (nothing is stored), with each bad line and field named. CSV header: src,dst,proto,port,process,first_seen,last_seen,connections,bytes. JSON: an array of {src, dst, proto, port, process, firstSeen, lastSeen, connections, bytes}. conntrack: `conntrack -L` (plain or -o extended) or `conntrack -E -o timestamp` lines. netflow: `nfdump -o csv` output.',
        tags: ['flows'],
        consumes: ['text/csv', 'text/plain', 'application/json'],
        querystring: importQuery,
        body: z.string().min(1, 'send the file as the body (e.g. Content-Type: text/plain)'),
        response: { 200: importResultView },
      },
    },
    async (request) => {
      const { format } = request.query;
      let read;
      try {
        read = readFlowFile(format, request.body);
      } catch (e) {
        if (!(e instanceof ImportError)) throw e;
        throw new ApiError(
          'VALIDATION_FAILED',
          400,
          e.message,
          e.problems.map((p) => ({
            path: `line ${p.line}${p.field ? `, ${p.field}` : ''}`,
            message: p.message,
          })),
        );
      }
      const batchId = `import-${newId()}`;
      const summaries = read.summaries;
      await appendFlowBatch(
        ctx.store,
        {
          agent_id: IMPORT_AGENT_ID,
          batch_id: batchId,
          received_at: new Date().toISOString(),
          summaries: summaries.length,
        },
        // No reporting side: the flow store keeps these as an observer's reports.
        summaries.map((s) => ({
          ...s,
          agent_id: IMPORT_AGENT_ID,
          batch_id: batchId,
          workload: '',
          decision: null,
        })),
      );
      await change(ctx, request, async (_trx, audit) =>
        audit({
          type: 'flows.import',
          kind: 'FlowImport',
          name: batchId,
          after: {
            format,
            summaries: summaries.length,
            skipped: read.skipped,
            connections: summaries.reduce((n, s) => n + s.connections, 0),
            bytes: summaries.reduce((n, s) => n + s.bytes, 0),
          },
        }),
      );
      return { batchId, accepted: summaries.length, skipped: read.skipped };
    },
  );
};

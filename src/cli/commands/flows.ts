/**
 * Flows from the terminal: `bulkhead map` (groups and the traffic between them, with each
 * edge's decision), `bulkhead flows` (the matching flows as a table, or every one streamed
 * as CSV or JSON), and `bulkhead flows import FILE` (a flow file into the flow store). Flags
 * are checked here with the same parsers the server uses, so a typo is caught before any
 * request, with the server's own wording.
 */
import type { Command } from 'commander';
import {
  FilterTextError,
  formatSort,
  parseDecisions,
  parseDuration,
  parseEndFilter,
  parseGrouping,
  parsePortFilter,
  parseSort,
  parseTime,
} from '../../analysis/flows/filter-text.js';
import type { FlowPage, FlowRow, MapEdge, MapResult } from '../../analysis/flows/model.js';
import { ApiClient } from '../client.js';
import { FLOW_IMPORT_FORMATS } from '../../importers/flows/formats.js';
import { readFlowFile } from '../flow-file.js';
import { CliError, json, type CliIo } from '../io.js';

const REMOTE = 'talks to the control plane at BULKHEAD_URL with BULKHEAD_TOKEN';
const PAGE = 1000;

interface FilterOptions {
  since?: string;
  from?: string;
  to?: string;
  src: string[];
  dst: string[];
  any: string[];
  port: string[];
  process: string[];
  decision?: string;
  policy?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function addFilterOptions(cmd: Command): Command {
  return cmd
    .option('--since <duration>', 'how far back: 15m, 1h, 6h, 24h, 7d, 30d, 90d (default 24h)')
    .option('--from <time>', 'window start, ISO 8601 (instead of --since)')
    .option('--to <time>', 'window end, ISO 8601 (with --from; default now)')
    .option(
      '--src <filter>',
      'source: app=shop,env=prod | workload:NAME | ip:CIDR | group:NAME (repeatable, ORed)',
      collect,
      [],
    )
    .option('--dst <filter>', 'destination, as --src (repeatable)', collect, [])
    .option('--any <filter>', 'either end, as --src (repeatable)', collect, [])
    .option('--port <port>', '443/tcp, 53/udp, 443, tcp, icmp (repeatable)', collect, [])
    .option('--process <name>', "the destination's serving process (repeatable)", collect, [])
    .option('--decision <list>', 'allowed, potentially-blocked, blocked (comma separated)')
    .option('--policy <which>', 'whose decisions: active (default) or draft');
}

/** Checks one flag's value with the server's parser; a bad one is a usage error (exit 2). */
function check<T>(flag: string, parse: (text: string) => T, text: string): T {
  try {
    return parse(text);
  } catch (e) {
    if (e instanceof FilterTextError) throw new CliError(`${flag}: ${e.message}`, 2);
    throw e;
  }
}

/** The filter flags as query parameters, each checked first. */
function filterQuery(o: FilterOptions): URLSearchParams {
  const q = new URLSearchParams();
  if (o.since !== undefined && o.from !== undefined)
    throw new CliError('give either --since or --from/--to, not both', 2);
  if (o.to !== undefined && o.from === undefined) throw new CliError('--to needs --from', 2);
  if (o.since !== undefined) {
    check('--since', parseDuration, o.since);
    q.append('since', o.since);
  }
  if (o.from !== undefined) q.append('from', check('--from', parseTime, o.from));
  if (o.to !== undefined) q.append('to', check('--to', parseTime, o.to));
  for (const [flag, param, values] of [
    ['--src', 'src', o.src],
    ['--dst', 'dst', o.dst],
    ['--any', 'any', o.any],
  ] as const) {
    for (const v of values) {
      check(flag, parseEndFilter, v);
      q.append(param, v);
    }
  }
  for (const v of o.port) {
    check('--port', parsePortFilter, v);
    q.append('port', v);
  }
  for (const v of o.process) q.append('process', v);
  if (o.decision !== undefined)
    q.append('decision', check('--decision', parseDecisions, o.decision).join(','));
  if (o.policy !== undefined) {
    if (o.policy !== 'active' && o.policy !== 'draft')
      throw new CliError(`--policy: "${o.policy}" is not active or draft`, 2);
    q.append('policy', o.policy);
  }
  return q;
}

function table(rows: readonly string[][], empty: string): string {
  if (rows.length <= 1) return empty;
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const count = (n: number): string => n.toLocaleString('en-US');

function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]!}`;
}

const service = (proto: string, port: number | null): string =>
  port === null ? proto : `${port}/${proto}`;

const windowText = (w: MapResult['window']): string =>
  `${w.from} to ${w.to} (${w.resolution} buckets)`;

// ------------------------------------------------------------------ map

interface MapOptions extends FilterOptions {
  groupBy?: string;
  expand: string[];
  expandBy?: string;
  json?: boolean;
}

function servicesText(edge: MapEdge): string {
  const shown = edge.services
    .slice(0, 3)
    .map((s) => `${service(s.proto, s.port)}${s.process ? ` ${s.process}` : ''}`);
  const more = edge.services.length - shown.length;
  return `${shown.join(', ')}${more > 0 ? ` +${more}` : ''}`;
}

export function formatMap(m: MapResult): string {
  const label = new Map(m.nodes.map((n) => [n.id, n.label]));
  const nodes = table(
    [
      ['NODE', 'KIND', 'WORKLOADS', 'MODE', 'ID'],
      ...m.nodes.map((n) => [
        n.parent ? `  ${n.label}` : n.label,
        n.kind,
        n.kind === 'addresses' ? '' : String(n.workloads),
        n.mode ?? '',
        n.id,
      ]),
    ],
    'no groups',
  );
  const edges = table(
    [
      ['SOURCE', 'DESTINATION', 'CONNECTIONS', 'BYTES', 'DECISION', 'SERVICES'],
      ...[...m.edges]
        .sort((a, b) => b.connections - a.connections)
        .map((e) => [
          label.get(e.source) ?? e.source,
          label.get(e.target) ?? e.target,
          count(e.connections),
          bytes(e.bytes),
          e.decision,
          servicesText(e),
        ]),
    ],
    'no traffic in this window',
  );
  return [
    `window ${windowText(m.window)}; decisions under the ${m.policy} policy; grouped by ${m.groupBy.join(', ')}`,
    '',
    nodes,
    '',
    edges,
  ].join('\n');
}

async function map(io: CliIo, o: MapOptions): Promise<void> {
  const q = filterQuery(o);
  if (o.groupBy !== undefined)
    q.append('groupBy', check('--group-by', parseGrouping, o.groupBy).join(','));
  for (const id of o.expand) q.append('expand', id);
  if (o.expandBy !== undefined)
    q.append('expandBy', check('--expand-by', parseGrouping, o.expandBy).join(','));
  const m = await new ApiClient().get<MapResult>(`/flows/map?${q.toString()}`);
  io.out(o.json ? json(m) : formatMap(m));
}

// ------------------------------------------------------------------ flows

interface FlowsOptions extends FilterOptions {
  sort?: string;
  limit?: string;
  json?: boolean;
  csv?: boolean;
}

const endText = (end: FlowRow['source']): string =>
  end.workload !== undefined
    ? end.workload
    : end.group && end.group !== end.address
      ? `${end.address} (${end.group})`
      : end.address;

function flowRowCells(r: FlowRow, draft: boolean): string[] {
  return [
    endText(r.source),
    endText(r.destination),
    service(r.proto, r.port),
    r.process ?? '',
    count(r.connections),
    r.blocked > 0 ? count(r.blocked) : '-',
    bytes(r.bytes),
    r.lastSeen,
    draft ? r.draftDecision : r.decision,
    draft ? r.draftDecidedBy : r.decidedBy,
  ];
}

/** Opens a streamed answer from the control plane; its API errors become CliErrors. */
async function openStream(path: string): Promise<ReadableStream<Uint8Array>> {
  const res = await new ApiClient().send('GET', path);
  if (!res.body) throw new CliError(`GET ${path}: the control plane sent no body`);
  return res.body;
}

/** Copies a streamed text answer to the output a batch of whole lines at a time. */
async function pipeLines(io: CliIo, body: ReadableStream<Uint8Array>): Promise<void> {
  const decoder = new TextDecoder();
  let rest = '';
  for await (const chunk of body) {
    rest += decoder.decode(chunk, { stream: true });
    const end = rest.lastIndexOf('\n');
    if (end < 0) continue;
    io.out(rest.slice(0, end).replace(/\r$/gm, ''));
    rest = rest.slice(end + 1);
  }
  rest += decoder.decode();
  if (rest !== '') io.out(rest.replace(/\r$/gm, ''));
}

async function flows(io: CliIo, o: FlowsOptions): Promise<void> {
  if (o.json && o.csv) throw new CliError('give --json or --csv, not both', 2);
  const q = filterQuery(o);
  if (o.sort !== undefined) q.append('sort', formatSort(check('--sort', parseSort, o.sort)));
  let limit = Number.POSITIVE_INFINITY;
  if (o.limit !== undefined) {
    if (!/^\d+$/.test(o.limit) || Number(o.limit) < 1)
      throw new CliError(`--limit: "${o.limit}" is not a number of rows (1 or more)`, 2);
    limit = Number(o.limit);
  }
  if (o.json || o.csv) {
    if (o.limit !== undefined)
      throw new CliError('--limit shapes the table; --json and --csv give every flow', 2);
    q.append('format', o.json ? 'json' : 'csv');
    await pipeLines(io, await openStream(`/flows/export?${q.toString()}`));
    return;
  }
  const client = new ApiClient();
  const rows: FlowRow[] = [];
  let page: FlowPage | null = null;
  let cursor: string | null = null;
  do {
    const p = new URLSearchParams(q);
    p.set('limit', String(Math.min(PAGE, limit - rows.length)));
    if (cursor) p.set('cursor', cursor);
    page = await client.get<FlowPage>(`/flows?${p.toString()}`);
    rows.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null && rows.length < limit);
  const draft = o.policy === 'draft';
  io.out(
    table(
      [
        [
          'SOURCE',
          'DESTINATION',
          'SERVICE',
          'PROCESS',
          'CONNECTIONS',
          'BLOCKED',
          'BYTES',
          'LAST SEEN',
          draft ? 'DRAFT DECISION' : 'DECISION',
          'DECIDED BY',
        ],
        ...rows.map((r) => flowRowCells(r, draft)),
      ],
      'no flows match in this window',
    ),
  );
  if (rows.length > 0)
    io.out(
      `${rows.length} of ${page.total} flows, ${windowText(page.window)}${rows.length < page.total ? ' (--limit, or --csv for all)' : ''}`,
    );
}

// ------------------------------------------------------------------ import

async function importFile(
  io: CliIo,
  file: string,
  o: { format?: string; json?: boolean },
): Promise<void> {
  const flows = await readFlowFile(file, o.format);
  const res = await new ApiClient().send('POST', `/flows/import?format=${flows.format}`, {
    text: flows.text,
    contentType: flows.contentType,
  });
  const r = (await res.json()) as { batchId: string; accepted: number; skipped: number };
  io.out(
    o.json
      ? json(r)
      : `imported ${r.accepted} flow summaries from ${flows.name} (batch ${r.batchId})${r.skipped ? `; ${r.skipped} lines skipped (protocols not kept, loopback)` : ''}`,
  );
}

export function registerFlows(program: Command, io: CliIo): void {
  addFilterOptions(
    program
      .command('map')
      .description(
        `show which groups of workloads talk, and what policy decides about it (${REMOTE})`,
      )
      .option('--group-by <keys>', 'label keys to group by, or "workload" (default app,env)')
      .option(
        '--expand <id>',
        'a group node id to break down (repeatable; ids are in the table)',
        collect,
        [],
      )
      .option('--expand-by <keys>', 'how expanded groups are broken down (default role)'),
  )
    .option('--json', 'print the map as JSON')
    .action((o: MapOptions) => map(io, o));

  const flowsCmd = addFilterOptions(
    program
      .command('flows')
      .description(
        `list the flows matching filters: a table, or every one as --csv or --json (${REMOTE})`,
      ),
  )
    .option(
      '--sort <key>',
      'connections, bytes, firstSeen, lastSeen, source, destination, port; "-" first for descending (default -connections)',
    )
    .option('--limit <n>', 'show at most n rows (default all)')
    .option('--json', 'stream every matching flow as one JSON array')
    .option('--csv', 'stream every matching flow as CSV')
    .action((o: FlowsOptions) => flows(io, o));
  flowsCmd
    .command('import')
    .description(
      `import a flow file: Bulkhead CSV or JSON, conntrack -L/-E output, nfdump -o csv (${REMOTE})`,
    )
    .argument('<file>', 'the file (- for standard input)')
    .option(
      '--format <format>',
      `${FLOW_IMPORT_FORMATS.join('|')} (default from a .csv or .json name)`,
    )
    .option('--json', 'print the result as JSON')
    // `flows import FILE --json`: the program reads options after the subcommand too, so
    // the --json lands on `flows` (which has its own); it is this command's all the same.
    .action((file: string, o: { format?: string; json?: boolean }, cmd: Command) =>
      importFile(io, file, { ...o, json: o.json ?? cmd.parent?.opts<{ json?: boolean }>().json }),
    );
}

/**
 * Bulkhead's own flow-summary files: CSV with the header
 * `src,dst,proto,port,process,first_seen,last_seen,connections,bytes` (any column order;
 * `process` may be left out), and JSON, one array of objects with the same fields in
 * camelCase (`firstSeen`, `lastSeen`). Each row is already a summary and is kept as it is.
 */
import { parse } from 'csv-parse/sync';
import {
  Problems,
  readAddress,
  readCount,
  readIsoTime,
  readPort,
  readProcess,
  readProtocol,
  type ImportedFlow,
  type ImportResult,
} from './summary.js';

/** The fields of one summary, by name, as read from a row or an object. */
type Fields = Readonly<Record<string, unknown>>;

interface Names {
  readonly firstSeen: string;
  readonly lastSeen: string;
}

/** Reads every field, so one row reports all its bad fields at once; undefined when any is bad. */
function readAll(
  problems: Problems,
  line: number,
  f: Fields,
  names: Names,
  prefix = '',
): ImportedFlow | undefined {
  const before = problems.list.length;
  const read = <T>(r: () => T): T | undefined => problems.field(line, r, prefix);
  const src = read(() => readAddress('src', f.src));
  const dst = read(() => readAddress('dst', f.dst));
  const proto = read(() => readProtocol('proto', f.proto));
  const dport = proto === undefined ? undefined : read(() => readPort('port', proto, f.port));
  const process = read(() => readProcess('process', f.process));
  const first = read(() => readIsoTime(names.firstSeen, f[names.firstSeen]));
  const last = read(() => readIsoTime(names.lastSeen, f[names.lastSeen]));
  if (first !== undefined && last !== undefined && last < first)
    problems.add(
      line,
      `${prefix}${names.lastSeen}`,
      `${last} is before ${names.firstSeen} (${first})`,
    );
  const connections = read(() => readCount('connections', f.connections));
  const bytes = read(() => readCount('bytes', f.bytes));
  if (problems.list.length !== before) return undefined;
  return {
    src: src!,
    dst: dst!,
    proto: proto!,
    dport: dport as number | null,
    process: process as string | null,
    first_seen: first!,
    last_seen: last!,
    connections: connections!,
    bytes: bytes!,
  };
}

export const CSV_COLUMNS = [
  'src',
  'dst',
  'proto',
  'port',
  'process',
  'first_seen',
  'last_seen',
  'connections',
  'bytes',
] as const;
const OPTIONAL_COLUMNS: readonly string[] = ['process'];

export function parseBulkheadCsv(text: string): ImportResult {
  const problems = new Problems('CSV');
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, {
      bom: true,
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
      trim: true,
      max_record_size: 64 * 1024,
    }) as unknown as { record: string[]; info: { lines: number } }[];
  } catch (e) {
    const line = (e as { lines?: number }).lines ?? 1;
    problems.add(line, undefined, `not valid CSV: ${(e as Error).message}`);
    problems.fail();
    return { summaries: [], skipped: 0 };
  }
  const head = records[0];
  if (!head) {
    problems.add(1, undefined, `the file is empty: start with the header ${CSV_COLUMNS.join(',')}`);
    problems.fail();
  }
  const header = head!.record.map((h) => h.toLowerCase());
  const headerLine = head!.info.lines;
  for (const c of CSV_COLUMNS)
    if (!header.includes(c) && !OPTIONAL_COLUMNS.includes(c))
      problems.add(
        headerLine,
        c,
        `the header has no ${c} column (expected ${CSV_COLUMNS.join(',')})`,
      );
  for (const h of header)
    if (!(CSV_COLUMNS as readonly string[]).includes(h))
      problems.add(
        headerLine,
        h,
        `${JSON.stringify(h)} is not a column (expected ${CSV_COLUMNS.join(',')})`,
      );
  problems.fail();

  const summaries: ImportedFlow[] = [];
  const names = { firstSeen: 'first_seen', lastSeen: 'last_seen' };
  for (const { record, info } of records.slice(1)) {
    if (record.length !== header.length) {
      problems.add(
        info.lines,
        undefined,
        `${record.length} fields where the header has ${header.length}`,
      );
      continue;
    }
    const fields: Record<string, string> = {};
    header.forEach((h, i) => (fields[h] = record[i]!));
    const s = readAll(problems, info.lines, fields, names);
    if (s) summaries.push(s);
  }
  problems.fail();
  return { summaries, skipped: 0 };
}

/** Where each element of the top-level array starts, as a 1-based line (JSON.parse keeps no positions). */
function elementLines(text: string): number[] {
  const lines: number[] = [];
  let line = 1;
  let depth = 0;
  let inString = false;
  let expectingElement = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\n') line++;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') continue;
    if (depth === 1 && expectingElement && c !== ']') {
      lines.push(line);
      expectingElement = false;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      depth++;
      if (depth === 1) expectingElement = true;
    } else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 1) expectingElement = true;
  }
  return lines;
}

const JSON_FIELDS = [
  'src',
  'dst',
  'proto',
  'port',
  'process',
  'firstSeen',
  'lastSeen',
  'connections',
  'bytes',
];

export function parseBulkheadJson(text: string): ImportResult {
  const problems = new Problems('JSON');
  let value: unknown;
  try {
    value = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (e) {
    // V8 names the position ("at position 123" or "line 4 column 2"); say which line.
    const m = /position (\d+)/.exec((e as Error).message);
    const line = m ? text.slice(0, Number(m[1])).split('\n').length : 1;
    problems.add(line, undefined, `not valid JSON: ${(e as Error).message}`);
    problems.fail();
  }
  if (!Array.isArray(value)) {
    problems.add(1, undefined, 'expected one JSON array of flow summaries');
    problems.fail();
  }
  const items = value as unknown[];
  const lines = elementLines(text);
  const summaries: ImportedFlow[] = [];
  const names = { firstSeen: 'firstSeen', lastSeen: 'lastSeen' };
  items.forEach((item, i) => {
    const line = lines[i] ?? 1;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      problems.add(
        line,
        `[${i}]`,
        'is not an object with src, dst, proto, port, firstSeen, lastSeen, connections, bytes',
      );
      return;
    }
    const unknown = Object.keys(item).filter((k) => !JSON_FIELDS.includes(k));
    if (unknown.length) {
      problems.add(
        line,
        `[${i}].${unknown[0]!}`,
        `is not a field (expected ${JSON_FIELDS.join(', ')})`,
      );
      return;
    }
    // Name the element too: several may share a line.
    const s = readAll(problems, line, item as Fields, names, `[${i}].`);
    if (s) summaries.push(s);
  });
  problems.fail();
  return { summaries, skipped: 0 };
}

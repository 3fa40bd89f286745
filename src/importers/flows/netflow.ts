/**
 * NetFlow/IPFIX records as `nfdump -o csv` writes them: a header naming the columns
 * (`ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,...`), a line per flow, then a
 * blank line and a `Summary` section, which is not flows and is not read. Columns are found
 * by name, so older and newer nfdump column sets both work.
 *
 * Times (`2026-11-23 20:45:00` or with `.123`) carry no zone; nfdump prints the collector's
 * local time, and they are read as UTC (run nfdump with TZ=UTC). A NetFlow record is one
 * direction of a conversation: a record from a well-known port (below 1024) to a high one is
 * the answer of a connection to that port, so its bytes go to that connection's edge and it
 * counts no connection; every other record is one connection to its destination port.
 */
import {
  FieldError,
  FlowSums,
  Problems,
  isLoopback,
  protocolOf,
  readAddress,
  readCount,
  readPort,
  type ImportResult,
} from './summary.js';

const REQUIRED = ['ts', 'te', 'sa', 'da', 'sp', 'dp', 'pr', 'ibyt'] as const;
const NFDUMP_TIME = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d(?:\.\d{1,6})?)$/;

function readTime(field: string, value: string): string {
  const m = NFDUMP_TIME.exec(value.trim());
  const ms = m ? Date.parse(`${m[1]!}T${m[2]!}Z`) : Number.NaN;
  if (Number.isNaN(ms))
    throw new FieldError(
      field,
      `${JSON.stringify(value)} is not a time (nfdump's "2026-11-23 20:45:00.123")`,
    );
  return new Date(ms).toISOString();
}

/** A port column: nfdump writes `0` for none and `8.0` (type.code) for ICMP. */
function readRawPort(field: string, value: string): number {
  if (!/^\d+(\.\d+)?$/.test(value.trim()))
    throw new FieldError(field, `${JSON.stringify(value)} is not a port`);
  return Number(value.split('.')[0]);
}

export function parseNfdumpCsv(text: string): ImportResult {
  const problems = new Problems('NetFlow (nfdump CSV)');
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const headerAt = lines.findIndex((l) => l.trim() !== '');
  if (headerAt < 0) {
    problems.add(
      1,
      undefined,
      `the file is empty: nfdump -o csv starts with a header (${REQUIRED.join(',')},...)`,
    );
    problems.fail();
  }
  const header = lines[headerAt]!.split(',').map((h) => h.trim().toLowerCase());
  const column = new Map(header.map((h, i) => [h, i]));
  for (const c of REQUIRED)
    if (!column.has(c))
      problems.add(
        headerAt + 1,
        c,
        `the header has no ${c} column (is this nfdump -o csv output?)`,
      );
  problems.fail();
  const obyt = column.get('obyt');
  // nfdump versions differ in their trailing columns; a row needs only the ones read here.
  const needed = Math.max(...REQUIRED.map((c) => column.get(c)!), obyt ?? 0) + 1;

  const sums = new FlowSums();
  let skipped = 0;
  for (let i = headerAt + 1; i < lines.length; i++) {
    const text = lines[i]!.trim();
    if (text === '') continue;
    // The totals after the flows ("Summary", then its own header and values).
    if (/^summary\b/i.test(text) || /^no matched flows/i.test(text)) break;
    const line = i + 1;
    const cells = text.split(',').map((c) => c.trim());
    if (cells.length < needed) {
      problems.add(line, undefined, `${cells.length} fields where the header has ${header.length}`);
      continue;
    }
    const cell = (c: string): string => cells[column.get(c)!]!;
    const proto = protocolOf(cell('pr'));
    if (!proto) {
      if (!/^[A-Za-z0-9-]+$/.test(cell('pr')))
        problems.add(line, 'pr', `${JSON.stringify(cell('pr'))} is not a protocol`);
      else skipped++;
      continue;
    }
    const read = <T>(r: () => T): T | undefined => problems.field(line, r);
    const before = problems.list.length;
    const sa = read(() => readAddress('sa', cell('sa')));
    const da = read(() => readAddress('da', cell('da')));
    const first = read(() => readTime('ts', cell('ts')));
    const last = read(() => readTime('te', cell('te')));
    const sp = proto === 'tcp' || proto === 'udp' ? read(() => readRawPort('sp', cell('sp'))) : 0;
    const dp =
      proto === 'tcp' || proto === 'udp' ? read(() => readPort('dp', proto, cell('dp'))) : null;
    const inBytes = read(() => readCount('ibyt', cell('ibyt')));
    const outBytes = obyt === undefined ? 0 : read(() => readCount('obyt', cells[obyt] ?? '0'));
    if (first !== undefined && last !== undefined && last < first)
      problems.add(line, 'te', `${cell('te')} is before ts (${cell('ts')})`);
    if (problems.list.length !== before) continue;
    if (isLoopback(sa!) || isLoopback(da!)) {
      skipped++;
      continue;
    }
    const bytes = inBytes! + outBytes!;
    const answer = dp !== null && sp! >= 1 && sp! < 1024 && dp! >= 1024;
    sums.add({
      src: answer ? da! : sa!,
      dst: answer ? sa! : da!,
      proto,
      dport: answer ? sp! : (dp as number | null),
      process: null,
      first_seen: first!,
      last_seen: last!,
      connections: answer ? 0 : 1,
      bytes,
    });
  }
  problems.fail();
  return { summaries: sums.summaries(), skipped };
}

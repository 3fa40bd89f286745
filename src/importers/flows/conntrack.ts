/**
 * conntrack-tools output: `conntrack -L` dumps (plain, `-o extended`, `-o id`) and
 * `conntrack -E` event logs (with `-o timestamp`, each line starts `[1700000000.123456]`).
 *
 *     ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=51000 dport=22 packets=10 bytes=1000 src=10.0.0.2 dst=10.0.0.1 sport=22 dport=51000 packets=8 bytes=2000 [ASSURED] mark=0 use=1
 *     [1700000000.123456]	    [NEW] tcp      6 120 SYN_SENT src=... dport=8080 [UNREPLIED] src=...
 *
 * The first src/dst/dport are the original direction (who opened the connection). Unlike
 * the agent's parser (src/agent/parse/conntrack.ts, built for its hot path, which needs the
 * `id=` of `-o id` and drops what it cannot read), this one takes any of these forms and
 * names the line and field of anything it cannot read, since a person chose this file.
 *
 * Counting: a dump line is one connection; in an event log a [NEW] event is one (its
 * [DESTROY] adds the bytes), and when the log holds no [NEW] events at all (`-e DESTROY`)
 * each [DESTROY] is one. Lines without a timestamp are dated `now` (the import's time);
 * `delta-time=` (with `-o ktimestamp`) dates the start.
 */
import {
  FieldError,
  FlowSums,
  Problems,
  isLoopback,
  protocolOf,
  readAddress,
  readPort,
  type ImportResult,
} from './summary.js';

type Event = 'entry' | 'new' | 'destroy' | 'update';

const TIMESTAMP = /^\[(\d{9,11})(?:\.(\d{1,9}))?\]\s*/;
const EVENT = /^\[(NEW|DESTROY|UPDATE)\]\s*/;
const TRAILER = /^conntrack v[\d.]+ \(conntrack-tools\):/;

interface Line {
  readonly line: number;
  readonly event: Event;
  readonly text: string;
  readonly time: string | null;
}

function split(text: string): Line[] {
  const out: Line[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    let t = raw.trim();
    if (t === '' || t.startsWith('#') || TRAILER.test(t)) return;
    let time: string | null = null;
    const ts = TIMESTAMP.exec(t);
    if (ts) {
      const ms = Number(ts[1]) * 1000 + Math.floor(Number(`0.${ts[2] ?? '0'}`) * 1000);
      time = new Date(ms).toISOString();
      t = t.slice(ts[0].length);
    }
    let event: Event = 'entry';
    const ev = EVENT.exec(t);
    if (ev) {
      event = ev[1]!.toLowerCase() as Event;
      t = t.slice(ev[0].length);
    }
    out.push({ line: i + 1, event, text: t, time });
  });
  return out;
}

export function parseConntrack(text: string, now: Date = new Date()): ImportResult {
  const problems = new Problems('conntrack');
  const lines = split(text);
  const countDestroys = !lines.some((l) => l.event === 'new');
  const sums = new FlowSums();
  let skipped = 0;
  for (const l of lines) {
    const tokens = l.text.split(/\s+/);
    let at = 0;
    // `-o extended`: the layer-3 name and number first.
    if ((tokens[0] === 'ipv4' || tokens[0] === 'ipv6') && /^\d+$/.test(tokens[1] ?? '')) at = 2;
    const protoName = tokens[at] ?? '';
    if (!/^\d+$/.test(tokens[at + 1] ?? '')) {
      problems.add(
        l.line,
        undefined,
        `not a conntrack entry (expected "tcp 6 ...", "udp 17 ..." as conntrack -L or -E prints them)`,
      );
      continue;
    }
    const proto = protocolOf(protoName);
    if (!proto || l.event === 'update') {
      // GRE, SCTP and the like are not kept; an UPDATE is a state change, not traffic.
      skipped++;
      continue;
    }
    const fields = new Map<string, string>();
    let bytes = 0;
    let delta: number | null = null;
    for (const token of tokens.slice(at + 2)) {
      const eq = token.indexOf('=');
      if (eq <= 0) continue;
      const key = token.slice(0, eq);
      const value = token.slice(eq + 1);
      if (key === 'bytes') {
        if (!/^\d+$/.test(value))
          problems.add(l.line, 'bytes', `${JSON.stringify(value)} is not a byte count`);
        else bytes += Number(value);
      } else if (key === 'delta-time' && /^\d+$/.test(value)) delta = Number(value);
      else if (!fields.has(key)) fields.set(key, value);
    }
    const read = <T>(r: () => T): T | undefined => problems.field(l.line, r);
    const need = (key: string): string => {
      const v = fields.get(key);
      if (v === undefined) throw new FieldError(key, `missing (a conntrack entry has ${key}=)`);
      return v;
    };
    const src = read(() => readAddress('src', need('src')));
    const dst = read(() => readAddress('dst', need('dst')));
    const dport =
      proto === 'tcp' || proto === 'udp'
        ? read(() => readPort('dport', proto, need('dport')))
        : null;
    if (src === undefined || dst === undefined || dport === undefined) continue;
    if (isLoopback(src) || isLoopback(dst)) {
      skipped++;
      continue;
    }
    const last = l.time ?? now.toISOString();
    const first = delta !== null ? new Date(Date.parse(last) - delta * 1000).toISOString() : last;
    const counts =
      l.event === 'entry' || l.event === 'new' || (l.event === 'destroy' && countDestroys);
    sums.add({
      src,
      dst,
      proto,
      dport,
      process: null,
      first_seen: first,
      last_seen: last,
      connections: counts ? 1 : 0,
      bytes,
    });
  }
  problems.fail();
  return { summaries: sums.summaries(), skipped };
}

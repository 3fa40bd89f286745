/**
 * `conntrack -E -o id` event lines and `conntrack -L -o id` entries (conntrack-tools 1.4),
 * as recorded in test/agent/fixtures:
 *
 *     [NEW] tcp      6 120 SYN_SENT src=198.18.250.2 dst=198.18.250.1 sport=33766 dport=8080 [UNREPLIED] src=... id=2183007099
 * [DESTROY] tcp      6 120 CLOSE src=... sport=45260 dport=7777 packets=1 bytes=60 [UNREPLIED] src=... packets=1 bytes=40 id=3893612310
 * tcp      6 118 TIME_WAIT src=... dport=9090 packets=4 bytes=296 src=... packets=4 bytes=298 [ASSURED] mark=0 use=1 id=3939065737
 * icmp     1 29 src=... type=8 code=0 id=4660 packets=1 bytes=36 src=... type=0 code=0 id=4660 ... id=1899990169
 *
 * The first src/dst/sport/dport are the original direction (who opened the connection);
 * the conntrack id is the last `id=` (an ICMP entry has its echo id before it). Byte counts
 * appear only when the kernel accounts them (`net.netfilter.nf_conntrack_acct`).
 *
 * Hot path (a line per new and per ended connection): a handful of indexOf calls and a few
 * slices per line, no splitting, no regular expressions.
 */

export type ConntrackEvent = 'new' | 'destroy' | 'update' | 'entry';
export type ConntrackProto = 'tcp' | 'udp' | 'icmp' | 'icmpv6';

export interface ConntrackRecord {
  /** `entry` for a line of a `conntrack -L` dump. */
  readonly event: ConntrackEvent;
  readonly proto: ConntrackProto;
  readonly src: string;
  readonly dst: string;
  /** -1 when the protocol has no ports. */
  readonly sport: number;
  readonly dport: number;
  /** Both directions' bytes; -1 when the kernel does not account them. */
  readonly bytes: number;
  readonly id: number;
}

const SPACE = 32;

/** The decimal number at `at` (up to the next non-digit), or -1. */
function numberAt(line: string, at: number): number {
  const c = line.charCodeAt(at);
  if (!(c >= 48 && c <= 57)) return -1;
  // parseInt stops at the first non-digit; a digit loop in JavaScript costs four times more
  // in the agent's interpreter-only runtime (--no-opt), twice per connection and field.
  return parseInt(line.slice(at, at + 24), 10);
}

/** The value of the first ` key=` at or after `from`, as [start, end), or null. */
function valueAt(line: string, key: string, from: number): [number, number] | null {
  const at = line.indexOf(key, from);
  if (at < 0) return null;
  const start = at + key.length;
  let end = line.indexOf(' ', start);
  if (end < 0) end = line.length;
  return [start, end];
}

function protoAt(line: string, at: number): ConntrackProto | null {
  if (line.startsWith('tcp ', at)) return 'tcp';
  if (line.startsWith('udp ', at)) return 'udp';
  if (line.startsWith('icmp ', at)) return 'icmp';
  if (line.startsWith('icmpv6 ', at)) return 'icmpv6';
  return null;
}

/**
 * One line, or null for what is not a connection we report (another protocol, the
 * "N flow entries have been shown" trailer, a blank line). Never throws.
 */
export function parseConntrackLine(line: string): ConntrackRecord | null {
  let at = 0;
  while (at < line.length && line.charCodeAt(at) === SPACE) at++;
  let event: ConntrackEvent = 'entry';
  if (line.charCodeAt(at) === 91 /* [ */) {
    if (line.startsWith('[NEW]', at)) event = 'new';
    else if (line.startsWith('[DESTROY]', at)) event = 'destroy';
    else if (line.startsWith('[UPDATE]', at)) event = 'update';
    else return null;
    at = line.indexOf(']', at) + 1;
    while (at < line.length && line.charCodeAt(at) === SPACE) at++;
  }
  // `-o extended` prefixes the layer-3 name and number (`ipv4     2`); tolerate it.
  if (line.startsWith('ipv4 ', at) || line.startsWith('ipv6 ', at)) {
    at += 5;
    while (line.charCodeAt(at) === SPACE) at++;
    while (at < line.length && line.charCodeAt(at) !== SPACE) at++;
    while (line.charCodeAt(at) === SPACE) at++;
  }
  const proto = protoAt(line, at);
  if (!proto) return null;
  const src = valueAt(line, ' src=', at);
  if (!src) return null;
  const dst = valueAt(line, ' dst=', src[1]);
  if (!dst) return null;
  let sport = -1;
  let dport = -1;
  if (proto === 'tcp' || proto === 'udp') {
    const s = line.indexOf(' sport=', dst[1]);
    const d = line.indexOf(' dport=', dst[1]);
    if (s < 0 || d < 0) return null;
    sport = numberAt(line, s + 7);
    dport = numberAt(line, d + 7);
  }
  let bytes = -1;
  const first = line.indexOf(' bytes=', dst[1]);
  if (first >= 0) {
    bytes = numberAt(line, first + 7);
    const second = line.indexOf(' bytes=', first + 7);
    if (second >= 0) bytes += Math.max(0, numberAt(line, second + 7));
  }
  const idAt = line.lastIndexOf(' id=');
  if (idAt < 0) return null;
  const id = numberAt(line, idAt + 4);
  if (id < 0) return null;
  return {
    event,
    proto,
    src: line.slice(src[0], src[1]),
    dst: line.slice(dst[0], dst[1]),
    sport,
    dport,
    bytes,
    id,
  };
}

/** conntrack's warning when the kernel dropped events for a slow reader. */
export function isEventLossNotice(stderrLine: string): boolean {
  return /ENOBUFS/.test(stderrLine);
}

/**
 * `ss -Htuapn` lines (iproute2 6.x), as recorded in test/agent/fixtures:
 *
 *   tcp LISTEN    0  511   0.0.0.0:8080        0.0.0.0:*      users:(("node",pid=10515,fd=19))
 *   tcp ESTAB     0  0     198.18.250.2:33766  198.18.250.1:8080 users:(("node",pid=10552,fd=19))
 *   tcp LISTEN    0  511   *:9090              *:*            users:(("node",pid=10515,fd=20))
 *   tcp TIME-WAIT 0  0     [2001:db8::250:1]:9090 [2001:db8::250:2]:45600
 *   tcp LISTEN    0  128   0.0.0.0:2024        0.0.0.0:*      (no process: another namespace's)
 *
 * With only one of -t/-u, ss leaves the first (Netid) column out; both forms are read.
 * Addresses: `[v6]:port`, `v4:port`, `*:port`, an interface scope (`127.0.0.53%lo:53`),
 * and IPv4-mapped IPv6 (`[::ffff:198.18.0.1]:80`), which is reported as plain IPv4.
 */

export interface SocketEndpoint {
  /** `*` for a wildcard; otherwise an IP address without brackets or scope. */
  readonly address: string;
  readonly port: number;
}

export interface SocketProcess {
  readonly name: string;
  readonly pid: number;
}

export interface SocketEntry {
  readonly proto: 'tcp' | 'udp';
  /** LISTEN, UNCONN, ESTAB, SYN-SENT... */
  readonly state: string;
  readonly local: SocketEndpoint;
  readonly peer: SocketEndpoint | null;
  /** The first process holding the socket, when ss could see one. */
  readonly process: SocketProcess | null;
}

const LINE = /^(?:(tcp|udp)\s+)?([A-Z][A-Z0-9-]*)\s+\d+\s+\d+\s+(\S+)\s+(\S+)(.*)$/;
const USER = /\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=\d+\)/;

export function parseEndpoint(text: string): SocketEndpoint | null {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return null;
  const portText = text.slice(colon + 1);
  const port = portText === '*' ? 0 : Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return null;
  let address = text.slice(0, colon);
  if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
  const scope = address.indexOf('%');
  if (scope >= 0) address = address.slice(0, scope);
  if (address === '0.0.0.0' || address === '::' || address === '') address = '*';
  if (address.toLowerCase().startsWith('::ffff:') && address.includes('.'))
    address = address.slice(7);
  return { address, port };
}

/**
 * One line, or null when it is not a TCP/UDP socket line. `defaultProto` is the protocol of
 * output that has no Netid column (ss given only -t or only -u).
 */
export function parseSsLine(line: string, defaultProto?: 'tcp' | 'udp'): SocketEntry | null {
  const m = LINE.exec(line.trim());
  if (!m) return null;
  const proto = (m[1] as 'tcp' | 'udp' | undefined) ?? defaultProto;
  if (!proto) return null;
  const local = parseEndpoint(m[3]!);
  if (!local) return null;
  const peer = parseEndpoint(m[4]!);
  const user = USER.exec(m[5] ?? '');
  return {
    proto,
    state: m[2]!,
    local,
    peer: peer && !(peer.address === '*' && peer.port === 0) ? peer : null,
    process: user ? { name: user[1]!.replace(/\\(.)/g, '$1'), pid: Number(user[2]) } : null,
  };
}

export function parseSs(text: string, defaultProto?: 'tcp' | 'udp'): SocketEntry[] {
  const out: SocketEntry[] = [];
  for (const line of text.split('\n')) {
    const entry = parseSsLine(line, defaultProto);
    if (entry) out.push(entry);
  }
  return out;
}

/** A socket that waits for peers: a TCP listener or a bound, unconnected UDP socket. */
export function isListening(s: SocketEntry): boolean {
  return s.state === 'LISTEN' || (s.proto === 'udp' && s.state === 'UNCONN');
}

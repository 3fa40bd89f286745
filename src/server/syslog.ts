/**
 * The audit log to syslog: each committed event as one RFC 5424 message, with the actor,
 * type and resource as structured data, and optionally a CEF record as the message (for
 * SIEMs that read ArcSight's format). UDP sends one datagram per event; TCP frames each
 * message by octet counting (RFC 6587 3.4.1) and reconnects after a failure.
 *
 * Configured by BULKHEAD_SYSLOG=udp://host:port | tcp://host:port and
 * BULKHEAD_SYSLOG_FORMAT=cef (default: the event as JSON).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIP, Socket as TcpSocket } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { VERSION } from '../version.js';
import type { AuditEvent, AuditFeed } from './audit.js';

export interface SyslogTarget {
  readonly protocol: 'udp' | 'tcp';
  readonly host: string;
  readonly port: number;
}

export type SyslogFormat = 'json' | 'cef';

export interface SyslogOptions {
  readonly target: SyslogTarget;
  readonly format?: SyslogFormat;
  /** The HOSTNAME field; the machine's name by default. */
  readonly hostname?: string;
  /** Told about send failures (never thrown: the audit log itself is in the store). */
  readonly onError?: (error: Error) => void;
}

/** Facility 13: log audit (RFC 5424 table 1). */
const FACILITY = 13;
/** The private enterprise number reserved for documentation (RFC 5612). */
const SD_ID = 'bulkhead@32473';

export function parseSyslogTarget(text: string): SyslogTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`BULKHEAD_SYSLOG: "${text}" is not a URL (e.g. udp://127.0.0.1:514)`);
  }
  const protocol = url.protocol.replace(/:$/, '');
  if (protocol !== 'udp' && protocol !== 'tcp')
    throw new Error(`BULKHEAD_SYSLOG: use udp:// or tcp://, not ${protocol}://`);
  const port = url.port ? Number(url.port) : 514;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new Error(`BULKHEAD_SYSLOG: "${text}" names no host`);
  return { protocol, host, port };
}

/** How serious an event is: syslog severity (0-7) and CEF severity (0-10). */
export function severityOf(type: string): { syslog: number; cef: number } {
  if (/tamper|fail/.test(type)) return { syslog: 4, cef: 8 };
  if (/revoke|delete|rollback|provision|key\./.test(type)) return { syslog: 5, cef: 5 };
  return { syslog: 6, cef: 3 };
}

/** RFC 5424 6.3.3: `"`, `\` and `]` are escaped in a PARAM-VALUE. */
export const sdEscape = (v: string): string => v.replace(/["\\\]]/g, (c) => `\\${c}`);
/** CEF header fields: `\` and `|` escaped; line breaks are not allowed, so become spaces. */
export const cefHeaderEscape = (v: string): string =>
  v.replace(/[\\|]/g, (c) => `\\${c}`).replace(/[\r\n]+/g, ' ');
/** CEF extension values: `\` and `=` escaped, line breaks as \n and \r. */
export const cefValueEscape = (v: string): string =>
  v
    .replace(/[\\=]/g, (c) => `\\${c}`)
    .replace(/\r/g, '\\r')
    .replace(/\n/g, '\\n');

/** A header field: printable US-ASCII without spaces, at most `max` characters, or "-". */
function headerField(v: string, max: number): string {
  const clean = v.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return clean || '-';
}

export function cefMessage(e: AuditEvent): string {
  const h = cefHeaderEscape;
  const ext: [string, string][] = [
    ['rt', String(Date.parse(e.at))],
    ['act', e.type],
    ['suser', e.actor],
  ];
  if (e.source && isIP(e.source)) ext.push(['src', e.source]);
  ext.push(
    ['cs1Label', 'resourceKind'],
    ['cs1', e.resource.kind],
    ['cs2Label', 'resourceName'],
    ['cs2', e.resource.name],
    ['externalId', String(e.id)],
  );
  if (e.requestId) ext.push(['cs3Label', 'requestId'], ['cs3', e.requestId]);
  return (
    `CEF:0|Bulkhead|bulkhead|${h(VERSION)}|${h(e.type)}|${h(e.type)}|${severityOf(e.type).cef}|` +
    ext.map(([k, v]) => `${k}=${cefValueEscape(v)}`).join(' ')
  );
}

/** One RFC 5424 message (no framing). */
export function syslogMessage(
  e: AuditEvent,
  options: { format?: SyslogFormat; hostname?: string; procId?: number } = {},
): string {
  const pri = FACILITY * 8 + severityOf(e.type).syslog;
  const host = headerField(options.hostname ?? osHostname(), 255);
  const procId = headerField(String(options.procId ?? process.pid), 128);
  const params: [string, string][] = [
    ['id', String(e.id)],
    ['actor', e.actor],
    ['type', e.type],
    ['kind', e.resource.kind],
    ['name', e.resource.name],
  ];
  if (e.source) params.push(['source', e.source]);
  if (e.requestId) params.push(['requestId', e.requestId]);
  const sd = `[${SD_ID} ${params.map(([k, v]) => `${k}="${sdEscape(v)}"`).join(' ')}]`;
  const msg = options.format === 'cef' ? cefMessage(e) : JSON.stringify(e);
  return `<${pri}>1 ${e.at} ${host} bulkhead ${procId} ${headerField(e.type, 32)} ${sd} ${msg}`;
}

/** RFC 6587 octet counting: the message's length in bytes, a space, the message. */
export function octetCounted(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}

export interface SyslogSink {
  /** Stops listening and closes the socket, after sending what is queued. */
  close(): Promise<void>;
}

export function startSyslogSink(feed: AuditFeed, options: SyslogOptions): SyslogSink {
  const { target } = options;
  const onError = options.onError ?? (() => undefined);
  const format = (e: AuditEvent) =>
    syslogMessage(e, {
      ...(options.format ? { format: options.format } : {}),
      ...(options.hostname ? { hostname: options.hostname } : {}),
    });

  let send: (message: string) => void;
  let closeSocket: () => Promise<void>;
  if (target.protocol === 'udp') {
    const udp: UdpSocket = createSocket(isIP(target.host) === 6 ? 'udp6' : 'udp4');
    udp.on('error', onError);
    udp.unref();
    let inFlight = 0;
    let drained: (() => void) | null = null;
    send = (message) => {
      inFlight++;
      udp.send(Buffer.from(message, 'utf8'), target.port, target.host, (err) => {
        if (err) onError(err);
        if (--inFlight === 0 && drained) drained();
      });
    };
    closeSocket = async () => {
      if (inFlight > 0) await new Promise<void>((r) => (drained = r));
      await new Promise<void>((r) => udp.close(() => r()));
    };
  } else {
    let tcp: TcpSocket | null = null;
    let closing = false;
    const connect = (): TcpSocket => {
      const s = new TcpSocket();
      s.on('error', (err) => {
        onError(err);
        s.destroy();
      });
      s.on('close', () => {
        if (tcp === s) tcp = null;
      });
      s.connect(target.port, target.host);
      s.unref();
      return s;
    };
    send = (message) => {
      if (closing) return;
      tcp ??= connect();
      tcp.write(octetCounted(message));
    };
    closeSocket = async () => {
      closing = true;
      const s = tcp;
      if (!s) return;
      await new Promise<void>((r) => {
        s.once('close', () => r());
        s.end();
      });
    };
  }

  const onEvent = (e: AuditEvent) => {
    try {
      send(format(e));
    } catch (err) {
      onError(err as Error);
    }
  };
  feed.on('event', onEvent);
  return {
    async close() {
      feed.off('event', onEvent);
      await closeSocket();
    },
  };
}

/** The sink the environment asks for (BULKHEAD_SYSLOG, BULKHEAD_SYSLOG_FORMAT), or null. */
export function syslogFromEnv(
  feed: AuditFeed,
  env: NodeJS.ProcessEnv,
  onError?: (error: Error) => void,
): SyslogSink | null {
  const url = env.BULKHEAD_SYSLOG;
  if (!url) return null;
  const fmt = env.BULKHEAD_SYSLOG_FORMAT?.toLowerCase();
  if (fmt !== undefined && fmt !== '' && fmt !== 'cef' && fmt !== 'json')
    throw new Error(`BULKHEAD_SYSLOG_FORMAT: "${fmt}" is not cef or json`);
  return startSyslogSink(feed, {
    target: parseSyslogTarget(url),
    format: fmt === 'cef' ? 'cef' : 'json',
    ...(onError ? { onError } : {}),
  });
}

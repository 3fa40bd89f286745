/**
 * What every flow importer produces: summaries in the shape of the `flow_summaries` ingest
 * log (without the reporting agent, batch and workload, which the import route sets), and
 * the problems that reject a file, each naming its line and field. A file with any problem
 * is rejected whole, so an import never leaves half a file behind.
 */
import { canonicalAddress } from '../../policy/addresses.js';
import type { FlowProtocol } from '../../policy/decide.js';

export interface ImportedFlow {
  readonly src: string;
  readonly dst: string;
  readonly proto: FlowProtocol;
  /** Null for ICMP. */
  readonly dport: number | null;
  readonly process: string | null;
  /** Canonical UTC ISO text. */
  readonly first_seen: string;
  readonly last_seen: string;
  readonly connections: number;
  readonly bytes: number;
}

export interface ImportProblem {
  /** 1-based line of the input. */
  readonly line: number;
  /** The column or field, when one is to blame. */
  readonly field?: string;
  readonly message: string;
}

export interface ImportResult {
  readonly summaries: readonly ImportedFlow[];
  /** Lines read but not imported (a protocol the flow store does not keep, loopback traffic). */
  readonly skipped: number;
}

/** At most this many problems are listed; a file that bad is usually the wrong format. */
export const MAX_PROBLEMS = 20;

export const formatProblem = (p: ImportProblem): string =>
  `line ${p.line}${p.field ? `, ${p.field}` : ''}: ${p.message}`;

export class ImportError extends Error {
  constructor(
    readonly format: string,
    readonly problems: readonly ImportProblem[],
  ) {
    super(
      `the ${format} file was not imported (nothing was stored): ${problems.map(formatProblem).join('; ')}`,
    );
    this.name = 'ImportError';
  }
}

/** Gathers a file's problems; `fail()` throws them all at the end (or early past MAX_PROBLEMS). */
export class Problems {
  readonly list: ImportProblem[] = [];
  constructor(private readonly format: string) {}

  add(line: number, field: string | undefined, message: string): void {
    this.list.push(field === undefined ? { line, message } : { line, field, message });
    if (this.list.length >= MAX_PROBLEMS) this.fail();
  }

  /** Runs `read`, recording a FieldError it throws against `line`; undefined then. */
  field<T>(line: number, read: () => T, prefix = ''): T | undefined {
    try {
      return read();
    } catch (e) {
      if (!(e instanceof FieldError)) throw e;
      this.add(line, `${prefix}${e.field}`, e.message);
      return undefined;
    }
  }

  fail(): void {
    if (this.list.length) throw new ImportError(this.format, this.list);
  }
}

/** A value that cannot be used, and the field it came from. */
export class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'FieldError';
  }
}

const quoted = (v: unknown): string => JSON.stringify(v);

// ------------------------------------------------------------------ field readers

export function readAddress(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '')
    throw new FieldError(field, `${quoted(value)} is not an IP address`);
  try {
    return canonicalAddress(value.trim());
  } catch {
    throw new FieldError(field, `${quoted(value)} is not an IP address`);
  }
}

const PROTOCOL_NAMES: Readonly<Record<string, FlowProtocol>> = {
  tcp: 'tcp',
  udp: 'udp',
  icmp: 'icmp',
  icmpv6: 'icmpv6',
  icmp6: 'icmpv6',
  'ipv6-icmp': 'icmpv6',
  '6': 'tcp',
  '17': 'udp',
  '1': 'icmp',
  '58': 'icmpv6',
};

/** A protocol by name or number, or null for one the flow store does not keep. */
export function protocolOf(value: string): FlowProtocol | null {
  return PROTOCOL_NAMES[value.trim().toLowerCase()] ?? null;
}

export function readProtocol(field: string, value: unknown): FlowProtocol {
  const p = typeof value === 'string' ? protocolOf(value) : null;
  if (!p)
    throw new FieldError(field, `${quoted(value)} is not a protocol (tcp, udp, icmp, icmpv6)`);
  return p;
}

/** The destination port: 1-65535 for TCP and UDP, none for ICMP. */
export function readPort(field: string, proto: FlowProtocol, value: unknown): number | null {
  const empty = value === undefined || value === null || value === '';
  if (proto === 'icmp' || proto === 'icmpv6') {
    if (!empty && value !== 0 && value !== '0')
      throw new FieldError(field, `${quoted(value)}: ${proto} has no port (leave it empty)`);
    return null;
  }
  if (empty) throw new FieldError(field, `${proto} needs a port`);
  const n =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && /^\d+$/.test(value.trim())
        ? Number(value)
        : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new FieldError(field, `${quoted(value)} is not a port (1-65535)`);
  return n;
}

export function readCount(field: string, value: unknown): number {
  const n =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && /^\d+$/.test(value.trim())
        ? Number(value)
        : NaN;
  if (!Number.isSafeInteger(n) || n < 0)
    throw new FieldError(field, `${quoted(value)} is not a whole number of 0 or more`);
  return n;
}

const ISO_WITH_ZONE = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/i;

/** An ISO 8601 time with its offset (`2026-11-23T20:45:00Z`), as canonical UTC text. */
export function readIsoTime(field: string, value: unknown): string {
  if (typeof value !== 'string' || !ISO_WITH_ZONE.test(value.trim()))
    throw new FieldError(
      field,
      `${quoted(value)} is not a time (ISO 8601 with its offset, e.g. 2026-11-23T20:45:00Z)`,
    );
  const ms = Date.parse(value.trim());
  if (Number.isNaN(ms)) throw new FieldError(field, `${quoted(value)} is not a time`);
  return new Date(ms).toISOString();
}

export function readProcess(field: string, value: unknown): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string' || value.length > 255)
    throw new FieldError(field, `${quoted(value)} is not a process name (up to 255 characters)`);
  return value.trim() || null;
}

// ------------------------------------------------------------------ summing

/** Sums raw connections into one summary per (src, dst, proto, port, process). */
export class FlowSums {
  private readonly sums = new Map<string, ImportedFlow>();

  add(flow: ImportedFlow): void {
    const key = `${flow.src}|${flow.dst}|${flow.proto}|${flow.dport ?? ''}|${flow.process ?? ''}`;
    const prev = this.sums.get(key);
    this.sums.set(
      key,
      prev
        ? {
            ...prev,
            first_seen: prev.first_seen < flow.first_seen ? prev.first_seen : flow.first_seen,
            last_seen: prev.last_seen > flow.last_seen ? prev.last_seen : flow.last_seen,
            connections: prev.connections + flow.connections,
            bytes: prev.bytes + flow.bytes,
          }
        : flow,
    );
  }

  summaries(): ImportedFlow[] {
    return [...this.sums.values()];
  }
}

/** Loopback traffic never crosses a network, so no policy is about it. */
export const isLoopback = (address: string): boolean =>
  address.startsWith('127.') || address === '::1';

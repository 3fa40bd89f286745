/**
 * The text forms of flow filters, as typed in query strings and CLI flags, read into the
 * flow store's vocabulary. Pure functions shared by the API's query schemas and the CLI, so
 * a flag the CLI accepts is one the server accepts, with the same message when it is not.
 * Each throws a FilterTextError whose message says what is wrong with the value (the
 * caller adds which parameter or flag it came from).
 */
import { DECISIONS, type Decision, type FlowProtocol } from '../../policy/decide.js';
import {
  AddressError,
  canonicalAddress,
  formatInterval,
  parseAddressEntry,
} from '../../policy/addresses.js';
import { parseDuration as durationSeconds } from './window.js';
import {
  FLOW_SORT_KEYS,
  type EndFilter,
  type FlowSort,
  type FlowSortKey,
  type PortFilter,
} from './model.js';

export class FilterTextError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FilterTextError';
  }
}

const quoted = (text: string): string => JSON.stringify(text);

const WORKLOAD_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const LABEL_KEY = /^[a-z][a-z0-9_.-]{0,62}$/;
const MAX_VALUE = 128;

/** `10.0.0.1`, `10.0.0.0/8`, `fd00::/48`: an address or CIDR in canonical text. */
export function parseAddressFilter(text: string): string {
  const t = text.trim();
  if (t.includes('-') && !t.includes('/'))
    throw new FilterTextError(
      `${quoted(text)} is not an address or CIDR (ranges are not accepted here)`,
    );
  try {
    if (!t.includes('/')) return canonicalAddress(t);
    const { family, interval } = parseAddressEntry(t);
    return formatInterval(family, interval).includes('/')
      ? formatInterval(family, interval)
      : `${formatInterval(family, interval)}/${family === 4 ? 32 : 128}`;
  } catch (e) {
    if (e instanceof AddressError)
      throw new FilterTextError(`${quoted(text)} is not an address or CIDR: ${e.message}`);
    throw e;
  }
}

/**
 * One end filter: `app=shop,env=prod` (labels; different keys ANDed, a key repeated ORed),
 * `workload:NAME`, `ip:ADDRESS-OR-CIDR`, `group:NAME` (an IP list, a subnet or `internet`).
 */
export function parseEndFilter(text: string): EndFilter {
  const t = text.trim();
  if (t === '')
    throw new FilterTextError(
      'an end filter may not be empty (e.g. "app=shop,env=prod", "workload:web-1", "ip:10.0.0.0/8", "group:internet")',
    );
  const colon = t.indexOf(':');
  const equals = t.indexOf('=');
  if (colon > 0 && (equals < 0 || colon < equals)) {
    const kind = t.slice(0, colon);
    const value = t.slice(colon + 1).trim();
    switch (kind) {
      case 'workload':
        if (!WORKLOAD_NAME.test(value))
          throw new FilterTextError(`${quoted(value)} is not a workload name`);
        return { workload: value };
      case 'ip':
        return { address: parseAddressFilter(value) };
      case 'group':
        if (value === '' || value.length > MAX_VALUE)
          throw new FilterTextError(`${quoted(t)} names no group (e.g. "group:internet")`);
        return { group: value };
      default:
        // `ip` may be left out: `10.0.0.0/8` is plainly an address.
        break;
    }
  }
  if (equals < 0) {
    try {
      return { address: parseAddressFilter(t) };
    } catch {
      throw new FilterTextError(
        `${quoted(text)} is not an end filter: use labels ("app=shop,env=prod"), "workload:NAME", "ip:CIDR" or "group:NAME"`,
      );
    }
  }
  const labels: Record<string, string[]> = {};
  for (const part of t.split(',')) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (eq < 0 || !LABEL_KEY.test(key))
      throw new FilterTextError(
        `${quoted(part.trim())} in ${quoted(text)} is not a label (key=value, the key in lower case)`,
      );
    if (value === '' || value.length > MAX_VALUE)
      throw new FilterTextError(`label ${key} in ${quoted(text)} has no value`);
    const values = (labels[key] ??= []);
    if (!values.includes(value)) values.push(value);
  }
  return { labels };
}

const PROTOCOLS: readonly FlowProtocol[] = ['tcp', 'udp', 'icmp', 'icmpv6'];

/** `443/tcp`, `53/udp`, `443` (either protocol), `tcp` (any port), `icmp`. */
export function parsePortFilter(text: string): PortFilter {
  const t = text.trim().toLowerCase();
  if ((PROTOCOLS as readonly string[]).includes(t)) return { proto: t as FlowProtocol };
  const m = /^(\d{1,6})(?:\/([a-z0-9]+))?$/.exec(t);
  if (!m)
    throw new FilterTextError(
      `${quoted(text)} is not a port (e.g. "443/tcp", "53/udp", "443", "tcp", "icmp")`,
    );
  const port = Number(m[1]);
  if (port < 1 || port > 65535)
    throw new FilterTextError(`${quoted(text)} is not a port (1-65535)`);
  const proto = m[2];
  if (proto === undefined) return { port };
  if (proto !== 'tcp' && proto !== 'udp')
    throw new FilterTextError(
      `${quoted(text)}: only tcp and udp have ports (write "${proto}" alone)`,
    );
  return { proto, port };
}

/** `connections`, `-connections` (descending), … one of FLOW_SORT_KEYS. */
export function parseSort(text: string): FlowSort {
  const t = text.trim();
  const descending = t.startsWith('-');
  const key = (descending || t.startsWith('+') ? t.slice(1) : t) as FlowSortKey;
  if (!(FLOW_SORT_KEYS as readonly string[]).includes(key))
    throw new FilterTextError(
      `${quoted(text)} is not a sort: use one of ${FLOW_SORT_KEYS.join(', ')}, with "-" in front for descending`,
    );
  return { key, descending };
}

export const DEFAULT_SORT: FlowSort = { key: 'connections', descending: true };

export const formatSort = (sort: FlowSort): string => `${sort.descending ? '-' : ''}${sort.key}`;

/** The longest window anyone keeps traffic for (day buckets, by default 400 days). */
export const MAX_SINCE_SECONDS = 3660 * 86400;

/** `15m`, `1h`, `24h`, `7d`, `90d`, `2w`: a duration back from now, in seconds. */
export function parseDuration(text: string): number {
  const seconds = durationSeconds(text);
  if (seconds === null)
    throw new FilterTextError(
      `${quoted(text)} is not a duration longer than zero (e.g. 15m, 1h, 24h, 7d, 90d)`,
    );
  if (seconds > MAX_SINCE_SECONDS)
    throw new FilterTextError(`${quoted(text)} is longer than ten years`);
  return seconds;
}

/** `blocked,potentially-blocked`: decisions, comma separated. */
export function parseDecisions(text: string): Decision[] {
  const out: Decision[] = [];
  for (const part of text.split(',')) {
    const d = part.trim();
    if (d === '') continue;
    if (!(DECISIONS as readonly string[]).includes(d))
      throw new FilterTextError(`${quoted(d)} is not a decision (${DECISIONS.join(', ')})`);
    if (!out.includes(d as Decision)) out.push(d as Decision);
  }
  if (out.length === 0)
    throw new FilterTextError(`name at least one decision (${DECISIONS.join(', ')})`);
  return out;
}

/** An ISO 8601 time, in canonical UTC text. */
export function parseTime(text: string): string {
  const t = text.trim();
  const ms = /^\d{4}-\d\d-\d\d/.test(t) ? Date.parse(t) : Number.NaN;
  if (Number.isNaN(ms))
    throw new FilterTextError(
      `${quoted(text)} is not a time (use ISO 8601, e.g. 2026-11-23T20:45:00Z)`,
    );
  return new Date(ms).toISOString();
}

/** `app,env` (label keys) or `workload`: how map nodes are grouped or an expanded group broken down. */
export function parseGrouping(text: string): string[] {
  const keys = text
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '');
  if (keys.length === 0)
    throw new FilterTextError('name at least one label key (e.g. "app,env") or "workload"');
  for (const k of keys)
    if (!LABEL_KEY.test(k))
      throw new FilterTextError(`${quoted(k)} is not a label key (lower case, e.g. "app")`);
  if (keys.includes('workload') && keys.length > 1)
    throw new FilterTextError('"workload" groups one node per workload: use it alone');
  return [...new Set(keys)];
}

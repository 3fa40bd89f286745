/**
 * Address sets as sorted, non-overlapping intervals of integers, one list per IP family.
 *
 * Every firewall backend wants a different spelling of the same set (nft interval elements,
 * ipset CIDRs, Windows ranges), and IP lists need exclusions, so the engine keeps one exact
 * representation and renders it at the edge.
 */
import ipaddr from 'ipaddr.js';

export type IpFamily = 4 | 6;

export interface Interval {
  readonly start: bigint;
  readonly end: bigint;
}

export class AddressError extends Error {
  constructor(
    readonly input: string,
    reason: string,
  ) {
    super(`${JSON.stringify(input)} ${reason}`);
    this.name = 'AddressError';
  }
}

const BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };

function bytesToBigint(bytes: readonly number[]): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function parseAddress(text: string): { family: IpFamily; value: bigint } {
  if (!ipaddr.isValid(text)) throw new AddressError(text, 'is not an IP address');
  const addr = ipaddr.parse(text);
  if (addr.kind() === 'ipv6') {
    const v6 = addr as ipaddr.IPv6;
    // An IPv4-mapped IPv6 address is the IPv4 host it names; the kernel sees it as such.
    if (v6.isIPv4MappedAddress()) {
      return { family: 4, value: bytesToBigint(v6.toIPv4Address().toByteArray()) };
    }
    return { family: 6, value: bytesToBigint(v6.toByteArray()) };
  }
  return { family: 4, value: bytesToBigint(addr.toByteArray()) };
}

/** Parses an address, a CIDR (host bits must be zero) or a range `first-last`. */
export function parseAddressEntry(entry: string): { family: IpFamily; interval: Interval } {
  const text = entry.trim();
  const dash = text.indexOf('-');
  if (dash > 0) {
    const first = parseAddress(text.slice(0, dash).trim());
    const last = parseAddress(text.slice(dash + 1).trim());
    if (first.family !== last.family) throw new AddressError(entry, 'mixes IPv4 and IPv6');
    if (first.value > last.value) throw new AddressError(entry, 'is a range whose first address is after its last');
    return { family: first.family, interval: { start: first.value, end: last.value } };
  }
  const slash = text.indexOf('/');
  if (slash > 0) {
    const base = parseAddress(text.slice(0, slash));
    const prefixText = text.slice(slash + 1);
    const prefix = Number(prefixText);
    const bits = BITS[base.family];
    if (!/^\d+$/.test(prefixText) || prefix > bits) {
      throw new AddressError(entry, `has an invalid prefix length (0-${bits})`);
    }
    const hostBits = BigInt(bits - prefix);
    const size = 1n << hostBits;
    if (base.value % size !== 0n) {
      throw new AddressError(entry, 'has host bits set (write the network address)');
    }
    return { family: base.family, interval: { start: base.value, end: base.value + size - 1n } };
  }
  const single = parseAddress(text);
  return { family: single.family, interval: { start: single.value, end: single.value } };
}

export function isAddressEntry(entry: string): boolean {
  try {
    parseAddressEntry(entry);
    return true;
  } catch {
    return false;
  }
}

/** Canonical text of a single address (as the kernel tools print it). */
export function canonicalAddress(text: string): string {
  const { family, value } = parseAddress(text);
  return formatAddress(family, value);
}

export function addressFamily(text: string): IpFamily {
  return parseAddress(text).family;
}

export function addressValue(text: string): { family: IpFamily; value: bigint } {
  return parseAddress(text);
}

export function formatAddress(family: IpFamily, value: bigint): string {
  const count = family === 4 ? 4 : 16;
  const bytes: number[] = new Array<number>(count);
  let v = value;
  for (let i = count - 1; i >= 0; i--) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** Sorts and merges overlapping intervals. Adjacent ones stay apart (see AddressSet). */
function normalize(intervals: Interval[]): Interval[] {
  if (intervals.length < 2) return intervals.slice();
  const sorted = intervals.slice().sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Interval[] = [];
  let cur = sorted[0]!;
  for (let i = 1; i < sorted.length; i++) {
    const next = sorted[i]!;
    if (next.start <= cur.end) {
      if (next.end > cur.end) cur = { start: cur.start, end: next.end };
    } else {
      out.push(cur);
      cur = next;
    }
  }
  out.push(cur);
  return out;
}

function subtract(base: readonly Interval[], cut: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  let j = 0;
  for (const b of base) {
    let start = b.start;
    const end = b.end;
    while (j < cut.length && cut[j]!.end < start) j++;
    let k = j;
    while (k < cut.length && cut[k]!.start <= end && start <= end) {
      const c = cut[k]!;
      if (c.start > start) out.push({ start, end: c.start - 1n });
      if (c.end >= end) {
        start = end + 1n;
        break;
      }
      start = c.end + 1n;
      k++;
    }
    if (start <= end) out.push({ start, end });
  }
  return out;
}

function contains(intervals: readonly Interval[], value: bigint): boolean {
  let lo = 0;
  let hi = intervals.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const iv = intervals[mid]!;
    if (value < iv.start) hi = mid - 1;
    else if (value > iv.end) lo = mid + 1;
    else return true;
  }
  return false;
}

/**
 * An immutable set of addresses. Overlapping intervals are merged; adjacent ones are kept
 * apart so that one workload's address stays one element, and a label change becomes one
 * element added or removed rather than a rewritten range.
 */
export class AddressSet {
  static readonly EMPTY = new AddressSet([], []);

  private constructor(
    readonly v4: readonly Interval[],
    readonly v6: readonly Interval[],
  ) {}

  static of(entries: Iterable<string>, excluded: Iterable<string> = []): AddressSet {
    const inc: Record<IpFamily, Interval[]> = { 4: [], 6: [] };
    const exc: Record<IpFamily, Interval[]> = { 4: [], 6: [] };
    for (const e of entries) {
      const p = parseAddressEntry(e);
      inc[p.family].push(p.interval);
    }
    for (const e of excluded) {
      const p = parseAddressEntry(e);
      exc[p.family].push(p.interval);
    }
    return new AddressSet(
      subtract(normalize(inc[4]), normalize(exc[4])),
      subtract(normalize(inc[6]), normalize(exc[6])),
    );
  }

  static fromIntervals(v4: Interval[], v6: Interval[]): AddressSet {
    return new AddressSet(normalize(v4), normalize(v6));
  }

  static union(sets: Iterable<AddressSet>): AddressSet {
    const v4: Interval[] = [];
    const v6: Interval[] = [];
    for (const s of sets) {
      v4.push(...s.v4);
      v6.push(...s.v6);
    }
    return new AddressSet(normalize(v4), normalize(v6));
  }

  get isEmpty(): boolean {
    return this.v4.length === 0 && this.v6.length === 0;
  }

  intervals(family: IpFamily): readonly Interval[] {
    return family === 4 ? this.v4 : this.v6;
  }

  has(address: string): boolean {
    const { family, value } = parseAddress(address);
    return contains(this.intervals(family), value);
  }

  hasValue(family: IpFamily, value: bigint): boolean {
    return contains(this.intervals(family), value);
  }

  /** Elements as nft writes them: `10.0.0.1`, `10.0.0.0/24`, `10.0.0.5-10.0.0.9`. */
  elements(family: IpFamily): string[] {
    return this.intervals(family).map((iv) => formatInterval(family, iv));
  }

  /** The set as CIDR blocks only (for ipset hash:net, which has no ranges). */
  cidrs(family: IpFamily): string[] {
    const out: string[] = [];
    for (const iv of this.intervals(family)) out.push(...intervalToCidrs(family, iv));
    return out;
  }
}

function prefixOf(family: IpFamily, iv: Interval): number | null {
  const size = iv.end - iv.start + 1n;
  if ((size & (size - 1n)) !== 0n || iv.start % size !== 0n) return null;
  let hostBits = 0;
  for (let s = size; s > 1n; s >>= 1n) hostBits++;
  return BITS[family] - hostBits;
}

export function formatInterval(family: IpFamily, iv: Interval): string {
  if (iv.start === iv.end) return formatAddress(family, iv.start);
  const prefix = prefixOf(family, iv);
  if (prefix !== null) return `${formatAddress(family, iv.start)}/${prefix}`;
  return `${formatAddress(family, iv.start)}-${formatAddress(family, iv.end)}`;
}

/** Splits an interval into the fewest aligned CIDR blocks that cover exactly it. */
export function intervalToCidrs(family: IpFamily, iv: Interval): string[] {
  const bits = BITS[family];
  const out: string[] = [];
  let start = iv.start;
  while (start <= iv.end) {
    let hostBits = 0;
    while (hostBits < bits) {
      const size = 1n << BigInt(hostBits + 1);
      if (start % size !== 0n || start + size - 1n > iv.end) break;
      hostBits++;
    }
    out.push(`${formatAddress(family, start)}/${bits - hostBits}`);
    start += 1n << BigInt(hostBits);
  }
  return out;
}

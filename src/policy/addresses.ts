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

interface ParsedAddress {
  readonly family: IpFamily;
  readonly value: bigint;
  /** Written as an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), so its prefixes count 128 bits. */
  readonly mapped: boolean;
}

/**
 * The value of a plain dotted quad (four decimal numbers 0-255, no leading zeros: the way
 * agents, importers and people write IPv4), or -1 for any other text, which the full parser
 * then reads or refuses. An estate's addresses are nearly all such quads, and reading them
 * here rather than through ipaddr.js is most of the cost of resolving a large estate.
 */
export function dottedQuadValue(text: string): number {
  const length = text.length;
  if (length < 7 || length > 15) return -1;
  let value = 0;
  let dots = 0;
  let octet = 0;
  let digits = 0;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      // A leading zero: `010` is octal 8 to inet_aton, so the full parser refuses it.
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
      digits++;
    } else if (c === 46 && digits > 0 && dots < 3) {
      value = value * 256 + octet;
      dots++;
      octet = 0;
      digits = 0;
    } else return -1;
  }
  return dots === 3 && digits > 0 ? value * 256 + octet : -1;
}

function parseAddress(text: string): ParsedAddress {
  const quad = dottedQuadValue(text);
  if (quad >= 0) return { family: 4, value: BigInt(quad), mapped: false };
  // A zone index (`fe80::1%eth0`) names an interface, which no firewall set can hold.
  if (text.includes('%'))
    throw new AddressError(text, 'has a zone index (%...), which a firewall address cannot hold');
  // ipaddr.js reads no IPv4 form with a colon, and finds that out by throwing, which costs
  // more than parsing: IPv6 goes straight to its own parser.
  if (!text.includes(':') && ipaddr.IPv4.isValid(text)) {
    // ipaddr.js also takes the inet_aton forms ("10", "10.1", "0x0a.0.0.1", octal "010.0.0.1"),
    // which silently name another address than most readers expect: accept a.b.c.d only.
    if (!ipaddr.IPv4.isValidFourPartDecimal(text)) {
      throw new AddressError(
        text,
        'is not an IP address (write IPv4 as four decimal numbers a.b.c.d, without leading zeros)',
      );
    }
    return {
      family: 4,
      value: bytesToBigint(ipaddr.IPv4.parse(text).toByteArray()),
      mapped: false,
    };
  }
  if (!ipaddr.IPv6.isValid(text)) throw new AddressError(text, 'is not an IP address');
  // ipaddr.js reads `::1.2.3.4` (the deprecated IPv4-compatible form, an IPv6 address to the
  // kernel) as `::ffff:1.2.3.4`; spell a trailing dotted quad as two hex groups first.
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let hex = text;
  if (dotted) {
    const quad = dotted[2]!;
    if (!ipaddr.IPv4.isValidFourPartDecimal(quad))
      throw new AddressError(text, 'is not an IP address');
    const [a, b, c, d] = ipaddr.IPv4.parse(quad).toByteArray() as [number, number, number, number];
    hex = `${dotted[1]!}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const v6 = ipaddr.IPv6.parse(hex);
  // An IPv4-mapped IPv6 address is the IPv4 host it names; the kernel sees it as such.
  if (v6.isIPv4MappedAddress()) {
    return { family: 4, value: bytesToBigint(v6.toIPv4Address().toByteArray()), mapped: true };
  }
  return { family: 6, value: bytesToBigint(v6.toByteArray()), mapped: false };
}

/** Parses an address, a CIDR (host bits must be zero) or a range `first-last`. */
export function parseAddressEntry(entry: string): { family: IpFamily; interval: Interval } {
  const text = entry.trim();
  // A CIDR never holds a dash and a range never holds a slash; look for the slash first so
  // that "10.0.0.0/-1" is reported as a bad prefix rather than as a bad range.
  const slash = text.indexOf('/');
  if (slash > 0) {
    const base = parseAddress(text.slice(0, slash).trim());
    const prefixText = text.slice(slash + 1).trim();
    // `::ffff:10.0.0.0/120` is written in IPv6 prefix bits: /120 of the mapped block is 10.0.0.0/24.
    const writtenBits = base.mapped ? 128 : BITS[base.family];
    const written = Number(prefixText);
    if (!/^\d+$/.test(prefixText) || written > writtenBits) {
      throw new AddressError(entry, `has an invalid prefix length (0-${writtenBits})`);
    }
    if (base.mapped && written < 96) {
      throw new AddressError(
        entry,
        'is an IPv4-mapped prefix shorter than /96, which would mix IPv4 and IPv6',
      );
    }
    const prefix = base.mapped ? written - 96 : written;
    const hostBits = BigInt(BITS[base.family] - prefix);
    const size = 1n << hostBits;
    if (base.value % size !== 0n) {
      throw new AddressError(entry, 'has host bits set (write the network address)');
    }
    return { family: base.family, interval: { start: base.value, end: base.value + size - 1n } };
  }
  const dash = text.indexOf('-');
  if (dash > 0) {
    let first: ParsedAddress;
    let last: ParsedAddress;
    try {
      first = parseAddress(text.slice(0, dash).trim());
    } catch {
      // Not `address-...` at all (e.g. a host name with a dash): no range was meant.
      throw new AddressError(entry, 'is not an IP address, CIDR or range');
    }
    try {
      last = parseAddress(text.slice(dash + 1).trim());
    } catch (e) {
      throw new AddressError(entry, `is not a range of IP addresses (${(e as Error).message})`);
    }
    if (first.family !== last.family) throw new AddressError(entry, 'mixes IPv4 and IPv6');
    if (first.value > last.value)
      throw new AddressError(entry, 'is a range whose first address is after its last');
    return { family: first.family, interval: { start: first.value, end: last.value } };
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
  // Agents report addresses by the thousand: a plain dotted quad is already canonical.
  if (dottedQuadValue(text) >= 0) return text;
  const { family, value } = parseAddress(text);
  return formatAddress(family, value);
}

export function addressFamily(text: string): IpFamily {
  return parseAddress(text).family;
}

export function addressValue(text: string): { family: IpFamily; value: bigint } {
  const { family, value } = parseAddress(text);
  return { family, value };
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
  // Callers often pass intervals already in order (one workload after another): skip the sort.
  let ordered = true;
  for (let i = 1; i < intervals.length; i++) {
    if (intervals[i]!.start < intervals[i - 1]!.start) {
      ordered = false;
      break;
    }
  }
  const sorted = ordered
    ? intervals
    : intervals.slice().sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
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

  /** Whether some address is in both sets. */
  meets(other: AddressSet): boolean {
    for (const f of [4, 6] as const) {
      const x = this.intervals(f);
      const y = other.intervals(f);
      let i = 0;
      let j = 0;
      while (i < x.length && j < y.length) {
        if (x[i]!.end < y[j]!.start) i++;
        else if (y[j]!.end < x[i]!.start) j++;
        else return true;
      }
    }
    return false;
  }

  /** Whether every address of `other` is in this set. */
  covers(other: AddressSet): boolean {
    for (const f of [4, 6] as const) {
      const o = this.intervals(f);
      let j = 0;
      for (const iv of other.intervals(f)) {
        // Overlapping intervals are merged but adjacent ones kept apart: walk the adjacent run.
        while (j < o.length && o[j]!.end < iv.start) j++;
        let next = iv.start;
        let k = j;
        while (k < o.length && o[k]!.start <= next && next <= iv.end) {
          if (o[k]!.end >= next) next = o[k]!.end + 1n;
          k++;
        }
        if (next <= iv.end) return false;
      }
    }
    return true;
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

/**
 * Address parsing and address sets: what a person may write in an IP list or a workload,
 * how mistakes are reported, and how a set is rendered for each firewall.
 */
import { describe, expect, it } from 'vitest';
import ipaddr from 'ipaddr.js';
import {
  AddressError,
  AddressSet,
  addressValue,
  canonicalAddress,
  dottedQuadValue,
  formatAddress,
  formatInterval,
  intervalToCidrs,
  parseAddressEntry,
  type Interval,
  type IpFamily,
} from '../../src/policy/addresses.js';

/** An entry as `family first..last`, readable in a table. */
function shown(entry: string): string {
  const { family, interval } = parseAddressEntry(entry);
  return `v${family} ${formatAddress(family, interval.start)}..${formatAddress(family, interval.end)}`;
}

describe('parseAddressEntry: what may be written', () => {
  it.each([
    ['10.0.0.1', 'v4 10.0.0.1..10.0.0.1'],
    [' 10.0.0.1 ', 'v4 10.0.0.1..10.0.0.1'],
    ['10.0.0.0/8', 'v4 10.0.0.0..10.255.255.255'],
    ['10.0.0.7/32', 'v4 10.0.0.7..10.0.0.7'],
    ['0.0.0.0/0', 'v4 0.0.0.0..255.255.255.255'],
    ['10.0.0.5-10.0.0.9', 'v4 10.0.0.5..10.0.0.9'],
    ['10.0.0.5 - 10.0.0.9', 'v4 10.0.0.5..10.0.0.9'],
    ['10.0.0.5-10.0.0.5', 'v4 10.0.0.5..10.0.0.5'],
    ['2001:db8::/32', 'v6 2001:db8::..2001:db8:ffff:ffff:ffff:ffff:ffff:ffff'],
    ['::/0', 'v6 ::..ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    ['2001:db8::1-2001:db8::ff', 'v6 2001:db8::1..2001:db8::ff'],
    ['2001:DB8::A', 'v6 2001:db8::a..2001:db8::a'],
    // IPv4-mapped IPv6 is the IPv4 host, as the kernel sees it; its prefix counts 128 bits.
    ['::ffff:10.0.0.1', 'v4 10.0.0.1..10.0.0.1'],
    ['::ffff:10.0.0.0/120', 'v4 10.0.0.0..10.0.0.255'],
    ['::ffff:0:0/96', 'v4 0.0.0.0..255.255.255.255'],
    ['::ffff:10.0.0.1-::ffff:10.0.0.3', 'v4 10.0.0.1..10.0.0.3'],
    // The deprecated IPv4-compatible form is an IPv6 address, not the IPv4 host.
    ['::1.2.3.4', 'v6 ::102:304..::102:304'],
    ['64:ff9b::192.0.2.1', 'v6 64:ff9b::c000:201..64:ff9b::c000:201'],
  ])('%s', (entry, expected) => {
    expect(shown(entry)).toBe(expected);
  });
});

describe('parseAddressEntry: what is refused, and why', () => {
  it.each([
    ['', '"" is not an IP address'],
    ['not an address', '"not an address" is not an IP address'],
    ['db-1.example.com', '"db-1.example.com" is not an IP address, CIDR or range'],
    ['10.0.0.256', '"10.0.0.256" is not an IP address'],
    ['10.0.0.1:80', '"10.0.0.1:80" is not an IP address'],
    ['2001:db8::g', '"2001:db8::g" is not an IP address'],
    // inet_aton shorthands name other addresses than a reader expects (010 is octal 8).
    [
      '10.1',
      '"10.1" is not an IP address (write IPv4 as four decimal numbers a.b.c.d, without leading zeros)',
    ],
    [
      '010.0.0.1',
      '"010.0.0.1" is not an IP address (write IPv4 as four decimal numbers a.b.c.d, without leading zeros)',
    ],
    [
      '0x0a.0.0.1',
      '"0x0a.0.0.1" is not an IP address (write IPv4 as four decimal numbers a.b.c.d, without leading zeros)',
    ],
    [
      '167772161',
      '"167772161" is not an IP address (write IPv4 as four decimal numbers a.b.c.d, without leading zeros)',
    ],
    [
      'fe80::1%eth0',
      '"fe80::1%eth0" has a zone index (%...), which a firewall address cannot hold',
    ],
    ['2001:db8:::1', '"2001:db8:::1" is not an IP address'],
    ['10.0.0.1/24', '"10.0.0.1/24" has host bits set (write the network address)'],
    ['2001:db8::1/64', '"2001:db8::1/64" has host bits set (write the network address)'],
    ['10.0.0.0/33', '"10.0.0.0/33" has an invalid prefix length (0-32)'],
    ['2001:db8::/129', '"2001:db8::/129" has an invalid prefix length (0-128)'],
    ['10.0.0.0/', '"10.0.0.0/" has an invalid prefix length (0-32)'],
    ['10.0.0.0/x', '"10.0.0.0/x" has an invalid prefix length (0-32)'],
    ['10.0.0.0/-1', '"10.0.0.0/-1" has an invalid prefix length (0-32)'],
    [
      '::ffff:0:0/95',
      '"::ffff:0:0/95" is an IPv4-mapped prefix shorter than /96, which would mix IPv4 and IPv6',
    ],
    ['10.0.0.9-10.0.0.5', '"10.0.0.9-10.0.0.5" is a range whose first address is after its last'],
    ['10.0.0.1-2001:db8::1', '"10.0.0.1-2001:db8::1" mixes IPv4 and IPv6'],
    ['10.0.0.1-foo', '"10.0.0.1-foo" is not a range of IP addresses ("foo" is not an IP address)'],
  ])('%j', (entry, message) => {
    expect(() => parseAddressEntry(entry)).toThrow(AddressError);
    expect(() => parseAddressEntry(entry)).toThrow(message);
    // The message is the whole story: nothing after it.
    try {
      parseAddressEntry(entry);
    } catch (e) {
      expect((e as Error).message).toBe(message);
    }
  });
});

describe('dottedQuadValue: the fast path for a.b.c.d', () => {
  it.each([
    ['0.0.0.0', 0],
    ['10.0.0.1', 0x0a000001],
    ['192.168.1.200', 0xc0a801c8],
    ['255.255.255.255', 0xffffffff],
    ['1.20.100.250', 0x011464fa],
  ])('reads %s', (text, value) => {
    expect(dottedQuadValue(text)).toBe(value);
  });

  it.each([
    // Leading zeros: octal to inet_aton, refused by the full parser.
    '010.0.0.1',
    '10.00.0.1',
    '10.0.0.01',
    '00.0.0.0',
    // Octets out of range.
    '256.0.0.1',
    '10.0.0.256',
    '10.0.0.1000',
    '999.999.999.999',
    // Not four parts.
    '10.0.1',
    '10.0.0.0.1',
    '10..0.1',
    '.10.0.0.1',
    '10.0.0.1.',
    '1.2.3',
    // Anything but digits and dots: spaces, signs, hex, CIDRs, ranges, IPv6, zones.
    ' 10.0.0.1',
    '10.0.0.1 ',
    '+1.2.3.4',
    '-1.2.3.4',
    '0x0a.0.0.1',
    '10.0.0.0/8',
    '10.0.0.1-10.0.0.9',
    '::1',
    '::ffff:10.0.0.1',
    '2001:db8::1',
    '10.0.0.1%eth0',
    '',
  ])('leaves %j to the full parser', (text) => {
    expect(dottedQuadValue(text)).toBe(-1);
  });

  it('agrees with ipaddr.js on every quad it reads, and reads every plain quad it accepts', () => {
    const octets = ['0', '1', '9', '10', '99', '100', '199', '200', '249', '250', '255'];
    const odd = ['00', '01', '256', '300', '1000', ''];
    let checked = 0;
    for (const a of [...octets, ...odd])
      for (const b of octets)
        for (const c of ['0', '255', ...odd])
          for (const d of octets) {
            const text = `${a}.${b}.${c}.${d}`;
            const plain = ipaddr.IPv4.isValidFourPartDecimal(text);
            const value = dottedQuadValue(text);
            if (plain) {
              expect(value, text).toBe(
                ipaddr.IPv4.parse(text)
                  .toByteArray()
                  .reduce((n, x) => n * 256 + x, 0),
              );
              expect(addressValue(text)).toEqual({ family: 4, value: BigInt(value) });
            } else expect(value, text).toBe(-1);
            checked++;
          }
    expect(checked).toBeGreaterThan(10_000);
  });
});

describe('canonicalAddress: IPv6 as the kernel tools print it (RFC 5952)', () => {
  it.each([
    ['2001:0db8:0000:0000:0000:ff00:0042:8329', '2001:db8::ff00:42:8329'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run of zeros is compressed
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // on a tie, the first
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['2001:DB8::A', '2001:db8::a'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['192.0.2.1', '192.0.2.1'],
  ])('%s -> %s', (text, expected) => {
    expect(canonicalAddress(text)).toBe(expected);
  });
});

describe('AddressSet: union and exclusion', () => {
  it.each([
    [
      'overlapping entries merge',
      ['10.0.0.0/25', '10.0.0.64/26', '10.0.0.100-10.0.0.200'],
      [],
      ['10.0.0.0-10.0.0.200'],
    ],
    ['a duplicate entry is one element', ['10.0.0.1', '10.0.0.1'], [], ['10.0.0.1']],
    ['a contained entry disappears', ['10.0.0.0/24', '10.0.0.7'], [], ['10.0.0.0/24']],
    // Adjacent entries stay apart so one workload's address stays one element (a label
    // change is then one element added or removed, not a rewritten range).
    ['adjacent addresses stay apart', ['10.0.0.2', '10.0.0.1'], [], ['10.0.0.1', '10.0.0.2']],
    [
      'adjacent CIDRs stay apart',
      ['10.0.0.128/25', '10.0.0.0/25'],
      [],
      ['10.0.0.0/25', '10.0.0.128/25'],
    ],
    ['an exclusion at the end', ['10.0.0.0/24'], ['10.0.0.128/25'], ['10.0.0.0/25']],
    ['an exclusion at the start', ['10.0.0.0/24'], ['10.0.0.0'], ['10.0.0.1-10.0.0.255']],
    [
      'an exclusion in the middle splits',
      ['10.0.0.0/24'],
      ['10.0.0.10-10.0.0.19'],
      ['10.0.0.0-10.0.0.9', '10.0.0.20-10.0.0.255'],
    ],
    [
      'an exclusion across two entries',
      ['10.0.0.0/30', '10.0.0.8/30'],
      ['10.0.0.2-10.0.0.9'],
      ['10.0.0.0/31', '10.0.0.10/31'],
    ],
    [
      'several exclusions in one entry',
      ['10.0.0.0/28'],
      ['10.0.0.3', '10.0.0.5', '10.0.0.7-10.0.0.8'],
      ['10.0.0.0-10.0.0.2', '10.0.0.4', '10.0.0.6', '10.0.0.9-10.0.0.15'],
    ],
    ['an exclusion of everything', ['10.0.0.0/24'], ['0.0.0.0/0'], []],
    ['an exclusion outside changes nothing', ['10.0.0.0/24'], ['10.0.1.0/24'], ['10.0.0.0/24']],
    ['an IPv6 exclusion leaves IPv4 alone', ['10.0.0.0/24'], ['::/0'], ['10.0.0.0/24']],
    [
      'an IPv4-mapped exclusion is IPv4',
      ['10.0.0.0/24'],
      ['::ffff:10.0.0.0/121'],
      ['10.0.0.128/25'],
    ],
  ])('%s', (_, include, exclude, expected) => {
    expect(AddressSet.of(include, exclude).elements(4)).toEqual(expected);
  });

  it('keeps the families apart', () => {
    const s = AddressSet.of(
      ['10.0.0.0/8', '2001:db8::/32', '::ffff:192.0.2.1'],
      ['2001:db8:1::/48'],
    );
    expect(s.elements(4)).toEqual(['10.0.0.0/8', '192.0.2.1']);
    expect(s.elements(6)).toEqual([
      '2001:db8::/48',
      '2001:db8:2::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff',
    ]);
    expect(s.cidrs(6)).toEqual([
      '2001:db8::/48',
      '2001:db8:2::/47',
      '2001:db8:4::/46',
      '2001:db8:8::/45',
      '2001:db8:10::/44',
      '2001:db8:20::/43',
      '2001:db8:40::/42',
      '2001:db8:80::/41',
      '2001:db8:100::/40',
      '2001:db8:200::/39',
      '2001:db8:400::/38',
      '2001:db8:800::/37',
      '2001:db8:1000::/36',
      '2001:db8:2000::/35',
      '2001:db8:4000::/34',
      '2001:db8:8000::/33',
    ]);
  });

  it('answers membership for either family and the IPv4-mapped spelling', () => {
    const s = AddressSet.of(['10.0.0.0/24', '2001:db8::/64'], ['10.0.0.5']);
    expect([s.has('10.0.0.4'), s.has('10.0.0.5'), s.has('10.0.0.6'), s.has('10.0.1.0')]).toEqual([
      true,
      false,
      true,
      false,
    ]);
    expect([s.has('::ffff:10.0.0.4'), s.has('::ffff:10.0.0.5')]).toEqual([true, false]);
    expect([s.has('2001:db8::ffff'), s.has('2001:db8:0:1::')]).toEqual([true, false]);
    expect(AddressSet.EMPTY.isEmpty).toBe(true);
    expect(s.isEmpty).toBe(false);
    expect(AddressSet.of(['10.0.0.0/24'], ['10.0.0.0/24']).isEmpty).toBe(true);
  });

  it('unions sets, merging overlaps and keeping neighbours apart', () => {
    const u = AddressSet.union([
      AddressSet.of(['10.0.0.0/25']),
      AddressSet.of(['10.0.0.100-10.0.0.130', '10.0.0.131']),
      AddressSet.of(['::1']),
    ]);
    expect(u.elements(4)).toEqual(['10.0.0.0-10.0.0.130', '10.0.0.131']);
    expect(u.elements(6)).toEqual(['::1']);
  });
});

describe('AddressSet: rendering for the firewalls', () => {
  it.each([
    ['10.0.0.1', ['10.0.0.1'], ['10.0.0.1/32']],
    ['10.0.0.0/24', ['10.0.0.0/24'], ['10.0.0.0/24']],
    ['10.0.0.0-10.0.0.255', ['10.0.0.0/24'], ['10.0.0.0/24']], // a range that is a CIDR prints as one
    ['10.0.0.5-10.0.0.9', ['10.0.0.5-10.0.0.9'], ['10.0.0.5/32', '10.0.0.6/31', '10.0.0.8/31']],
    ['10.0.0.0-10.0.0.2', ['10.0.0.0-10.0.0.2'], ['10.0.0.0/31', '10.0.0.2/32']],
    ['0.0.0.0/0', ['0.0.0.0/0'], ['0.0.0.0/0']],
    ['255.255.255.255', ['255.255.255.255'], ['255.255.255.255/32']],
    ['2001:db8::1', ['2001:db8::1'], ['2001:db8::1/128']],
    ['::/0', ['::/0'], ['::/0']],
    ['2001:db8::-2001:db8::2', ['2001:db8::-2001:db8::2'], ['2001:db8::/127', '2001:db8::2/128']],
  ])('%s: elements %j, cidrs %j', (entry, elements, cidrs) => {
    const { family } = parseAddressEntry(entry);
    const s = AddressSet.of([entry]);
    expect(s.elements(family)).toEqual(elements);
    expect(s.cidrs(family)).toEqual(cidrs);
  });

  it('splits 0.0.0.1-255.255.255.255 into one block per bit', () => {
    const blocks = intervalToCidrs(4, { start: 1n, end: 0xffffffffn });
    expect(blocks).toHaveLength(32);
    expect(blocks[0]).toBe('0.0.0.1/32');
    expect(blocks.at(-1)).toBe('128.0.0.0/1');
  });
});

// ---- property test: CIDR decomposition -----------------------------------------------------

/** A small seeded generator (xorshift64*), so a failure reproduces from its seed. */
function random(seed: bigint): (bits: number) => bigint {
  let state = seed || 1n;
  const MASK = (1n << 64n) - 1n;
  const next64 = (): bigint => {
    state ^= state >> 12n;
    state ^= (state << 25n) & MASK;
    state ^= state >> 27n;
    return (state * 2685821657736338717n) & MASK;
  };
  return (bits) => {
    let v = 0n;
    for (let got = 0; got < bits; got += 64) v = (v << 64n) | next64();
    return v & ((1n << BigInt(bits)) - 1n);
  };
}

/** Random intervals of every shape: tiny, huge, aligned, off by one, at the top of the space. */
function randomInterval(rand: (bits: number) => bigint, family: IpFamily): Interval {
  const bits = family === 4 ? 32 : 128;
  const top = (1n << BigInt(bits)) - 1n;
  const shape = Number(rand(3));
  const lengthBits = Number(rand(8)) % (bits + 1);
  let length = rand(lengthBits) + 1n;
  let start = rand(bits);
  if (shape === 0) start = (start >> BigInt(lengthBits)) << BigInt(lengthBits); // aligned start
  if (shape === 1) length = 1n << BigInt(lengthBits); // power-of-two length
  if (shape === 2) start = top - length + 1n < 0n ? 0n : top - length + 1n; // ends at the top
  if (shape === 3) start = 0n;
  const end = start + length - 1n > top ? top : start + length - 1n;
  return { start, end };
}

/**
 * What is wrong with a CIDR decomposition of an interval (by default the one intervalToCidrs
 * gives), or null: it must cover exactly the interval, without gaps or overlaps, with aligned
 * blocks, and with the fewest blocks (no two neighbours that form one aligned block).
 */
function decompositionProblem(
  family: IpFamily,
  iv: Interval,
  cidrs = intervalToCidrs(family, iv),
): string | null {
  let blocks: Interval[];
  try {
    // Parsing each block back also checks its alignment (host bits set would throw).
    blocks = cidrs.map((c) => parseAddressEntry(c).interval);
  } catch (e) {
    return (e as Error).message;
  }
  if (blocks[0]?.start !== iv.start) return `starts at ${cidrs[0]}`;
  if (blocks.at(-1)?.end !== iv.end) return `ends at ${cidrs.at(-1)}`;
  for (let i = 1; i < blocks.length; i++) {
    const a = blocks[i - 1]!;
    const b = blocks[i]!;
    if (b.start !== a.end + 1n) return `gap or overlap between ${cidrs[i - 1]} and ${cidrs[i]}`;
    const size = a.end - a.start + 1n;
    if (b.end - b.start + 1n === size && a.start % (2n * size) === 0n)
      return `${cidrs[i - 1]} and ${cidrs[i]} could be one block`;
  }
  // And the elements rendering parses back to exactly the interval.
  const element = parseAddressEntry(formatInterval(family, iv)).interval;
  if (element.start !== iv.start || element.end !== iv.end)
    return `element ${formatInterval(family, iv)} is another interval`;
  return null;
}

describe('intervalToCidrs: property', () => {
  for (const family of [4, 6] as const) {
    it(`covers exactly each random IPv${family} interval with aligned, non-overlapping, unmergeable blocks`, () => {
      const seed = 0x5eed0000n + BigInt(family);
      const rand = random(seed);
      const failures: string[] = [];
      // Fewer IPv6 cases: each can split into up to 254 blocks.
      for (let n = 0; n < (family === 4 ? 2000 : 500); n++) {
        const iv = randomInterval(rand, family);
        const problem = decompositionProblem(family, iv);
        if (problem)
          failures.push(`seed ${seed}, case ${n}: ${formatInterval(family, iv)}: ${problem}`);
      }
      expect(failures).toEqual([]);
    });
  }

  it('finds a wrong decomposition (the checker itself can fail)', () => {
    // Guard against a checker that accepts anything: feed it hand-made wrong answers.
    const iv = { start: 5n, end: 9n };
    expect(decompositionProblem(4, iv, ['0.0.0.5/32', '0.0.0.6/31'])).toMatch(/ends at/);
    expect(
      decompositionProblem(4, iv, ['0.0.0.5/32', '0.0.0.6/32', '0.0.0.7/32', '0.0.0.8/31']),
    ).toMatch(/could be one/);
    expect(
      decompositionProblem(4, iv, ['0.0.0.5/32', '0.0.0.6/31', '0.0.0.7/32', '0.0.0.8/31']),
    ).toMatch(/gap or overlap/);
    expect(decompositionProblem(4, iv)).toBeNull();
  });
});

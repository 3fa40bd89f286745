/**
 * The generator's fast parts against plain reference implementations, on seeded random input:
 * the grouping of summaries into distinct flows, the numbering of triples behind its caches,
 * the address classes the judge reads, the IP lists unmanaged peers are named by, and the
 * report of generated rules that lift part of a deny rule.
 */
import { describe, expect, it } from 'vitest';
import { AddressSet, formatAddress, type IpFamily } from '../../src/policy/addresses.js';
import { AddressClasses } from '../../src/policy/generate/address-classes.js';
import { groupFlows } from '../../src/policy/generate/observe.js';
import { overriddenDenies } from '../../src/policy/generate/overrides.js';
import { PeerLists } from '../../src/policy/generate/peers.js';
import { TripleNumbers } from '../../src/policy/generate/triples.js';
import {
  isTransport,
  type FlowPeer,
  type ObservedFlow,
  type ObservedService,
  type OverriddenDeny,
} from '../../src/policy/generate/types.js';
import type { Workload } from '../../src/policy/model.js';
import {
  clauseMatches,
  resolvePolicy,
  type ResolvedActors,
  type ResolvedPolicy,
} from '../../src/policy/resolve.js';
import { randomPolicy, Rng } from '../support/random-policy.js';

describe('TripleNumbers', () => {
  it.each([1, 2, 3])(
    'numbers triples in order of first sight, as a Map would (seed %i)',
    (seed) => {
      const rng = new Rng(seed);
      const numbers = new TripleNumbers(4);
      const reference = new Map<string, number>();
      const big = [0, 1, 2 ** 31 - 1, 2 ** 16, 65535, 123_456_789];
      for (let i = 0; i < 20_000; i++) {
        const t = [0, 1, 2].map(() =>
          rng.chance(0.1) ? rng.pick(big) : rng.int(0, rng.chance(0.5) ? 30 : 3000),
        ) as [number, number, number];
        const key = t.join(',');
        let expected = reference.get(key);
        if (expected === undefined) reference.set(key, (expected = reference.size));
        expect(numbers.number(...t)).toBe(expected);
        expect(numbers.size).toBe(reference.size);
      }
      // Grown many times over, and every triple still has its number.
      expect(reference.size).toBeGreaterThan(5000);
      for (const [key, n] of reference) {
        const [a, b, c] = key.split(',').map(Number) as [number, number, number];
        expect(numbers.number(a, b, c)).toBe(n);
      }
    },
  );
});

/** The grouping as the generator first wrote it: a Map keyed by text, in first-seen order. */
function referenceGrouping(flows: readonly ObservedFlow[]) {
  const peerKey = (p: FlowPeer): string =>
    p.workload !== undefined ? `w:${p.workload}` : `a:${p.address}`;
  const serviceText = (s: ObservedService): string =>
    isTransport(s)
      ? `${s.port}/${s.proto}${s.process === undefined ? '' : `@${s.process}`}`
      : s.icmpType === undefined
        ? s.proto
        : `${s.proto}/${s.icmpType}`;
  const canonical = (t: string): string => new Date(Date.parse(t)).toISOString();
  const peers: string[] = [];
  const peerIds = new Map<string, number>();
  const peerId = (p: FlowPeer): number => {
    let id = peerIds.get(peerKey(p));
    if (id === undefined) peerIds.set(peerKey(p), (id = peers.push(peerKey(p)) - 1));
    return id;
  };
  const byKey = new Map<
    string,
    {
      source: string;
      destination: string;
      service: string;
      index: number;
      flows: number;
      connections: number;
      firstSeen: string;
      lastSeen: string;
    }
  >();
  flows.forEach((f, index) => {
    const source = peerId(f.source);
    const destination = peerId(f.destination);
    const key = `${source} ${destination} ${serviceText(f.service)}`;
    let g = byKey.get(key);
    if (!g) {
      byKey.set(
        key,
        (g = {
          source: peers[source]!,
          destination: peers[destination]!,
          service: serviceText(f.service),
          index,
          flows: 0,
          connections: 0,
          firstSeen: '~',
          lastSeen: '',
        }),
      );
    }
    g.flows++;
    g.connections += f.connections;
    const first = canonical(f.firstSeen);
    const last = canonical(f.lastSeen);
    if (first < g.firstSeen) g.firstSeen = first;
    if (last > g.lastSeen) g.lastSeen = last;
  });
  return { peers, flows: [...byKey.values()] };
}

function randomSummaries(seed: number, count: number): ObservedFlow[] {
  const rng = new Rng(seed);
  // Some workloads are named like addresses: names and addresses are told apart.
  const names = [...Array.from({ length: 40 }, (_, i) => `wl-${i}`), '10.0.0.1', '10.0.0.2'];
  const addresses = [...Array.from({ length: 40 }, (_, i) => `10.0.${i >> 4}.${i}`), 'fd00::1'];
  const services: ObservedService[] = [
    { proto: 'tcp', port: 443 },
    { proto: 'tcp', port: 8080 },
    { proto: 'udp', port: 443 },
    { proto: 'udp', port: 53 },
    { proto: 'tcp', port: 5432, process: 'postgres' },
    { proto: 'tcp', port: 5432, process: 'pgbouncer' },
    { proto: 'udp', port: 5432, process: 'postgres' },
    { proto: 'tcp', port: 65535 },
    { proto: 'udp', port: 1 },
    { proto: 'icmp' },
    { proto: 'icmp', icmpType: 8 },
    { proto: 'icmp', icmpType: 0 },
    { proto: 'icmpv6', icmpType: 128 },
    { proto: 'icmpv6' },
    { proto: 'icmpv6', icmpType: 255 },
  ];
  const peer = (): FlowPeer =>
    rng.chance(0.6) ? { workload: rng.pick(names) } : { address: rng.pick(addresses) };
  const time = (hour: number): string => {
    const t = new Date(Date.UTC(2026, 2, 1, hour, rng.int(0, 59), rng.int(0, 59)));
    // Mostly canonical text; some other ISO spellings of a time, which are made canonical.
    return rng.chance(0.9)
      ? t.toISOString()
      : t.toISOString().replace('.000Z', rng.chance(0.5) ? 'Z' : '+00:00');
  };
  return Array.from({ length: count }, () => {
    const hour = rng.int(0, 40);
    return {
      source: peer(),
      destination: peer(),
      // A fresh object now and then, as rows from a store would be.
      service: rng.chance(0.5) ? rng.pick(services) : { ...rng.pick(services) },
      sourcePort: rng.int(32768, 60999),
      connections: rng.int(0, 100),
      firstSeen: time(hour),
      lastSeen: time(hour + 1),
    };
  });
}

describe('groupFlows', () => {
  it.each([1, 2, 3, 4])(
    'groups as a Map keyed by text would, flows in order of first appearance (seed %i)',
    (seed) => {
      const flows = randomSummaries(seed, 30_000);
      const grouped = groupFlows(flows);
      const expected = referenceGrouping(flows);
      expect(grouped.total).toBe(flows.length);
      // Enough distinct flows that the table grew several times.
      expect(grouped.size).toBeGreaterThan(5000);
      const peerKey = (id: number): string => {
        const p = grouped.peers[id]!;
        return p.workload !== undefined ? `w:${p.workload}` : `a:${p.address}`;
      };
      expect(grouped.peers.map((_, i) => peerKey(i))).toEqual(expected.peers);
      const actual = Array.from({ length: grouped.size }, (_, n) => ({
        source: peerKey(grouped.sourceIds[n]!),
        destination: peerKey(grouped.destinationIds[n]!),
        service: grouped.serviceOf(n).text,
        index: grouped.firstIndexes[n]!,
        ...grouped.tally(n),
      }));
      expect(actual).toEqual(expected.flows);
    },
  );

  it('keeps one clean object per service, shared by its flows', () => {
    const t = '2026-03-01T00:00:00.000Z';
    const f = (service: object, port = 40000): ObservedFlow =>
      ({
        source: { workload: 'a' },
        destination: { address: '10.0.0.1' },
        service,
        sourcePort: port,
        connections: 1,
        firstSeen: t,
        lastSeen: t,
      }) as ObservedFlow;
    const grouped = groupFlows([
      f({ proto: 'icmp', icmpType: 8, port: 0 }),
      f({ proto: 'tcp', port: 443 }),
      f({ proto: 'tcp', port: 443, icmpType: 3 }, 40001),
      f({ proto: 'tcp', port: 5432, process: 'postgres' }),
      f({ proto: 'tcp', port: 5432, process: 'postgres' }, 40002),
    ]);
    expect(grouped.size).toBe(3);
    expect(grouped.services).toEqual([
      { service: { proto: 'icmp', icmpType: 8 }, text: 'icmp/8' },
      { service: { proto: 'tcp', port: 443 }, text: '443/tcp' },
      { service: { proto: 'tcp', port: 5432, process: 'postgres' }, text: '5432/tcp@postgres' },
    ]);
    expect(grouped.summaries).toEqual([1, 2, 2]);
  });

  it('reads any iterable, not only an array', () => {
    const flows = randomSummaries(9, 500);
    function* each(): Generator<ObservedFlow> {
      yield* flows;
    }
    const fromArray = groupFlows(flows);
    const fromIterable = groupFlows(each());
    expect(fromIterable).toEqual(fromArray);
  });
});

describe('AddressClasses', () => {
  it.each([1, 2, 3])('puts each address with the sets that hold it (seed %i)', (seed) => {
    const rng = new Rng(seed);
    const v4 = (): string =>
      `10.${rng.int(0, 3)}.${rng.int(0, 255)}.${rng.pick([0, 1, 64, 128, 200, 255])}`;
    const v6 = (): string =>
      `2001:db8:${rng.int(0, 3).toString(16)}::${rng.int(0, 300).toString(16)}`;
    const entry = (): string => {
      const family = rng.chance(0.7) ? 4 : 6;
      const base = family === 4 ? v4() : v6();
      if (rng.chance(0.4)) return base;
      if (family === 4) {
        const prefix = rng.int(16, 32);
        const value = Number(AddressSet.of([base]).v4[0]!.start);
        const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
        return `${formatAddress(4, BigInt((value & mask) >>> 0))}/${prefix}`;
      }
      const net = `2001:db8:${rng.int(0, 3).toString(16)}::`;
      const [a, b] = [rng.int(0, 300), rng.int(0, 300)].sort((x, y) => x - y) as [number, number];
      return rng.chance(0.5) ? `${net}/64` : `${net}${a.toString(16)}-${net}${b.toString(16)}`;
    };
    const sets = Array.from({ length: 8 }, () =>
      AddressSet.of(
        Array.from({ length: rng.int(0, 4) }, entry),
        Array.from({ length: rng.int(0, 2) }, entry),
      ),
    );
    // The whole IPv4 space too, for the edges of the family.
    sets.push(AddressSet.of(['0.0.0.0/0'], ['10.0.0.0/8']));
    const classes = new AddressClasses(sets);
    const probes: [IpFamily, bigint][] = [
      [4, 0n],
      [4, 2n ** 32n - 1n],
      [6, 0n],
      [6, 2n ** 128n - 1n],
    ];
    for (const s of sets)
      for (const family of [4, 6] as const)
        for (const iv of s.intervals(family))
          for (const at of [iv.start - 1n, iv.start, iv.end, iv.end + 1n])
            if (at >= 0n) probes.push([family, at]);
    for (let i = 0; i < 2000; i++) {
      const family = rng.chance(0.7) ? 4 : 6;
      probes.push([
        family,
        AddressSet.of([family === 4 ? v4() : v6()]).intervals(family)[0]!.start,
      ]);
    }
    for (const [family, value] of probes) {
      const holding = sets.flatMap((s, i) => (s.hasValue(family, value) ? [i] : []));
      expect(classes.setsOf(classes.classOf(family, value)), `${family} ${value}`).toEqual(holding);
    }
  });
});

describe('PeerLists', () => {
  it('names the addresses of one list, or of one new network, by one object', () => {
    const peers = new PeerLists([{ name: 'partners', include: ['203.0.113.0/24'], exclude: [] }]);
    const at = (address: string) =>
      peers.listFor(address, 4, AddressSet.of([address]).v4[0]!.start);
    expect(at('203.0.113.1')).toBe(at('203.0.113.2'));
    expect(at('203.0.113.1')).toEqual({ kind: 'existing', name: 'partners' });
    expect(at('198.51.100.1')).toBe(at('198.51.100.7'));
    expect(at('198.51.100.1')).toEqual({ kind: 'network', network: '198.51.100.0/24' });
    expect(at('198.51.101.1')).not.toBe(at('198.51.100.1'));
    expect(peers.members('198.51.100.0/24')).toEqual(['198.51.100.1', '198.51.100.7']);
  });
});

/** The report as first written: every workload a deny side selects, asked of each clause. */
function referenceOverriddenDenies(
  policy: ResolvedPolicy,
  generated: ReadonlySet<string>,
): OverriddenDeny[] {
  const members = policy.userGroupMembers;
  const selected = (side: ResolvedActors): Workload[] =>
    side.clauses.length === 0
      ? []
      : policy.workloads.filter((w) => side.clauses.some((c) => clauseMatches(c, w, members)));
  const meet = (g: ResolvedActors, d: ResolvedActors, dWorkloads: readonly Workload[]): boolean =>
    g.ipAddresses.meets(d.ipAddresses) ||
    (g.clauses.length > 0 &&
      dWorkloads.some((w) => g.clauses.some((c) => clauseMatches(c, w, members))));
  const denies = policy.rules
    .filter((r) => r.action === 'deny' && !generated.has(r.ruleset))
    .map((r) => ({
      rule: r,
      sources: selected(r.sources),
      destinations: selected(r.destinations),
    }));
  const overlap = (a: ResolvedPolicy['rules'][number], b: ResolvedPolicy['rules'][number]) => {
    if (a.services === 'all') return b.services === 'all' || b.services.length > 0;
    if (b.services === 'all') return a.services.length > 0;
    return a.services.some((x) =>
      (b.services as typeof a.services).some((y) => {
        if (x.proto !== y.proto) return false;
        if ('ports' in x && 'ports' in y)
          return x.ports.from <= y.ports.to && y.ports.from <= x.ports.to;
        if (!('ports' in x) && !('ports' in y))
          return x.icmpType === undefined || y.icmpType === undefined || x.icmpType === y.icmpType;
        return false;
      }),
    );
  };
  const out: OverriddenDeny[] = [];
  for (const g of policy.rules) {
    if (!generated.has(g.ruleset)) continue;
    for (const d of denies)
      if (
        overlap(g, d.rule) &&
        meet(g.sources, d.rule.sources, d.sources) &&
        meet(g.destinations, d.rule.destinations, d.destinations)
      )
        out.push({ rule: g.id, existingRule: d.rule.id });
  }
  return out;
}

describe('overriddenDenies', () => {
  it('finds what asking every workload of each deny finds (30 seeds)', () => {
    let found = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const policy = resolvePolicy(randomPolicy(seed));
      // Any ruleset may stand for a generated one; the others' denies are the existing ones.
      const names = [...new Set(policy.rules.map((r) => r.ruleset))];
      for (const parity of [0, 1]) {
        const generated = new Set(names.filter((_, i) => i % 2 === parity));
        const expected = referenceOverriddenDenies(policy, generated);
        expect(overriddenDenies(policy, generated), `seed ${seed}`).toEqual(expected);
        found += expected.length;
      }
    }
    // The seeds hold such pairs: the comparison is not between two empty lists.
    expect(found).toBeGreaterThan(10);
  });
});

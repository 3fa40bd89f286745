/**
 * The nftables renderer: what it writes, in what order, per mode; and, at the end of the
 * file, every script rendered here goes through the real `nft -c -f -` inside a throw-away
 * network namespace (check mode never touches the host's ruleset, and the namespace keeps
 * even that away from it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { destroyByPrefix } from '../../src/host/netns.js';
import { hasCommand, run } from '../../src/host/run.js';
import { AddressSet, formatAddress } from '../../src/policy/addresses.js';
import {
  compilePolicy,
  type CompiledRule,
  type EndpointPolicy,
  type PeerSet,
} from '../../src/policy/compile/endpoint.js';
import {
  nftRemoveScript,
  nftState,
  recordingSetName,
  renderNft,
  type NftOptions,
  type NftRendered,
  type NftState,
} from '../../src/policy/compile/nft.js';
import { renderNftUpdate } from '../../src/policy/compile/nft-update.js';
import type { EnforcementMode } from '../../src/policy/model.js';
import type { ResolvedAlwaysAllowed } from '../../src/policy/resolve.js';
import {
  peerSet,
  setsFor,
  tcp,
  udp,
  icmp,
  icmpv6,
  rule,
  endpointOf,
} from '../support/endpoint-builder.js';
import { loadPolicy } from '../../src/policy-as-code/load.js';

// --- Every script rendered in this file is checked by nft at the end ---------------------

const rendered: { what: string; text: string }[] = [];

function render(
  what: string,
  endpoint: EndpointPolicy,
  peerSets: ReadonlyMap<string, PeerSet>,
  options?: NftOptions,
): NftRendered {
  const r = renderNft(endpoint, peerSets, options);
  rendered.push({ what, text: r.text });
  return r;
}

// --- Hand-built endpoint policies ---------------------------------------------------------

function chain(state: NftState, name: string): readonly string[] {
  const c = state.chains.find((x) => x.name === name);
  if (!c) throw new Error(`no chain ${name}`);
  return c.rules;
}

/** The comment of each rule line of a chain. */
function comments(state: NftState, name: string): string[] {
  return chain(state, name).map((l) => /comment "([^"]*)"$/.exec(l)?.[1] ?? '(none)');
}

/** The lines that come from policy rules (after loopback, return traffic, ND; before the default). */
function policyLines(state: NftState, name: string): readonly string[] {
  return chain(state, name).filter((l) => /@p_/.test(l));
}

const WEB = peerSet('p_000000000001', '198.18.1.11', '2001:db8::11');
const STAGING = peerSet('p_000000000002', '198.18.2.0/24');
const OPS = peerSet('p_000000000003', '198.18.9.10', '198.18.9.11', '2001:db8::9:10');

// --- The example estate -------------------------------------------------------------------

describe('renderNft on the example estate', async () => {
  const loaded = await loadPolicy(['examples/estate']);
  const compiled = compilePolicy(loaded.resolved);

  it('renders every workload to a byte-identical script every time, even from a new compile', async () => {
    const again = compilePolicy((await loadPolicy(['examples/estate'])).resolved);
    for (const [name, ep] of compiled.endpoints) {
      const a = render(`estate ${name}`, ep, compiled.peerSets);
      expect(renderNft(ep, compiled.peerSets).text).toBe(a.text);
      expect(renderNft(again.endpoints.get(name)!, again.peerSets).text).toBe(a.text);
      // A peer-set map in another order changes nothing.
      const reversed = new Map([...compiled.peerSets].reverse());
      expect(renderNft(ep, reversed).text).toBe(a.text);
    }
  });

  it('replaces only its own table, in one script', () => {
    const { text } = renderNft(compiled.endpoints.get('shop-db-1')!, compiled.peerSets);
    const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(lines.slice(0, 3)).toEqual([
      'table inet bulkhead',
      'delete table inet bulkhead',
      'table inet bulkhead {',
    ]);
    expect(
      lines
        .filter((l) => /^\S/.test(l) && !l.startsWith('}'))
        .every((l) => l.includes('inet bulkhead')),
    ).toBe(true);
  });

  it('orders shop-db-1 inbound: loopback, return traffic, ND, override-deny, allows, deny, default', () => {
    const { state } = renderNft(compiled.endpoints.get('shop-db-1')!, compiled.peerSets);
    expect(comments(state, 'input')).toEqual([
      'loopback',
      'return traffic',
      'neighbour discovery',
      'multicast listener discovery',
      'environment-separation/no-staging-to-prod',
      'environment-separation/no-staging-to-prod',
      'shop/api-to-db (process mysqld not kernel-enforced)',
      'shop/api-to-db (process mysqld not kernel-enforced)',
      'environment-separation/dba-to-databases',
      'environment-separation/dba-to-databases',
      'environment-separation/ping',
      'environment-separation/ping',
      'environment-separation/no-telnet',
      'environment-separation/no-telnet',
      'default deny',
    ]);
    const input = chain(state, 'input');
    expect(input[0]).toBe('iif "lo" accept comment "loopback"');
    expect(input[1]).toBe('ct state established,related accept comment "return traffic"');
    expect(input.at(-1)).toBe('counter goto block_in comment "default deny"');
    expect(input[6]).toMatch(/^ip saddr @p_[0-9a-f]{12}_v4 tcp dport 3306 counter accept comment /);
    expect(input[10]).toMatch(/^ip saddr @p_[0-9a-f]{12}_v4 icmp type 8 counter accept /);
    expect(input[11]).toMatch(/^ip6 saddr @p_[0-9a-f]{12}_v6 icmpv6 type 128 counter accept /);
  });

  it('accepts the always-allowed endpoints before any rule, in their direction only', () => {
    const { state } = renderNft(compiled.endpoints.get('shop-db-1')!, compiled.peerSets);
    const output = comments(state, 'output');
    const firstRule = output.findIndex((c) => c.includes('/'));
    const always = output.filter((c) => c.startsWith('always-allowed:'));
    expect(always.length).toBeGreaterThan(0);
    expect(output.lastIndexOf(always.at(-1)!)).toBeLessThan(firstRule);
    // dns: 53/udp and 53/tcp, both families, as named sets.
    expect(chain(state, 'output')).toContain(
      'ip daddr @aa_da6ae8bc7a21_v4 udp dport 53 counter accept comment "always-allowed:dns"',
    );
    // These endpoints are outbound: nothing in input names them.
    expect(chain(state, 'input').some((l) => l.includes('@aa_'))).toBe(false);
  });

  it('reports the process binding it cannot enforce', () => {
    const { warnings } = renderNft(compiled.endpoints.get('shop-db-1')!, compiled.peerSets);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('shop/api-to-db (inbound)');
    expect(warnings[0]).toContain('"mysqld"');
    expect(warnings[0]).toContain('not kernel-enforced');
  });

  it('removes the table of idle and unmanaged workloads', () => {
    for (const name of ['jump-2', 'vault-hsm']) {
      const r = render(`estate ${name}`, compiled.endpoints.get(name)!, compiled.peerSets);
      expect(r.text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))).toEqual([
        'table inet bulkhead',
        'delete table inet bulkhead',
      ]);
      expect(r.state).toMatchObject({ mode: 'idle', sets: [], chains: [] });
    }
  });

  it('never drops in visibility mode (shop-db-s1)', () => {
    const { state, text } = renderNft(compiled.endpoints.get('shop-db-s1')!, compiled.peerSets);
    for (const name of ['input', 'output']) {
      expect(chain(state, name).some((l) => l.includes('block_') || l.endsWith(' drop'))).toBe(
        false,
      );
      expect(chain(state, name).at(-1)).toMatch(/^counter goto potential_(in|out) /);
    }
    // Even the override-deny (staging to prod, outbound here) is only recorded.
    expect(text).toContain(
      'counter goto potential_out comment "environment-separation/no-staging-to-prod"',
    );
  });
});

// --- Modes: decide()'s table, per action and direction ------------------------------------

describe('mode semantics', () => {
  const ep = (mode: EnforcementMode) =>
    endpointOf(
      mode,
      [
        rule('rs/od', 'override-deny', STAGING.id, 'all'),
        rule('rs/allow', 'allow', WEB.id, [tcp(443)]),
        rule('rs/deny', 'deny', OPS.id, [tcp(23)]),
      ],
      [
        rule('rs/od', 'override-deny', STAGING.id, 'all'),
        rule('rs/allow', 'allow', WEB.id, [tcp(443)]),
        rule('rs/deny', 'deny', OPS.id, [tcp(23)]),
      ],
    );
  const sets = setsFor(WEB, STAGING, OPS);

  /** Per rule id (and the default), the verdict of its IPv4 line in a chain. */
  function verdicts(state: NftState, name: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const l of chain(state, name)) {
      const m = /counter (accept|goto \w+) comment "([^"]*)"$/.exec(l);
      if (m && !l.startsWith('ip6 ')) out[m[2]!] = m[1]!;
    }
    return out;
  }

  it.each([
    [
      'full',
      {
        'rs/od': 'goto block_in',
        'rs/allow': 'accept',
        'rs/deny': 'goto block_in',
        'default deny': 'goto block_in',
      },
    ],
    [
      'selective',
      {
        'rs/od': 'goto block_in',
        'rs/allow': 'accept',
        'rs/deny': 'goto block_in',
        'default (not blocked in this mode)': 'goto potential_in',
      },
    ],
    [
      'visibility',
      {
        'rs/od': 'goto potential_in',
        'rs/allow': 'accept',
        'rs/deny': 'goto potential_in',
        'default (not blocked in this mode)': 'goto potential_in',
      },
    ],
  ] as const)('%s mode', (mode, expected) => {
    const { state } = render(`mode ${mode}`, ep(mode), sets);
    expect(verdicts(state, 'input')).toEqual(expected);
    const outbound = Object.fromEntries(
      Object.entries(expected).map(([k, v]) => [k, v.replace('_in', '_out')]),
    );
    expect(verdicts(state, 'output')).toEqual(outbound);
    // First match decides: override-deny, then allow, then deny, then the default.
    expect(comments(state, 'input').filter((c) => c.startsWith('rs/'))).toEqual([
      'rs/od',
      'rs/od',
      'rs/allow',
      'rs/allow',
      'rs/deny',
      'rs/deny',
    ]);
  });

  it('idle: the script only removes the table', () => {
    const r = render('mode idle', ep('idle'), sets);
    expect(r.text.endsWith(nftRemoveScript())).toBe(true);
    expect(r.text).not.toContain('{');
  });

  it('records before it drops (or accepts), tcp and udp only, keyed by remote address . protocol . port', () => {
    const { state } = render('tails', ep('full'), sets, {
      recordTimeoutSeconds: 600,
      recordSize: 1024,
    });
    expect(chain(state, 'block_in')).toEqual([
      'meta l4proto { tcp, udp } update @blocked_in4 { ip saddr . meta l4proto . th dport }',
      'meta l4proto { tcp, udp } update @blocked_in6 { ip6 saddr . meta l4proto . th dport }',
      'drop',
    ]);
    expect(chain(state, 'potential_out')).toEqual([
      'meta l4proto { tcp, udp } update @potential_out4 { ip daddr . meta l4proto . th dport }',
      'meta l4proto { tcp, udp } update @potential_out6 { ip6 daddr . meta l4proto . th dport }',
      'accept',
    ]);
    const recording = state.sets.filter((s) => s.dynamic).map((s) => s.name);
    expect(recording).toEqual(
      (['block', 'potential'] as const).flatMap((v) =>
        (['inbound', 'outbound'] as const).flatMap((d) => [
          recordingSetName(d, v, 4),
          recordingSetName(d, v, 6),
        ]),
      ),
    );
    expect(state.sets.find((s) => s.name === 'blocked_in4')!.declaration).toContain(
      'timeout 600s; size 1024; counter;',
    );
  });
});

// --- Services ------------------------------------------------------------------------------

describe('services', () => {
  const sets = setsFor(WEB);
  const lines = (services: CompiledRule['services'], what: string) =>
    policyLines(
      render(what, endpointOf('full', [rule('rs/r', 'allow', WEB.id, services)]), sets).state,
      'input',
    );

  it('puts port lists in one anonymous set per protocol, ranges merged and sorted', () => {
    expect(lines([tcp(8000, 8080), tcp(80), tcp(8080, 8090), udp(53), tcp(81)], 'ports')).toEqual([
      'ip saddr @p_000000000001_v4 tcp dport { 80-81, 8000-8090 } counter accept comment "rs/r"',
      'ip saddr @p_000000000001_v4 udp dport 53 counter accept comment "rs/r"',
      'ip6 saddr @p_000000000001_v6 tcp dport { 80-81, 8000-8090 } counter accept comment "rs/r"',
      'ip6 saddr @p_000000000001_v6 udp dport 53 counter accept comment "rs/r"',
    ]);
  });

  it('matches every protocol for "all"', () => {
    expect(lines('all', 'all')).toEqual([
      'ip saddr @p_000000000001_v4 counter accept comment "rs/r"',
      'ip6 saddr @p_000000000001_v6 counter accept comment "rs/r"',
    ]);
  });

  it('keeps ICMP to IPv4 and ICMPv6 to IPv6', () => {
    expect(lines([icmp(8), icmp(0), icmpv6(128)], 'icmp typed')).toEqual([
      'ip saddr @p_000000000001_v4 icmp type { 0, 8 } counter accept comment "rs/r"',
      'ip6 saddr @p_000000000001_v6 icmpv6 type 128 counter accept comment "rs/r"',
    ]);
    expect(lines([icmp(8), icmp()], 'icmp any')).toEqual([
      'ip saddr @p_000000000001_v4 meta l4proto icmp counter accept comment "rs/r"',
    ]);
    expect(lines([icmpv6()], 'icmpv6 any')).toEqual([
      'ip6 saddr @p_000000000001_v6 meta l4proto ipv6-icmp counter accept comment "rs/r"',
    ]);
  });

  it('renders nothing for an empty service list (it matches no flow)', () => {
    expect(lines([], 'no services')).toEqual([]);
  });

  it('matches the port of a process-bound service, says so in the comment, and warns', () => {
    const r = render(
      'process',
      endpointOf('full', [rule('rs/db', 'allow', WEB.id, [tcp(3306, 3306, 'mysqld'), tcp(22)])]),
      sets,
    );
    expect(policyLines(r.state, 'input').filter((l) => l.startsWith('ip '))).toEqual([
      'ip saddr @p_000000000001_v4 tcp dport 22 counter accept comment "rs/db"',
      'ip saddr @p_000000000001_v4 tcp dport 3306 counter accept comment "rs/db (process mysqld not kernel-enforced)"',
    ]);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(
      /^rs\/db \(inbound\): tcp dport 3306 is bound to process "mysqld".*not kernel-enforced/,
    );
  });
});

// --- Sets ----------------------------------------------------------------------------------

describe('peer sets', () => {
  it('declares both families, empty ones included, with the selector in a comment', () => {
    const v4only = peerSet('p_00000000000a', '198.18.0.0/24', '198.18.1.5-198.18.1.9');
    const { state } = render(
      'v4 only',
      endpointOf('full', [rule('rs/r', 'allow', v4only.id, [tcp(22)])]),
      setsFor(v4only),
    );
    expect(state.sets.filter((s) => s.name.startsWith('p_'))).toEqual([
      {
        name: 'p_00000000000a_v4',
        declaration: 'type ipv4_addr; flags interval; comment "peers: label of p_00000000000a";',
        elements: ['198.18.0.0/24', '198.18.1.5-198.18.1.9'],
        dynamic: false,
      },
      {
        name: 'p_00000000000a_v6',
        declaration: 'type ipv6_addr; flags interval; comment "peers: label of p_00000000000a";',
        elements: [],
        dynamic: false,
      },
    ]);
    expect(policyLines(state, 'input').filter((l) => l.startsWith('ip6 '))).toHaveLength(1);
  });

  it('keeps adjacent addresses as separate elements (one workload, one element)', () => {
    const adjacent = peerSet('p_00000000000b', '198.18.0.1', '198.18.0.2', '198.18.0.3');
    const r = render(
      'adjacent',
      endpointOf('full', [rule('rs/r', 'allow', adjacent.id, 'all')]),
      setsFor(adjacent),
    );
    expect(r.state.sets[0]!.elements).toEqual(['198.18.0.1', '198.18.0.2', '198.18.0.3']);
  });

  it('grows the rule count with rules, never with peers (10 vs 10,000 peers)', () => {
    const peers = (n: number, id: string) => {
      const addresses: string[] = [];
      for (let i = 0; i < n; i++) addresses.push(formatAddress(4, 0xc6120000n + BigInt(i) * 3n));
      return peerSet(id, ...addresses, '2001:db8::1');
    };
    const small = peers(10, 'p_00000000000c');
    const large = peers(10_000, 'p_00000000000c');
    const rules = [
      rule('rs/a', 'allow', small.id, [tcp(443)]),
      rule('rs/b', 'deny', small.id, 'all'),
    ];
    const a = render('10 peers', endpointOf('full', rules, rules), setsFor(small));
    const b = render('10,000 peers', endpointOf('full', rules, rules), setsFor(large));
    const ruleCount = (s: NftState) => s.chains.reduce((n, c) => n + c.rules.length, 0);
    expect(ruleCount(b.state)).toBe(ruleCount(a.state));
    expect(b.state.chains).toEqual(a.state.chains);
    expect(b.state.sets[0]!.elements).toHaveLength(10_000);
  });

  it('names always-allowed endpoints by a hash of their name, in named sets', () => {
    const always: ResolvedAlwaysAllowed[] = [
      {
        name: 'control-plane',
        addresses: AddressSet.of(['198.18.0.1']),
        ports: [tcp(7480)],
        direction: 'outbound',
      },
      {
        name: 'monitoring',
        addresses: AddressSet.of(['198.18.0.9', '2001:db8::9']),
        ports: [],
        direction: 'inbound',
      },
      {
        name: 'ntp',
        addresses: AddressSet.of(['198.18.0.123']),
        ports: [udp(123)],
        direction: 'both',
      },
    ];
    const { state } = render(
      'always allowed',
      endpointOf('full', [rule('rs/r', 'allow', WEB.id, 'all')], [], always),
      setsFor(WEB),
    );
    const input = comments(state, 'input').filter((c) => c.startsWith('always-allowed:'));
    const output = comments(state, 'output').filter((c) => c.startsWith('always-allowed:'));
    expect(input).toEqual([
      'always-allowed:monitoring',
      'always-allowed:monitoring',
      'always-allowed:ntp',
      'always-allowed:ntp',
    ]);
    expect(output).toEqual([
      'always-allowed:control-plane',
      'always-allowed:control-plane',
      'always-allowed:ntp',
      'always-allowed:ntp',
    ]);
    // "inbound": from that address to any local port (no port match when no ports are listed).
    expect(
      chain(state, 'input').find((l) => l.includes('monitoring') && l.startsWith('ip ')),
    ).toMatch(/^ip saddr @aa_[0-9a-f]{12}_v4 counter accept comment "always-allowed:monitoring"$/);
  });
});

// --- Text safety ---------------------------------------------------------------------------

describe('comments', () => {
  it("cannot break out of their quotes, and stay within nft's 128 characters", () => {
    const long = `rs/${'x'.repeat(300)}`;
    const r = render(
      'comments',
      endpointOf('full', [
        rule('rs/"quoted"\nnewline', 'allow', WEB.id, 'all'),
        rule(long, 'deny', WEB.id, 'all'),
      ]),
      setsFor(WEB),
    );
    const all = chain(r.state, 'input').map((l) => /comment "([^"]*)"$/.exec(l)?.[1]);
    expect(all).toContain('rs/?quoted??newline');
    expect(all.every((c) => c === undefined || c.length <= 128)).toBe(true);
  });
});

// --- The incremental renderer, without a kernel (the kernel test is test/kernel) ----------

describe('renderNftUpdate', () => {
  const rules = [
    rule('rs/a', 'allow', WEB.id, [tcp(443)]),
    rule('rs/b', 'allow', OPS.id, [tcp(22)]),
  ];
  const state = (mode: EnforcementMode, inbound: CompiledRule[], ...sets: PeerSet[]) =>
    nftState(endpointOf(mode, inbound), setsFor(...sets));

  it('is empty when nothing changed', () => {
    expect(
      renderNftUpdate(state('full', rules, WEB, OPS), state('full', rules, WEB, OPS)).text,
    ).toBe('');
    expect(
      renderNftUpdate(state('idle', rules, WEB, OPS), state('idle', rules, WEB, OPS)).text,
    ).toBe('');
    // Equal sets built apart (not the same objects) are still no change.
    const web2 = peerSet(WEB.id, '198.18.1.11', '2001:db8::11');
    expect(
      renderNftUpdate(state('full', rules, WEB, OPS), state('full', rules, web2, OPS)).text,
    ).toBe('');
  });

  it('changes only the elements that changed, deletes first', () => {
    const moved = peerSet(WEB.id, '198.18.1.12', '2001:db8::11', '2001:db8::12');
    const u = renderNftUpdate(state('full', rules, WEB, OPS), state('full', rules, moved, OPS));
    expect(u.text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))).toEqual([
      'delete element inet bulkhead p_000000000001_v4 { 198.18.1.11 }',
      'add element inet bulkhead p_000000000001_v4 { 198.18.1.12 }',
      'add element inet bulkhead p_000000000001_v6 { 2001:db8::12 }',
    ]);
    expect(u).toMatchObject({ elementsAdded: 2, elementsDeleted: 1, chainsRewritten: [] });
  });

  it('rewrites a changed chain whole, creates sets before and deletes them after', () => {
    const next = [
      rule('rs/a', 'allow', WEB.id, [tcp(443)]),
      rule('rs/c', 'allow', STAGING.id, [udp(53)]),
    ];
    const u = renderNftUpdate(state('full', rules, WEB, OPS), state('full', next, WEB, STAGING));
    const lines = u.text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(lines[0]).toMatch(
      /^add set inet bulkhead p_000000000002_v4 \{ type ipv4_addr; flags interval; .* elements = \{ 198.18.2.0\/24 \}; \}$/,
    );
    expect(lines[1]).toMatch(
      /^add set inet bulkhead p_000000000002_v6 \{ type ipv6_addr; flags interval; comment "[^"]*"; \}$/,
    );
    expect(lines[2]).toBe('flush chain inet bulkhead input');
    expect(lines.slice(-2)).toEqual([
      'delete set inet bulkhead p_000000000003_v4',
      'delete set inet bulkhead p_000000000003_v6',
    ]);
    expect(lines.filter((l) => l.startsWith('add rule inet bulkhead input '))).toHaveLength(
      chain(state('full', next, WEB, STAGING), 'input').length,
    );
    expect(u.chainsRewritten).toEqual(['input']);
  });

  it('creates or removes the whole table on a change to or from idle', () => {
    const active = state('selective', rules, WEB, OPS);
    const idle = state('idle', rules, WEB, OPS);
    expect(renderNftUpdate(active, idle)).toMatchObject({
      text: nftRemoveScript(),
      replacesTable: true,
    });
    const up = renderNftUpdate(idle, active);
    expect(up.replacesTable).toBe(true);
    expect(up.text).toBe(renderNft(endpointOf('selective', rules), setsFor(WEB, OPS)).text);
  });
});

// --- Every script above, through the real nft ---------------------------------------------

const NETNS = 'bhnchk';

async function nftUnavailable(): Promise<string | null> {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'needs root (a network namespace to check in)';
  for (const tool of ['ip', 'nft'])
    if (!(await hasCommand(tool))) return `\`${tool}\` is not installed`;
  return null;
}

const why = await nftUnavailable();

describe.skipIf(why !== null)(
  `every rendered script passes \`nft -c -f -\`${why ? ` (skipped: ${why})` : ''}`,
  () => {
    beforeAll(async () => {
      await destroyByPrefix(NETNS);
      await run(['ip', 'netns', 'add', NETNS]);
    });
    afterAll(async () => {
      await destroyByPrefix(NETNS);
    });

    it('checks them all', async () => {
      expect(rendered.length).toBeGreaterThan(20);
      const failures: string[] = [];
      for (const { what, text } of rendered) {
        const r = await run(['ip', 'netns', 'exec', NETNS, 'nft', '-c', '-f', '-'], {
          input: text,
          okCodes: [0, 1],
        });
        if (r.code !== 0) failures.push(`${what}: ${r.stderr}`);
      }
      expect(failures).toEqual([]);
    });

    it('rejects a broken script (the check is real)', async () => {
      const r = await run(['ip', 'netns', 'exec', NETNS, 'nft', '-c', '-f', '-'], {
        input: 'table inet bulkhead {\n\tchain input {\n\t\tip saddr @missing accept\n\t}\n}\n',
        okCodes: [0, 1],
      });
      expect(r.code).toBe(1);
    });
  },
);

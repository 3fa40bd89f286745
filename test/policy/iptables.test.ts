import { describe, expect, it } from 'vitest';
import { loadPolicy } from '../../src/policy-as-code/load.js';
import { AddressSet } from '../../src/policy/addresses.js';
import { compilePolicy } from '../../src/policy/compile/endpoint.js';
import {
  IPTABLES_JUMPS,
  renderIptables,
  serviceMatches,
} from '../../src/policy/compile/iptables.js';
import type { EnforcementMode, ServicePort } from '../../src/policy/model.js';
import { peerSet, setsFor, tcp, udp, rule, endpointOf } from '../support/endpoint-builder.js';

// --- Hand-built endpoint policies ---------------------------------------------------------

/** The rule lines of one chain, in order. */
function chain(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`-A ${name} `));
}

const WEB = peerSet('p_000000000001', '198.18.1.11', '2001:db8::11');
const STAGING = peerSet('p_000000000002', '198.18.2.0/24');

// --- The example estate -----------------------------------------------------------------

describe('renderIptables on the example estate', async () => {
  const loaded = await loadPolicy(['examples/estate']);
  const compiled = compilePolicy(loaded.resolved);

  it('renders every workload, the same text every time', () => {
    for (const ep of compiled.endpoints.values()) {
      const a = renderIptables(ep, compiled.peerSets);
      const b = renderIptables(ep, compiled.peerSets);
      expect(b).toEqual(a);
      expect(a.iptables).toContain('*filter');
      expect(a.iptables.trimEnd().endsWith('COMMIT')).toBe(true);
      expect(a.ip6tables.trimEnd().endsWith('COMMIT')).toBe(true);
    }
  });

  it('orders shop-db-1 inbound: loopback, return traffic, override-deny, allows, deny, default', () => {
    const out = renderIptables(compiled.endpoints.get('shop-db-1')!, compiled.peerSets);
    const lines = chain(out.iptables, 'BULKHEAD-IN').map(
      (l) => /--comment "bulkhead:([^"]*)"/.exec(l)![1],
    );
    expect(lines).toEqual([
      'loopback',
      'return-traffic',
      'environment-separation/no-staging-to-prod',
      'shop/api-to-db',
      'environment-separation/dba-to-databases',
      'environment-separation/ping',
      'environment-separation/no-telnet',
      'default',
    ]);
    const inbound = chain(out.iptables, 'BULKHEAD-IN');
    expect(inbound[0]).toBe(
      '-A BULKHEAD-IN -i lo -m comment --comment "bulkhead:loopback" -j RETURN',
    );
    expect(inbound[1]).toContain('-m conntrack --ctstate ESTABLISHED,RELATED');
    expect(inbound[2]).toMatch(
      /-m set --match-set bulkhead4-p_[0-9a-f]{12} src .* -g BULKHEAD-IN-BLOCK$/,
    );
    expect(inbound[3]).toMatch(
      /^-A BULKHEAD-IN -p tcp --dport 3306 -m set --match-set bulkhead4-p_\w+ src .*-j RETURN$/,
    );
    expect(inbound[4]).toContain('-p tcp -m multiport --dports 22,3306,5432');
    expect(inbound[7]).toBe(
      '-A BULKHEAD-IN -m comment --comment "bulkhead:default" -g BULKHEAD-IN-BLOCK',
    );
  });

  it('accepts the always-allowed endpoints before any rule, outbound only as configured', () => {
    const out = renderIptables(compiled.endpoints.get('shop-web-1')!, compiled.peerSets);
    const outbound = chain(out.iptables, 'BULKHEAD-OUT');
    expect(outbound.slice(2, 5).map((l) => /comment "([^"]*)"/.exec(l)![1])).toEqual([
      'bulkhead:always-allowed:dns',
      'bulkhead:always-allowed:dns',
      'bulkhead:always-allowed:control-plane',
    ]);
    expect(outbound[2]).toMatch(
      /-p tcp --dport 53 -m set --match-set bulkhead4-a_[0-9a-f]{12} dst/,
    );
    expect(outbound[3]).toMatch(/-p udp --dport 53 /);
    expect(chain(out.iptables, 'BULKHEAD-IN').some((l) => l.includes('always-allowed'))).toBe(
      false,
    );
  });

  it('puts IPv6 peers in ip6tables through inet6 sets, and accepts neighbor discovery', () => {
    const out = renderIptables(compiled.endpoints.get('shop-web-1')!, compiled.peerSets);
    expect(out.ipset).toMatch(
      /create bulkhead6-p_\w+ hash:net family inet6 maxelem 1048576 -exist/,
    );
    expect(out.ipset).toContain('add bulkhead6-');
    expect(out.ipset).toContain('2001:db8:1::31/128');
    const v6in = chain(out.ip6tables, 'BULKHEAD-IN');
    expect(v6in.filter((l) => l.includes('neighbour-discovery'))).toHaveLength(4);
    expect(v6in).toContain(
      '-A BULKHEAD-IN -p ipv6-icmp --icmpv6-type 135 -m hl --hl-eq 255 -m comment --comment "bulkhead:neighbour-discovery" -j RETURN',
    );
    expect(
      v6in.filter((l) => l.includes('--hl-eq 1 ') && l.includes('multicast-listener-discovery')),
    ).toHaveLength(4);
    expect(out.ip6tables).not.toContain('bulkhead4-');
    expect(out.iptables).not.toContain('bulkhead6-');
    expect(out.iptables).not.toContain('neighbour-discovery');
  });

  it('splits the internet list (0.0.0.0/0 minus the lab range) into CIDRs hash:net can hold', () => {
    const out = renderIptables(compiled.endpoints.get('shop-web-1')!, compiled.peerSets);
    expect(out.ipset).not.toMatch(/\/0$/m);
    // ::/0 is stored as its two halves.
    expect(out.ipset).toMatch(/^add bulkhead6-p_\w+-new ::\/1$/m);
    expect(out.ipset).toMatch(/^add bulkhead6-p_\w+-new 8000::\/1$/m);
  });

  it('warns that a process-bound service is matched by port only', () => {
    const out = renderIptables(compiled.endpoints.get('shop-db-1')!, compiled.peerSets);
    expect(out.warnings).toEqual([
      expect.stringMatching(
        /^shop-db-1: inbound rule shop\/api-to-db: port 3306\/tcp is bound to process "mysqld".*any process/,
      ),
    ]);
  });
});

// --- Modes and precedence ------------------------------------------------------------------

describe('renderIptables modes', () => {
  const rules = [
    rule('rs/override', 'override-deny', STAGING.id, 'all'),
    rule('rs/allow', 'allow', WEB.id, [tcp(443)]),
    rule('rs/deny', 'deny', WEB.id, [tcp(23)]),
  ];
  const sets = setsFor(WEB, STAGING);
  const targets = (mode: EnforcementMode) =>
    chain(renderIptables(endpointOf(mode, rules, rules), sets).iptables, 'BULKHEAD-IN')
      .slice(2)
      .map((l) => l.replace(/^.*--comment "bulkhead:([^"]*)" /, '$1 '));

  it.each([
    [
      'full',
      [
        'rs/override -g BULKHEAD-IN-BLOCK',
        'rs/allow -j RETURN',
        'rs/deny -g BULKHEAD-IN-BLOCK',
        'default -g BULKHEAD-IN-BLOCK',
      ],
    ],
    [
      'selective',
      [
        'rs/override -g BULKHEAD-IN-BLOCK',
        'rs/allow -j RETURN',
        'rs/deny -g BULKHEAD-IN-BLOCK',
        'default -g BULKHEAD-IN-POTENTIAL',
      ],
    ],
    [
      'visibility',
      [
        'rs/override -g BULKHEAD-IN-POTENTIAL',
        'rs/allow -j RETURN',
        'rs/deny -g BULKHEAD-IN-POTENTIAL',
        'default -g BULKHEAD-IN-POTENTIAL',
      ],
    ],
  ] as const)('%s mode: each action and the default go to the right verdict', (mode, expected) => {
    expect(targets(mode)).toEqual(expected);
  });

  it('only the BLOCK tail drops; POTENTIAL records and returns to the host chain', () => {
    const out = renderIptables(endpointOf('visibility', rules, rules), sets);
    expect(chain(out.iptables, 'BULKHEAD-IN-BLOCK')).toEqual([
      '-A BULKHEAD-IN-BLOCK -j SET --add-set bulkhead4-in-blocked src,dst --exist',
      '-A BULKHEAD-IN-BLOCK -j DROP',
    ]);
    expect(chain(out.iptables, 'BULKHEAD-IN-POTENTIAL')).toEqual([
      '-A BULKHEAD-IN-POTENTIAL -j SET --add-set bulkhead4-in-potential src,dst --exist',
    ]);
    expect(chain(out.iptables, 'BULKHEAD-OUT-BLOCK')[0]).toContain(
      '--add-set bulkhead4-out-blocked dst,dst',
    );
    // Visibility never reaches a DROP: no rule jumps to the BLOCK tail.
    expect(out.iptables).not.toContain('-g BULKHEAD-IN-BLOCK');
    expect(out.iptables).not.toContain('-g BULKHEAD-OUT-BLOCK');
  });

  it('outbound rules match the peer as destination', () => {
    const out = renderIptables(
      endpointOf('full', [], [rule('rs/allow', 'allow', WEB.id, [tcp(443)])]),
      sets,
    );
    expect(chain(out.iptables, 'BULKHEAD-OUT')[2]).toBe(
      `-A BULKHEAD-OUT -p tcp --dport 443 -m set --match-set bulkhead4-${WEB.id} dst -m comment --comment "bulkhead:rs/allow" -j RETURN`,
    );
  });

  it('idle: every chain declared (so emptied) and left empty; no sets', () => {
    const out = renderIptables(endpointOf('idle', [], []), new Map());
    expect(out.iptables.split('\n').filter((l) => l.startsWith(':'))).toEqual([
      ':BULKHEAD-IN - [0:0]',
      ':BULKHEAD-IN-BLOCK - [0:0]',
      ':BULKHEAD-IN-POTENTIAL - [0:0]',
      ':BULKHEAD-OUT - [0:0]',
      ':BULKHEAD-OUT-BLOCK - [0:0]',
      ':BULKHEAD-OUT-POTENTIAL - [0:0]',
    ]);
    expect(out.iptables).not.toMatch(/^-A/m);
    expect(out.ip6tables).not.toMatch(/^-A/m);
    expect(out.ipset).not.toMatch(/^(create|add)/m);
    expect(out.ipsetNames).toEqual([]);
  });

  it('says in its header how the jumps are installed idempotently', () => {
    const out = renderIptables(endpointOf('full', [], []), new Map());
    expect(out.iptables).toContain(
      '#   iptables -C INPUT -j BULKHEAD-IN 2>/dev/null || iptables -I INPUT 1 -j BULKHEAD-IN',
    );
    expect(out.ip6tables).toContain(
      '#   ip6tables -C OUTPUT -j BULKHEAD-OUT 2>/dev/null || ip6tables -I OUTPUT 1 -j BULKHEAD-OUT',
    );
    expect(IPTABLES_JUMPS).toEqual([
      { from: 'INPUT', to: 'BULKHEAD-IN' },
      { from: 'OUTPUT', to: 'BULKHEAD-OUT' },
    ]);
  });
});

// --- Services ----------------------------------------------------------------------------

describe('service matches', () => {
  it('writes ranges as a:b and merges overlapping entries', () => {
    expect(serviceMatches([tcp(8080, 8081), tcp(8081, 8090), tcp(22)], 4)).toEqual([
      '-p tcp -m multiport --dports 22,8080:8090',
    ]);
    expect(serviceMatches([udp(1000, 2000)], 6)).toEqual(['-p udp --dport 1000:2000']);
  });

  it('splits beyond 15 ports per multiport rule, a range counting as two', () => {
    const twenty = Array.from({ length: 20 }, (_, i) => tcp(1000 + 2 * i));
    const matches = serviceMatches(twenty, 4);
    expect(matches).toHaveLength(2);
    expect(matches[0]!.split('--dports ')[1]!.split(',')).toHaveLength(15);
    expect(matches[1]!.split('--dports ')[1]!.split(',')).toHaveLength(5);

    const ranges = Array.from({ length: 8 }, (_, i) => tcp(2000 + 10 * i, 2005 + 10 * i));
    const split = serviceMatches(ranges, 4);
    // 7 ranges weigh 14; the 8th would make 16.
    expect(split).toEqual([
      '-p tcp -m multiport --dports 2000:2005,2010:2015,2020:2025,2030:2035,2040:2045,2050:2055,2060:2065',
      '-p tcp --dport 2070:2075',
    ]);
  });

  it('puts ICMP in iptables and ICMPv6 in ip6tables only', () => {
    const services: ServicePort[] = [
      { proto: 'icmp', icmpType: 8 },
      { proto: 'icmp', icmpType: 0 },
      { proto: 'icmpv6', icmpType: 128 },
    ];
    expect(serviceMatches(services, 4)).toEqual(['-p icmp --icmp-type 0', '-p icmp --icmp-type 8']);
    expect(serviceMatches(services, 6)).toEqual(['-p ipv6-icmp --icmpv6-type 128']);
    expect(serviceMatches([{ proto: 'icmp' }, { proto: 'icmp', icmpType: 8 }], 4)).toEqual([
      '-p icmp',
    ]);
    expect(serviceMatches([{ proto: 'icmp', icmpType: 8 }], 6)).toEqual([]);
  });

  it('all services is one match with no protocol; no services is no rule', () => {
    expect(serviceMatches('all', 4)).toEqual(['']);
    expect(serviceMatches([], 4)).toEqual([]);
    const out = renderIptables(
      endpointOf('full', [rule('rs/none', 'allow', WEB.id, [])]),
      setsFor(WEB),
    );
    expect(out.iptables).not.toContain('rs/none');
  });

  it('a rule with only an ICMPv4 service has no ip6tables line', () => {
    const out = renderIptables(
      endpointOf('full', [rule('rs/ping', 'allow', WEB.id, [{ proto: 'icmp', icmpType: 8 }])]),
      setsFor(WEB),
    );
    expect(out.iptables).toContain('rs/ping');
    expect(out.ip6tables).not.toContain('rs/ping');
  });
});

// --- Sets --------------------------------------------------------------------------------

describe('ipset output', () => {
  const ep = endpointOf(
    'full',
    [rule('rs/allow', 'allow', WEB.id, [tcp(443)])],
    [],
    [
      {
        name: 'control-plane',
        addresses: AddressSet.of(['198.18.0.1']),
        ports: [tcp(7480)],
        direction: 'outbound',
      },
    ],
  );
  const out = renderIptables(ep, setsFor(WEB));

  it('refills each peer set through a scratch set swapped in', () => {
    const name = `bulkhead4-${WEB.id}`;
    const lines = out.ipset.split('\n');
    const start = lines.indexOf(`create ${name} hash:net family inet maxelem 1048576 -exist`);
    expect(lines.slice(start, start + 6)).toEqual([
      `create ${name} hash:net family inet maxelem 1048576 -exist`,
      `create ${name}-new hash:net family inet maxelem 1048576 -exist`,
      `flush ${name}-new`,
      `add ${name}-new 198.18.1.11/32`,
      `swap ${name}-new ${name}`,
      `destroy ${name}-new`,
    ]);
  });

  it('creates the recording sets only if absent, so reloads keep what they recorded', () => {
    expect(out.ipset).toContain(
      'create bulkhead4-in-blocked hash:ip,port family inet timeout 3600 -exist',
    );
    expect(out.ipset).toContain(
      'create bulkhead6-out-potential hash:ip,port family inet6 timeout 3600 -exist',
    );
    expect(out.ipset).not.toMatch(/^(flush|swap) bulkhead\d-(in|out)-/m);
  });

  it('keeps every set name within the 31 characters ipset allows, scratch names included', () => {
    for (const name of out.ipsetNames) expect(`${name}-new`.length).toBeLessThanOrEqual(31);
    expect(out.ipsetNames).toContain(`bulkhead6-${WEB.id}`);
    expect(out.ipsetNames.some((n) => n.startsWith('bulkhead4-a_'))).toBe(true);
    // Every set a rule names is created.
    for (const m of (out.iptables + out.ip6tables).matchAll(/--(?:match|add)-set (\S+)/g)) {
      expect(out.ipsetNames).toContain(m[1]);
    }
  });

  it('skips an always-allowed endpoint in a family where it has no address', () => {
    expect(out.ip6tables).not.toContain('always-allowed');
    expect(out.ipset).not.toMatch(/bulkhead6-a_/);
  });
});

// --- Hostile input ----------------------------------------------------------------------

describe('hostile names', () => {
  const hostile = "it's; rm -rf /\n-A INPUT -j ACCEPT\r\nCOMMIT";
  const ep = endpointOf('full', [rule(hostile, 'allow', WEB.id, [tcp(443)])], [], [], hostile);
  const out = renderIptables(ep, setsFor({ ...WEB, label: hostile }));

  it('never lets a name become a line of a restore file', () => {
    for (const text of [out.iptables, out.ip6tables]) {
      for (const line of text.split('\n')) {
        expect(line).toMatch(
          /^(#.*|\*filter|:BULKHEAD-[A-Z-]+ - \[0:0\]|-A BULKHEAD-[A-Z-]+ .*|COMMIT|)$/,
        );
      }
      expect(text.split('\n').filter((l) => l === 'COMMIT')).toHaveLength(1);
    }
    for (const line of out.ipset.split('\n')) {
      expect(line).toMatch(/^(#.*|create \S+ .*|add \S+ \S+|flush \S+|swap \S+ \S+|destroy \S+|)$/);
    }
  });

  it('keeps comments inside their quotes', () => {
    const line = chain(out.iptables, 'BULKHEAD-IN').find((l) => l.includes('--dport 443'))!;
    expect(line).toContain('--comment "bulkhead:it_s__rm_-rf_/_-A_INPUT_-j_ACCEPT__COMMIT"');
    expect(line.match(/"/g)).toHaveLength(2);
  });
});

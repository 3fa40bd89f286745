/**
 * decide(): the semantics of DESIGN.md "Policy semantics", proved by tables.
 *
 * The big table is every source mode x destination mode x placement of an allow, a deny and
 * an override-deny rule, checked against an oracle written from the DESIGN.md text alone
 * (not from the implementation). The smaller tables cover what selects a workload or a peer:
 * labels, label groups, names, user groups, IP lists, ports, ICMP, processes and scopes.
 */
import { describe, expect, it } from 'vitest';
import { decide, type DecidedBy, type Flow } from '../../src/policy/decide.js';
import type { EnforcementMode, RuleAction } from '../../src/policy/model.js';
import {
  all,
  anyOf,
  flow,
  ipLists,
  labelGroups,
  labels,
  PolicyBuilder,
  rule,
  summary,
  userGroups,
  verdict,
  workloads,
} from '../support/policy-builder.js';

// ---- the oracle ---------------------------------------------------------------------------

/** How a side of the flow takes part: an enforcement mode, or not a managed workload at all. */
type SideMode = EnforcementMode | 'unmanaged' | 'unknown-address';
const SIDE_MODES: readonly SideMode[] = [
  'idle',
  'visibility',
  'selective',
  'full',
  'unmanaged',
  'unknown-address',
];

type Outcome = 'allow' | 'mark' | 'block';
/** The actions of the rules that match the flow on one side. */
type Matched = ReadonlySet<RuleAction>;

/**
 * One side's judgement, straight from DESIGN.md: "A side in full mode blocks the flow unless
 * an allow rule admits it and no override-deny rule matches it; a side in selective mode
 * blocks what an override-deny rule matches, and what a deny rule matches that no allow rule
 * admits; a side in visibility mode blocks nothing, but marks what full mode would block."
 * "An unmanaged or idle side judges nothing." The decider follows the precedence
 * override-deny > allow > deny > default.
 */
function oracleSide(
  mode: SideMode,
  matched: Matched,
): { outcome: Outcome; by: RuleAction | 'default' } | null {
  if (mode === 'idle' || mode === 'unmanaged' || mode === 'unknown-address') return null;
  const od = matched.has('override-deny');
  const allow = matched.has('allow');
  const deny = matched.has('deny');
  const by = od ? 'override-deny' : allow ? 'allow' : deny ? 'deny' : 'default';
  const fullBlocks = !(allow && !od);
  switch (mode) {
    case 'full':
      return { outcome: fullBlocks ? 'block' : 'allow', by };
    case 'selective': {
      const blocks = od || (deny && !allow);
      // Not blocked, but full mode would block it: the decision reports it as potentially blocked.
      return { outcome: blocks ? 'block' : fullBlocks ? 'mark' : 'allow', by };
    }
    case 'visibility':
      return { outcome: fullBlocks ? 'mark' : 'allow', by };
  }
}

const SEVERITY: Record<Outcome, number> = { allow: 0, mark: 1, block: 2 };
const DECISION: Record<Outcome, string> = {
  allow: 'allowed',
  mark: 'potentially-blocked',
  block: 'blocked',
};

// ---- the estate of the big table ----------------------------------------------------------

/**
 * Where a rule of one action matches: on both sides, only on the destination's inbound, only
 * on the source's outbound, or not at all. One-sided rules use an IP list for the other end,
 * because an IP list describes a peer and never selects the workload that judges.
 */
type Placement = 'none' | 'both' | 'inbound' | 'outbound';
const PLACEMENTS: readonly Placement[] = ['none', 'both', 'inbound', 'outbound'];
const ACTIONS: readonly RuleAction[] = ['allow', 'deny', 'override-deny'];

const SRC = { workload: '10.0.1.1', outsider: '192.0.2.1' };
const DST = { workload: '10.0.2.1', outsider: '192.0.2.2' };

function matrixPolicy(
  srcMode: SideMode,
  dstMode: SideMode,
  placement: Record<RuleAction, Placement>,
  rotation: number,
) {
  const b = new PolicyBuilder();
  const add = (name: string, address: string, role: string, mode: SideMode) =>
    mode === 'unmanaged'
      ? b.unmanaged(name, address, { role })
      : b.workload(name, address, { role }, mode === 'unknown-address' ? 'full' : mode);
  add('src', SRC.workload, 'client', srcMode);
  add('dst', DST.workload, 'server', dstMode);
  b.ipList('src-addresses', [SRC.workload, SRC.outsider]);
  b.ipList('dst-addresses', [DST.workload, DST.outsider]);

  const client = labels({ role: 'client' });
  const server = labels({ role: 'server' });
  const sides: Record<
    Exclude<Placement, 'none'>,
    [ReturnType<typeof labels>, ReturnType<typeof labels>]
  > = {
    both: [anyOf(client, ipLists('src-addresses')), anyOf(server, ipLists('dst-addresses'))],
    inbound: [ipLists('src-addresses'), server],
    outbound: [client, ipLists('dst-addresses')],
  };
  const rules = ACTIONS.filter((a) => placement[a] !== 'none').map((a) => {
    const [sources, destinations] = sides[placement[a] as Exclude<Placement, 'none'>];
    return { ruleset: `rs-${a}`, rule: rule(a, a, sources, destinations, ['443/tcp']) };
  });
  // Decoys on another port: a rule whose service does not match must never decide.
  rules.push({
    ruleset: 'rs-decoy',
    rule: rule('decoy-od', 'override-deny', all(), all(), ['444/tcp']),
  });
  // Precedence must not depend on the order of rulesets: rotate it from case to case.
  for (let i = 0; i < rules.length; i++) {
    const r = rules[(i + rotation) % rules.length]!;
    b.ruleset(r.ruleset, null, [r.rule]);
  }
  return b.resolve();
}

function matrixFlow(
  srcMode: SideMode,
  dstMode: SideMode,
  policy: ReturnType<typeof matrixPolicy>,
): Flow {
  const end = (name: string, addrs: { workload: string; outsider: string }, mode: SideMode) =>
    mode === 'unknown-address'
      ? { address: addrs.outsider }
      : { address: addrs.workload, workload: policy.workloadByName.get(name)! };
  return {
    source: end('src', SRC, srcMode),
    destination: end('dst', DST, dstMode),
    proto: 'tcp',
    port: 443,
  };
}

interface MatrixCase {
  readonly name: string;
  readonly srcMode: SideMode;
  readonly dstMode: SideMode;
  readonly placement: Record<RuleAction, Placement>;
  readonly rotation: number;
}

const matrix: MatrixCase[] = [];
for (const srcMode of SIDE_MODES) {
  for (const dstMode of SIDE_MODES) {
    for (const allow of PLACEMENTS) {
      for (const deny of PLACEMENTS) {
        for (const od of PLACEMENTS) {
          const placement = { allow, deny, 'override-deny': od };
          const rules = ACTIONS.filter((a) => placement[a] !== 'none').map(
            (a) => `${a}@${placement[a]}`,
          );
          matrix.push({
            name: `${srcMode} -> ${dstMode}, rules: ${rules.join(' ') || 'none'}`,
            srcMode,
            dstMode,
            placement,
            rotation: matrix.length % 4,
          });
        }
      }
    }
  }
}

function matchedOn(
  side: 'inbound' | 'outbound',
  placement: Record<RuleAction, Placement>,
): Matched {
  return new Set(ACTIONS.filter((a) => placement[a] === 'both' || placement[a] === side));
}

function expectedDecidedBy(by: RuleAction | 'default'): DecidedBy {
  return by === 'default'
    ? { kind: 'default', action: 'deny' }
    : { kind: 'rule', ruleId: `rs-${by}/${by}`, action: by };
}

describe('decide: every source mode x destination mode x matched rules', () => {
  it('covers the whole table', () => {
    // 6 x 6 modes x 4^3 placements; the 8 combinations of rules matching both sides are in it.
    expect(matrix).toHaveLength(6 * 6 * 64);
  });

  it.each(matrix)('$name', ({ srcMode, dstMode, placement, rotation }) => {
    const policy = matrixPolicy(srcMode, dstMode, placement, rotation);
    const got = decide(policy, matrixFlow(srcMode, dstMode, policy));

    const inbound = oracleSide(dstMode, matchedOn('inbound', placement));
    const outbound = oracleSide(srcMode, matchedOn('outbound', placement));
    expect(got.inbound?.outcome ?? null).toBe(inbound?.outcome ?? null);
    expect(got.outbound?.outcome ?? null).toBe(outbound?.outcome ?? null);

    if (!inbound && !outbound) {
      expect(got).toMatchObject({
        decision: 'allowed',
        decidedBy: { kind: 'not-enforced' },
        side: null,
      });
      return;
    }
    // The most severe side speaks for the flow; on a tie, the destination does.
    const speaker =
      !outbound || (inbound && SEVERITY[inbound.outcome] >= SEVERITY[outbound.outcome])
        ? { side: 'inbound', ...inbound! }
        : { side: 'outbound', ...outbound };
    expect(got.decision).toBe(DECISION[speaker.outcome]);
    expect(got.side).toBe(speaker.side);
    expect(got.decidedBy).toEqual(expectedDecidedBy(speaker.by));
  });
});

// ---- small estates for everything else ----------------------------------------------------

describe('decide: loopback and always-allowed endpoints', () => {
  const policy = new PolicyBuilder()
    .workload('host', '10.0.0.1', { role: 'app' }, 'full', { more: ['10.0.0.2', '2001:db8::1'] })
    .workload('cp', '10.0.0.100', { role: 'control-plane' }, 'full')
    .alwaysAllowed('dns', ['10.9.9.53'], 'outbound', ['53/udp', '53/tcp'])
    .alwaysAllowed('monitoring', ['10.9.9.7'], 'inbound', ['9100/tcp'])
    .alwaysAllowed('control-plane', ['10.0.0.100', '10.9.9.0/30'], 'both')
    // Even an override-deny of everything does not touch what the operator always allows.
    .rules(
      rule(
        'deny-all',
        'override-deny',
        anyOf(all(), ipLists('everything')),
        anyOf(all(), ipLists('everything')),
      ),
    )
    .ipList('everything', ['0.0.0.0/0', '::/0'])
    .resolve();

  it.each([
    // A workload talking to itself never leaves its loopback, whatever the rules say.
    ['host', 'host', '443/tcp', 'allowed by loopback'],
    ['10.0.0.2', 'host', '443/tcp', 'allowed by loopback'],
    ['2001:db8::1', '10.0.0.1', '443/tcp', 'allowed by loopback'],
    // outbound only, on the listed ports
    ['host', '10.9.9.53', '53/udp', 'allowed by always-allowed dns'],
    ['host', '10.9.9.53', '53/tcp', 'allowed by always-allowed dns'],
    ['host', '10.9.9.53', '54/udp', 'blocked by rs0/deny-all'],
    ['10.9.9.53', 'host', '53/udp', 'blocked by rs0/deny-all'],
    // inbound only, on the listed ports
    ['10.9.9.7', 'host', '9100/tcp', 'allowed by always-allowed monitoring'],
    ['10.9.9.7', 'host', '9101/tcp', 'blocked by rs0/deny-all'],
    ['host', '10.9.9.7', '9100/tcp', 'blocked by rs0/deny-all'],
    // both directions, every port and protocol (no ports listed), CIDRs too
    ['host', '10.9.9.2', '12345/udp', 'allowed by always-allowed control-plane'],
    ['10.9.9.3', 'host', 'icmp/8', 'allowed by always-allowed control-plane'],
    ['10.9.9.4', 'host', '22/tcp', 'blocked by rs0/deny-all'],
  ])('%s -> %s %s: %s', (from, to, service, expected) => {
    expect(summary(verdict(policy, from, to, service))).toBe(expected);
  });

  it("exempts the endpoint on each agent, not the endpoint's own firewall", () => {
    // host -> cp: host's outbound lets the control plane through; cp itself is a full-mode
    // workload whose inbound only exempts its own always-allowed endpoints (not host).
    const d = verdict(policy, 'host', 'cp', '7480/tcp');
    expect(d.outbound).toMatchObject({
      outcome: 'allow',
      decidedBy: { kind: 'always-allowed', name: 'control-plane' },
    });
    expect(d.inbound).toMatchObject({ outcome: 'block' });
    expect(d.decision).toBe('blocked');
  });
});

describe('decide: label selectors', () => {
  // The destination selector `app: [pay, cards], env: prod` is (pay or cards) and prod.
  const policy = new PolicyBuilder()
    .workload('client', '10.0.0.1', { role: 'client' }, 'idle')
    .workload('pay-prod', '10.0.1.1', { app: 'pay', env: 'prod' })
    .workload('cards-prod', '10.0.1.2', { app: 'cards', env: 'prod' })
    .workload('shop-prod', '10.0.1.3', { app: 'shop', env: 'prod' })
    .workload('pay-staging', '10.0.1.4', { app: 'pay', env: 'staging' })
    .workload('pay-no-env', '10.0.1.5', { app: 'pay' })
    .workload('env-only', '10.0.1.6', { env: 'prod' })
    .rules(
      rule(
        'to-pay-or-cards-in-prod',
        'allow',
        labels({ role: 'client' }),
        labels({ app: ['pay', 'cards'], env: 'prod' }),
      ),
    )
    .resolve();

  it.each([
    ['pay-prod', 'allowed'],
    ['cards-prod', 'allowed'],
    ['shop-prod', 'blocked'],
    ['pay-staging', 'blocked'],
    // A workload without the key does not match it (no value is not "any value").
    ['pay-no-env', 'blocked'],
    ['env-only', 'blocked'],
  ])('client -> %s is %s', (to, decision) => {
    expect(verdict(policy, 'client', to, '443/tcp').decision).toBe(decision);
  });
});

describe('decide: label groups', () => {
  const policy = new PolicyBuilder()
    .labelGroup('retail', 'app', ['shop', 'web-store'])
    // Nested: customer-facing = pay + retail's values.
    .labelGroup('customer-facing', 'app', ['pay'], ['retail'])
    .labelGroup('live', 'env', ['prod', 'dr'])
    .workload('client', '10.0.0.1', { role: 'client' }, 'idle')
    .workload('shop', '10.0.1.1', { app: 'shop', env: 'prod' })
    .workload('web-store', '10.0.1.2', { app: 'web-store', env: 'dr' })
    .workload('pay', '10.0.1.3', { app: 'pay', env: 'prod' })
    .workload('cards', '10.0.1.4', { app: 'cards', env: 'prod' })
    .workload('hr', '10.0.1.5', { app: 'hr', env: 'prod' })
    .workload('shop-test', '10.0.1.6', { app: 'shop', env: 'test' })
    .rules(
      // A group merges with explicit labels of its key (OR), and ANDs with other keys' groups.
      rule(
        'grouped',
        'allow',
        labels({ role: 'client' }),
        labels({ app: 'cards' }, ['customer-facing', 'live']),
      ),
    )
    .resolve();

  it.each([
    ['shop', 'allowed'], // from the nested group
    ['web-store', 'allowed'], // from the nested group, env from the env group
    ['pay', 'allowed'], // from the outer group
    ['cards', 'allowed'], // from the explicit label merged into the group's key
    ['hr', 'blocked'], // app in no group
    ['shop-test', 'blocked'], // app matches but env is not live
  ])('client -> %s is %s', (to, decision) => {
    expect(verdict(policy, 'client', to, '443/tcp').decision).toBe(decision);
  });

  it('selects by a label group alone', () => {
    const p = new PolicyBuilder()
      .labelGroup('live', 'env', ['prod', 'dr'])
      .workload('a', '10.0.0.1', { env: 'dr' }, 'idle')
      .workload('b', '10.0.0.2', { env: 'test' }, 'idle')
      .workload('db', '10.0.1.1', {}, 'full')
      .rules(rule('live-to-db', 'allow', labelGroups('live'), workloads('db')))
      .resolve();
    expect(verdict(p, 'a', 'db', '5432/tcp').decision).toBe('allowed');
    expect(verdict(p, 'b', 'db', '5432/tcp').decision).toBe('blocked');
  });
});

describe('decide: named workloads and user groups', () => {
  const policy = new PolicyBuilder()
    .workload('db-1', '10.0.1.1', { role: 'db' })
    .workload('db-2', '10.0.1.2', { role: 'db' })
    .workload('jump-alice', '10.0.9.1', { role: 'jump' }, 'idle', { users: ['alice'] })
    .workload('jump-carol', '10.0.9.2', { role: 'jump' }, 'idle', { users: ['carol', 'dave'] })
    .workload('jump-empty', '10.0.9.3', { role: 'jump' }, 'idle')
    .workload('jump-bob-too', '10.0.9.4', { role: 'jump' }, 'idle', { users: ['eve', 'bob'] })
    .userGroup('dba', ['alice', 'bob'])
    .rules(rule('dba-to-db-1', 'allow', userGroups('dba'), workloads('db-1'), ['5432/tcp']))
    .resolve();

  it.each([
    ['jump-alice', 'db-1', 'allowed'],
    ['jump-bob-too', 'db-1', 'allowed'], // any one logged-in member is enough
    ['jump-carol', 'db-1', 'blocked'], // no member logged in
    ['jump-empty', 'db-1', 'blocked'], // nobody logged in
    ['jump-alice', 'db-2', 'blocked'], // same labels as db-1, but not named
  ])('%s -> %s is %s', (from, to, decision) => {
    expect(verdict(policy, from, to, '5432/tcp').decision).toBe(decision);
  });
});

describe('decide: IP lists', () => {
  const policy = new PolicyBuilder()
    .workload('web', '10.0.1.1', { role: 'web' }, 'full', { more: ['2001:db8:1::1'] })
    .ipList(
      'partners',
      ['203.0.113.0/24', '198.51.100.10-198.51.100.20', '2001:db8:10::/48'],
      ['203.0.113.128/25', '198.51.100.15', '2001:db8:10:ff::/64'],
    )
    .rules(
      rule('partners-to-web', 'allow', ipLists('partners'), labels({ role: 'web' }), ['443/tcp']),
    )
    .resolve();

  it.each([
    ['203.0.113.0', 'allowed'], // first address of the CIDR
    ['203.0.113.127', 'allowed'], // last before the exclusion
    ['203.0.113.128', 'blocked'], // first excluded
    ['203.0.113.255', 'blocked'], // last excluded
    ['203.0.112.255', 'blocked'], // just before the CIDR
    ['198.51.100.9', 'blocked'], // before the range
    ['198.51.100.10', 'allowed'], // range start
    ['198.51.100.14', 'allowed'],
    ['198.51.100.15', 'blocked'], // a single excluded address
    ['198.51.100.16', 'allowed'],
    ['198.51.100.20', 'allowed'], // range end
    ['198.51.100.21', 'blocked'], // after the range
    ['2001:db8:10::1', 'allowed'], // IPv6
    ['2001:db8:10:fe:ffff:ffff:ffff:ffff', 'allowed'],
    ['2001:db8:10:ff::1', 'blocked'], // IPv6 exclusion
    ['2001:db8:11::1', 'blocked'],
    ['::ffff:203.0.113.5', 'allowed'], // IPv4-mapped IPv6 is the IPv4 host
    ['::ffff:203.0.113.200', 'blocked'],
  ])('%s -> web is %s', (from, decision) => {
    expect(verdict(policy, from, 'web', '443/tcp').decision).toBe(decision);
  });

  it('reaches a workload by any of its addresses, IPv6 and IPv4-mapped included', () => {
    for (const to of ['10.0.1.1', '2001:db8:1::1', '::ffff:10.0.1.1', '2001:DB8:1:0:0:0:0:1']) {
      expect(summary(verdict(policy, '203.0.113.1', to, '443/tcp')), to).toBe(
        'allowed by rs0/partners-to-web',
      );
    }
  });

  it('never selects the judging workload by an IP list', () => {
    // A rule "app -> the db subnet" opens app's outbound to db, but not db's inbound: the IP
    // list describes app's peer, and only workload actors select whose firewall admits it.
    const p = new PolicyBuilder()
      .workload('app', '10.0.1.1', { role: 'app' })
      .workload('db', '10.0.2.1', { role: 'db' })
      .workload('db-unmanaged', '10.0.2.2', { role: 'db' }, 'full', { managed: false })
      .ipList('db-subnet', ['10.0.2.0/24'])
      .rules(
        rule('app-to-db-subnet', 'allow', labels({ role: 'app' }), ipLists('db-subnet'), [
          '5432/tcp',
        ]),
      )
      .resolve();
    const d = verdict(p, 'app', 'db', '5432/tcp');
    expect(d.outbound).toMatchObject({
      outcome: 'allow',
      decidedBy: { kind: 'rule', ruleId: 'rs0/app-to-db-subnet' },
    });
    expect(d.inbound).toMatchObject({ outcome: 'block', decidedBy: { kind: 'default' } });
    expect(summary(d)).toBe('blocked by default');
    // A destination that enforces nothing leaves the source's outbound to decide.
    expect(summary(verdict(p, 'app', 'db-unmanaged', '5432/tcp'))).toBe(
      'allowed by rs0/app-to-db-subnet',
    );
    // And the reverse: an IP list as source does not open the listed workload's outbound.
    const back = new PolicyBuilder()
      .workload('app', '10.0.1.1', { role: 'app' })
      .workload('db', '10.0.2.1', { role: 'db' })
      .ipList('app-subnet', ['10.0.1.0/24'])
      .rules(
        rule('app-subnet-to-db', 'allow', ipLists('app-subnet'), labels({ role: 'db' }), [
          '5432/tcp',
        ]),
      )
      .resolve();
    const r = verdict(back, 'app', 'db', '5432/tcp');
    expect(r.inbound).toMatchObject({ outcome: 'allow' });
    expect(r.outbound).toMatchObject({ outcome: 'block' });
  });
});

describe('decide: services', () => {
  const policy = new PolicyBuilder()
    .workload('client', '10.0.0.1', { role: 'client' }, 'idle')
    .workload('server', '10.0.1.1', { role: 'server' }, 'full')
    .service('web-range', ['8000-8080/tcp'])
    .service('mysql', ['3306/tcp@mysqld'])
    .rules(
      rule('range', 'allow', labels({ role: 'client' }), labels({ role: 'server' }), ['web-range']),
      rule('edges', 'allow', labels({ role: 'client' }), labels({ role: 'server' }), [
        '1/udp',
        '65535/udp',
      ]),
      rule('echo', 'allow', labels({ role: 'client' }), labels({ role: 'server' }), ['icmp/8']),
      rule('any-icmpv6', 'allow', labels({ role: 'client' }), labels({ role: 'server' }), [
        'icmpv6',
      ]),
      rule('mysql', 'allow', labels({ role: 'client' }), labels({ role: 'server' }), ['mysql']),
    )
    .resolve();

  it.each([
    ['7999/tcp', undefined, 'blocked by default'], // from - 1
    ['8000/tcp', undefined, 'allowed by rs0/range'], // from
    ['8040/tcp', undefined, 'allowed by rs0/range'],
    ['8080/tcp', undefined, 'allowed by rs0/range'], // to
    ['8081/tcp', undefined, 'blocked by default'], // to + 1
    ['8000/udp', undefined, 'blocked by default'], // right port, wrong protocol
    ['1/udp', undefined, 'allowed by rs0/edges'],
    ['2/udp', undefined, 'blocked by default'],
    ['65534/udp', undefined, 'blocked by default'],
    ['65535/udp', undefined, 'allowed by rs0/edges'],
    ['icmp/8', undefined, 'allowed by rs0/echo'],
    ['icmp/0', undefined, 'blocked by default'], // another ICMP type
    ['icmpv6/8', undefined, 'allowed by rs0/any-icmpv6'], // any type of icmpv6
    ['icmpv6/128', undefined, 'allowed by rs0/any-icmpv6'],
    ['icmpv6', undefined, 'allowed by rs0/any-icmpv6'],
    ['icmp', undefined, 'blocked by default'], // no type given: a typed rule cannot match it
    // Nano-segmentation: only mysqld may serve 3306.
    ['3306/tcp', 'mysqld', 'allowed by rs0/mysql'],
    ['3306/tcp', 'bash', 'blocked by default'],
    ['3306/tcp', undefined, 'blocked by default'],
  ])('client -> server %s (process %s): %s', (service, process, expected) => {
    expect(summary(verdict(policy, 'client', 'server', service, process))).toBe(expected);
  });

  it('always accepts IPv6 neighbour and multicast-listener discovery, as every backend does', () => {
    const p = new PolicyBuilder()
      .workload('a', '2001:db8::1', {}, 'full')
      .workload('b', '2001:db8::2', {}, 'full')
      .rules(rule('no-icmpv6', 'override-deny', all(), all(), ['icmpv6']))
      .resolve();
    for (const type of [130, 131, 132, 133, 134, 135, 136, 143]) {
      expect(decide(p, flow(p, 'a', 'b', `icmpv6/${type}`))).toMatchObject({
        decision: 'allowed',
        decidedBy: { kind: 'essential' },
      });
    }
    expect(decide(p, flow(p, 'a', 'b', 'icmpv6/128'))).toMatchObject({
      decision: 'blocked',
      decidedBy: { ruleId: 'rs0/no-icmpv6' },
    });
  });

  it('judges a process binding on the destination only: the source cannot see the remote process', () => {
    const build = (serverMode: 'idle' | 'full') =>
      new PolicyBuilder()
        .workload('client', '10.0.0.1', { role: 'client' }, 'full')
        .workload('server', '10.0.1.1', { role: 'server' }, serverMode)
        .rules(
          rule('mysql', 'allow', labels({ role: 'client' }), labels({ role: 'server' }), [
            '3306/tcp@mysqld',
          ]),
        )
        .resolve();
    // Only the client judges: its outbound admits 3306 whoever serves it.
    const idle = build('idle');
    const sourceOnly = decide(idle, flow(idle, 'client', 'server', '3306/tcp', 'bash'));
    expect(sourceOnly).toMatchObject({
      decision: 'allowed',
      side: 'outbound',
      decidedBy: { ruleId: 'rs0/mysql' },
    });
    // Both judge: the server's inbound refuses a port served by the wrong process.
    const full = build('full');
    const both = decide(full, flow(full, 'client', 'server', '3306/tcp', 'bash'));
    expect(both).toMatchObject({
      decision: 'blocked',
      side: 'inbound',
      decidedBy: { kind: 'default' },
    });
    expect(both.outbound).toMatchObject({ outcome: 'allow' });
  });

  it('applies a deny rule to every process when it names none', () => {
    const p = new PolicyBuilder()
      .workload('client', '10.0.0.1', {}, 'idle')
      .workload('server', '10.0.1.1', {}, 'selective')
      .rules(rule('no-ssh', 'deny', all(), all(), ['22/tcp']))
      .resolve();
    for (const process of ['sshd', 'dropbear', undefined]) {
      expect(summary(verdict(p, 'client', 'server', '22/tcp', process))).toBe(
        'blocked by rs0/no-ssh',
      );
    }
  });
});

describe('decide: precedence details', () => {
  it('reports the first matching rule of the winning action, in policy order', () => {
    const p = new PolicyBuilder()
      .workload('a', '10.0.0.1', { role: 'a' }, 'idle')
      .workload('b', '10.0.0.2', { role: 'b' }, 'full')
      .ruleset('first', null, [
        rule('deny', 'deny', all(), all()),
        rule('allow-1', 'allow', all(), labels({ role: 'b' })),
      ])
      .ruleset('second', null, [rule('allow-2', 'allow', labels({ role: 'a' }), all())])
      .resolve();
    expect(summary(verdict(p, 'a', 'b', '443/tcp'))).toBe('allowed by first/allow-1');
  });

  it('reports a deny rule, not the default, when it decides in full mode', () => {
    const p = new PolicyBuilder()
      .workload('a', '10.0.0.1', {}, 'idle')
      .workload('b', '10.0.0.2', {}, 'full')
      .rules(rule('no-telnet', 'deny', all(), all(), ['23/tcp']))
      .resolve();
    expect(summary(verdict(p, 'a', 'b', '23/tcp'))).toBe('blocked by rs0/no-telnet');
    expect(summary(verdict(p, 'a', 'b', '24/tcp'))).toBe('blocked by default');
  });
});

describe('decide: ruleset scopes', () => {
  // Two apps, each with a web and a db tier; the rule "web -> db" is written once per scope.
  const estate = () =>
    new PolicyBuilder()
      .workload('shop-web', '10.0.1.1', { app: 'shop', role: 'web' })
      .workload('shop-db', '10.0.1.2', { app: 'shop', role: 'db' })
      .workload('pay-web', '10.0.2.1', { app: 'pay', role: 'web' })
      .workload('pay-db', '10.0.2.2', { app: 'pay', role: 'db' })
      .labelGroup('shop-apps', 'app', ['shop']);
  const webToDb = (options: { extraScope?: boolean } = {}) =>
    rule(
      'web-to-db',
      'allow',
      labels({ role: 'web' }),
      labels({ role: 'db' }),
      ['5432/tcp'],
      options,
    );
  const table = (policy: ReturnType<PolicyBuilder['resolve']>) =>
    Object.fromEntries(
      (
        [
          ['shop-web', 'shop-db'],
          ['pay-web', 'shop-db'],
          ['shop-web', 'pay-db'],
          ['pay-web', 'pay-db'],
        ] as const
      ).map(([from, to]) => [`${from} -> ${to}`, verdict(policy, from, to, '5432/tcp').decision]),
    );

  it('limits sources and destinations to the scope', () => {
    expect(table(estate().ruleset('shop', { app: 'shop' }, [webToDb()]).resolve())).toEqual({
      'shop-web -> shop-db': 'allowed',
      'pay-web -> shop-db': 'blocked',
      'shop-web -> pay-db': 'blocked',
      'pay-web -> pay-db': 'blocked',
    });
  });

  it("takes an extra-scope rule's sources as written, but still limits its destinations", () => {
    expect(
      table(
        estate()
          .ruleset('shop', { app: 'shop' }, [webToDb({ extraScope: true })])
          .resolve(),
      ),
    ).toEqual({
      'shop-web -> shop-db': 'allowed',
      'pay-web -> shop-db': 'allowed',
      'shop-web -> pay-db': 'blocked',
      'pay-web -> pay-db': 'blocked',
    });
  });

  it.each([
    ['an empty scope', {}],
    ['no scope', null],
  ] as const)('treats %s as the whole estate', (_, scope) => {
    expect(
      Object.values(table(estate().ruleset('everywhere', scope, [webToDb()]).resolve())),
    ).toEqual(['allowed', 'allowed', 'allowed', 'allowed']);
  });

  it('scopes by label group, and limits "all workloads" to the scope', () => {
    const p = estate()
      .ruleset('shop', { labels: {}, labelGroups: ['shop-apps'] }, [
        rule('any-to-any', 'allow', all(), all(), ['5432/tcp']),
      ])
      .resolve();
    expect(table(p)).toEqual({
      'shop-web -> shop-db': 'allowed',
      'pay-web -> shop-db': 'blocked',
      'shop-web -> pay-db': 'blocked',
      'pay-web -> pay-db': 'blocked',
    });
  });

  it("intersects a rule's own labels of the scope's key with the scope", () => {
    // Scope app in {shop, pay}; the rule's sources say app=pay: only pay-web, within the scope.
    const p = estate()
      .ruleset('both', { app: ['shop', 'pay'] }, [
        rule(
          'pay-web-to-db',
          'allow',
          labels({ app: 'pay', role: 'web' }),
          labels({ role: 'db' }),
          ['5432/tcp'],
        ),
      ])
      .resolve();
    expect(table(p)).toEqual({
      'shop-web -> shop-db': 'blocked',
      'pay-web -> shop-db': 'allowed',
      'shop-web -> pay-db': 'blocked',
      'pay-web -> pay-db': 'allowed',
    });
  });

  it('does not limit IP list peers by the scope (addresses carry no labels)', () => {
    const p = estate()
      .ipList('office', ['192.0.2.0/24'])
      .ruleset('shop', { app: 'shop' }, [
        rule('office-to-db', 'allow', ipLists('office'), labels({ role: 'db' }), ['5432/tcp']),
      ])
      .resolve();
    expect(verdict(p, '192.0.2.9', 'shop-db', '5432/tcp').decision).toBe('allowed');
    expect(verdict(p, '192.0.2.9', 'pay-db', '5432/tcp').decision).toBe('blocked');
  });
});

describe('decide: the example estate', () => {
  // One spot check per mode of the estate that README and CLI use, so a change in the YAML or
  // the engine that alters what a user sees there is caught here too.
  it.each([
    ['shop-web-1', 'shop-api-1', '8080/tcp', undefined, 'allowed by shop/web-to-api'],
    ['shop-api-1', 'shop-db-1', '3306/tcp', 'mysqld', 'allowed by shop/api-to-db'],
    ['shop-api-1', 'shop-db-1', '3306/tcp', 'bash', 'blocked by default'],
    [
      'shop-web-s1',
      'shop-api-1',
      '8080/tcp',
      undefined,
      'blocked by environment-separation/no-staging-to-prod',
    ],
    ['198.19.1.5', 'shop-web-1', '443/tcp', undefined, 'allowed by shop/users-to-web'],
    ['198.19.99.5', 'shop-web-1', '443/tcp', undefined, 'blocked by default'],
    [
      'jump-1',
      'pay-db-1',
      '5432/tcp',
      undefined,
      'allowed by environment-separation/dba-to-databases',
    ],
    ['shop-api-1', 'pay-api-1', '8080/tcp', undefined, 'allowed by payments/shop-api-to-pay-api'],
    // selective source, visibility destination: the deny rule blocks on the source's outbound.
    [
      'shop-web-s1',
      'shop-db-s1',
      '23/tcp',
      undefined,
      'blocked by environment-separation/no-telnet',
    ],
    // visibility destination, nothing allows it: only marked.
    ['pay-api-s1', 'shop-db-s1', '3306/tcp', undefined, 'potentially-blocked by default'],
    // both ends enforce nothing.
    ['jump-2', 'vault-hsm', '1792/tcp', undefined, 'allowed by not-enforced'],
  ])('%s -> %s %s (%s): %s', async (from, to, service, process, expected) => {
    const { loadPolicy } = await import('../../src/policy-as-code/load.js');
    const { resolved } = await loadPolicy(['examples/estate']);
    expect(summary(verdict(resolved, from, to, service, process))).toBe(expected);
  });
});

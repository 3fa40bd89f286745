/**
 * resolvePolicy(): every mistake a person can make in a policy is an error that names the
 * object and the path to fix, all of them at once; rules that can never match are warnings.
 */
import { describe, expect, it } from 'vitest';
import { formatIssue, PolicyError, type PolicyIssue } from '../../src/policy/issues.js';
import type { Policy } from '../../src/policy/model.js';
import { resolvePolicy } from '../../src/policy/resolve.js';
import {
  all,
  anyOf,
  ipLists,
  labelGroups,
  labels,
  PolicyBuilder,
  rule,
  userGroups,
  workloads,
} from '../support/policy-builder.js';

/** The issues resolvePolicy throws, formatted as a person reads them; [] when it does not throw. */
function errorsOf(policy: Policy): string[] {
  try {
    resolvePolicy(policy);
    return [];
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    return e.issues.filter((i) => i.severity === 'error').map(formatIssue);
  }
}

function warningsOf(policy: Policy): string[] {
  return resolvePolicy(policy).warnings.map(formatIssue);
}

/** A small valid estate that each case below breaks in one way. */
function estate(): PolicyBuilder {
  return new PolicyBuilder()
    .workload('web-1', '10.0.0.1', { app: 'shop', role: 'web' })
    .workload('db-1', '10.0.0.2', { app: 'shop', role: 'db' })
    .labelGroup('apps', 'app', ['shop'])
    .ipList('office', ['192.0.2.0/24'])
    .userGroup('dba', ['alice'])
    .service('pg', ['5432/tcp']);
}

describe('resolvePolicy: unknown references', () => {
  it.each([
    [
      'a label group in a rule selector',
      estate().rules(rule('r', 'allow', labelGroups('nope'), all())),
      'Ruleset "rs0": rules[0].sources.labelGroups[0]: unknown label group "nope"',
    ],
    [
      'a label group after a known one',
      estate().rules(rule('r', 'allow', all(), labels({ role: 'db' }, ['apps', 'nope']))),
      'Ruleset "rs0": rules[0].destinations.labelGroups[1]: unknown label group "nope"',
    ],
    [
      'a label group in a scope',
      estate().ruleset('shop', { labels: {}, labelGroups: ['nope'] }, [
        rule('r', 'allow', all(), all()),
      ]),
      'Ruleset "shop": scope.labelGroups[0]: unknown label group "nope"',
    ],
    [
      'a label group inside a label group',
      estate().labelGroup('outer', 'app', ['pay'], ['apps', 'nope']),
      'LabelGroup "outer": groups[1]: unknown label group "nope"',
    ],
    [
      'an IP list',
      estate().rules(rule('r', 'allow', labels({ role: 'web' }), ipLists('office', 'internet'))),
      'Ruleset "rs0": rules[0].destinations.ipLists[1]: unknown IP list "internet"',
    ],
    [
      'a user group',
      estate().rules(rule('r', 'allow', userGroups('admins'), all())),
      'Ruleset "rs0": rules[0].sources.userGroups[0]: unknown user group "admins"',
    ],
    [
      'a service',
      estate().rules(rule('r', 'allow', all(), all(), ['pg', 'mysql'])),
      'Ruleset "rs0": rules[0].services[1]: unknown service "mysql"',
    ],
    [
      'a workload',
      estate().rules(rule('r', 'allow', all(), workloads('db-1', 'db-9'))),
      'Ruleset "rs0": rules[0].destinations.workloads[1]: unknown workload "db-9"',
    ],
    [
      'a reference in a later rule of a later ruleset',
      estate()
        .rules(rule('ok', 'allow', all(), all()))
        .ruleset('second', null, [
          rule('ok', 'allow', all(), all()),
          rule('bad', 'allow', ipLists('nope'), all()),
        ]),
      'Ruleset "second": rules[1].sources.ipLists[0]: unknown IP list "nope"',
    ],
  ])('%s is an error, never an empty set', (_, builder, expected) => {
    expect(errorsOf(builder.build())).toEqual([expected]);
  });
});

describe('resolvePolicy: names and addresses', () => {
  it.each([
    [
      'Workload',
      (b: PolicyBuilder) => b.workload('web-1', '10.0.0.9'),
      'Workload "web-1": is defined more than once',
    ],
    [
      'LabelGroup',
      (b: PolicyBuilder) => b.labelGroup('apps', 'app', ['pay']),
      'LabelGroup "apps": is defined more than once',
    ],
    [
      'IpList',
      (b: PolicyBuilder) => b.ipList('office', ['198.51.100.0/24']),
      'IpList "office": is defined more than once',
    ],
    [
      'UserGroup',
      (b: PolicyBuilder) => b.userGroup('dba', []),
      'UserGroup "dba": is defined more than once',
    ],
    [
      'Service',
      (b: PolicyBuilder) => b.service('pg', ['5433/tcp']),
      'Service "pg": is defined more than once',
    ],
    [
      'Ruleset',
      (b: PolicyBuilder) => b.ruleset('x', null, []).ruleset('x', null, []),
      'Ruleset "x": is defined more than once',
    ],
    [
      'rule within a ruleset',
      (b: PolicyBuilder) =>
        b.ruleset('x', null, [rule('a', 'allow', all(), all()), rule('a', 'deny', all(), all())]),
      'Ruleset "x": rules[1].name: rule "a" is defined more than once',
    ],
  ])('a duplicate %s name is an error', (_, add, expected) => {
    expect(errorsOf(add(estate()).build())).toEqual([expected]);
  });

  it('allows the same rule name in two rulesets (rule ids are ruleset/rule)', () => {
    const p = estate()
      .ruleset('a', null, [rule('web', 'allow', all(), all())])
      .ruleset('b', null, [rule('web', 'allow', all(), all())])
      .resolve();
    expect(p.rules.map((r) => r.id)).toEqual(['a/web', 'b/web']);
  });

  it.each([
    [
      'the same IPv4 address',
      '10.0.0.1',
      'Workload "other": addresses[1]: 10.0.0.1 is also an address of workload "web-1"',
    ],
    // The kernel sees an IPv4-mapped IPv6 address as the IPv4 host.
    [
      'an IPv4-mapped spelling of it',
      '::ffff:10.0.0.1',
      'Workload "other": addresses[1]: ::ffff:10.0.0.1 is also an address of workload "web-1"',
    ],
  ])('two workloads may not share an address: %s', (_, address, expected) => {
    const p = estate()
      .workload('other', '10.0.0.50', {}, 'full', { more: [address] })
      .build();
    expect(errorsOf(p)).toEqual([expected]);
  });

  it('compares IPv6 addresses by value, not by spelling', () => {
    const p = new PolicyBuilder()
      .workload('a', '2001:db8::1')
      .workload('b', '2001:DB8:0:0:0:0:0:1')
      .build();
    expect(errorsOf(p)).toEqual([
      'Workload "b": addresses[0]: 2001:DB8:0:0:0:0:0:1 is also an address of workload "a"',
    ]);
  });

  it.each([
    ['a CIDR', '10.1.0.0/24', 'Workload "w": addresses[0]: "10.1.0.0/24" is not an IP address'],
    ['text', 'db.example.com', 'Workload "w": addresses[0]: "db.example.com" is not an IP address'],
  ])('a workload address must be one address, not %s', (_, address, expected) => {
    expect(errorsOf(new PolicyBuilder().workload('w', address).build())).toEqual([expected]);
  });
});

describe('resolvePolicy: label groups', () => {
  it.each([
    [
      'itself',
      [['a', ['a']]],
      ['LabelGroup "a": groups[0]: includes itself: a cycle of label groups "a" -> "a"'],
    ],
    [
      'two groups',
      [
        ['a', ['b']],
        ['b', ['a']],
      ],
      ['LabelGroup "b": groups[0]: includes itself: a cycle of label groups "a" -> "b" -> "a"'],
    ],
    [
      'three groups, entered in the middle',
      [
        ['x', ['y']],
        ['y', ['z']],
        ['z', ['x']],
      ],
      [
        'LabelGroup "z": groups[0]: includes itself: a cycle of label groups "x" -> "y" -> "z" -> "x"',
      ],
    ],
  ] as const)('a cycle through %s is one error naming the cycle', (_, groups, expected) => {
    const b = new PolicyBuilder();
    for (const [name, children] of groups) b.labelGroup(name, 'app', [name], children);
    expect(errorsOf(b.build())).toEqual(expected);
  });

  it('expands a diamond (two paths to one group) without calling it a cycle', () => {
    const p = new PolicyBuilder()
      .labelGroup('top', 'app', [], ['left', 'right'])
      .labelGroup('left', 'app', ['l'], ['bottom'])
      .labelGroup('right', 'app', ['r'], ['bottom'])
      .labelGroup('bottom', 'app', ['b'])
      .rules(rule('r', 'allow', all(), labelGroups('top')))
      .resolve();
    const clause = p.rules[0]!.destinations.clauses[0]!;
    expect([...clause.labels.get('app')!].sort()).toEqual(['b', 'l', 'r']);
  });

  it('refuses to include a group of another key', () => {
    const p = new PolicyBuilder()
      .labelGroup('envs', 'env', ['prod'])
      .labelGroup('apps', 'app', ['shop'], ['envs'])
      .build();
    expect(errorsOf(p)).toEqual([
      'LabelGroup "apps": groups[0]: label group "envs" is for key "env", not "app"',
    ]);
  });
});

describe('resolvePolicy: bad values in hand-made policies', () => {
  it.each([
    [
      'an IP list entry',
      new PolicyBuilder().ipList('l', ['10.0.0.0/8', '10.0.0.300']),
      'IpList "l": include[1]: "10.0.0.300" is not an IP address',
    ],
    [
      'an IP list exclusion',
      new PolicyBuilder().ipList('l', ['10.0.0.0/8'], ['10.1.0.1/16']),
      'IpList "l": exclude[0]: "10.1.0.1/16" has host bits set (write the network address)',
    ],
    [
      'a service port',
      new PolicyBuilder().service('s', ['0/tcp']),
      'Service "s": ports[0].ports.from: 0 is not a port (1-65535)',
    ],
    [
      'a rule port range',
      new PolicyBuilder().rules(rule('r', 'allow', all(), all(), ['100-90/udp'])),
      'Ruleset "rs0": rules[0].services[0].ports: 100-90 is a port range whose first port is after its last',
    ],
    [
      'an ICMP type',
      new PolicyBuilder().rules(rule('r', 'allow', all(), all(), ['icmp/256'])),
      'Ruleset "rs0": rules[0].services[0].icmpType: 256 is not an ICMP type (0-255)',
    ],
    [
      'an always-allowed address',
      new PolicyBuilder().alwaysAllowed('dns', ['10.0.0.53', 'dns.local'], 'outbound'),
      'Settings "settings": alwaysAllowed[0].addresses: "dns.local" is not an IP address',
    ],
    [
      'an always-allowed port',
      new PolicyBuilder().alwaysAllowed('dns', ['10.0.0.53'], 'outbound', ['53/udp', '65536/udp']),
      'Settings "settings": alwaysAllowed[0].ports[1].ports.from: 65536 is not a port (1-65535)',
    ],
  ])('%s is checked', (_, builder, expected) => {
    expect(errorsOf(builder.build())).toEqual([expected]);
  });
});

describe('resolvePolicy: every error at once', () => {
  it('reports all problems together, in one PolicyError', () => {
    const p = estate()
      .workload('web-1', '10.0.0.9')
      .workload('copy', '10.0.0.2')
      .labelGroup('loop', 'app', [], ['loop'])
      .ipList('bad', ['not-an-address'])
      .ruleset('shop', { labels: {}, labelGroups: ['missing'] }, [
        rule('r', 'allow', anyOf(userGroups('nobody'), ipLists('nowhere')), workloads('ghost'), [
          'pg',
          'ftp',
        ]),
      ])
      .build();
    let thrown: unknown;
    try {
      resolvePolicy(p);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(PolicyError);
    const issues = (thrown as PolicyError).issues.map(formatIssue);
    expect(issues).toEqual(
      expect.arrayContaining([
        'Workload "web-1": is defined more than once',
        'Workload "copy": addresses[0]: 10.0.0.2 is also an address of workload "db-1"',
        'LabelGroup "loop": groups[0]: includes itself: a cycle of label groups "loop" -> "loop"',
        'IpList "bad": include[0]: "not-an-address" is not an IP address, CIDR or range',
        'Ruleset "shop": scope.labelGroups[0]: unknown label group "missing"',
        'Ruleset "shop": rules[0].sources.userGroups[0]: unknown user group "nobody"',
        'Ruleset "shop": rules[0].sources.ipLists[0]: unknown IP list "nowhere"',
        'Ruleset "shop": rules[0].destinations.workloads[0]: unknown workload "ghost"',
        'Ruleset "shop": rules[0].services[1]: unknown service "ftp"',
      ]),
    );
    expect(issues).toHaveLength(9);
    // The message a person sees lists them all, not just the first.
    const message = (thrown as Error).message;
    expect(message).toMatch(/^9 problems in the policy:\n/);
    for (const line of issues) expect(message).toContain(`  ${line}`);
  });
});

describe('resolvePolicy: warnings for what can never match', () => {
  const shop = () =>
    estate()
      .workload('pay-1', '10.0.1.1', { app: 'pay', role: 'web' })
      .labelGroup('pay-apps', 'app', ['pay']);

  it('has no warnings for a policy that means what it says', () => {
    const p = shop()
      .ruleset('shop', { app: 'shop' }, [
        rule('web-to-db', 'allow', labels({ role: 'web' }), labels({ role: 'db' }), ['pg']),
        rule('pay-to-db', 'allow', labels({ app: 'pay' }), labels({ role: 'db' }), ['pg'], {
          extraScope: true,
        }),
        rule('named', 'allow', workloads('web-1'), workloads('db-1'), ['pg']),
      ])
      .build();
    expect(warningsOf(p)).toEqual([]);
  });

  it.each([
    [
      'a source of another app',
      rule('r', 'allow', labels({ app: 'pay' }), labels({ role: 'db' })),
      [
        'Ruleset "shop": rules[0].sources: "app=pay" lies outside the ruleset\'s scope and can never match',
      ],
    ],
    [
      'a destination of another app, even in an extra-scope rule',
      rule('r', 'allow', labels({ app: 'pay' }), labels({ app: 'pay', role: 'db' }), 'all', {
        extraScope: true,
      }),
      [
        'Ruleset "shop": rules[0].destinations: "app=pay&role=db" lies outside the ruleset\'s scope and can never match',
      ],
    ],
    [
      'a label group of another app',
      rule('r', 'allow', labelGroups('pay-apps'), all()),
      [
        'Ruleset "shop": rules[0].sources: "app=pay" lies outside the ruleset\'s scope and can never match',
      ],
    ],
    [
      'a workload named outright',
      rule('r', 'allow', workloads('web-1', 'pay-1'), all()),
      [
        'Ruleset "shop": rules[0].sources.workloads[1]: workload "pay-1" lies outside the ruleset\'s scope (app=shop) and can never match',
      ],
    ],
  ])('warns about %s', (_, r, expected) => {
    // A warning, not an error: the policy still resolves.
    expect(warningsOf(shop().ruleset('shop', { app: 'shop' }, [r]).build())).toEqual(expected);
  });

  it("does not warn about an extra-scope rule's sources, which are taken as written", () => {
    const p = shop()
      .ruleset('shop', { app: 'shop' }, [
        rule('r', 'allow', anyOf(labels({ app: 'pay' }), workloads('pay-1')), all(), 'all', {
          extraScope: true,
        }),
      ])
      .build();
    expect(warningsOf(p)).toEqual([]);
  });

  it('keeps only the part of a side that lies in the scope', () => {
    // app in {shop, pay} within scope app=shop is app=shop: the rule still works for shop.
    const p = shop()
      .ruleset('shop', { app: 'shop' }, [
        rule('r', 'allow', labels({ app: ['shop', 'pay'] }), all()),
      ])
      .resolve();
    expect(p.warnings).toEqual([]);
    expect(p.rules[0]!.sources.label).toBe('app=shop');
    expect(p.rules[0]!.destinations.label).toBe('app=shop');
  });
});

describe('resolvePolicy: issues are data', () => {
  it('gives each issue its severity, object and path for tools', () => {
    try {
      resolvePolicy(
        estate()
          .rules(rule('r', 'allow', ipLists('nope'), all()))
          .build(),
      );
      expect.unreachable('an unknown IP list must be an error');
    } catch (e) {
      expect((e as PolicyError).issues).toEqual<PolicyIssue[]>([
        {
          severity: 'error',
          kind: 'Ruleset',
          name: 'rs0',
          path: 'rules[0].sources.ipLists[0]',
          message: 'unknown IP list "nope"',
        },
      ]);
    }
  });
});

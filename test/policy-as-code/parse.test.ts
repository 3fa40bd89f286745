/**
 * Policy-as-code: YAML documents to the policy model, and every mistake reported as
 * `file:line: Kind "name": path: what is wrong`, all of them in one error.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Actors, Policy, ServicePort } from '../../src/policy/model.js';
import { loadPolicy } from '../../src/policy-as-code/load.js';
import {
  formatProblem,
  parsePolicyFiles,
  PolicyFilesError,
  type SourceFile,
} from '../../src/policy-as-code/parse.js';

/** Joins lines, so that a test can count them: line n of the file is `lines[n - 1]`. */
const yaml = (...lines: string[]): string => lines.join('\n') + '\n';

/** The formatted problems of a failed parse; fails the test if it parsed. */
function problems(...files: SourceFile[]): string[] {
  try {
    parsePolicyFiles(files);
  } catch (e) {
    if (e instanceof PolicyFilesError)
      return e.problems.filter((p) => p.severity === 'error').map(formatProblem);
    throw e;
  }
  throw new Error('expected the files to be rejected');
}

const file = (path: string, ...lines: string[]): SourceFile => ({ path, text: yaml(...lines) });

// ---- every kind of document -------------------------------------------------------------

describe('parsePolicyFiles: each kind of document', () => {
  it('reads a Workload, with defaults for what it leaves out', () => {
    const { policy } = parsePolicyFiles([
      file(
        'w.yaml',
        'kind: Workload',
        'name: web-1',
        'addresses: [10.0.0.1, "2001:db8::1"]',
        'labels: {role: web, env: prod}',
        'mode: full',
        'managed: false',
        'users: [alice]',
        '---',
        'kind: Workload',
        'name: bare',
        'addresses: [10.0.0.2]',
      ),
    ]);
    expect(policy.workloads).toEqual([
      {
        name: 'web-1',
        addresses: ['10.0.0.1', '2001:db8::1'],
        labels: { role: 'web', env: 'prod' },
        mode: 'full',
        managed: false,
        users: ['alice'],
      },
      // A new workload starts in visibility mode: nothing is blocked until someone decides.
      {
        name: 'bare',
        addresses: ['10.0.0.2'],
        labels: {},
        mode: 'visibility',
        managed: true,
        users: [],
      },
    ]);
  });

  it('reads a LabelGroup, an IpList and a UserGroup', () => {
    const { policy } = parsePolicyFiles([
      file(
        'o.yaml',
        'kind: LabelGroup',
        'name: retail',
        'key: app',
        'values: [shop]',
        '---',
        'kind: LabelGroup',
        'name: customer-facing',
        'key: app',
        'values: [pay]',
        'groups: [retail]',
        '---',
        'kind: IpList',
        'name: office',
        'include: [192.0.2.0/24, 198.51.100.10-198.51.100.20, "2001:db8::/32"]',
        'exclude: [192.0.2.128/25]',
        '---',
        'kind: UserGroup',
        'name: dba',
        'members: [alice, bob]',
      ),
    ]);
    expect(policy.labelGroups).toEqual([
      { name: 'retail', key: 'app', values: ['shop'], groups: [] },
      { name: 'customer-facing', key: 'app', values: ['pay'], groups: ['retail'] },
    ]);
    expect(policy.ipLists).toEqual([
      {
        name: 'office',
        include: ['192.0.2.0/24', '198.51.100.10-198.51.100.20', '2001:db8::/32'],
        exclude: ['192.0.2.128/25'],
      },
    ]);
    expect(policy.userGroups).toEqual([{ name: 'dba', members: ['alice', 'bob'] }]);
  });

  it('reads every spelling of a Service port', () => {
    const { policy } = parsePolicyFiles([
      file(
        's.yaml',
        'kind: Service',
        'name: everything',
        'ports:',
        '  - 443/tcp',
        '  - 8000-8080/udp',
        '  - {proto: tcp, port: 3306, process: mysqld}',
        '  - {proto: udp, port: "5000-5010"}',
        '  - icmp/8',
        '  - icmp',
        '  - {proto: icmpv6, type: 128}',
        '  - {proto: icmpv6}',
      ),
    ]);
    expect(policy.services[0]!.ports).toEqual<ServicePort[]>([
      { proto: 'tcp', ports: { from: 443, to: 443 } },
      { proto: 'udp', ports: { from: 8000, to: 8080 } },
      { proto: 'tcp', ports: { from: 3306, to: 3306 }, process: 'mysqld' },
      { proto: 'udp', ports: { from: 5000, to: 5010 } },
      { proto: 'icmp', icmpType: 8 },
      { proto: 'icmp' },
      { proto: 'icmpv6', icmpType: 128 },
      { proto: 'icmpv6' },
    ]);
  });

  it('reads a Ruleset: scope, every kind of actor, services, actions and defaults', () => {
    const { policy } = parsePolicyFiles([
      file(
        'r.yaml',
        'kind: Workload',
        'name: db-1',
        'addresses: [10.0.0.2]',
        '---',
        'kind: LabelGroup',
        'name: apps',
        'key: app',
        'values: [shop]',
        '---',
        'kind: IpList',
        'name: office',
        'include: [192.0.2.0/24]',
        '---',
        'kind: UserGroup',
        'name: dba',
        'members: [alice]',
        '---',
        'kind: Service',
        'name: pg',
        'ports: [5432/tcp]',
        '---',
        'kind: Ruleset',
        'name: shop',
        'description: The shop ring-fence.',
        'scope: {labels: {env: [prod, dr]}, labelGroups: [apps]}',
        'rules:',
        '  - name: everyone',
        '    sources: all',
        '    destinations: all',
        '    services: all',
        '  - name: mixed',
        '    action: override-deny',
        '    extraScope: true',
        '    description: Everything a side can name.',
        '    sources: {labels: {role: [web, api], loc: dc1}, labelGroups: [apps], ipLists: [office], userGroups: [dba]}',
        '    destinations: {allWorkloads: true, workloads: [db-1]}',
        '    services: [pg, 443/tcp, {proto: udp, port: 53}]',
      ),
    ]);
    const none: Actors = {
      allWorkloads: false,
      selector: null,
      workloads: [],
      ipLists: [],
      userGroups: [],
    };
    expect(policy.rulesets).toEqual([
      {
        name: 'shop',
        description: 'The shop ring-fence.',
        scope: { labels: { env: ['prod', 'dr'] }, labelGroups: ['apps'] },
        rules: [
          // action defaults to allow, extraScope to false
          {
            name: 'everyone',
            action: 'allow',
            extraScope: false,
            sources: { ...none, allWorkloads: true },
            destinations: { ...none, allWorkloads: true },
            services: 'all',
          },
          {
            name: 'mixed',
            action: 'override-deny',
            extraScope: true,
            description: 'Everything a side can name.',
            sources: {
              ...none,
              selector: { labels: { role: ['web', 'api'], loc: ['dc1'] }, labelGroups: ['apps'] },
              ipLists: ['office'],
              userGroups: ['dba'],
            },
            destinations: { ...none, allWorkloads: true, workloads: ['db-1'] },
            services: [
              { kind: 'named', name: 'pg' },
              { kind: 'inline', port: { proto: 'tcp', ports: { from: 443, to: 443 } } },
              { kind: 'inline', port: { proto: 'udp', ports: { from: 53, to: 53 } } },
            ],
          },
        ],
      },
    ]);
  });

  it('reads Settings, outbound by default', () => {
    const { policy } = parsePolicyFiles([
      file(
        'settings.yaml',
        'kind: Settings',
        'alwaysAllowed:',
        '  - {name: dns, addresses: [10.0.0.53], ports: [53/udp]}',
        '  - {name: cp, addresses: [10.0.0.1/32, "2001:db8::1"], direction: both}',
      ),
    ]);
    expect(policy.settings).toEqual({
      alwaysAllowed: [
        {
          name: 'dns',
          addresses: ['10.0.0.53'],
          ports: [{ proto: 'udp', ports: { from: 53, to: 53 } }],
          direction: 'outbound',
        },
        { name: 'cp', addresses: ['10.0.0.1/32', '2001:db8::1'], ports: [], direction: 'both' },
      ],
    });
  });

  it('skips empty documents and comments, and reads documents from several files in order', () => {
    const { policy } = parsePolicyFiles([
      file('a.yaml', '# only a comment', '---', 'kind: UserGroup', 'name: a', '---', '---'),
      file('b.yaml', '---', 'kind: UserGroup', 'name: b', '...'),
      file('empty.yaml'),
    ]);
    expect(policy.userGroups.map((g) => g.name)).toEqual(['a', 'b']);
  });
});

// ---- round trip -------------------------------------------------------------------------

/** Writes a policy back as documents in the long spelling: what an exporter would write. */
function toDocuments(policy: Policy): object[] {
  const port = (p: ServicePort) =>
    'ports' in p
      ? {
          proto: p.proto,
          port: p.ports.from === p.ports.to ? p.ports.from : `${p.ports.from}-${p.ports.to}`,
          ...(p.process ? { process: p.process } : {}),
        }
      : { proto: p.proto, ...(p.icmpType === undefined ? {} : { type: p.icmpType }) };
  const actors = (a: Actors) =>
    a.allWorkloads &&
    !a.selector &&
    !a.workloads.length &&
    !a.ipLists.length &&
    !a.userGroups.length
      ? 'all'
      : {
          allWorkloads: a.allWorkloads,
          ...(a.selector ? { labels: a.selector.labels, labelGroups: a.selector.labelGroups } : {}),
          workloads: a.workloads,
          ipLists: a.ipLists,
          userGroups: a.userGroups,
        };
  return [
    ...policy.workloads.map((w) => ({ kind: 'Workload', ...w })),
    ...policy.labelGroups.map((g) => ({ kind: 'LabelGroup', ...g })),
    ...policy.ipLists.map((l) => ({ kind: 'IpList', ...l })),
    ...policy.userGroups.map((g) => ({ kind: 'UserGroup', ...g })),
    ...policy.services.map((s) => ({ kind: 'Service', name: s.name, ports: s.ports.map(port) })),
    ...policy.rulesets.map((rs) => ({
      kind: 'Ruleset',
      name: rs.name,
      ...(rs.scope ? { scope: rs.scope } : {}),
      ...(rs.description ? { description: rs.description } : {}),
      rules: rs.rules.map((r) => ({
        name: r.name,
        action: r.action,
        extraScope: r.extraScope,
        ...(r.description ? { description: r.description } : {}),
        sources: actors(r.sources),
        destinations: actors(r.destinations),
        services:
          r.services === 'all'
            ? 'all'
            : r.services.map((s) => (s.kind === 'named' ? s.name : port(s.port))),
      })),
    })),
    {
      kind: 'Settings',
      alwaysAllowed: policy.settings.alwaysAllowed.map((a) => ({ ...a, ports: a.ports.map(port) })),
    },
  ];
}

describe('parsePolicyFiles: round trip', () => {
  it('reads back the example estate, written out again, as the same policy', async () => {
    const { policy } = await loadPolicy(['examples/estate']);
    const text = toDocuments(policy)
      .map((d) => stringify(d))
      .join('---\n');
    const again = parsePolicyFiles([{ path: 'exported.yaml', text }]);
    expect(again.policy).toEqual(policy);
    expect(again.resolved.rules.map((r) => r.id)).toEqual(
      (await loadPolicy(['examples/estate'])).resolved.rules.map((r) => r.id),
    );
  });
});

// ---- the example estate -----------------------------------------------------------------

describe('loadPolicy: the example estate', () => {
  it('loads with no errors and no warnings', async () => {
    const loaded = await loadPolicy(['examples/estate']);
    expect(loaded.warnings).toEqual([]);
    expect(loaded.policy.workloads).toHaveLength(12);
    expect(loaded.policy.rulesets.map((r) => r.name)).toEqual([
      'shop',
      'payments',
      'environment-separation',
    ]);
    // Where each object came from, relative to the directory given.
    expect(loaded.origins.get('Ruleset/shop')).toBe('rulesets.yaml');
    expect(loaded.origins.get('Workload/vault-hsm')).toBe('workloads.yaml');
  });
});

// ---- what is wrong, and where -----------------------------------------------------------

describe('parsePolicyFiles: schema errors are located by file, line and path', () => {
  it("reports the issue's example exactly", () => {
    const rulesets = file(
      'rulesets.yaml',
      'kind: Ruleset', //                                 1
      'name: shop-prod', //                               2
      'rules:', //                                        3
      '  - {name: a, sources: all, destinations: all, services: all}',
      '  - {name: b, sources: all, destinations: all, services: all}',
      '  - {name: c, sources: all, destinations: all, services: all}',
      '  - name: d', //                                   7
      '    sources: all',
      '    destinations: all',
      '    services:', //                                 10
      '      - proto: tcp', //                            11
      '        port: 70000', //                           12
    );
    expect(problems(rulesets)).toEqual([
      'rulesets.yaml:12: Ruleset "shop-prod": rules[3].services[0].port: 70000 is not a port (1-65535)',
    ]);
    // And the message of the error a CLI prints says the same.
    expect(() => parsePolicyFiles([rulesets])).toThrow(
      '1 problem in the policy files:\n  rulesets.yaml:12: Ruleset "shop-prod": rules[3].services[0].port: 70000 is not a port (1-65535)',
    );
  });

  /** One Ruleset whose third line holds the rule's services, as `services: VALUE`. */
  const services = (value: string) =>
    problems(
      file(
        'r.yaml',
        'kind: Ruleset',
        'name: r',
        'rules:',
        '  - name: x',
        '    sources: all',
        '    destinations: all',
        `    services: ${value}`,
      ),
    );

  it.each([
    [
      '[70000/tcp]',
      'r.yaml:7: Ruleset "r": rules[0].services[0]: "70000/tcp": 70000 is not a port (1-65535)',
    ],
    ['[0/udp]', 'r.yaml:7: Ruleset "r": rules[0].services[0]: "0/udp": 0 is not a port (1-65535)'],
    [
      '[80-70/tcp]',
      'r.yaml:7: Ruleset "r": rules[0].services[0]: "80-70/tcp": 80-70 is a port range whose first port is after its last',
    ],
    [
      '[{proto: tcp, port: 1-2-3}]',
      'r.yaml:7: Ruleset "r": rules[0].services[0].port: "1-2-3" is not a port range (first-last, each 1-65535)',
    ],
    [
      '[{proto: tcp, port: 80-70000}]',
      'r.yaml:7: Ruleset "r": rules[0].services[0].port: 80-70000 is not a port range (first-last, each 1-65535)',
    ],
    [
      '[{proto: tcp, port: http}]',
      'r.yaml:7: Ruleset "r": rules[0].services[0].port: "http" is not a port (1-65535)',
    ],
    [
      '[{proto: tcp}]',
      'r.yaml:7: Ruleset "r": rules[0].services[0].port: is required (a number or a string)',
    ],
    [
      '[{proto: sctp, port: 9}]',
      'r.yaml:7: Ruleset "r": rules[0].services[0].proto: "sctp" is not a protocol (tcp, udp, icmp, icmpv6)',
    ],
    [
      '[{proto: tcp, port: 22, extra: 1}]',
      'r.yaml:7: Ruleset "r": rules[0].services[0]: unknown field "extra"',
    ],
    [
      '[{proto: icmp, type: 300}]',
      'r.yaml:7: Ruleset "r": rules[0].services[0].type: 300 is not an ICMP type (0-255)',
    ],
    [
      '[icmp/256]',
      'r.yaml:7: Ruleset "r": rules[0].services[0]: "icmp/256": 256 is not an ICMP type (0-255)',
    ],
    [
      '[{proto: tcp, port: 22, process: 5}]',
      'r.yaml:7: Ruleset "r": rules[0].services[0].process: 5 is not a string (quote it: "5")',
    ],
    [
      '["no such thing!"]',
      'r.yaml:7: Ruleset "r": rules[0].services[0]: "no such thing!" is neither a service name nor a port like "443/tcp"',
    ],
    ['[]', 'r.yaml:7: Ruleset "r": rules[0].services: list at least one service, or write "all"'],
    ['any', 'r.yaml:7: Ruleset "r": rules[0].services: "any" is not "all" or a list'],
  ])('services: %s', (value, expected) => {
    expect(services(value)).toEqual([expected]);
  });

  /** A Workload with one field replaced or added, the field on line 3. */
  const workload = (line: string) =>
    problems(file('w.yaml', 'kind: Workload', 'name: w', line, 'addresses: [10.0.0.1]'));

  it.each([
    [
      'mode: fulll',
      'w.yaml:3: Workload "w": mode: "fulll" is not one of idle, visibility, selective, full',
    ],
    ['labells: {role: web}', 'w.yaml:3: Workload "w": unknown field "labells"'],
    [
      'labels: {Role: web}',
      'w.yaml:3: Workload "w": labels.Role: "Role" is not a label key (up to 63 lower-case letters, digits, "_", ".", "-", starting with a letter)',
    ],
    ['labels: {role: ""}', 'w.yaml:3: Workload "w": labels.role: a label value may not be empty'],
    [
      'labels: {role: [web, api]}',
      'w.yaml:3: Workload "w": labels.role: ["web","api"] is not a string',
    ],
    ['managed: "yes"', 'w.yaml:3: Workload "w": managed: "yes" is not true or false'],
    ['users: alice', 'w.yaml:3: Workload "w": users: "alice" is not a list'],
  ])('%s', (line, expected) => {
    expect(workload(line)).toEqual([expected]);
  });

  it.each([
    [
      ['kind: Workload', 'name: w', 'addresses: []'],
      'w.yaml:3: Workload "w": addresses: a workload needs at least one address',
    ],
    [
      ['kind: Workload', 'name: w', 'addresses: [10.0.0.0/24]'],
      'w.yaml:3: Workload "w": addresses[0]: "10.0.0.0/24" is not an IP address',
    ],
    [
      ['kind: Workload', 'name: w', 'addresses: ["10.1"]'],
      'w.yaml:3: Workload "w": addresses[0]: "10.1" is not an IP address (write IPv4 as four decimal numbers a.b.c.d, without leading zeros)',
    ],
    // YAML reads an unquoted 10.1 as a number.
    [
      ['kind: Workload', 'name: w', 'addresses: [10.1]'],
      'w.yaml:3: Workload "w": addresses[0]: 10.1 is not a string (quote it: "10.1")',
    ],
    [
      ['kind: Workload', 'name: w', 'addresses: [10.0.0.1]', 'labels: {version: 2}'],
      'w.yaml:4: Workload "w": labels.version: 2 is not a string (quote it: "2")',
    ],
    [['kind: Workload', 'addresses: [10.0.0.1]'], 'w.yaml:1: name: is required (a string)'],
    [
      ['kind: Workload', 'name: "web 1"', 'addresses: [10.0.0.1]'],
      'w.yaml:2: Workload "web 1": name: "web 1" is not a name (1-128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit)',
    ],
    [
      ['kind: IpList', 'name: l', 'include:', '  - 10.0.0.0/8', '  - 10.0.0.1/8'],
      'w.yaml:5: IpList "l": include[1]: "10.0.0.1/8" has host bits set (write the network address)',
    ],
    [
      ['kind: IpList', 'name: l', 'include: [10.0.0.0/8]', 'exclude: [10.0.0.9-10.0.0.1]'],
      'w.yaml:4: IpList "l": exclude[0]: "10.0.0.9-10.0.0.1" is a range whose first address is after its last',
    ],
    [
      [
        'kind: Ruleset',
        'name: r',
        'rules:',
        '  - name: x',
        '    action: reject',
        '    sources: all',
        '    destinations: all',
        '    services: all',
      ],
      'w.yaml:5: Ruleset "r": rules[0].action: "reject" is not one of allow, deny, override-deny',
    ],
    [
      [
        'kind: Ruleset',
        'name: r',
        'rules:',
        '  - name: x',
        '    sources: everything',
        '    destinations: all',
        '    services: all',
      ],
      'w.yaml:5: Ruleset "r": rules[0].sources: "everything" is not "all" or a mapping',
    ],
    [
      [
        'kind: Ruleset',
        'name: r',
        'rules:',
        '  - name: x',
        '    sources: {}',
        '    destinations: all',
        '    services: all',
      ],
      'w.yaml:5: Ruleset "r": rules[0].sources: names no actors (write "all", or give labels, labelGroups, workloads, ipLists or userGroups)',
    ],
    [
      [
        'kind: Ruleset',
        'name: r',
        'rules:',
        '  - name: x',
        '    sources: all',
        '    destinations:',
        '      lables: {app: shop}',
        '    services: all',
      ],
      'w.yaml:7: Ruleset "r": rules[0].destinations: unknown field "lables"',
    ],
    [
      [
        'kind: Ruleset',
        'name: r',
        'rules:',
        '  - name: x',
        '    sources: all',
        '    services: all',
      ],
      'w.yaml:4: Ruleset "r": rules[0].destinations: is required ("all" or a mapping)',
    ],
    [
      [
        'kind: Ruleset',
        'name: r',
        'rules:',
        '  - name: x',
        '    sources: all',
        '    destinations: all',
        '    services: all',
        '    extraScope: "yes"',
      ],
      'w.yaml:8: Ruleset "r": rules[0].extraScope: "yes" is not true or false',
    ],
    [
      [
        'kind: Settings',
        'alwaysAllowed:',
        '  - {name: dns, addresses: [10.0.0.53], direction: sideways}',
      ],
      'w.yaml:3: Settings "settings": alwaysAllowed[0].direction: "sideways" is not one of inbound, outbound, both',
    ],
  ])('%j', (lines, expected) => {
    expect(problems(file('w.yaml', ...lines))).toEqual([expected]);
  });
});

describe('parsePolicyFiles: documents that are not documents', () => {
  it.each([
    [
      ['kind: Workloads', 'name: w'],
      'x.yaml:1: kind: "Workloads" is not one of Workload, LabelGroup, IpList, UserGroup, Service, Ruleset, Settings',
    ],
    [
      ['name: w', 'addresses: [10.0.0.1]'],
      'x.yaml:1: kind: is required (one of Workload, LabelGroup, IpList, UserGroup, Service, Ruleset, Settings)',
    ],
    [['- kind: Workload', '  name: w'], 'x.yaml:1: a document must be a mapping with a "kind"'],
    [['just some text'], 'x.yaml:1: a document must be a mapping with a "kind"'],
  ])('%j', (lines, expected) => {
    expect(problems(file('x.yaml', ...lines))).toEqual([expected]);
  });

  it.each([
    [
      ['kind: Workload', 'name: w', 'labels: {role: web', 'addresses: [10.0.0.1]'],
      /^x\.yaml:4: YAML: Flow map in block collection must be sufficiently indented/,
    ],
    [['kind: Workload', 'name: w', 'name: v'], /^x\.yaml:3: YAML: Map keys must be unique/],
    // The parser reports this one where the compact mapping starts.
    [
      ['kind: Workload', 'name: w', '  addresses: [10.0.0.1]'],
      /^x\.yaml:2: YAML: Nested mappings are not allowed/,
    ],
    [
      ['kind: Workload', 'name: w', 'addresses:', '\t- 10.0.0.1'],
      /^x\.yaml:4: YAML: Tabs are not allowed/,
    ],
  ])('a YAML syntax error is located: %j', (lines, expected) => {
    const found = problems(file('x.yaml', ...lines));
    expect(found.length).toBeGreaterThan(0);
    expect(found[0]).toMatch(expected);
  });

  it("reports a YAML error and the next document's schema error together", () => {
    expect(
      problems(
        file(
          'x.yaml',
          'kind: UserGroup',
          'name: a',
          'name: b',
          '---',
          'kind: UserGroup',
          'name: c',
          'members: alice',
        ),
      ),
    ).toEqual([
      'x.yaml:3: YAML: Map keys must be unique',
      'x.yaml:7: UserGroup "c": members: "alice" is not a list',
    ]);
  });
});

describe('parsePolicyFiles: problems the engine finds are located too', () => {
  const objects = file(
    'objects.yaml',
    'kind: LabelGroup', //          1
    'name: apps', //                2
    'key: app',
    'groups: [retail]', //          4
    '---',
    'kind: IpList', //              6
    'name: office',
    'include: [192.0.2.0/24]',
  );
  const workloads = file(
    'workloads.yaml',
    'kind: Workload', //            1
    'name: web-1',
    'addresses: [10.0.0.1]',
    '---',
    'kind: Workload', //            5
    'name: db-1',
    'addresses: [10.0.0.2]',
  );
  const rulesets = file(
    'rulesets.yaml',
    'kind: Ruleset', //             1
    'name: shop',
    'scope: {labels: {app: shop}}',
    'rules:',
    '  - name: office-to-web', //   5
    '    sources:',
    '      ipLists: [office, internet]', // 7
    '    destinations: {workloads: [web-1]}',
    '    services: [https]', //     9
  );

  it('names the file and line of each unknown reference, all in one error', () => {
    expect(problems(objects, workloads, rulesets)).toEqual([
      'objects.yaml:4: LabelGroup "apps": groups[0]: unknown label group "retail"',
      'rulesets.yaml:7: Ruleset "shop": rules[0].sources.ipLists[1]: unknown IP list "internet"',
      'rulesets.yaml:9: Ruleset "shop": rules[0].services[0]: unknown service "https"',
    ]);
  });

  it('points a duplicate name at the second definition, in its own file', () => {
    const again = file(
      'more.yaml',
      '# another db-1',
      'kind: Workload',
      'name: db-1',
      'addresses: [10.0.0.3]',
    );
    expect(problems(workloads, again)).toEqual([
      'more.yaml:2: Workload "db-1": is defined more than once',
    ]);
  });

  it('points a shared address at the workload that repeats it', () => {
    const again = file(
      'more.yaml',
      'kind: Workload',
      'name: db-2',
      'addresses:',
      '  - 10.0.0.9',
      '  - 10.0.0.2',
    );
    expect(problems(workloads, again)).toEqual([
      'more.yaml:5: Workload "db-2": addresses[1]: 10.0.0.2 is also an address of workload "db-1"',
    ]);
  });

  it('refuses a second Settings document, naming the first', () => {
    const a = file('a.yaml', 'kind: Settings', 'alwaysAllowed: []');
    const b = file('b.yaml', '', 'kind: Settings', 'alwaysAllowed: []');
    expect(problems(a, b)).toEqual([
      'b.yaml:2: Settings "settings": there may be only one Settings document (another is in a.yaml)',
    ]);
  });

  it('locates warnings as well, without failing', () => {
    const loaded = parsePolicyFiles([
      workloads,
      file(
        'rulesets.yaml',
        'kind: Ruleset',
        'name: shop',
        'scope: {labels: {app: shop}}',
        'rules:',
        '  - name: from-pay',
        '    sources: {labels: {app: pay}}', // 6
        '    destinations: all',
        '    services: all',
      ),
    ]);
    expect(loaded.warnings.map(formatProblem)).toEqual([
      'rulesets.yaml:6: Ruleset "shop": rules[0].sources: "app=pay" lies outside the ruleset\'s scope and can never match',
    ]);
  });

  it('reports schema problems of several files in one error', () => {
    const err = (() => {
      try {
        parsePolicyFiles([
          file('a.yaml', 'kind: Workload', 'name: a', 'addresses: [10.0.0.300]'),
          file('b.yaml', 'kind: UserGroup', 'name: b', 'memebers: [x]'),
          file('c.yaml', 'kind: Service', 'name: c', 'ports: [99999/tcp]'),
        ]);
      } catch (e) {
        return e as PolicyFilesError;
      }
      throw new Error('expected the files to be rejected');
    })();
    expect(err).toBeInstanceOf(PolicyFilesError);
    expect(err.message).toBe(
      [
        '3 problems in the policy files:',
        '  a.yaml:3: Workload "a": addresses[0]: "10.0.0.300" is not an IP address',
        '  b.yaml:3: UserGroup "b": unknown field "memebers"',
        '  c.yaml:3: Service "c": ports[0]: "99999/tcp": 99999 is not a port (1-65535)',
      ].join('\n'),
    );
  });
});

// ---- files and directories --------------------------------------------------------------

describe('loadPolicy: files and directories', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'bulkhead-parse-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('names a path that does not exist', async () => {
    const missing = join(root, 'nope');
    await expect(loadPolicy([missing])).rejects.toThrow(
      `1 problem in the policy files:\n  ${missing}: no such file or directory`,
    );
  });

  it('names a directory without policy files', async () => {
    const empty = join(root, 'empty');
    await mkdir(empty);
    await writeFile(join(empty, 'README.md'), 'not policy');
    await expect(loadPolicy([empty])).rejects.toThrow(`${empty}: holds no .yaml or .yml files`);
  });

  it('reads .yaml and .yml files below a directory, and names them relative to it', async () => {
    const dir = join(root, 'tree');
    await mkdir(join(dir, 'apps'), { recursive: true });
    await writeFile(
      join(dir, 'workloads.yml'),
      yaml('kind: Workload', 'name: w', 'addresses: [10.0.0.1]'),
    );
    await writeFile(
      join(dir, 'apps', 'shop.yaml'),
      yaml(
        'kind: Ruleset',
        'name: shop',
        'rules:',
        '  - {name: r, sources: all, destinations: {ipLists: [nope]}, services: all}',
      ),
    );
    await writeFile(join(dir, 'notes.txt'), 'ignored');
    await expect(loadPolicy([dir])).rejects.toThrow(
      `  ${join('apps', 'shop.yaml')}:4: Ruleset "shop": rules[0].destinations.ipLists[0]: unknown IP list "nope"`,
    );
  });

  it('reads a single file given by its path', async () => {
    const path = join(root, 'one.yaml');
    await writeFile(path, yaml('kind: UserGroup', 'name: g', 'members: [alice]'));
    const loaded = await loadPolicy([path]);
    expect(loaded.policy.userGroups).toEqual([{ name: 'g', members: ['alice'] }]);
    expect(loaded.origins.get('UserGroup/g')).toBe(path);
  });
});

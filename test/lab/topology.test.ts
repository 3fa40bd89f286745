/**
 * The lab topology file: a good file comes back complete (defaults and addresses filled
 * in), and every mistake is reported as `file: path: problem`, all of them at once.
 */
import { describe, expect, it } from 'vitest';
import { LabError, TopologyError } from '../../src/lab/errors.js';
import { DEFAULT_CLIENT_PROCESS, loadTopology, parseTopology } from '../../src/lab/topology.js';

const yaml = (...lines: string[]): string => lines.join('\n') + '\n';

/** The messages of a rejected file; fails the test if it parsed. */
function problems(text: string, file = 'shop.yaml'): string[] {
  try {
    parseTopology(text, file);
  } catch (e) {
    if (e instanceof TopologyError) return e.message.split('\n');
    throw e;
  }
  throw new Error('expected the topology to be rejected');
}

/** A valid file with one line swapped for a bad one. */
const BASE = [
  'name: shop',
  'workloads:',
  '  - name: web',
  '    labels: {role: web, app: shop, env: prod}',
  '    listen: [{port: 443, proto: tcp, process: nginx}]',
  '  - name: api',
  '    labels: {role: api, app: shop, env: prod}',
  '    listen: [{port: 8080, proto: tcp, process: java}]',
  '  - name: db',
  '    labels: {role: db, app: shop, env: prod}',
  '    listen: [{port: 3306, proto: tcp, process: mysqld}, {port: 514, proto: udp, process: rsyslogd}]',
  '  - name: batch',
  'traffic:',
  '  - {from: web, to: api, port: 8080, proto: tcp}',
  '  - {from: api, to: db, port: 3306, proto: tcp, process: php-fpm}',
];
function withLine(index: number, line: string): string {
  const lines = [...BASE];
  lines[index] = line;
  return yaml(...lines);
}

describe('parseTopology: a good file', () => {
  it('fills in every default: protocol, mode, agent, addresses from 198.18.0.0/15, client names', () => {
    const t = parseTopology(
      yaml(
        'name: shop',
        'workloads:',
        '  - name: web',
        '    labels: {role: web}',
        '    listen: [{port: 443, process: nginx}]',
        '  - name: db',
        '    listen: [{port: 3306, process: mysqld}]',
        '  - name: batch',
        'traffic:',
        '  - {from: web, to: db, port: 3306}',
        '  - {from: batch, to: db, port: 3306}',
      ),
      'shop.yaml',
    );
    expect(t.network).toEqual({
      ipv4: '198.18.0.0/15',
      ipv6: '2001:db8::/64',
      bridge: ['198.18.0.1/15'],
    });
    expect(t.workloads).toEqual([
      {
        name: 'web',
        labels: { role: 'web' },
        addresses: ['198.18.0.10'],
        mode: 'visibility',
        agent: true,
        listen: [{ port: 443, proto: 'tcp', process: 'nginx' }],
      },
      {
        name: 'db',
        labels: {},
        addresses: ['198.18.0.11'],
        mode: 'visibility',
        agent: true,
        listen: [{ port: 3306, proto: 'tcp', process: 'mysqld' }],
      },
      {
        name: 'batch',
        labels: {},
        addresses: ['198.18.0.12'],
        mode: 'visibility',
        agent: true,
        listen: [],
      },
    ]);
    // The application on the source makes its calls; a host serving nothing uses a generic client.
    expect(t.traffic).toEqual([
      { from: 'web', to: 'db', port: 3306, proto: 'tcp', process: 'nginx' },
      { from: 'batch', to: 'db', port: 3306, proto: 'tcp', process: DEFAULT_CLIENT_PROCESS },
    ]);
  });

  it('keeps the addresses, network, mode and agent the file gives, and assigns around them', () => {
    const t = parseTopology(
      yaml(
        'name: lab',
        'network: {ipv4: 198.19.7.0/24}',
        'workloads:',
        '  - {name: a, addresses: [198.19.7.11]}',
        '  - {name: b}',
        '  - {name: c, addresses: [198.19.7.10, "2001:db8::c"], mode: full}',
        '  - {name: hsm, agent: false}',
      ),
      'lab.yaml',
    );
    expect(t.workloads.map((w) => [w.name, w.addresses, w.mode, w.agent])).toEqual([
      ['a', ['198.19.7.11'], 'visibility', true],
      ['b', ['198.19.7.12'], 'visibility', true],
      ['c', ['198.19.7.10', '2001:db8::c'], 'full', true],
      ['hsm', ['198.19.7.13'], 'visibility', false],
    ]);
    // An IPv6 workload puts the bridge on the IPv6 network too.
    expect(t.network.bridge).toEqual(['198.19.7.1/24', '2001:db8::1/64']);
  });

  it('reads examples/lab/shop.yaml: two apps, two environments, TCP and UDP traffic', async () => {
    const t = await loadTopology('examples/lab/shop.yaml');
    expect(t.workloads.length).toBeGreaterThanOrEqual(12);
    const values = (key: string) => new Set(t.workloads.map((w) => w.labels[key]));
    expect([...values('app')]).toEqual(expect.arrayContaining(['shop', 'payments']));
    expect([...values('env')]).toEqual(expect.arrayContaining(['prod', 'staging']));
    expect([...values('role')]).toEqual(expect.arrayContaining(['web', 'api', 'db']));
    expect(new Set(t.traffic.map((l) => l.proto))).toEqual(new Set(['tcp', 'udp']));
    expect(t.workloads.every((w) => w.addresses.every((a) => a.startsWith('198.18.')))).toBe(true);
  });
});

describe('parseTopology: every mistake names the field and the problem', () => {
  it.each([
    [
      'a port out of range',
      withLine(
        10,
        '    listen: [{port: 3306, proto: tcp, process: mysqld}, {port: 70000, proto: udp, process: rsyslogd}]',
      ),
      'shop.yaml: workloads[2].listen[1].port: 70000 is not a port (1-65535)',
    ],
    [
      'a port that is not a number',
      withLine(4, '    listen: [{port: "443", proto: tcp, process: nginx}]'),
      'shop.yaml: workloads[0].listen[0].port: "443" is not a number',
    ],
    [
      'an unknown protocol',
      withLine(4, '    listen: [{port: 443, proto: sctp, process: nginx}]'),
      'shop.yaml: workloads[0].listen[0].proto: "sctp" is not one of tcp, udp',
    ],
    [
      'a process name the kernel would cut',
      withLine(4, '    listen: [{port: 443, process: nginx-worker-process}]'),
      'shop.yaml: workloads[0].listen[0].process: "nginx-worker-process" is not a process name (1-15 letters, digits, ".", "_", "+" or "-", starting with a letter or digit: the kernel keeps 15 characters)',
    ],
    [
      'a process name that is a path',
      withLine(4, '    listen: [{port: 443, process: ../nginx}]'),
      'shop.yaml: workloads[0].listen[0].process: "../nginx" is not a process name (1-15 letters, digits, ".", "_", "+" or "-", starting with a letter or digit: the kernel keeps 15 characters)',
    ],
    [
      'a missing process name',
      withLine(4, '    listen: [{port: 443}]'),
      'shop.yaml: workloads[0].listen[0].process: is required (a string)',
    ],
    [
      'a workload name that is no host name',
      withLine(2, '  - name: web_1'),
      'shop.yaml: workloads[0].name: "web_1" is not a workload name (a host name: 1-63 letters, digits or "-", not starting or ending with "-")',
    ],
    [
      'a label key in capitals',
      withLine(3, '    labels: {Role: web}'),
      'shop.yaml: workloads[0].labels.Role: "Role" is not a label key (up to 63 lower-case letters, digits, "_", ".", "-", starting with a letter)',
    ],
    [
      'a misspelt field',
      withLine(4, '    lisen: [{port: 443, process: nginx}]'),
      'shop.yaml: workloads[0]: unknown field "lisen"',
    ],
    [
      'an unknown enforcement mode',
      withLine(3, '    mode: enforce'),
      'shop.yaml: workloads[0].mode: "enforce" is not one of idle, visibility, selective, full',
    ],
    ['a missing lab name', withLine(0, '# no name'), 'shop.yaml: name: is required (a string)'],
    [
      'an address that is not one',
      withLine(3, '    addresses: [198.18.300.1]'),
      'shop.yaml: workloads[0].addresses[0]: "198.18.300.1" is not an IP address',
    ],
    [
      'an address outside the lab network',
      withLine(3, '    addresses: [10.0.0.5]'),
      'shop.yaml: workloads[0].addresses[0]: 10.0.0.5 is outside the lab network 198.18.0.0/15',
    ],
    [
      "the bridge's address",
      withLine(3, '    addresses: [198.18.0.1]'),
      "shop.yaml: workloads[0].addresses[0]: 198.18.0.1 is the lab bridge's address (the control plane's side)",
    ],
    [
      'a network outside the range reserved for testing',
      withLine(1, 'network: {ipv4: 10.0.0.0/8}\nworkloads:'),
      'shop.yaml: network.ipv4: 10.0.0.0/8 is outside the lab range 198.18.0.0/15 (the lab uses only addresses reserved for testing)',
    ],
    [
      'a traffic line from an unknown workload',
      withLine(13, '  - {from: wbe, to: api, port: 8080, proto: tcp}'),
      'shop.yaml: traffic[0].from: "wbe" is not a workload in this file',
    ],
    [
      'a traffic line to an unknown workload',
      withLine(14, '  - {from: api, to: database, port: 3306}'),
      'shop.yaml: traffic[1].to: "database" is not a workload in this file',
    ],
    [
      'a traffic line to a port nobody serves',
      withLine(14, '  - {from: api, to: db, port: 3307}'),
      'shop.yaml: traffic[1].port: db does not listen on 3307/tcp (it listens on 3306/tcp, 514/udp)',
    ],
    [
      'a traffic line to the wrong protocol',
      withLine(14, '  - {from: api, to: db, port: 514, proto: tcp}'),
      'shop.yaml: traffic[1].port: db does not listen on 514/tcp (it listens on 3306/tcp, 514/udp)',
    ],
    [
      'a traffic line to itself',
      withLine(14, '  - {from: db, to: db, port: 3306}'),
      'shop.yaml: traffic[1].to: "db" is its source: traffic to itself never leaves it',
    ],
    [
      'a duplicate workload name',
      withLine(11, '  - name: web'),
      'shop.yaml: workloads[3].name: "web" is also workloads[0]',
    ],
    [
      'two services on one port',
      withLine(10, '    listen: [{port: 3306, process: mysqld}, {port: 3306, process: mariadbd}]'),
      'shop.yaml: workloads[2].listen[1]: 3306/tcp is also listen[0] (one process per port)',
    ],
    [
      'a YAML syntax error',
      withLine(3, '    labels: {role: web'),
      expect.stringMatching(/^shop\.yaml: line \d+: YAML: /) as unknown as string,
    ],
  ])('%s', (_what, text, message) => {
    expect(problems(text)).toEqual([message]);
  });

  it('reports duplicate addresses by owner', () => {
    expect(
      problems(
        yaml(
          'name: lab',
          'workloads:',
          '  - {name: a, addresses: [198.18.1.1]}',
          '  - {name: b, addresses: ["198.18.1.1"]}',
        ),
      ),
    ).toEqual(['shop.yaml: workloads[1].addresses[0]: 198.18.1.1 is also an address of a']);
  });

  it('reports traffic between workloads with no address family in common', () => {
    expect(
      problems(
        yaml(
          'name: lab',
          'workloads:',
          '  - {name: a, addresses: ["2001:db8::a"]}',
          '  - {name: b, listen: [{port: 80, process: httpd}]}',
          'traffic: [{from: a, to: b, port: 80}]',
        ),
      ),
    ).toEqual(['shop.yaml: traffic[0]: a and b have no address family in common']);
  });

  it('reports every problem at once, and keeps them for a program to read', () => {
    const text = yaml(
      'name: lab',
      'workloads:',
      '  - {name: a, listen: [{port: 0, process: x}]}',
      '  - {name: a, listen: [{port: 80, process: httpd}]}',
      'traffic: [{from: a, to: nobody, port: 80}]',
    );
    expect(problems(text, 'lab.yaml')).toEqual([
      'lab.yaml: workloads[0].listen[0].port: 0 is not a port (1-65535)',
    ]);
    // Once the shape is right, the cross-file problems come together.
    const shaped = text.replace('port: 0', 'port: 22');
    expect(problems(shaped, 'lab.yaml')).toEqual([
      'lab.yaml: workloads[1].name: "a" is also workloads[0]',
      'lab.yaml: traffic[0].to: "nobody" is not a workload in this file',
    ]);
    let error: unknown = null;
    try {
      parseTopology(shaped, 'lab.yaml');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TopologyError);
    expect((error as TopologyError).problems.map((p) => p.path)).toEqual([
      'workloads[1].name',
      'traffic[0].to',
    ]);
  });

  it('says when the file is missing', async () => {
    const missing = loadTopology('no/such/lab.yaml');
    await expect(missing).rejects.toBeInstanceOf(LabError);
    await expect(missing).rejects.toThrow('no/such/lab.yaml: no such file');
  });
});

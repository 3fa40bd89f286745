/**
 * The demo estate: a small company's data centre as a security team would find it on day
 * one. Four business applications (a web shop, payments, a CRM, HR) in prod, staging and
 * dev; shared platform services (DNS and LDAP, monitoring, bastions, CI runners); an HSM
 * appliance nobody can install an agent on; and the networks around it (corporate users,
 * partners, the internet, a legacy subnet in no IP list).
 *
 * The policy is what a team halfway through a rollout would have written: each application
 * ring-fenced with its tier rules, shared services open to everyone, production guarded
 * from the other environments. Prod is mostly enforcing, staging selective, dev only
 * watched, and the CRM still in visibility, so the map shows every decision.
 *
 * Pure: no I/O, no clock, no randomness. Addresses are private (10/8) or from the
 * documentation ranges (partners); internet clients are drawn by the traffic generator.
 */
import type { EnforcementMode } from '../policy/model.js';
import type { POLICY_KINDS } from '../policy-as-code/schema.js';

export type DemoEnv = 'prod' | 'staging' | 'dev';
export const DEMO_ENVS: readonly DemoEnv[] = ['prod', 'staging', 'dev'];

/** A workload as the workloads API writes it. */
export interface DemoWorkload {
  readonly name: string;
  readonly addresses: string[];
  readonly labels: Record<string, string>;
  readonly mode: EnforcementMode;
  readonly managed: boolean;
  readonly users: string[];
}

/** A draft document as the policy API stores it: the policy-as-code document, with its kind and name. */
export interface DemoDocument {
  readonly kind: (typeof POLICY_KINDS)[number];
  readonly name: string;
  readonly spec: Record<string, unknown>;
}

/** What a tier serves: the port its clients call and the process behind it. */
export interface Serving {
  readonly proto: 'tcp' | 'udp';
  readonly port: number;
  readonly process: string;
}

interface TierSpec {
  readonly role: string;
  readonly serves: Serving;
  /** Instances per environment. */
  readonly count: Readonly<Record<DemoEnv, number>>;
}

interface AppSpec {
  readonly app: string;
  readonly tiers: readonly TierSpec[];
  readonly modes: Readonly<Record<DemoEnv, EnforcementMode>>;
}

const tcp = (port: number, process: string): Serving => ({ proto: 'tcp', port, process });
const per = (prod: number, staging = 1, dev = 1) => ({ prod, staging, dev });

/** The business applications: tiers, sizes and how far each is in its rollout. */
export const BUSINESS_APPS: readonly AppSpec[] = [
  {
    app: 'shop',
    modes: { prod: 'full', staging: 'selective', dev: 'visibility' },
    tiers: [
      { role: 'web', serves: tcp(443, 'nginx'), count: per(3) },
      { role: 'api', serves: tcp(8080, 'java'), count: per(3) },
      { role: 'db', serves: tcp(3306, 'mysqld'), count: per(2) },
      { role: 'cache', serves: tcp(6379, 'redis-server'), count: per(2) },
      { role: 'queue', serves: tcp(5672, 'beam.smp'), count: per(2) },
    ],
  },
  {
    app: 'payments',
    modes: { prod: 'full', staging: 'selective', dev: 'visibility' },
    tiers: [
      { role: 'api', serves: tcp(8443, 'java'), count: per(3) },
      { role: 'db', serves: tcp(5432, 'postgres'), count: per(2) },
      { role: 'queue', serves: tcp(9092, 'java'), count: per(2) },
    ],
  },
  {
    app: 'crm',
    // Being onboarded: watched everywhere, nothing enforced yet.
    modes: { prod: 'visibility', staging: 'visibility', dev: 'visibility' },
    tiers: [
      { role: 'web', serves: tcp(443, 'nginx'), count: per(2) },
      { role: 'api', serves: tcp(3000, 'node'), count: per(2) },
      { role: 'db', serves: tcp(5432, 'postgres'), count: per(1) },
    ],
  },
  {
    app: 'hr',
    // Prod enforces the rules written so far; dev agents are installed but idle.
    modes: { prod: 'selective', staging: 'visibility', dev: 'idle' },
    tiers: [
      { role: 'web', serves: tcp(443, 'httpd'), count: per(2) },
      { role: 'api', serves: tcp(8000, 'python3'), count: per(2) },
      { role: 'db', serves: tcp(3306, 'mysqld'), count: per(1) },
    ],
  },
];

/** Shared services, each in one environment. */
interface PlatformSpec {
  readonly app: string;
  readonly env: DemoEnv;
  readonly role: string;
  readonly serves: Serving;
  readonly count: number;
  readonly mode: EnforcementMode;
  readonly managed?: false;
  readonly subnet: number;
}

export const PLATFORM: readonly PlatformSpec[] = [
  {
    app: 'directory',
    env: 'prod',
    role: 'dns',
    serves: { proto: 'udp', port: 53, process: 'unbound' },
    count: 2,
    mode: 'full',
    subnet: 1,
  },
  {
    app: 'directory',
    env: 'prod',
    role: 'ldap',
    serves: tcp(636, 'slapd'),
    count: 2,
    mode: 'full',
    subnet: 2,
  },
  {
    app: 'monitoring',
    env: 'prod',
    role: 'collector',
    serves: tcp(9090, 'prometheus'),
    count: 2,
    mode: 'full',
    subnet: 3,
  },
  {
    app: 'monitoring',
    env: 'prod',
    role: 'web',
    serves: tcp(3000, 'grafana'),
    count: 1,
    mode: 'full',
    subnet: 3,
  },
  {
    app: 'ops',
    env: 'prod',
    role: 'bastion',
    serves: tcp(22, 'sshd'),
    count: 2,
    mode: 'full',
    subnet: 4,
  },
  {
    app: 'ci',
    env: 'dev',
    role: 'runner',
    serves: tcp(22, 'sshd'),
    count: 3,
    mode: 'visibility',
    subnet: 5,
  },
  {
    // A hardware security module: rules name it by labels, but it enforces nothing.
    app: 'payments',
    env: 'prod',
    role: 'hsm',
    serves: tcp(1792, 'hsm'),
    count: 1,
    mode: 'visibility',
    managed: false,
    subnet: 6,
  },
];

/** Every workload serves the node exporter the collectors scrape. */
export const NODE_EXPORTER: Serving = tcp(9100, 'node_exporter');
export const SSH: Serving = tcp(22, 'sshd');

/** The networks outside the estate. */
export const NETWORKS = {
  corporate: '10.50.0.0/16',
  partners: ['198.51.100.0/24', '203.0.113.0/24'],
  /** A legacy batch network nobody put in an IP list: shown as its subnet. */
  legacy: '10.40.0.0/16',
  privateRanges: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'],
} as const;

const ENV_OCTET: Readonly<Record<DemoEnv, number>> = { prod: 10, staging: 20, dev: 30 };
const LOCATIONS: Readonly<Record<DemoEnv, readonly string[]>> = {
  prod: ['dc1', 'dc2'],
  staging: ['dc2'],
  dev: ['cloud-eu'],
};

/** One workload of the demo, with what it serves (the traffic generator's view). */
export interface DemoHost extends DemoWorkload {
  readonly app: string;
  readonly env: DemoEnv;
  readonly role: string;
  readonly serves: Serving;
}

const hostName = (app: string, env: DemoEnv, role: string, n: number) =>
  `${app}-${env}-${role}-${n}`;

/** Every workload of the demo estate, in a stable order. */
export function demoHosts(): DemoHost[] {
  const hosts: DemoHost[] = [];
  BUSINESS_APPS.forEach((spec, appIndex) => {
    for (const env of DEMO_ENVS) {
      spec.tiers.forEach((tier, tierIndex) => {
        for (let n = 1; n <= tier.count[env]; n++) {
          const locs = LOCATIONS[env];
          hosts.push({
            name: hostName(spec.app, env, tier.role, n),
            addresses: [`10.${ENV_OCTET[env]}.${(appIndex + 1) * 10 + tierIndex}.${10 + n}`],
            labels: {
              app: spec.app,
              env,
              role: tier.role,
              loc: locs[(n - 1) % locs.length]!,
            },
            mode: spec.modes[env],
            managed: true,
            users: [],
            app: spec.app,
            env,
            role: tier.role,
            serves: tier.serves,
          });
        }
      });
    }
  });
  for (const p of PLATFORM) {
    for (let n = 1; n <= p.count; n++) {
      const locs = LOCATIONS[p.env];
      hosts.push({
        name: hostName(p.app, p.env, p.role, n),
        addresses: [`10.${p.env === 'dev' ? 31 : 0}.${p.subnet}.${(p.role.length % 5) * 10 + n}`],
        labels: { app: p.app, env: p.env, role: p.role, loc: locs[(n - 1) % locs.length]! },
        mode: p.mode,
        managed: p.managed ?? true,
        users: p.role === 'bastion' ? ['alice', 'bob'] : [],
        app: p.app,
        env: p.env,
        role: p.role,
        serves: p.serves,
      });
    }
  }
  return hosts;
}

/** A host as the workloads API takes it (without the generator's extras). */
export function workloadOf(h: DemoHost): DemoWorkload {
  return {
    name: h.name,
    addresses: h.addresses,
    labels: h.labels,
    mode: h.mode,
    managed: h.managed,
    users: h.users,
  };
}

const doc = (kind: DemoDocument['kind'], name: string, body: Record<string, unknown>) => ({
  kind,
  name,
  spec: { kind, name, ...body },
});

const rule = (
  name: string,
  sources: unknown,
  destinations: unknown,
  services: unknown,
  extra: Record<string, unknown> = {},
) => ({ name, sources, destinations, services, ...extra });

const labels = (l: Record<string, string | string[]>) => ({ labels: l });

/** The draft the demo provisions: every document the policy API would store. */
export function demoDocuments(): DemoDocument[] {
  const docs: DemoDocument[] = [
    doc('IpList', 'corporate-users', {
      include: [NETWORKS.corporate],
      description: 'Office and VPN users.',
    }),
    doc('IpList', 'partners', {
      include: [...NETWORKS.partners],
      description: 'Card networks and the payroll provider.',
    }),
    doc('IpList', 'internet', {
      include: ['0.0.0.0/0'],
      exclude: [...NETWORKS.privateRanges],
      description: 'Everything that is not a private address.',
    }),
    doc('LabelGroup', 'business-apps', {
      key: 'app',
      values: BUSINESS_APPS.map((a) => a.app),
    }),
    doc('Service', 'https', { ports: ['443/tcp'] }),
    doc('Service', 'mysql', { ports: [{ proto: 'tcp', port: 3306, process: 'mysqld' }] }),
    doc('Service', 'postgres', { ports: ['5432/tcp'] }),
    doc('Service', 'ssh', { ports: ['22/tcp'] }),
    doc('Service', 'dns', { ports: ['53/udp', '53/tcp'] }),
    doc('Service', 'ldaps', { ports: ['636/tcp'] }),
    doc('Service', 'node-exporter', { ports: ['9100/tcp'] }),
    doc('Ruleset', 'shop', {
      description: 'The web shop: customers reach the web tier, each tier only the next.',
      scope: labels({ app: 'shop' }),
      rules: [
        rule(
          'customers-to-web',
          { ipLists: ['internet', 'corporate-users'] },
          labels({ role: 'web' }),
          ['https'],
        ),
        rule('web-to-api', labels({ role: 'web' }), labels({ role: 'api' }), ['8080/tcp']),
        rule('api-to-db', labels({ role: 'api' }), labels({ role: 'db' }), ['mysql']),
        rule('api-to-cache', labels({ role: 'api' }), labels({ role: 'cache' }), ['6379/tcp']),
        rule('api-to-queue', labels({ role: 'api' }), labels({ role: 'queue' }), ['5672/tcp']),
      ],
    }),
    doc('Ruleset', 'payments', {
      description: 'Payments: called by the shop, talks to the HSM and the card networks.',
      scope: labels({ app: 'payments' }),
      rules: [
        rule(
          'shop-api-to-payments-api',
          labels({ app: 'shop', role: 'api' }),
          labels({ role: 'api' }),
          ['8443/tcp'],
          { extraScope: true },
        ),
        rule('api-to-db', labels({ role: 'api' }), labels({ role: 'db' }), ['postgres']),
        rule('api-to-queue', labels({ role: 'api' }), labels({ role: 'queue' }), ['9092/tcp']),
        rule('api-to-hsm', labels({ role: 'api' }), labels({ role: 'hsm' }), ['1792/tcp']),
        rule('api-to-card-networks', labels({ role: 'api' }), { ipLists: ['partners'] }, ['https']),
      ],
    }),
    doc('Ruleset', 'crm', {
      scope: labels({ app: 'crm' }),
      rules: [
        rule('staff-to-web', { ipLists: ['corporate-users'] }, labels({ role: 'web' }), ['https']),
        rule('web-to-api', labels({ role: 'web' }), labels({ role: 'api' }), ['3000/tcp']),
        rule('api-to-db', labels({ role: 'api' }), labels({ role: 'db' }), ['postgres']),
      ],
    }),
    doc('Ruleset', 'hr', {
      scope: labels({ app: 'hr' }),
      rules: [
        rule('staff-to-web', { ipLists: ['corporate-users'] }, labels({ role: 'web' }), ['https']),
        rule('web-to-api', labels({ role: 'web' }), labels({ role: 'api' }), ['8000/tcp']),
        rule('api-to-db', labels({ role: 'api' }), labels({ role: 'db' }), ['mysql']),
      ],
    }),
    doc('Ruleset', 'platform', {
      description: 'Shared services every workload uses.',
      rules: [
        rule('dns', 'all', labels({ app: 'directory', role: 'dns' }), ['dns']),
        rule(
          'ldap-logins',
          labels({ role: ['web', 'api'] }),
          labels({ app: 'directory', role: 'ldap' }),
          ['ldaps'],
        ),
        rule('scrape-metrics', labels({ app: 'monitoring', role: 'collector' }), 'all', [
          'node-exporter',
        ]),
        rule(
          'staff-to-dashboards',
          { ipLists: ['corporate-users'] },
          labels({ app: 'monitoring', role: 'web' }),
          ['3000/tcp'],
        ),
        rule(
          'admins-to-bastions',
          { ipLists: ['corporate-users'] },
          labels({ app: 'ops', role: 'bastion' }),
          ['ssh'],
        ),
        rule('bastions-to-all', labels({ app: 'ops', role: 'bastion' }), 'all', ['ssh']),
        rule('ci-deploys-dev', labels({ app: 'ci', role: 'runner' }), labels({ env: 'dev' }), [
          'ssh',
        ]),
        rule(
          'ci-fetches-packages',
          labels({ app: 'ci', role: 'runner' }),
          { ipLists: ['internet'] },
          ['https'],
        ),
      ],
    }),
    doc('Ruleset', 'guard-rails', {
      description: 'Whatever an application ruleset says.',
      rules: [
        rule(
          'no-nonprod-to-prod-apps',
          labels({ env: ['staging', 'dev'] }),
          { labels: { env: 'prod' }, labelGroups: ['business-apps'] },
          'all',
          { action: 'override-deny' },
        ),
        rule(
          'no-remote-admin-from-internet',
          { ipLists: ['internet'] },
          'all',
          ['ssh', '3389/tcp'],
          {
            action: 'override-deny',
          },
        ),
        rule('no-telnet', 'all', 'all', ['23/tcp'], { action: 'deny' }),
      ],
    }),
  ];
  return docs;
}

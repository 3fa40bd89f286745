/**
 * A deterministic synthetic estate for the benchmarks: workloads labelled the way a real
 * data center is (a few big applications and a long tail of small ones, each over three
 * environments, four tiers and two locations), and the rulesets a segmentation project ends
 * up with (tier-to-tier rules per application and environment, cross-application
 * dependencies written as extra-scope rules, estate-wide deny and override-deny rules, IP
 * lists for the corporate network, the internet and partners).
 *
 * Everything is drawn from one seeded generator, so a size always builds the same estate.
 */
import { mulberry32 } from '../src/random.js';
import type {
  Actors,
  IpList,
  LabelGroup,
  LabelSelector,
  Policy,
  Rule,
  RuleAction,
  Service,
  ServicePort,
  ServiceRef,
  Workload,
  EnforcementMode,
} from '../src/policy/model.js';

export interface EstateOptions {
  readonly workloads: number;
  /** Total number of rules over all rulesets (at least the per-application tier rules). */
  readonly rules: number;
  readonly seed?: number;
}

export interface EstateStats {
  readonly workloads: number;
  readonly rules: number;
  readonly rulesets: number;
  readonly apps: number;
  /** Workloads of the largest and the median application. */
  readonly largestApp: number;
  readonly medianApp: number;
  readonly ipv6Addresses: number;
  readonly modes: Readonly<Record<EnforcementMode | 'unmanaged', number>>;
}

export interface Estate {
  readonly policy: Policy;
  readonly stats: EstateStats;
}

/** The estate's random draws: seeded, so the same seed gives the same estate. */
export const rng = mulberry32;

/** Draws an index from cumulative weights. */
function picker<T>(items: readonly T[], weights: readonly number[], random: () => number): () => T {
  const cumulative: number[] = [];
  let sum = 0;
  for (const w of weights) cumulative.push((sum += w));
  return () => {
    const x = random() * sum;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return items[lo]!;
  };
}

const APP_WORDS = [
  'payments',
  'ledger',
  'crm',
  'billing',
  'orders',
  'catalog',
  'search',
  'checkout',
  'identity',
  'hr',
  'payroll',
  'inventory',
  'shipping',
  'pricing',
  'claims',
  'risk',
  'fraud',
  'reporting',
  'analytics',
  'email',
  'portal',
  'mobile-api',
  'loyalty',
  'cards',
  'loans',
  'trading',
  'settlement',
  'kyc',
  'docs',
  'wiki',
  'ticketing',
  'erp',
  'warehouse',
  'booking',
  'notifications',
  'media',
  'backup',
  'archive',
  'gis',
  'telemetry',
];
export const ENVS = ['prod', 'staging', 'dev'] as const;
const ENV_WEIGHTS = [0.5, 0.25, 0.25];
export const ROLES = ['web', 'api', 'db', 'cache'] as const;
const ROLE_WEIGHTS = [0.3, 0.4, 0.15, 0.15];
export const LOCS = ['dc1', 'dc2'] as const;
const LOC_WEIGHTS = [0.6, 0.4];
const APP_COUNT = 200;
/** Application sizes follow a Zipf law: the largest is ~100 times the smallest. */
const ZIPF_EXPONENT = 0.9;
/** Shared services every application uses; they stay small and are consumed estate-wide. */
const PLATFORM_APPS = ['monitoring', 'bastion'] as const;

function port(proto: 'tcp' | 'udp', from: number, to = from): ServicePort {
  return { proto, ports: { from, to } };
}

export const SERVICES: readonly Service[] = [
  { name: 'https', ports: [port('tcp', 443)] },
  { name: 'http', ports: [port('tcp', 80)] },
  { name: 'http-alt', ports: [port('tcp', 8080)] },
  { name: 'grpc', ports: [port('tcp', 9090)] },
  { name: 'postgres', ports: [port('tcp', 5432)] },
  { name: 'mysql', ports: [{ proto: 'tcp', ports: { from: 3306, to: 3306 }, process: 'mysqld' }] },
  { name: 'mongodb', ports: [port('tcp', 27017, 27019)] },
  { name: 'redis', ports: [port('tcp', 6379)] },
  { name: 'memcached', ports: [port('tcp', 11211), port('udp', 11211)] },
  { name: 'kafka', ports: [port('tcp', 9092), port('tcp', 9093)] },
  { name: 'amqp', ports: [port('tcp', 5671, 5672)] },
  { name: 'elasticsearch', ports: [port('tcp', 9200, 9300)] },
  { name: 'ldap', ports: [port('tcp', 389), port('tcp', 636)] },
  { name: 'dns', ports: [port('udp', 53), port('tcp', 53)] },
  { name: 'ntp', ports: [port('udp', 123)] },
  { name: 'ssh', ports: [port('tcp', 22)] },
  { name: 'rdp', ports: [port('tcp', 3389)] },
  { name: 'smb', ports: [port('tcp', 445), port('tcp', 139)] },
  { name: 'telnet', ports: [port('tcp', 23)] },
  { name: 'smtp', ports: [port('tcp', 25)] },
  { name: 'node-exporter', ports: [port('tcp', 9100)] },
  {
    name: 'ping',
    ports: [
      { proto: 'icmp', icmpType: 8 },
      { proto: 'icmpv6', icmpType: 128 },
    ],
  },
];

/** Which services each tier pair talks over, by application flavour. */
const DB_SERVICES = ['postgres', 'mysql', 'mongodb'];
const APP_SERVICES = [
  'http-alt',
  'grpc',
  'https',
  'kafka',
  'amqp',
  'elasticsearch',
  'redis',
  'memcached',
  'ldap',
];

function named(name: string): ServiceRef {
  return { kind: 'named', name };
}

function selector(
  labels: Record<string, readonly string[]>,
  labelGroups: readonly string[] = [],
): LabelSelector {
  return { labels, labelGroups };
}

function actors(partial: Partial<Actors>): Actors {
  return {
    allWorkloads: false,
    selector: null,
    workloads: [],
    ipLists: [],
    userGroups: [],
    ...partial,
  };
}

function rule(
  name: string,
  action: RuleAction,
  sources: Actors,
  destinations: Actors,
  services: readonly ServiceRef[] | 'all',
  extraScope = false,
): Rule {
  return { name, action, sources, destinations, services, extraScope };
}

function appNames(): string[] {
  const names: string[] = [];
  for (let i = 0; names.length < APP_COUNT - PLATFORM_APPS.length; i++) {
    const word = APP_WORDS[i % APP_WORDS.length]!;
    const round = Math.floor(i / APP_WORDS.length);
    names.push(round === 0 ? word : `${word}-${round + 1}`);
  }
  return names;
}

function ipv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function ipv6(n: number): string {
  return `fd00:b0:${((n >>> 16) & 0xffff).toString(16)}::${(n & 0xffff).toString(16)}`;
}

const IP_LISTS: readonly IpList[] = [
  {
    name: 'corporate',
    include: [
      '172.16.0.0/16',
      '172.20.0.0/14',
      '192.168.0.0/17',
      '192.168.200.0/24',
      '2001:db8:c0::/48',
    ],
    exclude: ['172.16.99.0/24', '192.168.0.0/24'],
  },
  {
    name: 'internet',
    include: ['0.0.0.0/0', '::/0'],
    exclude: [
      '10.0.0.0/8',
      '172.16.0.0/12',
      '192.168.0.0/16',
      '127.0.0.0/8',
      'fc00::/7',
      'fe80::/10',
    ],
  },
  {
    name: 'partners',
    include: [
      ...Array.from({ length: 24 }, (_, i) => `203.0.113.${i * 8}/29`),
      '198.51.100.10-198.51.100.99',
      '198.51.100.200',
      '2001:db8:aa::/64',
      '2001:db8:bb::10-2001:db8:bb::ff',
    ],
    exclude: ['203.0.113.64/29'],
  },
];

const LABEL_GROUPS: readonly LabelGroup[] = [
  { name: 'non-prod', key: 'env', values: ['staging', 'dev'], groups: [] },
  { name: 'data-tier', key: 'role', values: ['db', 'cache'], groups: [] },
  { name: 'pci-apps', key: 'app', values: ['cards', 'kyc', 'settlement'], groups: [] },
];

/**
 * Builds the estate. The workload count is exact; the rule count is exact once it exceeds
 * the per-application tier rules (about 3,700), which every size has.
 */
export function buildEstate(options: EstateOptions): Estate {
  const random = rng(options.seed ?? 20240601);
  const apps = appNames();
  const appWeights = apps.map((_, i) => 1 / Math.pow(i + 1, ZIPF_EXPONENT));
  const pickApp = picker(apps, appWeights, random);
  const pickEnv = picker(ENVS, ENV_WEIGHTS, random);
  const pickRole = picker(ROLES, ROLE_WEIGHTS, random);
  const pickLoc = picker(LOCS, LOC_WEIGHTS, random);
  const pickMode = picker<EnforcementMode>(
    ['full', 'selective', 'visibility', 'idle'],
    [0.88, 0.05, 0.04, 0.03],
    random,
  );

  // Platform apps are small and fixed: a couple of bastions and collectors per env and loc.
  const platformPerCell = Math.max(1, Math.round(options.workloads / 20000));
  const workloads: Workload[] = [];
  const appSize = new Map<string, number>();
  const modes: Record<EnforcementMode | 'unmanaged', number> = {
    idle: 0,
    visibility: 0,
    selective: 0,
    full: 0,
    unmanaged: 0,
  };
  let ipv6Count = 0;
  const addWorkload = (labels: Record<string, string>): void => {
    const n = workloads.length;
    const v4 = ipv4(0x0a000000 + 256 + n); // 10.0.1.0 onwards
    const r = random();
    // 1% IPv6 only, 4% dual-stack.
    const addresses = r < 0.01 ? [ipv6(n)] : r < 0.05 ? [v4, ipv6(n)] : [v4];
    if (r < 0.05) ipv6Count++;
    const managed = labels.role !== 'db' || random() > 0.1; // some databases are appliances
    const mode = pickMode();
    modes[managed ? mode : 'unmanaged']++;
    const app = labels.app!;
    appSize.set(app, (appSize.get(app) ?? 0) + 1);
    const name = `${app}-${labels.env}-${labels.role}-${labels.loc}-${n}`;
    workloads.push({ name, addresses, labels, mode, managed, users: [] });
  };
  for (const app of PLATFORM_APPS) {
    for (const env of ENVS) {
      for (const loc of LOCS) {
        for (let k = 0; k < platformPerCell; k++)
          addWorkload({ app, env, role: app === 'bastion' ? 'jump' : 'collector', loc });
      }
    }
  }
  while (workloads.length < options.workloads) {
    addWorkload({ app: pickApp(), env: pickEnv(), role: pickRole(), loc: pickLoc() });
  }

  // Rulesets: one per application and environment, with its tier-to-tier rules.
  const rulesets: { name: string; scope: LabelSelector | null; rules: Rule[] }[] = [];
  const byAppEnv = new Map<string, { name: string; scope: LabelSelector | null; rules: Rule[] }>();
  const dbService = new Map<string, string>();
  let ruleCount = 0;
  const push = (rs: { rules: Rule[] }, r: Rule): void => {
    rs.rules.push(r);
    ruleCount++;
  };

  // Estate-wide rules first in policy order: they read as the estate's guard rails.
  const guard: { name: string; scope: LabelSelector | null; rules: Rule[] } = {
    name: 'estate-guard-rails',
    scope: null,
    rules: [],
  };
  rulesets.push(guard);
  const all = actors({ allWorkloads: true });
  const internet = actors({ ipLists: ['internet'] });
  push(
    guard,
    rule('no-remote-admin-from-internet', 'override-deny', internet, all, [
      named('ssh'),
      named('rdp'),
      named('telnet'),
      named('smb'),
    ]),
  );
  push(guard, rule('no-smtp-to-internet', 'override-deny', all, internet, [named('smtp')]));
  push(
    guard,
    rule(
      'no-partner-to-data',
      'deny',
      actors({ ipLists: ['partners'] }),
      actors({ selector: selector({}, ['data-tier']) }),
      'all',
    ),
  );
  push(
    guard,
    rule(
      'no-nonprod-pci-to-prod-pci',
      'override-deny',
      actors({ selector: selector({}, ['non-prod', 'pci-apps']) }),
      actors({ selector: selector({ env: ['prod'] }, ['pci-apps']) }),
      'all',
    ),
  );
  push(
    guard,
    rule(
      'no-internet-to-data',
      'deny',
      internet,
      actors({ selector: selector({}, ['data-tier']) }),
      'all',
    ),
  );
  push(
    guard,
    rule('dns-ntp-from-corporate', 'allow', all, actors({ ipLists: ['corporate'] }), [
      named('dns'),
      named('ntp'),
    ]),
  );
  push(
    guard,
    rule('ping-from-corporate', 'allow', actors({ ipLists: ['corporate'] }), all, [named('ping')]),
  );

  // Platform: bastions reach everything over ssh, collectors scrape everything.
  const platform: { name: string; scope: LabelSelector | null; rules: Rule[] } = {
    name: 'platform',
    scope: null,
    rules: [],
  };
  rulesets.push(platform);
  for (const env of ENVS) {
    const inEnv = actors({ selector: selector({ env: [env] }) });
    push(
      platform,
      rule(
        `bastion-ssh-${env}`,
        'allow',
        actors({ selector: selector({ app: ['bastion'], env: [env] }) }),
        inEnv,
        [named('ssh')],
      ),
    );
    push(
      platform,
      rule(
        `monitoring-scrape-${env}`,
        'allow',
        actors({ selector: selector({ app: ['monitoring'], env: [env] }) }),
        inEnv,
        [named('node-exporter')],
      ),
    );
  }
  push(
    platform,
    rule(
      'corporate-to-bastion',
      'allow',
      actors({ ipLists: ['corporate'] }),
      actors({ selector: selector({ app: ['bastion'] }) }),
      [named('ssh')],
    ),
  );

  const allApps = [...apps];
  for (const app of allApps) {
    const db = DB_SERVICES[Math.floor(random() * DB_SERVICES.length)]!;
    dbService.set(app, db);
    const publicFacing = random() < 0.2;
    const usesPartners = random() < 0.15;
    for (const env of ENVS) {
      const rs = {
        name: `${app}-${env}`,
        scope: selector({ app: [app], env: [env] }),
        rules: [] as Rule[],
      };
      rulesets.push(rs);
      byAppEnv.set(`${app}/${env}`, rs);
      const role = (r: string): Actors => actors({ selector: selector({ role: [r] }) });
      push(
        rs,
        rule('web-to-api', 'allow', role('web'), role('api'), [named('http-alt'), named('grpc')]),
      );
      push(rs, rule('api-to-db', 'allow', role('api'), role('db'), [named(db)]));
      push(rs, rule('api-to-cache', 'allow', role('api'), role('cache'), [named('redis')]));
      push(
        rs,
        rule('corporate-to-web', 'allow', actors({ ipLists: ['corporate'] }), role('web'), [
          named('https'),
          named('http'),
        ]),
      );
      if (publicFacing)
        push(rs, rule('internet-to-web', 'allow', internet, role('web'), [named('https')]));
      if (usesPartners)
        push(
          rs,
          rule('api-to-partners', 'allow', role('api'), actors({ ipLists: ['partners'] }), [
            named('https'),
          ]),
        );
    }
  }

  // The rest of the budget: finer tier rules inside an application (per service and per
  // location) and cross-application dependencies (extra-scope rules in the provider's
  // ruleset naming the consumer tier of another application in the same environment).
  // Bigger applications get more of them.
  const pickBusyApp = picker(
    apps,
    apps.map((_, i) => 1 / Math.pow(i + 1, ZIPF_EXPONENT / 2)),
    random,
  );
  const pickRulePlace = picker(ENVS, [0.5, 0.3, 0.2], random);
  const rolePairs: readonly (readonly [string, string])[] = [
    ['web', 'api'],
    ['api', 'api'],
    ['api', 'db'],
    ['api', 'cache'],
    ['web', 'cache'],
    ['api', 'web'],
  ];
  let extra = 0;
  while (ruleCount < options.rules) {
    const app = pickBusyApp();
    const env = pickRulePlace();
    const rs = byAppEnv.get(`${app}/${env}`)!;
    const [from, to] = rolePairs[Math.floor(random() * rolePairs.length)]!;
    const service =
      to === 'db' ? dbService.get(app)! : APP_SERVICES[Math.floor(random() * APP_SERVICES.length)]!;
    const n = extra++;
    const kind = random();
    if (kind < 0.55) {
      // Cross-application dependency: consumer tier of another app, same environment.
      let consumer = pickBusyApp();
      if (consumer === app) consumer = apps[(apps.indexOf(app) + 1) % apps.length]!;
      const sources = actors({ selector: selector({ app: [consumer], env: [env], role: [from] }) });
      push(
        rs,
        rule(
          `from-${consumer}-${from}-to-${to}-${service}-${n}`,
          'allow',
          sources,
          actors({ selector: selector({ role: [to] }) }),
          [named(service)],
          true,
        ),
      );
    } else if (kind < 0.85) {
      // Location-local tier rule on one service.
      const loc = LOCS[Math.floor(random() * LOCS.length)]!;
      push(
        rs,
        rule(
          `${from}-to-${to}-${service}-${loc}-${n}`,
          'allow',
          actors({ selector: selector({ role: [from], loc: [loc] }) }),
          actors({ selector: selector({ role: [to], loc: [loc] }) }),
          [named(service)],
        ),
      );
    } else if (kind < 0.95) {
      // Admin access from the corporate network to one tier, on one or two services.
      const svc: ServiceRef[] =
        random() < 0.5
          ? [named('ssh')]
          : [named('ssh'), { kind: 'inline', port: port('tcp', 8000 + (n % 1000)) }];
      push(
        rs,
        rule(
          `corporate-admin-${to}-${n}`,
          'allow',
          actors({ ipLists: ['corporate'] }),
          actors({ selector: selector({ role: [to] }) }),
          svc,
        ),
      );
    } else {
      // A deny carved out inside the application (enforced by selective-mode hosts).
      push(
        rs,
        rule(
          `deny-${from}-to-${to}-${n}`,
          'deny',
          actors({ selector: selector({ role: [from] }) }),
          actors({ selector: selector({ role: [to] }) }),
          [{ kind: 'inline', port: port('tcp', 10000 + (n % 5000)) }],
        ),
      );
    }
  }

  const sizes = [...apps, ...PLATFORM_APPS].map((a) => appSize.get(a) ?? 0).sort((a, b) => a - b);
  const policy: Policy = {
    workloads,
    labelGroups: LABEL_GROUPS,
    ipLists: IP_LISTS,
    userGroups: [],
    services: SERVICES,
    rulesets,
    settings: {
      alwaysAllowed: [
        {
          name: 'control-plane',
          addresses: ['10.255.0.10', '10.255.0.11'],
          ports: [port('tcp', 7480)],
          direction: 'outbound',
        },
        {
          name: 'dns',
          addresses: ['10.255.1.53', '10.255.2.53'],
          ports: [port('udp', 53), port('tcp', 53)],
          direction: 'outbound',
        },
      ],
    },
  };
  return {
    policy,
    stats: {
      workloads: workloads.length,
      rules: ruleCount,
      rulesets: rulesets.length,
      apps: sizes.length,
      largestApp: sizes[sizes.length - 1] ?? 0,
      medianApp: sizes[Math.floor(sizes.length / 2)] ?? 0,
      ipv6Addresses: ipv6Count,
      modes,
    },
  };
}

/**
 * The label change the benchmark makes: a web workload of a mid-sized production app
 * becomes an api workload. Returns the new policy and the workload's name.
 */
export function withLabelChange(
  policy: Policy,
  from = 'web',
  to = 'api',
): { policy: Policy; changed: string } {
  const sizes = new Map<string, number>();
  for (const w of policy.workloads) sizes.set(w.labels.app!, (sizes.get(w.labels.app!) ?? 0) + 1);
  const ranked = [...sizes.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const midApp = ranked[Math.floor(ranked.length / 4)]![0];
  const idx = policy.workloads.findIndex(
    (w) =>
      w.labels.app === midApp &&
      w.labels.env === 'prod' &&
      w.labels.role === from &&
      w.managed &&
      w.mode === 'full',
  );
  const fallback = policy.workloads.findIndex(
    (w) => w.labels.role === from && w.managed && w.mode === 'full',
  );
  const i = idx >= 0 ? idx : fallback;
  if (i < 0) throw new Error(`no workload with role=${from} to change`);
  const old = policy.workloads[i]!;
  const changed: Workload = { ...old, labels: { ...old.labels, role: to } };
  const workloads = policy.workloads.slice();
  workloads[i] = changed;
  return { policy: { ...policy, workloads }, changed: old.name };
}

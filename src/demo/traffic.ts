/**
 * Weeks of simulated traffic for the demo estate, as the flow store's aggregates hold it.
 *
 * Each **conversation** (one source, destination, protocol, port and serving process) has a
 * peak rate and a daily shape: staff traffic follows office hours and goes quiet at
 * weekends, customers peak in the evening, scrapes and DNS are steady, batch jobs run at
 * night, scanners come in bursts, and a few incidents (a dev host reaching a prod database,
 * a web server talking to a database directly) appear only in the last days. Older traffic
 * is counted per hour; the last hours per minute, so a 6-hour window has minute detail.
 *
 * Deterministic: the same seed and `now` give the same records.
 */
import type { EdgeKey, FlowEnd, TrafficRecord } from '../analysis/flows/model.js';
import { mulberry32 } from '../random.js';
import {
  DEMO_ENVS,
  NODE_EXPORTER,
  SSH,
  type DemoEnv,
  type DemoHost,
  type Serving,
} from './estate.js';

export type TrafficShape = 'office' | 'customers' | 'steady' | 'nightly' | 'sporadic' | 'incident';

export interface Conversation {
  readonly key: EdgeKey;
  readonly shape: TrafficShape;
  /** Connections per hour at the shape's peak. */
  readonly rate: number;
  readonly bytesPerConnection: number;
  /** For incidents: when it happened, as [from, to) seconds before `now`. */
  readonly windows?: readonly (readonly [number, number])[];
  /** The destination enforces in full and drops it: its agent reports every attempt blocked. */
  readonly dropped?: boolean;
  /** Why it is in the demo (shown nowhere; for readers of this file and its tests). */
  readonly story: string;
}

export interface TrafficOptions {
  /** The end of the simulated history. */
  readonly now: Date;
  /** Weeks of history, 1..8. */
  readonly weeks: number;
  readonly seed: number;
  /**
   * The hours counted per minute, the current one included (default 7: whole hours covering
   * any 6-hour window, the longest the map answers in minutes).
   */
  readonly minuteHours?: number;
}

const HOUR = 3600;
const MINUTE = 60;

/** Weekday office hours, UTC: a morning ramp, a lunch dip, quiet nights. */
const OFFICE = [
  0.03, 0.03, 0.03, 0.03, 0.03, 0.04, 0.08, 0.3, 0.75, 1, 1, 0.95, 0.7, 0.9, 1, 1, 0.9, 0.6, 0.3,
  0.15, 0.1, 0.07, 0.05, 0.04,
];
/** Online shoppers (the shop sells to businesses too): busiest in the evening, fewer at weekends. */
const CUSTOMERS = [
  0.25, 0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.35, 0.5, 0.6, 0.65, 0.7, 0.8, 0.75, 0.7, 0.7, 0.75, 0.85,
  0.95, 1, 1, 0.9, 0.7, 0.45,
];

/** How busy a shape is at a moment (0..~1.2), before noise. */
export function shapeFactor(shape: TrafficShape, epochSeconds: number): number {
  const d = new Date(epochSeconds * 1000);
  const hour = d.getUTCHours();
  const weekend = d.getUTCDay() === 0 || d.getUTCDay() === 6;
  switch (shape) {
    case 'office':
      return weekend ? (hour >= 9 && hour < 17 ? 0.08 : 0.03) : OFFICE[hour]!;
    case 'customers':
      return CUSTOMERS[hour]! * (weekend ? 0.75 : 1);
    case 'steady':
      return 1;
    case 'nightly':
      return hour >= 1 && hour < 4 ? 1 : 0;
    case 'sporadic':
    case 'incident':
      return 1;
  }
}

const ENV_SCALE: Readonly<Record<DemoEnv, number>> = { prod: 1, staging: 0.06, dev: 0.03 };

const end = (h: DemoHost): FlowEnd => ({ workload: h.name });
const addr = (a: string): FlowEnd => ({ address: a });

/** A conversation to a host's served port (process known only when an agent runs there). */
function toHost(
  source: FlowEnd,
  dst: DemoHost,
  serving: Serving,
  shape: TrafficShape,
  rate: number,
  bytesPerConnection: number,
  story: string,
  windows?: readonly (readonly [number, number])[],
): Conversation {
  return {
    key: {
      source,
      destination: end(dst),
      proto: serving.proto,
      port: serving.port,
      process: dst.managed ? serving.process : null,
    },
    shape,
    rate,
    bytesPerConnection,
    story,
    ...(windows ? { windows } : {}),
  };
}

function toAddress(
  source: FlowEnd,
  address: string,
  port: number,
  shape: TrafficShape,
  rate: number,
  bytesPerConnection: number,
  story: string,
): Conversation {
  return {
    key: { source, destination: addr(address), proto: 'tcp', port, process: null },
    shape,
    rate,
    bytesPerConnection,
    story,
  };
}

/** Public addresses for simulated internet peers (never the documentation or private ranges). */
function publicAddresses(random: () => number, count: number, firstOctets: readonly number[]) {
  const out = new Set<string>();
  while (out.size < count) {
    const a = firstOctets[Math.floor(random() * firstOctets.length)]!;
    out.add(
      `${a}.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}.${1 + Math.floor(random() * 254)}`,
    );
  }
  return [...out];
}

/** Every conversation of the demo, in a stable order. */
export function demoConversations(hosts: readonly DemoHost[], seed: number): Conversation[] {
  const random = mulberry32(seed ^ 0x5eed);
  const pick = (app: string, env: DemoEnv, role: string) =>
    hosts.filter((h) => h.app === app && h.env === env && h.role === role);
  const one = (name: string): DemoHost => {
    const h = hosts.find((x) => x.name === name);
    if (!h) throw new Error(`the demo estate has no workload ${name}`);
    return h;
  };
  const corporate = Array.from(
    { length: 30 },
    (_, i) => `10.50.${1 + (i % 6)}.${20 + ((i * 37) % 200)}`,
  );
  const customers = publicAddresses(random, 30, [31, 46, 62, 77, 81, 89, 92, 109, 151, 176, 188]);
  const scanners = publicAddresses(random, 12, [45, 61, 103, 185, 193, 222]);
  const saas = publicAddresses(random, 3, [52, 104]);
  const mirrors = publicAddresses(random, 3, [91, 151]);
  const partners = ['198.51.100.10', '203.0.113.25'];
  const legacy = ['10.40.3.7', '10.40.3.8'];
  const out: Conversation[] = [];
  const rate = (base: number, env: DemoEnv) => Math.max(0.5, base * ENV_SCALE[env]);

  for (const env of DEMO_ENVS) {
    // The shop: customers (prod) or developers reach the web tier, each tier the next.
    const web = pick('shop', env, 'web');
    const api = pick('shop', env, 'api');
    if (env === 'prod') {
      customers.forEach((c, i) =>
        out.push(
          toHost(
            addr(c),
            web[i % web.length]!,
            web[0]!.serves,
            'customers',
            4 + (i % 9) * 5,
            45_000,
            'shoppers',
          ),
        ),
      );
    }
    for (const c of corporate.slice(0, env === 'prod' ? 6 : 3))
      out.push(toHost(addr(c), web[0]!, web[0]!.serves, 'office', 6, 30_000, 'staff use the shop'));
    for (const w of web)
      for (const a of api)
        out.push(
          toHost(
            end(w),
            a,
            a.serves,
            'customers',
            rate(1200 / api.length, env),
            8_000,
            'web calls api',
          ),
        );
    for (const a of api) {
      pick('shop', env, 'db').forEach((d, i) =>
        out.push(
          toHost(
            end(a),
            d,
            d.serves,
            'customers',
            rate(i === 0 ? 700 : 150, env),
            3_000,
            'api queries db',
          ),
        ),
      );
      for (const c of pick('shop', env, 'cache'))
        out.push(toHost(end(a), c, c.serves, 'customers', rate(900, env), 600, 'api reads cache'));
      for (const q of pick('shop', env, 'queue'))
        out.push(
          toHost(end(a), q, q.serves, 'customers', rate(200, env), 2_000, 'api queues orders'),
        );
      if (env !== 'dev')
        for (const p of pick('payments', env, 'api'))
          out.push(
            toHost(end(a), p, p.serves, 'customers', rate(60, env), 5_000, 'shop charges cards'),
          );
    }

    // Payments: its database, its queue, the HSM and the card networks.
    for (const p of pick('payments', env, 'api')) {
      pick('payments', env, 'db').forEach((d, i) =>
        out.push(
          toHost(
            end(p),
            d,
            d.serves,
            'customers',
            rate(i === 0 ? 400 : 80, env),
            4_000,
            'payments db',
          ),
        ),
      );
      for (const q of pick('payments', env, 'queue'))
        out.push(toHost(end(p), q, q.serves, 'customers', rate(150, env), 1_500, 'payment events'));
      for (const h of pick('payments', env, 'hsm'))
        out.push(toHost(end(p), h, h.serves, 'customers', 40, 800, 'card keys in the HSM'));
      if (env === 'prod')
        for (const a of partners)
          out.push(toAddress(end(p), a, 443, 'customers', 30, 6_000, 'card network'));
    }

    // CRM and HR: staff applications, office hours.
    for (const app of ['crm', 'hr']) {
      const appWeb = pick(app, env, 'web');
      const appApi = pick(app, env, 'api');
      for (const c of corporate.slice(6, env === 'prod' ? 18 : 9))
        out.push(toHost(addr(c), appWeb[0]!, appWeb[0]!.serves, 'office', 4, 60_000, 'staff'));
      for (const w of appWeb)
        for (const a of appApi)
          out.push(toHost(end(w), a, a.serves, 'office', rate(300, env), 6_000, 'web calls api'));
      for (const a of appApi)
        for (const d of pick(app, env, 'db'))
          out.push(toHost(end(a), d, d.serves, 'office', rate(250, env), 2_500, 'api queries db'));
    }
  }

  // Shared services, for every managed workload.
  const managed = hosts.filter((h) => h.managed);
  const dns = pick('directory', 'prod', 'dns');
  const ldap = pick('directory', 'prod', 'ldap');
  const collectors = pick('monitoring', 'prod', 'collector');
  managed.forEach((h, i) => {
    if (h.role !== 'dns')
      out.push(toHost(end(h), dns[i % dns.length]!, dns[0]!.serves, 'steady', 10, 150, 'dns'));
    if (h.role === 'web' || h.role === 'api')
      out.push(
        toHost(end(h), ldap[i % ldap.length]!, ldap[0]!.serves, 'office', 12, 3_000, 'logins'),
      );
    const collector = collectors[i % collectors.length]!;
    if (collector.name !== h.name)
      out.push(toHost(end(collector), h, NODE_EXPORTER, 'steady', 12, 25_000, 'metrics scrape'));
  });
  const grafana = one('monitoring-prod-web-1');
  for (const c of corporate.slice(18, 24))
    out.push(toHost(addr(c), grafana, grafana.serves, 'office', 5, 90_000, 'dashboards'));
  const bastions = pick('ops', 'prod', 'bastion');
  corporate
    .slice(24, 28)
    .forEach((c, i) =>
      out.push(toHost(addr(c), bastions[i % 2]!, SSH, 'office', 2, 400_000, 'admins log in')),
    );
  managed
    .filter((_, i) => i % 5 === 2)
    .forEach((h, i) =>
      out.push(toHost(end(bastions[i % 2]!), h, SSH, 'sporadic', 3, 250_000, 'admin sessions')),
    );
  const devHosts = hosts.filter((h) => h.env === 'dev' && h.app !== 'ci' && h.managed);
  pick('ci', 'dev', 'runner').forEach((r, i) => {
    for (const m of mirrors)
      out.push(toAddress(end(r), m, 443, 'office', 25, 2_000_000, 'builds fetch packages'));
    devHosts
      .filter((_, j) => j % 3 === i)
      .forEach((h) => out.push(toHost(end(r), h, SSH, 'office', 2, 80_000, 'deploys to dev')));
  });

  // What the policy does not allow yet (potentially blocked where nothing enforces).
  devHosts
    .filter((h) => h.role === 'api' || h.role === 'web')
    .forEach((h, i) =>
      out.push(
        toAddress(end(h), mirrors[i % mirrors.length]!, 443, 'nightly', 8, 5_000_000, 'updates'),
      ),
    );
  for (const a of pick('crm', 'prod', 'api'))
    for (const s of saas)
      out.push(toAddress(end(a), s, 443, 'office', 10, 12_000, 'CRM email SaaS'));
  const hrApi = one('hr-prod-api-1');
  for (const l of legacy)
    out.push(toHost(addr(l), hrApi, hrApi.serves, 'nightly', 40, 300_000, 'legacy payroll batch'));

  // Attacks and incidents (blocked where the destination enforces).
  const shopWeb = pick('shop', 'prod', 'web');
  scanners.forEach((s, i) => {
    const target = shopWeb[i % shopWeb.length]!;
    out.push({ ...toHost(addr(s), target, SSH, 'sporadic', 6, 300, 'ssh scan'), dropped: true });
    if (i % 3 === 0)
      out.push({
        key: { source: addr(s), destination: end(target), proto: 'tcp', port: 23, process: null },
        shape: 'sporadic',
        rate: 3,
        bytesPerConnection: 120,
        story: 'telnet scan',
        dropped: true,
      });
  });
  const day = 24 * HOUR;
  const shopDb = one('shop-prod-db-1');
  out.push(
    toHost(
      end(one('shop-prod-web-2')),
      shopDb,
      shopDb.serves,
      'incident',
      40,
      9_000,
      'web skips the api',
      [
        [30 * HOUR, 26 * HOUR],
        [3 * HOUR, 1 * HOUR],
      ],
    ),
  );
  const payDb = one('payments-prod-db-1');
  out.push(
    toHost(
      end(one('shop-dev-api-1')),
      payDb,
      payDb.serves,
      'incident',
      25,
      4_000,
      'dev reaches prod',
      [
        [2 * day + 5 * HOUR, 2 * day + 2 * HOUR],
        [2 * HOUR, 0],
      ],
    ),
  );
  const crmDb = one('crm-prod-db-1');
  out.push(
    toHost(
      end(one('crm-dev-api-1')),
      crmDb,
      crmDb.serves,
      'incident',
      15,
      2_500,
      'dev uses prod data',
      [[6 * day, 0]],
    ),
  );
  const shopApi = one('shop-prod-api-1');
  out.push(
    toHost(
      end(one('shop-staging-web-1')),
      shopApi,
      shopApi.serves,
      'incident',
      20,
      8_000,
      'staging pointed at prod',
      [[10 * day, 4 * day]],
    ),
  );
  return out;
}

/** A count with noise around `expected`; small expectations give 0 or 1. */
function sample(random: () => number, expected: number): number {
  if (expected <= 0) return 0;
  if (expected < 1) return random() < expected ? 1 : 0;
  return Math.max(1, Math.round(expected * (0.8 + 0.4 * random())));
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

/** The traffic of every conversation, per hour and then per minute, oldest first. */
export function demoTraffic(
  conversations: readonly Conversation[],
  options: TrafficOptions,
): TrafficRecord[] {
  const random = mulberry32(options.seed);
  const nowS = Math.floor(options.now.getTime() / 1000 / MINUTE) * MINUTE;
  const hourNow = Math.floor(nowS / HOUR) * HOUR;
  const minuteFrom = hourNow - ((options.minuteHours ?? 7) - 1) * HOUR;
  const start = hourNow - options.weeks * 7 * 24 * HOUR;
  const records: TrafficRecord[] = [];

  const factor = (c: Conversation, t: number, width: number): number => {
    if (c.windows) {
      const ago = nowS - t;
      if (!c.windows.some(([from, to]) => ago <= from && ago - width >= to)) return 0;
    }
    if (c.shape === 'sporadic') return random() < 0.15 ? 0.5 + random() : 0;
    return shapeFactor(c.shape, t);
  };
  const emit = (c: Conversation, t: number, width: number, connections: number) => {
    const first = t + Math.floor(random() * (width / 2));
    const last = connections === 1 ? first : t + width / 2 + Math.floor(random() * (width / 2));
    const bytes = Math.round(connections * c.bytesPerConnection * (0.7 + 0.6 * random()));
    records.push({
      key: c.key,
      firstSeen: iso(first),
      lastSeen: iso(last),
      connections,
      ...(c.dropped ? { blocked: connections } : {}),
      bytes,
    });
  };

  for (let t = start; t < minuteFrom; t += HOUR)
    for (const c of conversations) {
      const n = sample(random, c.rate * factor(c, t, HOUR));
      if (n > 0) emit(c, t, HOUR, n);
    }
  for (let t = minuteFrom; t < nowS; t += MINUTE)
    for (const c of conversations) {
      const n = sample(random, (c.rate / 60) * factor(c, t, MINUTE));
      if (n > 0) emit(c, t, MINUTE, n);
    }
  return records;
}

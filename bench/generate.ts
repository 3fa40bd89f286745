/**
 * The policy generator's benchmark (issue 6): how long `generatePolicy` takes for 10k, 100k
 * and 1M flow summaries in scope (target: 1M in at most 5 s), beside the pass it cannot
 * avoid, grouping the summaries by (source, destination, service) (`groupFlows`).
 *
 * The estate is the compile benchmark's (`estate.ts`, seeded): its workloads, IP lists,
 * services and label groups, with only its estate-wide rulesets (guard rails with deny and
 * override-deny rules, the platform's bastion and monitoring rules) as the existing draft,
 * so the generator writes the application rules itself. The flows are seeded too: agents
 * report each conversation once per time window, so the summaries repeat a smaller set of
 * conversations (a quarter as many): tier to tier inside applications (web -> api, api ->
 * db bound to its process, api -> cache, api -> api), calls to the one to three applications
 * each application depends on, internet
 * clients to web tiers, calls to partners and to private peers in no IP list, and traffic
 * the existing rules already allow (ssh from bastions, scrapes from monitoring, DNS and NTP
 * to the corporate network over UDP), each with a random ephemeral source port.
 */
import { performance } from 'node:perf_hooks';
import { generatePolicy, groupFlows } from '../src/policy/generate/index.js';
import type {
  FlowPeer,
  GeneratedPolicy,
  Granularity,
  ObservedFlow,
  ObservedService,
} from '../src/policy/generate/index.js';
import type { Policy, Workload } from '../src/policy/model.js';
import { mulberry32 } from '../src/random.js';
import { buildEstate } from './estate.js';

export interface GenerateBenchOptions {
  /** Flow summaries per size (default 10k, 100k, 1M). */
  readonly flows: readonly number[];
  readonly granularity: Granularity;
  /** Estate workloads (default 10k). */
  readonly workloads: number;
  /** Timed runs per size; null: 7, 5 and 3 by size. */
  readonly runs: number | null;
  readonly seed: number;
}

export interface TimingSummary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: readonly number[];
}

export interface GenerateSizeResult {
  readonly flows: number;
  readonly distinct: number;
  readonly inScope: number;
  readonly groupMs: TimingSummary;
  readonly generateMs: TimingSummary;
  /** CPU time of the process (user + system) over the same runs: steadier on a shared machine. */
  readonly groupCpuMs: TimingSummary;
  readonly generateCpuMs: TimingSummary;
  readonly heapUsedMb: number;
  readonly rulesets: number;
  readonly rules: number;
  readonly ipLists: number;
  readonly alreadyAllowedFlows: number;
  readonly blockedByExistingFlows: number;
  readonly unlabelledFlows: number;
  readonly overriddenDenies: number;
  readonly coverageShare: number;
}

export interface GenerateBenchResult {
  readonly options: GenerateBenchOptions;
  readonly estate: { readonly workloads: number; readonly existingRules: number };
  readonly sizes: readonly GenerateSizeResult[];
}

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

function summarize(runs: readonly number[]): TimingSummary {
  const sorted = [...runs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs };
}

/** The compile benchmark's estate, with only its estate-wide rulesets as the existing draft. */
export function benchEstate(workloads: number, seed: number): Policy {
  const { policy } = buildEstate({ workloads, rules: 5_000, seed });
  return { ...policy, rulesets: policy.rulesets.filter((rs) => rs.scope === null) };
}

/** `n` summaries over `n / 4` seeded conversations (see the file comment). */
export function benchFlows(estate: Policy, n: number, seed: number): ObservedFlow[] {
  const random = mulberry32(seed);
  const int = (max: number): number => Math.floor(random() * max);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const cells = new Map<string, Workload[]>();
  const byAppRoleEnv = (app: string, env: string, role: string): readonly Workload[] =>
    cells.get(`${app}/${env}/${role}`) ?? [];
  for (const w of estate.workloads) {
    const k = `${w.labels.app}/${w.labels.env}/${w.labels.role}`;
    const list = cells.get(k);
    if (list) list.push(w);
    else cells.set(k, [w]);
  }
  const apps = [...new Set(estate.workloads.map((w) => w.labels.app!))].sort();
  const business = estate.workloads.filter(
    (w) => w.labels.app !== 'bastion' && w.labels.app !== 'monitoring',
  );
  const byRole = (role: string): Workload[] => business.filter((w) => w.labels.role === role);
  const apis = byRole('api');
  const webs = byRole('web');
  const dbPort = new Map<string, ObservedService>();
  const dbServices: ObservedService[] = [
    { proto: 'tcp', port: 3306, process: 'mysqld' },
    { proto: 'tcp', port: 5432, process: 'postgres' },
    { proto: 'tcp', port: 27017, process: 'mongod' },
  ];
  for (const app of apps) dbPort.set(app, pick(dbServices));
  // Each application depends on one to three others: dependency maps are sparse.
  const dependencies = new Map<string, string[]>();
  for (const app of apps) {
    const others = apps.filter((a) => a !== app);
    dependencies.set(
      app,
      Array.from({ length: 1 + int(3) }, () => pick(others)),
    );
  }
  const wl = (w: Workload): FlowPeer => ({ workload: w.name });
  const addr = (address: string): FlowPeer => ({ address });
  const tcp = (port: number): ObservedService => ({ proto: 'tcp', port });
  const sameCell = (w: Workload, role: string): Workload | null => {
    const list = byAppRoleEnv(w.labels.app!, w.labels.env!, role);
    return list.length > 0 ? pick(list) : null;
  };

  type Conversation = { source: FlowPeer; destination: FlowPeer; service: ObservedService };
  const conversation = (): Conversation | null => {
    const kind = random();
    if (kind < 0.3) {
      const web = pick(webs);
      const api = sameCell(web, 'api');
      return (
        api && { source: wl(web), destination: wl(api), service: tcp(random() < 0.7 ? 8080 : 9090) }
      );
    }
    if (kind < 0.5) {
      const api = pick(apis);
      const db = sameCell(api, 'db');
      return db && { source: wl(api), destination: wl(db), service: dbPort.get(api.labels.app!)! };
    }
    if (kind < 0.6) {
      const api = pick(apis);
      const cache = sameCell(api, 'cache');
      return cache && { source: wl(api), destination: wl(cache), service: tcp(6379) };
    }
    if (kind < 0.65) {
      const api = pick(apis);
      const other = sameCell(api, 'api');
      if (!other || other === api) return null;
      return { source: wl(api), destination: wl(other), service: tcp(8080) };
    }
    if (kind < 0.75) {
      // A cross-application call: an api calls the api of an application it depends on.
      const api = pick(apis);
      const list = byAppRoleEnv(pick(dependencies.get(api.labels.app!)!), api.labels.env!, 'api');
      return list.length > 0
        ? { source: wl(api), destination: wl(pick(list)), service: tcp(8443) }
        : null;
    }
    if (kind < 0.85) {
      // Internet clients of web tiers: public addresses in 400 networks.
      const client = `${11 + int(80)}.${int(5)}.${int(256)}.${1 + int(254)}`;
      return { source: addr(client), destination: wl(pick(webs)), service: tcp(443) };
    }
    if (kind < 0.9)
      return {
        source: wl(pick(apis)),
        destination: addr(`203.0.113.${1 + int(60)}`),
        service: tcp(443),
      };
    if (kind < 0.93) {
      // Private peers in no IP list (192.168.128.0/17 is outside "corporate").
      const peer = `192.168.${130 + int(40)}.${1 + int(254)}`;
      return { source: wl(pick(apis)), destination: addr(peer), service: tcp(9000) };
    }
    if (kind < 0.97) {
      const dns = random() < 0.7;
      return {
        source: wl(pick(business)),
        destination: addr(`172.16.0.${dns ? 53 : 123}`),
        service: { proto: 'udp', port: dns ? 53 : 123 },
      };
    }
    const w = pick(business);
    const platform = byAppRoleEnv(
      random() < 0.5 ? 'bastion' : 'monitoring',
      w.labels.env!,
      random() < 0.5 ? 'jump' : 'collector',
    );
    if (platform.length === 0) return null;
    const from = pick(platform);
    return {
      source: wl(from),
      destination: wl(w),
      service: tcp(from.labels.role === 'jump' ? 22 : 9100),
    };
  };

  const conversations: Conversation[] = [];
  const wanted = Math.max(1, Math.floor(n / 4));
  while (conversations.length < wanted) {
    const c = conversation();
    if (c) conversations.push(c);
  }
  // Hourly windows over four weeks; times shared, as a store's rows share their text.
  const start = Date.UTC(2026, 2, 1);
  const windows = Array.from({ length: 24 * 28 + 1 }, (_, h) =>
    new Date(start + h * 3_600_000).toISOString(),
  );
  const flows: ObservedFlow[] = new Array<ObservedFlow>(n);
  for (let i = 0; i < n; i++) {
    // Every conversation at least once, then at random.
    const c = i < conversations.length ? conversations[i]! : pick(conversations);
    const h = int(windows.length - 1);
    flows[i] = {
      source: c.source,
      destination: c.destination,
      service: c.service,
      sourcePort: 32768 + int(28232),
      connections: 1 + int(50),
      firstSeen: windows[h]!,
      lastSeen: windows[h + 1]!,
    };
  }
  return flows;
}

function defaultRuns(n: number): number {
  return n <= 10_000 ? 7 : n <= 100_000 ? 5 : 3;
}

export function runGenerateBench(
  options: GenerateBenchOptions,
  log: (line: string) => void,
): GenerateBenchResult {
  let t = performance.now();
  const estate = benchEstate(options.workloads, options.seed);
  const existingRules = estate.rulesets.reduce((n, rs) => n + rs.rules.length, 0);
  log(
    `estate: ${estate.workloads.length} workloads, ${existingRules} existing rules (${(performance.now() - t).toFixed(0)} ms)`,
  );
  const sizes: GenerateSizeResult[] = [];
  for (const n of options.flows) {
    t = performance.now();
    const flows = benchFlows(estate, n, options.seed + n);
    log(`${countLabel(n)} flows: made in ${(performance.now() - t).toFixed(0)} ms`);
    const runs = options.runs ?? defaultRuns(n);
    const groupRuns: number[] = [];
    const generateRuns: number[] = [];
    const groupCpu: number[] = [];
    const generateCpu: number[] = [];
    const cpuMs = (since: NodeJS.CpuUsage): number => {
      const u = process.cpuUsage(since);
      return (u.user + u.system) / 1000;
    };
    let result: GeneratedPolicy | null = null;
    let distinct = 0;
    for (let r = 0; r < runs; r++) {
      gc();
      let t0 = performance.now();
      let c0 = process.cpuUsage();
      distinct = groupFlows(flows).size;
      groupRuns.push(performance.now() - t0);
      groupCpu.push(cpuMs(c0));
      result = null;
      gc();
      t0 = performance.now();
      c0 = process.cpuUsage();
      result = generatePolicy({ estate, flows, scope: null, granularity: options.granularity });
      generateRuns.push(performance.now() - t0);
      generateCpu.push(cpuMs(c0));
      log(
        `${countLabel(n)} flows: run ${r + 1}/${runs}: group ${groupRuns[r]!.toFixed(0)} ms (cpu ${groupCpu[r]!.toFixed(0)}), generate ${generateRuns[r]!.toFixed(0)} ms (cpu ${generateCpu[r]!.toFixed(0)})`,
      );
    }
    const g = result!;
    const sum = (xs: readonly { flows: number }[]): number => xs.reduce((s, x) => s + x.flows, 0);
    sizes.push({
      flows: n,
      distinct,
      inScope: g.counts.inScope,
      groupMs: summarize(groupRuns),
      generateMs: summarize(generateRuns),
      groupCpuMs: summarize(groupCpu),
      generateCpuMs: summarize(generateCpu),
      heapUsedMb: process.memoryUsage().heapUsed / 2 ** 20,
      rulesets: g.rulesets.length,
      rules: g.rulesets.reduce((s, rs) => s + rs.rules.length, 0),
      ipLists: g.ipLists.length,
      alreadyAllowedFlows: sum(g.alreadyAllowed),
      blockedByExistingFlows: sum(g.blockedByExisting),
      unlabelledFlows: sum(g.unlabelled),
      overriddenDenies: g.overriddenDenies.length,
      coverageShare: g.coverage.share,
    });
  }
  return { options, estate: { workloads: estate.workloads.length, existingRules }, sizes };
}

/** `10k`, `1M`: a count as the tables print it. */
export function countLabel(n: number): string {
  return n >= 1_000_000 && n % 1_000_000 === 0
    ? `${n / 1_000_000}M`
    : n % 1000 === 0
      ? `${n / 1000}k`
      : String(n);
}

const ms = (x: number): string => (x >= 100 ? `${x.toFixed(0)} ms` : `${x.toFixed(1)} ms`);

export function generateReport(result: GenerateBenchResult): string {
  const rows: string[][] = [
    [
      'flows',
      'distinct',
      'runs',
      'group (baseline)',
      'generate',
      'generate/group',
      'group cpu',
      'generate cpu',
      'rulesets',
      'rules',
      'new IP lists',
      'already allowed',
      'blocked by existing',
      'coverage',
      'heap',
    ],
  ];
  for (const s of result.sizes) {
    rows.push([
      countLabel(s.flows),
      countLabel(s.distinct),
      String(s.generateMs.runs.length),
      ms(s.groupMs.median),
      ms(s.generateMs.median),
      `${(s.generateMs.median / s.groupMs.median).toFixed(1)}x`,
      ms(s.groupCpuMs.median),
      ms(s.generateCpuMs.median),
      String(s.rulesets),
      String(s.rules),
      String(s.ipLists),
      String(s.alreadyAllowedFlows),
      String(s.blockedByExistingFlows),
      `${(s.coverageShare * 100).toFixed(2)}%`,
      `${s.heapUsedMb.toFixed(0)} MB`,
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const table = rows
    .map((r) =>
      r
        .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
        .join('  '),
    )
    .join('\n');
  return [
    `Policy generation at ${result.options.granularity} granularity, whole estate in scope (${result.estate.workloads} workloads, ${result.estate.existingRules} existing rules); medians:`,
    table,
    '  group = groupFlows alone (check + group by source, destination, service), the pass every generation makes;',
    '  generate = generatePolicy end to end, coverage by decide() included. Target: 1M flows in at most 5 s.',
    "  cpu = the process's CPU time (user + system, GC threads included) over the same runs: on a shared machine",
    '  wall time also holds the time others took the cores from it.',
  ].join('\n');
}

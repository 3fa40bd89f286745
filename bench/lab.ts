/**
 * Issue 4's agent benchmarks, on a real lab: a control plane in a process of its own (the
 * embedded SQLite store), a generated 50-workload topology brought up with `labUp` (one
 * network namespace, one service daemon and one real `bulkhead agent` per workload, every
 * agent in full mode), then:
 *
 * 1. Provision to enforced: each provision changes a port in an allow rule that selects
 *    every workload, so every agent gets a new revision. The time of the provision call is
 *    taken just before it is sent; `GET /api/v1/agents` is then polled every few tens of ms
 *    until each agent reports the new version applied (the agent acknowledges after `nft`
 *    has loaded it). Per agent: the first poll that shows it, minus the call time (the poll
 *    period bounds the resolution), and the server's own record of the acknowledgement (the
 *    ack sets `lastHeartbeatAt`, read at that same poll).
 * 2. The agent under load: one workload's agent while ~1k new TCP connections/s arrive from
 *    three other namespaces (open loop, a fixed schedule), its RSS (/proc/PID/status VmRSS)
 *    and CPU (/proc/PID/stat) sampled every second, with the agent at idle and a bare node
 *    process measured in the same run as baselines; then whether the agent counted those
 *    connections (the summed `connections` of its flow summaries in the control plane's
 *    store, read-only, against the connections made).
 *
 * Safety: prefix `bhb` (namespaces, links), lab network 198.19.128.0/20 (inside
 * 198.18.0.0/15, apart from every other lab and test), the relay on 198.19.128.1:7491, the
 * control plane on a free loopback port; traffic only between the lab's own addresses. A
 * lock on the prefix makes two runs take turns; the lab is taken down at the end, on error
 * and on SIGINT/SIGTERM, and a crashed run's leftovers at the next start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { stringify } from 'yaml';
import { ApiClient } from '../src/cli/client.js';
import { lockPrefix } from '../src/host/netns.js';
import { hasCommand, run } from '../src/host/run.js';
import { builtAgentProgram } from '../src/agent/program.js';
import { agentEnvironment } from '../src/lab/agents.js';
import { labDown } from '../src/lab/down.js';
import { LAB_TABLE } from '../src/lab/network.js';
import { labUnavailable } from '../src/lab/preflight.js';
import type { LabState } from '../src/lab/state.js';
import { labUp } from '../src/lab/up.js';
import { freePort, ServerProcess } from '../src/lab/server-process.js';
import { table } from './report.js';

export interface LabBenchOptions {
  /** Provisions timed (each changes every workload's policy). */
  readonly provisions: number;
  /** How often `GET /agents` is polled while a provision lands. */
  readonly pollMs: number;
  /** New connections per second driven at the loaded workload, over all clients. */
  readonly rate: number;
  /** How long the load runs. */
  readonly loadSeconds: number;
  /** How long the idle baseline is sampled. */
  readonly idleSeconds: number;
}

export const DEFAULT_LAB_OPTIONS: LabBenchOptions = {
  provisions: 8,
  pollMs: 25,
  rate: 1000,
  loadSeconds: 25,
  idleSeconds: 10,
};

const PREFIX = 'bhb';
const LAB_DIR = `/run/bulkhead-bench-lab-${PREFIX}`;
const NETWORK = '198.19.128.0/20';
const RELAY_PORT = 7491;
const OWNER = 'bench-lab-owner-key-0123456789abcdef';
/** USER_HZ: what /proc/PID/stat counts CPU time in. */
const CLOCK_TICKS = 100;

// --- The estate ---------------------------------------------------------------------------

const APPS = ['shop', 'pay', 'crm', 'search', 'media'] as const;
const ENVS = ['prod', 'staging'] as const;
const ROLES: readonly { role: string; listen: { port: number; process: string }[] }[] = [
  {
    role: 'web',
    listen: [
      { port: 80, process: 'nginx' },
      { port: 443, process: 'nginx' },
    ],
  },
  { role: 'api', listen: [{ port: 8080, process: 'java' }] },
  { role: 'db', listen: [{ port: 5432, process: 'postgres' }] },
  { role: 'cache', listen: [{ port: 6379, process: 'redis-server' }] },
  {
    role: 'worker',
    listen: [
      { port: 9100, process: 'celery' },
      { port: 9101, process: 'celery' },
    ],
  },
];
const SERVICE_PORTS = [...new Set(ROLES.flatMap((r) => r.listen.map((l) => l.port)))].sort(
  (a, b) => a - b,
);
/** The workload whose agent is loaded, the port the load goes to, and where it comes from. */
const LOAD_TARGET = 'shop-prod-api';
const LOAD_PORT = 8080;
const LOAD_CLIENTS: readonly string[] = ['shop-prod-web', 'pay-prod-api', 'crm-prod-web'];
/** The rotating rule's port: a new one per provision. */
const ROTATING_BASE = 20000;

/** 5 apps x 2 environments x 5 roles = 50 workloads, every one managed by an agent in full mode. */
function topologyYaml(): string {
  const workloads = APPS.flatMap((app) =>
    ENVS.flatMap((env) =>
      ROLES.map((r) => ({
        name: `${app}-${env}-${r.role}`,
        labels: { app, env, role: r.role },
        mode: 'full',
        agent: true,
        listen: r.listen.map((l) => ({ port: l.port, proto: 'tcp', process: l.process })),
      })),
    ),
  );
  return stringify({ name: 'bench-lab', network: { ipv4: NETWORK }, workloads });
}

/** Every service open to every workload (so the load is allowed on both sides in full mode). */
const servicesRuleset = {
  kind: 'Ruleset',
  name: 'bench-services',
  rules: [
    {
      name: 'every-service',
      sources: 'all',
      destinations: 'all',
      services: SERVICE_PORTS.map((p) => `${p}/tcp`),
    },
  ],
};

/** One more allowed port on every workload, a different one each time: every policy changes. */
const rotatingRuleset = (i: number) => ({
  kind: 'Ruleset',
  name: 'bench-rotating',
  rules: [
    {
      name: 'rotating-port',
      sources: 'all',
      destinations: 'all',
      services: [`${ROTATING_BASE + i}/tcp`],
    },
  ],
});

// --- Small helpers -------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** Nearest-rank percentile of an ascending list. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export interface Distribution {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly min: number;
}

function distribution(values: readonly number[]): Distribution {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 0.5),
    p99: percentile(s, 0.99),
    max: s[s.length - 1] ?? Number.NaN,
    min: s[0] ?? Number.NaN,
  };
}

// --- /proc -----------------------------------------------------------------------------------

interface ProcStat {
  readonly comm: string;
  readonly ppid: number;
  /** utime + stime, in clock ticks. */
  readonly ticks: number;
  /** cutime + cstime: children waited for. */
  readonly childTicks: number;
}

async function procStat(pid: number): Promise<ProcStat | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return {
      comm: text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')),
      ppid: Number(f[1]),
      ticks: Number(f[11]) + Number(f[12]),
      childTicks: Number(f[13]) + Number(f[14]),
    };
  } catch {
    return null;
  }
}

async function rssKb(pid: number): Promise<number | null> {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** One scan of /proc: every process's stat, and who is whose child. */
interface ProcTable {
  readonly stats: ReadonlyMap<number, ProcStat>;
  readonly children: ReadonlyMap<number, readonly number[]>;
}

async function procTable(): Promise<ProcTable> {
  const pids = (await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map(Number);
  const read = await Promise.all(pids.map(async (pid) => [pid, await procStat(pid)] as const));
  const stats = new Map<number, ProcStat>();
  const children = new Map<number, number[]>();
  for (const [pid, stat] of read) {
    if (!stat) continue;
    stats.set(pid, stat);
    let list = children.get(stat.ppid);
    if (!list) children.set(stat.ppid, (list = []));
    list.push(pid);
  }
  return { stats, children };
}

/** Every live descendant of `root` (children of children too). */
function descendants(table: ProcTable, root: number): number[] {
  const out: number[] = [];
  const queue = [root];
  while (queue.length)
    for (const c of table.children.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  return out;
}

/** Busy and total jiffies of the whole machine (/proc/stat). */
async function machineTicks(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - v[3]! - v[4]!, total };
}

interface ProcessSample {
  readonly at: number;
  readonly rssKb: number;
  /** The agent process alone. */
  readonly selfTicks: number;
  /**
   * The agent and every child it ran: its own time, its waited-for children's, and the live
   * descendants' (the conntrack event stream, nft monitor, a running ss or dump). A child
   * counted live and reaped later moves from the last term to the second, so differences
   * between samples count each tick once.
   */
  readonly treeTicks: number;
  readonly childrenRssKb: number;
  readonly children: number;
  /** The live descendants: pid, name and CPU ticks so far. */
  readonly kids: readonly { pid: number; comm: string; ticks: number }[];
}

async function sampleProcess(pid: number, scanned?: ProcTable): Promise<ProcessSample | null> {
  const [table, rss] = await Promise.all([scanned ?? procTable(), rssKb(pid)]);
  const stat = table.stats.get(pid);
  if (!stat || rss === null) return null;
  const kids = descendants(table, pid);
  const kidRss = await Promise.all(kids.map((k) => rssKb(k)));
  return {
    at: performance.now(),
    rssKb: rss,
    selfTicks: stat.ticks,
    treeTicks:
      stat.ticks + stat.childTicks + kids.reduce((n, k) => n + (table.stats.get(k)?.ticks ?? 0), 0),
    childrenRssKb: kidRss.reduce<number>((n, r) => n + (r ?? 0), 0),
    children: kids.length,
    kids: kids.map((k) => ({
      pid: k,
      comm: table.stats.get(k)?.comm ?? '?',
      ticks: table.stats.get(k)?.ticks ?? 0,
    })),
  };
}

/** Samples many processes from one scan of /proc. */
async function sampleAll(pids: readonly number[]): Promise<(ProcessSample | null)[]> {
  const table = await procTable();
  return Promise.all(pids.map((pid) => sampleProcess(pid, table)));
}

export interface UsageSummary {
  readonly seconds: number;
  readonly samples: number;
  readonly rssMb: Distribution;
  /** Share of one core over the window. */
  readonly cpuSelf: number;
  readonly cpuTree: number;
  /** Per-second CPU of the agent process, share of one core. */
  readonly cpuSelfPerSecond: readonly number[];
  readonly childrenRssMbMax: number;
  /**
   * The children's share by name: those that ran the whole window (conntrack -E, nft
   * monitor) by their own ticks, the rest (ss, dumps, nft runs) together as `short-lived`.
   */
  readonly cpuChildren: Readonly<Record<string, number>>;
  /** The whole machine's busy share over the window (of all its cores). */
  readonly machineBusy: number;
}

/** Samples a process every second for `seconds` (or until `until` settles). */
async function watch(
  pid: number,
  seconds: number,
  until?: Promise<unknown>,
): Promise<{ summary: UsageSummary; samples: ProcessSample[] }> {
  let done = false;
  void until?.then(
    () => (done = true),
    () => (done = true),
  );
  const m0 = await machineTicks();
  const samples: ProcessSample[] = [];
  const first = await sampleProcess(pid);
  if (!first) throw new Error(`process ${pid} is not running`);
  samples.push(first);
  const deadline = first.at + seconds * 1000;
  while (!done && performance.now() < deadline) {
    await sleep(first.at + samples.length * 1000 - performance.now());
    const s = await sampleProcess(pid);
    if (!s) throw new Error(`process ${pid} exited while it was measured`);
    samples.push(s);
  }
  const m1 = await machineTicks();
  return { summary: summarise(samples, m1.busy - m0.busy, m1.total - m0.total), samples };
}

function childrenShares(
  a: ProcessSample,
  b: ProcessSample,
  share: (ticks: number) => number,
): Record<string, number> {
  const out: Record<string, number> = {};
  let named = 0;
  for (const k of b.kids) {
    const before = a.kids.find((x) => x.pid === k.pid && x.comm === k.comm);
    if (!before) continue;
    named += k.ticks - before.ticks;
    out[k.comm] = (out[k.comm] ?? 0) + share(k.ticks - before.ticks);
  }
  out['short-lived'] = share(b.treeTicks - a.treeTicks - (b.selfTicks - a.selfTicks) - named);
  return out;
}

function summarise(samples: readonly ProcessSample[], busy: number, total: number): UsageSummary {
  const a = samples[0]!;
  const b = samples[samples.length - 1]!;
  const seconds = (b.at - a.at) / 1000;
  const share = (ticks: number) => ticks / CLOCK_TICKS / Math.max(seconds, 1e-9);
  const perSecond: number[] = [];
  for (let i = 1; i < samples.length; i++)
    perSecond.push(
      (samples[i]!.selfTicks - samples[i - 1]!.selfTicks) /
        CLOCK_TICKS /
        ((samples[i]!.at - samples[i - 1]!.at) / 1000),
    );
  return {
    seconds,
    samples: samples.length,
    rssMb: distribution(samples.map((s) => s.rssKb / 1024)),
    cpuSelf: share(b.selfTicks - a.selfTicks),
    cpuTree: share(b.treeTicks - a.treeTicks),
    cpuSelfPerSecond: perSecond,
    childrenRssMbMax: Math.max(...samples.map((s) => s.childrenRssKb / 1024)),
    cpuChildren: childrenShares(a, b, share),
    machineBusy: total > 0 ? busy / total : 0,
  };
}

// --- The control plane ----------------------------------------------------------------------

/** The control plane's own process, with an owner's client. */
class ControlPlane extends ServerProcess {
  readonly client: ApiClient;
  constructor(port: number, dataDir: string) {
    super({ port, dataDir, ownerKey: OWNER });
    this.client = new ApiClient(this.url, OWNER);
  }
}

interface AgentView {
  id: string;
  workload: string;
  lastHeartbeatAt: string | null;
  appliedVersion: number | null;
  appliedRevision: number | null;
  currentRevision: number | null;
  upToDate: boolean;
  revokedAt: string | null;
}

async function agentsOf(plane: ControlPlane, workloads: ReadonlySet<string>): Promise<AgentView[]> {
  const { items } = await plane.client.request<{ items: AgentView[] }>('GET', '/agents');
  return items.filter((a) => a.revokedAt === null && workloads.has(a.workload));
}

async function waitSettled(
  plane: ControlPlane,
  workloads: ReadonlySet<string>,
  ms: number,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const agents = await agentsOf(plane, workloads);
    const behind = agents.filter((a) => !a.upToDate).map((a) => a.workload);
    if (agents.length === workloads.size && behind.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(
        `agents not up to date after ${ms / 1000} s: ${agents.length}/${workloads.size} paired, behind: ${behind.slice(0, 10).join(', ')}`,
      );
    await sleep(250);
  }
}

// --- 1. Provision to enforced ---------------------------------------------------------------

export interface AgentLatency {
  readonly workload: string;
  /** First poll that showed the version applied, minus the start of the provision call. */
  readonly seenMs: number;
  /**
   * The server's record of the acknowledgement (the ack sets lastHeartbeatAt; a heartbeat
   * between the ack and that poll would move it later, so an upper bound) minus the same start.
   */
  readonly ackMs: number | null;
  /** The agent's own `applied policy` log line (after nft loaded it), minus the same start. */
  readonly appliedMs: number | null;
}

export interface ProvisionRun {
  /** `all`: a rule selecting every workload changes; `single`: one workload's inbound rule. */
  readonly kind: 'all' | 'single';
  readonly provision: number;
  readonly version: number;
  readonly startedAt: number;
  readonly callMs: number;
  readonly workloadsChanged: number;
  readonly agents: AgentLatency[];
  /** Agents that had not applied it when the wait ended. */
  readonly missing: readonly string[];
  /**
   * Agents the control plane showed with this version applied at one poll and with an older
   * one at a later poll (its record of the agent went backwards).
   */
  readonly regressions: readonly string[];
}

export interface LatencySummary {
  readonly seen: Distribution;
  readonly ack: Distribution;
  readonly applied: Distribution;
  readonly callMs: Distribution;
}

export interface ProvisionResult {
  readonly runs: readonly ProvisionRun[];
  readonly all: LatencySummary;
  readonly single: LatencySummary;
  /** Time between the answers of successive polls (the resolution of `seen`). */
  readonly pollPeriodMs: Distribution;
  readonly pollRequestMs: Distribution;
  /** CPU the agents (with their children) and the control plane used over the phase. */
  readonly seconds: number;
  readonly agentCpuSeconds: number;
  readonly controlPlaneCpuSeconds: number;
  readonly machineBusy: number;
}

/** The workload the single-workload provisions change (nothing else touches it). */
const SINGLE_TARGET = 'media-staging-db';

/** One more allowed port on one workload, from outside the lab: only its policy changes. */
const singleRuleset = (i: number) => ({
  kind: 'Ruleset',
  name: 'bench-single',
  rules: [
    {
      name: 'outside-to-one',
      sources: { ipLists: ['bench-outside'] },
      destinations: { workloads: [SINGLE_TARGET] },
      services: [`${ROTATING_BASE + 1000 + i}/tcp`],
    },
  ],
});
/** Addresses in no lab (198.19.200.0/24 is in 198.18.0.0/15, outside every lab network). */
const outsideList = { kind: 'IpList', name: 'bench-outside', include: ['198.19.200.0/24'] };

function latencySummary(runs: readonly ProvisionRun[]): LatencySummary {
  const agents = runs.flatMap((r) => r.agents);
  const known = (xs: (number | null)[]) => xs.filter((x): x is number => x !== null);
  return {
    seen: distribution(agents.map((a) => a.seenMs)),
    ack: distribution(known(agents.map((a) => a.ackMs))),
    applied: distribution(known(agents.map((a) => a.appliedMs))),
    callMs: distribution(runs.map((r) => r.callMs)),
  };
}

/** `applied policy` lines of an agent's log: time (epoch ms) by policy version. */
async function appliedTimes(file: string): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (!line.includes('"applied policy"')) continue;
    try {
      const e = JSON.parse(line) as { time?: string; policyVersion?: number };
      if (e.time && typeof e.policyVersion === 'number' && !out.has(e.policyVersion))
        out.set(e.policyVersion, Date.parse(e.time));
    } catch {
      // not a log entry
    }
  }
  return out;
}

async function provisionOnce(
  plane: ControlPlane,
  workloads: ReadonlySet<string>,
  kind: 'all' | 'single',
  i: number,
  options: LabBenchOptions,
  polls: { periods: number[]; requests: number[] },
): Promise<ProvisionRun> {
  const document = kind === 'all' ? rotatingRuleset(i) : singleRuleset(i);
  await plane.client.request('POST', '/policy/draft/apply', { documents: [document] });
  await sleep(1000);
  const t0 = Date.now();
  const p0 = performance.now();
  const answer = await plane.client.request<{ version: number; workloadsChanged: string[] }>(
    'POST',
    '/policy/provision',
    { message: `bench: ${kind} ${i}` },
  );
  const callMs = performance.now() - p0;
  const pending = new Set(answer.workloadsChanged.filter((w) => workloads.has(w)));
  const agents: AgentLatency[] = [];
  const regressions = new Set<string>();
  let lastAnswer: number | null = null;
  const deadline = Date.now() + 30_000;
  while (pending.size && Date.now() < deadline) {
    const sent = performance.now();
    const views = await agentsOf(plane, workloads);
    const seenAt = Date.now();
    const answered = performance.now();
    polls.requests.push(answered - sent);
    if (lastAnswer !== null) polls.periods.push(answered - lastAnswer);
    lastAnswer = answered;
    for (const a of views) {
      const applied = a.appliedVersion !== null && a.appliedVersion >= answer.version;
      if (!applied && !pending.has(a.workload) && answer.workloadsChanged.includes(a.workload))
        regressions.add(a.workload);
      if (!pending.has(a.workload) || !applied) continue;
      pending.delete(a.workload);
      agents.push({
        workload: a.workload,
        seenMs: seenAt - t0,
        ackMs: a.lastHeartbeatAt ? Date.parse(a.lastHeartbeatAt) - t0 : null,
        appliedMs: null,
      });
    }
    await sleep(options.pollMs - (performance.now() - sent));
  }
  return {
    kind,
    provision: i,
    version: answer.version,
    startedAt: t0,
    callMs,
    workloadsChanged: answer.workloadsChanged.length,
    agents,
    missing: [...pending],
    regressions: [...regressions],
  };
}

async function provisionLatency(
  plane: ControlPlane,
  state: LabState,
  options: LabBenchOptions,
  log: (line: string) => void,
): Promise<ProvisionResult> {
  const workloads = new Set(state.topology.workloads.map((w) => w.name));
  const agentPids = state.workloads.flatMap((w) => (w.agent ? [w.agent.pid] : []));
  const runs: ProvisionRun[] = [];
  const polls = { periods: [] as number[], requests: [] as number[] };
  const tree = (samples: (ProcessSample | null)[]) =>
    samples.reduce((n, s) => n + (s?.treeTicks ?? 0), 0);
  const started = performance.now();
  const m0 = await machineTicks();
  const agents0 = tree(await sampleAll(agentPids));
  const plane0 = (await procStat(plane.pid))?.ticks ?? 0;
  // Interleaved, so that drift in the machine's load touches both kinds alike.
  for (let i = 1; i <= options.provisions; i++) {
    for (const kind of ['all', 'single'] as const) {
      const r = await provisionOnce(plane, workloads, kind, i, options, polls);
      runs.push(r);
      const seen = distribution(r.agents.map((a) => a.seenMs));
      log(
        `provision ${i}/${options.provisions} (${kind === 'all' ? 'every workload' : SINGLE_TARGET}; version ${r.version}, ${r.workloadsChanged} workloads changed, call ${r.callMs.toFixed(0)} ms): ` +
          `${r.agents.length} agents applied, seen p50 ${seen.p50.toFixed(0)} ms, max ${seen.max.toFixed(0)} ms` +
          (r.missing.length ? `; NOT applied within 30 s: ${r.missing.join(', ')}` : ''),
      );
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const agents1 = tree(await sampleAll(agentPids));
  const plane1 = (await procStat(plane.pid))?.ticks ?? 0;
  const m1 = await machineTicks();
  // The agents' own record of each apply.
  const logs = new Map(
    await Promise.all(
      state.workloads.flatMap((w) =>
        w.agent ? [(async () => [w.name, await appliedTimes(w.agent!.log)] as const)()] : [],
      ),
    ),
  );
  for (const r of runs)
    for (const [k, a] of r.agents.entries()) {
      const at = logs.get(a.workload)?.get(r.version);
      r.agents[k] = { ...a, appliedMs: at === undefined ? null : at - r.startedAt };
    }
  return {
    runs,
    all: latencySummary(runs.filter((r) => r.kind === 'all')),
    single: latencySummary(runs.filter((r) => r.kind === 'single')),
    pollPeriodMs: distribution(polls.periods),
    pollRequestMs: distribution(polls.requests),
    seconds,
    agentCpuSeconds: (agents1 - agents0) / CLOCK_TICKS,
    controlPlaneCpuSeconds: (plane1 - plane0) / CLOCK_TICKS,
    machineBusy: (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total),
  };
}

// --- 2. The agent under load ----------------------------------------------------------------

/**
 * The load client, plain CommonJS for `node -e` inside a client namespace: opens connections
 * on a fixed schedule (open loop: `rate` a second from `startAt`, whatever the answers do),
 * each one connect, wait for the service's greeting, close. Prints one JSON line at the end.
 *
 * It does not bind the source address (`localAddress`): the namespace has one address, and an
 * explicit bind before connect picks the source port without connect()'s 4-tuple reuse, so
 * with thousands of the client's own connections in TIME_WAIT each bind scans for a free port
 * and the client stalls for seconds (seen here at ~7k connections, about 21 s at 333/s).
 */
const CLIENT_SOURCE = String.raw`
const net = require('node:net');
const c = JSON.parse(process.argv[1]);
const total = Math.round(c.rate * c.seconds);
const interval = 1000 / c.rate;
const perSecond = new Array(Math.ceil(c.seconds) + 1).fill(0);
const failures = {};
const connectMs = [];
let attempts = 0, connected = 0, established = 0, inflight = 0, maxInflight = 0, firstAt = 0, lastAt = 0;
function one() {
  const now = Date.now();
  if (!firstAt) firstAt = now;
  lastAt = now;
  attempts++;
  inflight++;
  if (inflight > maxInflight) maxInflight = inflight;
  const t0 = process.hrtime.bigint();
  const s = net.connect({ host: c.to, port: c.port });
  let done = false;
  const finish = (why) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    inflight--;
    if (why) failures[why] = (failures[why] || 0) + 1;
  };
  const timer = setTimeout(() => { s.destroy(); finish('timeout'); }, c.timeoutMs);
  s.on('error', (e) => { s.destroy(); finish(e.code || 'error'); });
  s.once('connect', () => { connected++; });
  s.once('data', () => {
    if (done) return;
    established++;
    const sec = Math.floor((Date.now() - c.startAt) / 1000);
    if (sec >= 0 && sec < perSecond.length) perSecond[sec]++;
    connectMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    s.end();
    finish(null);
  });
  s.on('close', () => finish('closed-without-greeting'));
}
let k = 0;
function tick() {
  const due = Math.min(total, Math.floor((Date.now() - c.startAt) / interval) + 1);
  while (k < due) { k++; one(); }
  if (k < total) setTimeout(tick, 1);
  else finishAll();
}
function finishAll() {
  const end = Date.now() + c.timeoutMs + 1000;
  const wait = () => {
    if (inflight > 0 && Date.now() < end) return setTimeout(wait, 20);
    connectMs.sort((a, b) => a - b);
    const at = (p) => connectMs.length ? connectMs[Math.min(connectMs.length - 1, Math.ceil(p * connectMs.length) - 1)] : null;
    process.stdout.write(JSON.stringify({ attempts, connected, established, failures, firstAt, lastAt, maxInflight,
      perSecond, connectP50Ms: at(0.5), connectP99Ms: at(0.99), connectMaxMs: at(1) }) + '\n');
    process.exit(0);
  };
  wait();
}
setTimeout(tick, Math.max(0, c.startAt - Date.now()));
`;

interface ClientReport {
  attempts: number;
  connected: number;
  established: number;
  failures: Record<string, number>;
  firstAt: number;
  lastAt: number;
  maxInflight: number;
  perSecond: number[];
  connectP50Ms: number | null;
  connectP99Ms: number | null;
  connectMaxMs: number | null;
}

function runClient(
  netns: string,
  config: Record<string, unknown>,
  children: Set<ChildProcess>,
): Promise<ClientReport> {
  const child = spawn(
    'ip',
    ['netns', 'exec', netns, process.execPath, '-e', CLIENT_SOURCE, JSON.stringify(config)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise((resolvePromise, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      children.delete(child);
      if (code !== 0) return reject(new Error(`load client in ${netns} exited ${code}: ${err}`));
      try {
        resolvePromise(JSON.parse(out.trim().split('\n').pop()!) as ClientReport);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

/** New-connection packets the lab's tracking table has counted on the way in. */
async function kernelNewInbound(netns: string): Promise<number | null> {
  try {
    const { stdout } = await run([
      'ip',
      'netns',
      'exec',
      netns,
      'nft',
      '-j',
      'list',
      'chain',
      'inet',
      LAB_TABLE,
      'track_in',
    ]);
    const items = (JSON.parse(stdout) as { nftables: { rule?: { expr?: unknown[] } }[] }).nftables;
    for (const item of items)
      for (const e of item.rule?.expr ?? []) {
        const counter = (e as { counter?: { packets: number } }).counter;
        if (counter) return counter.packets;
      }
  } catch {
    // no counter: reported as unknown
  }
  return null;
}

export interface FlowCount {
  readonly workload: string;
  readonly side: 'destination' | 'source';
  /** Connections attempted (SYNs sent) and completed (handshake) along this side's path. */
  readonly attempted: number;
  readonly completed: number;
  /** What the agent reported: the summed `connections` of its flow summaries. */
  readonly counted: number;
  readonly summaries: number;
  readonly processes: readonly string[];
  readonly decisions: readonly string[];
}

/** The control plane's store, read-only: what the agents reported for the load's path. */
function countFlows(
  dataDir: string,
  path: { target: string; targetAddress: string; clients: { workload: string; address: string }[] },
  sinceIso: string,
): {
  workload: string;
  counted: number;
  summaries: number;
  processes: string;
  decisions: string;
}[] {
  const db = new SQLite(join(dataDir, 'bulkhead.db'), { readonly: true, fileMustExist: true });
  try {
    const placeholders = path.clients.map(() => '?').join(', ');
    return db
      .prepare(
        `select workload, sum(n) as counted, sum(k) as summaries,
                group_concat(process || ' ' || n, ', ') as processes,
                coalesce(group_concat(distinct d), '') as decisions
           from (select workload, coalesce(process, '(none)') as process,
                        sum(connections) as n, count(*) as k, group_concat(distinct decision) as d
                   from flow_summaries
                  where dst = ? and dport = ? and proto = 'tcp' and src in (${placeholders})
                    and first_seen >= ?
                  group by workload, process)
          group by workload`,
      )
      .all(path.targetAddress, LOAD_PORT, ...path.clients.map((c) => c.address), sinceIso) as {
      workload: string;
      counted: number;
      summaries: number;
      processes: string;
      decisions: string;
    }[];
  } finally {
    db.close();
  }
}

/** Connections a lab service logged (`... tcp ADDR:PORT from CLIENT:PORT`) from these clients since `since`. */
async function serviceAccepted(
  file: string,
  port: number,
  clients: readonly string[],
  sinceIso: string,
): Promise<number | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return null;
  }
  const from = clients.map((a) => `:${port} from ${a}:`);
  let n = 0;
  for (const line of text.split('\n'))
    if (line.slice(0, 24) >= sinceIso && from.some((f) => line.includes(f))) n++;
  return n;
}

/** Warnings and errors an agent logged since `since` (pino JSON lines), by message. */
async function agentLogProblems(file: string, sinceIso: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { level?: string; time?: string; msg?: string };
      if (!entry.time || entry.time < sinceIso) continue;
      if (entry.level !== 'warn' && entry.level !== 'error' && entry.level !== 'fatal') continue;
      const key = `${entry.level}: ${entry.msg ?? '?'}`;
      out[key] = (out[key] ?? 0) + 1;
    } catch {
      // not a log entry
    }
  }
  return out;
}

export interface LoadResult {
  readonly target: string;
  readonly targetAddress: string;
  readonly port: number;
  readonly agentPid: number;
  readonly clients: readonly { workload: string; address: string; report: ClientReport }[];
  readonly attempts: number;
  /** Handshakes completed, and of those the service's greeting received. */
  readonly connected: number;
  readonly established: number;
  /** Connections the service on the target logged as accepted (one log line each). */
  readonly accepted: number | null;
  readonly failures: Readonly<Record<string, number>>;
  /** Established connections per second over the schedule's span, as the clients measured. */
  readonly achievedRate: number;
  /** Per-second established connections (all clients), full seconds only. */
  readonly perSecond: Distribution;
  /** New inbound connections the kernel counted in the target's namespace, per second. */
  readonly kernelRate: number | null;
  readonly kernelNew: number | null;
  readonly connectMs: { p50: number | null; p99: number | null; max: number | null };
  readonly usage: UsageSummary;
  readonly samples: readonly ProcessSample[];
  readonly flows: readonly FlowCount[];
  readonly flowWaitSeconds: number;
  readonly agentLog: Readonly<Record<string, number>>;
}

export interface IdleResult {
  readonly target: UsageSummary;
  readonly samples: readonly ProcessSample[];
  /** Every agent of the lab over the same window. */
  readonly allAgents: {
    readonly count: number;
    readonly cpuSelf: Distribution;
    readonly cpuTreeMean: number;
    readonly rssMb: Distribution;
  };
  /** A bare `node -e "setInterval(()=>{},1000)"` in the agents' environment, meanwhile. */
  readonly bareNode: { readonly rssMb: Distribution; readonly cpuSelf: number };
  /** The same in this benchmark's own environment (NODE_OPTIONS, NODE_EXTRA_CA_CERTS...). */
  readonly bareNodeCallerEnv: { readonly rssMb: Distribution; readonly cpuSelf: number };
}

async function idleBaselines(
  state: LabState,
  targetPid: number,
  seconds: number,
  children: Set<ChildProcess>,
): Promise<IdleResult> {
  const bareNode = (env: NodeJS.ProcessEnv) => {
    const child = spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], {
      stdio: 'ignore',
      env,
    });
    children.add(child);
    return child;
  };
  const usageOf = (u: UsageSummary) => ({ rssMb: u.rssMb, cpuSelf: u.cpuSelf });
  const bare = bareNode(agentEnvironment());
  const bareCaller = bareNode(process.env);
  try {
    // Sampled once it has started up, like the agent (long started).
    await sleep(2000);
    const agents = state.workloads.flatMap((w) => (w.agent ? [w.agent.pid] : []));
    const before = await sampleAll(agents);
    const bareRun = watch(bare.pid!, seconds);
    const bareCallerRun = watch(bareCaller.pid!, seconds);
    const targetRun = await watch(targetPid, seconds);
    const after = await sampleAll(agents);
    const bareResult = await bareRun;
    const bareCallerResult = await bareCallerRun;
    const selfShares: number[] = [];
    const treeShares: number[] = [];
    const rss: number[] = [];
    before.forEach((b, i) => {
      const a = after[i];
      if (!b || !a) return;
      const secs = (a.at - b.at) / 1000;
      selfShares.push((a.selfTicks - b.selfTicks) / CLOCK_TICKS / secs);
      treeShares.push((a.treeTicks - b.treeTicks) / CLOCK_TICKS / secs);
      rss.push(a.rssKb / 1024);
    });
    return {
      target: targetRun.summary,
      samples: targetRun.samples,
      allAgents: {
        count: selfShares.length,
        cpuSelf: distribution(selfShares),
        cpuTreeMean: treeShares.reduce((a, b) => a + b, 0) / Math.max(1, treeShares.length),
        rssMb: distribution(rss),
      },
      bareNode: usageOf(bareResult.summary),
      bareNodeCallerEnv: usageOf(bareCallerResult.summary),
    };
  } finally {
    for (const child of [bare, bareCaller]) {
      child.kill('SIGKILL');
      children.delete(child);
    }
  }
}

async function loadRun(
  state: LabState,
  dataDir: string,
  options: LabBenchOptions,
  children: Set<ChildProcess>,
  log: (line: string) => void,
): Promise<LoadResult> {
  const spec = (name: string) => state.topology.workloads.find((w) => w.name === name)!;
  const record = state.workloads.find((w) => w.name === LOAD_TARGET)!;
  const agentPid = record.agent!.pid;
  const targetAddress = spec(LOAD_TARGET).addresses[0]!;
  const clients = LOAD_CLIENTS.map((w) => ({
    workload: w,
    address: spec(w).addresses[0]!,
    netns: state.workloads.find((r) => r.name === w)!.netns,
  }));
  const startAt = Date.now() + 1500;
  const sinceIso = new Date(startAt - 2000).toISOString();
  const kernelBefore = await kernelNewInbound(record.netns);
  const reports = Promise.all(
    clients.map((c) =>
      runClient(
        c.netns,
        {
          from: c.address,
          to: targetAddress,
          port: LOAD_PORT,
          rate: options.rate / clients.length,
          seconds: options.loadSeconds,
          startAt,
          timeoutMs: 3000,
        },
        children,
      ),
    ),
  );
  await sleep(startAt - Date.now());
  const usage = await watch(agentPid, options.loadSeconds + 10, reports);
  const done = await reports;
  const kernelAfter = await kernelNewInbound(record.netns);
  const sum = (f: (r: ClientReport) => number) => done.reduce((n, r) => n + f(r), 0);
  const attempts = sum((r) => r.attempts);
  const connected = sum((r) => r.connected);
  const established = sum((r) => r.established);
  const failures: Record<string, number> = {};
  for (const r of done)
    for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v;
  const first = Math.min(...done.map((r) => r.firstAt));
  const last = Math.max(...done.map((r) => r.lastAt));
  // From the first connection to the last, plus one client's interval: the schedule's span.
  const spanSeconds = (last - first) / 1000 + clients.length / options.rate;
  const perSecond = Array.from({ length: Math.floor(options.loadSeconds) }, (_, s) =>
    done.reduce((n, r) => n + (r.perSecond[s] ?? 0), 0),
  );
  const kernelNew =
    kernelBefore !== null && kernelAfter !== null ? kernelAfter - kernelBefore : null;
  log(
    `load: ${established}/${attempts} connections established in ${spanSeconds.toFixed(1)} s (${(established / spanSeconds).toFixed(0)}/s), ` +
      `agent RSS max ${usage.summary.rssMb.max.toFixed(1)} MB, CPU ${(usage.summary.cpuSelf * 100).toFixed(2)}% of a core`,
  );

  // The agents flush every 5 s: wait until each has reported every connection attempted on
  // its side, or the counts have stood still for a while (two flushes and a dump's worth).
  const path = {
    target: LOAD_TARGET,
    targetAddress,
    clients: clients.map((c) => ({ workload: c.workload, address: c.address })),
  };
  const attemptedBy = new Map<string, number>([
    [LOAD_TARGET, attempts],
    ...clients.map((c, i) => [c.workload, done[i]!.attempts] as const),
  ]);
  const completedBy = new Map<string, number>([
    [LOAD_TARGET, connected],
    ...clients.map((c, i) => [c.workload, done[i]!.connected] as const),
  ]);
  const waitStart = performance.now();
  let rows = countFlows(dataDir, path, sinceIso);
  let lastChange = performance.now();
  let lastTotal = -1;
  const counted = (w: string) => Number(rows.find((r) => r.workload === w)?.counted ?? 0);
  for (;;) {
    const total = rows.reduce((n, r) => n + Number(r.counted), 0);
    if (total !== lastTotal) {
      lastTotal = total;
      lastChange = performance.now();
    }
    const complete = [...attemptedBy].every(([w, n]) => counted(w) >= n);
    const now = performance.now();
    if (complete || now - lastChange > 12_000 || now - waitStart > 45_000) break;
    await sleep(1000);
    rows = countFlows(dataDir, path, sinceIso);
  }
  const flowWaitSeconds = (performance.now() - waitStart) / 1000;
  const flows: FlowCount[] = [LOAD_TARGET, ...LOAD_CLIENTS].map((w) => {
    const row = rows.find((r) => r.workload === w);
    return {
      workload: w,
      side: w === LOAD_TARGET ? 'destination' : 'source',
      attempted: attemptedBy.get(w) ?? 0,
      completed: completedBy.get(w) ?? 0,
      counted: Number(row?.counted ?? 0),
      summaries: Number(row?.summaries ?? 0),
      processes: row?.processes ? row.processes.split(', ') : [],
      decisions: row?.decisions ? row.decisions.split(',') : [],
    };
  });
  const service = record.services.find((x) => x.listen.some((l) => l.port === LOAD_PORT));
  const accepted = service
    ? await serviceAccepted(
        service.log,
        LOAD_PORT,
        clients.map((c) => c.address),
        sinceIso,
      )
    : null;
  const agentLog = await agentLogProblems(record.agent!.log, sinceIso);
  const connect = done.filter((r) => r.connectP99Ms !== null);
  return {
    target: LOAD_TARGET,
    targetAddress,
    port: LOAD_PORT,
    agentPid,
    clients: clients.map((c, i) => ({
      workload: c.workload,
      address: c.address,
      report: done[i]!,
    })),
    attempts,
    connected,
    established,
    accepted,
    failures,
    achievedRate: established / spanSeconds,
    perSecond: distribution(perSecond),
    kernelRate: kernelNew === null ? null : kernelNew / spanSeconds,
    kernelNew,
    connectMs: {
      p50: connect.length ? Math.max(...connect.map((r) => r.connectP50Ms!)) : null,
      p99: connect.length ? Math.max(...connect.map((r) => r.connectP99Ms!)) : null,
      max: connect.length ? Math.max(...connect.map((r) => r.connectMaxMs!)) : null,
    },
    usage: usage.summary,
    samples: usage.samples,
    flows,
    flowWaitSeconds,
    agentLog,
  };
}

// --- The benchmark --------------------------------------------------------------------------

export interface LabBenchResult {
  readonly options: LabBenchOptions;
  readonly kernel: string;
  readonly workloads: number;
  readonly network: string;
  readonly prefix: string;
  readonly upSeconds: number;
  readonly settleSeconds: number;
  readonly provision: ProvisionResult;
  readonly idle: IdleResult;
  readonly load: LoadResult;
  readonly totalSeconds: number;
}

/** Why the benchmark cannot run here, or null. */
export async function labBenchUnavailable(): Promise<string | null> {
  const why = await labUnavailable();
  if (why) return why;
  for (const tool of ['conntrack', 'ss', 'flock'])
    if (!(await hasCommand(tool))) return `\`${tool}\` is not installed (the agent needs it)`;
  return null;
}

export async function runLabBench(
  options: LabBenchOptions,
  log: (line: string) => void,
): Promise<LabBenchResult> {
  const why = await labBenchUnavailable();
  if (why) throw new Error(`lab bench cannot run: ${why}`);
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)}s`;
  const say = (line: string) => log(`[${elapsed()}] ${line}`);
  const kernel = (await run(['uname', '-r'])).stdout.trim();

  const unlock = await lockPrefix(PREFIX, 300_000);
  const work = await mkdtemp(join(tmpdir(), 'bulkhead-bench-lab-'));
  const plane = new ControlPlane(await freePort(), join(work, 'plane'));
  const children = new Set<ChildProcess>();
  let failed = true;
  let cleaning: Promise<void> | null = null;
  const cleanup = (keepLogs: boolean): Promise<void> =>
    (cleaning ??= (async () => {
      for (const c of children) c.kill('SIGKILL');
      try {
        await labDown({
          labDir: LAB_DIR,
          prefix: PREFIX,
          connect: plane.running ? () => plane.client : null,
          keepLogs,
        });
      } catch (e) {
        log(`taking the lab down failed: ${(e as Error).message}`);
      }
      await plane.stop();
      if (keepLogs) log(`kept for reading: ${work} (control plane), ${LAB_DIR}/log.d (lab logs)`);
      else await rm(work, { recursive: true, force: true });
    })());
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: taking the lab down`);
    void cleanup(false).finally(async () => {
      await unlock();
      process.kill(process.pid, signal);
    });
  };
  const onExit = () => plane.kill();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', onExit);
  try {
    // A crashed run's leftovers (its state file is in LAB_DIR, so its relay stops too).
    await labDown({ labDir: LAB_DIR, prefix: PREFIX, connect: null });
    await plane.start();
    say(`control plane on ${plane.url} (SQLite in ${plane.dataDir})`);
    await plane.client.request('POST', '/policy/draft/apply', {
      documents: [servicesRuleset, rotatingRuleset(0), outsideList],
    });
    await plane.client.request('POST', '/policy/provision', { message: 'bench: services' });

    const file = join(work, 'topology.yaml');
    await writeFile(file, topologyYaml());
    const upStart = performance.now();
    const state = await labUp({
      file,
      labDir: LAB_DIR,
      prefix: PREFIX,
      agents: {
        client: plane.client,
        program: builtAgentProgram(),
        relayPort: RELAY_PORT,
        pairTimeoutMs: 180_000,
      },
      progress: (line) => say(`lab: ${line}`),
    });
    const upSeconds = (performance.now() - upStart) / 1000;
    const workloads = new Set(state.topology.workloads.map((w) => w.name));
    const settleStart = performance.now();
    await waitSettled(plane, workloads, 120_000);
    const settleSeconds = (performance.now() - settleStart) / 1000;
    // The single-workload rule names a workload, so it can exist only once the lab's do.
    await plane.client.request('POST', '/policy/draft/apply', { documents: [singleRuleset(0)] });
    await plane.client.request('POST', '/policy/provision', { message: 'bench: single' });
    await waitSettled(plane, workloads, 60_000);
    say(
      `lab up in ${upSeconds.toFixed(0)} s; every agent enforcing its policy ${settleSeconds.toFixed(1)} s later`,
    );
    // Let start-up work (first inventory, first dumps) pass before anything is timed.
    await sleep(5000);

    say(
      `provision to enforced: ${options.provisions} provisions, polling every ${options.pollMs} ms`,
    );
    const provision = await provisionLatency(plane, state, options, say);

    await sleep(3000);
    const targetPid = state.workloads.find((w) => w.name === LOAD_TARGET)!.agent!.pid;
    say(
      `idle: sampling the agent on ${LOAD_TARGET} (pid ${targetPid}), every agent and a bare node for ${options.idleSeconds} s`,
    );
    const idle = await idleBaselines(state, targetPid, options.idleSeconds, children);

    say(
      `load: ${options.rate} new connections/s to ${LOAD_TARGET}:${LOAD_PORT} from ${LOAD_CLIENTS.join(', ')} for ${options.loadSeconds} s`,
    );
    const load = await loadRun(state, plane.dataDir, options, children, say);
    failed = false;
    return {
      options,
      kernel,
      workloads: workloads.size,
      network: NETWORK,
      prefix: PREFIX,
      upSeconds,
      settleSeconds,
      provision,
      idle,
      load,
      totalSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    say('taking the lab down');
    try {
      // BENCH_LAB_KEEP_LOGS=1 keeps the control plane's data and log and the lab's logs.
      await cleanup(failed || process.env.BENCH_LAB_KEEP_LOGS === '1');
    } finally {
      process.off('exit', onExit);
      await unlock();
    }
  }
}

// --- The report -----------------------------------------------------------------------------

const ms = (x: number): string => (Number.isNaN(x) ? '-' : `${x.toFixed(0)} ms`);
const mb = (x: number): string => `${x.toFixed(1)} MB`;
const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT MET');

/** Agent CPU per policy apply: the agents' CPU over the provision phase less their idle rate. */
function cpuPerApply(r: LabBenchResult): number | null {
  const p = r.provision;
  const applies = p.runs.reduce((n, run) => n + run.agents.length, 0);
  if (!applies) return null;
  const idle = r.idle.allAgents.cpuTreeMean * r.idle.allAgents.count * p.seconds;
  return (Math.max(0, p.agentCpuSeconds - idle) * 1000) / applies;
}

export function labReport(r: LabBenchResult): string {
  const p = r.provision;
  const prov: string[][] = [
    [
      'provision',
      'changes',
      'version',
      'call',
      'agents',
      'seen p50',
      'seen p99',
      'seen max',
      'ack p50',
      'ack max',
      'applied p50',
      'applied max',
    ],
  ];
  const row = (
    label: string,
    kind: string,
    version: string,
    call: string,
    agents: string,
    sum: Omit<LatencySummary, 'callMs'>,
  ): string[] => [
    label,
    kind,
    version,
    call,
    agents,
    ms(sum.seen.p50),
    ms(sum.seen.p99),
    ms(sum.seen.max),
    ms(sum.ack.p50),
    ms(sum.ack.max),
    ms(sum.applied.p50),
    ms(sum.applied.max),
  ];
  for (const run of p.runs) {
    const one = latencySummary([run]);
    prov.push(
      row(
        String(run.provision),
        run.kind === 'all' ? 'every workload' : SINGLE_TARGET,
        String(run.version),
        ms(run.callMs),
        `${run.agents.length}/${run.workloadsChanged}`,
        one,
      ),
    );
  }
  const all = p.runs.filter((x) => x.kind === 'all');
  const single = p.runs.filter((x) => x.kind === 'single');
  prov.push(
    row('all', 'every workload', '-', ms(p.all.callMs.p50), String(p.all.seen.n), p.all),
    row(
      'all',
      `${SINGLE_TARGET} (baseline)`,
      '-',
      ms(p.single.callMs.p50),
      String(p.single.seen.n),
      p.single,
    ),
  );
  const missing = all.reduce((n, run) => n + run.missing.length, 0);
  const missingSingle = single.reduce((n, run) => n + run.missing.length, 0);
  const perApply = cpuPerApply(r);
  const lagging = p.runs.flatMap((run) =>
    run.agents
      .filter((a) => a.appliedMs !== null && a.seenMs - a.appliedMs > 5000)
      .map(
        (a) =>
          `${a.workload} (provision ${run.provision} ${run.kind}: applied ${ms(a.appliedMs!)}, ack recorded ${a.ackMs === null ? '?' : ms(a.ackMs)}, seen ${ms(a.seenMs)})`,
      ),
  );
  const regressed = p.runs.flatMap((run) =>
    run.regressions.map((w) => `${w} (provision ${run.provision} ${run.kind})`),
  );

  const i = r.idle;
  const l = r.load;
  const bareRow = (label: string, b: IdleResult['bareNode']) => [
    label,
    mb(b.rssMb.p50),
    mb(b.rssMb.max),
    pct(b.cpuSelf),
    '-',
    '-',
  ];
  const usage: string[][] = [
    ['process', 'RSS p50', 'RSS max', 'CPU (process)', 'CPU (with its children)', 'machine busy'],
    bareRow('bare node -e "setInterval(()=>{},1000)", as agents run (baseline)', i.bareNode),
    bareRow("the same in this benchmark's environment", i.bareNodeCallerEnv),
    [
      `agent on ${l.target}, idle (baseline)`,
      mb(i.target.rssMb.p50),
      mb(i.target.rssMb.max),
      pct(i.target.cpuSelf),
      pct(i.target.cpuTree),
      pct(i.target.machineBusy),
    ],
    [
      `all ${i.allAgents.count} agents, idle (median; max)`,
      mb(i.allAgents.rssMb.p50),
      mb(i.allAgents.rssMb.max),
      `${pct(i.allAgents.cpuSelf.p50)}; ${pct(i.allAgents.cpuSelf.max)}`,
      `${pct(i.allAgents.cpuTreeMean)} (mean)`,
      '-',
    ],
    [
      `agent on ${l.target}, under load`,
      mb(l.usage.rssMb.p50),
      mb(l.usage.rssMb.max),
      pct(l.usage.cpuSelf),
      pct(l.usage.cpuTree),
      pct(l.usage.machineBusy),
    ],
  ];
  const perSec = [...l.usage.cpuSelfPerSecond].sort((a, b) => a - b);
  const childNames = [
    ...new Set([...Object.keys(i.target.cpuChildren), ...Object.keys(l.usage.cpuChildren)]),
  ];
  const failures = Object.entries(l.failures)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
  const flows: string[][] = [
    [
      'agent on',
      'side',
      'attempted',
      'handshakes',
      'counted',
      'counted/attempted',
      'summaries',
      'process',
      'decision',
    ],
  ];
  for (const f of l.flows)
    flows.push([
      f.workload,
      f.side,
      String(f.attempted),
      String(f.completed),
      String(f.counted),
      f.attempted ? `${((f.counted / f.attempted) * 100).toFixed(2)}%` : '-',
      String(f.summaries),
      f.processes.join(',') || '-',
      f.decisions.join(',') || '-',
    ]);
  const logLines = Object.entries(l.agentLog).map(([k, n]) => `  ${n} x ${k}`);
  const target = l.flows.find((f) => f.side === 'destination')!;
  // Every connection the kernel tracked lies between the handshakes completed and the SYNs sent.
  const countedOk = target.counted >= target.completed && target.counted <= target.attempted;
  return [
    `Lab: ${r.workloads} workloads (5 apps x 2 envs x 5 roles), one agent each in full mode, prefix ${r.prefix}, network ${r.network}; kernel ${r.kernel}.`,
    `lab up (namespaces, services, pairing) ${r.upSeconds.toFixed(0)} s, every agent enforcing ${r.settleSeconds.toFixed(1)} s later; whole run ${r.totalSeconds.toFixed(0)} s.`,
    `All 50 agents, their 50 services and the control plane share this machine's cores: every figure below includes that contention.`,
    '',
    `1. Provision to enforced. "every workload": the provision moves the port of an allow rule that selects every workload, so all ${r.workloads} agents get a new revision at once;`,
    `   "${SINGLE_TARGET}" (baseline, interleaved): a rule from an IP list to that one workload moves, so only its agent has work to do.`,
    `   From the start of the POST /policy/provision call to: seen = the first GET /api/v1/agents poll showing the agent's applied version; ack = the server's record of`,
    `   the agent's acknowledgement (lastHeartbeatAt, set by the ack: an upper bound); applied = the agent's own "applied policy" log line (after nft loaded it).`,
    `   Polled every ${r.options.pollMs} ms; measured poll period p50 ${ms(p.pollPeriodMs.p50)}, p99 ${ms(p.pollPeriodMs.p99)}, max ${ms(p.pollPeriodMs.max)} (request p50 ${ms(p.pollRequestMs.p50)}, max ${ms(p.pollRequestMs.max)}): the resolution of "seen".`,
    table(prov),
    `   target p99 <= 1 s, every agent at once (${p.all.seen.n} agent x provision pairs): ${verdict(p.all.seen.p99 <= 1000 && missing === 0)} (seen p99 ${ms(p.all.seen.p99)}; applied p99 ${ms(p.all.applied.p99)})${missing ? `; ${missing} pairs never applied within 30 s` : ''}`,
    `   one agent alone: seen p99 ${ms(p.single.seen.p99)}, applied p99 ${ms(p.single.applied.p99)}${missingSingle ? `; ${missingSingle} never applied within 30 s` : ''}.`,
    `   the control plane's record more than 5 s behind the agent's own: ${lagging.length ? lagging.join('; ') : 'never'}; records that went backwards: ${regressed.length ? regressed.join('; ') : 'none seen'}.`,
    `   Over the provision phase (${p.seconds.toFixed(0)} s) the machine was ${pct(p.machineBusy)} busy; the agents used ${p.agentCpuSeconds.toFixed(1)} CPU s (with their nft/ss/conntrack children),` +
      ` the control plane ${p.controlPlaneCpuSeconds.toFixed(1)} CPU s${perApply === null ? '' : `: about ${perApply.toFixed(0)} ms of agent CPU per policy apply beyond idle, so ${r.workloads} applies at once need ~${((perApply * r.workloads) / 1000).toFixed(1)} CPU s on this machine's cores`}.`,
    '',
    `2. The agent on ${l.target} (pid ${l.agentPid}) while ${l.clients.length} namespaces (${l.clients.map((c) => c.workload).join(', ')}) open new TCP connections to ${l.targetAddress}:${l.port}`,
    `   on a fixed schedule of ${r.options.rate}/s for ${r.options.loadSeconds} s (connect, service greeting, close); RSS = VmRSS, CPU = utime+stime as a share of one core, sampled every second.`,
    `   "with its children" adds the processes the agent runs (conntrack -E, nft monitor, ss, conntrack -L dumps, nft).`,
    table(usage),
    `   targets: RSS <= 50 MB under load: ${verdict(l.usage.rssMb.max <= 50)} (max ${mb(l.usage.rssMb.max)}; bare node ${mb(i.bareNode.rssMb.p50)}); CPU <= 2% of a core under load: ${verdict(l.usage.cpuSelf <= 0.02)} (agent process ${pct(l.usage.cpuSelf)}, with children ${pct(l.usage.cpuTree)}; idle ${pct(i.target.cpuSelf)}).`,
    `   agent CPU per second under load: median ${pct(percentile(perSec, 0.5))}, max ${pct(perSec[perSec.length - 1] ?? 0)}; its children's RSS max ${mb(l.usage.childrenRssMbMax)};`,
    `   its children's CPU, idle -> under load: ${childNames.map((c) => `${c} ${pct(i.target.cpuChildren[c] ?? 0)} -> ${pct(l.usage.cpuChildren[c] ?? 0)}`).join(', ')}.`,
    `   load: ${l.attempts} attempted, ${l.connected} handshakes, ${l.established} greetings${failures ? ` (failed: ${failures})` : ''}: ${l.achievedRate.toFixed(0)}/s achieved (clients' clocks; per full second p50 ${l.perSecond.p50}, min ${l.perSecond.min});`,
    `   the service on ${l.target} logged ${l.accepted ?? '?'} accepted; the lab's conntrack counter in its namespace: ${l.kernelNew ?? '?'} new inbound packets (${l.kernelRate === null ? '?' : `${l.kernelRate.toFixed(0)}/s`}); connect-to-greeting p50 ${l.connectMs.p50?.toFixed(1) ?? '-'} ms, p99 ${l.connectMs.p99?.toFixed(1) ?? '-'} ms.`,
    `   Flows in the control plane's store for that path (read ${l.flowWaitSeconds.toFixed(0)} s after the load ended):`,
    table(flows),
    `   the agent on ${l.target} counted ${target.counted} connections of ${target.attempted} attempted (${target.completed} completed): ${verdict(countedOk)}.`,
    logLines.length
      ? `   its log since the load began:\n${logLines.join('\n')}`
      : `   its log since the load began: no warnings or errors`,
  ].join('\n');
}

/**
 * API throughput from simulated agents: heartbeats and flow-summary batches over real
 * HTTP to a control plane running in a process of its own, on SQLite and on PostgreSQL.
 *
 * The baseline, measured in the same run on the same store, is the same batches inserted
 * straight into the flow table by one connection, with the server's own insert path but
 * no HTTP, no validation and no auth: what the database alone takes from one writer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type Insertable } from 'kysely';
import pg from 'pg';
import { hashSecret, issueSecret } from '../src/server/credentials.js';
import { dropPostgresSchema } from '../src/store/dialect/postgres.js';
import { appendFlowBatch } from '../src/store/flows.js';
import type { AgentsTable, WorkloadsTable } from '../src/store/schema.js';
import { openStore, type Store, type StoreOptions } from '../src/store/store.js';

export interface ApiBenchOptions {
  readonly agents: readonly number[];
  readonly batchSize: number;
  /** Concurrent connections of the load generator. */
  readonly concurrency: number;
  readonly seconds: number;
  readonly postgresUrl: string;
}

export interface LatencySummary {
  readonly requests: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface ApiBenchResult {
  readonly store: 'sqlite' | 'postgres';
  readonly agents: number;
  readonly seconds: number;
  readonly heartbeats: LatencySummary;
  readonly flowBatches: LatencySummary;
  readonly summariesPerSecond: number;
  readonly errors: number;
  /** Cores the load generator itself kept busy (it shares the machine with the server). */
  readonly generatorCores: number;
  /**
   * The server's CPU time per summary ingested (µs), heartbeats and the background roll-up
   * included: on a shared machine a steadier figure than the rate, which depends on what
   * else runs.
   */
  readonly serverMicrosPerSummary: number;
  /** Direct inserts of the same batches into the same store, no HTTP. */
  readonly baselineSummariesPerSecond: number;
  /**
   * Summaries not yet rolled up into the flow store's buckets when the load ended, and how
   * long the background roll-up then took to clear them: ingest that only piles up in the
   * log would not count.
   */
  readonly pendingAtEnd: number;
  readonly rollupCatchUpSeconds: number;
  /** Summaries per second ingested and rolled up: from the first request until the roll-up caught up. */
  readonly rolledUpPerSecond: number;
}

const OWNER = 'bench-owner-key-0123456789abcdef';

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summarise(latencies: number[]): LatencySummary {
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies[latencies.length - 1] ?? 0,
  };
}

/** One flow summary as an agent reports it; addresses from the benchmarking range. */
function summary(agent: number, i: number): Record<string, unknown> {
  const now = new Date().toISOString();
  return {
    src: `198.18.${(agent >> 8) & 255}.${agent & 255}`,
    dst: `198.19.${(i >> 8) & 255}.${i & 255}`,
    proto: i % 5 === 0 ? 'udp' : 'tcp',
    dport: [443, 3306, 5432, 8080, 53][i % 5],
    process: ['nginx', 'java', 'postgres', 'node', 'dnsmasq'][i % 5],
    firstSeen: now,
    lastSeen: now,
    connections: 1 + (i % 7),
    bytes: 1000 * (1 + (i % 13)),
  };
}

/** Creates `count` paired agents straight in the store; returns their credentials. */
async function seedAgents(store: Store, count: number): Promise<string[]> {
  const now = new Date().toISOString();
  const credentials: string[] = [];
  const chunk = 500;
  for (let start = 0; start < count; start += chunk) {
    const workloads: Insertable<WorkloadsTable>[] = [];
    const agents: Insertable<AgentsTable>[] = [];
    for (let i = start; i < Math.min(count, start + chunk); i++) {
      const secret = issueSecret('agent');
      credentials.push(secret.secret);
      const name = `bench-${i}`;
      workloads.push({
        name,
        addresses: JSON.stringify([`198.18.${(i >> 8) & 255}.${i & 255}`]),
        labels: JSON.stringify({
          app: `app${i % 50}`,
          role: ['web', 'api', 'db'][i % 3]!,
          env: 'prod',
        }),
        mode: 'visibility',
        managed: 1 as const,
        users: '[]',
        inventory: null,
        created_at: now,
        updated_at: now,
      });
      agents.push({
        id: `bench-agent-${i}`,
        workload: name,
        credential_hash: hashSecret(secret.secret),
        status: 'running',
        last_heartbeat_at: null,
        applied_version: null,
        applied_revision: null,
        created_at: now,
        revoked_at: null,
      });
    }
    await store.transaction(async (trx) => {
      await trx.insertInto('workloads').values(workloads).execute();
      await trx.insertInto('agents').values(agents).execute();
    });
  }
  return credentials;
}

interface RunningServer {
  readonly url: string;
  readonly child: ChildProcess;
}

/** A process's CPU time so far (user + system), in seconds, from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
/** USER_HZ: what /proc counts CPU time in, 100 on Linux. */
const CLOCK_TICKS = 100;

/** Starts `bulkhead server` in a child process on a free port. */
function startServer(env: NodeJS.ProcessEnv): Promise<RunningServer> {
  const main = resolve(fileURLToPath(import.meta.url), '../../src/cli/main.js');
  const child = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      main,
      'server',
      '--port',
      '0',
    ],
    {
      env: { ...process.env, ...env, BULKHEAD_OWNER_KEY: OWNER },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  return new Promise((resolvePromise, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 30_000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      err += d;
      const m = /control plane on (http:\/\/[^\s]+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolvePromise({ url: m[1]!, child });
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
  });
}

/** Waits for the server's roll-up to clear the log; what was pending at first, and how long it took. */
async function rollupCatchUp(url: string): Promise<{ pending: number; seconds: number }> {
  const started = performance.now();
  const pendingNow = async (): Promise<number> => {
    const res = await fetch(new URL('/api/v1/flows/status', url), {
      headers: { authorization: `Bearer ${OWNER}` },
    });
    if (!res.ok) throw new Error(`GET /flows/status: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { pendingSummaries: number }).pendingSummaries;
  };
  const pending = await pendingNow();
  for (let left = pending; left > 0; left = await pendingNow()) {
    if (performance.now() - started > 300_000)
      throw new Error(`the roll-up still had ${left} summaries pending after 300 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { pending, seconds: pending === 0 ? 0 : (performance.now() - started) / 1000 };
}

async function stopServer(server: RunningServer): Promise<void> {
  if (server.child.exitCode !== null) return;
  const done = new Promise((r) => server.child.once('exit', r));
  server.child.kill('SIGTERM');
  await done;
}

/** The load: `concurrency` loops, each sending a flow batch then a heartbeat as the next agent. */
async function drive(
  url: string,
  credentials: readonly string[],
  options: ApiBenchOptions,
): Promise<{
  heartbeats: number[];
  batches: number[];
  errors: number;
  seconds: number;
  generatorCpu: number;
}> {
  const heartbeats: number[] = [];
  const batches: number[] = [];
  let errors = 0;
  let next = 0;
  let batchNo = 0;
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const deadline = started + options.seconds * 1000;
  // The generator shares the machine with the server: serialize each agent's summaries
  // once (16 variants), so that its own CPU goes to sending, not to building bodies.
  const bodies = Array.from({ length: 16 }, (_, agent) =>
    JSON.stringify(Array.from({ length: options.batchSize }, (_, i) => summary(agent, i))),
  );
  const heartbeat = JSON.stringify({ status: 'running' });
  // node:http with kept-alive sockets rather than fetch: the generator shares the cores
  // with the server, so the fewer cycles it spends per request the better.
  const target = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  const post = (path: string, token: string, body: string): Promise<number> =>
    new Promise((resolvePost, reject) => {
      const t0 = performance.now();
      const req = http.request(
        {
          agent,
          host: target.hostname,
          port: target.port,
          method: 'POST',
          path: `/api/v1${path}`,
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            if ((res.statusCode ?? 500) >= 300) errors++;
            resolvePost(performance.now() - t0);
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const agent = next++ % credentials.length;
      const token = credentials[agent]!;
      const body = `{"batchId":"b${batchNo++}","summaries":${bodies[agent % bodies.length]!}}`;
      batches.push(await post('/agent/flows', token, body));
      heartbeats.push(await post('/agent/heartbeat', token, heartbeat));
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  agent.destroy();
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    heartbeats,
    batches,
    errors,
    seconds,
    generatorCpu: (cpu.user + cpu.system) / 1e6 / seconds,
  };
}

/** The same batches straight into the same table, for `seconds`. */
async function baseline(store: Store, options: ApiBenchOptions): Promise<number> {
  const started = performance.now();
  let rows = 0;
  let batch = 0;
  while (performance.now() - started < Math.min(options.seconds, 5) * 1000) {
    const values = Array.from({ length: options.batchSize }, (_, i) => {
      const s = summary(batch, i) as {
        src: string;
        dst: string;
        proto: string;
        dport: number;
        process: string;
        firstSeen: string;
        lastSeen: string;
        connections: number;
        bytes: number;
      };
      return {
        agent_id: 'baseline',
        batch_id: `baseline-${batch}`,
        workload: 'baseline',
        src: s.src,
        dst: s.dst,
        proto: s.proto,
        dport: s.dport,
        process: s.process,
        first_seen: s.firstSeen,
        last_seen: s.lastSeen,
        connections: s.connections,
        bytes: s.bytes,
        decision: null,
      };
    });
    await appendFlowBatch(
      store,
      {
        agent_id: 'baseline',
        batch_id: `baseline-${batch}`,
        received_at: new Date().toISOString(),
        summaries: values.length,
      },
      values,
    );
    rows += values.length;
    batch++;
  }
  await sql`delete from flow_log where agent_id = 'baseline'`.execute(store.db);
  await sql`delete from flow_batches where agent_id = 'baseline'`.execute(store.db);
  return rows / ((performance.now() - started) / 1000);
}

async function postgresReachable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function runApiBench(
  options: ApiBenchOptions,
  log: (line: string) => void,
): Promise<ApiBenchResult[]> {
  const results: ApiBenchResult[] = [];
  const stores: ('sqlite' | 'postgres')[] = ['sqlite'];
  if (await postgresReachable(options.postgresUrl)) stores.push('postgres');
  else log(`PostgreSQL not reachable at ${options.postgresUrl}: its rows are skipped`);
  for (const kind of stores) {
    for (const agents of options.agents) {
      const dir = await mkdtemp(join(tmpdir(), 'bulkhead-bench-api-'));
      const schema = `bh_bench_${process.pid}_${agents}`;
      const storeOptions: StoreOptions =
        kind === 'sqlite' ? { dataDir: dir } : { databaseUrl: options.postgresUrl, schema };
      const env =
        kind === 'sqlite'
          ? { BULKHEAD_DATA_DIR: dir }
          : { DATABASE_URL: options.postgresUrl, BULKHEAD_DATABASE_SCHEMA: schema };
      const store = await openStore(storeOptions);
      let server: RunningServer | null = null;
      try {
        const credentials = await seedAgents(store, agents);
        const base = await baseline(store, options);
        server = await startServer(env);
        log(
          `${kind}, ${agents} agents: driving ${options.concurrency} connections for ${options.seconds} s`,
        );
        const cpuBefore = await cpuSeconds(server.child.pid!);
        const run = await drive(server.url, credentials, options);
        const serverCpu = (await cpuSeconds(server.child.pid!)) - cpuBefore;
        const caughtUp = await rollupCatchUp(server.url);
        const flowBatches = summarise(run.batches);
        const result: ApiBenchResult = {
          store: kind,
          agents,
          seconds: run.seconds,
          heartbeats: summarise(run.heartbeats),
          flowBatches,
          summariesPerSecond: (flowBatches.requests * options.batchSize) / run.seconds,
          errors: run.errors,
          generatorCores: run.generatorCpu,
          serverMicrosPerSummary: (serverCpu * 1e6) / (flowBatches.requests * options.batchSize),
          baselineSummariesPerSecond: base,
          pendingAtEnd: caughtUp.pending,
          rollupCatchUpSeconds: caughtUp.seconds,
          rolledUpPerSecond:
            (flowBatches.requests * options.batchSize) / (run.seconds + caughtUp.seconds),
        };
        log(
          `${kind}, ${agents} agents: ${Math.round(result.summariesPerSecond)} summaries/s (baseline ${Math.round(base)}), ` +
            `batch p50 ${flowBatches.p50Ms.toFixed(1)} ms p99 ${flowBatches.p99Ms.toFixed(1)} ms, ` +
            `heartbeat p50 ${result.heartbeats.p50Ms.toFixed(1)} ms p99 ${result.heartbeats.p99Ms.toFixed(1)} ms, ${run.errors} errors, ` +
            `server CPU ${result.serverMicrosPerSummary.toFixed(1)} µs per summary, load generator ${(run.generatorCpu * 100).toFixed(0)}% of a core; ` +
            `roll-up: ${caughtUp.pending} pending at the end, cleared in ${caughtUp.seconds.toFixed(1)} s (${Math.round(result.rolledUpPerSecond)} summaries/s ingested and rolled up)`,
        );
        results.push(result);
      } finally {
        if (server) await stopServer(server);
        await store.close();
        await rm(dir, { recursive: true, force: true });
        if (kind === 'postgres') await dropPostgresSchema(options.postgresUrl, schema);
      }
    }
  }
  return results;
}

export function apiReport(results: readonly ApiBenchResult[], batchSize: number): string {
  const rows = [
    [
      'store',
      'agents',
      'summaries/s',
      'baseline/s',
      'ratio',
      'batch p50',
      'batch p99',
      'heartbeat p50',
      'heartbeat p99',
      'server CPU/summary',
      'rolled up/s',
      'requests',
      'errors',
    ],
    ...results.map((r) => [
      r.store,
      String(r.agents),
      String(Math.round(r.summariesPerSecond)),
      String(Math.round(r.baselineSummariesPerSecond)),
      `${(r.summariesPerSecond / r.baselineSummariesPerSecond).toFixed(2)}x`,
      `${r.flowBatches.p50Ms.toFixed(1)} ms`,
      `${r.flowBatches.p99Ms.toFixed(1)} ms`,
      `${r.heartbeats.p50Ms.toFixed(1)} ms`,
      `${r.heartbeats.p99Ms.toFixed(1)} ms`,
      `${r.serverMicrosPerSummary.toFixed(1)} µs`,
      String(Math.round(r.rolledUpPerSecond)),
      String(r.flowBatches.requests + r.heartbeats.requests),
      String(r.errors),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return [
    `API throughput (flow batches of ${batchSize} summaries then a heartbeat, per simulated agent; baseline = direct inserts into the same store;`,
    `rolled up/s = summaries over the time from the first request until the roll-up had cleared the log):`,
    ...rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')),
  ].join('\n');
}

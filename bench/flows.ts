/**
 * The flow store (issue 5), on SQLite and PostgreSQL:
 *
 * - **ingest**: agent flow summaries rolled up from the ingest log into edges and minute,
 *   hour and day buckets (the flow store's own `catchUp`, decisions included), in
 *   summaries/s. The baseline, measured first in the same run on the same store, is the
 *   log append alone: the same summaries written into the ingest log (`flow_log`, one row
 *   per batch) by the server's own insert path.
 * - **queries**: map and explorer latency (p50/p95) over N aggregated rows, generated
 *   straight into the bucket tables with one INSERT ... SELECT per slice of hours (edges
 *   x hours), for the windows 1h (minutes), 24h and 7d (hours), unfiltered and filtered,
 *   the explorer's first page and a deep page.
 *
 * Each store gets a fresh SQLite file in a temporary directory, or a PostgreSQL schema of
 * its own (dropped after). The estate: `--workloads` workloads in 40 apps x 3 envs x 5
 * roles, with one ruleset per app and an internet IP list, provisioned as version 1.
 */
import { mkdir, mkdtemp, readdir, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type Insertable } from 'kysely';
import pg from 'pg';
import type {
  EdgeKey,
  FlowFilter,
  FlowSort,
  MapQuery,
  TrafficRecord,
} from '../src/analysis/flows/model.js';
import { AuditFeed } from '../src/server/audit.js';
import { createFlowStore } from '../src/server/flows/service.js';
import type { FlowStoreService } from '../src/server/flows/types.js';
import { dropPostgresSchema } from '../src/store/dialect/postgres.js';
import { appendFlowBatch, type NewFlowSummary } from '../src/store/flows.js';
import type { WorkloadsTable } from '../src/store/schema.js';
import { openStore, type Store, type StoreOptions } from '../src/store/store.js';
import { table } from './report.js';

export type StoreKind = 'sqlite' | 'postgres';

export interface FlowsBenchOptions {
  readonly stores: readonly StoreKind[];
  readonly postgresUrl: string;
  /** Flow summaries rolled up in the ingest run (0: skip it). */
  readonly summaries: number;
  /** Aggregated hour rows generated for the query run (0: skip it). */
  readonly rows: number;
  /** Distinct edges; rows / edges hours of history. */
  readonly edges: number;
  readonly workloads: number;
  /** Timed repetitions of each query (after one untimed). */
  readonly runs: number;
  /** The explorer page timed as "deep" (1-based; 100 rows a page). */
  readonly deepPage: number;
  /** Minutes of minute buckets generated (for the 1h window). */
  readonly minutes: number;
}

export const DEFAULT_FLOWS_OPTIONS: Omit<FlowsBenchOptions, 'stores' | 'postgresUrl'> = {
  summaries: 1_000_000,
  rows: 10_000_000,
  edges: 20_000,
  workloads: 2_000,
  runs: 7,
  deepPage: 50,
  minutes: 90,
};

/** Targets from issue 5. */
export const TARGET_SUMMARIES_PER_SECOND = 100_000;
export const TARGET_P95_MS = 1000;

/**
 * When the summaries happened: `live`, within the last 10 minutes, as agents report traffic
 * as it flows (many summaries share a minute bucket); `backfill`, spread over a whole day, as
 * an import of history (almost every summary a minute bucket of its own: the most writing
 * per summary the roll-up can meet).
 */
export type IngestShape = 'live' | 'backfill';
const SHAPE_SPAN_MS: Readonly<Record<IngestShape, number>> = {
  live: 10 * 60_000,
  backfill: 86_400_000,
};

export interface IngestResult {
  readonly store: StoreKind;
  readonly shape: IngestShape;
  readonly summaries: number;
  /** Summaries kept as traffic (a source-side copy of a conversation the destination reports is dropped). */
  readonly edges: number;
  readonly baselineSeconds: number;
  readonly baselinePerSecond: number;
  readonly rollupSeconds: number;
  readonly rollupPerSecond: number;
}

export interface QueryTiming {
  readonly name: string;
  readonly window: string;
  readonly p50Ms: number;
  readonly p95Ms: number;
  /** Edges (map) or rows (explorer) in the answer. */
  readonly answer: string;
  /** The same question summed by one reader (the window whole, one connection). */
  readonly oneReader: { readonly p50Ms: number; readonly p95Ms: number };
}

export interface QueryResult {
  readonly store: StoreKind;
  readonly edges: number;
  readonly hours: number;
  readonly rows: { minute: number; hour: number; day: number };
  readonly generateSeconds: number;
  readonly diskBytes: number;
  readonly freeBytes: number;
  readonly timings: readonly QueryTiming[];
}

export interface FlowsBenchResult {
  readonly options: FlowsBenchOptions;
  readonly ingest: readonly IngestResult[];
  readonly queries: readonly QueryResult[];
}

// ------------------------------------------------------------------ the estate

const ENVS = ['prod', 'staging', 'dev'] as const;
const ROLES = ['web', 'api', 'db', 'cache', 'queue'] as const;
const APPS = 40;
const SERVES: Readonly<Record<(typeof ROLES)[number], { port: number; process: string }>> = {
  web: { port: 443, process: 'nginx' },
  api: { port: 8080, process: 'java' },
  db: { port: 5432, process: 'postgres' },
  cache: { port: 6379, process: 'redis-server' },
  queue: { port: 5672, process: 'beam.smp' },
};

interface BenchWorkload {
  readonly name: string;
  readonly address: string;
  readonly role: (typeof ROLES)[number];
}

function benchWorkloads(count: number): BenchWorkload[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `w${i}`,
    address: `10.${100 + ((i >> 16) & 127)}.${(i >> 8) & 255}.${i & 255}`,
    role: ROLES[i % ROLES.length]!,
  }));
}

/** Workloads, one ruleset per app and an internet IP list, provisioned as version 1. */
async function seedEstate(store: Store, workloads: readonly BenchWorkload[]): Promise<void> {
  const now = new Date().toISOString();
  const rows: Insertable<WorkloadsTable>[] = workloads.map((w, i) => ({
    name: w.name,
    addresses: JSON.stringify([w.address]),
    labels: JSON.stringify({
      app: `app${i % APPS}`,
      env: ENVS[Math.floor(i / APPS) % ENVS.length]!,
      role: w.role,
    }),
    mode: i % 10 === 0 ? 'visibility' : 'full',
    managed: 1 as const,
    users: '[]',
    inventory: null,
    created_at: now,
    updated_at: now,
  }));
  const documents = [
    {
      kind: 'IpList',
      name: 'internet',
      spec: {
        kind: 'IpList',
        name: 'internet',
        include: ['0.0.0.0/0'],
        exclude: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'],
      },
    },
    ...Array.from({ length: APPS }, (_, a) => ({
      kind: 'Ruleset',
      name: `app${a}`,
      spec: {
        kind: 'Ruleset',
        name: `app${a}`,
        scope: { labels: { app: `app${a}` } },
        rules: [
          {
            name: 'internet-to-web',
            sources: { ipLists: ['internet'] },
            destinations: { labels: { role: 'web' } },
            services: ['443/tcp'],
          },
          {
            name: 'web-to-api',
            sources: { labels: { role: 'web' } },
            destinations: { labels: { role: 'api' } },
            services: ['8080/tcp'],
          },
          {
            name: 'api-to-data',
            sources: { labels: { role: 'api' } },
            destinations: { labels: { role: ['db', 'cache', 'queue'] } },
            services: ['5432/tcp', '6379/tcp', '5672/tcp'],
          },
        ],
      },
    })),
  ];
  await store.transaction(async (trx) => {
    for (let i = 0; i < rows.length; i += 500)
      await trx
        .insertInto('workloads')
        .values(rows.slice(i, i + 500))
        .execute();
    await trx
      .insertInto('policy_objects')
      .values(
        documents.map((d) => ({
          kind: d.kind,
          name: d.name,
          spec: JSON.stringify(d.spec),
          updated_at: now,
        })),
      )
      .execute();
    await trx
      .insertInto('policy_versions')
      .values({
        version: 1,
        message: 'bench',
        objects: JSON.stringify(documents),
        created_at: now,
        created_by: 'bench',
        restores: null,
      })
      .execute();
    await trx.insertInto('meta').values({ key: 'active_version', value: '1' }).execute();
  });
}

/** A public address for the i-th internet peer (never private or documentation ranges). */
const internet = (i: number) =>
  `${[31, 46, 62, 77, 81, 89, 92, 109][i % 8]}.${(i >> 3) & 255}.${(i >> 11) & 255}.${1 + (i % 250)}`;

interface Conversation {
  readonly src: BenchWorkload | string;
  readonly dst: BenchWorkload | string;
  readonly port: number;
  readonly process: string | null;
}

/**
 * `count` distinct conversations: 70% between workloads (a client to a server's port), 20%
 * from internet peers to web servers, 10% from workloads out to the internet.
 */
function conversations(workloads: readonly BenchWorkload[], count: number): Conversation[] {
  const out: Conversation[] = [];
  const seen = new Set<string>();
  const n = workloads.length;
  for (let i = 0; out.length < count; i++) {
    const kind = i % 10;
    let c: Conversation;
    if (kind < 7) {
      const src = workloads[(i * 7919) % n]!;
      const dst = workloads[(i * 104_729 + Math.floor(i / n)) % n]!;
      if (src === dst) continue;
      c = { src, dst, port: SERVES[dst.role].port, process: SERVES[dst.role].process };
    } else if (kind < 9) {
      const dst = workloads[((i * 31) % Math.floor(n / ROLES.length)) * ROLES.length]!;
      c = { src: internet(i), dst, port: 443, process: SERVES[dst.role].process };
    } else {
      c = { src: workloads[(i * 13) % n]!, dst: internet(i), port: 443, process: null };
    }
    const id = `${typeof c.src === 'string' ? c.src : c.src.name}|${typeof c.dst === 'string' ? c.dst : c.dst.name}|${c.port}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(c);
  }
  return out;
}

const addressOf = (end: BenchWorkload | string) => (typeof end === 'string' ? end : end.address);

function edgeKey(c: Conversation): EdgeKey {
  const end = (e: BenchWorkload | string) =>
    typeof e === 'string' ? { address: e } : { workload: e.name };
  return {
    source: end(c.src),
    destination: end(c.dst),
    proto: 'tcp',
    port: c.port,
    process: c.process,
  };
}

// ------------------------------------------------------------------ stores

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

interface OpenedStore {
  readonly store: Store;
  readonly flows: FlowStoreService;
  /** The same store with every window summed by one reader: the queries' baseline. */
  readonly oneReader: FlowStoreService;
  diskBytes(): Promise<number>;
  freeBytes(): Promise<number>;
  close(): Promise<void>;
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of await readdir(dir)) total += (await stat(join(dir, f))).size;
  return total;
}

async function openBenchStore(
  kind: StoreKind,
  options: FlowsBenchOptions,
  tag: string,
  { summarizeInWorker = false } = {},
) {
  const dir = await mkdtemp(join(tmpdir(), 'bulkhead-bench-flows-'));
  const schema = `bh_bench_flows_${process.pid}_${tag}`;
  const storeOptions: StoreOptions =
    kind === 'sqlite' ? { dataDir: dir } : { databaseUrl: options.postgresUrl, schema };
  const store = await openStore(storeOptions);
  // Long retention: the generated history must all stay.
  const retention = { minute: 400 * 86400, hour: 400 * 86400, day: 800 * 86400 };
  const flows = createFlowStore(
    { store, audit: new AuditFeed() },
    {
      retention,
      // As the server sums the log and reads windows: in worker threads.
      ...(summarizeInWorker ? { summarizeIn: storeOptions } : {}),
      readWindowsIn: storeOptions,
    },
  );
  const oneReader = createFlowStore(
    { store, audit: new AuditFeed() },
    { retention, windowReaders: 1 },
  );
  const opened: OpenedStore = {
    store,
    flows,
    oneReader,
    async diskBytes() {
      if (kind === 'sqlite') return dirBytes(dir);
      const r = await sql<{
        bytes: string | null;
      }>`select sum(pg_total_relation_size(c.oid))::text as bytes
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = ${schema} and c.relkind = 'r'`.execute(store.db);
      return Number(r.rows[0]?.bytes ?? 0);
    },
    async freeBytes() {
      if (kind === 'sqlite') {
        const s = await statfs(dir);
        return s.bavail * s.bsize;
      }
      // The database server's disk is not ours to see: report the local one when it is local.
      const s = await statfs('/');
      return s.bavail * s.bsize;
    },
    async close() {
      await flows.stop();
      await oneReader.stop();
      await store.close();
      await rm(dir, { recursive: true, force: true });
      if (kind === 'postgres') await dropPostgresSchema(options.postgresUrl, schema);
    },
  };
  return opened;
}

// ------------------------------------------------------------------ ingest

const BATCH = 5_000;

/** The summaries of batch `b`: agent reports spread over the last day, oldest first. */
function summaryBatch(
  convs: readonly Conversation[],
  b: number,
  total: number,
  startMs: number,
  spanMs: number,
): NewFlowSummary[] {
  const rows: NewFlowSummary[] = [];
  for (let i = b * BATCH; i < Math.min(total, (b + 1) * BATCH); i++) {
    const c = convs[(i * 2_654_435_761) % convs.length]!;
    const t = new Date(startMs + Math.floor((i / total) * spanMs)).toISOString();
    // The destination's agent reports traffic it serves; the source's, traffic to the internet.
    const reporter = typeof c.dst === 'string' ? (c.src as BenchWorkload) : c.dst;
    rows.push({
      agent_id: 'bench-agent',
      batch_id: `bench-${b}`,
      workload: reporter.name,
      src: addressOf(c.src),
      dst: addressOf(c.dst),
      proto: 'tcp',
      dport: c.port,
      process: c.process ?? 'curl',
      first_seen: t,
      last_seen: t,
      connections: 1 + (i % 5),
      bytes: 1_000 * (1 + (i % 13)),
      decision: null,
    });
  }
  return rows;
}

async function runIngest(
  kind: StoreKind,
  shape: IngestShape,
  options: FlowsBenchOptions,
  log: (line: string) => void,
): Promise<IngestResult> {
  const s = await openBenchStore(kind, options, `ingest_${shape}`, { summarizeInWorker: true });
  try {
    const workloads = benchWorkloads(options.workloads);
    await seedEstate(s.store, workloads);
    const convs = conversations(workloads, options.edges);
    const spanMs = SHAPE_SPAN_MS[shape];
    const startMs = Date.now() - spanMs;
    const batches = Math.ceil(options.summaries / BATCH);
    log(
      `${kind}, ${shape}: appending ${options.summaries} summaries to the ingest log (the baseline)`,
    );
    let t0 = performance.now();
    for (let b = 0; b < batches; b++) {
      const rows = summaryBatch(convs, b, options.summaries, startMs, spanMs);
      await appendFlowBatch(
        s.store,
        {
          agent_id: 'bench-agent',
          batch_id: `bench-${b}`,
          received_at: new Date().toISOString(),
          summaries: rows.length,
        },
        rows,
      );
    }
    const baselineSeconds = (performance.now() - t0) / 1000;
    log(`${kind}, ${shape}: rolling them up (edges, minute/hour/day buckets, decisions)`);
    t0 = performance.now();
    await s.flows.catchUp();
    const rollupSeconds = (performance.now() - t0) / 1000;
    const status = await s.flows.status();
    if (status.pendingSummaries !== 0)
      throw new Error(`${kind}: ${status.pendingSummaries} summaries left after catch-up`);
    const result: IngestResult = {
      store: kind,
      shape,
      summaries: options.summaries,
      edges: status.edges,
      baselineSeconds,
      baselinePerSecond: options.summaries / baselineSeconds,
      rollupSeconds,
      rollupPerSecond: options.summaries / rollupSeconds,
    };
    log(
      `${kind}, ${shape}: roll-up ${Math.round(result.rollupPerSecond)} summaries/s (log append ${Math.round(result.baselinePerSecond)}/s), ${status.edges} edges`,
    );
    return result;
  } finally {
    await s.close();
  }
}

// ------------------------------------------------------------------ queries

const HOUR = 3600;

/** Fills `table` for buckets [from, to) step `step` x every edge, one statement per slice. */
async function fillBuckets(
  store: Store,
  kind: StoreKind,
  bucketTable: 'flow_minutes' | 'flow_hours' | 'flow_days',
  from: number,
  to: number,
  step: number,
  edges: number,
  log: (line: string) => void,
): Promise<number> {
  const perSlice = Math.max(1, Math.floor(2_000_000 / edges));
  let rows = 0;
  const total = Math.ceil((to - from) / step) * edges;
  let lastLog = performance.now();
  for (let a = from; a < to; a += perSlice * step) {
    const b = Math.min(to, a + perSlice * step);
    // Counts vary by edge and bucket, deterministically; office hours are busier.
    const t = sql.raw(bucketTable);
    if (kind === 'sqlite') {
      await sql`with recursive h(b) as (select ${a} union all select b + ${step} from h where b + ${step} < ${b})
        insert or ignore into ${t} (bucket, edge_id, connections, bytes, first_seen, last_seen)
        select h.b, e.id, 1 + ((e.id * 7919 + h.b / ${step} * 104729) % 97),
          (1 + ((e.id * 7919 + h.b / ${step} * 104729) % 97)) * 1500,
          h.b * 1000, (h.b + ${step}) * 1000 - 1
        from h cross join flow_edges e order by h.b, e.id`.execute(store.db);
    } else {
      await sql`insert into ${t} (bucket, edge_id, connections, bytes, first_seen, last_seen)
        select h.b, e.id, 1 + ((e.id * 7919 + h.b / ${step} * 104729) % 97),
          (1 + ((e.id * 7919 + h.b / ${step} * 104729) % 97)) * 1500,
          h.b * 1000, (h.b + ${step}) * 1000 - 1
        from generate_series(${a}::bigint, ${b - step}::bigint, ${step}::bigint) as h(b)
        cross join flow_edges e order by h.b, e.id
        on conflict do nothing`.execute(store.db);
    }
    rows += Math.ceil((b - a) / step) * edges;
    if (performance.now() - lastLog > 10_000) {
      log(`  ${bucketTable}: ${rows} of ${total} rows`);
      lastLog = performance.now();
    }
  }
  return rows;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function timeIt(
  runs: number,
  work: () => Promise<string>,
): Promise<{ p50Ms: number; p95Ms: number; answer: string }> {
  let answer = await work();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    answer = await work();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50Ms: percentile(times, 50), p95Ms: percentile(times, 95), answer };
}

async function runQueries(
  kind: StoreKind,
  options: FlowsBenchOptions,
  log: (line: string) => void,
): Promise<QueryResult> {
  const s = await openBenchStore(kind, options, 'query');
  try {
    const workloads = benchWorkloads(options.workloads);
    await seedEstate(s.store, workloads);
    const convs = conversations(workloads, options.edges);
    const nowS = Math.floor(Date.now() / 1000);
    const hourNow = Math.floor(nowS / HOUR) * HOUR;
    const hours = Math.max(1, Math.round(options.rows / options.edges));
    log(
      `${kind}: ${options.edges} edges (decided through the flow store), then ${hours} hours x ${options.edges} edges of hour buckets`,
    );
    const t0 = performance.now();
    // The edges, decided, through the store's own path: one record each, in the last hour.
    const records: TrafficRecord[] = convs.map((c) => ({
      key: edgeKey(c),
      firstSeen: new Date((hourNow - 1800) * 1000).toISOString(),
      lastSeen: new Date((hourNow - 1800) * 1000).toISOString(),
      connections: 1,
      bytes: 100,
    }));
    await s.flows.recordTraffic(records);
    await s.flows.catchUp();
    const hour = await fillBuckets(
      s.store,
      kind,
      'flow_hours',
      hourNow - (hours - 1) * HOUR,
      hourNow + HOUR,
      HOUR,
      options.edges,
      log,
    );
    const minuteFrom = Math.floor(nowS / 60) * 60 - (options.minutes - 1) * 60;
    const minute = await fillBuckets(
      s.store,
      kind,
      'flow_minutes',
      minuteFrom,
      minuteFrom + options.minutes * 60,
      60,
      options.edges,
      log,
    );
    const dayNow = Math.floor(nowS / 86400) * 86400;
    const days = Math.ceil(hours / 24) + 1;
    const day = await fillBuckets(
      s.store,
      kind,
      'flow_days',
      dayNow - (days - 1) * 86400,
      dayNow + 86400,
      86400,
      options.edges,
      log,
    );
    await sql`analyze`.execute(s.store.db);
    const generateSeconds = (performance.now() - t0) / 1000;
    const diskBytes = await s.diskBytes();
    log(
      `${kind}: generated ${hour} hour + ${minute} minute + ${day} day rows in ${generateSeconds.toFixed(1)} s, ${(diskBytes / 1024 ** 2).toFixed(0)} MB`,
    );

    const timings: QueryTiming[] = [];
    const sort: FlowSort = { key: 'connections', descending: true };
    const filtered = <T extends FlowFilter>(f: T): T => ({
      ...f,
      source: [{ labels: { app: ['app3', 'app7'] } }],
      ports: [
        { proto: 'tcp', port: 8080 },
        { proto: 'tcp', port: 5432 },
      ],
    });
    for (const since of ['1h', '24h', '7d']) {
      const window = { since };
      type Ask = (flows: FlowStoreService) => Promise<string>;
      const time = async (name: string, ask: Ask) => {
        const t = await timeIt(options.runs, () => ask(s.flows));
        const one = await timeIt(options.runs, () => ask(s.oneReader));
        timings.push({ name, window: since, ...t, oneReader: one });
        log(
          `${kind} ${since} ${name}: p50 ${t.p50Ms.toFixed(0)} ms, p95 ${t.p95Ms.toFixed(0)} ms (${t.answer}); one reader p50 ${one.p50Ms.toFixed(0)} ms, p95 ${one.p95Ms.toFixed(0)} ms`,
        );
      };
      const map =
        (q: MapQuery): Ask =>
        async (flows) => {
          const r = await flows.map(q);
          return `${r.nodes.length} nodes, ${r.edges.length} edges`;
        };
      await time('map app,env', map({ window, groupBy: ['app', 'env'] }));
      await time('map app,env filtered', map(filtered({ window, groupBy: ['app', 'env'] })));
      await time(
        'map expanded app0·prod',
        map({ window, groupBy: ['app', 'env'], expand: ['g:app=app0;env=prod'] }),
      );
      const page =
        (f: FlowFilter, cursor: string | null): Ask =>
        async (flows) => {
          const r = await flows.explore(f, sort, 100, cursor);
          return `${r.items.length} of ${r.total} rows`;
        };
      await time('explorer first page', page({ window }, null));
      await time('explorer filtered', page(filtered({ window }), null));
      // Walk to the deep page once (untimed), then time that page.
      let cursor: string | null = null;
      let reached = 1;
      for (; reached < options.deepPage; reached++) {
        const r = await s.flows.explore({ window }, sort, 100, cursor);
        if (!r.nextCursor) break;
        cursor = r.nextCursor;
      }
      await time(`explorer page ${reached}`, page({ window }, cursor));
    }
    return {
      store: kind,
      edges: options.edges,
      hours,
      rows: { minute, hour, day },
      generateSeconds,
      diskBytes,
      freeBytes: await s.freeBytes(),
      timings,
    };
  } finally {
    await s.close();
  }
}

export async function runFlowsBench(
  options: FlowsBenchOptions,
  log: (line: string) => void,
): Promise<FlowsBenchResult> {
  const stores: StoreKind[] = [];
  for (const kind of options.stores) {
    if (kind === 'postgres' && !(await postgresReachable(options.postgresUrl))) {
      log(`PostgreSQL not reachable at ${options.postgresUrl}: its rows are skipped`);
      continue;
    }
    stores.push(kind);
  }
  const ingest: IngestResult[] = [];
  const queries: QueryResult[] = [];
  for (const kind of stores) {
    if (options.summaries > 0)
      for (const shape of ['live', 'backfill'] as const)
        ingest.push(await runIngest(kind, shape, options, log));
    if (options.rows > 0) queries.push(await runQueries(kind, options, log));
  }
  return { options, ingest, queries };
}

// ------------------------------------------------------------------ report

const fmtCount = (n: number): string =>
  n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(0)}k` : String(n);
const fmtBytes = (b: number): string =>
  b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(2)} GB` : `${(b / 1024 ** 2).toFixed(0)} MB`;
const fmtMs = (ms: number): string => (ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`);
const mark = (ok: boolean) => (ok ? 'ok' : 'MISSED');

/** What 100M aggregated rows would take, scaled from this run's bytes and seconds per row. */
function hundredMillion(q: QueryResult): string {
  const rows = q.rows.hour + q.rows.minute + q.rows.day;
  const bytes = (q.diskBytes / rows) * 100e6;
  const seconds = (q.generateSeconds / rows) * 100e6;
  const fits = bytes < q.freeBytes * 0.9;
  return `${q.store}: 100M rows would take about ${fmtBytes(bytes)} (${fmtBytes(q.freeBytes)} free${q.store === 'postgres' ? ' on this machine' : ''}: ${fits ? 'fits' : 'does NOT fit'}) and about ${(seconds / 60).toFixed(0)} min to generate; the largest that fits in 90% of the free disk is about ${fmtCount(Math.floor(((q.freeBytes * 0.9) / q.diskBytes) * rows))} rows`;
}

export function flowsReport(result: FlowsBenchResult): string {
  const out: string[] = [];
  if (result.ingest.length) {
    out.push(
      `Ingest: flow summaries rolled up into edges and buckets, against appending them to the log (target >= ${fmtCount(TARGET_SUMMARIES_PER_SECOND)} summaries/s):`,
    );
    out.push(
      table([
        [
          'store',
          'traffic',
          'summaries',
          'edges',
          'roll-up/s',
          'log append/s',
          'roll-up/append',
          'target',
        ],
        ...result.ingest.map((r) => [
          r.store,
          r.shape === 'live' ? 'live (last 10 min)' : 'backfill (a day)',
          fmtCount(r.summaries),
          fmtCount(r.edges),
          String(Math.round(r.rollupPerSecond)),
          String(Math.round(r.baselinePerSecond)),
          `${(r.rollupPerSecond / r.baselinePerSecond).toFixed(2)}x`,
          mark(r.rollupPerSecond >= TARGET_SUMMARIES_PER_SECOND),
        ]),
      ]),
    );
  }
  for (const q of result.queries) {
    out.push('');
    out.push(
      `Queries on ${q.store}: ${fmtCount(q.rows.hour)} hour rows (${fmtCount(q.edges)} edges x ${q.hours} hours) + ${fmtCount(q.rows.minute)} minute + ${fmtCount(q.rows.day)} day rows, ${fmtBytes(q.diskBytes)} on disk, generated in ${q.generateSeconds.toFixed(0)} s; ${result.options.runs} runs each (target p95 <= ${TARGET_P95_MS} ms); "one reader" = the same question with the window summed whole on one connection (the baseline):`,
    );
    out.push(
      table([
        ['query', 'window', 'p50', 'p95', 'target', 'one reader p50', 'p95', 'answer'],
        ...q.timings.map((t) => [
          t.name,
          t.window,
          fmtMs(t.p50Ms),
          fmtMs(t.p95Ms),
          mark(t.p95Ms <= TARGET_P95_MS),
          fmtMs(t.oneReader.p50Ms),
          fmtMs(t.oneReader.p95Ms),
          t.answer,
        ]),
      ]),
    );
    out.push(hundredMillion(q));
  }
  return out.join('\n');
}

// ------------------------------------------------------------------ command line

/** `10M`, `500k`, `1000`. */
function count(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)$/.exec(text.trim());
  if (!m) throw new Error(`${flag} "${text}" is not a count (like 10M, 500k, 2000)`);
  const scale = { '': 1, k: 1e3, m: 1e6, g: 1e9 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.round(Number(m[1]) * scale);
}

/** Whether the command line asks for this benchmark (`--only flows`). */
export function isFlowsRun(argv: readonly string[]): boolean {
  const i = argv.indexOf('--only');
  return i >= 0 && argv[i + 1] === 'flows';
}

const USAGE =
  'usage: npm run bench -- --only flows [--rows 10M] [--summaries 1M] [--edges 20k] [--workloads 2k] [--runs 7] [--deep-page 50] [--minutes 90] [--stores sqlite,postgres] [--json FILE]';

/** `npm run bench -- --only flows ...`: runs, prints the tables, writes the JSON. */
export async function flowsMain(argv: readonly string[]): Promise<void> {
  const opts = {
    ...DEFAULT_FLOWS_OPTIONS,
    stores: ['sqlite', 'postgres'] as StoreKind[],
    postgresUrl: process.env.DATABASE_URL_TEST ?? 'postgres://postgres@127.0.0.1:5432/test',
  };
  let json: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--only':
        value();
        break;
      case '--rows':
        opts.rows = count(value(), a);
        break;
      case '--summaries':
        opts.summaries = count(value(), a);
        break;
      case '--edges':
        opts.edges = count(value(), a);
        break;
      case '--workloads':
        opts.workloads = count(value(), a);
        break;
      case '--runs':
        opts.runs = count(value(), a);
        break;
      case '--deep-page':
        opts.deepPage = count(value(), a);
        break;
      case '--minutes':
        opts.minutes = count(value(), a);
        break;
      case '--stores': {
        const stores = value().split(',').filter(Boolean);
        for (const s of stores)
          if (s !== 'sqlite' && s !== 'postgres')
            throw new Error(`--stores: "${s}" is not a store (sqlite, postgres)`);
        opts.stores = stores as StoreKind[];
        break;
      }
      case '--json':
        json = value();
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        return;
      default:
        throw new Error(`unknown option ${a} for --only flows (${USAGE})`);
    }
  }
  if (opts.workloads < 100) throw new Error('--workloads must be at least 100');
  console.log(
    `bulkhead bench: flows; node ${process.version}, ${cpus().length} cpus, ${(totalmem() / 1024 ** 3).toFixed(0)} GB, load average ${loadavg()[0]!.toFixed(1)}; ` +
      `${fmtCount(opts.summaries)} summaries, ${fmtCount(opts.rows)} hour rows over ${fmtCount(opts.edges)} edges, stores ${opts.stores.join(', ')}`,
  );
  const result = await runFlowsBench(opts, (line) => console.log(`  ${line}`));
  console.log('');
  console.log(flowsReport(result));
  const here = dirname(fileURLToPath(import.meta.url));
  // Built into dist/bench, or run from bench/ by tsx: either way the repository's bench/results.
  const root = here.includes(`${sep}dist${sep}`) ? resolve(here, '../..') : resolve(here, '..');
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = json ?? join(root, 'bench', 'results', `flows-${stamp}.json`);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpus().length, memoryGb: totalmem() / 1024 ** 3, loadAverage: loadavg(), ...result }, null, 2)}\n`,
  );
  console.log(`\nresults written to ${file}`);
}

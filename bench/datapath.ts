/**
 * The nft datapath check: how many new TCP connections per second get through a workload
 * whose Bulkhead table admits its peers from a set of 10 addresses, and from one of 100k
 * (target: at most 5% fewer), with no firewall at all as the baseline.
 *
 * Two network namespaces on one bridge: a client and a server. The server's table is a real
 * compiled policy (`compilePolicy` + `renderNft`) in full enforcement mode: one allow rule
 * from the workloads labelled `role=client` (the client and N-1 other addresses) to the
 * server on 8080/tcp, default deny, loaded with `nft -f -` inside the server's namespace.
 * A Node server there answers each request and closes; a Node client in the other namespace
 * runs a fixed number of closed loops (connect, one small request and response, close) for
 * a fixed time. The variants run interleaved (baseline, 10, 100k, baseline, ...) so that
 * drift on a shared machine spreads over all of them; the report gives medians.
 *
 * Safety: every address lies in 198.18.0.0/15, the namespaces and links share the prefix
 * `bhp` (removed at the end, even on error, and at the next start after a crash), and a
 * lock on the prefix makes two runs take turns.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { createNetwork, destroyByPrefix, lockPrefix } from '../src/host/netns.js';
import { hasCommand, run } from '../src/host/run.js';
import { formatAddress } from '../src/policy/addresses.js';
import { compilePolicy } from '../src/policy/compile/endpoint.js';
import { nftRemoveScript, peerSetName, renderNft } from '../src/policy/compile/nft.js';
import { emptyActors, type Policy, type Workload } from '../src/policy/model.js';
import { resolvePolicy } from '../src/policy/resolve.js';
import { mulberry32 } from '../src/random.js';
import { table } from './report.js';

export interface DatapathOptions {
  /** Peer-set sizes to compare, smallest first (default 10 and 100k). */
  readonly peers: readonly number[];
  /** Measured seconds per run (after the warm-up). */
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** Connections in flight (closed loops of the client). */
  readonly concurrency: number;
  /** Interleaved rounds: each runs every variant once. */
  readonly rounds: number;
  readonly seed: number;
}

export interface DatapathRun {
  readonly connectionsPerSecond: number;
  readonly connections: number;
  readonly errors: Readonly<Record<string, number>>;
  /** Connect to close, per connection. */
  readonly p50Us: number;
  readonly p99Us: number;
  /** Packets that reached the allow rule's set lookup, per connection (firewall variants). */
  readonly lookupsPerConnection: number | null;
  /** Every connection of the run, warm-up included, and the CPU time the client and server
   * processes used meanwhile (user + system, which on this kernel includes the softirq work
   * that ran in their context: the packet path, conntrack and nft). */
  readonly allConnections: number;
  readonly cpuMs: number;
}

export interface DatapathVariant {
  /** `none` for the baseline, else the peer-set size. */
  readonly name: string;
  readonly peers: number | null;
  /** Elements of the IPv4 peer set in the script, and as the kernel lists them back. */
  readonly setElements: number | null;
  readonly kernelSetElements: number | null;
  readonly scriptBytes: number | null;
  /** `nft -f -` of the whole table, one per round. */
  readonly applyMs: readonly number[];
  readonly compileMs: number | null;
  readonly runs: readonly DatapathRun[];
  readonly medianConnectionsPerSecond: number;
}

export interface DatapathResult {
  readonly options: DatapathOptions;
  readonly kernel: string;
  readonly conntrackFlush: boolean;
  readonly variants: readonly DatapathVariant[];
}

const PREFIX = 'bhp';
/** USER_HZ: what /proc/PID/stat counts CPU time in, on every Linux architecture we run on. */
const CLOCK_TICKS = 100;
const PORT = 8080;
/** 198.18.0.0/15: the peers are drawn from below the three lab hosts. */
const LAB_BASE = (198n << 24n) | (18n << 16n);
const LAB_SIZE = 1 << 17;
const labAddress = (offset: number): string => formatAddress(4, LAB_BASE + BigInt(offset));
const SERVER = labAddress(LAB_SIZE - 246); // 198.19.255.10
const CLIENT = labAddress(LAB_SIZE - 236); // 198.19.255.20, in every peer set
const OUTSIDER = labAddress(LAB_SIZE - 226); // 198.19.255.30, on the client, in no peer set
const PEER_POOL = LAB_SIZE - 512; // offsets 1 .. 198.19.254.255

// --- The policy ---------------------------------------------------------------------------

/** N distinct pool offsets, drawn with a seeded partial Fisher-Yates shuffle. */
function sampleOffsets(count: number, seed: number): number[] {
  if (count > PEER_POOL - 1) throw new Error(`at most ${PEER_POOL - 1} peers fit in the lab range`);
  const pool = new Int32Array(PEER_POOL - 1);
  for (let i = 0; i < pool.length; i++) pool[i] = i + 1;
  const random = mulberry32(seed);
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    const t = pool[i]!;
    pool[i] = pool[j]!;
    pool[j] = t;
  }
  return Array.from(pool.subarray(0, count));
}

/**
 * The estate: the server (managed, full), the client and N-1 more `role=client` workloads
 * (unmanaged: they only make up the peer set), and one rule between them.
 */
function policyFor(peers: number, seed: number): Policy {
  const peer = (name: string, address: string): Workload => ({
    name,
    addresses: [address],
    labels: { role: 'client' },
    mode: 'full',
    managed: false,
    users: [],
  });
  const workloads: Workload[] = [
    {
      name: 'server',
      addresses: [SERVER],
      labels: { role: 'server' },
      mode: 'full',
      managed: true,
      users: [],
    },
    peer('client', CLIENT),
    ...sampleOffsets(peers - 1, seed).map((o, i) => peer(`peer-${i}`, labAddress(o))),
  ];
  return {
    workloads,
    labelGroups: [],
    ipLists: [],
    userGroups: [],
    services: [],
    rulesets: [
      {
        name: 'datapath',
        scope: null,
        rules: [
          {
            name: 'clients-to-server',
            action: 'allow',
            sources: {
              ...emptyActors(),
              selector: { labels: { role: ['client'] }, labelGroups: [] },
            },
            destinations: { ...emptyActors(), workloads: ['server'] },
            services: [{ kind: 'inline', port: { proto: 'tcp', ports: { from: PORT, to: PORT } } }],
            extraScope: false,
          },
        ],
      },
    ],
    settings: { alwaysAllowed: [] },
  };
}

interface CompiledTable {
  readonly script: string;
  readonly setName: string;
  readonly setElements: number;
  readonly compileMs: number;
}

function compileTable(peers: number, seed: number): CompiledTable {
  const start = performance.now();
  const compiled = compilePolicy(resolvePolicy(policyFor(peers, seed)));
  const endpoint = compiled.endpoints.get('server')!;
  const rendered = renderNft(endpoint, compiled.peerSets);
  const compileMs = performance.now() - start;
  if (endpoint.mode !== 'full' || endpoint.inbound.length !== 1)
    throw new Error(`unexpected endpoint policy for the server: ${JSON.stringify(endpoint)}`);
  const setName = peerSetName(endpoint.inbound[0]!.peer, 4);
  const set = rendered.state.sets.find((s) => s.name === setName);
  if (!set) throw new Error(`set ${setName} missing from the rendered table`);
  return { script: rendered.text, setName, setElements: set.elements.length, compileMs };
}

// --- The Node processes inside the namespaces ---------------------------------------------

/**
 * Plain CommonJS for `node -e`. The server answers every request with one line and closes
 * first (as HTTP/1.0 would), so TIME_WAIT stays on its side and the client's ephemeral ports
 * recycle. The client takes commands as JSON lines on stdin and answers on stdout. Both exit
 * when their stdin closes, so they never outlive the benchmark.
 */
const SERVER_SOURCE = String.raw`
const net = require('node:net');
const [host, port] = JSON.parse(process.argv[1]);
const server = net.createServer({ noDelay: true }, (s) => {
  s.on('error', () => {});
  s.once('data', () => s.end('pong\n'));
});
server.listen({ host, port, backlog: 4096 }, () => process.stdout.write('ready\n'));
server.on('error', (e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
`;

const CLIENT_SOURCE = String.raw`
const net = require('node:net');
const readline = require('node:readline');
const send = (m) => process.stdout.write(JSON.stringify(m) + '\n');
const now = () => Number(process.hrtime.bigint()) / 1000; // microseconds

// One connection: connect, request, read the answer, see the close. Resolves to null or an error code.
function exchange(to, port, from, timeoutMs) {
  return new Promise((resolve) => {
    const s = net.connect({ host: to, port, noDelay: true, ...(from ? { localAddress: from } : {}) });
    let answered = false;
    let failure = null;
    const timer = setTimeout(() => { failure = 'TIMEOUT'; s.destroy(); }, timeoutMs);
    s.on('connect', () => s.write('ping\n'));
    s.on('data', () => { answered = true; });
    s.on('error', (e) => { failure = failure || e.code || String(e); });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(failure || (answered ? null : 'NO_ANSWER'));
    });
  });
}

async function load(cmd) {
  const latencies = [];
  const errors = {};
  let counting = false;
  let stopped = false;
  let connections = 0;
  let all = 0;
  const loop = async () => {
    while (!stopped) {
      const t0 = now();
      const failure = await exchange(cmd.to, cmd.port, null, cmd.timeoutMs);
      all++;
      if (!counting || stopped) continue;
      if (failure) errors[failure] = (errors[failure] || 0) + 1;
      else { connections++; latencies.push(now() - t0); }
    }
  };
  const loops = Array.from({ length: cmd.concurrency }, loop);
  await new Promise((r) => setTimeout(r, cmd.warmupMs));
  counting = true;
  const start = now();
  await new Promise((r) => setTimeout(r, cmd.seconds * 1000));
  stopped = true;
  const elapsed = (now() - start) / 1e6;
  await Promise.all(loops);
  latencies.sort((a, b) => a - b);
  const at = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : 0;
  return { connections, all, seconds: elapsed, errors, p50Us: at(0.5), p99Us: at(0.99) };
}

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const cmd = JSON.parse(line);
  if (cmd.type === 'load') send({ id: cmd.id, ...(await load(cmd)) });
  else send({ id: cmd.id, failure: await exchange(cmd.to, cmd.port, cmd.from, cmd.timeoutMs) });
}).on('close', () => process.exit(0));
process.stdout.write('ready\n');
`;

/** A Node process inside a namespace, talking JSON lines. */
class NsProcess {
  private stderr = '';
  private exited = false;
  private nextId = 1;
  private readonly waiting = new Map<number, (m: Record<string, unknown>) => void>();
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exit: Promise<void>;
  /** Resolves when the process prints `ready`. */
  readonly ready: Promise<void>;

  constructor(
    readonly what: string,
    netns: string,
    source: string,
    argument: unknown,
  ) {
    const child = spawn(
      'ip',
      ['netns', 'exec', netns, process.execPath, '-e', source, JSON.stringify(argument)],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.child = child;
    child.stderr.on('data', (b: Buffer) => (this.stderr += b.toString('utf8')));
    this.exit = new Promise((resolve) => child.once('exit', () => resolve()));
    this.ready = new Promise((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (line === 'ready') return resolve();
        const message = JSON.parse(line) as Record<string, unknown>;
        this.waiting.get(message.id as number)?.(message);
      });
      child.once('exit', (code) => {
        this.exited = true;
        const why = new Error(`${what} exited (${code}): ${this.stderr.trim()}`);
        reject(why);
        for (const w of this.waiting.values()) w({ fatal: why.message });
      });
    });
  }

  async request(command: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.exited) throw new Error(`${this.what} is not running: ${this.stderr.trim()}`);
    const id = this.nextId++;
    const answer = await new Promise<Record<string, unknown>>((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin.write(`${JSON.stringify({ ...command, id })}\n`);
    });
    this.waiting.delete(id);
    if (typeof answer.fatal === 'string') throw new Error(answer.fatal);
    return answer;
  }

  /** User + system CPU time so far, in ms (`/proc/PID/stat`, clock ticks of 10 ms). */
  async cpuMs(): Promise<number> {
    const stat = await readFile(`/proc/${this.child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * (1000 / CLOCK_TICKS);
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGKILL');
    await this.exit;
  }
}

// --- Lock, firewall, counters ------------------------------------------------------------

/** Why the benchmark cannot run here, or null. */
export async function datapathUnavailable(): Promise<string | null> {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (network namespaces need root)';
  for (const tool of ['ip', 'nft', 'flock'])
    if (!(await hasCommand(tool))) return `\`${tool}\` is not installed`;
  return null;
}

/** Packets counted by the allow rule (the one that names the peer set), or null. */
async function allowRulePackets(netns: string, setName: string): Promise<number | null> {
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
    'bulkhead',
    'input',
  ]);
  const items = (JSON.parse(stdout) as { nftables: Record<string, unknown>[] }).nftables;
  for (const item of items) {
    const rule = item.rule as { expr?: unknown[] } | undefined;
    if (!rule?.expr || !JSON.stringify(rule.expr).includes(`"@${setName}"`)) continue;
    for (const e of rule.expr) {
      const counter = (e as { counter?: { packets: number } }).counter;
      if (counter) return counter.packets;
    }
  }
  return null;
}

async function kernelSetElements(netns: string, setName: string): Promise<number> {
  const { stdout } = await run(
    ['ip', 'netns', 'exec', netns, 'nft', '-j', 'list', 'set', 'inet', 'bulkhead', setName],
    { timeoutMs: 120_000 },
  );
  const items = (JSON.parse(stdout) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
  return items.find((i) => i.set)?.set?.elem?.length ?? 0;
}

// --- The benchmark ------------------------------------------------------------------------

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return 0;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Variant {
  readonly name: string;
  readonly peers: number | null;
  readonly table: CompiledTable | null;
  kernelSetElements: number | null;
  readonly applyMs: number[];
  readonly runs: DatapathRun[];
}

export async function runDatapathBench(
  options: DatapathOptions,
  log: (line: string) => void,
): Promise<DatapathResult> {
  const why = await datapathUnavailable();
  if (why) throw new Error(`datapath bench cannot run: ${why}`);
  const kernel = (await run(['uname', '-r'])).stdout.trim();
  const conntrackFlush = await hasCommand('conntrack');

  const variants: Variant[] = [
    { name: 'none', peers: null, table: null, kernelSetElements: null, applyMs: [], runs: [] },
  ];
  for (const peers of [...options.peers].sort((x, y) => x - y)) {
    if (!Number.isInteger(peers) || peers < 1)
      throw new Error(`a peer set holds at least one address (the client's), not ${peers}`);
    const table = compileTable(peers, options.seed);
    log(
      `${peers} peers: policy resolved, compiled and rendered in ${table.compileMs.toFixed(0)} ms (${table.setElements} set elements, ${(table.script.length / 1024).toFixed(0)} kB script)`,
    );
    variants.push({
      name: `${peers}`,
      peers,
      table,
      kernelSetElements: null,
      applyMs: [],
      runs: [],
    });
  }

  const unlock = await lockPrefix(PREFIX, 120_000);
  const processes: NsProcess[] = [];
  const cleanup = async (): Promise<void> => {
    await Promise.all(processes.map((p) => p.stop()));
    processes.length = 0;
    await destroyByPrefix(PREFIX);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    void cleanup().finally(() => process.kill(process.pid, signal));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await createNetwork(PREFIX, [
      { name: 'cli', addresses: [`${CLIENT}/15`, `${OUTSIDER}/15`] },
      { name: 'srv', addresses: [`${SERVER}/15`] },
    ]);
    const serverNs = `${PREFIX}srv`;
    const clientNs = `${PREFIX}cli`;
    const server = new NsProcess('datapath server', serverNs, SERVER_SOURCE, [SERVER, PORT]);
    processes.push(server);
    const client = new NsProcess('datapath client', clientNs, CLIENT_SOURCE, null);
    processes.push(client);
    await Promise.all([server.ready, client.ready]);

    const nft = async (script: string): Promise<number> => {
      const start = performance.now();
      await run(['ip', 'netns', 'exec', serverNs, 'nft', '-f', '-'], {
        input: script,
        timeoutMs: 120_000,
      });
      return performance.now() - start;
    };
    const install = async (v: Variant): Promise<void> => {
      if (v.table) v.applyMs.push(await nft(v.table.script));
      else await nft(nftRemoveScript());
      // No run rides on connection state left by the one before.
      if (conntrackFlush)
        await run(['ip', 'netns', 'exec', serverNs, 'conntrack', '-F'], { okCodes: [0, 1] });
    };
    const probe = async (from: string): Promise<string | null> =>
      (await client.request({ type: 'probe', from, to: SERVER, port: PORT, timeoutMs: 500 }))
        .failure as string | null;
    const load = async (seconds: number, warmupSeconds: number) =>
      (await client.request({
        type: 'load',
        to: SERVER,
        port: PORT,
        seconds,
        warmupMs: warmupSeconds * 1000,
        concurrency: options.concurrency,
        timeoutMs: 2000,
      })) as unknown as {
        connections: number;
        all: number;
        seconds: number;
        errors: Record<string, number>;
        p50Us: number;
        p99Us: number;
      };

    // Each table enforces: the client's address gets through, the outsider's does not, and
    // the kernel holds every element. Without a table both get through.
    for (const v of variants) {
      await install(v);
      const [fromClient, fromOutsider] = [await probe(CLIENT), await probe(OUTSIDER)];
      const expected = v.table ? 'TIMEOUT' : null;
      if (fromClient !== null || fromOutsider !== expected)
        throw new Error(
          `${v.name} peers: connection from the client ${fromClient ?? 'succeeded'}, from the outsider ${fromOutsider ?? 'succeeded'} (expected ${expected ?? 'success'})`,
        );
      if (v.table) v.kernelSetElements = await kernelSetElements(serverNs, v.table.setName);
      if (v.table && v.kernelSetElements !== v.table.setElements)
        throw new Error(
          `${v.name} peers: the kernel lists ${v.kernelSetElements} elements in ${v.table.setName}, the script has ${v.table.setElements}`,
        );
    }
    log(
      `checked: each table admits ${CLIENT} and drops ${OUTSIDER}; the kernel holds every set element`,
    );

    // Warm both processes' JIT and the kernel's caches before anything is measured.
    await install(variants[0]!);
    await load(1, 0.5);

    for (let round = 1; round <= options.rounds; round++) {
      const line: string[] = [];
      // Rotate which table runs first each round, so that no variant always follows the
      // one-second load of the large set (or always runs while the machine is warmest).
      const shift = (round - 1) % variants.length;
      for (const v of [...variants.slice(shift), ...variants.slice(0, shift)]) {
        await install(v);
        const cpuBefore = (await client.cpuMs()) + (await server.cpuMs());
        const r = await load(options.seconds, options.warmupSeconds);
        const cpuMs = (await client.cpuMs()) + (await server.cpuMs()) - cpuBefore;
        const packets = v.table ? await allowRulePackets(serverNs, v.table.setName) : null;
        // The counter saw every connection of the run, warm-up included (`all`): per
        // connection, it says how many packets reach the set lookup (only the SYN, if the
        // return-traffic rule takes the rest).
        v.runs.push({
          connectionsPerSecond: r.connections / r.seconds,
          connections: r.connections,
          errors: r.errors,
          p50Us: r.p50Us,
          p99Us: r.p99Us,
          lookupsPerConnection: packets === null || r.all === 0 ? null : packets / r.all,
          allConnections: r.all,
          cpuMs,
        });
        const errors = Object.entries(r.errors)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ');
        line.push(
          `${v.name} ${Math.round(r.connections / r.seconds)}/s${errors ? ` (errors: ${errors})` : ''}`,
        );
      }
      log(`round ${round}/${options.rounds}: ${line.join(', ')}`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    try {
      await cleanup();
    } finally {
      await unlock();
    }
  }

  return {
    options,
    kernel,
    conntrackFlush,
    variants: variants.map((v) => ({
      name: v.name,
      peers: v.peers,
      setElements: v.table?.setElements ?? null,
      kernelSetElements: v.kernelSetElements,
      scriptBytes: v.table ? Buffer.byteLength(v.table.script) : null,
      applyMs: v.applyMs,
      compileMs: v.table?.compileMs ?? null,
      runs: v.runs,
      medianConnectionsPerSecond: median(v.runs.map((r) => r.connectionsPerSecond)),
    })),
  };
}

// --- The report ---------------------------------------------------------------------------

const fmtCount = (n: number): string =>
  n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 && n % 1000 === 0 ? `${n / 1e3}k` : String(n);
const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
const ms = (x: number): string => (x >= 100 ? `${x.toFixed(0)} ms` : `${x.toFixed(1)} ms`);

/** The drop of `b` against `a` (positive = fewer connections per second). */
const drop = (a: number, b: number): number => (a - b) / a;

/** CPU time of client + server per connection over all of a variant's runs, in µs. */
const cpuPerConnection = (v: DatapathVariant): number =>
  (v.runs.reduce((n, r) => n + r.cpuMs, 0) * 1000) /
  Math.max(
    1,
    v.runs.reduce((n, r) => n + r.allConnections, 0),
  );

export function datapathReport(result: DatapathResult): string {
  const o = result.options;
  const [base, ...tables] = result.variants;
  const smallest = tables[0];
  const largest = tables[tables.length - 1];
  const rows: string[][] = [
    [
      'firewall',
      'conn/s',
      'min',
      'max',
      'spread',
      'vs no firewall',
      `vs ${smallest ? fmtCount(smallest.peers!) : '-'} peers`,
      'p50',
      'p99',
      'CPU/conn',
      'vs no firewall',
      `vs ${smallest ? fmtCount(smallest.peers!) : '-'} peers`,
      'lookups/conn',
      'errors',
    ],
  ];
  for (const v of result.variants) {
    const rates = v.runs.map((r) => r.connectionsPerSecond);
    const m = v.medianConnectionsPerSecond;
    const errors = v.runs.reduce(
      (n, r) => n + Object.values(r.errors).reduce((a, b) => a + b, 0),
      0,
    );
    const lookups = v.runs.map((r) => r.lookupsPerConnection).filter((x) => x !== null);
    rows.push([
      v.peers === null ? 'none (baseline: no table)' : `nft, ${fmtCount(v.peers)} peers`,
      String(Math.round(m)),
      String(Math.round(Math.min(...rates))),
      String(Math.round(Math.max(...rates))),
      `${(((Math.max(...rates) - Math.min(...rates)) / m) * 100).toFixed(1)}%`,
      v === base ? '-' : pct(-drop(base!.medianConnectionsPerSecond, m)),
      v.peers === null || v === smallest
        ? '-'
        : pct(-drop(smallest!.medianConnectionsPerSecond, m)),
      `${(median(v.runs.map((r) => r.p50Us)) / 1000).toFixed(2)} ms`,
      `${(median(v.runs.map((r) => r.p99Us)) / 1000).toFixed(2)} ms`,
      `${cpuPerConnection(v).toFixed(0)} µs`,
      v === base ? '-' : pct(cpuPerConnection(v) / cpuPerConnection(base!) - 1),
      v.peers === null || v === smallest
        ? '-'
        : pct(cpuPerConnection(v) / cpuPerConnection(smallest!) - 1),
      lookups.length ? median(lookups).toFixed(2) : '-',
      String(errors),
    ]);
  }
  const out = [
    `Datapath: new TCP connections/s from the client namespace to a server whose Bulkhead table (full mode, one allow rule naming a peer set, default deny) admits it;`,
    `${o.concurrency} in flight (connect, 5-byte request, 5-byte answer, close), ${o.seconds} s per run after ${o.warmupSeconds} s warm-up, ${o.rounds} interleaved rounds, medians; kernel ${result.kernel}.`,
    `Baseline = no table in the server's namespace (so no conntrack there either). spread = (max - min) / median over the rounds.`,
    `CPU/conn = user + system CPU of the client and server processes (which includes the packet path run in their context) over all runs, per connection:`,
    `moves much less with other load than the rate. lookups/conn = packets counted by the allow rule (the one set lookup) per connection.`,
    table(rows),
  ];
  if (smallest && largest && largest !== smallest) {
    const d = drop(smallest.medianConnectionsPerSecond, largest.medianConnectionsPerSecond);
    // Each round's two runs are neighbours in time: their ratio cancels slow drift of the load
    // other processes put on the machine, which the medians alone do not.
    const paired = median(
      largest.runs.map((r, i) =>
        drop(smallest.runs[i]!.connectionsPerSecond, r.connectionsPerSecond),
      ),
    );
    const spread = Math.max(
      ...[smallest, largest].map((v) => {
        const rates = v.runs.map((r) => r.connectionsPerSecond);
        return (Math.max(...rates) - Math.min(...rates)) / v.medianConnectionsPerSecond;
      }),
    );
    const change = (x: number): string =>
      x >= 0 ? `${(x * 100).toFixed(1)}% drop` : `${(-x * 100).toFixed(1)}% gain`;
    out.push(
      '',
      `${fmtCount(largest.peers!)} vs ${fmtCount(smallest.peers!)} peers: ${change(d)} in connections/s (medians; per-round pairs: ${change(paired)}); target at most 5% drop: ${d <= 0.05 ? 'met' : 'NOT MET'}`,
      `  CPU per connection ${pct(cpuPerConnection(largest) / cpuPerConnection(smallest) - 1)} (${cpuPerConnection(largest).toFixed(0)} vs ${cpuPerConnection(smallest).toFixed(0)} µs)`,
    );
    if (smallest.runs.length < 3) out.push('  (fewer than 3 rounds: no estimate of the noise)');
    else if (spread > 0.05)
      out.push(
        `  (the runs of one variant spread ${(spread * 100).toFixed(0)}% here: the machine is busy, and a difference within that is noise)`,
      );
  }
  out.push('');
  for (const v of tables) {
    out.push(
      `${fmtCount(v.peers!)}-peer table: ${v.setElements} IPv4 set elements (the kernel lists ${v.kernelSetElements}), script ${(v.scriptBytes! / 1024).toFixed(0)} kB, ` +
        `nft -f apply ${ms(median(v.applyMs))} median (${ms(Math.min(...v.applyMs))}-${ms(Math.max(...v.applyMs))}, ${v.applyMs.length} applies), policy compile + render ${ms(v.compileMs!)}`,
    );
  }
  if (!result.conntrackFlush)
    out.push('(conntrack is not installed: connection state was not flushed between runs)');
  return out.join('\n');
}

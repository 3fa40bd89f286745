/**
 * `npm run build && npm run bench`: builds synthetic estates, compiles them, and prints the
 * figures with the naive baseline measured in the same run.
 *
 *   --only compile|api|datapath|generate|lab  one benchmark (default: compile then api; datapath
 *                           and lab need root)
 *   --only flows            the flow store: ingest and map/explorer latency (its options: bench/flows.ts,
 *                           --only flows --help)
 *   --agents 1k,10k         api: simulated agents (default 1k,10k)
 *   --seconds N             api: how long to drive each store (default 10)
 *   --connections N         api: concurrent connections of the load generator (default 8)
 *   --peers 10,100k         datapath: peer-set sizes compared (default 10,100k); --seconds
 *                           (default 3), --connections (default 48) and --runs (rounds, default 7)
 *                           apply to it too
 *   --flows 10k,100k,1m     generate: flow summaries per size (default 10k,100k,1m); --runs and
 *                           --seed apply to it too
 *   --granularity G         generate: env, app, tier, service (default) or process
 *   --rate N                lab: new connections/s driven at one agent's workload (default 1000);
 *                           --runs (provisions timed, default 8) and --seconds (load, default 25)
 *                           apply to it too
 *   --sizes 1k/5k,10k/50k   workload/rule pairs; a bare `10k` means every rule count for it
 *   --runs N                timed resolve + compile repetitions per size (default by size)
 *   --quick                 small sizes, one run each, a short naive budget
 *   --no-render             skip rendering nft scripts
 *   --naive-budget-ms N     time given to generating the baseline's rules (then extrapolated)
 *   --render-budget-ms N    time given to rendering nft scripts (then extrapolated)
 *   --seed N                estate seed
 *   --json FILE             where to write the results (default bench/results/compile-<time>.json)
 *
 * Each size runs in a child process of its own (with a large heap), so its peak RSS is its own.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiReport, runApiBench } from './api.js';
import { datapathReport, runDatapathBench } from './datapath.js';
import { flowsMain, isFlowsRun } from './flows.js';
import { countLabel, generateReport, runGenerateBench } from './generate.js';
import { DEFAULT_LAB_OPTIONS, labReport, runLabBench } from './lab.js';
import { GRANULARITIES, type Granularity } from '../src/policy/generate/index.js';
import {
  benchSize,
  label,
  parseCount,
  type BenchOptions,
  type SizeResult,
  type SizeSpec,
} from './compile.js';
import { table } from './report.js';

const DEFAULT_SIZES: readonly SizeSpec[] = [
  { workloads: 1_000, rules: 5_000 },
  { workloads: 10_000, rules: 5_000 },
  { workloads: 10_000, rules: 50_000 },
  { workloads: 125_000, rules: 5_000 },
  { workloads: 125_000, rules: 50_000 },
];
const QUICK_SIZES: readonly SizeSpec[] = [
  { workloads: 1_000, rules: 5_000 },
  { workloads: 10_000, rules: 5_000 },
];

interface Args {
  only: 'compile' | 'api' | 'datapath' | 'generate' | 'lab' | 'all';
  rate: number | null;
  flows: number[];
  granularity: Granularity;
  peers: number[];
  /** Options given on the command line (the datapath bench has its own defaults). */
  given: Set<string>;
  agents: number[];
  seconds: number;
  connections: number;
  sizes: SizeSpec[];
  runs: number | null;
  quick: boolean;
  render: boolean;
  naiveBudgetMs: number;
  renderBudgetMs: number;
  seed: number;
  json: string | null;
  child: boolean;
}

function parseSizes(text: string): SizeSpec[] {
  const out: SizeSpec[] = [];
  for (const part of text.split(',').filter(Boolean)) {
    const [w, r] = part.split('/');
    const workloads = parseCount(w!);
    if (r) out.push({ workloads, rules: parseCount(r) });
    else for (const rules of [5_000, 50_000]) out.push({ workloads, rules });
  }
  return out;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    only: 'all',
    rate: null,
    flows: [10_000, 100_000, 1_000_000],
    granularity: 'service',
    peers: [10, 100_000],
    given: new Set(),
    agents: [1_000, 10_000],
    seconds: 10,
    connections: 8,
    sizes: [...DEFAULT_SIZES],
    runs: null,
    quick: false,
    render: true,
    naiveBudgetMs: 20_000,
    renderBudgetMs: 120_000,
    seed: 20240601,
    json: null,
    child: false,
  };
  let sizesGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    args.given.add(a);
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--only': {
        const only = value();
        if (
          only !== 'compile' &&
          only !== 'api' &&
          only !== 'datapath' &&
          only !== 'generate' &&
          only !== 'lab'
        )
          throw new Error(`unknown benchmark "${only}" (compile, api, datapath, generate, lab)`);
        args.only = only;
        break;
      }
      case '--flows':
        args.flows = value().split(',').filter(Boolean).map(parseCount);
        break;
      case '--granularity': {
        const g = value();
        if (!(GRANULARITIES as readonly string[]).includes(g))
          throw new Error(`unknown granularity "${g}" (${GRANULARITIES.join(', ')})`);
        args.granularity = g as Granularity;
        break;
      }
      case '--agents':
        args.agents = value().split(',').filter(Boolean).map(parseCount);
        break;
      case '--rate':
        args.rate = Number(value());
        break;
      case '--seconds':
        args.seconds = Number(value());
        break;
      case '--connections':
        args.connections = Number(value());
        break;
      case '--peers':
        args.peers = value().split(',').filter(Boolean).map(parseCount);
        break;
      case '--sizes':
        args.sizes = parseSizes(value());
        sizesGiven = true;
        break;
      case '--runs':
        args.runs = Number(value());
        break;
      case '--quick':
        args.quick = true;
        break;
      case '--no-render':
        args.render = false;
        break;
      case '--naive-budget-ms':
        args.naiveBudgetMs = Number(value());
        break;
      case '--render-budget-ms':
        args.renderBudgetMs = Number(value());
        break;
      case '--seed':
        args.seed = Number(value());
        break;
      case '--json':
        args.json = value();
        break;
      case '--child':
        args.child = true;
        break;
      case '--help':
      case '-h':
        console.log(
          'usage: npm run bench -- [--only compile|api|datapath|generate|lab] [--rate N] [--flows 10k,100k,1m] [--granularity G] [--agents 1k,10k] [--seconds N] [--connections N] [--peers 10,100k] [--sizes 1k/5k,10k] [--runs N] [--quick] [--no-render] [--naive-budget-ms N] [--render-budget-ms N] [--seed N] [--json FILE]',
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a} (see --help)`);
    }
  }
  if (args.quick) {
    if (!sizesGiven) args.sizes = [...QUICK_SIZES];
    args.runs ??= 1;
    args.naiveBudgetMs = Math.min(args.naiveBudgetMs, 3_000);
    args.renderBudgetMs = Math.min(args.renderBudgetMs, 10_000);
    args.agents = [1_000];
    args.seconds = Math.min(args.seconds, 4);
  }
  return args;
}

/** Repetitions sensible for a size: many for small ones, few for the largest. */
function runsFor(spec: SizeSpec): number {
  const work = spec.workloads * Math.sqrt(spec.rules);
  if (work <= 1_000 * 100) return 9;
  if (work <= 10_000 * 80) return 7;
  if (work <= 10_000 * 250) return 5;
  return 3;
}

function childMain(args: Args): void {
  const spec = args.sizes[0]!;
  const options: BenchOptions = {
    runs: args.runs ?? runsFor(spec),
    naiveBudgetMs: args.naiveBudgetMs,
    renderBudgetMs: args.renderBudgetMs,
    render: args.render,
    seed: args.seed,
  };
  const result = benchSize(spec, options, (line) => process.stderr.write(`  ${line}\n`));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function runChild(spec: SizeSpec, args: Args): Promise<SizeResult> {
  const script = fileURLToPath(import.meta.url);
  const childArgs = [
    '--expose-gc',
    '--max-old-space-size=16384',
    script,
    '--child',
    '--sizes',
    `${spec.workloads}/${spec.rules}`,
    '--naive-budget-ms',
    String(args.naiveBudgetMs),
    '--render-budget-ms',
    String(args.renderBudgetMs),
    '--seed',
    String(args.seed),
    ...(args.runs !== null ? ['--runs', String(args.runs)] : []),
    ...(args.render ? [] : ['--no-render']),
  ];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, childArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0)
        return reject(
          new Error(`size ${label(spec.workloads)}/${label(spec.rules)} failed (exit ${code})`),
        );
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolvePromise(JSON.parse(last) as SizeResult);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

const fmtMs = (ms: number): string =>
  ms >= 10_000
    ? `${(ms / 1000).toFixed(1)} s`
    : ms >= 100
      ? `${ms.toFixed(0)} ms`
      : `${ms.toFixed(1)} ms`;
const fmtN = (n: number): string =>
  n >= 1e9
    ? `${(n / 1e9).toFixed(2)}G`
    : n >= 1e6
      ? `${(n / 1e6).toFixed(2)}M`
      : n >= 1e4
        ? `${(n / 1e3).toFixed(1)}k`
        : String(n);
const fmtBytes = (b: number): string =>
  b >= 1024 ** 3
    ? `${(b / 1024 ** 3).toFixed(2)} GB`
    : b >= 1024 ** 2
      ? `${(b / 1024 ** 2).toFixed(1)} MB`
      : `${(b / 1024).toFixed(1)} kB`;

function report(results: readonly SizeResult[]): string {
  const main: string[][] = [
    [
      'size',
      'runs',
      'resolve',
      'compile',
      'resolve+compile',
      'peak RSS',
      'rules',
      'rules/host',
      'peer sets',
      'set elements',
      'naive rules',
      'naive time',
      'naive/rules',
    ],
  ];
  for (const r of results) {
    main.push([
      r.size,
      String(r.compileMs.runs.length),
      fmtMs(r.resolveMs.median),
      fmtMs(r.compileMs.median),
      fmtMs(r.fullCompileMs.median),
      `${r.peakRssCompileMb.toFixed(0)} MB`,
      fmtN(r.compiled.rules),
      String(r.compiled.medianRulesPerWorkload),
      fmtN(r.compiled.peerSets),
      fmtN(r.compiled.setElements),
      fmtN(r.naive.rules),
      `${fmtMs(r.naive.ms)}${r.naive.extrapolated ? '*' : ''}`,
      `${r.naive.ratioToCompiledRules.toFixed(0)}x`,
    ]);
  }
  const render: string[][] = [
    [
      'size',
      'scripts',
      'render all',
      'total',
      'median script',
      'max script',
      'nft rule lines',
      'peak RSS (all)',
    ],
  ];
  for (const r of results) {
    render.push(
      r.render
        ? [
            r.size,
            fmtN(r.render.scripts),
            `${fmtMs(r.render.ms)}${r.render.extrapolated ? '*' : ''}`,
            `${fmtBytes(r.render.totalBytes)}${r.render.extrapolated ? '*' : ''}`,
            fmtBytes(r.render.medianBytes),
            fmtBytes(r.render.maxBytes),
            fmtN(r.render.ruleLines),
            `${r.peakRssMb.toFixed(0)} MB`,
          ]
        : [r.size, '-', '-', '-', '-', '-', '-', `${r.peakRssMb.toFixed(0)} MB`],
    );
  }
  const change: string[][] = [
    [
      'size',
      'incremental',
      'recompute',
      'updates',
      'total',
      'shared updates',
      'shared total',
      'affected hosts',
      'hosts w/ rule changes',
      'changed sets',
      'elements +/-',
      'rule lines',
      'element lines',
      'update bytes',
      'full recompile (for comparison)',
    ],
  ];
  for (const r of results) {
    const l = r.labelChange;
    change.push([
      r.size,
      l.incremental ? 'yes' : 'no',
      fmtMs(l.recompileMs),
      l.updatesMs === null ? '-' : fmtMs(l.updatesMs),
      fmtMs(l.totalMs),
      l.sharedUpdatesMs === null ? '-' : fmtMs(l.sharedUpdatesMs),
      l.sharedTotalMs === null ? '-' : fmtMs(l.sharedTotalMs),
      fmtN(l.affectedWorkloads),
      l.hostsWithRuleChanges === null ? '-' : String(l.hostsWithRuleChanges),
      String(l.changedPeerSets),
      l.elementsAdded === null ? '-' : `${fmtN(l.elementsAdded)}/${fmtN(l.elementsDeleted ?? 0)}`,
      l.ruleLines === null ? '-' : fmtN(l.ruleLines),
      l.elementLines === null ? '-' : fmtN(l.elementLines),
      l.updateBytes === null ? '-' : fmtBytes(l.updateBytes),
      fmtMs(l.fullRecompileMs),
    ]);
  }
  // A footnote only where a row of its table carries the mark.
  const footnote = (rows: string[][], text: string): string[] =>
    rows.slice(1).some((row) => row.some((cell) => cell.endsWith('*'))) ? [text] : [];
  return [
    'Compile (medians; peak RSS up to the end of compiling; rules = endpoint rules over all hosts, each naming a peer set):',
    table(main),
    ...footnote(
      main,
      '  * naive time extrapolated from the rules generated within the budget (rules / generated x elapsed)',
    ),
    '',
    "Rendering every enforcing workload's nft script (streamed into a hash, not kept):",
    table(render),
    ...footnote(
      render,
      '  * the budget ran out: time and bytes extrapolated by set elements + rules still to render; median/max over the rendered ones',
    ),
    '',
    'One label change (role=web -> role=api on one workload): incremental recompute, no full recompile;',
    'updates = the new nft state of every affected host and its incremental script from the old one (nftState + renderNftUpdate per host);',
    "shared updates = the same commands, with each changed set's element diff computed once and reused by every host naming it:",
    table(change),
  ].join('\n');
}

async function main(): Promise<void> {
  if (isFlowsRun(process.argv.slice(2))) return flowsMain(process.argv.slice(2));
  const args = parseArgs(process.argv.slice(2));
  if (args.child) {
    childMain(args);
    return;
  }
  console.log(
    `bulkhead bench: ${args.only}; node ${process.version}, ${cpus().length} cpus, ${(totalmem() / 1024 ** 3).toFixed(0)} GB`,
  );
  const here = dirname(fileURLToPath(import.meta.url));
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const write = (name: string, body: unknown): void => {
    const file = args.json ?? join(resolve(here, '../../bench/results'), `${name}-${stamp}.json`);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(
      file,
      `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpus().length, memoryGb: totalmem() / 1024 ** 3, ...(body as object) }, null, 2)}\n`,
    );
    console.log(`\nresults written to ${file}`);
  };
  if (args.only === 'all' || args.only === 'compile') {
    console.log(
      `compile: sizes ${args.sizes.map((s) => `${label(s.workloads)}/${label(s.rules)}`).join(', ')}`,
    );
    const results: SizeResult[] = [];
    for (const spec of args.sizes) {
      console.log(`${label(spec.workloads)} workloads / ${label(spec.rules)} rules`);
      results.push(await runChild(spec, args));
    }
    console.log('');
    console.log(report(results));
    write('compile', { seed: args.seed, results });
  }
  if (args.only === 'all' || args.only === 'api') {
    const options = {
      agents: args.agents,
      batchSize: 500,
      concurrency: args.connections,
      seconds: args.seconds,
      postgresUrl: process.env.DATABASE_URL_TEST ?? 'postgres://postgres@127.0.0.1:5432/test',
    };
    console.log(
      `\napi: ${options.agents.join(', ')} agents, batches of ${options.batchSize}, ${options.concurrency} connections, ${options.seconds} s per run`,
    );
    const results = await runApiBench(options, (line) => console.log(`  ${line}`));
    console.log('');
    console.log(apiReport(results, options.batchSize));
    write('api', { options, results });
  }
  if (args.only === 'datapath') {
    const options = {
      peers: args.peers,
      seconds: args.given.has('--seconds') ? args.seconds : 3,
      warmupSeconds: 0.5,
      concurrency: args.given.has('--connections') ? args.connections : 48,
      rounds: args.runs ?? 7,
      seed: args.seed,
    };
    console.log(
      `\ndatapath: peer sets of ${options.peers.map(label).join(', ')} addresses, ${options.concurrency} connections in flight, ${options.seconds} s per run, ${options.rounds} rounds`,
    );
    const result = await runDatapathBench(options, (line) => console.log(`  ${line}`));
    console.log('');
    console.log(datapathReport(result));
    write('datapath', result);
  }
  if (args.only === 'generate') {
    const options = {
      flows: args.flows,
      granularity: args.granularity,
      workloads: 10_000,
      runs: args.runs,
      seed: args.seed,
    };
    console.log(
      `\ngenerate: ${options.flows.map(countLabel).join(', ')} flow summaries, ${options.granularity} granularity`,
    );
    const result = runGenerateBench(options, (line) => console.log(`  ${line}`));
    console.log('');
    console.log(generateReport(result));
    write('generate', result);
  }
  if (args.only === 'lab') {
    const options = {
      ...DEFAULT_LAB_OPTIONS,
      ...(args.runs !== null ? { provisions: args.runs } : {}),
      ...(args.given.has('--seconds') ? { loadSeconds: args.seconds } : {}),
      ...(args.rate !== null ? { rate: args.rate } : {}),
    };
    console.log(
      `
lab: 50 workloads with agents; ${options.provisions} provisions, then ${options.rate} new connections/s for ${options.loadSeconds} s`,
    );
    const result = await runLabBench(options, (line) => console.log(`  ${line}`));
    console.log('');
    console.log(labReport(result));
    write('lab', result);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});

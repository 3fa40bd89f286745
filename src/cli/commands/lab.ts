/**
 * `bulkhead lab`: the digital twin of an estate on one machine (src/lab). This file only
 * reads options and prints; the lab's work is in src/lab.
 */
import type { Command } from 'commander';
import { builtAgentProgram } from '../../agent/program.js';
import { labDown, type DownReport } from '../../lab/down.js';
import { LabError } from '../../lab/errors.js';
import { DEFAULT_PROBE, labProbe, type ProbeRow } from '../../lab/probe.js';
import {
  DEFAULT_PREFIX,
  labDirFrom,
  requireRunning,
  requireState,
  type LabState,
} from '../../lab/state.js';
import { labStatus, type LabStatus } from '../../lab/status.js';
import { DEFAULT_TRAFFIC, labTraffic, type TrafficResult } from '../../lab/traffic.js';
import { labUp } from '../../lab/up.js';
import { ApiClient, DEFAULT_URL } from '../client.js';
import { CliError, json, type CliIo } from '../io.js';

const DEFAULT_RELAY_PORT = 7480;
const DEFAULT_PAIR_TIMEOUT_SECONDS = 60;

/** Lab errors are for people: printed as they are, without a stack. */
async function guard(work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (e) {
    if (e instanceof LabError) throw new CliError(e.message);
    throw e;
  }
}

function numberOption(
  flag: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || n < min || n > max)
    throw new CliError(`${flag} ${JSON.stringify(text)} is not a number from ${min} to ${max}`, 2);
  return n;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

// --- up -------------------------------------------------------------------------------

interface UpFlags {
  labDir?: string;
  prefix?: string;
  agents: boolean;
  agentProgram?: string;
  relayPort?: string;
  pairTimeout?: string;
}

function upSummary(state: LabState): string {
  const rows = [['WORKLOAD', 'ADDRESSES', 'SERVICES', 'AGENT']];
  const records = new Map(state.workloads.map((w) => [w.name, w]));
  for (const w of state.topology.workloads) {
    const agent = records.get(w.name)?.agent;
    rows.push([
      w.name,
      w.addresses.join(','),
      w.listen.map((l) => `${l.process} ${l.port}/${l.proto}`).join(', ') || '-',
      agent ? `pid ${agent.pid}` : state.controlPlane && !w.agent ? '(unmanaged)' : '-',
    ]);
  }
  const lines = [
    `lab ${state.name} is up: ${state.topology.workloads.length} workloads, namespaces ${state.prefix}*, lab dir ${state.labDir}`,
    table(rows),
  ];
  if (state.controlPlane)
    lines.push(
      `agents reach the control plane ${state.controlPlane.url} at ${state.controlPlane.agentUrl} (relay on bridge ${state.bridge})`,
    );
  lines.push(
    'next: bulkhead lab traffic, bulkhead lab probe, bulkhead lab status, bulkhead lab down',
  );
  return lines.join('\n');
}

async function up(io: CliIo, file: string, flags: UpFlags): Promise<void> {
  let agents = null;
  if (flags.agents) {
    const url = process.env.BULKHEAD_URL || DEFAULT_URL;
    if (!process.env.BULKHEAD_TOKEN)
      throw new CliError(
        `the lab pairs its agents with the control plane at ${url}: set BULKHEAD_TOKEN to an API key that may manage agents (and BULKHEAD_URL), or run with --no-agents`,
      );
    agents = {
      client: new ApiClient(url, process.env.BULKHEAD_TOKEN),
      program: flags.agentProgram ?? builtAgentProgram(),
      relayPort: numberOption('--relay-port', flags.relayPort, DEFAULT_RELAY_PORT, 0, 65535),
      pairTimeoutMs:
        numberOption('--pair-timeout', flags.pairTimeout, DEFAULT_PAIR_TIMEOUT_SECONDS, 0, 3600) *
        1000,
    };
  }
  const state = await labUp({
    file,
    labDir: labDirFrom(flags.labDir),
    prefix: flags.prefix ?? DEFAULT_PREFIX,
    agents,
    progress: (line) => io.err(line),
  });
  io.out(upSummary(state));
}

// --- traffic --------------------------------------------------------------------------

interface TrafficFlags {
  labDir?: string;
  duration?: string;
  rate?: string;
  hold?: string;
  timeout?: string;
  json?: boolean;
}

function trafficReport(results: readonly TrafficResult[]): string {
  const rows = [['FROM', 'TO', 'PORT', 'CLIENT', 'OK', 'FAILED']];
  for (const r of results) {
    const failed = Object.entries(r.failures)
      .map(([why, n]) => `${n} ${why}`)
      .join(', ');
    rows.push([r.from, r.to, `${r.port}/${r.proto}`, r.process, `${r.ok}/${r.attempts}`, failed]);
  }
  const attempts = results.reduce((n, r) => n + r.attempts, 0);
  const ok = results.reduce((n, r) => n + r.ok, 0);
  return `${table(rows)}\n${results.length} traffic lines, ${attempts} connections: ${ok} answered, ${attempts - ok} failed`;
}

async function traffic(io: CliIo, flags: TrafficFlags): Promise<void> {
  const options = {
    durationSeconds: numberOption(
      '--duration',
      flags.duration,
      DEFAULT_TRAFFIC.durationSeconds,
      0,
      86_400,
    ),
    rate: numberOption('--rate', flags.rate, DEFAULT_TRAFFIC.rate, 0.01, 1000),
    holdMs: numberOption('--hold', flags.hold, DEFAULT_TRAFFIC.holdMs, 0, 600_000),
    timeoutMs: numberOption('--timeout', flags.timeout, DEFAULT_TRAFFIC.timeoutMs, 10, 60_000),
  };
  const state = await requireRunning(labDirFrom(flags.labDir));
  if (state.topology.traffic.length === 0) {
    io.out(`lab ${state.name} has no traffic lines (traffic: in ${state.file})`);
    return;
  }
  const results = await labTraffic(state, options);
  io.out(flags.json ? json(results) : trafficReport(results));
}

// --- probe ----------------------------------------------------------------------------

interface ProbeFlags {
  labDir?: string;
  json?: boolean;
  timeout?: string;
  closedPorts?: string;
}

function probeReport(rows: readonly ProbeRow[]): string {
  const lines = [['FROM', 'TO', 'PORT', 'SERVICE', 'RESULT', 'EVIDENCE']];
  for (const r of rows)
    lines.push([
      r.from,
      r.to,
      `${r.port}/${r.proto}`,
      r.process ?? '(closed)',
      r.result,
      r.evidence,
    ]);
  const allowed = rows.filter((r) => r.result === 'allowed').length;
  return `${table(lines)}\n${rows.length} probes: ${allowed} allowed, ${rows.length - allowed} blocked`;
}

async function probe(io: CliIo, flags: ProbeFlags): Promise<void> {
  const options = {
    ...DEFAULT_PROBE,
    timeoutMs: numberOption('--timeout', flags.timeout, DEFAULT_PROBE.timeoutMs, 10, 60_000),
    closedPorts: numberOption('--closed-ports', flags.closedPorts, DEFAULT_PROBE.closedPorts, 0, 9),
  };
  const state = await requireRunning(labDirFrom(flags.labDir));
  const rows = await labProbe(state, options);
  io.out(flags.json ? json(rows) : probeReport(rows));
}

// --- status ---------------------------------------------------------------------------

function statusReport(s: LabStatus): string {
  const alive = (p: { pid: number; alive: boolean }) =>
    `pid ${p.pid} ${p.alive ? 'running' : 'NOT RUNNING'}`;
  const rows = [['WORKLOAD', 'NAMESPACE', 'ADDRESSES', 'SERVICES', 'AGENT']];
  for (const w of s.workloads)
    rows.push([
      w.name,
      w.namespace ? w.netns : `${w.netns} MISSING`,
      w.addresses.join(','),
      w.services.map((p) => `${p.process} ${p.listen.join(',')} (${alive(p)})`).join('; ') || '-',
      w.agent ? alive(w.agent) : '-',
    ]);
  const lines = [
    `lab ${s.name} (${s.file}): ${s.phase} since ${s.startedAt}, namespaces ${s.prefix}*, bridge ${s.bridge.name} ${s.bridge.addresses.join(', ')}, lab dir ${s.labDir}`,
    table(rows),
  ];
  if (s.relay)
    lines.push(
      `relay ${s.relay.listen} -> ${s.relay.target} (${alive(s.relay)}); agents use ${s.controlPlane?.agentUrl ?? '?'}`,
    );
  lines.push(s.healthy ? 'every lab process is running' : `not running: ${s.down.join(', ')}`);
  return lines.join('\n');
}

async function status(io: CliIo, flags: { labDir?: string; json?: boolean }): Promise<void> {
  const s = await labStatus(await requireState(labDirFrom(flags.labDir)));
  io.out(flags.json ? json(s) : statusReport(s));
  if (!s.healthy) throw new CliError(`lab ${s.name} is not healthy: ${s.down.length} problem(s)`);
}

// --- down -----------------------------------------------------------------------------

function downReport(r: DownReport): string {
  if (!r.recorded && r.namespacesRemoved.length === 0 && r.linksRemoved.length === 0)
    return `nothing to take down: no lab in ${r.labDir} and no namespaces or links named ${r.prefixes.join('*, ')}*`;
  const lines = [
    `lab taken down: ${r.processesStopped} processes stopped, ${r.namespacesRemoved.length} namespaces and ${r.linksRemoved.length} links removed (${r.prefixes.join('*, ')}*), ${r.labDir} cleared`,
  ];
  if (r.controlPlane)
    lines.push(
      `control plane: ${r.controlPlane.revoked} agents revoked, ${r.controlPlane.profiles} pairing profiles deleted`,
    );
  return lines.join('\n');
}

async function down(io: CliIo, flags: { labDir?: string; prefix?: string }): Promise<void> {
  const token = process.env.BULKHEAD_TOKEN;
  const report = await labDown({
    labDir: labDirFrom(flags.labDir),
    ...(flags.prefix ? { prefix: flags.prefix } : {}),
    connect: token ? (url) => new ApiClient(url, token) : null,
  });
  io.out(downReport(report));
  for (const w of report.warnings) io.err(`warning: ${w}`);
}

// --- the command ------------------------------------------------------------------------

export function registerLab(program: Command, io: CliIo): void {
  const lab = program
    .command('lab')
    .description(
      'a digital twin of an estate on this machine: one network namespace per workload, real services, agents, traffic and a reachability probe (needs root and nftables)',
    );
  const labDir = [
    '--lab-dir <dir>',
    'where the lab keeps its state (env BULKHEAD_LAB_DIR, default /run/bulkhead-lab)',
  ] as const;

  lab
    .command('up')
    .description(
      'build the lab a topology file describes and start it; with agents, pairs them with the control plane at BULKHEAD_URL using BULKHEAD_TOKEN',
    )
    .argument('<file>', 'topology file (YAML: name, workloads with labels and listen, traffic)')
    .option(...labDir)
    .option(
      '--prefix <prefix>',
      `name prefix of the lab's namespaces and links (default ${DEFAULT_PREFIX})`,
    )
    .option('--no-agents', 'start no agents (and leave the control plane alone)')
    .option(
      '--agent-program <file>',
      "the agent's program (default: this checkout's dist/agent/bulkhead-agent.cjs)",
    )
    .option(
      '--relay-port <port>',
      `port of the relay to the control plane on the bridge; 0: any free port (default ${DEFAULT_RELAY_PORT})`,
    )
    .option(
      '--pair-timeout <seconds>',
      `wait this long for every agent to pair; 0: do not wait (default ${DEFAULT_PAIR_TIMEOUT_SECONDS})`,
    )
    .action((file: string, flags: UpFlags) => guard(() => up(io, file, flags)));

  lab
    .command('traffic')
    .description(
      "play the topology's traffic lines as real connections, from inside each source namespace",
    )
    .option(...labDir)
    .option('--duration <seconds>', 'keep playing this long (default: each line once)')
    .option('--rate <n>', 'connections a second per line while a duration runs (default 1)')
    .option(
      '--hold <ms>',
      'keep each connection open this long after the service answers (default 2000)',
    )
    .option('--timeout <ms>', 'how long a connection may wait for an answer (default 2000)')
    .option('--json', 'print the results as JSON')
    .action((flags: TrafficFlags) => guard(() => traffic(io, flags)));

  lab
    .command('probe')
    .description(
      'measure the reachability matrix through the real firewalls: every workload to every other on each listening port and a few closed ones',
    )
    .option(...labDir)
    .option('--json', 'print [{from, to, port, proto, result: "allowed"|"blocked", ...}]')
    .option(
      '--timeout <ms>',
      `how long a probe waits for an answer (default ${DEFAULT_PROBE.timeoutMs})`,
    )
    .option(
      '--closed-ports <n>',
      `closed ports probed per destination and protocol (default ${DEFAULT_PROBE.closedPorts})`,
    )
    .action((flags: ProbeFlags) => guard(() => probe(io, flags)));

  lab
    .command('status')
    .description(
      "the lab's workloads, addresses and services, and whether each process runs (exit 1 if one does not)",
    )
    .option(...labDir)
    .option('--json', 'print the status as JSON')
    .action((flags: { labDir?: string; json?: boolean }) => guard(() => status(io, flags)));

  lab
    .command('down')
    .description(
      'remove everything the lab made: processes, namespaces, links, bridge, relay, state; revoke its agents when BULKHEAD_TOKEN is set',
    )
    .option(...labDir)
    .option(
      '--prefix <prefix>',
      `also clear namespaces and links with this prefix (for a lab whose state is lost; default ${DEFAULT_PREFIX})`,
    )
    .action((flags: { labDir?: string; prefix?: string }) => guard(() => down(io, flags)));
}

/**
 * The lab's agents: one real Bulkhead agent per managed workload, inside its namespace,
 * started by the agent's command-line contract (`bulkhead agent --server URL
 * --activation-code CODE --state-dir DIR --hostname NAME`) from this checkout's built agent program
 * unless told otherwise, and watched until each has paired with the control plane.
 */
import { NODE_FLAGS } from '../agent/install.js';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { activeAgentsOn, type ControlPlaneClient } from './control-plane.js';
import { LabError } from './errors.js';
import { netnsOf } from './network.js';
import { isAlive, startDaemon, type Daemon } from './processes.js';
import type { AgentRecord, LabPaths } from './state.js';
import type { WorkloadSpec } from './topology.js';
import type { EnforcementMode } from '../policy/model.js';

export interface AgentLaunch {
  /** The agent's program: a JavaScript file node runs (see agent/program.ts). */
  readonly program: string;
  readonly serverUrl: string;
  readonly activationCode: string;
  readonly stateDir: string;
  readonly hostname: string;
}

/** The agent as a host runs it (its systemd unit's node flags included). */
export function agentCommand(a: AgentLaunch): string[] {
  return [
    process.execPath,
    ...NODE_FLAGS,
    a.program,
    'agent',
    '--server',
    a.serverUrl,
    '--activation-code',
    a.activationCode,
    '--state-dir',
    a.stateDir,
    '--hostname',
    a.hostname,
  ];
}

/**
 * The environment an agent starts with: what systemd gives a service (a PATH, and the
 * settings in the agent's own flags), not the caller's shell. A caller's NODE_OPTIONS
 * or NODE_EXTRA_CA_CERTS (a CA bundle every node process then parses at start: about
 * 2 MB each) would otherwise reach all of the lab's agents.
 */
export function agentEnvironment(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin' };
}

export interface LaunchOptions {
  readonly paths: LabPaths;
  readonly prefix: string;
  readonly program: string;
  /** The control plane as agents reach it (through the relay). */
  readonly serverUrl: string;
  readonly codes: ReadonlyMap<EnforcementMode, string>;
}

/**
 * Starts one agent per workload; `recorded` hears of each as soon as it runs. Returns the
 * running children, to watch for an early exit; release them when done watching.
 */
export async function launchAgents(
  workloads: readonly WorkloadSpec[],
  options: LaunchOptions,
  recorded: (workload: string, agent: AgentRecord) => Promise<void>,
): Promise<Daemon[]> {
  const launched: Daemon[] = [];
  try {
    for (const w of workloads) {
      const stateDir = join(options.paths.dir, w.name);
      await mkdir(stateDir, { recursive: true, mode: 0o700 });
      const daemon = await startDaemon({
        what: `the agent on ${w.name}`,
        netns: netnsOf(options.prefix, w.name),
        command: agentCommand({
          program: options.program,
          serverUrl: options.serverUrl,
          activationCode: options.codes.get(w.mode)!,
          stateDir,
          hostname: w.name,
        }),
        log: join(options.paths.logs, `${w.name}.agent.log`),
        comm: 'node',
        env: agentEnvironment(),
      });
      launched.push(daemon);
      await recorded(w.name, { ...daemon.record, stateDir });
    }
  } catch (e) {
    for (const d of launched) d.release();
    throw e;
  }
  return launched;
}

/** The last lines of a log, to put in an error. */
async function tail(path: string, lines = 5): Promise<string> {
  try {
    const text = (await readFile(path, 'utf8')).trimEnd();
    return text
      .split('\n')
      .slice(-lines)
      .map((l) => `    ${l}`)
      .join('\n');
  } catch {
    return '    (no log)';
  }
}

async function logsOf(agents: ReadonlyMap<string, AgentRecord>, which: readonly string[]) {
  const parts = await Promise.all(
    which.map(
      async (w) => `  ${w} (log ${agents.get(w)!.log}):\n${await tail(agents.get(w)!.log)}`,
    ),
  );
  return parts.join('\n');
}

export interface SettleOptions {
  readonly client: ControlPlaneClient;
  /** Pairings made before this (ISO time) belong to someone else. */
  readonly since: string;
  /** How long every agent may take to pair; 0: only check that they keep running. */
  readonly pairTimeoutMs: number;
  /** How long each agent must keep running after launch before the lab counts on it. */
  readonly settleMs: number;
}

/**
 * Waits until every agent has run for a moment and (unless told not to wait) has paired;
 * an agent that exits, or does not pair in time, is an error with the end of its log.
 * Returns how many paired (0 when not waiting).
 */
export async function waitForAgents(
  agents: ReadonlyMap<string, AgentRecord>,
  options: SettleOptions,
): Promise<number> {
  const settleUntil = Date.now() + options.settleMs;
  const deadline = Date.now() + Math.max(options.pairTimeoutMs, options.settleMs);
  const names = [...agents.keys()];
  for (;;) {
    const alive = await Promise.all(names.map((w) => isAlive(agents.get(w)!)));
    const dead = names.filter((_, i) => !alive[i]);
    if (dead.length)
      throw new LabError(
        `${dead.length} agent(s) exited soon after start:\n${await logsOf(agents, dead)}`,
        { workloads: dead },
      );
    let unpaired: string[] = [];
    if (options.pairTimeoutMs > 0) {
      const paired = new Set(
        (await activeAgentsOn(options.client, names))
          .filter((a) => a.createdAt >= options.since)
          .map((a) => a.workload),
      );
      unpaired = names.filter((w) => !paired.has(w));
    }
    if (Date.now() >= settleUntil && unpaired.length === 0)
      return options.pairTimeoutMs > 0 ? names.length : 0;
    if (Date.now() >= deadline)
      throw new LabError(
        `${unpaired.length} agent(s) did not pair with ${options.client.base} within ${Math.round(options.pairTimeoutMs / 1000)} s:\n${await logsOf(agents, unpaired)}`,
        { workloads: unpaired },
      );
    await new Promise((r) => setTimeout(r, 300));
  }
}

/**
 * `bulkhead lab up FILE`: builds the lab a topology describes and returns once it runs.
 *
 * Order: check the machine, the file and (with agents) the control plane before touching
 * anything; record the state; build the network; start each workload's services under their
 * process names; then, with agents, the relay to the control plane, the workloads and
 * pairing codes on the control plane, and one agent per managed workload, waiting until
 * each has paired. The state file is rewritten after every step, so `down` can clean up
 * after a crash at any point; a step that fails takes the lab down again (logs are kept).
 */
import { access, mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  activeAgentsOn,
  createPairing,
  registerWorkloads,
  type ControlPlaneClient,
} from './control-plane.js';
import { launchAgents, waitForAgents } from './agents.js';
import { mapLimit } from './concurrency.js';
import { labDown } from './down.js';
import { LabError } from './errors.js';
import {
  bridgeOf,
  buildNetwork,
  linkHolding,
  netnsOf,
  ownedByPrefix,
  prefixProblem,
} from './network.js';
import { requireLabHost } from './preflight.js';
import { installPrograms } from './programs.js';
import { startRelay } from './relay.js';
import { startServices } from './services.js';
import {
  STATE_VERSION,
  labPaths,
  readState,
  writeState,
  type AgentRecord,
  type LabPaths,
  type LabState,
  type ServiceRecord,
  DEFAULT_LAB_DIR,
} from './state.js';
import { loadTopology, type Topology } from './topology.js';

export interface AgentOptions {
  readonly client: ControlPlaneClient;
  /** The agent's program (see agent/program.ts). */
  readonly program: string;
  /** The port the relay listens on, on the bridge (the control plane's usual 7480). */
  readonly relayPort: number;
  /** How long to wait for every agent to pair; 0: do not wait. */
  readonly pairTimeoutMs: number;
}

export interface UpOptions {
  readonly file: string;
  readonly labDir: string;
  readonly prefix: string;
  /** Null: no agents (`--no-agents`). */
  readonly agents: AgentOptions | null;
  /** Progress lines for the person waiting. */
  readonly progress?: (line: string) => void;
}

/** Services start a few at a time (see mapLimit). */
const START_CONCURRENCY = 4;
/** How long an agent must keep running after launch before the lab counts on it. */
const AGENT_SETTLE_MS = 1500;

export async function labUp(options: UpOptions): Promise<LabState> {
  const say = options.progress ?? (() => undefined);
  await requireLabHost();
  const problem = prefixProblem(options.prefix);
  if (problem) throw new LabError(problem);
  const file = resolve(options.file);
  const topology = await loadTopology(options.file);
  const paths = labPaths(resolve(options.labDir));
  await refuseIfTaken(paths, options.prefix, topology);
  if (options.agents) await checkAgentsCanRun(options.agents, topology);

  const startedAt = new Date().toISOString();
  let state: LabState = {
    version: STATE_VERSION,
    phase: 'starting',
    name: topology.name,
    file,
    prefix: options.prefix,
    bridge: bridgeOf(options.prefix),
    labDir: paths.dir,
    startedAt,
    topology,
    workloads: [],
    relay: null,
    controlPlane: null,
  };
  // Saves run one after another, each writing the newest state (services start in parallel).
  let writing = Promise.resolve();
  const save = (next: LabState): Promise<void> => {
    state = next;
    const snapshot = state;
    writing = writing.then(() => writeState(snapshot));
    return writing;
  };
  await save(state);

  try {
    await mkdir(paths.logs, { recursive: true });
    await installPrograms(paths, [
      ...topology.workloads.flatMap((w) => w.listen.map((l) => l.process)),
      ...topology.traffic.map((t) => t.process),
    ]);
    say(`building ${topology.workloads.length} namespaces under prefix ${options.prefix}`);
    await buildNetwork(options.prefix, topology);
    await save({
      ...state,
      workloads: topology.workloads.map((w) => ({
        name: w.name,
        netns: netnsOf(options.prefix, w.name),
        services: [],
        agent: null,
      })),
    });

    say('starting services');
    await mapLimit(topology.workloads, START_CONCURRENCY, (w) =>
      // Recorded as each one starts, so a crash in the middle leaves no stranger behind.
      startServices(paths, options.prefix, w, (record) => save(withService(state, w.name, record))),
    );

    if (options.agents)
      state = await startAgents(state, paths, topology, options.agents, save, say);
    await save({ ...state, phase: 'running' });
    return state;
  } catch (e) {
    say(`up failed; taking the lab down again (logs stay in ${paths.logs})`);
    const client = options.agents?.client;
    try {
      await labDown({
        labDir: paths.dir,
        prefix: options.prefix,
        connect: client ? () => client : null,
        keepLogs: true,
      });
    } catch (cleanup) {
      throw new LabError(
        `${(e as Error).message}\n(taking the lab down again failed too: ${(cleanup as Error).message}; run bulkhead lab down${labDirFlag(paths.dir)})`,
        { dir: paths.dir },
        { cause: e },
      );
    }
    throw e;
  }
}

function withService(state: LabState, workload: string, record: ServiceRecord): LabState {
  return {
    ...state,
    workloads: state.workloads.map((w) =>
      w.name === workload ? { ...w, services: [...w.services, record] } : w,
    ),
  };
}

function withAgent(state: LabState, workload: string, agent: AgentRecord): LabState {
  return {
    ...state,
    workloads: state.workloads.map((w) => (w.name === workload ? { ...w, agent } : w)),
  };
}

/** Another lab in this directory, under this prefix, or on this network: refuse, say which. */
async function refuseIfTaken(paths: LabPaths, prefix: string, topology: Topology): Promise<void> {
  const existing = await readState(paths.dir);
  if (existing)
    throw new LabError(
      `a lab is already up in ${paths.dir} (${existing.name}, prefix ${existing.prefix}, ${existing.phase}): take it down first with bulkhead lab down${labDirFlag(paths.dir)}`,
      { dir: paths.dir },
    );
  const owned = await ownedByPrefix(prefix);
  if (owned.namespaces.length || owned.links.length)
    throw new LabError(
      `namespaces or links named ${prefix}* already exist (${[...owned.namespaces, ...owned.links].slice(0, 5).join(', ')}): another lab uses prefix ${prefix} (choose another with --prefix), or one crashed: remove it with bulkhead lab down --prefix ${prefix}`,
      { prefix },
    );
  for (const cidr of topology.network.bridge) {
    const address = cidr.split('/')[0]!;
    const link = await linkHolding(address);
    if (link)
      throw new LabError(
        `${address}, the lab bridge's address, is already on ${link}: another lab uses this network; take it down, or give this one another network (network.ipv4 in the file)`,
        { address, link },
      );
  }
}

/** The `--lab-dir` a later command needs to find this lab, if any. */
export function labDirFlag(dir: string): string {
  return dir === resolve(process.env.BULKHEAD_LAB_DIR || DEFAULT_LAB_DIR)
    ? ''
    : ` --lab-dir ${dir}`;
}

async function checkAgentsCanRun(agents: AgentOptions, topology: Topology): Promise<void> {
  try {
    await access(agents.program);
  } catch {
    throw new LabError(
      `the agent's program ${agents.program} does not exist: build it (npm run build), or run the lab with --no-agents`,
      { program: agents.program },
    );
  }
  const managed = topology.workloads.filter((w) => w.agent).map((w) => w.name);
  const paired = await activeAgentsOn(agents.client, managed);
  if (paired.length)
    throw new LabError(
      `workloads of this lab already have agents paired at ${agents.client.base}: ${paired.map((a) => `${a.workload} (agent ${a.id})`).join(', ')}; ` +
        `take down the lab that paired them (bulkhead lab down revokes its agents), or revoke them: POST /api/v1/agents/ID/revoke`,
      { workloads: paired.map((a) => a.workload) },
    );
}

/**
 * The agents' side: the relay, the workloads and pairing codes on the control plane, one
 * agent per managed workload; returns once they run (and have paired, unless told not to wait).
 */
async function startAgents(
  initial: LabState,
  paths: LabPaths,
  topology: Topology,
  agents: AgentOptions,
  save: (s: LabState) => Promise<void>,
  say: (line: string) => void,
): Promise<LabState> {
  let state = initial;
  const bridgeAddress = topology.network.bridge[0]!.split('/')[0]!;
  const relay = await startRelay(paths, bridgeAddress, agents.relayPort, agents.client.base);
  state = { ...state, relay: relay.record };
  await save(state);
  say(`relaying ${relay.record.listen} to the control plane at ${agents.client.base}`);

  say(`creating ${topology.workloads.length} workloads and pairing codes at ${agents.client.base}`);
  await registerWorkloads(agents.client, topology);
  const stamp = state.startedAt.replace(/[^0-9]/g, '').slice(0, 14);
  const pairing = await createPairing(agents.client, topology, stamp);
  state = {
    ...state,
    controlPlane: {
      url: agents.client.base,
      agentUrl: relay.agentUrl,
      pairingProfiles: pairing.profiles,
    },
  };
  await save(state);

  const managed = topology.workloads.filter((w) => w.agent);
  say(`starting ${managed.length} agents (they reach the control plane at ${relay.agentUrl})`);
  const launched = await launchAgents(
    managed,
    {
      paths,
      prefix: state.prefix,
      program: agents.program,
      serverUrl: relay.agentUrl,
      codes: pairing.codes,
    },
    async (workload, agent) => {
      state = withAgent(state, workload, agent);
      await save(state);
    },
  );
  try {
    const records = new Map(state.workloads.flatMap((w) => (w.agent ? [[w.name, w.agent]] : [])));
    const paired = await waitForAgents(records, {
      client: agents.client,
      since: state.startedAt,
      pairTimeoutMs: agents.pairTimeoutMs,
      settleMs: AGENT_SETTLE_MS,
    });
    if (paired) say(`all ${paired} agents paired`);
  } finally {
    for (const d of launched) d.release();
  }
  return state;
}

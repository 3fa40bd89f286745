/**
 * The lab directory and the state file in it. `up` writes the state before it builds
 * anything and again after every step, so whatever a crash leaves behind is on record for
 * `down`; the later commands (traffic, probe, status) read everything they need from it.
 *
 * Layout of a lab directory (default /run/bulkhead-lab, `--lab-dir`, BULKHEAD_LAB_DIR):
 *
 *   state.json            this file's LabState
 *   bin.d/<process>       one symlink to node per process name, so each runs under its name
 *   prog.d/               the lab's programs: service.cjs, relay.cjs, traffic.cjs
 *   log.d/                one log per daemon: <workload>.<process>.log, <workload>.agent.log, relay.log
 *   <workload>/           each agent's --state-dir
 *
 * Workload names are host names (no dots), so they never collide with the dotted entries.
 */
import { mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { LabError } from './errors.js';
import type { Protocol, Topology } from './topology.js';

export const DEFAULT_LAB_DIR = '/run/bulkhead-lab';
/**
 * Namespace and link names start with this. Distinct from every prefix the test suites use
 * (bhd, bhu, bhi, bha, bhp, bhe, bhl), and none of those is a prefix of it, because `down`
 * removes everything whose name starts with the prefix.
 */
export const DEFAULT_PREFIX = 'blab-';
export const STATE_VERSION = 1;

export function labDirFrom(option: string | undefined): string {
  return option || process.env.BULKHEAD_LAB_DIR || DEFAULT_LAB_DIR;
}

export interface LabPaths {
  readonly dir: string;
  readonly state: string;
  readonly bin: string;
  readonly programs: string;
  readonly logs: string;
}

export function labPaths(dir: string): LabPaths {
  return {
    dir,
    state: join(dir, 'state.json'),
    bin: join(dir, 'bin.d'),
    programs: join(dir, 'prog.d'),
    logs: join(dir, 'log.d'),
  };
}

/** A process the lab started: enough to find it again and to be sure it is still the same. */
export interface ProcessRecord {
  readonly pid: number;
  /** Kernel start time (clock ticks since boot, /proc/PID/stat): a reused pid has another. */
  readonly startTime: number;
  /** What the process is called (its comm), for people reading status. */
  readonly comm: string;
  readonly log: string;
}

export interface ServiceRecord extends ProcessRecord {
  readonly process: string;
  readonly listen: readonly { readonly port: number; readonly proto: Protocol }[];
}

export interface AgentRecord extends ProcessRecord {
  readonly stateDir: string;
}

export interface WorkloadRecord {
  readonly name: string;
  readonly netns: string;
  readonly services: readonly ServiceRecord[];
  readonly agent: AgentRecord | null;
}

export interface ControlPlaneRecord {
  /** The control plane as the lab's operator reaches it (BULKHEAD_URL). */
  readonly url: string;
  /** The control plane as agents reach it: through the relay on the bridge. */
  readonly agentUrl: string;
  /** The pairing profiles the lab made (deleted by `down`). */
  readonly pairingProfiles: readonly { readonly id: string; readonly name: string }[];
}

export interface RelayRecord extends ProcessRecord {
  readonly listen: string;
  readonly target: string;
}

export interface LabState {
  readonly version: typeof STATE_VERSION;
  /** `starting` until `up` has finished; a lab left `starting` was interrupted. */
  readonly phase: 'starting' | 'running';
  readonly name: string;
  readonly file: string;
  readonly prefix: string;
  readonly bridge: string;
  readonly labDir: string;
  readonly startedAt: string;
  readonly topology: Topology;
  readonly workloads: readonly WorkloadRecord[];
  readonly relay: RelayRecord | null;
  readonly controlPlane: ControlPlaneRecord | null;
}

/** The state of the lab in `dir`, or null when no lab is recorded there. */
export async function readState(dir: string): Promise<LabState | null> {
  const { state } = labPaths(dir);
  let text: string;
  try {
    text = await readFile(state, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new LabError(`cannot read ${state}: ${(e as Error).message}`, { dir }, { cause: e });
  }
  let parsed: LabState;
  try {
    parsed = JSON.parse(text) as LabState;
  } catch (e) {
    throw new LabError(
      `${state} is not a lab state file (${(e as Error).message}): remove it, then run bulkhead lab down --prefix PREFIX`,
      { dir },
      { cause: e },
    );
  }
  const version: unknown = parsed.version;
  if (version !== STATE_VERSION)
    throw new LabError(
      `${state} was written by another version of bulkhead (state version ${String(version)}, expected ${STATE_VERSION})`,
      { dir },
    );
  return parsed;
}

/** The state of the lab in `dir`; a LabError that says how to start one when there is none. */
export async function requireState(dir: string): Promise<LabState> {
  const state = await readState(dir);
  if (!state)
    throw new LabError(
      `no lab is up in ${dir} (no state.json there): start one with bulkhead lab up FILE${dir === DEFAULT_LAB_DIR ? '' : ` --lab-dir ${dir}`}`,
      { dir },
    );
  return state;
}

/** The state of a lab that finished starting; a LabError when `up` was interrupted. */
export async function requireRunning(dir: string): Promise<LabState> {
  const state = await requireState(dir);
  if (state.phase !== 'running')
    throw new LabError(
      `the lab in ${dir} did not finish starting (up was interrupted): take it down with bulkhead lab down, then start it again`,
      { dir },
    );
  return state;
}

/** Replaces the state file atomically, so a reader (or a crash) never sees half of it. */
export async function writeState(state: LabState): Promise<void> {
  const { state: path } = labPaths(state.labDir);
  const temporary = `${path}.${process.pid}.tmp`;
  await mkdir(state.labDir, { recursive: true });
  await writeFile(temporary, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, path);
}

/** Removes what the lab put in its directory, and the directory when nothing else is left. */
export async function removeLabFiles(
  dir: string,
  workloads: readonly string[],
  options: { keepLogs: boolean } = { keepLogs: false },
): Promise<void> {
  const paths = labPaths(dir);
  const entries = [paths.state, paths.bin, paths.programs, ...workloads.map((w) => join(dir, w))];
  if (!options.keepLogs) entries.push(paths.logs);
  // A state file half-written when its writer was killed (writeState's temporary).
  const stateName = basename(paths.state);
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names)
    if (name.startsWith(`${stateName}.`) && name.endsWith('.tmp')) entries.push(join(dir, name));
  for (const entry of entries) await rm(entry, { recursive: true, force: true });
  try {
    await rmdir(dir);
  } catch (e) {
    // Something else lives there (the operator's own files): leave it.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOENT' && code !== 'ENOTDIR')
      throw e;
  }
}

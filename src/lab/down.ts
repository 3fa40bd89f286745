/**
 * `bulkhead lab down`: removes everything a lab made, whether `up` finished, failed or
 * crashed halfway. The state file says what was started; the prefix finds the rest: every
 * process still inside one of the lab's namespaces (`ip netns pids`), then the namespaces,
 * the veth links and the bridge. With a control plane at hand it also revokes the lab's
 * agents and deletes its pairing profiles. Safe to run twice.
 */
import { destroyByPrefix, pidsInNamespace } from '../host/netns.js';
import { releaseLab, type ControlPlaneClient } from './control-plane.js';
import { ownedByPrefix } from './network.js';
import { requireLabHost } from './preflight.js';
import { recordOf, stopProcesses } from './processes.js';
import {
  DEFAULT_PREFIX,
  labPaths,
  readState,
  removeLabFiles,
  type LabState,
  type ProcessRecord,
} from './state.js';

export interface DownOptions {
  readonly labDir: string;
  /**
   * A prefix to clear as well as the recorded lab's; without a state file (lost, or another
   * lab directory) the only one, DEFAULT_PREFIX when not given.
   */
  readonly prefix?: string;
  /** Reaches the control plane a lab recorded, to revoke its agents; null: leave it alone. */
  readonly connect: ((url: string) => ControlPlaneClient) | null;
  /** Keep log.d (after a failed `up`, to read why). */
  readonly keepLogs?: boolean;
}

export interface DownReport {
  readonly labDir: string;
  readonly prefixes: readonly string[];
  /** Whether a state file was found (a lab was on record). */
  readonly recorded: boolean;
  readonly processesStopped: number;
  readonly namespacesRemoved: readonly string[];
  readonly linksRemoved: readonly string[];
  readonly controlPlane: { readonly revoked: number; readonly profiles: number } | null;
  /** What could not be done and what to do about it. */
  readonly warnings: readonly string[];
}

function recordedProcesses(state: LabState): ProcessRecord[] {
  return [
    ...(state.relay ? [state.relay] : []),
    ...state.workloads.flatMap((w) => [...w.services, ...(w.agent ? [w.agent] : [])]),
  ];
}

/** Every process inside the namespaces, whoever started it: they are all the lab's. */
async function processesInside(namespaces: readonly string[]): Promise<ProcessRecord[]> {
  const pids = (await Promise.all(namespaces.map(pidsInNamespace))).flat();
  const records = await Promise.all([...new Set(pids)].map(recordOf));
  return records.filter((r): r is ProcessRecord => r !== null);
}

export async function labDown(options: DownOptions): Promise<DownReport> {
  await requireLabHost();
  const paths = labPaths(options.labDir);
  const state = await readState(paths.dir);
  const prefixes = state
    ? [...new Set([state.prefix, ...(options.prefix ? [options.prefix] : [])])]
    : [options.prefix ?? DEFAULT_PREFIX];
  const warnings: string[] = [];

  // Processes first: a namespace whose name is deleted lives on while a process holds it.
  let stopped = state ? await stopProcesses(recordedProcesses(state)) : 0;
  const owned = { namespaces: [] as string[], links: [] as string[] };
  for (const prefix of prefixes) {
    const o = await ownedByPrefix(prefix);
    owned.namespaces.push(...o.namespaces);
    owned.links.push(...o.links);
  }
  stopped += await stopProcesses(await processesInside(owned.namespaces));
  for (const prefix of prefixes) await destroyByPrefix(prefix);

  let controlPlane: DownReport['controlPlane'] = null;
  if (state?.controlPlane) {
    if (!options.connect) {
      warnings.push(
        `the lab's agents at ${state.controlPlane.url} were not revoked (no control plane given): revoke them there`,
      );
    } else {
      try {
        controlPlane = await releaseLab(options.connect(state.controlPlane.url), state);
      } catch (e) {
        // The machine is clean either way; say what is left on the control plane.
        warnings.push(
          `could not revoke the lab's agents at ${state.controlPlane.url}: ${(e as Error).message}`,
        );
      }
    }
  }

  const workloads = state?.topology.workloads.map((w) => w.name) ?? [];
  await removeLabFiles(paths.dir, workloads, { keepLogs: options.keepLogs ?? false });
  return {
    labDir: paths.dir,
    prefixes,
    recorded: state !== null,
    processesStopped: stopped,
    namespacesRemoved: owned.namespaces,
    linksRemoved: owned.links.filter((l) => !owned.namespaces.includes(l)),
    controlPlane,
    warnings,
  };
}

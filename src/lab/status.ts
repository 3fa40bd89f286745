/**
 * `bulkhead lab status`: what the lab is (workloads, addresses, services) and whether each
 * of its processes still runs: every service, every agent, the relay, and each namespace.
 */
import { namespacesWithPrefix } from '../host/netns.js';
import { isAlive } from './processes.js';
import type { LabState, ProcessRecord } from './state.js';

export interface ProcessStatus {
  readonly pid: number;
  readonly alive: boolean;
  readonly log: string;
}

export interface LabStatus {
  readonly name: string;
  readonly file: string;
  readonly labDir: string;
  readonly prefix: string;
  readonly phase: LabState['phase'];
  readonly startedAt: string;
  readonly bridge: { readonly name: string; readonly addresses: readonly string[] };
  readonly controlPlane: { readonly url: string; readonly agentUrl: string } | null;
  readonly relay: (ProcessStatus & { readonly listen: string; readonly target: string }) | null;
  readonly workloads: readonly {
    readonly name: string;
    readonly netns: string;
    readonly namespace: boolean;
    readonly addresses: readonly string[];
    readonly labels: Readonly<Record<string, string>>;
    readonly services: readonly (ProcessStatus & {
      readonly process: string;
      readonly listen: readonly string[];
    })[];
    readonly agent: ProcessStatus | null;
  }[];
  /** Everything that should run does. */
  readonly healthy: boolean;
  /** What does not run, in words: `nginx on web-1 (pid 123)`. */
  readonly down: readonly string[];
}

async function processStatus(p: ProcessRecord): Promise<ProcessStatus> {
  return { pid: p.pid, alive: await isAlive(p), log: p.log };
}

export async function labStatus(state: LabState): Promise<LabStatus> {
  const namespaces = new Set(await namespacesWithPrefix(state.prefix));
  const specs = new Map(state.topology.workloads.map((w) => [w.name, w]));
  const down: string[] = [];
  const note = <T extends ProcessStatus>(s: T, what: string): T => {
    if (!s.alive) down.push(`${what} (pid ${s.pid})`);
    return s;
  };
  const relay = state.relay
    ? {
        ...note(await processStatus(state.relay), 'the relay'),
        listen: state.relay.listen,
        target: state.relay.target,
      }
    : null;
  const workloads = await Promise.all(
    state.workloads.map(async (w) => {
      const spec = specs.get(w.name);
      const namespace = namespaces.has(w.netns);
      if (!namespace) down.push(`namespace ${w.netns}`);
      return {
        name: w.name,
        netns: w.netns,
        namespace,
        addresses: spec?.addresses ?? [],
        labels: spec?.labels ?? {},
        services: await Promise.all(
          w.services.map(async (s) => ({
            ...note(await processStatus(s), `${s.process} on ${w.name}`),
            process: s.process,
            listen: s.listen.map((l) => `${l.port}/${l.proto}`),
          })),
        ),
        agent: w.agent ? note(await processStatus(w.agent), `the agent on ${w.name}`) : null,
      };
    }),
  );
  if (state.phase !== 'running') down.push('the lab did not finish starting (up was interrupted)');
  return {
    name: state.name,
    file: state.file,
    labDir: state.labDir,
    prefix: state.prefix,
    phase: state.phase,
    startedAt: state.startedAt,
    bridge: { name: state.bridge, addresses: state.topology.network.bridge },
    controlPlane: state.controlPlane
      ? { url: state.controlPlane.url, agentUrl: state.controlPlane.agentUrl }
      : null,
    relay,
    workloads,
    healthy: down.length === 0,
    down,
  };
}

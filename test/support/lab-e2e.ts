/**
 * What the lab's end-to-end tests share: waiting for a condition, the CLI that must succeed,
 * the control plane's agents all caught up, and decide() on the active policy for a probe.
 */
import type { ApiClient } from '../../src/cli/client.js';
import type { ProbeRow } from '../../src/lab/probe.js';
import { decide, type FlowDecision } from '../../src/policy/decide.js';
import { activePolicy, loadWorkloads, resolveStored } from '../../src/server/policy-state.js';
import type { Store } from '../../src/store/store.js';
import { cli } from './cli.js';

export async function waitFor(
  what: string,
  ms: number,
  ok: () => Promise<boolean>,
  everyMs = 200,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await ok()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Runs the CLI in-process; its stdout, or an error with everything it printed. */
export async function bulkhead(...argv: string[]): Promise<string> {
  const r = await cli(...argv);
  if (r.code !== 0)
    throw new Error(`bulkhead ${argv.join(' ')}: exit ${r.code}\n${r.out}\n${r.err}`);
  return r.out;
}

export interface AgentView {
  id: string;
  workload: string;
  lastHeartbeatAt: string | null;
  upToDate: boolean;
  revokedAt: string | null;
  currentRevision: number | null;
  appliedRevision: number | null;
}

/** The agents not revoked. */
export async function activeAgents(client: ApiClient): Promise<AgentView[]> {
  const { items } = await client.request<{ items: AgentView[] }>('GET', '/agents');
  return items.filter((a) => !a.revokedAt);
}

/** Until every agent has applied the policy its workload has now. */
export function agentsSettled(client: ApiClient): Promise<void> {
  return waitFor('every agent to apply its current policy', 30_000, async () =>
    (await activeAgents(client)).every((a) => a.upToDate),
  );
}

/** decide() on the store's active policy, for the probes of a lab. */
export async function probeOracle(store: Store): Promise<(row: ProbeRow) => FlowDecision> {
  const all = await loadWorkloads(store.db);
  const workloads = new Map(all.map((w) => [w.name, w]));
  const resolved = resolveStored((await activePolicy(store.db)).documents, all);
  return (row) =>
    decide(resolved, {
      source: { address: row.fromAddress, workload: workloads.get(row.from)! },
      destination: { address: row.toAddress, workload: workloads.get(row.to)! },
      proto: row.proto,
      port: row.port,
      ...(row.process ? { process: row.process } : {}),
    });
}

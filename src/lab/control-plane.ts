/**
 * What the lab asks of the control plane (REST API, routes in src/server/routes): it
 * creates the lab's workloads with the file's labels (pairing then adopts them, keeping
 * the labels), one pairing profile and activation code per enforcement mode the file asks
 * for, and at `down` revokes the agents it paired and deletes its profiles.
 */
import type { EnforcementMode } from '../policy/model.js';
import type { LabState } from './state.js';
import type { Topology } from './topology.js';

/** The part of the CLI's ApiClient the lab needs (so tests can hand in their own). */
export interface ControlPlaneClient {
  readonly base: string;
  request<T>(method: string, path: string, body?: unknown): Promise<T>;
}

interface AgentView {
  id: string;
  workload: string;
  createdAt: string;
  revokedAt: string | null;
}

/** How long an activation code stays usable: agents pair as soon as they start. */
const CODE_LIFETIME_SECONDS = 3600;

/** Agents still paired with any of these workloads. */
export async function activeAgentsOn(
  client: ControlPlaneClient,
  workloads: Iterable<string>,
): Promise<AgentView[]> {
  const names = new Set(workloads);
  const { items } = await client.request<{ items: AgentView[] }>('GET', '/agents');
  return items.filter((a) => a.revokedAt === null && names.has(a.workload));
}

/** Creates or replaces the lab's workloads with the file's labels, addresses and modes. */
export async function registerWorkloads(
  client: ControlPlaneClient,
  topology: Topology,
): Promise<void> {
  await client.request('POST', '/workloads/apply', {
    workloads: topology.workloads.map((w) => ({
      kind: 'Workload',
      name: w.name,
      addresses: [...w.addresses],
      labels: { ...w.labels },
      mode: w.mode,
      managed: w.agent,
    })),
  });
}

export interface Pairing {
  readonly profiles: { readonly id: string; readonly name: string }[];
  /** The activation code for each enforcement mode. */
  readonly codes: ReadonlyMap<EnforcementMode, string>;
}

/**
 * One pairing profile per mode (a profile sets the mode of what pairs with it) with no
 * labels of its own, so adoption keeps each workload's labels; and one code for all of its
 * workloads.
 */
export async function createPairing(
  client: ControlPlaneClient,
  topology: Topology,
  stamp: string,
): Promise<Pairing> {
  const perMode = new Map<EnforcementMode, number>();
  for (const w of topology.workloads)
    if (w.agent) perMode.set(w.mode, (perMode.get(w.mode) ?? 0) + 1);
  const profiles: { id: string; name: string }[] = [];
  const codes = new Map<EnforcementMode, string>();
  for (const [mode, count] of perMode) {
    const profile = await client.request<{ id: string; name: string }>(
      'POST',
      '/pairing-profiles',
      {
        // Within the API's 128 characters, whatever the lab's name.
        name: `lab.${topology.name.slice(0, 80)}.${mode}.${stamp}`,
        labels: {},
        mode,
      },
    );
    profiles.push({ id: profile.id, name: profile.name });
    const code = await client.request<{ code: string }>(
      'POST',
      `/pairing-profiles/${encodeURIComponent(profile.id)}/activation-codes`,
      { expiresInSeconds: CODE_LIFETIME_SECONDS, maxUses: count },
    );
    codes.set(mode, code.code);
  }
  return { profiles, codes };
}

/**
 * Revokes the agents this lab paired (those on its workloads paired since it started) and
 * deletes its pairing profiles. The workloads stay: they carry the flows and history.
 */
export async function releaseLab(
  client: ControlPlaneClient,
  state: LabState,
): Promise<{ revoked: number; profiles: number }> {
  const agents = (
    await activeAgentsOn(
      client,
      state.topology.workloads.map((w) => w.name),
    )
  ).filter((a) => a.createdAt >= state.startedAt);
  for (const a of agents)
    await client.request('POST', `/agents/${encodeURIComponent(a.id)}/revoke`, {});
  // Only those still there: a second `down` (or a person) may have deleted some already.
  const ours = new Set((state.controlPlane?.pairingProfiles ?? []).map((p) => p.id));
  const { items } = await client.request<{ items: { id: string }[] }>('GET', '/pairing-profiles');
  const profiles = items.filter((p) => ours.has(p.id));
  for (const p of profiles)
    await client.request('DELETE', `/pairing-profiles/${encodeURIComponent(p.id)}`);
  return { revoked: agents.length, profiles: profiles.length };
}

/**
 * The estate and both policies as the flow store needs them: who owns an address, which IP
 * list or subnet an outside address is shown by, and what the active version and the draft
 * say about an edge. Loaded once and kept until a change that can alter any of it.
 */
import { AddressGrouper, type NamedAddresses } from '../../analysis/flows/address-groups.js';
import { edgeAddress } from '../../analysis/flows/edge-key.js';
import type { EdgeKey, EdgeVerdict, FlowEnd } from '../../analysis/flows/model.js';
import { AddressSet } from '../../policy/addresses.js';
import { decide, formatDecidedBy, type FlowEndpoint } from '../../policy/decide.js';
import type { Workload } from '../../policy/model.js';
import type { ResolvedPolicy } from '../../policy/resolve.js';
import type { Db } from '../../store/store.js';
import { activePolicy, loadDraft, loadWorkloads, resolveStored } from '../policy-state.js';

export interface Estate {
  readonly workloads: readonly Workload[];
  readonly byName: ReadonlyMap<string, Workload>;
  /** The active version's number (null: none provisioned yet). */
  readonly activeVersion: number | null;
  /** Why a policy could not be used, if one could not (decisions then say so). */
  readonly problems: readonly string[];
  readonly ownerOf: (address: string) => Workload | undefined;
  readonly groupOf: (address: string) => string;
  /** What the active version and the draft say about an edge. */
  verdicts(
    key: EdgeKey,
    observed?: { source?: string | null; destination?: string | null },
  ): {
    readonly active: EdgeVerdict;
    readonly draft: EdgeVerdict;
  };
}

/** What the estate says of an edge: the groups of its address ends, and both verdicts. */
export function judgeEdge(
  estate: Estate,
  key: EdgeKey,
  observed: { source?: string | null; destination?: string | null },
): {
  readonly sourceGroup: string | null;
  readonly destinationGroup: string | null;
  readonly active: EdgeVerdict;
  readonly draft: EdgeVerdict;
} {
  const group = (end: FlowEnd) => (end.address !== undefined ? estate.groupOf(end.address) : null);
  return {
    sourceGroup: group(key.source),
    destinationGroup: group(key.destination),
    ...estate.verdicts(key, observed),
  };
}

function tryResolve(
  what: string,
  resolve: () => ResolvedPolicy,
  problems: string[],
): ResolvedPolicy | null {
  try {
    return resolve();
  } catch (e) {
    problems.push(`the ${what} does not resolve: ${(e as Error).message}`);
    return null;
  }
}

function ipLists(policy: ResolvedPolicy | null): NamedAddresses[] {
  if (!policy) return [];
  const out: NamedAddresses[] = [];
  for (const l of policy.source.ipLists) {
    try {
      out.push({ name: l.name, addresses: AddressSet.of(l.include, l.exclude) });
    } catch {
      // resolvePolicy already refused a list with a bad entry; nothing more to say here.
    }
  }
  return out;
}

export async function loadEstate(db: Db): Promise<Estate> {
  const workloads = await loadWorkloads(db);
  const active = await activePolicy(db);
  const draftDocs = await loadDraft(db);
  const problems: string[] = [];
  const activeResolved = tryResolve(
    `active policy (version ${active.version ?? 'none'})`,
    () => resolveStored(active.documents, workloads),
    problems,
  );
  const draftResolved = tryResolve(
    'draft policy',
    () => resolveStored(draftDocs, workloads),
    problems,
  );
  return buildEstate(workloads, active.version, activeResolved, draftResolved, problems);
}

/** Who owns an address (in canonical text): the first workload that lists it. */
export function addressOwners(
  workloads: readonly Workload[],
): (address: string) => Workload | undefined {
  const owners = new Map<string, Workload>();
  for (const w of workloads) {
    for (const a of w.addresses) {
      const canonical = edgeAddress(a);
      if (!owners.has(canonical)) owners.set(canonical, w);
    }
  }
  return (address) => owners.get(address);
}

/** The estate from already resolved policies (null: that policy could not be resolved). */
export function buildEstate(
  workloads: readonly Workload[],
  activeVersion: number | null,
  active: ResolvedPolicy | null,
  draft: ResolvedPolicy | null,
  problems: readonly string[] = [],
): Estate {
  const byName = new Map(workloads.map((w) => [w.name, w]));
  const ownerOf = addressOwners(workloads);
  const grouper = new AddressGrouper([...ipLists(active), ...ipLists(draft)]);

  const endpoint = (
    policy: ResolvedPolicy,
    end: FlowEnd,
    observed: string | null | undefined,
  ): FlowEndpoint => {
    if (end.workload !== undefined) {
      const w = policy.workloadByName.get(end.workload);
      const address = w?.addresses[0] ?? observed ?? '0.0.0.0';
      return w ? { address, workload: w } : { address };
    }
    const w = policy.workloadAt(end.address);
    return w ? { address: end.address, workload: w } : { address: end.address };
  };

  const verdictUnder = (
    policy: ResolvedPolicy | null,
    what: string,
    key: EdgeKey,
    observed?: { source?: string | null; destination?: string | null },
  ): EdgeVerdict | null => {
    if (!policy) return null;
    try {
      const d = decide(policy, {
        source: endpoint(policy, key.source, observed?.source),
        destination: endpoint(policy, key.destination, observed?.destination),
        proto: key.proto,
        ...(key.port !== null ? { port: key.port } : {}),
        ...(key.process !== null ? { process: key.process } : {}),
      });
      return { decision: d.decision, decidedBy: formatDecidedBy(d.decidedBy) };
    } catch (e) {
      return {
        decision: 'allowed',
        decidedBy: `not decided under the ${what}: ${(e as Error).message}`,
      };
    }
  };

  const unresolved = (what: string): EdgeVerdict => ({
    decision: 'allowed',
    decidedBy: `not decided: the ${what} does not resolve`,
  });

  return {
    workloads,
    byName,
    activeVersion,
    problems,
    ownerOf,
    groupOf: (address) => grouper.groupOf(address),
    verdicts(key, observed) {
      const a = verdictUnder(active, 'active policy', key, observed) ?? unresolved('active policy');
      const d = verdictUnder(draft, 'draft', key, observed);
      return {
        active: a,
        draft: d ?? { ...a, decidedBy: `${a.decidedBy} (the draft does not resolve)` },
      };
    },
  };
}

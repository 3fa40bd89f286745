/**
 * The policy as the store holds it: workloads (live estate), the draft policy objects, and
 * numbered versions. Objects are kept as the policy-as-code documents a person wrote (so
 * `get -o yaml` gives back what `apply` takes) and turned into the engine's model here.
 */
import type { Policy, Workload } from '../policy/model.js';
import { resolvePolicy, type ResolvedPolicy } from '../policy/resolve.js';
import { policyFromDocuments } from '../policy-as-code/parse.js';
import { POLICY_KINDS, policyDocument, type PolicyDocument } from '../policy-as-code/schema.js';
import type { WorkloadRow } from '../store/schema.js';
import type { Db } from '../store/store.js';

/** The kinds the draft holds (workloads are the estate, not policy, and are not versioned). */
export { POLICY_KINDS };
export type PolicyKind = (typeof POLICY_KINDS)[number];

/** A stored document: what the user sent, validated, with its kind and name. */
export interface StoredDocument {
  readonly kind: PolicyKind;
  readonly name: string;
  readonly spec: Record<string, unknown>;
}

export function workloadFromRow(
  row: Pick<WorkloadRow, 'name' | 'addresses' | 'labels' | 'mode' | 'managed' | 'users'>,
): Workload {
  return {
    name: row.name,
    addresses: JSON.parse(row.addresses) as string[],
    labels: JSON.parse(row.labels) as Record<string, string>,
    mode: row.mode as Workload['mode'],
    managed: row.managed === 1,
    users: JSON.parse(row.users) as string[],
  };
}

export async function loadWorkloads(db: Db): Promise<Workload[]> {
  const rows = await db
    .selectFrom('workloads')
    .select(['name', 'addresses', 'labels', 'mode', 'managed', 'users'])
    .orderBy('name')
    .execute();
  return rows.map(workloadFromRow);
}

export async function loadDraft(db: Db): Promise<StoredDocument[]> {
  const rows = await db
    .selectFrom('policy_objects')
    .select(['kind', 'name', 'spec'])
    .orderBy('kind')
    .orderBy('name')
    .execute();
  return rows.map((r) => ({
    kind: r.kind as PolicyKind,
    name: r.name,
    spec: JSON.parse(r.spec) as Record<string, unknown>,
  }));
}

export async function activeVersion(db: Db): Promise<number | null> {
  const row = await db
    .selectFrom('meta')
    .select('value')
    .where('key', '=', 'active_version')
    .executeTakeFirst();
  return row ? (JSON.parse(row.value) as number) : null;
}

export async function loadVersion(db: Db, version: number): Promise<StoredDocument[] | null> {
  const row = await db
    .selectFrom('policy_versions')
    .select('objects')
    .where('version', '=', version)
    .executeTakeFirst();
  return row ? (JSON.parse(row.objects) as StoredDocument[]) : null;
}

/** The active version and its documents (none active: no version, no documents). */
export async function activePolicy(
  db: Db,
): Promise<{ version: number | null; documents: StoredDocument[] }> {
  const version = await activeVersion(db);
  return { version, documents: version ? ((await loadVersion(db, version)) ?? []) : [] };
}

const documentKey = (d: StoredDocument) => `${d.kind}/${d.name}`;

/**
 * The documents by kind, then name. The order of rulesets is the order of the compiled
 * rules, so a version compiles the same whatever order its documents were stored in (the
 * draft is read back sorted, the demo provisions its own order, a database may collate
 * names its own way).
 */
export function canonicalOrder(documents: readonly StoredDocument[]): StoredDocument[] {
  return [...documents].sort((a, b) =>
    documentKey(a) < documentKey(b) ? -1 : documentKey(a) > documentKey(b) ? 1 : 0,
  );
}

/** The model from stored documents and the estate. The documents were validated on write. */
export function policyOf(
  documents: readonly StoredDocument[],
  workloads: readonly Workload[],
): Policy {
  const values: PolicyDocument[] = canonicalOrder(documents).map((d) =>
    policyDocument.parse(d.spec),
  );
  return { ...policyFromDocuments(values), workloads };
}

export function resolveStored(
  documents: readonly StoredDocument[],
  workloads: readonly Workload[],
): ResolvedPolicy {
  return resolvePolicy(policyOf(documents, workloads));
}

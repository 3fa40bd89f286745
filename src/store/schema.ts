/**
 * The tables, as Kysely sees them. One schema for SQLite and PostgreSQL: JSON is stored as
 * text, booleans as 0/1 integers and times as ISO-8601 text, so every query is written once
 * and reads back the same on both.
 */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/** JSON kept as text; the repositories parse and stringify it. */
export type JsonText = string;
/** ISO-8601 UTC, e.g. 2026-11-23T20:45:00.000Z: sorts as text in both databases. */
export type IsoTime = string;
export type Flag = 0 | 1;

export const ROLES = ['owner', 'admin', 'policy-editor', 'read-only'] as const;
export type Role = (typeof ROLES)[number];

export interface ApiKeysTable {
  id: string;
  name: string;
  role: Role;
  /** For a policy editor: the label selector (JSON) its rulesets' scopes must lie within. */
  scope: JsonText | null;
  /** The first characters of the key, to recognise it in lists; the key itself is never stored. */
  prefix: string;
  /** SHA-256 of the whole key. */
  hash: string;
  created_at: IsoTime;
  created_by: string | null;
  revoked_at: IsoTime | null;
  last_used_at: IsoTime | null;
}

export interface WorkloadsTable {
  name: string;
  addresses: JsonText;
  labels: JsonText;
  mode: string;
  managed: Flag;
  users: JsonText;
  /** What the agent reported last (hostname, os, interfaces, listening sockets); null if none. */
  inventory: JsonText | null;
  created_at: IsoTime;
  updated_at: IsoTime;
}

/** The draft policy: every object except workloads, as the policy-as-code document. */
export interface PolicyObjectsTable {
  kind: string;
  name: string;
  spec: JsonText;
  updated_at: IsoTime;
}

/** Immutable, numbered versions of the policy objects. */
export interface PolicyVersionsTable {
  version: number;
  message: string;
  objects: JsonText;
  created_at: IsoTime;
  created_by: string;
  /** The version this one restored, for a rollback. */
  restores: number | null;
}

/** Small singletons: the active version, settings. */
export interface MetaTable {
  key: string;
  value: JsonText;
}

export interface PairingProfilesTable {
  id: string;
  name: string;
  labels: JsonText;
  mode: string;
  created_at: IsoTime;
}

export interface ActivationCodesTable {
  id: string;
  profile_id: string;
  hash: string;
  prefix: string;
  expires_at: IsoTime;
  max_uses: number;
  uses: number;
  revoked_at: IsoTime | null;
  created_at: IsoTime;
}

export interface AgentsTable {
  id: string;
  workload: string;
  credential_hash: string;
  status: string;
  last_heartbeat_at: IsoTime | null;
  applied_version: number | null;
  applied_revision: number | null;
  created_at: IsoTime;
  revoked_at: IsoTime | null;
}

/** Each workload's compiled policy, recomputed when a provision or a label change affects it. */
export interface CompiledPoliciesTable {
  workload: string;
  policy_version: number;
  /** Increases with every change to this workload's compiled policy. */
  revision: number;
  /** The backend-neutral endpoint policy and the nft state, as JSON. */
  compiled: JsonText;
  computed_at: IsoTime;
}

export interface FlowBatchesTable {
  agent_id: string;
  batch_id: string;
  received_at: IsoTime;
  summaries: number;
}

/** The ingest log: a batch's summaries (LoggedSummary tuples) as one JSON array per row. */
export interface FlowLogTable {
  id: Generated<number>;
  agent_id: string;
  batch_id: string;
  /** The reporting agent's workload ('' for imports). */
  workload: string;
  /** How many summaries `summaries` holds. */
  count: number;
  summaries: string;
}

/** A view of the ingest log, one row per summary; `id` is its log row's. Read only. */
export interface FlowSummariesTable {
  id: number;
  agent_id: string;
  batch_id: string;
  workload: string;
  src: string;
  dst: string;
  proto: string;
  dport: number | null;
  process: string | null;
  first_seen: IsoTime;
  last_seen: IsoTime;
  connections: number;
  bytes: ColumnType<number, number, number>;
  decision: string | null;
}

/** One distinct flow shape (see src/analysis/flows/model.ts) and its decisions. */
export interface FlowEdgesTable {
  id: Generated<number>;
  /** Canonical text of the edge key (`edgeKeyText`). */
  key: string;
  src_workload: string | null;
  src_address: string | null;
  dst_workload: string | null;
  dst_address: string | null;
  proto: string;
  port: number | null;
  process: string | null;
  /** For an address end: the IP list or subnet it is shown as. */
  src_group: string | null;
  dst_group: string | null;
  decision: string;
  decided_by: string;
  draft_decision: string;
  draft_decided_by: string;
  /** The flow store's decision revision these verdicts were computed under. */
  decided_revision: number;
}

/** Traffic of one edge in one time bucket (minutes, hours or days). */
export interface FlowBucketsTable {
  /** Bucket start, epoch seconds. */
  bucket: number;
  edge_id: number;
  connections: number;
  /** Of `connections`, those an enforcing agent reported blocked (attempts that failed). */
  blocked: ColumnType<number, number | undefined, number>;
  bytes: number;
  /** Epoch milliseconds. */
  first_seen: number;
  last_seen: number;
}

export interface AuditEventsTable {
  id: Generated<number>;
  at: IsoTime;
  /** Who: `key:<id> (<name>)`, `agent:<id>`, or `system`. */
  actor: string;
  /** What, e.g. `workload.update`, `policy.provision`, `agent.pair`, `agent.tamper`. */
  type: string;
  resource_kind: string;
  resource_name: string;
  before: JsonText | null;
  after: JsonText | null;
  /** Where from: the client address. */
  source: string | null;
  request_id: string | null;
}

export interface Database {
  api_keys: ApiKeysTable;
  workloads: WorkloadsTable;
  policy_objects: PolicyObjectsTable;
  policy_versions: PolicyVersionsTable;
  meta: MetaTable;
  pairing_profiles: PairingProfilesTable;
  activation_codes: ActivationCodesTable;
  agents: AgentsTable;
  compiled_policies: CompiledPoliciesTable;
  flow_batches: FlowBatchesTable;
  flow_log: FlowLogTable;
  flow_summaries: FlowSummariesTable;
  audit_events: AuditEventsTable;
  flow_edges: FlowEdgesTable;
  flow_minutes: FlowBucketsTable;
  flow_hours: FlowBucketsTable;
  flow_days: FlowBucketsTable;
}

export type ApiKeyRow = Selectable<ApiKeysTable>;
export type WorkloadRow = Selectable<WorkloadsTable>;
export type NewWorkloadRow = Insertable<WorkloadsTable>;
export type WorkloadUpdate = Updateable<WorkloadsTable>;
export type AuditEventRow = Selectable<AuditEventsTable>;
export type AgentRow = Selectable<AgentsTable>;

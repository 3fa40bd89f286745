/**
 * What the agent and the control plane say to each other, from the agent's side. Answers
 * are checked (check.ts) before anything acts on them (a policy goes into the kernel); what
 * the agent sends is typed here and checked against the server's own schemas in the tests.
 * The agent keeps its own copy rather than importing the server's schemas, so it never
 * loads the control plane's code.
 */
import {
  array,
  boolean,
  count,
  literal,
  number,
  object,
  oneOf,
  string,
  union,
  type Infer,
} from './check.js';
import type { NftState } from '../policy/compile/nft.js';

export const ENFORCEMENT_MODES = ['idle', 'visibility', 'selective', 'full'] as const;
export type EnforcementMode = (typeof ENFORCEMENT_MODES)[number];

export const pairAnswer = object({
  agentId: string({ min: 1, max: 128 }),
  credential: string({ min: 8, max: 512 }),
  workload: string({ min: 1, max: 128 }),
  pollIntervalSeconds: number({ int: true, min: 1, max: 86_400 }),
});
export type PairAnswer = Infer<typeof pairAnswer>;

/** The heartbeat's answer: where the workload's policy stands. */
export const policyStanding = object({
  workload: string(),
  revision: count().nullable(),
  policyVersion: count().nullable(),
  mode: oneOf(ENFORCEMENT_MODES),
  pollIntervalSeconds: number({ int: true, min: 1, max: 86_400 }),
});
export type PolicyStanding = Infer<typeof policyStanding>;

/** A `policy` server-sent event. */
export const policyNotice = object({
  workload: string(),
  revision: count().nullable(),
  policyVersion: count().nullable().optional(),
});
export type PolicyNotice = Infer<typeof policyNotice>;

const nftName = string({
  pattern: /^[A-Za-z_][A-Za-z0-9_]{0,63}$/,
  patternMessage: 'is not an nft set or chain name',
});

export const nftSet = object({
  name: nftName,
  declaration: string({ max: 1024 }),
  elements: array(string({ max: 100 })),
  dynamic: boolean(),
});
export const nftChain = object({
  name: nftName,
  declaration: string({ max: 256 }).nullable(),
  rules: array(string({ max: 8192 })),
});
/** The structured table (`NftState` in src/policy/compile/nft.ts). */
export const nftState = object({
  workload: string(),
  mode: oneOf(ENFORCEMENT_MODES),
  sets: array(nftSet),
  chains: array(nftChain),
  warnings: array(string()),
});

/** `GET /agent/policy`: one revision of the workload's compiled policy. */
export const compiledPolicy = object({
  workload: string(),
  policyVersion: count(),
  revision: count(),
  mode: oneOf(ENFORCEMENT_MODES),
  nft: nftState,
  warnings: array(string()).default([]),
});
/** As the agent holds it: the table typed as the compiler's own `NftState`. */
export type CompiledPolicy = Readonly<Omit<Infer<typeof compiledPolicy>, 'nft' | 'warnings'>> & {
  readonly nft: NftState;
  readonly warnings: readonly string[];
};

export const flowsAnswer = object({
  batchId: string(),
  accepted: count(),
  duplicate: boolean(),
});

/** The control plane's error body. */
export const errorAnswer = object({
  error: object({ code: string(), message: string() }),
});

// ------------------------------------------------------------------ what the agent sends

export interface InterfaceReport {
  readonly name: string;
  /** `address/prefix`. */
  readonly addresses: readonly string[];
}

export interface ListeningSocket {
  readonly port: number;
  readonly proto: 'tcp' | 'udp';
  readonly address?: string;
  readonly process?: string;
  readonly pid?: number;
  readonly user?: string;
  readonly path?: string;
}

export interface Inventory {
  readonly hostname: string;
  readonly os?: string;
  readonly interfaces: readonly InterfaceReport[];
  readonly listening: readonly ListeningSocket[];
  readonly users: readonly string[];
}

export interface PairRequest extends Inventory {
  readonly activationCode: string;
  readonly addresses: readonly string[];
}

export interface HeartbeatRequest {
  readonly appliedRevision?: number;
  readonly appliedVersion?: number;
  readonly status?: string;
}

export interface AckRequest {
  readonly revision: number;
  readonly policyVersion: number;
  readonly result: 'applied' | 'failed';
  readonly error?: string;
}

export type FlowProto = 'tcp' | 'udp' | 'icmp' | 'icmpv6';
export type FlowDecision = 'allowed' | 'blocked' | 'potentially-blocked';

export interface FlowSummary {
  readonly src: string;
  readonly dst: string;
  readonly proto: FlowProto;
  readonly dport?: number;
  readonly process?: string;
  readonly firstSeen: string;
  readonly lastSeen: string;
  readonly connections: number;
  readonly bytes: number;
  readonly decision?: FlowDecision;
}

/** At most this many summaries per batch (the server's limit). */
export const MAX_SUMMARIES_PER_BATCH = 5000;

export interface FlowBatch {
  readonly batchId: string;
  readonly summaries: readonly FlowSummary[];
}

/** `POST /agent/tamper`: someone changed the agent's table, and what the agent did about it. */
export interface TamperReport {
  readonly detectedAt: string;
  readonly table: string;
  readonly kind: 'missing' | 'changed';
  readonly differences: readonly string[];
  readonly restored: boolean;
  readonly error?: string;
  readonly revision?: number;
  readonly policyVersion?: number;
}

/** `POST /agent/flows-dropped`: flow telemetry the agent had to drop (its spool was full). */
export interface FlowsDroppedReport {
  readonly batches: number;
  readonly summaries: number;
  readonly firstDroppedAt: string;
  readonly lastDroppedAt: string;
  readonly reason: string;
}

// ------------------------------------------------------------------ what the state dir holds

export const savedCredential = object({
  agentId: string({ min: 1 }),
  credential: string({ min: 8 }),
  workload: string({ min: 1 }),
  server: string({ min: 1 }),
  pairedAt: string(),
});
export type SavedCredential = Infer<typeof savedCredential>;

export const endpoint = object({
  address: string({ min: 2, max: 64 }),
  port: number({ int: true, min: 1, max: 65535 }),
});
export type Endpoint = Infer<typeof endpoint>;

/** The last policy the agent applied, and the control-plane channel it kept open with it. */
export const savedPolicy = object({
  policy: compiledPolicy,
  controlPlane: array(endpoint),
  appliedAt: string(),
});
export interface SavedPolicy {
  readonly policy: CompiledPolicy;
  readonly controlPlane: readonly Endpoint[];
  readonly appliedAt: string;
}

/** A spooled flow batch, as written to disk. */
export const spooledBatch = object({
  batchId: string({ pattern: /^[A-Za-z0-9._:-]{1,128}$/ }),
  createdAt: string(),
  summaries: array(
    object({
      src: string(),
      dst: string(),
      proto: oneOf(['tcp', 'udp', 'icmp', 'icmpv6']),
      dport: number({ int: true, min: 0, max: 65535 }).optional(),
      process: string({ max: 255 }).optional(),
      firstSeen: string(),
      lastSeen: string(),
      connections: count(),
      bytes: count(),
      decision: oneOf(['allowed', 'blocked', 'potentially-blocked']).optional(),
    }),
  ),
});

/** A queued integrity report (tamper, dropped telemetry), as written to disk. */
export const queuedReport = union('kind', {
  tamper: object({
    kind: literal('tamper'),
    report: object({
      detectedAt: string(),
      table: string(),
      kind: oneOf(['missing', 'changed']),
      differences: array(string()),
      restored: boolean(),
      error: string().optional(),
      revision: count().optional(),
      policyVersion: count().optional(),
    }),
  }),
  'flows-dropped': object({
    kind: literal('flows-dropped'),
    report: object({
      batches: count(),
      summaries: count(),
      firstDroppedAt: string(),
      lastDroppedAt: string(),
      reason: string(),
    }),
  }),
});
export type QueuedReport = Infer<typeof queuedReport>;

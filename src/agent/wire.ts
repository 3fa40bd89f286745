/**
 * What the agent and the control plane say to each other, from the agent's side. Answers
 * are checked with zod before anything acts on them (a policy goes into the kernel); what
 * the agent sends is typed here and checked against the server's own schemas in the tests.
 * The agent keeps its own copy rather than importing the server's schemas, so it never
 * loads the control plane's code.
 */
import { z } from 'zod/v3';
import type { NftState } from '../policy/compile/nft.js';

export const ENFORCEMENT_MODES = ['idle', 'visibility', 'selective', 'full'] as const;
export type EnforcementMode = (typeof ENFORCEMENT_MODES)[number];

const count = z.number().int().min(0);

export const pairAnswer = z.object({
  agentId: z.string().min(1).max(128),
  credential: z.string().min(8).max(512),
  workload: z.string().min(1).max(128),
  pollIntervalSeconds: z.number().int().min(1).max(86_400),
});
export type PairAnswer = z.infer<typeof pairAnswer>;

/** The heartbeat's answer: where the workload's policy stands. */
export const policyStanding = z.object({
  workload: z.string(),
  revision: count.nullable(),
  policyVersion: count.nullable(),
  mode: z.enum(ENFORCEMENT_MODES),
  pollIntervalSeconds: z.number().int().min(1).max(86_400),
});
export type PolicyStanding = z.infer<typeof policyStanding>;

/** A `policy` server-sent event. */
export const policyNotice = z.object({
  workload: z.string(),
  revision: count.nullable(),
  policyVersion: count.nullable().optional(),
});
export type PolicyNotice = z.infer<typeof policyNotice>;

const nftName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'is not an nft set or chain name');

export const nftSet = z.object({
  name: nftName,
  declaration: z.string().max(1024),
  elements: z.array(z.string().max(100)),
  dynamic: z.boolean(),
});
export const nftChain = z.object({
  name: nftName,
  declaration: z.string().max(256).nullable(),
  rules: z.array(z.string().max(8192)),
});
/** The structured table (`NftState` in src/policy/compile/nft.ts). */
export const nftState = z.object({
  workload: z.string(),
  mode: z.enum(ENFORCEMENT_MODES),
  sets: z.array(nftSet),
  chains: z.array(nftChain),
  warnings: z.array(z.string()),
});

/** `GET /agent/policy`: one revision of the workload's compiled policy. */
export const compiledPolicy = z.object({
  workload: z.string(),
  policyVersion: count,
  revision: count,
  mode: z.enum(ENFORCEMENT_MODES),
  nft: nftState,
  warnings: z.array(z.string()).default([]),
});
/** As the agent holds it: the table typed as the compiler's own `NftState`. */
export type CompiledPolicy = Readonly<Omit<z.infer<typeof compiledPolicy>, 'nft' | 'warnings'>> & {
  readonly nft: NftState;
  readonly warnings: readonly string[];
};

export const flowsAnswer = z.object({
  batchId: z.string(),
  accepted: count,
  duplicate: z.boolean(),
});

/** The control plane's error body. */
export const errorAnswer = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
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

export const savedCredential = z.object({
  agentId: z.string().min(1),
  credential: z.string().min(8),
  workload: z.string().min(1),
  server: z.string().min(1),
  pairedAt: z.string(),
});
export type SavedCredential = z.infer<typeof savedCredential>;

export const endpoint = z.object({
  address: z.string().min(2).max(64),
  port: z.number().int().min(1).max(65535),
});
export type Endpoint = z.infer<typeof endpoint>;

/** The last policy the agent applied, and the control-plane channel it kept open with it. */
export const savedPolicy = z.object({
  policy: compiledPolicy,
  controlPlane: z.array(endpoint),
  appliedAt: z.string(),
});
export interface SavedPolicy {
  readonly policy: CompiledPolicy;
  readonly controlPlane: readonly Endpoint[];
  readonly appliedAt: string;
}

/** A spooled flow batch, as written to disk. */
export const spooledBatch = z.object({
  batchId: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/),
  createdAt: z.string(),
  summaries: z.array(
    z.object({
      src: z.string(),
      dst: z.string(),
      proto: z.enum(['tcp', 'udp', 'icmp', 'icmpv6']),
      dport: z.number().int().min(0).max(65535).optional(),
      process: z.string().max(255).optional(),
      firstSeen: z.string(),
      lastSeen: z.string(),
      connections: count,
      bytes: count,
      decision: z.enum(['allowed', 'blocked', 'potentially-blocked']).optional(),
    }),
  ),
});

/** A queued integrity report (tamper, dropped telemetry), as written to disk. */
export const queuedReport = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('tamper'),
    report: z.object({
      detectedAt: z.string(),
      table: z.string(),
      kind: z.enum(['missing', 'changed']),
      differences: z.array(z.string()),
      restored: z.boolean(),
      error: z.string().optional(),
      revision: count.optional(),
      policyVersion: count.optional(),
    }),
  }),
  z.object({
    kind: z.literal('flows-dropped'),
    report: z.object({
      batches: count,
      summaries: count,
      firstDroppedAt: z.string(),
      lastDroppedAt: z.string(),
      reason: z.string(),
    }),
  }),
]);
export type QueuedReport = z.infer<typeof queuedReport>;

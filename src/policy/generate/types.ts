/**
 * The policy generator's vocabulary: what it is given (observed flows, the estate, a scope
 * and a granularity) and what it hands a reviewer (draft rulesets and IP lists, the flows
 * behind each rule, what was already covered, and what the draft still does not allow).
 */
import type { Decision } from '../decide.js';
import type { IpList, LabelSelector, Policy, RuleAction, Ruleset } from '../model.js';

/**
 * How finely the draft segments, coarsest first. Each step allows less than the one before:
 * - env: workloads of one environment talk freely; crossing environments takes a rule;
 * - app: each application (in one environment) is ring-fenced; crossing it takes a rule;
 * - tier: role to role inside an application, any service;
 * - service: role to role on the observed services;
 * - process: as service, each port bound to the process seen serving it.
 * Traffic that crosses an application (or environment) boundary, or reaches an unmanaged
 * peer, is always written per service, whatever the granularity.
 */
export const GRANULARITIES = ['env', 'app', 'tier', 'service', 'process'] as const;
export type Granularity = (typeof GRANULARITIES)[number];

/** One end of an observed flow: a workload by name, or an address (ours or not). */
export type FlowPeer =
  | { readonly workload: string; readonly address?: undefined }
  | { readonly address: string; readonly workload?: undefined };

/** What the destination served: a transport port (and the process, when the agent saw it), or ICMP. */
export type ObservedService = TransportService | IcmpService;
export interface TransportService {
  readonly proto: 'tcp' | 'udp';
  readonly port: number;
  readonly process?: string;
}
export interface IcmpService {
  readonly proto: 'icmp' | 'icmpv6';
  readonly icmpType?: number;
}

export function isTransport(s: ObservedService): s is TransportService {
  return s.proto === 'tcp' || s.proto === 'udp';
}

/** A flow summary as the flow store holds it: one pair of ends and service over a time window. */
export interface ObservedFlow {
  readonly source: FlowPeer;
  readonly destination: FlowPeer;
  readonly service: ObservedService;
  /**
   * The client's port, when the record carries one. It is ephemeral (a new one per
   * connection), so it never becomes part of a rule: only the destination port is a service.
   */
  readonly sourcePort?: number;
  readonly connections: number;
  /** ISO 8601 times; held as canonical UTC text (`2026-01-31T12:00:00.000Z`), which sorts as time. */
  readonly firstSeen: string;
  readonly lastSeen: string;
}

/** The label keys the granularities read (the estate may spell them its own way). */
export interface LabelKeys {
  readonly app: string;
  readonly env: string;
  readonly role: string;
}

export const DEFAULT_LABEL_KEYS: LabelKeys = { app: 'app', env: 'env', role: 'role' };

export interface GenerateInput {
  /** Workloads, label groups, IP lists, services, settings and the existing draft's rulesets. */
  readonly estate: Policy;
  readonly flows: Iterable<ObservedFlow>;
  /** The workloads to segment (a label selector); null is the whole estate. */
  readonly scope: LabelSelector | null;
  readonly granularity: Granularity;
  readonly labelKeys?: Partial<LabelKeys>;
  /** Starts the name of every generated ruleset and IP list (default `gen`). */
  readonly namePrefix?: string;
}

/** How much traffic stands behind something: flow summaries, connections, and when. */
export interface FlowTally {
  readonly flows: number;
  readonly connections: number;
  readonly firstSeen: string;
  readonly lastSeen: string;
}

/** Why a generated rule exists: the flows it was written for. */
export interface RuleEvidence extends FlowTally {
  readonly ruleset: string;
  readonly rule: string;
  /** The busiest flows behind the rule, e.g. `shop-web-1 -> shop-api-1 8080/tcp (1200 connections)`. */
  readonly examples: readonly string[];
}

/** Flows that the existing policy already allows: no rule is generated for them. */
export interface AlreadyAllowed extends FlowTally {
  /** What allows them, e.g. `allow rule shop/web-to-api`, `loopback`. */
  readonly by: string;
}

/** Flows that an existing deny or override-deny rule blocks: left blocked, never overruled. */
export interface BlockedByExisting extends FlowTally {
  readonly rule: string;
  readonly action: Exclude<RuleAction, 'allow'>;
  readonly examples: readonly string[];
}

/** A workload whose flows could not be written in labels, for lack of the labels named. */
export interface Unlabelled extends FlowTally {
  readonly workload: string;
  readonly missing: readonly string[];
}

/**
 * A generated rule that admits traffic an existing `deny` rule denies (allow beats deny), so
 * applying it would weaken what a person wrote. Override-deny rules win over any allow and
 * never appear here.
 */
export interface OverriddenDeny {
  readonly rule: string;
  readonly existingRule: string;
}

/** An observed flow in scope that the draft (with the estate) does not allow. */
export interface UncoveredFlow extends FlowTally {
  readonly source: string;
  readonly destination: string;
  readonly service: string;
  /** The decision with every workload in full enforcement. */
  readonly decision: Decision;
  readonly reason: string;
}

/**
 * The share of observed flows in scope that the existing policy plus the draft allows, as
 * `decide()` says with every workload in full enforcement (so the share holds in any mode).
 */
export interface Coverage {
  readonly flows: { readonly inScope: number; readonly allowed: number };
  readonly connections: { readonly inScope: number; readonly allowed: number };
  /** allowed / in scope, by flow summaries (1 when nothing is in scope). */
  readonly share: number;
  /** Largest first; empty unless flows were blocked by existing rules or unlabelled. */
  readonly notAllowed: readonly UncoveredFlow[];
}

export interface GeneratedPolicy {
  readonly granularity: Granularity;
  /** New rulesets, to add beside the existing ones (which are left as they are). */
  readonly rulesets: readonly Ruleset[];
  /** New IP lists for unmanaged peers that no existing list holds. */
  readonly ipLists: readonly IpList[];
  /** One entry per generated rule, in the order of `rulesets` and their rules. */
  readonly evidence: readonly RuleEvidence[];
  readonly alreadyAllowed: readonly AlreadyAllowed[];
  readonly blockedByExisting: readonly BlockedByExisting[];
  readonly unlabelled: readonly Unlabelled[];
  readonly overriddenDenies: readonly OverriddenDeny[];
  readonly coverage: Coverage;
  readonly counts: {
    /** Flow summaries given. */
    readonly flows: number;
    /** Distinct (source, destination, service) among them. */
    readonly distinct: number;
    /** Summaries with at least one end in scope; the others are ignored. */
    readonly inScope: number;
  };
}

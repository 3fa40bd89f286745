/**
 * The user-facing policy model: what a security team writes (policy-as-code, the API).
 *
 * These types say what the user meant, with names still unresolved. The computed,
 * per-workload state that a firewall consumes lives in `compile/endpoint.ts`; keeping the
 * two apart means the datapath never has to re-interpret user syntax.
 */

export type LabelKey = string;
export type LabelValue = string;
/** A workload has at most one value per key. */
export type Labels = Readonly<Record<LabelKey, LabelValue>>;

export const ENFORCEMENT_MODES = ['idle', 'visibility', 'selective', 'full'] as const;
/**
 * idle: not managed by policy. visibility: nothing blocked, would-be-blocked reported.
 * selective: only deny rules enforced. full: default deny, inbound and outbound.
 */
export type EnforcementMode = (typeof ENFORCEMENT_MODES)[number];

export interface Workload {
  readonly name: string;
  /** Addresses the workload owns (IPv4 or IPv6, canonical text). The first is its primary. */
  readonly addresses: readonly string[];
  readonly labels: Labels;
  readonly mode: EnforcementMode;
  /** An unmanaged workload (no agent, e.g. a database appliance) enforces nothing. */
  readonly managed: boolean;
  /** Users logged in on the workload (from inventory); user-group actors match on them. */
  readonly users: readonly string[];
}

/** A named set of values of one label key, possibly including other groups of that key. */
export interface LabelGroup {
  readonly name: string;
  readonly key: LabelKey;
  readonly values: readonly LabelValue[];
  readonly groups: readonly string[];
}

/** Addresses outside (or across) the managed estate: CIDRs, single addresses, ranges. */
export interface IpList {
  readonly name: string;
  /** Each entry is an address, a CIDR, or a range `first-last`. */
  readonly include: readonly string[];
  readonly exclude: readonly string[];
}

export interface UserGroup {
  readonly name: string;
  readonly members: readonly string[];
}

export type TransportProtocol = 'tcp' | 'udp';
export type IcmpProtocol = 'icmp' | 'icmpv6';

export interface PortRange {
  readonly from: number;
  readonly to: number;
}

/** One entry of a service: a transport port range, or ICMP (one type, or any). */
export type ServicePort =
  | {
      readonly proto: TransportProtocol;
      readonly ports: PortRange;
      /** Nano-segmentation: only this process may serve the port. */
      readonly process?: string;
    }
  | { readonly proto: IcmpProtocol; readonly icmpType?: number };

export interface Service {
  readonly name: string;
  readonly ports: readonly ServicePort[];
}

/** What a rule's `services` names: every service, or a list of named and inline entries. */
export type ServiceRef =
  | { readonly kind: 'named'; readonly name: string }
  | { readonly kind: 'inline'; readonly port: ServicePort };
export type RuleServices = 'all' | readonly ServiceRef[];

/**
 * A label selector: labels of different keys are ANDed, labels of the same key are ORed.
 * Label groups contribute their (expanded) values to their key. Empty = everything.
 */
export interface LabelSelector {
  readonly labels: Readonly<Record<LabelKey, readonly LabelValue[]>>;
  readonly labelGroups: readonly string[];
}

/**
 * One side of a rule: a union of actors. The label selector is one actor (its keys ANDed);
 * every named workload, IP list and user group is another.
 */
export interface Actors {
  /** All workloads (limited to the ruleset's scope where the rule is). */
  readonly allWorkloads: boolean;
  readonly selector: LabelSelector | null;
  readonly workloads: readonly string[];
  readonly ipLists: readonly string[];
  readonly userGroups: readonly string[];
}

export const RULE_ACTIONS = ['allow', 'deny', 'override-deny'] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];

export interface Rule {
  /** Unique within its ruleset. */
  readonly name: string;
  readonly action: RuleAction;
  readonly sources: Actors;
  readonly destinations: Actors;
  readonly services: RuleServices;
  /** Sources taken as written, anywhere in the estate, instead of limited to the scope. */
  readonly extraScope: boolean;
  readonly description?: string;
}

export interface Ruleset {
  readonly name: string;
  /** Null (or an empty selector) is the whole estate. */
  readonly scope: LabelSelector | null;
  readonly rules: readonly Rule[];
  readonly description?: string;
}

export type TrafficDirection = 'inbound' | 'outbound' | 'both';

/**
 * An endpoint the agent never blocks (the control plane, DNS, NTP...), accepted before any
 * rule. Outbound: this host to the endpoint's ports. Inbound: the endpoint to this host's ports.
 */
export interface AlwaysAllowed {
  readonly name: string;
  readonly addresses: readonly string[];
  /** Empty = every port and protocol. */
  readonly ports: readonly ServicePort[];
  readonly direction: TrafficDirection;
}

export interface PolicySettings {
  readonly alwaysAllowed: readonly AlwaysAllowed[];
}

/** Everything a policy version holds, plus the estate it applies to. */
export interface Policy {
  readonly workloads: readonly Workload[];
  readonly labelGroups: readonly LabelGroup[];
  readonly ipLists: readonly IpList[];
  readonly userGroups: readonly UserGroup[];
  readonly services: readonly Service[];
  readonly rulesets: readonly Ruleset[];
  readonly settings: PolicySettings;
}

export const EMPTY_SETTINGS: PolicySettings = { alwaysAllowed: [] };

export function emptyActors(): Actors {
  return { allWorkloads: false, selector: null, workloads: [], ipLists: [], userGroups: [] };
}

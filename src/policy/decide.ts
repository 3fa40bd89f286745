/**
 * The decision function: what the policy says about one flow.
 *
 * Each side judges the flow by its own enforcement mode (the destination inbound, the
 * source outbound) against the rules that select it; the flow is blocked if either side blocks it, potentially blocked if
 * either side would block it in full mode, and allowed otherwise. The kernel's verdict on
 * any probe must equal this function's: the lab and the differential tests check it.
 */
import { addressValue, type AddressSet, type IpFamily } from './addresses.js';
import { essentialIcmpv6 } from './essential.js';
import type { EnforcementMode, ServicePort, Workload } from './model.js';
import {
  clauseMatches,
  type ResolvedActors,
  type ResolvedPolicy,
  type ResolvedRule,
} from './resolve.js';

export type FlowProtocol = 'tcp' | 'udp' | 'icmp' | 'icmpv6';

/** One end of a flow: an address, and the workload that owns it if it is one of ours. */
export interface FlowEndpoint {
  readonly address: string;
  readonly workload?: Workload;
}

export interface Flow {
  readonly source: FlowEndpoint;
  readonly destination: FlowEndpoint;
  readonly proto: FlowProtocol;
  /** Destination port (tcp/udp). */
  readonly port?: number;
  /** ICMP type (icmp/icmpv6). */
  readonly icmpType?: number;
  /** The process serving the destination port, when known. */
  readonly process?: string;
}

export const DECISIONS = ['allowed', 'potentially-blocked', 'blocked'] as const;
export type Decision = (typeof DECISIONS)[number];

/** What settled a side's judgement. */
export type DecidedBy =
  | { readonly kind: 'rule'; readonly ruleId: string; readonly action: ResolvedRule['action'] }
  | { readonly kind: 'default'; readonly action: 'deny' | 'allow' }
  | { readonly kind: 'always-allowed'; readonly name: string }
  | { readonly kind: 'loopback' }
  /** IPv6 neighbour and multicast-listener discovery, without which IPv6 stops working. */
  | { readonly kind: 'essential'; readonly name: string }
  /** Neither side enforces anything (both idle or unmanaged). */
  | { readonly kind: 'not-enforced' };

export type Side = 'inbound' | 'outbound';

export interface SideJudgement {
  readonly side: Side;
  readonly workload: string;
  readonly mode: Exclude<EnforcementMode, 'idle'>;
  /** block: this side drops it; mark: it passes, but full mode would drop it. */
  readonly outcome: 'allow' | 'block' | 'mark';
  readonly decidedBy: DecidedBy;
}

export interface FlowDecision {
  readonly decision: Decision;
  readonly decidedBy: DecidedBy;
  /** The side whose judgement is reported in `decidedBy`, if any side judged. */
  readonly side: Side | null;
  readonly inbound: SideJudgement | null;
  readonly outbound: SideJudgement | null;
}

/**
 * Whether a service entry covers a flow. A process binding names the process serving the
 * port, which only the destination can see: its inbound side checks it, while the source's
 * outbound side judges by protocol and port alone (as its firewall can).
 */
export function serviceMatches(port: ServicePort, flow: Flow, side: Side = 'inbound'): boolean {
  if (port.proto !== flow.proto) return false;
  if ('ports' in port) {
    if (flow.port === undefined || flow.port < port.ports.from || flow.port > port.ports.to)
      return false;
    return port.process === undefined || side === 'outbound' || port.process === flow.process;
  }
  return port.icmpType === undefined || port.icmpType === flow.icmpType;
}

export function servicesMatch(services: ResolvedRule['services'], flow: Flow, side: Side): boolean {
  return services === 'all' || services.some((s) => serviceMatches(s, flow, side));
}

function hasAddress(set: AddressSet, parsed: { family: IpFamily; value: bigint }): boolean {
  return set.hasValue(parsed.family, parsed.value);
}

interface ParsedEndpoint {
  readonly workload?: Workload;
  readonly addr: { family: IpFamily; value: bigint };
}

/** Whether a side's workload clauses select `workload` (an address alone is never selected). */
export function clausesSelect(
  actors: ResolvedActors,
  workload: Workload | undefined,
  policy: ResolvedPolicy,
): boolean {
  return (
    workload !== undefined &&
    actors.clauses.some((c) => clauseMatches(c, workload, policy.userGroupMembers))
  );
}

/** A peer matches a side by workload clause or by IP list address. */
function peerMatches(actors: ResolvedActors, ep: ParsedEndpoint, policy: ResolvedPolicy): boolean {
  return hasAddress(actors.ipAddresses, ep.addr) || clausesSelect(actors, ep.workload, policy);
}

const parsedEndpoint = (e: FlowEndpoint): ParsedEndpoint => ({
  workload: e.workload,
  addr: addressValue(e.address),
});

/**
 * A flow whose ends' addresses are parsed on first use, then shared by both sides' rules and
 * endpoints (parsing is most of the cost of a decision); a side that judges nothing parses none.
 */
class ParsedFlow {
  private source?: ParsedEndpoint;
  private destination?: ParsedEndpoint;
  constructor(readonly flow: Flow) {}
  get src(): ParsedEndpoint {
    return (this.source ??= parsedEndpoint(this.flow.source));
  }
  get dst(): ParsedEndpoint {
    return (this.destination ??= parsedEndpoint(this.flow.destination));
  }
}

/**
 * The rules that a side consults for a flow, in policy order. Only workload actors select
 * the workload whose firewall judges; an IP list only ever describes the peer. So a rule
 * "web may reach the internet on 443" opens web's outbound to any address in that list, but
 * does not open the inbound side of a workload that happens to sit inside the range.
 */
export function matchingRules(policy: ResolvedPolicy, flow: Flow, side: Side): ResolvedRule[] {
  return rulesMatching(policy, new ParsedFlow(flow), side);
}

function rulesMatching(policy: ResolvedPolicy, parsed: ParsedFlow, side: Side): ResolvedRule[] {
  const { flow, src, dst } = parsed;
  return policy.rules.filter((r) => {
    if (!servicesMatch(r.services, flow, side)) return false;
    return side === 'inbound'
      ? clausesSelect(r.destinations, dst.workload, policy) && peerMatches(r.sources, src, policy)
      : clausesSelect(r.sources, src.workload, policy) && peerMatches(r.destinations, dst, policy);
  });
}

function alwaysAllowedFor(
  policy: ResolvedPolicy,
  parsed: ParsedFlow,
  side: Side,
): DecidedBy | null {
  const addr = (side === 'inbound' ? parsed.src : parsed.dst).addr;
  for (const a of policy.alwaysAllowed) {
    if (a.direction !== 'both' && a.direction !== side) continue;
    if (!hasAddress(a.addresses, addr)) continue;
    if (a.ports.length === 0 || a.ports.some((p) => serviceMatches(p, parsed.flow, side)))
      return { kind: 'always-allowed', name: a.name };
  }
  return null;
}

function judge(
  policy: ResolvedPolicy,
  parsed: ParsedFlow,
  side: Side,
  workload: Workload | undefined,
): SideJudgement | null {
  if (!workload || !workload.managed || workload.mode === 'idle') return null;
  const mode = workload.mode;
  const base = { side, workload: workload.name, mode } as const;
  const always = alwaysAllowedFor(policy, parsed, side);
  if (always) return { ...base, outcome: 'allow', decidedBy: always };
  const matched = rulesMatching(policy, parsed, side);

  const overrideDeny = matched.find((r) => r.action === 'override-deny');
  const allow = matched.find((r) => r.action === 'allow');
  const deny = matched.find((r) => r.action === 'deny');
  const byRule = (r: ResolvedRule): DecidedBy => ({ kind: 'rule', ruleId: r.id, action: r.action });

  // What full mode would do: the reference every other mode reports against. The decider
  // follows the precedence override-deny > allow > deny > default, so a flow that a deny rule
  // matches (and no allow admits) is reported as denied by that rule, not by the default.
  const full: { outcome: 'allow' | 'block'; decidedBy: DecidedBy } = overrideDeny
    ? { outcome: 'block', decidedBy: byRule(overrideDeny) }
    : allow
      ? { outcome: 'allow', decidedBy: byRule(allow) }
      : { outcome: 'block', decidedBy: deny ? byRule(deny) : { kind: 'default', action: 'deny' } };

  switch (mode) {
    case 'full':
      return { ...base, ...full };
    case 'selective':
      if (overrideDeny) return { ...base, outcome: 'block', decidedBy: byRule(overrideDeny) };
      if (allow) return { ...base, outcome: 'allow', decidedBy: byRule(allow) };
      if (deny) return { ...base, outcome: 'block', decidedBy: byRule(deny) };
      return { ...base, outcome: 'mark', decidedBy: { kind: 'default', action: 'deny' } };
    case 'visibility':
      return {
        ...base,
        outcome: full.outcome === 'block' ? 'mark' : 'allow',
        decidedBy: full.decidedBy,
      };
  }
}

function essentialService(flow: Flow): string | undefined {
  return flow.proto === 'icmpv6' && flow.icmpType !== undefined
    ? essentialIcmpv6(flow.icmpType)?.name
    : undefined;
}

const SEVERITY = { allow: 0, mark: 1, block: 2 } as const;

/** Decides one flow under a resolved policy. */
export function decide(policy: ResolvedPolicy, flow: Flow): FlowDecision {
  const src = flow.source.workload;
  const dst = flow.destination.workload;
  const essential = essentialService(flow);
  if (essential) {
    return {
      decision: 'allowed',
      decidedBy: { kind: 'essential', name: essential },
      side: null,
      inbound: null,
      outbound: null,
    };
  }
  // Traffic from a workload to itself never leaves its loopback, which is always accepted.
  if (src && dst && src === dst) {
    return {
      decision: 'allowed',
      decidedBy: { kind: 'loopback' },
      side: null,
      inbound: null,
      outbound: null,
    };
  }
  const parsed = new ParsedFlow(flow);
  const inbound = judge(policy, parsed, 'inbound', dst);
  const outbound = judge(policy, parsed, 'outbound', src);

  // The most severe side speaks for the flow; on a tie, the destination (inbound) does.
  let speaker: SideJudgement | null = null;
  for (const j of [inbound, outbound]) {
    if (j && (!speaker || SEVERITY[j.outcome] > SEVERITY[speaker.outcome])) speaker = j;
  }
  if (!speaker) {
    return {
      decision: 'allowed',
      decidedBy: { kind: 'not-enforced' },
      side: null,
      inbound,
      outbound,
    };
  }
  const decision: Decision =
    speaker.outcome === 'block'
      ? 'blocked'
      : speaker.outcome === 'mark'
        ? 'potentially-blocked'
        : 'allowed';
  return { decision, decidedBy: speaker.decidedBy, side: speaker.side, inbound, outbound };
}

/** Builds a flow endpoint from a workload name or an address, as a person would type it. */
export function endpoint(policy: ResolvedPolicy, nameOrAddress: string): FlowEndpoint {
  const byName = policy.workloadByName.get(nameOrAddress);
  if (byName) {
    const address = byName.addresses[0];
    if (address === undefined) throw new Error(`workload "${nameOrAddress}" has no address`);
    return { address, workload: byName };
  }
  let workload: Workload | undefined;
  try {
    workload = policy.workloadAt(nameOrAddress);
  } catch {
    throw new Error(`"${nameOrAddress}" is neither a workload name nor an IP address`);
  }
  return workload ? { address: nameOrAddress, workload } : { address: nameOrAddress };
}

export function formatDecidedBy(by: DecidedBy): string {
  switch (by.kind) {
    case 'rule':
      return `${by.action} rule ${by.ruleId}`;
    case 'default':
      return by.action === 'deny' ? 'default deny (no allow rule)' : 'default allow';
    case 'always-allowed':
      return `always-allowed endpoint ${by.name}`;
    case 'loopback':
      return 'loopback';
    case 'essential':
      return `essential ${by.name} (always accepted)`;
    case 'not-enforced':
      return 'no side enforces policy (idle or unmanaged)';
  }
}

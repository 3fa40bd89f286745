/**
 * Hand-built endpoint policies for backend tests: the computed per-workload state, written
 * directly, so a backend test does not depend on the resolver or the endpoint compiler.
 */
import { AddressSet } from '../../src/policy/addresses.js';
import type { CompiledRule, EndpointPolicy, PeerSet } from '../../src/policy/compile/endpoint.js';
import type { EnforcementMode, RuleAction, ServicePort } from '../../src/policy/model.js';
import type { ResolvedAlwaysAllowed } from '../../src/policy/resolve.js';

export function peerSet(id: string, ...entries: string[]): PeerSet {
  return { id, key: id, label: `label of ${id}`, addresses: AddressSet.of(entries) };
}

export function setsFor(...sets: PeerSet[]): Map<string, PeerSet> {
  return new Map(sets.map((s) => [s.id, s]));
}

export const tcp = (from: number, to = from, process?: string): ServicePort => ({
  proto: 'tcp',
  ports: { from, to },
  ...(process ? { process } : {}),
});
export const udp = (from: number, to = from): ServicePort => ({
  proto: 'udp',
  ports: { from, to },
});
export const icmp = (icmpType?: number): ServicePort =>
  icmpType === undefined ? { proto: 'icmp' } : { proto: 'icmp', icmpType };
export const icmpv6 = (icmpType?: number): ServicePort =>
  icmpType === undefined ? { proto: 'icmpv6' } : { proto: 'icmpv6', icmpType };

export function rule(
  ruleId: string,
  action: RuleAction,
  peer: string,
  services: CompiledRule['services'],
): CompiledRule {
  return { ruleId, action, peer, services };
}

export function endpointOf(
  mode: EnforcementMode,
  inbound: CompiledRule[],
  outbound: CompiledRule[] = [],
  alwaysAllowed: ResolvedAlwaysAllowed[] = [],
  workload = 'host-1',
): EndpointPolicy {
  const peerSets = [...new Set([...inbound, ...outbound].map((r) => r.peer))].sort();
  return { workload, mode, inbound, outbound, peerSets, alwaysAllowed };
}

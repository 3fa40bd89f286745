/**
 * Traffic every host firewall accepts before any rule, because without it the network
 * itself stops working. decide() and every backend read this one list, so they agree.
 *
 * IPv6 cannot resolve a neighbour without ND, and conntrack does not track it. ND is only
 * valid with hop limit 255 (RFC 4861), which also keeps off-link senders out; multicast
 * listener discovery (which snooping bridges need to forward ND multicast) is link-local,
 * hop limit 1 (RFC 4890).
 */
export interface EssentialIcmpv6 {
  readonly name: 'neighbour discovery' | 'multicast listener discovery';
  readonly types: readonly number[];
  readonly hopLimit: number;
}

export const ESSENTIAL_ICMPV6: readonly EssentialIcmpv6[] = [
  { name: 'neighbour discovery', types: [133, 134, 135, 136], hopLimit: 255 },
  { name: 'multicast listener discovery', types: [130, 131, 132, 143], hopLimit: 1 },
];

/** The essential service an ICMPv6 type belongs to, if any. */
export function essentialIcmpv6(type: number): EssentialIcmpv6 | undefined {
  return ESSENTIAL_ICMPV6.find((e) => e.types.includes(type));
}

/**
 * Unmanaged peers in labels' stead: addresses carry no labels, so rules name them through IP
 * lists. An address an existing list holds is named by that list (the smallest that holds
 * it: the least it opens beyond what was seen); the others are grouped by network (/24 for
 * IPv4, /64 for IPv6) into new lists that hold exactly the addresses seen, never the whole
 * network.
 */
import { AddressSet, formatAddress, type IpFamily } from '../addresses.js';
import type { IpList } from '../model.js';

export type PeerList =
  | { readonly kind: 'existing'; readonly name: string }
  /** A new list for the addresses seen in one network, e.g. `203.0.113.0/24`. */
  | { readonly kind: 'network'; readonly network: string };

export const NETWORK_BITS: Record<IpFamily, number> = { 4: 24, 6: 64 };
const FAMILY_BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };

export function peerListKey(p: PeerList): string {
  return p.kind === 'existing' ? `list:${p.name}` : `net:${p.network}`;
}

interface ExistingList {
  readonly name: string;
  readonly set: AddressSet;
  readonly size: bigint;
}

export class PeerLists {
  private readonly lists: readonly ExistingList[];
  private readonly byAddress = new Map<string, PeerList>();
  /**
   * One PeerList per list, whatever the address: flows to one list then share one placement
   * (placements are cached by the lists' identity).
   */
  private readonly byName = new Map<string, PeerList>();
  /** network -> its list and the addresses seen in it (canonical text -> value, for sorting). */
  private readonly networks = new Map<
    string,
    { list: PeerList; family: IpFamily; members: Map<string, bigint> }
  >();

  constructor(ipLists: readonly IpList[]) {
    this.lists = ipLists
      .map((l) => {
        const set = AddressSet.of(l.include, l.exclude);
        return { name: l.name, set, size: sizeOf(set) };
      })
      .filter((l) => l.size > 0n)
      // Smallest first, then by name: the first list that holds an address is the one to use.
      .sort((a, b) => (a.size < b.size ? -1 : a.size > b.size ? 1 : a.name < b.name ? -1 : 1));
  }

  /** The list a rule names for this address. */
  listFor(address: string, family: IpFamily, value: bigint): PeerList {
    let hit = this.byAddress.get(address);
    if (hit) return hit;
    const list = this.lists.find((l) => l.set.hasValue(family, value));
    if (list) {
      hit = this.byName.get(list.name);
      if (!hit) this.byName.set(list.name, (hit = { kind: 'existing', name: list.name }));
    } else {
      const host = BigInt(FAMILY_BITS[family] - NETWORK_BITS[family]);
      const base = (value >> host) << host;
      const network = `${formatAddress(family, base)}/${NETWORK_BITS[family]}`;
      let net = this.networks.get(network);
      if (!net)
        this.networks.set(
          network,
          (net = { list: { kind: 'network', network }, family, members: new Map() }),
        );
      net.members.set(address, value);
      hit = net.list;
    }
    this.byAddress.set(address, hit);
    return hit;
  }

  /** The addresses seen in a network, in address order. */
  members(network: string): string[] {
    const net = this.networks.get(network);
    if (!net) throw new Error(`no addresses were seen in ${network}`);
    return [...net.members].sort(([, a], [, b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([t]) => t);
  }

  /** An existing list's addresses and how many there are, for containment checks. */
  existing(name: string): { readonly set: AddressSet; readonly size: bigint } {
    const l = this.lists.find((e) => e.name === name);
    if (!l) throw new Error(`no IP list "${name}"`);
    return l;
  }
}

function sizeOf(set: AddressSet): bigint {
  let n = 0n;
  for (const f of [4, 6] as const) for (const iv of set.intervals(f)) n += iv.end - iv.start + 1n;
  return n;
}

/**
 * The ends of observed flows as the kernel sees them: a workload (named, or owning the
 * address seen) at one of its addresses, or an address that no workload owns.
 */
import {
  AddressError,
  addressValue,
  dottedQuadValue,
  formatAddress,
  type IpFamily,
} from '../addresses.js';
import type { Workload } from '../model.js';
import type { ResolvedPolicy } from '../resolve.js';
import type { FlowPeer } from './types.js';

interface EndpointBase {
  /** The address the flow used (for a workload named by the flow, its primary one). */
  readonly address: string;
  readonly family: IpFamily;
  readonly value: bigint;
  /** An IPv4 address's value as a number (-1 for IPv6): read without touching the bigint. */
  readonly ipv4: number;
  /** How a reviewer reads it: the workload's name (and the address if not its primary), or the address. */
  readonly text: string;
  /** Equal for equal ends. */
  readonly key: string;
  /** Numbers the distinct ends a resolver hands out (0, 1, ...), for array-indexed caches. */
  readonly ordinal: number;
}

export type Endpoint =
  | (EndpointBase & { readonly kind: 'workload'; readonly workload: Workload })
  | (EndpointBase & { readonly kind: 'address' });

/** An address's family, value and canonical text; throws AddressError if it is none. */
function parse(text: string): { family: IpFamily; value: bigint; canonical: string } {
  // A plain dotted quad (most addresses) is its own canonical text.
  const quad = dottedQuadValue(text);
  if (quad >= 0) return { family: 4, value: BigInt(quad), canonical: text };
  const { family, value } = addressValue(text);
  return { family, value, canonical: formatAddress(family, value) };
}

/** Resolves flow ends against the estate; each distinct name or address is looked up once. */
export class EndpointResolver {
  // Names and addresses apart: a workload may be named like an address.
  private readonly names = new Map<string, Endpoint | string>();
  private readonly addresses = new Map<string, Endpoint | string>();
  /** One object per distinct end, however it was named (by name or by address). */
  private readonly byKey = new Map<string, Endpoint>();
  private readonly byOrdinal: Endpoint[] = [];

  /** The distinct ends handed out, by ordinal. */
  get ends(): readonly Endpoint[] {
    return this.byOrdinal;
  }

  /** How many distinct ends were handed out (ordinals are below it). */
  get size(): number {
    return this.byOrdinal.length;
  }

  private intern(end: DistributiveOmit<Endpoint, 'ordinal' | 'ipv4'>): Endpoint {
    let e = this.byKey.get(end.key);
    if (!e) {
      const ipv4 = end.family === 4 ? Number(end.value) : -1;
      this.byKey.set(end.key, (e = { ...end, ipv4, ordinal: this.byOrdinal.length } as Endpoint));
      this.byOrdinal.push(e);
    }
    return e;
  }

  /** Who owns each address, and how the owner spells it. */
  private readonly owners: Record<IpFamily, Map<bigint, { workload: Workload; text: string }>> = {
    4: new Map(),
    6: new Map(),
  };

  constructor(private readonly estate: ResolvedPolicy) {
    // The estate is resolved, so every address parses and no two workloads share one.
    for (const w of estate.workloads) {
      for (const text of w.addresses) {
        const { family, value } = parse(text);
        this.owners[family].set(value, { workload: w, text });
      }
    }
  }

  /** The end, or a problem to report (`unknown workload "x"`). */
  resolve(peer: FlowPeer): Endpoint | string {
    if (peer.workload !== undefined) {
      let hit = this.names.get(peer.workload);
      if (hit === undefined) this.names.set(peer.workload, (hit = this.byName(peer.workload)));
      return hit;
    }
    let hit = this.addresses.get(peer.address);
    if (hit === undefined) this.addresses.set(peer.address, (hit = this.byAddress(peer.address)));
    return hit;
  }

  private byName(name: string): Endpoint | string {
    const w = this.estate.workloadByName.get(name);
    if (!w) return `unknown workload ${JSON.stringify(name)}`;
    const address = w.addresses[0];
    if (address === undefined) return `workload ${JSON.stringify(name)} has no address`;
    const { family, value } = parse(address);
    return this.intern(workloadEnd(w, address, family, value));
  }

  private byAddress(text: string): Endpoint | string {
    let parsed: { family: IpFamily; value: bigint; canonical: string };
    try {
      parsed = parse(text.trim());
    } catch (e) {
      if (e instanceof AddressError) return e.message;
      throw e;
    }
    const { family, value, canonical } = parsed;
    const owner = this.owners[family].get(value);
    // The owner's own spelling of the address, so that its primary reads as its name.
    if (owner) return this.intern(workloadEnd(owner.workload, owner.text, family, value));
    return this.intern({
      kind: 'address',
      address: canonical,
      family,
      value,
      text: canonical,
      key: `a${canonical}`,
    });
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function workloadEnd(
  w: Workload,
  address: string,
  family: IpFamily,
  value: bigint,
): DistributiveOmit<Endpoint, 'ordinal' | 'ipv4'> {
  const primary = w.addresses[0] === address;
  return {
    kind: 'workload',
    workload: w,
    address,
    family,
    value,
    text: primary ? w.name : `${w.name} (${address})`,
    key: `w${w.name}@${address}`,
  };
}

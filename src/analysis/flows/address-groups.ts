/**
 * How an address outside the estate is shown: by the smallest IP list (of the active
 * version or the draft) that holds it, else by the private subnet it sits in, else as
 * `internet`. A map of thousands of single addresses says nothing; "corporate users" and
 * "10.20.0.0/16" do.
 */
import {
  addressValue,
  formatAddress,
  type AddressSet,
  type IpFamily,
} from '../../policy/addresses.js';

export const INTERNET = 'internet';

export interface NamedAddresses {
  readonly name: string;
  readonly addresses: AddressSet;
}

interface PrivateRange {
  readonly family: IpFamily;
  readonly base: bigint;
  /** The range's own prefix length. */
  readonly prefix: number;
  /** The prefix length of the subnets it is shown by. */
  readonly shownAs: number;
}

const v4 = (a: number, b: number): bigint => BigInt(((a << 24) | (b << 16)) >>> 0);

/** RFC 1918 and IPv6 unique-local space, with the subnet size each is shown by. */
const PRIVATE_RANGES: readonly PrivateRange[] = [
  { family: 4, base: v4(10, 0), prefix: 8, shownAs: 16 },
  { family: 4, base: v4(172, 16), prefix: 12, shownAs: 12 },
  { family: 4, base: v4(192, 168), prefix: 16, shownAs: 16 },
  { family: 6, base: 0xfcn << 120n, prefix: 7, shownAs: 48 },
];

const BITS: Readonly<Record<IpFamily, number>> = { 4: 32, 6: 128 };

function size(set: AddressSet): bigint {
  let n = 0n;
  for (const f of [4, 6] as const) for (const iv of set.intervals(f)) n += iv.end - iv.start + 1n;
  return n;
}

/** The private subnet an address is shown by (e.g. `10.20.0.0/16`), or null for a public one. */
export function privateSubnet(family: IpFamily, value: bigint): string | null {
  for (const r of PRIVATE_RANGES) {
    if (r.family !== family) continue;
    const bits = BITS[family];
    if (value >> BigInt(bits - r.prefix) !== r.base >> BigInt(bits - r.prefix)) continue;
    const host = BigInt(bits - r.shownAs);
    return `${formatAddress(family, (value >> host) << host)}/${r.shownAs}`;
  }
  return null;
}

export class AddressGrouper {
  private readonly lists: readonly NamedAddresses[];
  private readonly memo = new Map<string, string>();

  /** IP lists by name; a name in both policies is tried with each of its address sets. */
  constructor(lists: Iterable<NamedAddresses>) {
    // Smallest first, so the first list holding an address is the most specific one.
    this.lists = [...lists]
      .map((l) => ({ l, n: size(l.addresses) }))
      .filter((x) => x.n > 0n)
      .sort((a, b) => (a.n < b.n ? -1 : a.n > b.n ? 1 : a.l.name < b.l.name ? -1 : 1))
      .map((x) => x.l);
  }

  /** The group an address is shown by. */
  groupOf(address: string): string {
    const done = this.memo.get(address);
    if (done !== undefined) return done;
    let group: string;
    try {
      const { family, value } = addressValue(address);
      group =
        this.lists.find((l) => l.addresses.hasValue(family, value))?.name ??
        privateSubnet(family, value) ??
        INTERNET;
    } catch {
      group = INTERNET;
    }
    if (this.memo.size > 100_000) this.memo.clear();
    this.memo.set(address, group);
    return group;
  }
}

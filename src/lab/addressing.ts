/**
 * The lab's address plan. Every lab address lies in the ranges reserved for benchmarking
 * and documentation (198.18.0.0/15, 2001:db8::/64), so a lab can never be mistaken for, or
 * send traffic to, a real network. The bridge takes the first address of each network (the
 * control plane's side), and workloads without an address get the next free one from .10 up.
 */
import {
  AddressError,
  addressValue,
  formatAddress,
  parseAddressEntry,
  type IpFamily,
} from '../policy/addresses.js';

export const LAB_IPV4_RANGE = '198.18.0.0/15';
export const LAB_IPV6_RANGE = '2001:db8::/64';
/** Addresses below this offset in a network are left for the bridge and fixed services. */
const FIRST_WORKLOAD_OFFSET = 10n;

/** One IP network, as parsed from `198.18.0.0/15`. */
export interface LabNetwork {
  /** Canonical CIDR text. */
  readonly cidr: string;
  readonly family: IpFamily;
  readonly prefixLength: number;
  readonly start: bigint;
  readonly end: bigint;
}

const BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };

function networkOf(text: string): LabNetwork {
  const { family, interval } = parseAddressEntry(text);
  const size = interval.end - interval.start + 1n;
  let hostBits = 0;
  for (let s = size; s > 1n; s >>= 1n) hostBits++;
  const prefixLength = BITS[family] - hostBits;
  return {
    cidr: `${formatAddress(family, interval.start)}/${prefixLength}`,
    family,
    prefixLength,
    start: interval.start,
    end: interval.end,
  };
}

export const LAB_IPV4 = networkOf(LAB_IPV4_RANGE);
export const LAB_IPV6 = networkOf(LAB_IPV6_RANGE);

/**
 * Parses the network a topology file names for one family; returns the problem (a message)
 * when it is not a CIDR of that family inside the lab's range, or too small to hold a lab.
 */
export function parseLabNetwork(text: string, family: IpFamily): LabNetwork | string {
  const range = family === 4 ? LAB_IPV4 : LAB_IPV6;
  if (!text.includes('/'))
    return `${JSON.stringify(text)} is not a network (write a CIDR, e.g. ${range.cidr})`;
  let net: LabNetwork;
  try {
    net = networkOf(text);
  } catch (e) {
    if (e instanceof AddressError) return e.message;
    throw e;
  }
  if (net.family !== family) return `${JSON.stringify(text)} is not an IPv${family} network`;
  if (net.start < range.start || net.end > range.end)
    return `${net.cidr} is outside the lab range ${range.cidr} (the lab uses only addresses reserved for testing)`;
  if (net.prefixLength > BITS[family] - 4)
    return `${net.cidr} is too small for a lab (at most /${BITS[family] - 4})`;
  return net;
}

export function contains(net: LabNetwork, address: string): boolean {
  const { family, value } = addressValue(address);
  return family === net.family && value >= net.start && value <= net.end;
}

/** The bridge's address in a network: its first host address (198.18.0.1). */
export function bridgeAddress(net: LabNetwork): string {
  return formatAddress(net.family, net.start + 1n);
}

/** Why an address cannot be a workload's in this network, or null when it can. */
export function reservedProblem(net: LabNetwork, address: string): string | null {
  const { value } = addressValue(address);
  if (value === net.start) return `${address} is the network address of ${net.cidr}`;
  if (net.family === 4 && value === net.end)
    return `${address} is the broadcast address of ${net.cidr}`;
  if (value === net.start + 1n)
    return `${address} is the lab bridge's address (the control plane's side)`;
  return null;
}

/**
 * Hands out free addresses from a network, from the 10th up, skipping those taken.
 * Deterministic: the same file gives the same addresses on every run.
 */
export function addressAllocator(net: LabNetwork, taken: Iterable<string>) {
  const used = new Set<bigint>();
  for (const a of taken) {
    const { family, value } = addressValue(a);
    if (family === net.family) used.add(value);
  }
  let next = net.start + FIRST_WORKLOAD_OFFSET;
  const last = net.family === 4 ? net.end - 1n : net.end;
  return (): string | null => {
    while (next <= last && used.has(next)) next++;
    if (next > last) return null;
    used.add(next);
    return formatAddress(net.family, next++);
  };
}

/**
 * The lab's network: one namespace per workload, joined by a bridge that also holds the
 * control plane's side address (198.18.0.1). Each namespace gets connection tracking turned
 * on from the start (the kernel tracks a namespace's connections only once some rule asks
 * about them), so an agent sees flows before it has loaded any policy, as on a real host,
 * and ICMP error rate limits off, so the probe's closed UDP ports answer every time.
 */
import { createNetwork, linksWithPrefix, namespacesWithPrefix } from '../host/netns.js';
import { systemNft } from '../host/nft.js';
import { run } from '../host/run.js';
import { addressFamily } from '../policy/addresses.js';
import { LabError } from './errors.js';
import type { Topology } from './topology.js';

/** The table the lab puts in each namespace: counts new connections, blocks nothing. */
export const LAB_TABLE = 'bulkhead_lab';
const TRACKING_RULESET = `table inet ${LAB_TABLE}
delete table inet ${LAB_TABLE}
table inet ${LAB_TABLE} {
  chain track_in {
    type filter hook input priority -150; policy accept;
    ct state new counter
  }
  chain track_out {
    type filter hook output priority -150; policy accept;
    ct state new counter
  }
}
`;

export const netnsOf = (prefix: string, workload: string): string => `${prefix}${workload}`;
export const bridgeOf = (prefix: string): string => `${prefix}br`;

const PREFIX = /^[a-z][a-z0-9-]{0,5}$/;

/** Why a prefix cannot name a lab's namespaces and links, or null. */
export function prefixProblem(prefix: string): string | null {
  return PREFIX.test(prefix)
    ? null
    : `--prefix ${JSON.stringify(prefix)} is not a lab prefix (1-6 lower-case letters, digits or "-", starting with a letter: link names are limited to 15 characters)`;
}

/** What already exists under a prefix: a lab up there, or left behind by one. */
export async function ownedByPrefix(
  prefix: string,
): Promise<{ namespaces: string[]; links: string[] }> {
  return { namespaces: await namespacesWithPrefix(prefix), links: await linksWithPrefix(prefix) };
}

/** The root-namespace link that already holds `address`, if any. */
export async function linkHolding(address: string): Promise<string | null> {
  const { stdout } = await run(['ip', '-o', 'addr', 'show']);
  for (const line of stdout.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet6?\s+([^/\s]+)/.exec(line);
    if (m && m[2] === address) return m[1]!;
  }
  return null;
}

function prefixLength(cidr: string): number {
  return Number(cidr.split('/')[1]);
}

/** Builds the namespaces, links and bridge of a topology under `prefix`. */
export async function buildNetwork(prefix: string, topology: Topology): Promise<void> {
  const lengths = {
    4: prefixLength(topology.network.ipv4),
    6: prefixLength(topology.network.ipv6),
  };
  const network = await createNetwork(
    prefix,
    topology.workloads.map((w) => ({
      name: w.name,
      addresses: w.addresses.map((a) => `${a}/${lengths[addressFamily(a)]}`),
    })),
    { bridgeAddresses: topology.network.bridge },
  );
  for (const host of network.hosts) {
    try {
      await run([
        'ip',
        'netns',
        'exec',
        host.netns,
        'sysctl',
        '-e',
        '-q',
        '-w',
        'net.ipv4.icmp_ratelimit=0',
        'net.ipv6.icmp.ratelimit=0',
      ]);
      await systemNft(host.netns).apply(TRACKING_RULESET);
    } catch (e) {
      throw new LabError(
        `cannot set up namespace ${host.netns}: ${(e as Error).message}`,
        { netns: host.netns },
        { cause: e },
      );
    }
  }
}

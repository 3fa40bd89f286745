/**
 * A kernel probe lab: real network namespaces with real listeners, a per-host firewall put
 * in place by the caller, and a prober that measures what the kernel lets through.
 *
 * It knows nothing about any firewall backend: a test hands it one "apply this firewall"
 * callback per host (nft, iptables-restore, ...), then asks for a matrix of probes and gets
 * back, per probe, whether the connection was allowed or blocked, and the evidence.
 *
 * Each host runs ONE long-lived prober inside its namespace (src/lab/prober.ts, shared with
 * `bulkhead lab probe`) that both serves every listener (TCP accepts; UDP echoes, so a
 * delivered datagram is told apart from a dropped one) and sends the probes that originate
 * there. Probes run concurrently with a short
 * timeout, so a matrix of a thousand probes takes about a second.
 *
 * Safety: every address must lie in 198.18.0.0/15 or 2001:db8::/64, every probe must go
 * from one lab address to another, and everything lives under a namespace prefix that
 * teardown removes, even after a crash (the next start clears the prefix first). A lab
 * holds a lock on its prefix while it lives, so concurrent runs take turns instead of
 * destroying each other's namespaces.
 */
import { AddressSet, addressFamily, canonicalAddress } from '../../src/policy/addresses.js';
import {
  createNetwork,
  destroyByPrefix,
  lockPrefix,
  type NetnsNetwork,
} from '../../src/host/netns.js';
import { hasCommand, run } from '../../src/host/run.js';
import { LAB_IPV4_RANGE, LAB_IPV6_RANGE } from '../../src/lab/addressing.js';
import {
  Prober,
  type Probe,
  type ProbeEvidence,
  type ProbeProtocol,
} from '../../src/lab/prober.js';

export type { Probe, ProbeEvidence, ProbeProtocol };

export interface LabHostSpec {
  readonly name: string;
  /** Plain addresses (no prefix length): the lab puts them all on one link. */
  readonly addresses: readonly string[];
}

export interface Listener {
  readonly port: number;
  readonly proto: ProbeProtocol;
}

export interface KernelLabOptions {
  /** Namespace and link name prefix owned by this lab (at most 6 characters). */
  readonly prefix: string;
  readonly hosts: readonly LabHostSpec[];
  /** What every host listens on, on each of its addresses. */
  readonly listen: readonly Listener[];
  /** How long to wait for another lab that holds the same prefix (default 45 s). */
  readonly lockTimeoutMs?: number;
}

export interface LabHost {
  readonly name: string;
  readonly netns: string;
  readonly addresses: readonly string[];
  /** Runs a command inside the host's namespace; resolves to its stdout. */
  exec(command: readonly string[], input?: string): Promise<string>;
}

/** Puts one host's firewall in place (or removes it); runs inside no particular namespace. */
export type ApplyFirewall = (host: LabHost) => Promise<void>;

export type ProbeVerdict = 'allowed' | 'blocked';

export interface ProbeResult {
  readonly probe: Probe;
  readonly verdict: ProbeVerdict;
  /**
   * How the verdict was reached. allowed: a TCP handshake completed, a UDP reply came back.
   * blocked: nothing came back in time (a drop on either side), the source's own firewall
   * refused to send (EPERM), or a firewall rejected it (refused / unreachable; never a
   * missing listener, since every probed port has one).
   */
  readonly evidence: ProbeEvidence;
}

export interface ProbeOptions {
  /** How long a probe waits for a handshake or reply. */
  readonly timeoutMs?: number;
  /** Probes in flight per source host (bounded so that first contact with a neighbour
   * does not overflow the kernel's queue of packets awaiting ARP/NDP resolution). */
  readonly concurrency?: number;
}

export interface KernelLab {
  readonly prefix: string;
  readonly hosts: readonly LabHost[];
  host(name: string): LabHost;
  /** The host that owns an address. */
  hostOf(address: string): LabHost;
  /**
   * Runs `apply` for every host (in parallel), then forgets every tracked connection so no
   * probe can ride on state left from before the change.
   */
  applyFirewalls(apply: ApplyFirewall): Promise<void>;
  probe(probes: readonly Probe[], options?: ProbeOptions): Promise<ProbeResult[]>;
  /** Stops every helper and removes every namespace and link; safe to call twice. */
  destroy(): Promise<void>;
}

const LAB_RANGES = AddressSet.of([LAB_IPV4_RANGE, LAB_IPV6_RANGE]);
const PREFIX_LENGTH = { 4: 15, 6: 64 } as const;

/**
 * Why a kernel test cannot run here, or null when it can. `tools` are what the test's
 * firewall callbacks need on top of the lab's own (`ip`, `flock`), e.g. `nft`.
 */
export async function kernelLabUnavailable(tools: readonly string[] = []): Promise<string | null> {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (network namespaces need root)';
  for (const tool of ['ip', 'flock', ...tools]) {
    if (!(await hasCommand(tool))) return `\`${tool}\` is not installed`;
  }
  return null;
}

// --- The lab ----------------------------------------------------------------------------

function checkInsideLab(address: string, what: string): void {
  if (!LAB_RANGES.has(address)) {
    throw new Error(`${what} ${address} is outside the lab ranges 198.18.0.0/15 and 2001:db8::/64`);
  }
}

function verdictOf(evidence: ProbeEvidence): ProbeVerdict {
  return evidence === 'connected' || evidence === 'replied' ? 'allowed' : 'blocked';
}

/** Groups probes by the host that sends them, remembering each probe's place. */
function bySourceHost(
  probes: readonly Probe[],
  hostOf: (a: string) => LabHost,
): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  probes.forEach((p, i) => {
    const name = hostOf(p.from).name;
    let list = groups.get(name);
    if (!list) groups.set(name, (list = []));
    list.push(i);
  });
  return groups;
}

/** Which host owns each address (canonical text); every address must lie inside the lab. */
function addressOwners(hosts: readonly LabHostSpec[]): Map<string, string> {
  const owner = new Map<string, string>();
  for (const h of hosts) {
    for (const a of h.addresses) {
      checkInsideLab(a, `host ${h.name} address`);
      const canonical = canonicalAddress(a);
      const other = owner.get(canonical);
      if (other) throw new Error(`address ${a} is on both ${other} and ${h.name}`);
      owner.set(canonical, h.name);
    }
  }
  return owner;
}

export { lockPrefix };

/** Builds the namespaces, starts one helper in each, and returns the lab. */
export async function startKernelLab(options: KernelLabOptions): Promise<KernelLab> {
  const owner = addressOwners(options.hosts);
  const unlock = await lockPrefix(options.prefix, options.lockTimeoutMs ?? 45_000);
  let network: NetnsNetwork;
  try {
    network = await createNetwork(
      options.prefix,
      options.hosts.map((h) => ({
        name: h.name,
        addresses: h.addresses.map((a) => `${a}/${PREFIX_LENGTH[addressFamily(a)]}`),
      })),
    );
  } catch (e) {
    await unlock();
    throw e;
  }
  const helpers = new Map<string, Prober>();
  const lab = makeLab(options.prefix, network, owner, helpers, unlock);
  // Each helper is tracked as soon as it runs, so a failure elsewhere never leaks one.
  const started = await Promise.allSettled(
    network.hosts.map(async (h) => {
      const listen = h.addresses.flatMap((address) =>
        options.listen.map((l) => ({ address, ...l })),
      );
      helpers.set(h.name, await Prober.start(h.netns, h.name, { listen }));
    }),
  );
  const failure = started.find((r) => r.status === 'rejected');
  if (failure) {
    await lab.destroy();
    throw failure.reason;
  }
  return lab;
}

function makeLab(
  prefix: string,
  network: NetnsNetwork,
  owner: ReadonlyMap<string, string>,
  helpers: Map<string, Prober>,
  unlock: () => Promise<void>,
): KernelLab {
  const hosts: LabHost[] = network.hosts.map((h) => ({
    name: h.name,
    netns: h.netns,
    addresses: h.addresses,
    exec: (command, input) => network.exec(h.name, command, input),
  }));
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const host = (name: string): LabHost => {
    const h = byName.get(name);
    if (!h) throw new Error(`no host "${name}" in lab ${prefix}`);
    return h;
  };
  const hostOf = (address: string): LabHost => {
    const name = owner.get(canonicalAddress(address));
    if (!name) throw new Error(`${address} is not an address of any host in lab ${prefix}`);
    return host(name);
  };
  let conntrack: boolean | null = null;
  let destroyed = false;

  return {
    prefix,
    hosts,
    host,
    hostOf,

    async applyFirewalls(apply) {
      await Promise.all(hosts.map((h) => apply(h)));
      conntrack ??= await hasCommand('conntrack');
      if (conntrack) {
        // conntrack -F exits 1 when the table is already empty on some versions.
        await Promise.all(
          hosts.map((h) =>
            run(['ip', 'netns', 'exec', h.netns, 'conntrack', '-F'], { okCodes: [0, 1] }),
          ),
        );
      }
    },

    async probe(probes, options = {}) {
      for (const p of probes) hostOf(p.to);
      const timeoutMs = options.timeoutMs ?? 400;
      const concurrency = options.concurrency ?? 48;
      const results = new Array<ProbeResult>(probes.length);
      const groups = bySourceHost(probes, hostOf);
      await Promise.all(
        [...groups].map(async ([name, indexes]) => {
          const helper = helpers.get(name);
          if (!helper) throw new Error(`no probe helper on ${name}`);
          const measured = await helper.probe(
            indexes.map((i) => probes[i]!),
            timeoutMs,
            concurrency,
          );
          measured.forEach((m, k) => {
            const probe = probes[indexes[k]!]!;
            if (!m.evidence) {
              throw new Error(
                `probe ${probe.proto} ${probe.from} -> ${probe.to}:${probe.port} failed: ${m.error}`,
              );
            }
            results[indexes[k]!] = { probe, verdict: verdictOf(m.evidence), evidence: m.evidence };
          });
        }),
      );
      return results;
    },

    async destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        await Promise.all([...helpers.values()].map((h) => h.stop()));
        helpers.clear();
        await destroyByPrefix(prefix);
      } finally {
        await unlock();
      }
    },
  };
}

/**
 * Every ordered pair of same-family addresses on different hosts, on every port, over TCP
 * and UDP. Between two addresses of `outside` (a host with no firewall) nothing is judged,
 * so those pairs are left out.
 */
export function probeMatrix(lab: KernelLab, ports: readonly number[], outside: string): Probe[] {
  const probes: Probe[] = [];
  const addresses = lab.hosts.flatMap((h) =>
    h.addresses.map((address) => ({ host: h.name, address })),
  );
  for (const src of addresses) {
    for (const dst of addresses) {
      if (src.host === dst.host || (src.host === outside && dst.host === outside)) continue;
      if (addressFamily(src.address) !== addressFamily(dst.address)) continue;
      for (const port of ports) {
        for (const proto of ['tcp', 'udp'] as const)
          probes.push({ from: src.address, to: dst.address, port, proto });
      }
    }
  }
  return probes;
}

/**
 * What lets the policy diff decide its grid of representative flows quickly and still
 * exactly: classes of peers and probes that decide() cannot tell apart, and a screen that
 * rules out the flows no changed rule touches.
 *
 * decide() sees a peer only through a few predicates: whether each rule's workload clauses
 * select it, whether each rule's IP lists hold its address, whether each always-allowed
 * endpoint holds its address, and its workload's enforcement (managed, mode). It sees a
 * probe only through whether each rule's and endpoint's services match it on each side, and
 * its protocol and ICMP type (essential ICMPv6). Peers, and probes, that answer all of these
 * alike under both versions get the same decision and the same decidedBy with any
 * counterpart, so deciding one flow per (source class, destination class, probe class) is
 * exact. A workload to itself (loopback) would be the exception; the grid never holds it.
 */
import { addressValue, type IpFamily } from './addresses.js';
import { clausesSelect, servicesMatch, type Flow, type FlowEndpoint, type Side } from './decide.js';
import type { ServicePort, Workload } from './model.js';
import type { ResolvedPolicy, ResolvedRule } from './resolve.js';

/** A flow's shape without its ends: protocol, port or ICMP type, serving process. */
export type Probe = Pick<Flow, 'proto' | 'port' | 'icmpType' | 'process'>;

/** One version as the grid sees it: each peer's endpoint, null where it does not exist. */
export interface GridVersion {
  readonly policy: ResolvedPolicy;
  readonly endpoints: readonly (FlowEndpoint | null)[];
}

export interface FlowClasses {
  /** Each peer's class, by the grid's peer index. */
  readonly peerClass: Int32Array;
  readonly peerClasses: number;
  /** Each probe's class, by the grid's probe index. */
  readonly probeClass: Int32Array;
  readonly probeClasses: number;
  /** False when the flow's decision is certainly the same under both versions. */
  mayDiffer(source: number, destination: number, probe: number): boolean;
}

// A rule's answers for one peer, as bits.
const SOURCES_SELECT = 1;
const SOURCES_HOLD = 2;
const DESTINATIONS_SELECT = 4;
const DESTINATIONS_HOLD = 8;
// Whether services match a probe, per side.
const INBOUND = 1;
const OUTBOUND = 2;

/** What decide() would ask of one rule or always-allowed endpoint, asked of every peer and probe. */
interface Facts {
  readonly peers: Uint8Array;
  readonly probes: Uint8Array;
  /** The answers with the action (not the name): equal keys, equal effect on every flow. */
  readonly key: string;
}

interface Parsed {
  readonly workload?: Workload;
  readonly family: IpFamily;
  readonly value: bigint;
}

// serviceMatches() reads only the probe's fields; the ends are placeholders.
const NOWHERE: FlowEndpoint = { address: '0.0.0.0' };
const probeFlow = (p: Probe): Flow => ({ source: NOWHERE, destination: NOWHERE, ...p });

function ruleFacts(
  policy: ResolvedPolicy,
  rule: ResolvedRule,
  peers: readonly (Parsed | null)[],
  probes: readonly Flow[],
): Facts {
  const peerBits = new Uint8Array(peers.length);
  peers.forEach((p, i) => {
    if (!p) return;
    const { sources: s, destinations: d } = rule;
    peerBits[i] =
      (clausesSelect(s, p.workload, policy) ? SOURCES_SELECT : 0) |
      (s.ipAddresses.hasValue(p.family, p.value) ? SOURCES_HOLD : 0) |
      (clausesSelect(d, p.workload, policy) ? DESTINATIONS_SELECT : 0) |
      (d.ipAddresses.hasValue(p.family, p.value) ? DESTINATIONS_HOLD : 0);
  });
  const probeBits = Uint8Array.from(
    probes,
    (f) =>
      (servicesMatch(rule.services, f, 'inbound') ? INBOUND : 0) |
      (servicesMatch(rule.services, f, 'outbound') ? OUTBOUND : 0),
  );
  return {
    peers: peerBits,
    probes: probeBits,
    key: `${rule.action}:${peerBits.join()}:${probeBits.join()}`,
  };
}

function alwaysAllowedFacts(
  entry: ResolvedPolicy['alwaysAllowed'][number],
  peers: readonly (Parsed | null)[],
  probes: readonly Flow[],
): Facts {
  const peerBits = Uint8Array.from(peers, (p) =>
    p && entry.addresses.hasValue(p.family, p.value) ? 1 : 0,
  );
  const opens = (f: Flow, side: Side) =>
    (entry.direction === 'both' || entry.direction === side) &&
    (entry.ports.length === 0 || entry.ports.some((p: ServicePort) => servicesMatch([p], f, side)));
  const probeBits = Uint8Array.from(
    probes,
    (f) => (opens(f, 'inbound') ? INBOUND : 0) | (opens(f, 'outbound') ? OUTBOUND : 0),
  );
  return { peers: peerBits, probes: probeBits, key: `${peerBits.join()}:${probeBits.join()}` };
}

interface VersionFacts {
  readonly rules: readonly Facts[];
  readonly alwaysAllowed: readonly Facts[];
  /** Each peer's enforcement, as text; '' where the peer does not exist. */
  readonly enforcement: readonly string[];
}

function versionFacts(version: GridVersion, probes: readonly Flow[]): VersionFacts {
  const peers = version.endpoints.map((e): Parsed | null =>
    e ? { ...addressValue(e.address), ...(e.workload ? { workload: e.workload } : {}) } : null,
  );
  return {
    rules: version.policy.rules.map((r) => ruleFacts(version.policy, r, peers, probes)),
    alwaysAllowed: version.policy.alwaysAllowed.map((a) => alwaysAllowedFacts(a, peers, probes)),
    enforcement: version.endpoints.map((e) =>
      !e ? '' : e.workload ? `${e.workload.managed}/${e.workload.mode}` : 'outside',
    ),
  };
}

/** Numbers items by their signature: equal signatures, equal class. */
function classify(count: number, signature: (i: number) => string) {
  const ids = new Map<string, number>();
  const classOf = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const s = signature(i);
    let id = ids.get(s);
    if (id === undefined) ids.set(s, (id = ids.size));
    classOf[i] = id;
  }
  return { classOf, count: ids.size };
}

/**
 * The rules of `mine` whose answers no rule of `theirs` shares. A flow that none of these
 * (of either version) matches is matched under both versions by rules with the same actions,
 * so its decision cannot differ.
 */
const changedRules = (mine: VersionFacts, theirs: VersionFacts) => {
  const keys = new Set(theirs.rules.map((r) => r.key));
  return mine.rules.filter((r) => !keys.has(r.key));
};

function touches(rule: Facts, source: number, destination: number, probe: number): boolean {
  const services = rule.probes[probe]!;
  const src = rule.peers[source]!;
  const dst = rule.peers[destination]!;
  return (
    ((services & INBOUND) !== 0 &&
      (dst & DESTINATIONS_SELECT) !== 0 &&
      (src & (SOURCES_SELECT | SOURCES_HOLD)) !== 0) ||
    ((services & OUTBOUND) !== 0 &&
      (src & SOURCES_SELECT) !== 0 &&
      (dst & (DESTINATIONS_SELECT | DESTINATIONS_HOLD)) !== 0)
  );
}

/** The classes of a grid's peers and probes under both versions, and its screen. */
export function flowClasses(
  versions: readonly [GridVersion, GridVersion],
  probes: readonly Probe[],
): FlowClasses {
  const flows = probes.map(probeFlow);
  const facts = versions.map((v) => versionFacts(v, flows));
  const peerCount = versions[0].endpoints.length;

  // Every version has as many rules and endpoints for each peer (probe): answers line up.
  const peers = classify(peerCount, (i) =>
    facts
      .map((f) =>
        [
          f.enforcement[i],
          ...f.rules.map((r) => r.peers[i]),
          ...f.alwaysAllowed.map((a) => a.peers[i]),
        ].join(),
      )
      .join('|'),
  );
  const probeClasses = classify(probes.length, (i) => {
    const { proto, icmpType } = probes[i]!;
    // decide() also reads the ICMP type, for essential ICMPv6.
    const kind = proto === 'icmp' || proto === 'icmpv6' ? `${proto}/${icmpType}` : proto;
    const answers = facts.map((f) =>
      [...f.rules.map((r) => r.probes[i]), ...f.alwaysAllowed.map((a) => a.probes[i])].join(),
    );
    return [kind, ...answers].join('|');
  });

  const [before, after] = facts as [VersionFacts, VersionFacts];
  // An always-allowed endpoint that changed may open or close any flow.
  const everything =
    before.alwaysAllowed.map((a) => a.key).join('|') !==
    after.alwaysAllowed.map((a) => a.key).join('|');
  // A workload whose enforcement changed may decide any of its flows differently.
  const reenforced = before.enforcement.map((e, i) => e !== after.enforcement[i]);
  const changed = [...changedRules(before, after), ...changedRules(after, before)];

  return {
    peerClass: peers.classOf,
    peerClasses: peers.count,
    probeClass: probeClasses.classOf,
    probeClasses: probeClasses.count,
    mayDiffer: (source, destination, probe) =>
      everything ||
      reenforced[source]! ||
      reenforced[destination]! ||
      changed.some((r) => touches(r, source, destination, probe)),
  };
}

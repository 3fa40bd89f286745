/**
 * The iptables + ipset backend: the fallback for hosts without nftables.
 *
 * It renders one workload's endpoint policy as three texts the agent feeds to the kernel,
 * in this order:
 *   1. `ipset restore`             : the peer sets, each refilled through a swap, so a rule
 *                                    never sees a half-filled set;
 *   2. `iptables-restore --noflush`: the IPv4 chains, committed in one transaction;
 *   3. `ip6tables-restore --noflush`: the same for IPv6.
 *
 * Bulkhead owns only its chains (BULKHEAD-IN, BULKHEAD-OUT and their BLOCK/POTENTIAL
 * tails) in the filter table. With `--noflush`, iptables-restore flushes and refills only
 * the chains a file declares, so the host's own rules are left alone. A restore file cannot
 * say "insert this jump unless it is there", so the agent installs the jumps from INPUT and
 * OUTPUT itself, once, with a check first (see IPTABLES_JUMPS).
 *
 * Verdicts mirror an nftables table of our own: "accept" is our verdict only. It RETURNs to
 * the host's chain, whose own rules still run after the jump, just as another nft table
 * still sees a packet our table accepted. Bulkhead never opens what the host itself closes.
 */
import type { IpFamily } from '../addresses.js';
import type { ServicePort } from '../model.js';
import type { ResolvedAlwaysAllowed } from '../resolve.js';
import type { CompiledRule, Direction, EndpointPolicy, PeerSet } from './endpoint.js';
import { stableId } from './stable-id.js';
import { unenforcedProcessBindings } from './process-bindings.js';
import { VERDICTS, type EnforcingMode as Enforcing, type Verdict } from './verdicts.js';
import { ESSENTIAL_ICMPV6 } from '../essential.js';

export interface IptablesOutput {
  /** Input for `ipset restore`; load it before the iptables files (their rules name these sets). */
  readonly ipset: string;
  /** Input for `iptables-restore --noflush`. */
  readonly iptables: string;
  /** Input for `ip6tables-restore --noflush`. */
  readonly ip6tables: string;
  readonly warnings: string[];
  /**
   * Every ipset this output fills. After the iptables files are loaded, any other set whose
   * name starts with IPSET_PREFIX is no longer referenced and the agent can destroy it.
   */
  readonly ipsetNames: readonly string[];
}

export const CHAINS: Record<Direction, string> = {
  inbound: 'BULKHEAD-IN',
  outbound: 'BULKHEAD-OUT',
};

/**
 * The jumps the agent installs idempotently, at the top of the host's chains, e.g.
 * `iptables -C INPUT -j BULKHEAD-IN || iptables -I INPUT 1 -j BULKHEAD-IN` (and ip6tables).
 */
export const IPTABLES_JUMPS: readonly { readonly from: 'INPUT' | 'OUTPUT'; readonly to: string }[] =
  [
    { from: 'INPUT', to: CHAINS.inbound },
    { from: 'OUTPUT', to: CHAINS.outbound },
  ];

export const IPSET_PREFIX = 'bulkhead';

/**
 * One fixed limit for every peer set: `ipset create -exist` only succeeds when the existing
 * set was created with the same maxelem, so a per-size value would break reloads. (maxelem
 * is a ceiling, not an allocation; the hash grows as needed.)
 */
const PEER_SET_MAXELEM = 1_048_576;

/** How long a blocked (or potentially blocked) attempt stays in its recording set. */
const RECORD_TIMEOUT_SECONDS = 3600;

/** iptables multiport takes at most 15 ports per rule, a range counting as two. */
const MULTIPORT_MAX_WEIGHT = 15;

/** What differs between the IPv4 and the IPv6 rendering. */
interface FamilyDialect {
  readonly family: IpFamily;
  readonly ipsetFamily: 'inet' | 'inet6';
  readonly tool: 'iptables' | 'ip6tables';
  /** The service protocol that only exists in this family. */
  readonly icmpService: 'icmp' | 'icmpv6';
  /** `-p` value and type option, as iptables-save prints them. */
  readonly icmpProto: 'icmp' | 'ipv6-icmp';
  readonly icmpTypeOption: '--icmp-type' | '--icmpv6-type';
}

const FAMILIES: Record<IpFamily, FamilyDialect> = {
  4: {
    family: 4,
    ipsetFamily: 'inet',
    tool: 'iptables',
    icmpService: 'icmp',
    icmpProto: 'icmp',
    icmpTypeOption: '--icmp-type',
  },
  6: {
    family: 6,
    ipsetFamily: 'inet6',
    tool: 'ip6tables',
    icmpService: 'icmpv6',
    icmpProto: 'ipv6-icmp',
    icmpTypeOption: '--icmpv6-type',
  },
};

// ---------------------------------------------------------------------------------------
// Names

/** Peer set of one family: `bulkhead4-p_0123456789ab` (ipset names stop at 31 characters). */
export function peerSetName(family: IpFamily, peerSetId: string): string {
  return `${IPSET_PREFIX}${family}-${peerSetId}`;
}

/** The addresses of an always-allowed endpoint, named by a hash of its (free-text) name. */
export function alwaysAllowedSetName(family: IpFamily, name: string): string {
  return `${IPSET_PREFIX}${family}-a_${stableId(name)}`;
}

/** Where blocked or potentially blocked attempts are recorded: peer address, protocol, port. */
export function recordingSetName(
  family: IpFamily,
  direction: Direction,
  verdict: 'block' | 'potential',
): string {
  const dir = direction === 'inbound' ? 'in' : 'out';
  return `${IPSET_PREFIX}${family}-${dir}-${verdict === 'block' ? 'blocked' : 'potential'}`;
}

function tailChain(direction: Direction, verdict: 'block' | 'potential'): string {
  return `${CHAINS[direction]}-${verdict === 'block' ? 'BLOCK' : 'POTENTIAL'}`;
}

/** The peer's address is the source of inbound traffic and the destination of outbound. */
function peerSide(direction: Direction): 'src' | 'dst' {
  return direction === 'inbound' ? 'src' : 'dst';
}

/**
 * Text that may appear in a comment: rule and workload names are user input, and a newline
 * or quote there must never become a line (a rule) of the restore file.
 */
function safeText(text: string, max = 200): string {
  return text.replace(/[^A-Za-z0-9_.:/=@+,-]/g, '_').slice(0, max);
}

/** For a `#` comment line: no line break (or other control character) may end it early. */
function oneLine(text: string): string {
  return text.replace(/[\p{Cc}\u2028\u2029]/gu, ' ').slice(0, 200);
}

// ---------------------------------------------------------------------------------------
// Matches

/** Sorts and merges port ranges: the union is the same, the rules fewer. */
function mergePorts(
  ranges: readonly { from: number; to: number }[],
): { from: number; to: number }[] {
  const sorted = ranges.slice().sort((a, b) => a.from - b.from || a.to - b.to);
  const out: { from: number; to: number }[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ from: r.from, to: r.to });
  }
  return out;
}

/** Groups ranges into multiport lists of at most 15 ports (a range counts as two). */
function multiportChunks(
  ranges: readonly { from: number; to: number }[],
): { from: number; to: number }[][] {
  const chunks: { from: number; to: number }[][] = [];
  let current: { from: number; to: number }[] = [];
  let weight = 0;
  for (const r of ranges) {
    const w = r.from === r.to ? 1 : 2;
    if (weight + w > MULTIPORT_MAX_WEIGHT) {
      chunks.push(current);
      current = [];
      weight = 0;
    }
    current.push(r);
    weight += w;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

function portText(r: { from: number; to: number }): string {
  return r.from === r.to ? `${r.from}` : `${r.from}:${r.to}`;
}

function transportMatches(proto: 'tcp' | 'udp', ports: readonly ServicePort[]): string[] {
  const ranges = ports.flatMap((p) => (p.proto === proto && 'ports' in p ? [p.ports] : []));
  return multiportChunks(mergePorts(ranges)).map((chunk) =>
    chunk.length === 1
      ? `-p ${proto} --dport ${portText(chunk[0]!)}`
      : `-p ${proto} -m multiport --dports ${chunk.map(portText).join(',')}`,
  );
}

function icmpMatches(dialect: FamilyDialect, ports: readonly ServicePort[]): string[] {
  const icmp = ports.filter((p) => p.proto === dialect.icmpService);
  if (icmp.length === 0) return [];
  const types = icmp.map((p) => ('icmpType' in p ? p.icmpType : undefined));
  // "Any ICMP type" covers every typed entry.
  if (types.some((t) => t === undefined)) return [`-p ${dialect.icmpProto}`];
  const unique = [...new Set(types as number[])].sort((a, b) => a - b);
  return unique.map((t) => `-p ${dialect.icmpProto} ${dialect.icmpTypeOption} ${t}`);
}

/**
 * The protocol/port matches of a service list in one family; one rule line each. `all` is a
 * single empty match; an ICMP service of the other family contributes nothing here.
 */
export function serviceMatches(
  services: 'all' | readonly ServicePort[],
  family: IpFamily,
): string[] {
  if (services === 'all') return [''];
  const dialect = FAMILIES[family];
  return [
    ...transportMatches('tcp', services),
    ...transportMatches('udp', services),
    ...icmpMatches(dialect, services),
  ];
}

// ---------------------------------------------------------------------------------------
// Rules

function line(...parts: string[]): string {
  return parts.filter((p) => p !== '').join(' ');
}

function verdictTarget(direction: Direction, verdict: Verdict): string {
  // goto, not jump: the tail chain's end then returns straight to the host's chain.
  return verdict === 'accept' ? '-j RETURN' : `-g ${tailChain(direction, verdict)}`;
}

function comment(text: string): string {
  return `-m comment --comment "${safeText(`bulkhead:${text}`)}"`;
}

/** Loopback, established/related return traffic and IPv6 link-local control: accepted before any rule. */
function baselineLines(dialect: FamilyDialect, direction: Direction): string[] {
  const chain = CHAINS[direction];
  const lines = [
    line(
      '-A',
      chain,
      direction === 'inbound' ? '-i lo' : '-o lo',
      comment('loopback'),
      '-j RETURN',
    ),
    line(
      '-A',
      chain,
      '-m conntrack --ctstate ESTABLISHED,RELATED',
      comment('return-traffic'),
      '-j RETURN',
    ),
  ];
  if (dialect.family === 6) {
    for (const { types, hopLimit, name } of ESSENTIAL_ICMPV6) {
      for (const t of types) {
        lines.push(
          line(
            '-A',
            chain,
            `-p ipv6-icmp --icmpv6-type ${t} -m hl --hl-eq ${hopLimit}`,
            comment(name.replaceAll(' ', '-')),
            '-j RETURN',
          ),
        );
      }
    }
  }
  return lines;
}

function alwaysAllowedLines(
  dialect: FamilyDialect,
  direction: Direction,
  endpoints: readonly ResolvedAlwaysAllowed[],
): string[] {
  const lines: string[] = [];
  for (const a of endpoints) {
    if (a.direction !== 'both' && a.direction !== direction) continue;
    if (a.addresses.intervals(dialect.family).length === 0) continue;
    const peer = `-m set --match-set ${alwaysAllowedSetName(dialect.family, a.name)} ${peerSide(direction)}`;
    const matches = serviceMatches(a.ports.length === 0 ? 'all' : a.ports, dialect.family);
    for (const m of matches) {
      lines.push(
        line('-A', CHAINS[direction], m, peer, comment(`always-allowed:${a.name}`), '-j RETURN'),
      );
    }
  }
  return lines;
}

function ruleLines(
  dialect: FamilyDialect,
  direction: Direction,
  mode: Enforcing,
  rule: CompiledRule,
): string[] {
  const peer = `-m set --match-set ${peerSetName(dialect.family, rule.peer)} ${peerSide(direction)}`;
  const target = verdictTarget(direction, VERDICTS[mode][rule.action]);
  return serviceMatches(rule.services, dialect.family).map((m) =>
    line('-A', CHAINS[direction], m, peer, comment(rule.ruleId), target),
  );
}

/** The tails: record the attempt (peer address, protocol, port) in a timed set, then decide. */
function tailLines(dialect: FamilyDialect, direction: Direction): string[] {
  const side = direction === 'inbound' ? 'src,dst' : 'dst,dst';
  const lines: string[] = [];
  for (const verdict of ['block', 'potential'] as const) {
    const chain = tailChain(direction, verdict);
    const record = recordingSetName(dialect.family, direction, verdict);
    lines.push(`-A ${chain} -j SET --add-set ${record} ${side} --exist`);
    if (verdict === 'block') lines.push(`-A ${chain} -j DROP`);
    // potential falls off the end of its chain: back to the host's chain, not dropped.
  }
  return lines;
}

function directionLines(
  dialect: FamilyDialect,
  endpoint: EndpointPolicy,
  mode: Enforcing,
  direction: Direction,
): string[] {
  const rules = direction === 'inbound' ? endpoint.inbound : endpoint.outbound;
  return [
    ...baselineLines(dialect, direction),
    ...alwaysAllowedLines(dialect, direction, endpoint.alwaysAllowed),
    ...rules.flatMap((r) => ruleLines(dialect, direction, mode, r)),
    line(
      '-A',
      CHAINS[direction],
      comment('default'),
      verdictTarget(direction, VERDICTS[mode].default),
    ),
  ];
}

const ALL_CHAINS = (['inbound', 'outbound'] as const).flatMap((d) => [
  CHAINS[d],
  tailChain(d, 'block'),
  tailChain(d, 'potential'),
]);

function restoreHeader(dialect: FamilyDialect, endpoint: EndpointPolicy): string[] {
  const jumps = IPTABLES_JUMPS.map(
    (j) =>
      `#   ${dialect.tool} -C ${j.from} -j ${j.to} 2>/dev/null || ${dialect.tool} -I ${j.from} 1 -j ${j.to}`,
  );
  return [
    `# Bulkhead ${dialect.tool} rules for workload ${safeText(endpoint.workload)} (mode ${endpoint.mode}). Generated: do not edit.`,
    `# Load after the ipset file with: ${dialect.tool}-restore --noflush`,
    '# --noflush flushes and refills only the BULKHEAD-* chains declared here, in one commit;',
    "# the host's own chains and rules are left alone. The jumps into these chains are",
    '# installed once by the agent, idempotently (a restore file cannot test for a rule):',
    ...jumps,
    endpoint.mode === 'idle'
      ? '# Mode idle: the chains are left empty, so every packet returns to the host rules.'
      : "# An accept here RETURNs to the host's chain: the host's own rules still apply.",
  ];
}

function renderFamily(dialect: FamilyDialect, endpoint: EndpointPolicy): string {
  const body: string[] = [];
  if (endpoint.mode !== 'idle') {
    const mode = endpoint.mode;
    for (const direction of ['inbound', 'outbound'] as const)
      body.push(...directionLines(dialect, endpoint, mode, direction));
    for (const direction of ['inbound', 'outbound'] as const)
      body.push(...tailLines(dialect, direction));
  }
  return [
    ...restoreHeader(dialect, endpoint),
    '*filter',
    // Declaring a chain in a --noflush restore creates it, or empties it if it exists.
    ...ALL_CHAINS.map((c) => `:${c} - [0:0]`),
    ...body,
    'COMMIT',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------
// Sets

/** hash:net cannot hold a /0, so "everything" is stored as its two halves. */
function storableCidrs(family: IpFamily, cidrs: readonly string[]): string[] {
  return cidrs.flatMap((c) => {
    if (!c.endsWith('/0')) return [c];
    return family === 4 ? ['0.0.0.0/1', '128.0.0.0/1'] : ['::/1', '8000::/1'];
  });
}

/**
 * Refills one set atomically: fill a scratch set, swap it in, destroy the scratch. Both are
 * created with `-exist` and identical options, so the same text loads again and again.
 */
function swapInSet(name: string, dialect: FamilyDialect, cidrs: readonly string[]): string[] {
  const scratch = `${name}-new`;
  const create = (n: string) =>
    `create ${n} hash:net family ${dialect.ipsetFamily} maxelem ${PEER_SET_MAXELEM} -exist`;
  return [
    create(name),
    create(scratch),
    `flush ${scratch}`,
    ...cidrs.map((c) => `add ${scratch} ${c}`),
    `swap ${scratch} ${name}`,
    `destroy ${scratch}`,
  ];
}

function recordingSetNames(family: IpFamily): string[] {
  return (['inbound', 'outbound'] as const).flatMap((d) =>
    (['block', 'potential'] as const).map((v) => recordingSetName(family, d, v)),
  );
}

/** Recording sets keep what the kernel saw across reloads: created if absent, never refilled. */
function recordingSets(dialect: FamilyDialect): string[] {
  return recordingSetNames(dialect.family).map(
    (name) =>
      `create ${name} hash:ip,port family ${dialect.ipsetFamily} timeout ${RECORD_TIMEOUT_SECONDS} -exist`,
  );
}

interface SetPlan {
  readonly name: string;
  readonly dialect: FamilyDialect;
  readonly cidrs: readonly string[];
  readonly what: string;
}

function setPlans(endpoint: EndpointPolicy, peerSets: ReadonlyMap<string, PeerSet>): SetPlan[] {
  const plans: SetPlan[] = [];
  for (const dialect of [FAMILIES[4], FAMILIES[6]]) {
    const family = dialect.family;
    for (const id of endpoint.peerSets) {
      const set = peerSets.get(id);
      if (!set)
        throw new Error(`endpoint policy of ${endpoint.workload} names unknown peer set ${id}`);
      plans.push({
        name: peerSetName(family, id),
        dialect,
        cidrs: storableCidrs(family, set.addresses.cidrs(family)),
        what: set.label,
      });
    }
    for (const a of endpoint.alwaysAllowed) {
      if (a.addresses.intervals(family).length === 0) continue;
      plans.push({
        name: alwaysAllowedSetName(family, a.name),
        dialect,
        cidrs: storableCidrs(family, a.addresses.cidrs(family)),
        what: `always-allowed ${a.name}`,
      });
    }
  }
  return plans;
}

function renderIpset(endpoint: EndpointPolicy, plans: readonly SetPlan[]): string {
  const lines = [
    `# Bulkhead ipsets for workload ${safeText(endpoint.workload)}. Load with: ipset restore`,
    '# Each peer set is refilled in a scratch set and swapped in, so no rule sees it half full.',
  ];
  if (endpoint.mode !== 'idle') {
    for (const p of plans)
      lines.push(`# ${oneLine(p.what)}`, ...swapInSet(p.name, p.dialect, p.cidrs));
    lines.push(...recordingSets(FAMILIES[4]), ...recordingSets(FAMILIES[6]));
  }
  return [...lines, ''].join('\n');
}

// ---------------------------------------------------------------------------------------
// Warnings

function processWarnings(endpoint: EndpointPolicy): string[] {
  return unenforcedProcessBindings(endpoint).map((b) => {
    const effect =
      b.action === 'allow' ? 'admits any process on it' : 'applies to any process on it';
    return (
      `${endpoint.workload}: inbound rule ${b.ruleId}: port ${portText(b.ports)}/${b.proto} is bound to process ` +
      `"${b.process}", but iptables cannot match the serving process; the port match ${effect}`
    );
  });
}

function capacityWarnings(plans: readonly SetPlan[]): string[] {
  return plans
    .filter((p) => p.cidrs.length > PEER_SET_MAXELEM)
    .map(
      (p) =>
        `ipset ${p.name} (${p.what}) needs ${p.cidrs.length} entries, more than its limit of ${PEER_SET_MAXELEM}`,
    );
}

// ---------------------------------------------------------------------------------------

/**
 * Renders one workload's endpoint policy for iptables + ipset. Pure and deterministic: the
 * same endpoint policy always gives the same text.
 */
export function renderIptables(
  endpoint: EndpointPolicy,
  peerSets: ReadonlyMap<string, PeerSet>,
): IptablesOutput {
  const plans = endpoint.mode === 'idle' ? [] : setPlans(endpoint, peerSets);
  const ipsetNames =
    endpoint.mode === 'idle'
      ? []
      : [...plans.map((p) => p.name), ...recordingSetNames(4), ...recordingSetNames(6)];
  return {
    ipset: renderIpset(endpoint, plans),
    iptables: renderFamily(FAMILIES[4], endpoint),
    ip6tables: renderFamily(FAMILIES[6], endpoint),
    warnings: [...processWarnings(endpoint), ...capacityWarnings(plans)],
    ipsetNames,
  };
}

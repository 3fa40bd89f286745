/**
 * The nftables backend: one workload's endpoint policy as one table of its own, `inet
 * bulkhead`, replaced in one kernel transaction. Every other table on the host is left
 * alone, and because our base chains have `policy accept`, a packet we accept is still
 * judged by the host's own tables: Bulkhead never opens what the host itself closes.
 *
 * The table, for a workload that enforces (visibility, selective, full):
 *
 *   sets    one interval set per peer set and family (`p_<id>_v4`, `p_<id>_v6`), one per
 *           always-allowed endpoint and family, and eight recording sets (blocked_* and
 *           potential_*, per direction and family) that the kernel fills itself.
 *   chains  `input` and `output` (base chains, policy accept; the verdict is made by the
 *           explicit rules), and the tails `block_in`, `block_out`, `potential_in`,
 *           `potential_out` that record an attempt and then drop or accept it.
 *
 * Rules name peer sets, never addresses, and both families' rules are always emitted (an
 * empty set simply matches nothing), so the rule count grows with rules, never with peers,
 * and a label change or a new IPv6 address is a set-element change and nothing else.
 *
 * The structured form (`NftState`) is what both the full renderer (here) and the
 * incremental one (`nft-update.ts`) print, so the two can never drift apart.
 *
 * Fast at estate scale: compiled rules, peer sets and endpoint policies are shared between
 * hosts, so what depends only on them (rule lines, set declarations and elements, chains) is
 * rendered once and cached by object (WeakMaps). The inputs are treated as the immutable
 * values their readonly types say they are.
 *
 * Pure: no I/O. Applying a script is `src/host/nft.ts`'s job.
 */
import type { IpFamily } from '../addresses.js';
import type { EnforcementMode, ServicePort } from '../model.js';
import type { ResolvedAlwaysAllowed } from '../resolve.js';
import type { CompiledRule, Direction, EndpointPolicy, PeerSet } from './endpoint.js';
import { stableId } from './stable-id.js';
import { VERDICTS, type EnforcingMode as Enforcing, type Verdict } from './verdicts.js';
import { ESSENTIAL_ICMPV6 } from '../essential.js';

// ---------------------------------------------------------------------------------------
// Exported API

/** The one table Bulkhead owns on a host: `inet bulkhead` (both IP families in one table). */
export const NFT_TABLE = 'inet bulkhead';

/** One named set of the table, as the renderers print it. */
export interface NftSet {
  readonly name: string;
  /**
   * Everything between the braces except the elements: type, flags, comment..., as one line
   * ending in `;`. Two sets with the same declaration can be turned into each other by
   * element changes alone.
   */
  readonly declaration: string;
  /** Elements as nft writes them (`198.18.1.11`, `198.19.0.0/16`, `a-b`), in address order. */
  readonly elements: readonly string[];
  /** A set the kernel fills itself (the recording sets): its elements are never ours to change. */
  readonly dynamic: boolean;
}

/** One chain of the table. */
export interface NftChain {
  readonly name: string;
  /** Base chains: `type filter hook input priority filter; policy accept;`. Null otherwise. */
  readonly declaration: string | null;
  /** Rule lines in evaluation order, exactly as written after `add rule inet bulkhead CHAIN`. */
  readonly rules: readonly string[];
}

/**
 * The table one workload should have, structured. `sets` come in declaration order (rules
 * reference sets, so sets first), `chains` with the tails before the base chains that jump
 * to them. An idle workload has no table: no sets, no chains.
 */
export interface NftState {
  readonly workload: string;
  readonly mode: EnforcementMode;
  readonly sets: readonly NftSet[];
  readonly chains: readonly NftChain[];
  /** What the kernel cannot enforce as written (process bindings), one line each. */
  readonly warnings: readonly string[];
}

export interface NftOptions {
  /** How long a recorded (blocked or potentially blocked) attempt stays in its set. Default 3600. */
  readonly recordTimeoutSeconds?: number;
  /** At most this many recorded attempts per recording set (the kernel stops adding beyond). Default 65536. */
  readonly recordSize?: number;
}

export interface NftRendered {
  /** A complete `nft -f` script: replaces table `inet bulkhead` in one transaction. */
  readonly text: string;
  readonly warnings: readonly string[];
  /** The structured form of the same table, for `renderNftUpdate` next time. */
  readonly state: NftState;
}

/**
 * Renders one workload's endpoint policy as a complete nft script that atomically replaces
 * the table `inet bulkhead` (and, for an idle workload, removes it). Same input, byte-identical
 * output. `peerSets` must hold every set `endpoint.peerSets` names.
 */
export function renderNft(
  endpoint: EndpointPolicy,
  peerSets: ReadonlyMap<string, PeerSet>,
  options: NftOptions = {},
): NftRendered {
  const state = nftState(endpoint, peerSets, options);
  return { text: nftScript(state), warnings: state.warnings, state };
}

/** The structured table for one workload: what `renderNft` prints. */
export function nftState(
  endpoint: EndpointPolicy,
  peerSets: ReadonlyMap<string, PeerSet>,
  options: NftOptions = {},
): NftState {
  if (endpoint.mode === 'idle')
    return { workload: endpoint.workload, mode: 'idle', sets: [], chains: [], warnings: [] };
  return buildState(endpoint, endpoint.mode, peerSets, options);
}

/**
 * The full script for a state: `table` + `delete table` + the table's definition, so that
 * loading it replaces whatever table was there (or none) in one transaction. For an idle
 * state, only the removal.
 */
export function nftScript(state: NftState): string {
  const out: string[] = [
    `# Bulkhead firewall for workload ${safeText(state.workload)} (mode ${state.mode}).`,
    ...REMOVE_TABLE,
  ];
  if (state.mode === 'idle') return out.join('\n') + '\n';
  out.push(`table ${NFT_TABLE} {`);
  for (const set of state.sets) out.push(setBlock(set));
  for (const chain of state.chains) {
    out.push(`\tchain ${chain.name} {`);
    if (chain.declaration !== null) out.push(`\t\t${chain.declaration}`);
    for (const rule of chain.rules) out.push(`\t\t${rule}`);
    out.push('\t}');
  }
  out.push('}');
  return out.join('\n') + '\n';
}

/** The script that removes Bulkhead's table, whether or not it exists. */
export function nftRemoveScript(): string {
  return REMOVE_TABLE.join('\n') + '\n';
}

/** Name of the set that records blocked (or, `potential`, would-be-blocked) attempts. */
export function recordingSetName(
  direction: Direction,
  verdict: 'block' | 'potential',
  family: IpFamily,
): string {
  return `${verdict === 'block' ? 'blocked' : 'potential'}_${DIR[direction]}${family}`;
}

/** Name of a peer set's interval set in one family: `p_0123456789ab_v4`. */
export function peerSetName(peerSetId: string, family: IpFamily): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(peerSetId))
    throw new Error(`peer set id "${peerSetId}" is not a valid nft set name`);
  return `${peerSetId}_v${family}`;
}

/**
 * nft elements, comma-separated, wrapped a few per line: `{ a, b, c }` (no leading keyword).
 * Shared with the incremental renderer so both print elements alike.
 */
export function elementList(elements: readonly string[]): string {
  if (elements.length <= ELEMENTS_PER_LINE) return `{ ${elements.join(', ')} }`;
  const lines: string[] = [];
  for (let i = 0; i < elements.length; i += ELEMENTS_PER_LINE) {
    lines.push(elements.slice(i, i + ELEMENTS_PER_LINE).join(', '));
  }
  return `{ ${lines.join(',\n\t\t\t')} }`;
}

// ---------------------------------------------------------------------------------------
// Semantics: what each rule action, and the default, does in each mode (decide()'s table)

const DIR: Record<Direction, 'in' | 'out'> = { inbound: 'in', outbound: 'out' };
const BASE_CHAIN: Record<Direction, string> = { inbound: 'input', outbound: 'output' };
const FAMILIES: readonly IpFamily[] = [4, 6];

const REMOVE_TABLE = [
  // Declaring the table first makes the delete succeed whether or not it exists yet.
  `table ${NFT_TABLE}`,
  `delete table ${NFT_TABLE}`,
];

const ELEMENTS_PER_LINE = 8;

/** nft rejects comments longer than this (1.0.6: "comment too long, 128 characters maximum"). */
const MAX_COMMENT = 128;

const NEIGHBOUR_DISCOVERY = ESSENTIAL_ICMPV6.map(
  (e) =>
    `icmpv6 type { ${e.types.join(', ')} } ip6 hoplimit ${e.hopLimit} accept comment "${e.name}"`,
);

// ---------------------------------------------------------------------------------------
// Text helpers

/**
 * Text that may appear inside an nft comment: names are user input, and nft's lexer takes
 * no escapes, so a double quote or a control character would end or break the script.
 * Printable ASCII only, cut to nft's limit.
 */
function safeText(text: string, max = MAX_COMMENT): string {
  const clean = text.replace(/[^\x20-\x7e]|"/g, '?');
  return clean.length <= max ? clean : `${clean.slice(0, max - 3)}...`;
}

function comment(text: string): string {
  return `comment "${safeText(text)}"`;
}

/**
 * A set's definition inside the table block. Peer sets are shared by every host that names
 * them (and can hold thousands of elements), so each is printed once and reused.
 */
const setBlockCache = new WeakMap<NftSet, string>();

function setBlock(set: NftSet): string {
  const cached = setBlockCache.get(set);
  if (cached !== undefined) return cached;
  const lines = [`\tset ${set.name} {`, `\t\t${set.declaration}`];
  if (set.elements.length > 0) lines.push(`\t\telements = ${elementList(set.elements)}`);
  lines.push('\t}');
  const text = lines.join('\n');
  setBlockCache.set(set, text);
  return text;
}

// ---------------------------------------------------------------------------------------
// Services: protocol/port matches, one rule line each

interface ServiceMatch {
  /** e.g. `tcp dport { 80, 8000-8080 }`, `icmp type 8`; empty for "every protocol". */
  readonly text: string;
  /** The process the ports are bound to (not kernel-enforceable), if any. */
  readonly process: string | null;
}

interface FamilyMatches {
  readonly 4: readonly ServiceMatch[];
  readonly 6: readonly ServiceMatch[];
}

const ALL_SERVICES: FamilyMatches = {
  4: [{ text: '', process: null }],
  6: [{ text: '', process: null }],
};

/** Service lists are shared by every host a rule lands on: render each once. */
const serviceCache = new WeakMap<readonly ServicePort[], FamilyMatches>();

/** Sorted ranges with overlapping and adjacent ones merged (nft rejects overlaps in a set). */
function mergeRanges(ranges: { from: number; to: number }[]): { from: number; to: number }[] {
  ranges.sort((a, b) => a.from - b.from || a.to - b.to);
  const out: { from: number; to: number }[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && r.from <= last.to + 1) {
      if (r.to > last.to) out[out.length - 1] = { from: last.from, to: r.to };
    } else out.push({ ...r });
  }
  return out;
}

function valueSet(values: readonly string[]): string {
  return values.length === 1 ? values[0]! : `{ ${values.join(', ')} }`;
}

function transportMatches(proto: 'tcp' | 'udp', ports: readonly ServicePort[]): ServiceMatch[] {
  // One rule per protocol and process binding, the ports in one anonymous set.
  const byProcess = new Map<string, { from: number; to: number }[]>();
  for (const p of ports) {
    if (p.proto !== proto || !('ports' in p)) continue;
    const key = p.process ?? '';
    let list = byProcess.get(key);
    if (!list) byProcess.set(key, (list = []));
    list.push({ from: p.ports.from, to: p.ports.to });
  }
  const out: ServiceMatch[] = [];
  for (const key of [...byProcess.keys()].sort()) {
    const ranges = mergeRanges(byProcess.get(key)!).map((r) =>
      r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`,
    );
    out.push({ text: `${proto} dport ${valueSet(ranges)}`, process: key === '' ? null : key });
  }
  return out;
}

function icmpMatches(family: IpFamily, ports: readonly ServicePort[]): ServiceMatch[] {
  // ICMP is IPv4 only and ICMPv6 IPv6 only: each lands in its own family's rule, or nowhere.
  const proto = family === 4 ? 'icmp' : 'icmpv6';
  const types: (number | undefined)[] = [];
  for (const p of ports)
    if (p.proto === proto) types.push('icmpType' in p ? p.icmpType : undefined);
  if (types.length === 0) return [];
  // "Any type" covers every typed entry.
  if (types.includes(undefined))
    return [{ text: `meta l4proto ${family === 4 ? 'icmp' : 'ipv6-icmp'}`, process: null }];
  const unique = [...new Set(types as number[])].sort((a, b) => a - b).map(String);
  return [{ text: `${proto} type ${valueSet(unique)}`, process: null }];
}

function serviceMatches(services: 'all' | readonly ServicePort[]): FamilyMatches {
  if (services === 'all') return ALL_SERVICES;
  const cached = serviceCache.get(services);
  if (cached) return cached;
  const transport = [...transportMatches('tcp', services), ...transportMatches('udp', services)];
  const matches: FamilyMatches = {
    4: [...transport, ...icmpMatches(4, services)],
    6: [...transport, ...icmpMatches(6, services)],
  };
  serviceCache.set(services, matches);
  return matches;
}

// ---------------------------------------------------------------------------------------
// Rules

function peerMatch(direction: Direction, family: IpFamily, setName: string): string {
  // The peer is the source of inbound traffic and the destination of outbound traffic.
  const field = direction === 'inbound' ? 'saddr' : 'daddr';
  return `${family === 4 ? 'ip' : 'ip6'} ${field} @${setName}`;
}

function verdictText(direction: Direction, verdict: Verdict): string {
  // goto, not jump: the tail ends in the verdict, so nothing after it in the base chain runs.
  if (verdict === 'accept') return 'accept';
  return `goto ${verdict === 'block' ? 'block' : 'potential'}_${DIR[direction]}`;
}

/**
 * Only the inbound side is inexact: decide() judges a process binding on the destination,
 * whose input hook cannot see the serving process. The source judges by port alone, as here.
 */
function processNote(process: string): string {
  return `bound to process "${process}", which nftables cannot match on the input hook: the port is open to any local process (the process binding is not kernel-enforced)`;
}

interface RenderedLines {
  readonly lines: readonly string[];
  readonly warnings: readonly string[];
}

/**
 * The lines of one peer-and-service match with one verdict, for both families. `label` is
 * what the rule comment says (the rule id, so the agent can attribute counters and drops).
 */
function matchLines(
  direction: Direction,
  setNames: Record<IpFamily, string>,
  services: 'all' | readonly ServicePort[],
  verdict: Verdict,
  label: string,
): RenderedLines {
  const matches = serviceMatches(services);
  const lines: string[] = [];
  const warnings: string[] = [];
  const action = verdictText(direction, verdict);
  for (const family of FAMILIES) {
    const peer = peerMatch(direction, family, setNames[family]);
    for (const m of matches[family]) {
      const inexact = m.process !== null && direction === 'inbound';
      const note = inexact ? ` (process ${m.process} not kernel-enforced)` : '';
      lines.push(
        `${peer}${m.text === '' ? '' : ` ${m.text}`} counter ${action} ${comment(label + note)}`,
      );
      // Both families share the transport matches: warn once.
      if (inexact && family === 4)
        warnings.push(`${label} (inbound): ${m.text} is ${processNote(m.process)}`);
    }
  }
  return { lines, warnings };
}

/**
 * A compiled rule is shared by every host it lands on: its lines depend only on the
 * direction and the mode, so they are rendered once per (rule, direction, mode).
 */
const ruleCache = new WeakMap<CompiledRule, (RenderedLines | undefined)[]>();

/** Slot of a (direction, mode) pair in a rule's cache: no string keys on the hot path. */
const SLOT: Record<Direction, Record<Enforcing, number>> = {
  inbound: { visibility: 0, selective: 1, full: 2 },
  outbound: { visibility: 3, selective: 4, full: 5 },
};

function ruleLines(rule: CompiledRule, direction: Direction, mode: Enforcing): RenderedLines {
  const slot = SLOT[direction][mode];
  let perRule = ruleCache.get(rule);
  if (!perRule) ruleCache.set(rule, (perRule = []));
  const cached = perRule[slot];
  if (cached) return cached;
  const names = { 4: peerSetName(rule.peer, 4), 6: peerSetName(rule.peer, 6) };
  const rendered = matchLines(
    direction,
    names,
    rule.services,
    VERDICTS[mode][rule.action],
    rule.ruleId,
  );
  perRule[slot] = rendered;
  return rendered;
}

// ---------------------------------------------------------------------------------------
// Sets

function interval(family: IpFamily): string {
  return `type ${family === 4 ? 'ipv4_addr' : 'ipv6_addr'}; flags interval;`;
}

/** A peer set's two interval sets; shared by every host that names it, so built once. */
const peerSetCache = new WeakMap<PeerSet, readonly [NftSet, NftSet]>();

function peerSetSets(peer: PeerSet): readonly [NftSet, NftSet] {
  const cached = peerSetCache.get(peer);
  if (cached) return cached;
  const make = (family: IpFamily): NftSet => ({
    name: peerSetName(peer.id, family),
    declaration: `${interval(family)} ${comment(`peers: ${peer.label}`)};`,
    elements: peer.addresses.elements(family),
    dynamic: false,
  });
  const sets = [make(4), make(6)] as const;
  peerSetCache.set(peer, sets);
  return sets;
}

interface AlwaysAllowedEntry {
  readonly endpoint: ResolvedAlwaysAllowed;
  readonly setNames: Record<IpFamily, string>;
  readonly sets: readonly [NftSet, NftSet];
}

/** The always-allowed list is shared by every host: name and build its sets once. */
const alwaysAllowedCache = new WeakMap<
  readonly ResolvedAlwaysAllowed[],
  readonly AlwaysAllowedEntry[]
>();

function alwaysAllowedEntries(
  list: readonly ResolvedAlwaysAllowed[],
): readonly AlwaysAllowedEntry[] {
  const cached = alwaysAllowedCache.get(list);
  if (cached) return cached;
  const used = new Set<string>();
  const entries = list.map((endpoint) => {
    // Named by a hash of the operator's (free-text) name, so an address change is an element change.
    let id = `aa_${stableId(endpoint.name)}`;
    for (let n = 2; used.has(id); n++) id = `aa_${stableId(`${endpoint.name}#${n}`)}`;
    used.add(id);
    const make = (family: IpFamily): NftSet => ({
      name: `${id}_v${family}`,
      declaration: `${interval(family)} ${comment(`always allowed: ${endpoint.name}`)};`,
      elements: endpoint.addresses.elements(family),
      dynamic: false,
    });
    const sets = [make(4), make(6)] as const;
    return { endpoint, setNames: { 4: sets[0].name, 6: sets[1].name }, sets };
  });
  alwaysAllowedCache.set(list, entries);
  return entries;
}

/** The same eight recording sets on every host: built once per option pair. */
const recordingCache = new Map<string, readonly NftSet[]>();

function recordingSets(options: NftOptions): readonly NftSet[] {
  const timeout = options.recordTimeoutSeconds ?? 3600;
  const size = options.recordSize ?? 65536;
  const key = `${timeout}/${size}`;
  const cached = recordingCache.get(key);
  if (cached) return cached;
  if (!Number.isInteger(timeout) || timeout <= 0)
    throw new Error(`recordTimeoutSeconds must be a positive integer, not ${timeout}`);
  if (!Number.isInteger(size) || size <= 0)
    throw new Error(`recordSize must be a positive integer, not ${size}`);
  const sets: NftSet[] = [];
  for (const verdict of ['block', 'potential'] as const) {
    for (const direction of ['inbound', 'outbound'] as const) {
      for (const family of FAMILIES) {
        const what = verdict === 'block' ? 'blocked' : 'potentially blocked';
        sets.push({
          name: recordingSetName(direction, verdict, family),
          // Keyed by the remote address, the protocol and the destination port; the kernel adds
          // the elements (update from the tail chains) and counts hits per element.
          declaration:
            `type ${family === 4 ? 'ipv4_addr' : 'ipv6_addr'} . inet_proto . inet_service; flags dynamic,timeout; ` +
            `timeout ${timeout}s; size ${size}; counter; ${comment(`${what} ${direction}: remote address . protocol . port`)};`,
          elements: [],
          dynamic: true,
        });
      }
    }
  }
  recordingCache.set(key, sets);
  return sets;
}

// ---------------------------------------------------------------------------------------
// Chains

/** A tail: record the attempt (tcp/udp only: `th dport` means nothing for ICMP), then the verdict. */
function tailChain(direction: Direction, verdict: 'block' | 'potential'): NftChain {
  const field = direction === 'inbound' ? 'saddr' : 'daddr';
  const rules = FAMILIES.map(
    (family) =>
      `meta l4proto { tcp, udp } update @${recordingSetName(direction, verdict, family)} ` +
      `{ ${family === 4 ? 'ip' : 'ip6'} ${field} . meta l4proto . th dport }`,
  );
  rules.push(verdict === 'block' ? 'drop' : 'accept');
  return { name: `${verdict}_${DIR[direction]}`, declaration: null, rules };
}

const TAIL_CHAINS: readonly NftChain[] = [
  tailChain('inbound', 'block'),
  tailChain('inbound', 'potential'),
  tailChain('outbound', 'block'),
  tailChain('outbound', 'potential'),
];

/**
 * What every base chain starts with, before the policy's rules: loopback, return traffic,
 * neighbour discovery, then the always-allowed endpoints. It depends only on the direction
 * and the (estate-wide) always-allowed list, so it is built once per list and direction.
 */
interface ChainHead {
  readonly lines: readonly string[];
  readonly warnings: readonly string[];
}

const headCache = new WeakMap<readonly AlwaysAllowedEntry[], Record<Direction, ChainHead>>();

function chainHead(direction: Direction, alwaysAllowed: readonly AlwaysAllowedEntry[]): ChainHead {
  const cached = headCache.get(alwaysAllowed);
  if (cached) return cached[direction];
  const build = (dir: Direction): ChainHead => {
    const lines: string[] = [
      dir === 'inbound'
        ? 'iif "lo" accept comment "loopback"'
        : 'oif "lo" accept comment "loopback"',
      'ct state established,related accept comment "return traffic"',
      ...NEIGHBOUR_DISCOVERY,
    ];
    const warnings: string[] = [];
    for (const a of alwaysAllowed) {
      if (a.endpoint.direction !== 'both' && a.endpoint.direction !== dir) continue;
      const services = a.endpoint.ports.length === 0 ? 'all' : a.endpoint.ports;
      const label = `always-allowed:${a.endpoint.name}`;
      const r = matchLines(dir, a.setNames, services, 'accept', label);
      lines.push(...r.lines);
      warnings.push(...r.warnings);
    }
    return { lines, warnings };
  };
  const heads = { inbound: build('inbound'), outbound: build('outbound') };
  headCache.set(alwaysAllowed, heads);
  return heads[direction];
}

/** The last rule of a base chain: what happens to traffic no rule matched. */
function defaultLine(direction: Direction, mode: Enforcing): string {
  const fallback = VERDICTS[mode].default;
  const what = fallback === 'block' ? 'default deny' : 'default (not blocked in this mode)';
  return `counter ${verdictText(direction, fallback)} ${comment(what)}`;
}

const DEFAULT_LINES: Record<Direction, Record<Enforcing, string>> = {
  inbound: {
    visibility: defaultLine('inbound', 'visibility'),
    selective: defaultLine('inbound', 'selective'),
    full: defaultLine('inbound', 'full'),
  },
  outbound: {
    visibility: defaultLine('outbound', 'visibility'),
    selective: defaultLine('outbound', 'selective'),
    full: defaultLine('outbound', 'full'),
  },
};

function baseChain(
  direction: Direction,
  mode: Enforcing,
  rules: readonly CompiledRule[],
  alwaysAllowed: readonly AlwaysAllowedEntry[],
  warnings: string[],
): NftChain {
  // Hot path (once per workload and direction): look every rule up once, then fill an
  // array of the exact size instead of growing one.
  const head = chainHead(direction, alwaysAllowed);
  const rendered: RenderedLines[] = new Array<RenderedLines>(rules.length);
  let total = head.lines.length + 1;
  for (let i = 0; i < rules.length; i++) {
    const r = ruleLines(rules[i]!, direction, mode);
    rendered[i] = r;
    total += r.lines.length;
  }
  const lines: string[] = new Array<string>(total);
  let at = 0;
  for (const l of head.lines) lines[at++] = l;
  for (const w of head.warnings) warnings.push(w);
  for (const r of rendered) {
    for (const l of r.lines) lines[at++] = l;
    for (const w of r.warnings) warnings.push(w);
  }
  lines[at] = DEFAULT_LINES[direction][mode];
  return { name: BASE_CHAIN[direction], declaration: BASE_DECLARATION[direction], rules: lines };
}

const BASE_DECLARATION: Record<Direction, string> = {
  inbound: 'type filter hook input priority filter; policy accept;',
  outbound: 'type filter hook output priority filter; policy accept;',
};

function buildState(
  endpoint: EndpointPolicy,
  mode: Enforcing,
  peerSets: ReadonlyMap<string, PeerSet>,
  options: NftOptions,
): NftState {
  const always = alwaysAllowedEntries(endpoint.alwaysAllowed);
  const sets: NftSet[] = [];
  for (const a of always) sets.push(a.sets[0], a.sets[1]);
  for (const id of endpoint.peerSets) {
    const peer = peerSets.get(id);
    if (!peer)
      throw new Error(
        `workload ${endpoint.workload}: peer set ${id} is not among the compiled peer sets`,
      );
    const [v4, v6] = peerSetSets(peer);
    sets.push(v4, v6);
  }
  for (const s of recordingSets(options)) sets.push(s);

  const { chains, warnings } = chainsOf(endpoint, mode, always);
  return { workload: endpoint.workload, mode, sets, chains, warnings };
}

/**
 * Chains name sets, never addresses, so they depend on the endpoint policy alone. After a
 * label change most affected workloads keep their endpoint object (only peer sets changed):
 * caching per endpoint makes their next state cost only the set list, and hands the
 * incremental renderer the very same rule arrays, which it compares by reference.
 */
const chainsCache = new WeakMap<
  EndpointPolicy,
  { readonly chains: readonly NftChain[]; readonly warnings: readonly string[] }
>();

function chainsOf(
  endpoint: EndpointPolicy,
  mode: Enforcing,
  always: readonly AlwaysAllowedEntry[],
): { readonly chains: readonly NftChain[]; readonly warnings: readonly string[] } {
  const cached = chainsCache.get(endpoint);
  if (cached) return cached;
  const warnings: string[] = [];
  const chains: NftChain[] = [
    ...TAIL_CHAINS,
    baseChain('inbound', mode, endpoint.inbound, always, warnings),
    baseChain('outbound', mode, endpoint.outbound, always, warnings),
  ];
  const result = { chains, warnings: [...new Set(warnings)] };
  chainsCache.set(endpoint, result);
  return result;
}

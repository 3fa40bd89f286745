/**
 * The Windows Firewall backend: one workload's endpoint policy as a PowerShell script of
 * `New-NetFirewallRule` calls (the Windows Filtering Platform underneath), all in the rule
 * group "Bulkhead" so that each version first removes the previous one.
 *
 * Windows Firewall has no rule order. Its precedence is fixed: a Block rule beats every
 * Allow rule, and the profile default applies when no rule matches. So:
 *  - full mode is exact: allow rules become Allow, override-deny rules become Block, and
 *    the profile defaults become Block (deny rules need no rule: the default blocks them);
 *  - selective mode cannot say "deny unless an allow rule admits it": a Block would beat
 *    the Allow. A deny rule becomes a Block only where no allow rule of the same direction
 *    overlaps it in peers and services; otherwise it is left out, with a warning;
 *  - visibility mode emits no Block rule at all;
 *  - idle mode only removes the Bulkhead rules.
 * Always-allowed endpoints are Allow rules, and a Block would beat them too, so their
 * addresses are cut out of every Block rule whose services they share.
 *
 * Windows has no named address sets: a peer set becomes RemoteAddress lists (chunked, as
 * Windows limits their length), so a label change rewrites the rules that name it.
 */
import { AddressSet } from '../addresses.js';
import type { ServicePort } from '../model.js';
import type { ResolvedAlwaysAllowed } from '../resolve.js';
import type { CompiledRule, Direction, EndpointPolicy, PeerSet } from './endpoint.js';
import { unenforcedProcessBindings } from './process-bindings.js';

export interface WindowsFirewallOutput {
  readonly script: string;
  readonly warnings: string[];
}

export const WINDOWS_RULE_GROUP = 'Bulkhead';

/** A rule's RemoteAddress list is limited by Windows; 1000 entries is a safe chunk. */
export const MAX_REMOTE_ADDRESSES = 1000;

/**
 * ICMPv6 router, neighbor and multicast listener discovery: IPv6 cannot work without them,
 * so they are allowed like on Linux (Windows rules cannot also require the hop limit).
 */
const NEIGHBOR_DISCOVERY_TYPES = [130, 131, 132, 133, 134, 135, 136, 143];

type Services = 'all' | readonly ServicePort[];
type Protocol = 'TCP' | 'UDP' | 'ICMPv4' | 'ICMPv6';

/** One New-NetFirewallRule call, before quoting. */
interface FirewallRule {
  readonly displayName: string;
  readonly description: string;
  readonly direction: Direction;
  readonly action: 'Allow' | 'Block';
  /** Absent: any protocol. */
  readonly protocol?: Protocol;
  /** Local ports for inbound rules, remote ports for outbound ones (the server's port). */
  readonly ports?: readonly string[];
  readonly icmpTypes?: readonly string[];
  /** Absent: any address. Never empty: Windows reads an empty list as "any". */
  readonly remoteAddresses?: readonly string[];
}

// ---------------------------------------------------------------------------------------
// PowerShell text

/**
 * A PowerShell single-quoted string: nothing inside is interpreted, and a quote is escaped
 * by doubling it. PowerShell also ends single-quoted strings at the typographic quotes
 * U+2018-U+201B, so those are doubled too. Control characters become spaces.
 */
export function psQuote(text: string): string {
  const clean = text.replace(/[\p{Cc}\u2028\u2029]/gu, ' ');
  return `'${clean.replace(/['\u2018\u2019\u201a\u201b]/g, (q) => q + q)}'`;
}

/** For a `#` comment: a line break in a user-written name must not end the comment. */
function oneLine(text: string): string {
  return text.replace(/[\p{Cc}\u2028\u2029]/gu, ' ');
}

function psList(values: readonly string[]): string {
  return values.map(psQuote).join(',');
}

function newRuleCommand(rule: FirewallRule, name: string): string {
  const args = [
    `-Name ${psQuote(name)}`,
    `-DisplayName ${psQuote(rule.displayName)}`,
    `-Description ${psQuote(rule.description)}`,
    `-Group ${psQuote(WINDOWS_RULE_GROUP)}`,
    `-Direction ${psQuote(rule.direction === 'inbound' ? 'Inbound' : 'Outbound')}`,
    `-Action ${psQuote(rule.action)}`,
    `-Profile ${psQuote('Any')}`,
  ];
  if (rule.protocol) args.push(`-Protocol ${psQuote(rule.protocol)}`);
  if (rule.ports)
    args.push(
      `${rule.direction === 'inbound' ? '-LocalPort' : '-RemotePort'} ${psList(rule.ports)}`,
    );
  if (rule.icmpTypes) args.push(`-IcmpType ${psList(rule.icmpTypes)}`);
  if (rule.remoteAddresses) args.push(`-RemoteAddress ${psList(rule.remoteAddresses)}`);
  return `New-NetFirewallRule ${args.join(' ')} | Out-Null`;
}

// ---------------------------------------------------------------------------------------
// Services

interface Range {
  from: number;
  to: number;
}

function mergeRanges(ranges: readonly Range[]): Range[] {
  const sorted = ranges.slice().sort((a, b) => a.from - b.from || a.to - b.to);
  const out: Range[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ from: r.from, to: r.to });
  }
  return out;
}

function portRanges(services: readonly ServicePort[], proto: 'tcp' | 'udp'): Range[] {
  return mergeRanges(services.flatMap((s) => (s.proto === proto && 'ports' in s ? [s.ports] : [])));
}

/** The ICMP types a service list names for one ICMP protocol: 'any', a list, or none. */
function icmpTypes(services: readonly ServicePort[], proto: 'icmp' | 'icmpv6'): 'any' | number[] {
  const entries = services.filter((s) => s.proto === proto);
  if (entries.some((s) => !('icmpType' in s) || s.icmpType === undefined)) return 'any';
  return [...new Set(entries.map((s) => ('icmpType' in s ? s.icmpType! : 0)))].sort(
    (a, b) => a - b,
  );
}

function rangesOverlap(a: readonly Range[], b: readonly Range[]): boolean {
  return a.some((x) => b.some((y) => x.from <= y.to && y.from <= x.to));
}

function rangesCover(outer: readonly Range[], inner: readonly Range[]): boolean {
  const merged = mergeRanges(outer);
  return inner.every((r) => merged.some((m) => m.from <= r.from && r.to <= m.to));
}

function typesOverlap(a: 'any' | number[], b: 'any' | number[]): boolean {
  if (a !== 'any' && a.length === 0) return false;
  if (b !== 'any' && b.length === 0) return false;
  return a === 'any' || b === 'any' || a.some((t) => b.includes(t));
}

function typesCover(outer: 'any' | number[], inner: 'any' | number[]): boolean {
  if (outer === 'any') return true;
  return inner !== 'any' && inner.every((t) => outer.includes(t));
}

/** Whether some flow matches both service lists (process bindings aside, as on the wire). */
export function servicesOverlap(a: Services, b: Services): boolean {
  if (a === 'all') return b === 'all' || b.length > 0;
  if (b === 'all') return a.length > 0;
  return (
    rangesOverlap(portRanges(a, 'tcp'), portRanges(b, 'tcp')) ||
    rangesOverlap(portRanges(a, 'udp'), portRanges(b, 'udp')) ||
    typesOverlap(icmpTypes(a, 'icmp'), icmpTypes(b, 'icmp')) ||
    typesOverlap(icmpTypes(a, 'icmpv6'), icmpTypes(b, 'icmpv6'))
  );
}

/** Whether every flow `inner` matches, `outer` matches too. */
function servicesCover(outer: Services, inner: Services): boolean {
  if (outer === 'all') return true;
  if (inner === 'all') return false;
  return (
    rangesCover(portRanges(outer, 'tcp'), portRanges(inner, 'tcp')) &&
    rangesCover(portRanges(outer, 'udp'), portRanges(inner, 'udp')) &&
    typesCover(icmpTypes(outer, 'icmp'), icmpTypes(inner, 'icmp')) &&
    typesCover(icmpTypes(outer, 'icmpv6'), icmpTypes(inner, 'icmpv6'))
  );
}

function portText(r: Range): string {
  return r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`;
}

/** What one New-NetFirewallRule can match: one protocol with its ports or types. */
interface ServiceMatch {
  readonly protocol?: Protocol;
  readonly ports?: string[];
  readonly icmpTypes?: string[];
  /** ICMP exists in one family only; its rule carries only that family's addresses. */
  readonly family?: 4 | 6;
}

function serviceMatches(services: Services): ServiceMatch[] {
  if (services === 'all') return [{}];
  const matches: ServiceMatch[] = [];
  for (const [proto, protocol] of [
    ['tcp', 'TCP'],
    ['udp', 'UDP'],
  ] as const) {
    const ranges = portRanges(services, proto);
    if (ranges.length > 0) matches.push({ protocol, ports: ranges.map(portText) });
  }
  for (const [proto, protocol, family] of [
    ['icmp', 'ICMPv4', 4],
    ['icmpv6', 'ICMPv6', 6],
  ] as const) {
    if (!services.some((s) => s.proto === proto)) continue;
    const types = icmpTypes(services, proto);
    matches.push(
      types === 'any' ? { protocol, family } : { protocol, family, icmpTypes: types.map(String) },
    );
  }
  return matches;
}

// ---------------------------------------------------------------------------------------
// Addresses

function allElements(set: AddressSet): string[] {
  return [...set.elements(4), ...set.elements(6)];
}

function without(set: AddressSet, cut: AddressSet): AddressSet {
  return AddressSet.of(allElements(set), allElements(cut));
}

/** Windows writes ranges `a-b` like nft; a whole family is written as a range, not `/0`. */
function remoteAddresses(set: AddressSet, family?: 4 | 6): string[] {
  const families = family ? [family] : ([4, 6] as const);
  return families.flatMap((f) =>
    set
      .elements(f)
      .map((e) =>
        e === '0.0.0.0/0'
          ? '0.0.0.0-255.255.255.255'
          : e === '::/0'
            ? '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'
            : e,
      ),
  );
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

// ---------------------------------------------------------------------------------------
// Rules

interface RuleIntent {
  readonly title: string;
  readonly peers: string;
  readonly direction: Direction;
  readonly action: 'Allow' | 'Block';
  /** Null: any address. */
  readonly addresses: AddressSet | null;
  readonly services: Services;
}

/** Expands one intent into firewall rules: one per protocol and per address chunk. */
function firewallRules(intent: RuleIntent): FirewallRule[] {
  const rules: FirewallRule[] = [];
  for (const match of serviceMatches(intent.services)) {
    const base = {
      direction: intent.direction,
      action: intent.action,
      ...(match.protocol ? { protocol: match.protocol } : {}),
      ...(match.ports ? { ports: match.ports } : {}),
      ...(match.icmpTypes ? { icmpTypes: match.icmpTypes } : {}),
    };
    const what = `${intent.title} (${intent.direction} ${intent.action.toLowerCase()}${match.protocol ? `, ${match.protocol}` : ''})`;
    if (intent.addresses === null) {
      rules.push({ ...base, displayName: `Bulkhead: ${what}`, description: intent.peers });
      continue;
    }
    const parts = chunks(remoteAddresses(intent.addresses, match.family), MAX_REMOTE_ADDRESSES);
    parts.forEach((addresses, i) => {
      const part = parts.length > 1 ? ` part ${i + 1}/${parts.length}` : '';
      rules.push({
        ...base,
        displayName: `Bulkhead: ${what}${part}`,
        description: intent.peers,
        remoteAddresses: addresses,
      });
    });
  }
  return rules;
}

function appliesTo(a: ResolvedAlwaysAllowed, direction: Direction): boolean {
  return a.direction === 'both' || a.direction === direction;
}

function alwaysAllowedIntents(endpoint: EndpointPolicy): RuleIntent[] {
  const intents: RuleIntent[] = [];
  for (const direction of ['inbound', 'outbound'] as const) {
    intents.push({
      title: 'neighbor discovery',
      peers: 'ICMPv6 router, neighbor and multicast listener discovery, needed for IPv6 to work',
      direction,
      action: 'Allow',
      addresses: null,
      services: NEIGHBOR_DISCOVERY_TYPES.map((t) => ({ proto: 'icmpv6', icmpType: t })),
    });
    for (const a of endpoint.alwaysAllowed) {
      if (!appliesTo(a, direction) || a.addresses.isEmpty) continue;
      intents.push({
        title: `always-allowed ${a.name}`,
        peers: `always-allowed endpoint ${a.name}`,
        direction,
        action: 'Allow',
        addresses: a.addresses,
        services: a.ports.length === 0 ? 'all' : a.ports,
      });
    }
  }
  return intents;
}

/**
 * A Block beats the Allow of an always-allowed endpoint, which the policy accepts before any
 * rule; so the endpoint's addresses are cut out of the Block. That is exact when the endpoint
 * is always allowed on every service the Block names; otherwise the Block no longer covers
 * the endpoint's other services, and the warning says so.
 */
function carveAlwaysAllowed(
  endpoint: EndpointPolicy,
  rule: CompiledRule,
  direction: Direction,
  peers: AddressSet,
  warnings: string[],
): AddressSet {
  let kept = peers;
  for (const a of endpoint.alwaysAllowed) {
    if (!appliesTo(a, direction) || !kept.meets(a.addresses)) continue;
    const aServices: Services = a.ports.length === 0 ? 'all' : a.ports;
    if (!servicesOverlap(aServices, rule.services)) continue;
    kept = without(kept, a.addresses);
    if (!servicesCover(aServices, rule.services)) {
      warnings.push(
        `${endpoint.workload}: ${direction} ${rule.action} rule ${rule.ruleId} does not block always-allowed endpoint ` +
          `${a.name} on any service: Windows cannot block it on some services while allowing others`,
      );
    }
  }
  return kept;
}

function peerAddresses(
  peerSets: ReadonlyMap<string, PeerSet>,
  rule: CompiledRule,
  workload: string,
): PeerSet {
  const set = peerSets.get(rule.peer);
  if (!set) throw new Error(`endpoint policy of ${workload} names unknown peer set ${rule.peer}`);
  return set;
}

/**
 * In selective mode a deny rule may become a Block only if no allow rule of its direction
 * could admit any flow it names; otherwise the Block would also beat that allow rule.
 */
function overlappingAllows(
  rule: CompiledRule,
  rules: readonly CompiledRule[],
  peerSets: ReadonlyMap<string, PeerSet>,
  workload: string,
): string[] {
  const peers = peerAddresses(peerSets, rule, workload).addresses;
  return rules
    .filter((r) => r.action === 'allow')
    .filter((r) => servicesOverlap(r.services, rule.services))
    .filter((r) => peerAddresses(peerSets, r, workload).addresses.meets(peers))
    .map((r) => r.ruleId);
}

interface Plan {
  readonly intents: RuleIntent[];
  readonly notes: string[];
  readonly warnings: string[];
}

function shouldBlock(
  endpoint: EndpointPolicy,
  rule: CompiledRule,
  rules: readonly CompiledRule[],
  peerSets: ReadonlyMap<string, PeerSet>,
  plan: Plan,
  direction: Direction,
): boolean {
  if (endpoint.mode === 'visibility') return false;
  if (rule.action === 'override-deny') return true;
  // A deny rule: in full mode the default Block already covers it (and a Block would beat allows).
  if (endpoint.mode === 'full') return false;
  const allows = overlappingAllows(rule, rules, peerSets, endpoint.workload);
  if (allows.length === 0) return true;
  plan.warnings.push(
    `${endpoint.workload}: selective mode: ${direction} deny rule ${rule.ruleId} is not enforced on Windows, because ` +
      `allow rule(s) ${allows.join(', ')} overlap it and a Windows Block rule would beat their Allow`,
  );
  return false;
}

function policyIntents(
  endpoint: EndpointPolicy,
  peerSets: ReadonlyMap<string, PeerSet>,
  plan: Plan,
): void {
  for (const direction of ['inbound', 'outbound'] as const) {
    const rules = direction === 'inbound' ? endpoint.inbound : endpoint.outbound;
    for (const rule of rules) {
      const set = peerAddresses(peerSets, rule, endpoint.workload);
      const block = rule.action !== 'allow';
      if (block && !shouldBlock(endpoint, rule, rules, peerSets, plan, direction)) continue;
      const addresses = block
        ? carveAlwaysAllowed(endpoint, rule, direction, set.addresses, plan.warnings)
        : set.addresses;
      if (addresses.isEmpty) {
        // An empty RemoteAddress would mean "any address": the rule is left out instead.
        plan.notes.push(`# ${oneLine(rule.ruleId)} (${direction}): no peer addresses, so no rule.`);
        continue;
      }
      plan.intents.push({
        title: rule.ruleId,
        peers: `Peers: ${set.label}`,
        direction,
        action: block ? 'Block' : 'Allow',
        addresses,
        services: rule.services,
      });
    }
  }
}

function processWarnings(endpoint: EndpointPolicy): string[] {
  return unenforcedProcessBindings(endpoint).map(
    (b) =>
      `${endpoint.workload}: inbound rule ${b.ruleId}: port ${portText(b.ports)}/${b.proto} is bound to process ` +
      `"${b.process}", but a Windows rule names a program by its full path; the rule matches the port for any program`,
  );
}

// ---------------------------------------------------------------------------------------
// Script

const MODE_NOTES: Record<EndpointPolicy['mode'], string[]> = {
  full: [
    '# Mode full: allow rules are Allow, override-deny rules are Block, the profile defaults are',
    '# Block (deny rules need no rule of their own: nothing allows them). Exact, except that allow',
    "# rules outside the Bulkhead group (the host's own) still admit traffic too.",
  ],
  selective: [
    '# Mode selective: override-deny rules are Block; a deny rule is Block only where no allow rule',
    '# overlaps it (see the warnings); everything else falls to the profile defaults, which are',
    "# reset to NotConfigured (Windows' own: inbound blocked unless a rule allows, outbound allowed).",
  ],
  visibility: [
    '# Mode visibility: no Block rules at all (nothing is blocked by Bulkhead); allow rules only,',
    '# and the profile defaults are reset to NotConfigured.',
  ],
  idle: ['# Mode idle: Bulkhead rules removed, profile defaults reset to NotConfigured.'],
};

function profileCommand(mode: EndpointPolicy['mode']): string {
  const profiles = '-Profile Domain,Private,Public';
  if (mode === 'full')
    return `Set-NetFirewallProfile ${profiles} -Enabled True -DefaultInboundAction Block -DefaultOutboundAction Block`;
  const enable = mode === 'selective' ? ' -Enabled True' : '';
  return `Set-NetFirewallProfile ${profiles}${enable} -DefaultInboundAction NotConfigured -DefaultOutboundAction NotConfigured`;
}

/**
 * Renders one workload's endpoint policy as a Windows Firewall PowerShell script. Pure and
 * deterministic: rule names are numbered in a fixed order.
 */
export function renderWindowsFirewall(
  endpoint: EndpointPolicy,
  peerSets: ReadonlyMap<string, PeerSet>,
): WindowsFirewallOutput {
  const plan: Plan = { intents: [], notes: [], warnings: [] };
  if (endpoint.mode !== 'idle') {
    plan.intents.push(...alwaysAllowedIntents(endpoint));
    policyIntents(endpoint, peerSets, plan);
  }
  const rules = plan.intents.flatMap(firewallRules);
  const width = Math.max(4, String(rules.length).length);
  const commands = rules.map((r, i) =>
    newRuleCommand(r, `Bulkhead-${String(i + 1).padStart(width, '0')}`),
  );
  const script = [
    `# Bulkhead Windows Firewall rules for workload ${oneLine(endpoint.workload)} (mode ${endpoint.mode}). Generated: do not edit.`,
    '# Windows Firewall precedence: any Block rule beats any Allow rule; the profile default',
    '# applies when no rule matches. Loopback and the return traffic of allowed connections',
    '# are never filtered by Windows Firewall, so they need no rule.',
    ...MODE_NOTES[endpoint.mode],
    '#Requires -RunAsAdministrator',
    "$ErrorActionPreference = 'Stop'",
    '',
    '# Replace the previous version: remove every rule of the Bulkhead group first.',
    `Get-NetFirewallRule -Group ${psQuote(WINDOWS_RULE_GROUP)} -ErrorAction SilentlyContinue | Remove-NetFirewallRule`,
    '',
    ...plan.notes,
    ...commands,
    '',
    '# Defaults last: if a rule above fails, the host keeps its previous defaults (and the',
    '# always-allowed control-plane channel) instead of blocking everything half-configured.',
    profileCommand(endpoint.mode),
    '',
  ].join('\n');
  return { script, warnings: [...processWarnings(endpoint), ...plan.warnings] };
}

/**
 * Seeded random policies for differential tests: small estates whose every workload can be
 * a real network namespace, with rules that exercise every part of the semantics the
 * kernel can enforce (label OR/AND, label groups, user groups, IP lists with exclusions,
 * port ranges, scopes, extra-scope, precedence, modes, always-allowed endpoints). Process
 * bindings are left out: nftables cannot see which process serves a port. The same seed always gives the same policy, so a failure found on a
 * seed can be replayed with that seed alone.
 *
 * Addresses come from a fixed plan inside 198.18.0.0/15 and 2001:db8::/64 (ranges reserved
 * for benchmarking and documentation), so the lab that plays a policy never sends a packet
 * anywhere but to its own namespaces.
 */
import type {
  Actors,
  AlwaysAllowed,
  EnforcementMode,
  IpList,
  LabelGroup,
  LabelSelector,
  Policy,
  Rule,
  RuleAction,
  RuleServices,
  Ruleset,
  Service,
  ServicePort,
  ServiceRef,
  UserGroup,
  Workload,
} from '../../src/policy/model.js';
import { mulberry32 } from '../../src/random.js';

export class Rng {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = mulberry32(seed);
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: no items');
    return items[this.int(0, items.length - 1)]!;
  }

  /** `count` distinct items, in the order of `items`. */
  sample<T>(items: readonly T[], count: number): T[] {
    const chosen = new Set<number>();
    const want = Math.min(count, items.length);
    while (chosen.size < want) chosen.add(this.int(0, items.length - 1));
    return [...chosen].sort((a, b) => a - b).map((i) => items[i]!);
  }

  /** Picks by relative weight. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    const total = choices.reduce((sum, [, w]) => sum + w, 0);
    let roll = this.next() * total;
    for (const [value, w] of choices) {
      roll -= w;
      if (roll < 0) return value;
    }
    return choices[choices.length - 1]![0];
  }
}

// --- The address plan -------------------------------------------------------------------

export const MAX_WORKLOADS = 6;

/** Workload slot i owns 198.18.0.(11+i) and, when it has one, 2001:db8::(10+i). */
export function workloadAddressV4(slot: number): string {
  return `198.18.0.${11 + slot}`;
}
export function workloadAddressV6(slot: number): string {
  return `2001:db8::${10 + slot}`;
}

/**
 * Addresses that belong to no workload: one next to the workloads (inside their /24), two
 * further out, and two IPv6 ones. IP lists below cover some of them and exclude others.
 */
export const OUTSIDER_ADDRESSES: readonly string[] = [
  '198.18.0.100',
  '198.18.3.3',
  '198.19.200.1',
  '2001:db8::64',
  '2001:db8::ff:1',
];

/**
 * IP list entries, chosen to cut across the plan: CIDRs that hold some workloads and not
 * others, a range, single addresses, the whole lab, and "the internet".
 */
const IP_INCLUDE_POOL: readonly string[] = [
  '198.18.0.0/24',
  '198.18.0.8/29',
  '198.18.0.12-198.18.0.20',
  '198.18.0.100',
  '198.18.3.0/24',
  '198.19.0.0/16',
  '198.18.0.0/15',
  '0.0.0.0/0',
  '2001:db8::/120',
  '2001:db8::10-2001:db8::12',
  '2001:db8::ff:0/112',
  '::/0',
];
const IP_EXCLUDE_POOL: readonly string[] = [
  '198.18.0.13',
  '198.18.0.12/30',
  '198.18.0.100',
  '198.19.200.0/24',
  '2001:db8::11',
  '2001:db8::64',
];

// --- Ports and services -----------------------------------------------------------------

/** Every probe goes to one of these ports, over TCP and UDP. */
export const PORT_POOL: readonly number[] = [22, 53, 80, 443, 5432, 8080];

/** Ranges that hold several pool ports, one pool port, or none (9000-9100). */
const RANGE_POOL: readonly (readonly [number, number])[] = [
  [20, 25],
  [50, 90],
  [80, 443],
  [443, 443],
  [5000, 6000],
  [8000, 8080],
  [9000, 9100],
];

// --- Labels -----------------------------------------------------------------------------

const VOCABULARY: Readonly<Record<string, readonly string[]>> = {
  role: ['web', 'api', 'db'],
  app: ['shop', 'pay'],
  env: ['prod', 'dev'],
};
const LABEL_KEYS = Object.keys(VOCABULARY);

/** Users logged in on workloads: user-group actors select workloads by them. */
const USERS: readonly string[] = ['alice', 'bob', 'carol'];

const MODES: readonly (readonly [EnforcementMode, number])[] = [
  ['full', 4],
  ['selective', 3],
  ['visibility', 2],
  ['idle', 1],
];

const ACTIONS: readonly (readonly [RuleAction, number])[] = [
  ['allow', 6],
  ['deny', 3],
  ['override-deny', 2],
];

// --- Generators -------------------------------------------------------------------------

function randomWorkload(rng: Rng, slot: number): Workload {
  const labels: Record<string, string> = {};
  // Now and then a key is missing, so "key absent" meets every selector on that key.
  for (const key of LABEL_KEYS) if (rng.chance(0.85)) labels[key] = rng.pick(VOCABULARY[key]!);
  const role = labels.role ?? 'host';
  return {
    name: `${role}${slot + 1}`,
    addresses: rng.chance(0.5)
      ? [workloadAddressV4(slot), workloadAddressV6(slot)]
      : [workloadAddressV4(slot)],
    labels,
    mode: rng.weighted(MODES),
    managed: !rng.chance(0.12),
    users: rng.sample(USERS, rng.int(0, 2)),
  };
}

/** Groups only include earlier groups of their key, so there is never a cycle. */
function randomLabelGroups(rng: Rng): LabelGroup[] {
  const groups: LabelGroup[] = [];
  const count = rng.int(0, 3);
  for (let i = 0; i < count; i++) {
    const key = rng.pick(LABEL_KEYS);
    const values = VOCABULARY[key]!;
    const earlier = groups.filter((g) => g.key === key).map((g) => g.name);
    groups.push({
      name: `${key}-group-${i + 1}`,
      key,
      values: rng.sample(values, rng.int(earlier.length > 0 ? 0 : 1, 2)),
      groups: earlier.length > 0 && rng.chance(0.5) ? [rng.pick(earlier)] : [],
    });
  }
  return groups;
}

function randomUserGroups(rng: Rng): UserGroup[] {
  return Array.from({ length: rng.int(0, 2) }, (_, i) => ({
    name: `users-${i + 1}`,
    members: rng.sample(USERS, rng.int(1, 2)),
  }));
}

function randomIpLists(rng: Rng): IpList[] {
  return Array.from({ length: rng.int(1, 3) }, (_, i) => ({
    name: `ips-${i + 1}`,
    include: rng.sample(IP_INCLUDE_POOL, rng.int(1, 3)),
    exclude: rng.chance(0.5) ? rng.sample(IP_EXCLUDE_POOL, rng.int(1, 2)) : [],
  }));
}

function randomPortEntry(rng: Rng): ServicePort {
  const proto = rng.chance(0.55) ? 'tcp' : 'udp';
  if (rng.chance(0.6)) {
    const port = rng.pick(PORT_POOL);
    return { proto, ports: { from: port, to: port } };
  }
  const [from, to] = rng.pick(RANGE_POOL);
  return { proto, ports: { from, to } };
}

/** ICMP entries ride along so renderers meet them, though probes are TCP and UDP only. */
function randomServicePort(rng: Rng): ServicePort {
  if (rng.chance(0.08)) {
    return rng.chance(0.5) ? { proto: 'icmp', icmpType: 8 } : { proto: 'icmpv6' };
  }
  return randomPortEntry(rng);
}

function randomServices(rng: Rng): Service[] {
  return Array.from({ length: rng.int(1, 4) }, (_, i) => ({
    name: `svc-${i + 1}`,
    ports: Array.from({ length: rng.int(1, 3) }, () => randomServicePort(rng)),
  }));
}

/** Same key OR (one or two values), different keys AND (one or two keys), groups too. */
function randomSelector(rng: Rng, groups: readonly LabelGroup[]): LabelSelector {
  const labels: Record<string, string[]> = {};
  for (const key of rng.sample(LABEL_KEYS, rng.int(1, 2))) {
    labels[key] = rng.sample(VOCABULARY[key]!, rng.chance(0.7) ? 1 : 2);
  }
  const labelGroups = groups.length > 0 && rng.chance(0.3) ? [rng.pick(groups).name] : [];
  return { labels, labelGroups };
}

interface Names {
  readonly workloads: readonly string[];
  readonly groups: readonly LabelGroup[];
  readonly ipLists: readonly string[];
  readonly userGroups: readonly string[];
  readonly services: readonly string[];
}

/** A union of actors; never empty, so every rule can match something. */
function randomActors(rng: Rng, names: Names): Actors {
  for (;;) {
    const actors: Actors = {
      allWorkloads: rng.chance(0.15),
      selector: rng.chance(0.6) ? randomSelector(rng, names.groups) : null,
      workloads: rng.chance(0.2) ? rng.sample(names.workloads, rng.int(1, 2)) : [],
      ipLists: rng.chance(0.3) ? rng.sample(names.ipLists, 1) : [],
      userGroups:
        names.userGroups.length > 0 && rng.chance(0.1) ? rng.sample(names.userGroups, 1) : [],
    };
    const named = [actors.workloads, actors.ipLists, actors.userGroups].some((l) => l.length > 0);
    if (actors.allWorkloads || actors.selector || named) return actors;
  }
}

function randomRuleServices(rng: Rng, names: Names): RuleServices {
  if (rng.chance(0.15)) return 'all';
  return Array.from({ length: rng.int(1, 2) }, (): ServiceRef =>
    rng.chance(0.5)
      ? { kind: 'named', name: rng.pick(names.services) }
      : { kind: 'inline', port: randomPortEntry(rng) },
  );
}

function randomRule(rng: Rng, names: Names, index: number): Rule {
  return {
    name: `r${index + 1}`,
    action: rng.weighted(ACTIONS),
    sources: randomActors(rng, names),
    destinations: randomActors(rng, names),
    services: randomRuleServices(rng, names),
    extraScope: rng.chance(0.3),
  };
}

/** Null and the empty selector both mean the whole estate; both spellings occur. */
function randomScope(rng: Rng, groups: readonly LabelGroup[]): LabelSelector | null {
  const roll = rng.int(0, 9);
  if (roll < 3) return null;
  if (roll < 4) return { labels: {}, labelGroups: [] };
  return randomSelector(rng, groups);
}

function randomRuleset(rng: Rng, names: Names, index: number): Ruleset {
  return {
    name: `rs${index + 1}`,
    scope: randomScope(rng, names.groups),
    rules: Array.from({ length: rng.int(2, 8) }, (_, i) => randomRule(rng, names, i)),
  };
}

/** Now and then an operator's always-allowed endpoint (a bastion, say) on one address. */
function randomAlwaysAllowed(rng: Rng, workloads: readonly Workload[]): AlwaysAllowed[] {
  if (!rng.chance(0.25)) return [];
  const candidates = [...OUTSIDER_ADDRESSES, ...workloads.flatMap((w) => w.addresses)];
  return [
    {
      name: 'bastion',
      addresses: [rng.pick(candidates)],
      ports: rng.chance(0.5) ? [] : [{ proto: 'tcp', ports: { from: 22, to: 22 } }],
      direction: rng.pick(['inbound', 'outbound', 'both'] as const),
    },
  ];
}

/** A random, valid policy of 4-6 workloads and 1-3 rulesets. Same seed, same policy. */
export function randomPolicy(seed: number): Policy {
  const rng = new Rng(seed);
  const workloads = Array.from({ length: rng.int(4, MAX_WORKLOADS) }, (_, slot) =>
    randomWorkload(rng, slot),
  );
  const labelGroups = randomLabelGroups(rng);
  const ipLists = randomIpLists(rng);
  const userGroups = randomUserGroups(rng);
  const services = randomServices(rng);
  const names: Names = {
    workloads: workloads.map((w) => w.name),
    groups: labelGroups,
    ipLists: ipLists.map((l) => l.name),
    userGroups: userGroups.map((g) => g.name),
    services: services.map((s) => s.name),
  };
  const rulesets = Array.from({ length: rng.int(1, 3) }, (_, i) => randomRuleset(rng, names, i));
  return {
    workloads,
    labelGroups,
    ipLists,
    userGroups,
    services,
    rulesets,
    settings: { alwaysAllowed: randomAlwaysAllowed(rng, workloads) },
  };
}

/**
 * Resolution: from the user's policy (names, groups, scopes) to exact predicates.
 *
 * Every reference is checked here, so an unknown label group is an error and never a
 * silently empty set. The result is what both `decide()` and the compiler consume, so the
 * two can never disagree about what a rule means.
 */
import { AddressSet, addressValue, parseAddressEntry, type IpFamily } from './addresses.js';
import { PolicyError, type PolicyIssue, type PolicyObjectKind } from './issues.js';
import type {
  Actors,
  AlwaysAllowed,
  LabelGroup,
  LabelSelector,
  Policy,
  Rule,
  RuleAction,
  Ruleset,
  ServicePort,
  Workload,
} from './model.js';

/**
 * A conjunction that picks workloads: every listed key must hold one of its values, the
 * workload must be one of `names` (when set) and have a member of `userGroup` logged in
 * (when set). The empty clause is every workload.
 */
export interface WorkloadClause {
  readonly labels: ReadonlyMap<string, ReadonlySet<string>>;
  readonly names: ReadonlySet<string> | null;
  readonly userGroup: string | null;
  /** Canonical text, equal for equal clauses. */
  readonly key: string;
}

/** One side of a rule after scoping: workloads by clause, or addresses by IP list. */
export interface ResolvedActors {
  readonly clauses: readonly WorkloadClause[];
  readonly ipLists: readonly string[];
  /** The union of the IP lists' addresses. */
  readonly ipAddresses: AddressSet;
  /** Canonical text, equal for equal sides: the identity of a peer set. */
  readonly key: string;
  /** What a person would call it, e.g. `role=web & app=shop | ip-list:corporate`. */
  readonly label: string;
}

export interface ResolvedRule {
  /** `ruleset/rule`: stable across versions while the names stay. */
  readonly id: string;
  readonly ruleset: string;
  readonly rule: string;
  readonly action: RuleAction;
  /** Position in the policy, for deterministic reporting. */
  readonly order: number;
  readonly sources: ResolvedActors;
  readonly destinations: ResolvedActors;
  readonly services: 'all' | readonly ServicePort[];
}

export interface ResolvedAlwaysAllowed {
  readonly name: string;
  readonly addresses: AddressSet;
  readonly ports: readonly ServicePort[];
  readonly direction: AlwaysAllowed['direction'];
}

export interface ResolvedPolicy {
  readonly source: Policy;
  readonly workloads: readonly Workload[];
  readonly workloadByName: ReadonlyMap<string, Workload>;
  readonly rules: readonly ResolvedRule[];
  readonly userGroupMembers: ReadonlyMap<string, ReadonlySet<string>>;
  readonly alwaysAllowed: readonly ResolvedAlwaysAllowed[];
  readonly warnings: readonly PolicyIssue[];
  /** The workload that owns an address, if any. */
  workloadAt(address: string): Workload | undefined;
}

type Report = (kind: PolicyObjectKind, name: string, path: string, message: string) => void;

/** The message of a second (third...) definition of a name; loaders locate it by this. */
export const DUPLICATE_MESSAGE = 'is defined more than once';

function indexUnique<T extends { name: string }>(
  items: readonly T[],
  kind: PolicyObjectKind,
  error: Report,
): Map<string, T> {
  const map = new Map<string, T>();
  for (const item of items) {
    if (map.has(item.name)) error(kind, item.name, '', DUPLICATE_MESSAGE);
    else map.set(item.name, item);
  }
  return map;
}

function expandLabelGroups(
  groups: ReadonlyMap<string, LabelGroup>,
  error: Report,
): Map<string, Set<string>> {
  const expanded = new Map<string, Set<string>>();
  // The groups being expanded, outermost first: a child already on it closes a cycle.
  const stack: string[] = [];
  const expand = (group: LabelGroup): Set<string> => {
    const done = expanded.get(group.name);
    if (done) return done;
    stack.push(group.name);
    const values = new Set(group.values);
    group.groups.forEach((childName, i) => {
      const child = groups.get(childName);
      if (!child) {
        error('LabelGroup', group.name, `groups[${i}]`, `unknown label group "${childName}"`);
      } else if (child.key !== group.key) {
        error(
          'LabelGroup',
          group.name,
          `groups[${i}]`,
          `label group "${childName}" is for key "${child.key}", not "${group.key}"`,
        );
      } else if (stack.includes(childName)) {
        const cycle = [...stack.slice(stack.indexOf(childName)), childName]
          .map((n) => `"${n}"`)
          .join(' -> ');
        error(
          'LabelGroup',
          group.name,
          `groups[${i}]`,
          `includes itself: a cycle of label groups ${cycle}`,
        );
      } else {
        for (const v of expand(child)) values.add(v);
      }
    });
    stack.pop();
    expanded.set(group.name, values);
    return values;
  };
  for (const g of groups.values()) expand(g);
  return expanded;
}

/** What is wrong with a service port as given (the loader checks these too, for files). */
function servicePortProblem(port: ServicePort): { path: string; message: string } | null {
  if ('ports' in port) {
    const { from, to } = port.ports;
    for (const [path, n] of [
      ['ports.from', from],
      ['ports.to', to],
    ] as const) {
      if (!Number.isInteger(n) || n < 1 || n > 65535)
        return { path, message: `${n} is not a port (1-65535)` };
    }
    if (from > to)
      return {
        path: 'ports',
        message: `${from}-${to} is a port range whose first port is after its last`,
      };
    return null;
  }
  const t = port.icmpType;
  if (t !== undefined && (!Number.isInteger(t) || t < 0 || t > 255)) {
    return { path: 'icmpType', message: `${t} is not an ICMP type (0-255)` };
  }
  return null;
}

function sortedEntries<V>(map: ReadonlyMap<string, V>): [string, V][] {
  return [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function makeClause(
  labels: Map<string, Set<string>>,
  names: Set<string> | null,
  userGroup: string | null,
): WorkloadClause {
  const labelPart = sortedEntries(labels)
    .map(([k, vs]) => `${k}=${[...vs].sort().join(',')}`)
    .join('&');
  const namePart = names ? `workload=${[...names].sort().join(',')}` : '';
  const userPart = userGroup !== null ? `user-group=${userGroup}` : '';
  const key = [labelPart, namePart, userPart].filter((p) => p).join('&') || 'all-workloads';
  return { labels, names, userGroup, key };
}

/** The clause AND the scope; null when they cannot both hold (a key with no common value). */
function limitToScope(
  clause: WorkloadClause,
  scope: ReadonlyMap<string, ReadonlySet<string>>,
): WorkloadClause | null {
  if (scope.size === 0) return clause;
  const labels = new Map<string, Set<string>>();
  for (const [k, vs] of clause.labels) labels.set(k, new Set(vs));
  for (const [k, scopeValues] of scope) {
    const own = labels.get(k);
    if (!own) {
      labels.set(k, new Set(scopeValues));
    } else {
      const both = new Set([...own].filter((v) => scopeValues.has(v)));
      if (both.size === 0) return null;
      labels.set(k, both);
    }
  }
  return makeClause(labels, clause.names ? new Set(clause.names) : null, clause.userGroup);
}

export function clauseMatches(
  clause: WorkloadClause,
  workload: Workload,
  userGroupMembers: ReadonlyMap<string, ReadonlySet<string>>,
): boolean {
  if (clause.names && !clause.names.has(workload.name)) return false;
  for (const [key, values] of clause.labels) {
    const v = workload.labels[key];
    if (v === undefined || !values.has(v)) return false;
  }
  if (clause.userGroup !== null) {
    const members = userGroupMembers.get(clause.userGroup);
    if (!members || !workload.users.some((u) => members.has(u))) return false;
  }
  return true;
}

export function describeActors(actors: ResolvedActors): string {
  return actors.label;
}

/** A workload's address as the kernel sees it, or null after reporting why it is not one. */
function ownAddress(
  w: Workload,
  address: string,
  index: number,
  error: Report,
): { family: IpFamily; value: bigint } | null {
  try {
    return addressValue(address);
  } catch (e) {
    error('Workload', w.name, `addresses[${index}]`, (e as Error).message);
    return null;
  }
}

/**
 * Resolves and validates a policy. Throws PolicyError listing every error found (not just
 * the first); warnings are returned on the result.
 */
export function resolvePolicy(policy: Policy): ResolvedPolicy {
  const issues: PolicyIssue[] = [];
  const error: Report = (kind, name, path, message) =>
    issues.push({ severity: 'error', kind, name, path, message });
  const warn: Report = (kind, name, path, message) =>
    issues.push({ severity: 'warning', kind, name, path, message });

  const workloadByName = indexUnique(policy.workloads, 'Workload', error);
  const labelGroups = indexUnique(policy.labelGroups, 'LabelGroup', error);
  const ipListsByName = indexUnique(policy.ipLists, 'IpList', error);
  const userGroups = indexUnique(policy.userGroups, 'UserGroup', error);
  const services = indexUnique(policy.services, 'Service', error);
  indexUnique(policy.rulesets, 'Ruleset', error);

  const groupValues = expandLabelGroups(labelGroups, error);
  const userGroupMembers = new Map(
    [...userGroups].map(([n, g]) => [n, new Set(g.members)] as const),
  );

  // Address ownership: the kernel sees addresses, so two workloads may not share one.
  const owners: Record<IpFamily, Map<bigint, Workload>> = { 4: new Map(), 6: new Map() };
  for (const w of policy.workloads) {
    w.addresses.forEach((a, i) => {
      const parsed = ownAddress(w, a, i, error);
      if (!parsed) return;
      const other = owners[parsed.family].get(parsed.value);
      if (other && other !== w) {
        error(
          'Workload',
          w.name,
          `addresses[${i}]`,
          `${a} is also an address of workload "${other.name}"`,
        );
      } else {
        owners[parsed.family].set(parsed.value, w);
      }
    });
  }

  const ipListAddresses = new Map<string, AddressSet>();
  for (const list of ipListsByName.values()) {
    // Each entry on its own first, so that a bad one is named by its place in the list.
    let valid = true;
    for (const field of ['include', 'exclude'] as const) {
      list[field].forEach((entry, i) => {
        try {
          parseAddressEntry(entry);
        } catch (e) {
          valid = false;
          error('IpList', list.name, `${field}[${i}]`, (e as Error).message);
        }
      });
    }
    ipListAddresses.set(
      list.name,
      valid ? AddressSet.of(list.include, list.exclude) : AddressSet.EMPTY,
    );
  }

  for (const svc of services.values()) {
    svc.ports.forEach((port, i) => {
      const problem = servicePortProblem(port);
      if (problem) error('Service', svc.name, `ports[${i}].${problem.path}`, problem.message);
    });
  }

  const selectorLabels = (
    sel: LabelSelector | null,
    kind: PolicyObjectKind,
    name: string,
    path: string,
  ): Map<string, Set<string>> => {
    const labels = new Map<string, Set<string>>();
    if (!sel) return labels;
    for (const [k, vs] of Object.entries(sel.labels)) labels.set(k, new Set(vs));
    sel.labelGroups.forEach((groupName, i) => {
      const group = labelGroups.get(groupName);
      if (!group) {
        error(kind, name, `${path}.labelGroups[${i}]`, `unknown label group "${groupName}"`);
        return;
      }
      const values = groupValues.get(groupName) ?? new Set<string>();
      const existing = labels.get(group.key);
      if (existing) for (const v of values) existing.add(v);
      else labels.set(group.key, new Set(values));
    });
    return labels;
  };

  const unions = new Map<string, AddressSet>();
  const resolveActors = (
    actors: Actors,
    scope: ReadonlyMap<string, ReadonlySet<string>> | null,
    ruleset: string,
    path: string,
  ): ResolvedActors => {
    const raw: WorkloadClause[] = [];
    if (actors.allWorkloads) raw.push(makeClause(new Map(), null, null));
    if (actors.selector) {
      const labels = selectorLabels(actors.selector, 'Ruleset', ruleset, path);
      raw.push(makeClause(labels, null, null));
    }
    actors.workloads.forEach((w, i) => {
      if (!workloadByName.has(w))
        error('Ruleset', ruleset, `${path}.workloads[${i}]`, `unknown workload "${w}"`);
    });
    if (actors.workloads.length > 0)
      raw.push(makeClause(new Map(), new Set(actors.workloads), null));
    actors.userGroups.forEach((g, i) => {
      if (!userGroups.has(g))
        error('Ruleset', ruleset, `${path}.userGroups[${i}]`, `unknown user group "${g}"`);
      else raw.push(makeClause(new Map(), null, g));
    });
    actors.ipLists.forEach((l, i) => {
      if (!ipListsByName.has(l))
        error('Ruleset', ruleset, `${path}.ipLists[${i}]`, `unknown IP list "${l}"`);
    });

    const clauses: WorkloadClause[] = [];
    const seen = new Set<string>();
    for (const c of raw) {
      const limited = scope ? limitToScope(c, scope) : c;
      if (!limited) {
        warn(
          'Ruleset',
          ruleset,
          path,
          `"${c.key}" lies outside the ruleset's scope and can never match`,
        );
        continue;
      }
      if (!seen.has(limited.key)) {
        seen.add(limited.key);
        clauses.push(limited);
      }
    }
    // A workload named outright but outside the scope is as dead as a clause that is: say so.
    if (scope && scope.size > 0 && actors.workloads.length > 0) {
      const scopeOnly = makeClause(new Map(scope as Map<string, Set<string>>), null, null);
      actors.workloads.forEach((name, i) => {
        const w = workloadByName.get(name);
        if (w && !clauseMatches(scopeOnly, w, userGroupMembers)) {
          warn(
            'Ruleset',
            ruleset,
            `${path}.workloads[${i}]`,
            `workload "${name}" lies outside the ruleset's scope (${scopeOnly.key}) and can never match`,
          );
        }
      });
    }
    clauses.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const ipLists = [...new Set(actors.ipLists.filter((l) => ipListsByName.has(l)))].sort();
    const parts = [...clauses.map((c) => c.key), ...ipLists.map((l) => `ip-list:${l}`)];
    const key = parts.join(' | ');
    // Rules name the same few lists over and over: each combination's union is made once.
    const listsKey = JSON.stringify(ipLists);
    let ipAddresses = unions.get(listsKey);
    if (!ipAddresses) {
      ipAddresses = AddressSet.union(
        ipLists.map((l) => ipListAddresses.get(l) ?? AddressSet.EMPTY),
      );
      unions.set(listsKey, ipAddresses);
    }
    return {
      clauses,
      ipLists,
      ipAddresses,
      key: key || 'nothing',
      label: key.replaceAll('&', ' & ') || 'nothing',
    };
  };

  const resolveServices = (rule: Rule, ruleset: Ruleset, path: string): 'all' | ServicePort[] => {
    if (rule.services === 'all') return 'all';
    const ports: ServicePort[] = [];
    rule.services.forEach((ref, i) => {
      if (ref.kind === 'inline') {
        const problem = servicePortProblem(ref.port);
        if (problem)
          error('Ruleset', ruleset.name, `${path}.services[${i}].${problem.path}`, problem.message);
        ports.push(ref.port);
      } else {
        const svc = services.get(ref.name);
        if (!svc)
          error('Ruleset', ruleset.name, `${path}.services[${i}]`, `unknown service "${ref.name}"`);
        else ports.push(...svc.ports);
      }
    });
    return ports;
  };

  const rules: ResolvedRule[] = [];
  for (const ruleset of policy.rulesets) {
    const scope = selectorLabels(ruleset.scope, 'Ruleset', ruleset.name, 'scope');
    const ruleNames = new Set<string>();
    ruleset.rules.forEach((rule, i) => {
      const path = `rules[${i}]`;
      if (ruleNames.has(rule.name))
        error(
          'Ruleset',
          ruleset.name,
          `${path}.name`,
          `rule "${rule.name}" is defined more than once`,
        );
      ruleNames.add(rule.name);
      const sources = resolveActors(
        rule.sources,
        rule.extraScope ? null : scope,
        ruleset.name,
        `${path}.sources`,
      );
      const destinations = resolveActors(
        rule.destinations,
        scope,
        ruleset.name,
        `${path}.destinations`,
      );
      rules.push({
        id: `${ruleset.name}/${rule.name}`,
        ruleset: ruleset.name,
        rule: rule.name,
        action: rule.action,
        order: rules.length,
        sources,
        destinations,
        services: resolveServices(rule, ruleset, path),
      });
    });
  }

  const alwaysAllowed: ResolvedAlwaysAllowed[] = [];
  policy.settings.alwaysAllowed.forEach((a, i) => {
    a.ports.forEach((port, j) => {
      const problem = servicePortProblem(port);
      if (problem)
        error(
          'Settings',
          'settings',
          `alwaysAllowed[${i}].ports[${j}].${problem.path}`,
          problem.message,
        );
    });
    try {
      alwaysAllowed.push({
        name: a.name,
        addresses: AddressSet.of(a.addresses),
        ports: a.ports,
        direction: a.direction,
      });
    } catch (e) {
      error('Settings', 'settings', `alwaysAllowed[${i}].addresses`, (e as Error).message);
    }
  });

  if (issues.some((i) => i.severity === 'error')) throw new PolicyError(issues);

  return {
    source: policy,
    workloads: policy.workloads,
    workloadByName,
    rules,
    userGroupMembers,
    alwaysAllowed,
    warnings: issues,
    workloadAt(address: string): Workload | undefined {
      const { family, value } = addressValue(address);
      return owners[family].get(value);
    },
  };
}

/**
 * The resolved policy after some workloads changed (labels, mode, addresses, users), without
 * resolving the rules again: rules do not depend on workloads' labels, so they are shared.
 * Each changed workload replaces the workload of the same name; the result equals
 * `resolvePolicy` of the policy with those workloads replaced (same order). Throws
 * PolicyError for an unknown name or an address that is invalid or owned by another workload.
 */
export function updateWorkloads(
  resolved: ResolvedPolicy,
  changed: readonly Workload[],
): ResolvedPolicy {
  if (changed.length === 0) return resolved;
  const issues: PolicyIssue[] = [];
  const error: Report = (kind, name, path, message) =>
    issues.push({ severity: 'error', kind, name, path, message });
  const replacement = new Map<string, Workload>();
  for (const w of changed) {
    if (!resolved.workloadByName.has(w.name))
      error('Workload', w.name, '', 'is not a workload of this policy');
    else replacement.set(w.name, w);
  }
  const workloads = resolved.workloads.slice();
  if (replacement.size > 0) {
    for (let i = 0; i < workloads.length; i++) {
      const w = replacement.get(workloads[i]!.name);
      if (w) workloads[i] = w;
    }
  }
  const workloadByName = new Map(resolved.workloadByName);
  for (const w of replacement.values()) workloadByName.set(w.name, w);

  // Address ownership: an overlay of the changed workloads' addresses over the previous owners.
  const base = resolved;
  const released: Record<IpFamily, Set<bigint>> = { 4: new Set(), 6: new Set() };
  const claimed: Record<IpFamily, Map<bigint, Workload>> = { 4: new Map(), 6: new Map() };
  for (const w of replacement.values()) {
    const old = resolved.workloadByName.get(w.name)!;
    for (const a of old.addresses) {
      const { family, value } = addressValue(a);
      released[family].add(value);
    }
  }
  for (const w of replacement.values()) {
    w.addresses.forEach((a, i) => {
      const parsed = ownAddress(w, a, i, error);
      if (!parsed) return;
      const claimer = claimed[parsed.family].get(parsed.value);
      let other = claimer;
      if (!other && !released[parsed.family].has(parsed.value)) other = base.workloadAt(a);
      if (other && other !== w && other.name !== w.name) {
        error(
          'Workload',
          w.name,
          `addresses[${i}]`,
          `${a} is also an address of workload "${other.name}"`,
        );
      } else if (!claimer) {
        claimed[parsed.family].set(parsed.value, w);
      }
    });
  }
  if (issues.length > 0) throw new PolicyError(issues);

  return {
    ...resolved,
    source: { ...resolved.source, workloads },
    workloads,
    workloadByName,
    workloadAt(address: string): Workload | undefined {
      const { family, value } = addressValue(address);
      const mine = claimed[family].get(value);
      if (mine) return mine;
      if (released[family].has(value)) return undefined;
      const owner = base.workloadAt(address);
      return owner ? (workloadByName.get(owner.name) ?? owner) : undefined;
    },
  };
}

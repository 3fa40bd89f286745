/**
 * A small builder for hand-made policies in tests: the policy reads like the YAML a person
 * would write, without the loader in the way.
 *
 *   const p = new PolicyBuilder()
 *     .workload('web', '10.0.0.1', { role: 'web' }, 'full')
 *     .workload('db', '10.0.0.2', { role: 'db' }, 'full')
 *     .ruleset('app', {}, [rule('web-to-db', 'allow', labels({ role: 'web' }), labels({ role: 'db' }), ['3306/tcp'])])
 *     .resolve();
 *   decide(p, flow(p, 'web', 'db', '3306/tcp'));
 */
import { decide, endpoint, type Flow, type FlowDecision } from '../../src/policy/decide.js';
import {
  emptyActors,
  type Actors,
  type AlwaysAllowed,
  type EnforcementMode,
  type LabelGroup,
  type LabelSelector,
  type Policy,
  type Rule,
  type RuleAction,
  type RuleServices,
  type Ruleset,
  type Service,
  type ServicePort,
  type ServiceRef,
  type TrafficDirection,
  type Workload,
} from '../../src/policy/model.js';
import { resolvePolicy, type ResolvedPolicy } from '../../src/policy/resolve.js';

// ---- services ---------------------------------------------------------------------------

/**
 * One service port from its short spelling: `443/tcp`, `8000-8080/udp`, `icmp`, `icmp/8`,
 * `icmpv6/128`; a transport port may name its process: `3306/tcp@mysqld`.
 */
export function port(text: string): ServicePort {
  const icmp = /^(icmp|icmpv6)(?:\/(\d+))?$/.exec(text);
  if (icmp) {
    const proto = icmp[1] as 'icmp' | 'icmpv6';
    return icmp[2] === undefined ? { proto } : { proto, icmpType: Number(icmp[2]) };
  }
  const m = /^(\d+)(?:-(\d+))?\/(tcp|udp)(?:@(.+))?$/.exec(text);
  if (!m) throw new Error(`test bug: ${JSON.stringify(text)} is not a port spelling`);
  const from = Number(m[1]);
  const ports = { from, to: m[2] === undefined ? from : Number(m[2]) };
  const proto = m[3] as 'tcp' | 'udp';
  return m[4] === undefined ? { proto, ports } : { proto, ports, process: m[4] };
}

/** A rule's services: `'all'`, or short port spellings and (anything else) service names. */
export function services(list: 'all' | readonly string[]): RuleServices {
  if (list === 'all') return 'all';
  return list.map((s): ServiceRef =>
    /[/]|^icmp/.test(s) ? { kind: 'inline', port: port(s) } : { kind: 'named', name: s },
  );
}

// ---- actors -----------------------------------------------------------------------------

export function selector(
  labelsByKey: Record<string, string | readonly string[]>,
  labelGroups: readonly string[] = [],
): LabelSelector {
  const out: Record<string, readonly string[]> = {};
  for (const [k, v] of Object.entries(labelsByKey)) out[k] = typeof v === 'string' ? [v] : v;
  return { labels: out, labelGroups };
}

export const all = (): Actors => ({ ...emptyActors(), allWorkloads: true });
export const labels = (
  byKey: Record<string, string | readonly string[]>,
  labelGroups: readonly string[] = [],
): Actors => ({
  ...emptyActors(),
  selector: selector(byKey, labelGroups),
});
export const labelGroups = (...names: string[]): Actors => ({
  ...emptyActors(),
  selector: selector({}, names),
});
export const workloads = (...names: string[]): Actors => ({ ...emptyActors(), workloads: names });
export const ipLists = (...names: string[]): Actors => ({ ...emptyActors(), ipLists: names });
export const userGroups = (...names: string[]): Actors => ({ ...emptyActors(), userGroups: names });
export const nobody = (): Actors => emptyActors();

/** The union of several actor lists (one side of a rule naming several kinds of actor). */
export function anyOf(...parts: Actors[]): Actors {
  const selectors = parts.map((p) => p.selector).filter((s): s is LabelSelector => s !== null);
  if (selectors.length > 1)
    throw new Error('test bug: a side has one label selector; write it as one');
  return {
    allWorkloads: parts.some((p) => p.allWorkloads),
    selector: selectors[0] ?? null,
    workloads: parts.flatMap((p) => p.workloads),
    ipLists: parts.flatMap((p) => p.ipLists),
    userGroups: parts.flatMap((p) => p.userGroups),
  };
}

// ---- rules ------------------------------------------------------------------------------

export function rule(
  name: string,
  action: RuleAction,
  sources: Actors,
  destinations: Actors,
  serviceList: 'all' | readonly string[] = 'all',
  options: { extraScope?: boolean } = {},
): Rule {
  return {
    name,
    action,
    sources,
    destinations,
    services: services(serviceList),
    extraScope: options.extraScope ?? false,
  };
}

// ---- the policy -------------------------------------------------------------------------

export interface WorkloadOptions {
  readonly managed?: boolean;
  readonly users?: readonly string[];
  /** More addresses after the first. */
  readonly more?: readonly string[];
}

export class PolicyBuilder {
  private readonly policy = {
    workloads: [] as Workload[],
    labelGroups: [] as LabelGroup[],
    ipLists: [] as { name: string; include: string[]; exclude: string[] }[],
    userGroups: [] as { name: string; members: string[] }[],
    services: [] as Service[],
    rulesets: [] as Ruleset[],
    alwaysAllowed: [] as AlwaysAllowed[],
  };

  workload(
    name: string,
    address: string,
    workloadLabels: Record<string, string> = {},
    mode: EnforcementMode = 'full',
    options: WorkloadOptions = {},
  ): this {
    this.policy.workloads.push({
      name,
      addresses: [address, ...(options.more ?? [])],
      labels: workloadLabels,
      mode,
      managed: options.managed ?? true,
      users: options.users ?? [],
    });
    return this;
  }

  /** A workload with no agent: it enforces nothing, but rules may still name it. */
  unmanaged(name: string, address: string, workloadLabels: Record<string, string> = {}): this {
    return this.workload(name, address, workloadLabels, 'full', { managed: false });
  }

  labelGroup(
    name: string,
    key: string,
    values: readonly string[],
    groups: readonly string[] = [],
  ): this {
    this.policy.labelGroups.push({ name, key, values, groups });
    return this;
  }

  ipList(name: string, include: readonly string[], exclude: readonly string[] = []): this {
    this.policy.ipLists.push({ name, include: [...include], exclude: [...exclude] });
    return this;
  }

  userGroup(name: string, members: readonly string[]): this {
    this.policy.userGroups.push({ name, members: [...members] });
    return this;
  }

  service(name: string, ports: readonly string[]): this {
    this.policy.services.push({ name, ports: ports.map(port) });
    return this;
  }

  /** A ruleset; `scope` `{}` (or null) is the whole estate. */
  ruleset(
    name: string,
    scope: Record<string, string | readonly string[]> | LabelSelector | null,
    rules: readonly Rule[],
  ): this {
    const isSelector = (s: object): s is LabelSelector => 'labels' in s && 'labelGroups' in s;
    const sel = scope === null ? null : isSelector(scope) ? scope : selector(scope);
    this.policy.rulesets.push({ name, scope: sel, rules });
    return this;
  }

  /** Rules in a ruleset whose scope is the whole estate. */
  rules(...rules: Rule[]): this {
    return this.ruleset(`rs${this.policy.rulesets.length}`, null, rules);
  }

  alwaysAllowed(
    name: string,
    addresses: readonly string[],
    direction: TrafficDirection,
    ports: readonly string[] = [],
  ): this {
    this.policy.alwaysAllowed.push({ name, addresses, direction, ports: ports.map(port) });
    return this;
  }

  build(): Policy {
    const p = this.policy;
    return {
      workloads: p.workloads,
      labelGroups: p.labelGroups,
      ipLists: p.ipLists,
      userGroups: p.userGroups,
      services: p.services,
      rulesets: p.rulesets,
      settings: { alwaysAllowed: p.alwaysAllowed },
    };
  }

  resolve(): ResolvedPolicy {
    return resolvePolicy(this.build());
  }
}

// ---- flows ------------------------------------------------------------------------------

/**
 * A flow between two endpoints, each a workload name or an address (an address owned by a
 * workload is that workload, as the kernel would see it); the service in short spelling.
 */
export function flow(
  policy: ResolvedPolicy,
  from: string,
  to: string,
  service: string,
  process?: string,
): Flow {
  const p = port(service);
  const base = {
    source: endpoint(policy, from),
    destination: endpoint(policy, to),
    proto: p.proto,
  };
  if ('ports' in p)
    return { ...base, port: p.ports.from, ...(process === undefined ? {} : { process }) };
  return p.icmpType === undefined ? base : { ...base, icmpType: p.icmpType };
}

/** The decision for a flow, as `flow()` builds it. */
export function verdict(
  policy: ResolvedPolicy,
  from: string,
  to: string,
  service: string,
  process?: string,
): FlowDecision {
  return decide(policy, flow(policy, from, to, service, process));
}

/** `allowed by allow rule rs0/a` and the like: one string that a table row can hold. */
export function summary(d: FlowDecision): string {
  const by = d.decidedBy;
  switch (by.kind) {
    case 'rule':
      return `${d.decision} by ${by.ruleId}`;
    case 'default':
      return `${d.decision} by default`;
    case 'always-allowed':
      return `${d.decision} by always-allowed ${by.name}`;
    default:
      return `${d.decision} by ${by.kind}`;
  }
}

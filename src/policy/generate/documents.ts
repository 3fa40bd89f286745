/**
 * The draft as policy-as-code: the YAML documents (`kind: Ruleset`, `kind: IpList`) a person
 * reviews, commits beside the rest of the policy, and applies with `bulkhead apply -f`.
 * The spelling is the one src/policy-as-code reads (`443/tcp`, `sources: all`...), so the
 * documents parse back to the same model.
 */
import { stringify } from 'yaml';
import type {
  Actors,
  IpList,
  LabelSelector,
  Rule,
  RuleServices,
  Ruleset,
  ServicePort,
} from '../model.js';

type Doc = Record<string, unknown>;

function selectorLabels(sel: LabelSelector): Doc {
  return Object.fromEntries(
    Object.entries(sel.labels).map(([k, vs]) => [k, vs.length === 1 ? vs[0] : [...vs]]),
  );
}

function actorsDocument(a: Actors): 'all' | Doc {
  const labels = a.selector?.labels ?? {};
  const groups = a.selector?.labelGroups ?? [];
  const hasLabels = Object.keys(labels).length > 0;
  const others = a.workloads.length + a.ipLists.length + a.userGroups.length;
  if (a.allWorkloads && !hasLabels && groups.length === 0 && others === 0) return 'all';
  const doc: Doc = {};
  if (a.allWorkloads) doc.allWorkloads = true;
  if (hasLabels) doc.labels = selectorLabels({ labels, labelGroups: groups });
  if (groups.length > 0) doc.labelGroups = [...groups];
  if (a.workloads.length > 0) doc.workloads = [...a.workloads];
  if (a.ipLists.length > 0) doc.ipLists = [...a.ipLists];
  if (a.userGroups.length > 0) doc.userGroups = [...a.userGroups];
  return doc;
}

function portDocument(p: ServicePort): string | Doc {
  if (!('ports' in p)) return p.icmpType === undefined ? p.proto : `${p.proto}/${p.icmpType}`;
  const { from, to } = p.ports;
  const range = from === to ? `${from}` : `${from}-${to}`;
  if (p.process === undefined) return `${range}/${p.proto}`;
  return { proto: p.proto, port: from === to ? from : range, process: p.process };
}

function servicesDocument(s: RuleServices): 'all' | (string | Doc)[] {
  if (s === 'all') return 'all';
  return s.map((ref) => (ref.kind === 'named' ? ref.name : portDocument(ref.port)));
}

function ruleDocument(r: Rule): Doc {
  const doc: Doc = { name: r.name };
  if (r.action !== 'allow') doc.action = r.action;
  doc.sources = actorsDocument(r.sources);
  doc.destinations = actorsDocument(r.destinations);
  doc.services = servicesDocument(r.services);
  if (r.extraScope) doc.extraScope = true;
  if (r.description !== undefined) doc.description = r.description;
  return doc;
}

export function rulesetDocument(rs: Ruleset): Doc {
  const doc: Doc = { kind: 'Ruleset', name: rs.name };
  if (rs.description !== undefined) doc.description = rs.description;
  const scope = rs.scope;
  if (scope && (Object.keys(scope.labels).length > 0 || scope.labelGroups.length > 0)) {
    const s: Doc = {};
    if (Object.keys(scope.labels).length > 0) s.labels = selectorLabels(scope);
    if (scope.labelGroups.length > 0) s.labelGroups = [...scope.labelGroups];
    doc.scope = s;
  }
  doc.rules = rs.rules.map(ruleDocument);
  return doc;
}

export function ipListDocument(l: IpList): Doc {
  const doc: Doc = { kind: 'IpList', name: l.name, include: [...l.include] };
  if (l.exclude.length > 0) doc.exclude = [...l.exclude];
  return doc;
}

/** IP lists first (the rulesets name them), then rulesets. */
export function draftDocuments(draft: {
  readonly rulesets: readonly Ruleset[];
  readonly ipLists: readonly IpList[];
}): Doc[] {
  return [...draft.ipLists.map(ipListDocument), ...draft.rulesets.map(rulesetDocument)];
}

/** The documents as one YAML file, documents separated by `---`. */
export function draftYaml(draft: {
  readonly rulesets: readonly Ruleset[];
  readonly ipLists: readonly IpList[];
}): string {
  return draftDocuments(draft)
    .map((d) => stringify(d, { lineWidth: 0 }))
    .join('---\n');
}

/**
 * The policy generator (issue 6, "Automated segmentation"): from observed flows, the estate
 * and a granularity, a draft allow-list policy in labels that admits what was observed and
 * nothing the granularity does not imply, with the evidence for every rule.
 *
 * 1. group the flow summaries by (source, destination, service);          observe.ts
 * 2. resolve their ends to workloads or unmanaged addresses;               endpoints.ts
 * 3. keep those with an end in scope;                                      scope.ts
 * 4. ask decide() what the existing policy does with them, in full mode:   judge.ts
 *    allowed -> nothing to write; blocked by a deny rule -> left blocked;
 * 5. place the rest in rules at the granularity (or report missing labels); placement.ts
 * 6. build the minimal named rules and IP lists with their evidence;       build.ts
 * 7. resolve the estate with the draft (it must be valid policy) and ask
 *    decide() again: the coverage is what decide() says, not bookkeeping;  judge.ts
 * 8. report generated allow rules that meet an existing deny rule.         overrides.ts
 *
 * Pure and deterministic: the same input in any order gives the same output.
 */
import { formatDecidedBy, type DecidedBy } from '../decide.js';
import type { Policy } from '../model.js';
import { buildDraft, DraftBook, type Part } from './build.js';
import { EndpointResolver, type Endpoint } from './endpoints.js';
import { ProblemList } from './errors.js';
import { FullEnforcementJudge, type Verdict } from './judge.js';
import { sanitizeName } from './naming.js';
import { groupFlows, type GroupedFlows } from './observe.js';
import { overriddenDenies } from './overrides.js';
import { PeerLists, type PeerList } from './peers.js';
import { Placer } from './placement.js';
import { scopeFilter } from './scope.js';
import { TripleNumbers } from './triples.js';
import { Examples, frozenTally, newTally, type MutableTally } from './tally.js';
import {
  DEFAULT_LABEL_KEYS,
  type AlreadyAllowed,
  type BlockedByExisting,
  type GenerateInput,
  type GeneratedPolicy,
  type Unlabelled,
  type UncoveredFlow,
} from './types.js';

/**
 * The flows with an end in scope, by position: each one's number among the grouped flows and
 * its ends' ordinals among the resolver's ends.
 */
interface InScope {
  readonly flows: readonly number[];
  readonly sources: readonly number[];
  readonly destinations: readonly number[];
  /** Why no rule was written for it, when none was. */
  readonly excluded: (string | undefined)[];
}

/**
 * What the existing policy does with the flows of one verdict, read once per verdict, with
 * the report line its flows go to.
 */
type Outcome =
  | { readonly kind: 'allowed'; readonly line: { by: string } }
  | {
      readonly kind: 'blocked';
      readonly line: { rule: string; action: 'deny' | 'override-deny' };
    }
  | { readonly kind: 'open' };

export function generatePolicy(input: GenerateInput): GeneratedPolicy {
  const keys = { ...DEFAULT_LABEL_KEYS, ...input.labelKeys };
  const prefix = sanitizeName(input.namePrefix ?? 'gen');
  // Resolving the estate checks it: a draft added to an invalid policy is no use to anyone.
  const existing = new FullEnforcementJudge(input.estate);
  const inScope = scopeFilter(input.scope, input.estate.labelGroups);

  const grouped = groupFlows(input.flows);
  const resolver = new EndpointResolver(existing.resolved);
  const flows = inScopeFlows(grouped, resolver, inScope);
  const ends = resolver.ends;
  // Per grouped service, the number each judge knows it by.
  const existingServices = grouped.services.map((s) => existing.serviceNumber(s.service));

  const peers = new PeerLists(input.estate.ipLists);
  const placer = new Placer(input.granularity, keys);
  const book = new DraftBook();
  const allowed = new Reports<{ by: string }>();
  const blocked = new Reports<{ rule: string; action: 'deny' | 'override-deny' }>();
  const unlabelled = new Reports<{ workload: string; missing: string[] }>();
  // Verdicts are shared by alike flows: read each once.
  const outcomes: Outcome[] = [];
  const partNumbers = new TripleNumbers(1024);
  const parts: Part[] = [];
  // Made once, not per flow: most flows are placed, and that path needs no closure of its own.
  const peerList = (end: Extract<Endpoint, { kind: 'address' }>): PeerList =>
    peers.listFor(end.address, end.family, end.value);
  for (let k = 0; k < flows.flows.length; k++) {
    const flow = flows.flows[k]!;
    const s = flows.sources[k]!;
    const d = flows.destinations[k]!;
    const service = grouped.serviceIds[flow]!;
    const verdict = existing.verdictNumber(
      ends,
      s,
      d,
      grouped.services[service]!.service,
      existingServices[service]!,
    );
    // Verdicts are numbered in order of first sight, so the array grows by one at a time.
    let outcome = outcomes[verdict];
    if (outcome === undefined) outcomes[verdict] = outcome = outcomeOf(existing.verdict(verdict));
    if (outcome.kind === 'allowed') {
      allowed.add(outcome.line.by, outcome.line, grouped, flow, ends[s]!, ends[d]!);
      continue;
    }
    if (outcome.kind === 'blocked') {
      const { rule, action } = outcome.line;
      flows.excluded[k] = `blocked by existing ${action} rule ${rule}`;
      blocked.add(rule, outcome.line, grouped, flow, ends[s]!, ends[d]!);
      continue;
    }
    const placed = placer.place(ends, s, d, peerList);
    if (placed.missing) {
      flows.excluded[k] = placed.missing
        .map(
          (m) =>
            `workload ${m.workload.name} lacks label${m.keys.length > 1 ? 's' : ''} ${m.keys.join(', ')}`,
        )
        .join('; ');
      for (const m of placed.missing)
        unlabelled.add(
          m.workload.name,
          { workload: m.workload.name, missing: [...m.keys] },
          grouped,
          flow,
          ends[s]!,
          ends[d]!,
        );
      continue;
    }
    // The part of the rule for this placement and service, by number: no lookup by text.
    const partNumber = partNumbers.number(placed.number, service, 0);
    let part = parts[partNumber];
    if (!part) parts[partNumber] = part = book.part(placed.placement, grouped.services[service]!);
    book.add(part, grouped, flow, ends[s]!, ends[d]!);
  }

  const draft = buildDraft(book, peers, {
    granularity: input.granularity,
    prefix,
    existingRulesets: input.estate.rulesets.map((r) => r.name),
    existingIpLists: input.estate.ipLists.map((l) => l.name),
  });
  const combined: Policy = {
    ...input.estate,
    ipLists: [...input.estate.ipLists, ...draft.ipLists],
    rulesets: [...input.estate.rulesets, ...draft.rulesets],
  };
  const after = new FullEnforcementJudge(combined);

  let inScopeSummaries = 0;
  for (const flow of flows.flows) inScopeSummaries += grouped.summaries[flow]!;
  return {
    granularity: input.granularity,
    rulesets: draft.rulesets,
    ipLists: draft.ipLists,
    evidence: draft.evidence,
    alreadyAllowed: allowed.list((k, t) => ({ by: k.by, ...t }) satisfies AlreadyAllowed),
    blockedByExisting: blocked.list(
      (k, t, examples) => ({ ...k, ...t, examples }) satisfies BlockedByExisting,
    ),
    unlabelled: unlabelled.list((k, t) => ({ ...k, ...t }) satisfies Unlabelled),
    overriddenDenies: overriddenDenies(after.resolved, new Set(draft.rulesets.map((r) => r.name))),
    coverage: coverage(after, grouped, ends, flows),
    counts: {
      flows: grouped.total,
      distinct: grouped.size,
      inScope: inScopeSummaries,
    },
  };
}

function inScopeFlows(
  grouped: GroupedFlows,
  resolver: EndpointResolver,
  inScope: (w: Extract<Endpoint, { kind: 'workload' }>['workload']) => boolean,
): InScope {
  const problems = new ProblemList();
  // Each distinct end once; a flow then finds its ends by index.
  const ends = grouped.peers.map((p) => resolver.resolve(p));
  const ordinals = ends.map((e) => (typeof e === 'string' ? -1 : e.ordinal));
  const inside = ends.map(
    (e) => typeof e !== 'string' && e.kind === 'workload' && inScope(e.workload),
  );
  const out = { flows: [] as number[], sources: [] as number[], destinations: [] as number[] };
  for (let flow = 0; flow < grouped.size; flow++) {
    const sourceId = grouped.sourceIds[flow]!;
    const destinationId = grouped.destinationIds[flow]!;
    const source = ordinals[sourceId]!;
    const destination = ordinals[destinationId]!;
    if (source < 0 || destination < 0) {
      const at = `flows[${grouped.firstIndexes[flow]!}]`;
      if (source < 0) problems.add(`${at}.source: ${ends[sourceId] as string}`);
      if (destination < 0) problems.add(`${at}.destination: ${ends[destinationId] as string}`);
      continue;
    }
    if (inside[sourceId] || inside[destinationId]) {
      out.flows.push(flow);
      out.sources.push(source);
      out.destinations.push(destination);
    }
  }
  problems.throwIfAny();
  return { ...out, excluded: new Array<string | undefined>(out.flows.length) };
}

/** A flow as a reviewer reads it among the examples: `web-1 -> api-2 8080/tcp`. */
function exampleText(source: Endpoint, destination: Endpoint, service: string): string {
  return `${source.text} -> ${destination.text} ${service}`;
}

/** What the existing policy does with a verdict's flows: allow them, block them, or neither. */
function outcomeOf(verdict: Verdict): Outcome {
  if (verdict.decision === 'allowed') return { kind: 'allowed', line: { by: allowedBy(verdict) } };
  const denier = denyingRule(verdict);
  return denier
    ? { kind: 'blocked', line: { rule: denier.ruleId, action: denier.action } }
    : { kind: 'open' };
}

/** What allowed a flow, e.g. `allow rule shop/web-to-api`; both sides when they differ. */
function allowedBy(d: Verdict): string {
  const sides = [d.inbound, d.outbound].filter((j) => j !== null);
  if (sides.length === 0) return formatDecidedBy(d.decidedBy);
  return [...new Set(sides.map((j) => formatDecidedBy(j.decidedBy)))].join(' and ');
}

/** The existing deny or override-deny rule that blocks a flow on some side, if one does. */
function denyingRule(d: Verdict): { ruleId: string; action: 'deny' | 'override-deny' } | null {
  for (const j of [d.inbound, d.outbound]) {
    const by: DecidedBy | undefined = j?.outcome === 'block' ? j.decidedBy : undefined;
    if (by?.kind === 'rule' && by.action !== 'allow')
      return { ruleId: by.ruleId, action: by.action };
  }
  return null;
}

function coverage(
  after: FullEnforcementJudge,
  grouped: GroupedFlows,
  ends: readonly Endpoint[],
  flows: InScope,
): GeneratedPolicy['coverage'] {
  const total = { flows: 0, connections: 0 };
  const ok = { flows: 0, connections: 0 };
  const notAllowed: UncoveredFlow[] = [];
  const services = grouped.services.map((s) => after.serviceNumber(s.service));
  for (let k = 0; k < flows.flows.length; k++) {
    const flow = flows.flows[k]!;
    const summaries = grouped.summaries[flow]!;
    const connections = grouped.connections[flow]!;
    total.flows += summaries;
    total.connections += connections;
    const service = grouped.serviceIds[flow]!;
    const s = flows.sources[k]!;
    const d = flows.destinations[k]!;
    const v = after.verdictNumber(
      ends,
      s,
      d,
      grouped.services[service]!.service,
      services[service]!,
    );
    const verdict = after.verdict(v);
    if (verdict.decision === 'allowed') {
      ok.flows += summaries;
      ok.connections += connections;
      continue;
    }
    notAllowed.push({
      source: ends[s]!.text,
      destination: ends[d]!.text,
      service: grouped.services[service]!.text,
      ...grouped.tally(flow),
      decision: verdict.decision,
      // A flow the generator wrote a rule for and decide() still blocks is a generator bug:
      // say what decide() said, so it shows.
      reason: flows.excluded[k] ?? `not admitted: ${formatDecidedBy(verdict.decidedBy)}`,
    });
  }
  notAllowed.sort(
    (a, b) =>
      b.connections - a.connections ||
      compare(a.source, b.source) ||
      compare(a.destination, b.destination) ||
      compare(a.service, b.service),
  );
  return {
    flows: { inScope: total.flows, allowed: ok.flows },
    connections: { inScope: total.connections, allowed: ok.connections },
    share: total.flows === 0 ? 1 : ok.flows / total.flows,
    notAllowed,
  };
}

/** Report lines keyed by what they are about, each with its tally and examples. */
class Reports<K extends object> {
  private readonly lines = new Map<string, { key: K; tally: MutableTally; examples: Examples }>();

  /** `id` identifies the line (equal ids, equal keys); lines are listed in id order. */
  add(
    id: string,
    key: K,
    flows: GroupedFlows,
    flow: number,
    source: Endpoint,
    destination: Endpoint,
  ): void {
    let line = this.lines.get(id);
    if (!line) this.lines.set(id, (line = { key, tally: newTally(), examples: new Examples() }));
    flows.addTo(line.tally, flow);
    const c = flows.connections[flow]!;
    if (line.examples.mayKeep(c))
      line.examples.add(exampleText(source, destination, flows.serviceOf(flow).text), c);
  }

  list<T>(make: (key: K, tally: ReturnType<typeof frozenTally>, examples: string[]) => T): T[] {
    return [...this.lines]
      .sort(([a], [b]) => compare(a, b))
      .map(([, l]) => make(l.key, frozenTally(l.tally), l.examples.list()));
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

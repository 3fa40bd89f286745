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
import { buildDraft, DraftBook } from './build.js';
import { EndpointResolver, type Endpoint } from './endpoints.js';
import { ProblemList } from './errors.js';
import { FullEnforcementJudge, type Verdict } from './judge.js';
import { sanitizeName } from './naming.js';
import { groupFlows, type DistinctFlow, type GroupedFlows } from './observe.js';
import { overriddenDenies } from './overrides.js';
import { PeerLists, type PeerList } from './peers.js';
import { Placer } from './placement.js';
import { scopeFilter } from './scope.js';
import { addTally, Examples, frozenTally, newTally, type MutableTally } from './tally.js';
import {
  DEFAULT_LABEL_KEYS,
  type AlreadyAllowed,
  type BlockedByExisting,
  type GenerateInput,
  type GeneratedPolicy,
  type Unlabelled,
  type UncoveredFlow,
} from './types.js';

interface InScopeFlow {
  readonly flow: DistinctFlow;
  readonly source: Endpoint;
  readonly destination: Endpoint;
  /** Why no rule was written for it, when none was. */
  excluded?: string;
}

export function generatePolicy(input: GenerateInput): GeneratedPolicy {
  const keys = { ...DEFAULT_LABEL_KEYS, ...input.labelKeys };
  const prefix = sanitizeName(input.namePrefix ?? 'gen');
  // Resolving the estate checks it: a draft added to an invalid policy is no use to anyone.
  const existing = new FullEnforcementJudge(input.estate);
  const inScope = scopeFilter(input.scope, input.estate.labelGroups);

  const grouped = groupFlows(input.flows);
  const flows = inScopeFlows(grouped, new EndpointResolver(existing.resolved), inScope);

  const peers = new PeerLists(input.estate.ipLists);
  const placer = new Placer(input.granularity, keys);
  const book = new DraftBook();
  const allowed = new Reports<{ by: string }>();
  const blocked = new Reports<{ rule: string; action: 'deny' | 'override-deny' }>();
  const unlabelled = new Reports<{ workload: string; missing: string[] }>();
  // Verdicts are shared by alike flows: read each once.
  const allowedText = new Map<Verdict, string>();
  const deniers = new Map<Verdict, ReturnType<typeof denyingRule>>();
  // Made once, not per flow: most flows are placed, and that path needs no closure of its own.
  const peerList = (end: Extract<Endpoint, { kind: 'address' }>): PeerList =>
    peers.listFor(end.address, end.family, end.value);
  for (const f of flows) {
    const { flow, source, destination } = f;
    const verdict = existing.decide(source, destination, flow.service);
    if (verdict.decision === 'allowed') {
      let by = allowedText.get(verdict);
      if (by === undefined) allowedText.set(verdict, (by = allowedBy(verdict)));
      allowed.add(by, { by }, f);
      continue;
    }
    let denier = deniers.get(verdict);
    if (denier === undefined) deniers.set(verdict, (denier = denyingRule(verdict)));
    if (denier) {
      f.excluded = `blocked by existing ${denier.action} rule ${denier.ruleId}`;
      blocked.add(denier.ruleId, { rule: denier.ruleId, action: denier.action }, f);
      continue;
    }
    const placed = placer.place(source, destination, peerList);
    if (placed.missing) {
      f.excluded = placed.missing
        .map(
          (m) =>
            `workload ${m.workload.name} lacks label${m.keys.length > 1 ? 's' : ''} ${m.keys.join(', ')}`,
        )
        .join('; ');
      for (const m of placed.missing)
        unlabelled.add(m.workload.name, { workload: m.workload.name, missing: [...m.keys] }, f);
      continue;
    }
    book.add(placed.placement, flow, source, destination);
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
    coverage: coverage(after, flows),
    counts: {
      flows: grouped.total,
      distinct: grouped.distinct.length,
      inScope: flows.reduce((n, f) => n + f.flow.tally.flows, 0),
    },
  };
}

function inScopeFlows(
  grouped: GroupedFlows,
  resolver: EndpointResolver,
  inScope: (w: Extract<Endpoint, { kind: 'workload' }>['workload']) => boolean,
): InScopeFlow[] {
  const problems = new ProblemList();
  // Each distinct end once; a flow then finds its ends by index.
  const ends = grouped.peers.map((p) => resolver.resolve(p));
  const inside = ends.map(
    (e) => typeof e !== 'string' && e.kind === 'workload' && inScope(e.workload),
  );
  const out: InScopeFlow[] = [];
  for (const flow of grouped.distinct) {
    const source = ends[flow.sourceId]!;
    const destination = ends[flow.destinationId]!;
    if (typeof source === 'string') problems.add(`flows[${flow.index}].source: ${source}`);
    if (typeof destination === 'string')
      problems.add(`flows[${flow.index}].destination: ${destination}`);
    if (typeof source === 'string' || typeof destination === 'string') continue;
    if (inside[flow.sourceId] || inside[flow.destinationId])
      out.push({ flow, source, destination });
  }
  problems.throwIfAny();
  return out;
}

/** A flow as a reviewer reads it among the examples: `web-1 -> api-2 8080/tcp`. */
function exampleText(f: InScopeFlow): string {
  return `${f.source.text} -> ${f.destination.text} ${f.flow.serviceText}`;
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
  flows: readonly InScopeFlow[],
): GeneratedPolicy['coverage'] {
  const total = { flows: 0, connections: 0 };
  const ok = { flows: 0, connections: 0 };
  const notAllowed: UncoveredFlow[] = [];
  for (const f of flows) {
    const t = f.flow.tally;
    total.flows += t.flows;
    total.connections += t.connections;
    const d = after.decide(f.source, f.destination, f.flow.service);
    if (d.decision === 'allowed') {
      ok.flows += t.flows;
      ok.connections += t.connections;
      continue;
    }
    notAllowed.push({
      source: f.source.text,
      destination: f.destination.text,
      service: f.flow.serviceText,
      ...frozenTally(t),
      decision: d.decision,
      // A flow the generator wrote a rule for and decide() still blocks is a generator bug:
      // say what decide() said, so it shows.
      reason: f.excluded ?? `not admitted: ${formatDecidedBy(d.decidedBy)}`,
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
  add(id: string, key: K, f: InScopeFlow): void {
    let line = this.lines.get(id);
    if (!line) this.lines.set(id, (line = { key, tally: newTally(), examples: new Examples() }));
    addTally(line.tally, f.flow.tally);
    const c = f.flow.tally.connections;
    if (line.examples.mayKeep(c)) line.examples.add(exampleText(f), c);
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

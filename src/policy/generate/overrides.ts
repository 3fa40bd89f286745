/**
 * Allow beats deny: a generated allow rule that meets an existing `deny` rule (same traffic
 * possible on both) would quietly lift part of what a person denied. The generator never
 * writes an allow for a flow a deny rule blocks, but a broad rule (a tier rule on any
 * service, a ring-fence) can still cover other, unobserved traffic that the deny was for.
 * Such pairs are reported for the reviewer rather than silently applied.
 */
import type { Workload } from '../model.js';
import {
  clauseMatches,
  type ResolvedActors,
  type ResolvedPolicy,
  type ResolvedRule,
  type WorkloadClause,
} from '../resolve.js';
import { servicesOverlap } from './services.js';
import type { OverriddenDeny } from './types.js';

export function overriddenDenies(
  policy: ResolvedPolicy,
  generated: ReadonlySet<string>,
): OverriddenDeny[] {
  const members = policy.userGroupMembers;
  const selected = (side: ResolvedActors): SelectedWorkloads =>
    new SelectedWorkloads(
      side.clauses.length === 0
        ? []
        : policy.workloads.filter((w) => side.clauses.some((c) => clauseMatches(c, w, members))),
      members,
    );
  const denies = policy.rules
    .filter((r) => r.action === 'deny' && !generated.has(r.ruleset))
    .map((r) => ({
      rule: r,
      sources: selected(r.sources),
      destinations: selected(r.destinations),
    }));
  if (denies.length === 0) return [];
  // Two sides meet if one workload is selected by both, or their IP lists share an address.
  // (A workload whose own address lies in a deny's IP list is not looked for: workloads
  // sit in private ranges that the lists a deny names rarely hold.)
  const meet = (g: ResolvedActors, d: ResolvedActors, dWorkloads: SelectedWorkloads): boolean =>
    g.ipAddresses.meets(d.ipAddresses) || dWorkloads.anySelectedBy(g.clauses);
  const out: OverriddenDeny[] = [];
  for (const g of policy.rules) {
    if (!generated.has(g.ruleset)) continue;
    for (const d of denies) {
      if (
        overlaps(g, d.rule) &&
        meet(g.sources, d.rule.sources, d.sources) &&
        meet(g.destinations, d.rule.destinations, d.destinations)
      )
        out.push({ rule: g.id, existingRule: d.rule.id });
    }
  }
  return out;
}

/**
 * The workloads a side of a deny rule selects, filed by label, so that whether a generated
 * rule's clause selects one of them is asked of the few that carry the clause's labels, not of
 * every workload the deny covers (thousands, for each of thousands of generated rules).
 */
class SelectedWorkloads {
  /** key -> value -> the workloads labelled so. */
  private readonly byLabel = new Map<string, Map<string, Workload[]>>();

  constructor(
    private readonly workloads: readonly Workload[],
    private readonly members: ReadonlyMap<string, ReadonlySet<string>>,
  ) {
    for (const w of workloads) {
      for (const [k, v] of Object.entries(w.labels)) {
        let values = this.byLabel.get(k);
        if (!values) this.byLabel.set(k, (values = new Map<string, Workload[]>()));
        const list = values.get(v);
        if (list) list.push(w);
        else values.set(v, [w]);
      }
    }
  }

  /** Whether some clause selects one of the workloads. */
  anySelectedBy(clauses: readonly WorkloadClause[]): boolean {
    return clauses.some((c) => this.selectedBy(c));
  }

  private selectedBy(c: WorkloadClause): boolean {
    // A workload the clause selects carries one of its values for each of its keys: the
    // key with the fewest such workloads names all the candidates.
    let candidates: Workload[][] | null = null;
    let count = Infinity;
    for (const [k, values] of c.labels) {
      const byValue = this.byLabel.get(k);
      const lists: Workload[][] = [];
      let n = 0;
      for (const v of values) {
        const list = byValue?.get(v);
        if (list) {
          lists.push(list);
          n += list.length;
        }
      }
      if (n < count) {
        candidates = lists;
        count = n;
      }
    }
    const check = (w: Workload): boolean => clauseMatches(c, w, this.members);
    return candidates ? candidates.some((list) => list.some(check)) : this.workloads.some(check);
  }
}

function overlaps(g: ResolvedRule, d: ResolvedRule): boolean {
  return servicesOverlap(g.services, d.services);
}

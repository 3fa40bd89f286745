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
} from '../resolve.js';
import { servicesOverlap } from './services.js';
import type { OverriddenDeny } from './types.js';

export function overriddenDenies(
  policy: ResolvedPolicy,
  generated: ReadonlySet<string>,
): OverriddenDeny[] {
  const members = policy.userGroupMembers;
  const selected = (side: ResolvedActors): Workload[] =>
    side.clauses.length === 0
      ? []
      : policy.workloads.filter((w) => side.clauses.some((c) => clauseMatches(c, w, members)));
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
  const meet = (g: ResolvedActors, d: ResolvedActors, dWorkloads: readonly Workload[]): boolean =>
    g.ipAddresses.meets(d.ipAddresses) ||
    (g.clauses.length > 0 &&
      dWorkloads.some((w) => g.clauses.some((c) => clauseMatches(c, w, members))));
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

function overlaps(g: ResolvedRule, d: ResolvedRule): boolean {
  return servicesOverlap(g.services, d.services);
}

/**
 * The generation scope: which workloads the draft segments. A flow with at least one end in
 * scope is generated for; a flow with neither is someone else's and ignored.
 */
import type { LabelGroup, LabelSelector, Workload } from '../model.js';
import { GenerationError } from './errors.js';

export type WorkloadFilter = (w: Workload) => boolean;

/**
 * The selector as a predicate: keys ANDed, values of one key ORed, label groups contributing
 * their (nested) values to their key, as in a ruleset's scope. Null or empty: every workload.
 */
export function scopeFilter(
  scope: LabelSelector | null,
  labelGroups: readonly LabelGroup[],
): WorkloadFilter {
  if (!scope) return () => true;
  const wanted = new Map<string, Set<string>>();
  for (const [k, vs] of Object.entries(scope.labels)) wanted.set(k, new Set(vs));
  const groups = new Map(labelGroups.map((g) => [g.name, g]));
  const expand = (name: string, into: Set<string>, seen: Set<string>): void => {
    const g = groups.get(name);
    if (!g) throw new GenerationError([`scope.labelGroups: unknown label group "${name}"`]);
    if (seen.has(name)) return;
    seen.add(name);
    for (const v of g.values) into.add(v);
    for (const child of g.groups) expand(child, into, seen);
  };
  for (const name of scope.labelGroups) {
    const key = groups.get(name)?.key;
    const values = new Set<string>();
    expand(name, values, new Set());
    const existing = wanted.get(key!);
    if (existing) for (const v of values) existing.add(v);
    else wanted.set(key!, values);
  }
  if (wanted.size === 0) return () => true;
  const clauses = [...wanted];
  return (w) => clauses.every(([k, vs]) => vs.has(w.labels[k] ?? '\u0000'));
}

/**
 * A scope as a person types it: `app=payments,env=prod`; repeating a key ORs its values
 * (`app=pay,app=cards`); empty, `all` or `*` is the whole estate (null).
 */
export function parseScope(text: string): LabelSelector | null {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed === 'all' || trimmed === '*') return null;
  const labels: Record<string, string[]> = {};
  const problems: string[] = [];
  for (const part of trimmed.split(',')) {
    const m = /^\s*([^=\s]+)\s*=\s*(\S(?:.*\S)?)\s*$/.exec(part);
    if (!m) {
      problems.push(`scope: ${JSON.stringify(part.trim())} is not key=value`);
      continue;
    }
    (labels[m[1]!] ??= []).push(m[2]!);
  }
  if (problems.length > 0) throw new GenerationError(problems);
  return { labels, labelGroups: [] };
}

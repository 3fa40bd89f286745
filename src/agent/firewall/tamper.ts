/**
 * Tamper detection: is the table in the kernel still the one the agent loaded?
 *
 * Right after every load the agent reads its table back from the kernel and keeps a
 * snapshot of it; later readings are compared with that snapshot. What the kernel changes
 * by itself is left out of the comparison: rule handles, counter values, and the elements
 * of the recording sets (the kernel adds and expires them). Everything else (a set's
 * declaration and elements, a chain's hook and policy, every rule in order) must be equal,
 * so a flushed ruleset, a deleted rule or peer address, an inserted `accept`, or a chain's
 * policy turned to drop are all found.
 *
 * Comparing the kernel with itself, rather than with the script the agent wrote, avoids
 * re-implementing nft's normalisation (`icmp type 8` is listed as `echo-request`).
 *
 * Pure: no I/O.
 */
import type { NftTableListing } from '../parse/nft-json.js';

export interface TableSnapshot {
  /** Set name → canonical declaration (elements excluded). */
  readonly sets: ReadonlyMap<string, string>;
  /** Set name → its elements (canonical), for sets whose elements are ours. */
  readonly elements: ReadonlyMap<string, ReadonlySet<string>>;
  /** Chain name → canonical declaration (type, hook, priority, policy). */
  readonly chains: ReadonlyMap<string, string>;
  /** Chain name → its rules, canonical, in order. */
  readonly rules: ReadonlyMap<string, readonly string[]>;
}

const VOLATILE = new Set(['handle', 'elem', 'family', 'table', 'name']);

/** JSON with keys sorted, counter values dropped, so equal meaning gives equal text. */
function canonical(value: unknown): string {
  return JSON.stringify(normalise(value));
}

function normalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalise);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      // A counter statement's values change with every packet; the statement itself must stay.
      out[key] = key === 'counter' && v && typeof v === 'object' ? 'counter' : normalise(v);
    }
    return out;
  }
  return value;
}

function withoutKeys(
  o: Record<string, unknown>,
  keys: ReadonlySet<string>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (!keys.has(k)) out[k] = v;
  return out;
}

/**
 * The comparable form of a listing; `dynamicSets` names the sets the kernel fills itself.
 * A missing table (null) has no snapshot.
 */
export function snapshotOf(
  listing: NftTableListing | null,
  dynamicSets: ReadonlySet<string>,
): TableSnapshot | null {
  if (!listing) return null;
  const sets = new Map<string, string>();
  const elements = new Map<string, ReadonlySet<string>>();
  for (const s of listing.sets) {
    sets.set(s.name, canonical(withoutKeys(s, VOLATILE)));
    if (!dynamicSets.has(s.name)) elements.set(s.name, new Set((s.elem ?? []).map(canonical)));
  }
  const chains = new Map<string, string>();
  const rules = new Map<string, string[]>();
  for (const c of listing.chains) {
    chains.set(c.name, canonical(withoutKeys(c, VOLATILE)));
    rules.set(c.name, []);
  }
  for (const r of listing.rules) {
    const list = rules.get(r.chain) ?? [];
    list.push(canonical(withoutKeys(r, new Set(['handle', 'family', 'table', 'chain']))));
    rules.set(r.chain, list);
  }
  return { sets, elements, chains, rules };
}

/** How far `actual` is from `expected`, one line per difference; empty when they are the same. */
export function tableDifferences(
  expected: TableSnapshot | null,
  actual: TableSnapshot | null,
  table = 'inet bulkhead',
): string[] {
  if (expected === null && actual === null) return [];
  if (expected === null) return [`table ${table} exists, but the policy holds none`];
  if (actual === null) return [`table ${table} is missing`];
  const out: string[] = [];
  for (const [name, decl] of expected.sets) {
    const now = actual.sets.get(name);
    if (now === undefined) out.push(`set ${name} is missing`);
    else if (now !== decl) out.push(`set ${name}: declaration changed`);
    else {
      const want = expected.elements.get(name);
      const have = actual.elements.get(name);
      if (want && have) {
        let missing = 0;
        let added = 0;
        for (const e of want) if (!have.has(e)) missing++;
        for (const e of have) if (!want.has(e)) added++;
        if (missing || added)
          out.push(`set ${name}: ${missing} element(s) missing, ${added} element(s) added`);
      }
    }
  }
  for (const name of actual.sets.keys())
    if (!expected.sets.has(name)) out.push(`set ${name} was added`);
  for (const [name, decl] of expected.chains) {
    const now = actual.chains.get(name);
    if (now === undefined) {
      out.push(`chain ${name} is missing`);
      continue;
    }
    if (now !== decl) out.push(`chain ${name}: declaration (hook, priority or policy) changed`);
    const want = expected.rules.get(name) ?? [];
    const have = actual.rules.get(name) ?? [];
    if (want.length !== have.length || want.some((r, i) => r !== have[i])) {
      const kept = new Set(have);
      const missing = want.filter((r) => !kept.has(r)).length;
      const known = new Set(want);
      const added = have.filter((r) => !known.has(r)).length;
      out.push(
        `chain ${name}: rules changed (${want.length} expected, ${have.length} found; ${missing} missing, ${added} added)`,
      );
    }
  }
  for (const name of actual.chains.keys())
    if (!expected.chains.has(name)) out.push(`chain ${name} was added`);
  return out;
}

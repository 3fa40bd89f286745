/**
 * Incremental nftables updates: the smallest script that moves one workload's table from
 * the state the agent last applied to the next one, in one transaction (`nft -f` of the
 * whole script is one kernel batch, so no packet ever sees a half-updated table).
 *
 * Granularity, and why:
 *   - Peer sets change by elements. A label change or a new address is a handful of
 *     `delete element` / `add element` lines; the rules that name the set are untouched.
 *   - Rules change by chain: a chain whose rule list differs is flushed and rewritten, and
 *     chains whose rules are unchanged are not touched. Replacing single rules would need
 *     the kernel's rule handles, which are assigned when the kernel loads a rule and so
 *     cannot be known when the policy is compiled (nor kept stable across a full reload);
 *     a chain is Bulkhead's own unit, is rewritten in the same transaction, and a chain
 *     holds tens to hundreds of rules, not peers, so rewriting it stays cheap.
 *   - The recording sets are filled by the kernel; their contents are never touched, so
 *     what was recorded before an update is still there after it.
 *
 * The previous state must be exactly what is in the kernel (nft refuses to delete an
 * element that is not there); an agent that is not sure applies the full script instead.
 *
 * Pure: no I/O.
 */
import {
  NFT_TABLE,
  elementList,
  nftRemoveScript,
  nftScript,
  type NftChain,
  type NftSet,
  type NftState,
} from './nft.js';

// ---------------------------------------------------------------------------------------
// Exported API

export interface NftUpdate {
  /** The nft script (empty when nothing changed). Apply with `nft -f -`. */
  readonly text: string;
  /** True when the update is a whole-table load or removal (a change to or from idle). */
  readonly replacesTable: boolean;
  readonly setsCreated: number;
  readonly setsDeleted: number;
  readonly elementsAdded: number;
  readonly elementsDeleted: number;
  /** Chains whose rules were flushed and rewritten (names, in table order). */
  readonly chainsRewritten: readonly string[];
}

/**
 * The script that turns `previous` (what the kernel has) into `next`, both states of the
 * same workload's table, as `nftState`/`renderNft` produce them.
 */
export function renderNftUpdate(previous: NftState, next: NftState): NftUpdate {
  if (previous.mode === 'idle' && next.mode === 'idle') return NOTHING;
  if (next.mode === 'idle') return { ...NOTHING, text: nftRemoveScript(), replacesTable: true };
  if (previous.mode === 'idle') {
    return {
      ...NOTHING,
      text: nftScript(next),
      replacesTable: true,
      setsCreated: next.sets.length,
      elementsAdded: next.sets.reduce((n, s) => n + s.elements.length, 0),
      chainsRewritten: next.chains.map((c) => c.name),
    };
  }
  return diffTables(previous, next);
}

// ---------------------------------------------------------------------------------------

const NOTHING: NftUpdate = {
  text: '',
  replacesTable: false,
  setsCreated: 0,
  setsDeleted: 0,
  elementsAdded: 0,
  elementsDeleted: 0,
  chainsRewritten: [],
};

interface ElementDiff {
  readonly deleted: readonly string[];
  readonly added: readonly string[];
  /** The nft lines for this diff, printed once for the set they were first printed for. */
  lines?: { readonly set: string; readonly delete: string | null; readonly add: string | null };
}

function elementLines(set: string, diff: ElementDiff): NonNullable<ElementDiff['lines']> {
  if (diff.lines?.set === set) return diff.lines;
  const lines = {
    set,
    delete:
      diff.deleted.length === 0
        ? null
        : `delete element ${NFT_TABLE} ${set} ${elementList(diff.deleted)}`,
    add:
      diff.added.length === 0 ? null : `add element ${NFT_TABLE} ${set} ${elementList(diff.added)}`,
  };
  diff.lines = lines;
  return lines;
}

/**
 * Element arrays are shared by every host that names a peer set, so after one label change
 * thousands of workloads need the same diff of the same two arrays: computed once per pair.
 */
const elementDiffCache = new WeakMap<readonly string[], WeakMap<readonly string[], ElementDiff>>();

function diffElements(before: readonly string[], after: readonly string[]): ElementDiff {
  let inner = elementDiffCache.get(before);
  if (!inner) elementDiffCache.set(before, (inner = new WeakMap()));
  const cached = inner.get(after);
  if (cached) return cached;
  const had = new Set(before);
  const has = new Set(after);
  const diff: ElementDiff = {
    deleted: before.filter((e) => !has.has(e)),
    added: after.filter((e) => !had.has(e)),
  };
  inner.set(after, diff);
  return diff;
}

/**
 * Pairs each item of `next` with the item of the same name in `previous`, and lists the
 * items of `previous` that `next` no longer has. After a label change both lists usually
 * hold the same names in the same order (and thousands of workloads are diffed at once),
 * so that case is a positional walk; a map is built only when the names differ.
 */
function pairByName<T extends { readonly name: string }>(
  previous: readonly T[],
  next: readonly T[],
): { before: readonly (T | undefined)[]; gone: readonly T[] } {
  let aligned = previous.length === next.length;
  for (let i = 0; aligned && i < next.length; i++) aligned = previous[i]!.name === next[i]!.name;
  if (aligned) return { before: previous, gone: [] };
  const old = new Map(previous.map((p) => [p.name, p]));
  const names = new Set(next.map((n) => n.name));
  return {
    before: next.map((n) => old.get(n.name)),
    gone: previous.filter((p) => !names.has(p.name)),
  };
}

function sameRules(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function addSet(set: NftSet): string {
  const elements = set.elements.length > 0 ? ` elements = ${elementList(set.elements)};` : '';
  return `add set ${NFT_TABLE} ${set.name} { ${set.declaration}${elements} }`;
}

function addChain(chain: NftChain): string {
  return chain.declaration === null
    ? `add chain ${NFT_TABLE} ${chain.name}`
    : `add chain ${NFT_TABLE} ${chain.name} { ${chain.declaration} }`;
}

/**
 * Both states enforce: the table stays, and only what differs is touched. The order inside
 * the one transaction matters to nft's checks, not to packets (they see the result only):
 *   1. new chains (empty) and new sets, so rewritten rules can name them;
 *   2. flush every chain to be rewritten, so no rule holds a set or chain that goes away;
 *   3. sets whose declaration changed: deleted and created again under the same name;
 *   4. element changes, deletes first (an added interval may overlap a deleted one);
 *   5. the rewritten chains' rules;
 *   6. chains, then sets, that are no longer used.
 */
function diffTables(previous: NftState, next: NftState): NftUpdate {
  const sets = pairByName(previous.sets, next.sets);
  const chains = pairByName(previous.chains, next.chains);

  const createdSets: NftSet[] = [];
  const redeclaredSets: NftSet[] = [];
  const elementChanges: { set: NftSet; diff: ElementDiff }[] = [];
  for (let i = 0; i < next.sets.length; i++) {
    const set = next.sets[i]!;
    const old = sets.before[i];
    if (!old) createdSets.push(set);
    else if (old.declaration !== set.declaration || old.dynamic !== set.dynamic)
      redeclaredSets.push(set);
    else if (!set.dynamic && old.elements !== set.elements) {
      const diff = diffElements(old.elements, set.elements);
      if (diff.deleted.length > 0 || diff.added.length > 0) elementChanges.push({ set, diff });
    }
  }
  const deletedSets = sets.gone;

  // A set can only be deleted (to be declared again) once no rule names it: every chain
  // that names a redeclared set is rewritten, even if its rules read the same.
  const mustRewrite = new Set<string>();
  if (redeclaredSets.length > 0) {
    const refs = redeclaredSets.map((s) => `@${s.name} `);
    for (const chain of next.chains) {
      if (chain.rules.some((r) => refs.some((ref) => r.includes(ref)))) mustRewrite.add(chain.name);
    }
  }

  const createdChains: NftChain[] = [];
  const redeclaredChains: NftChain[] = [];
  const rewritten: NftChain[] = [];
  for (let i = 0; i < next.chains.length; i++) {
    const chain = next.chains[i]!;
    const old = chains.before[i];
    if (!old) {
      createdChains.push(chain);
      rewritten.push(chain);
    } else if (old.declaration !== chain.declaration) {
      redeclaredChains.push(chain);
      rewritten.push(chain);
    } else if (mustRewrite.has(chain.name) || !sameRules(old.rules, chain.rules)) {
      rewritten.push(chain);
    }
  }
  const deletedChains = chains.gone;

  const out: string[] = [];
  // 1.
  for (const chain of createdChains) out.push(addChain(chain));
  for (const set of createdSets) out.push(addSet(set));
  // 2. (Chains about to be deleted are flushed too: their rules may name sets that go away.)
  for (const chain of rewritten)
    if (!createdChains.includes(chain)) out.push(`flush chain ${NFT_TABLE} ${chain.name}`);
  for (const chain of deletedChains) out.push(`flush chain ${NFT_TABLE} ${chain.name}`);
  for (const chain of redeclaredChains)
    out.push(`delete chain ${NFT_TABLE} ${chain.name}`, addChain(chain));
  // 3.
  for (const set of redeclaredSets) out.push(`delete set ${NFT_TABLE} ${set.name}`, addSet(set));
  // 4.
  let elementsDeleted = 0;
  let elementsAdded = 0;
  for (const { set, diff } of elementChanges) {
    const line = elementLines(set.name, diff).delete;
    if (line !== null) out.push(line);
    elementsDeleted += diff.deleted.length;
  }
  for (const { set, diff } of elementChanges) {
    const line = elementLines(set.name, diff).add;
    if (line !== null) out.push(line);
    elementsAdded += diff.added.length;
  }
  // 5.
  for (const chain of rewritten)
    for (const rule of chain.rules) out.push(`add rule ${NFT_TABLE} ${chain.name} ${rule}`);
  // 6.
  for (const chain of deletedChains) out.push(`delete chain ${NFT_TABLE} ${chain.name}`);
  for (const set of deletedSets) out.push(`delete set ${NFT_TABLE} ${set.name}`);

  if (out.length === 0) return NOTHING;
  for (const set of createdSets) elementsAdded += set.elements.length;
  for (const set of redeclaredSets) elementsAdded += set.elements.length;
  return {
    text: `# Bulkhead update for workload ${next.workload.replace(/[^\x20-\x7e]/g, '?')} (mode ${previous.mode} -> ${next.mode}).\n${out.join('\n')}\n`,
    replacesTable: false,
    setsCreated: createdSets.length + redeclaredSets.length,
    setsDeleted: deletedSets.length + redeclaredSets.length,
    elementsAdded,
    elementsDeleted,
    chainsRewritten: rewritten.map((c) => c.name),
  };
}

/**
 * From the flows each rule was placed for to the draft itself: rules that say the least that
 * admits every flow, named for a reviewer, each carrying the evidence behind it.
 *
 * Minimality: flows of one placement share one rule (no duplicates); flows to an existing IP
 * list that a rule to a larger list already admits are left to that rule (no subsumed rules
 * or services); rules that differ only in their IP lists become one rule naming them all.
 */
import {
  emptyActors,
  type Actors,
  type IpList,
  type Rule,
  type Ruleset,
  type ServicePort,
} from '../model.js';
import type { Endpoint } from './endpoints.js';
import { UniqueNames } from './naming.js';
import type { GroupedFlows, GroupedService } from './observe.js';
import { actorKey, pairsKey, type Actor, type LabelPairs, type Placement } from './placement.js';
import { peerListKey, type PeerList, type PeerLists } from './peers.js';
import { formatServices, ServiceAccumulator, servicesCover } from './services.js';
import { addTally, Examples, frozenTally, newTally, type MutableTally } from './tally.js';
import type { Granularity, ObservedService, RuleEvidence } from './types.js';

/** The flows of one service within a draft: the unit that moves when a rule is folded. */
export interface Part {
  readonly service: ObservedService;
  readonly tally: MutableTally;
  readonly examples: Examples;
}

interface Draft {
  readonly placement: Placement;
  /** By service text (`443/tcp`, `3306/tcp@mysqld`). */
  readonly parts: Map<string, Part>;
}

/** The flows gathered per placement. */
export class DraftBook {
  private readonly drafts = new Map<string, Draft>();

  /** The part of a placement's rule that holds the flows of a service (made on first sight). */
  part(p: Placement, { service, text }: GroupedService): Part {
    let d = this.drafts.get(p.key);
    if (!d) this.drafts.set(p.key, (d = { placement: p, parts: new Map() }));
    let part = d.parts.get(text);
    if (!part) d.parts.set(text, (part = { service, tally: newTally(), examples: new Examples() }));
    return part;
  }

  /** Adds a grouped flow (by number) between the two ends to a part. */
  add(
    part: Part,
    flows: GroupedFlows,
    flow: number,
    source: Endpoint,
    destination: Endpoint,
  ): void {
    flows.addTo(part.tally, flow);
    const c = flows.connections[flow]!;
    if (part.examples.mayKeep(c))
      part.examples.add(`${source.text} -> ${destination.text} ${flows.serviceOf(flow).text}`, c);
  }

  get size(): number {
    return this.drafts.size;
  }

  values(): Draft[] {
    // Sorted, so that everything built from them is independent of the flows' order.
    return [...this.drafts.values()].sort((a, b) => compare(a.placement.key, b.placement.key));
  }
}

/** The services a draft's rule admits. */
function draftServices(d: Draft): 'all' | ServicePort[] {
  if (d.placement.services === 'all') return 'all';
  const acc = new ServiceAccumulator();
  const bind = d.placement.services === 'observed-with-process';
  for (const part of d.parts.values()) acc.add(part.service, bind);
  return acc.ports();
}

/** The services one part needs, as a rule would write them. */
function partServices(d: Draft, part: Part): ServicePort[] {
  const acc = new ServiceAccumulator();
  acc.add(part.service, d.placement.services === 'observed-with-process');
  return acc.ports();
}

function draftTally(d: Draft): { tally: MutableTally; examples: Examples } {
  const tally = newTally();
  const examples = new Examples();
  for (const part of d.parts.values()) {
    addTally(tally, part.tally);
    examples.merge(part.examples);
  }
  return { tally, examples };
}

function movePart(into: Draft, key: string, part: Part): void {
  const mine = into.parts.get(key);
  if (!mine) {
    into.parts.set(key, part);
    return;
  }
  addTally(mine.tally, part.tally);
  mine.examples.merge(part.examples);
}

/** A rule before naming: its placement, with the IP lists on its peer side gathered. */
interface RulePlan {
  readonly ruleset: LabelPairs;
  readonly sources: Actor | { readonly kind: 'lists'; readonly lists: readonly PeerList[] };
  readonly destinations: Actor | { readonly kind: 'lists'; readonly lists: readonly PeerList[] };
  readonly extraScope: boolean;
  readonly services: 'all' | readonly ServicePort[];
  readonly tally: MutableTally;
  readonly examples: Examples;
  readonly key: string;
}

export interface BuiltDraft {
  readonly rulesets: Ruleset[];
  readonly ipLists: IpList[];
  readonly evidence: RuleEvidence[];
}

export interface BuildOptions {
  readonly granularity: Granularity;
  readonly prefix: string;
  readonly existingRulesets: Iterable<string>;
  readonly existingIpLists: Iterable<string>;
}

export function buildDraft(book: DraftBook, peers: PeerLists, options: BuildOptions): BuiltDraft {
  const drafts = foldSubsumedLists(book.values(), peers);
  const plans = gatherLists(drafts);

  // Names: rulesets and new IP lists must not take an existing name.
  const rulesetNames = new UniqueNames(options.existingRulesets);
  const listNames = new UniqueNames(options.existingIpLists);
  const byRuleset = new Map<string, { scope: LabelPairs; plans: RulePlan[] }>();
  for (const p of plans) {
    const k = pairsKey(p.ruleset);
    let rs = byRuleset.get(k);
    if (!rs) byRuleset.set(k, (rs = { scope: p.ruleset, plans: [] }));
    rs.plans.push(p);
  }
  const networks = new Set<string>();
  for (const p of plans)
    for (const side of [p.sources, p.destinations])
      if (side.kind === 'lists')
        for (const l of side.lists) if (l.kind === 'network') networks.add(l.network);
  const networkNames = new Map<string, string>();
  const ipLists: IpList[] = [];
  for (const network of [...networks].sort(compareNetworks)) {
    const name = listNames.claim(`${options.prefix}-net-${network.replace('/', '-')}`);
    networkNames.set(network, name);
    ipLists.push({ name, include: peers.members(network), exclude: [] });
  }
  const listName = (l: PeerList): string =>
    l.kind === 'existing' ? l.name : networkNames.get(l.network)!;

  const rulesets: Ruleset[] = [];
  const evidence: RuleEvidence[] = [];
  const scopes = [...byRuleset.values()].sort((a, b) =>
    compare(pairsKey(a.scope), pairsKey(b.scope)),
  );
  for (const { scope, plans: rulePlans } of scopes) {
    const name = rulesetNames.claim(`${options.prefix}-${scope.map(([, v]) => v).join('-')}`);
    const named = rulePlans
      .map((p) => ({ plan: p, stem: ruleStem(p, options.granularity, listName), rank: rank(p) }))
      .sort(
        (a, b) => a.rank - b.rank || compare(a.stem, b.stem) || compare(a.plan.key, b.plan.key),
      );
    const ruleNames = new UniqueNames();
    const rules: Rule[] = named.map(({ plan, stem }) => {
      const ruleName = ruleNames.claim(stem);
      const examples = plan.examples.list();
      evidence.push({ ruleset: name, rule: ruleName, ...frozenTally(plan.tally), examples });
      return {
        name: ruleName,
        action: 'allow',
        sources: toActors(plan.sources, listName),
        destinations: toActors(plan.destinations, listName),
        services:
          plan.services === 'all'
            ? 'all'
            : plan.services.map((port) => ({ kind: 'inline', port }) as const),
        extraScope: plan.extraScope,
        description: describe(plan.tally, examples),
      };
    });
    rulesets.push({
      name,
      scope: { labels: Object.fromEntries(scope.map(([k, v]) => [k, [v]])), labelGroups: [] },
      rules,
      description: `Generated from observed flows at ${options.granularity} granularity; review before applying.`,
    });
  }
  return { rulesets, ipLists, evidence };
}

/** Which side of a draft is its unmanaged peer, if any. */
function peerSide(p: Placement): 'sources' | 'destinations' | null {
  return p.sources.kind === 'peers'
    ? 'sources'
    : p.destinations.kind === 'peers'
      ? 'destinations'
      : null;
}

/** Everything of a peer draft but the peer: drafts alike in this may share or fold. */
function anchorKey(p: Placement, side: 'sources' | 'destinations'): string {
  const local = side === 'sources' ? p.destinations : p.sources;
  return `${pairsKey(p.ruleset)}|${side}|${actorKey(local)}|${p.extraScope}|${p.services}`;
}

/**
 * The flows of a draft to an existing IP list move, service by service, to another draft of
 * the same rule shape whose list holds all of the first list's addresses and whose services
 * already admit that service (e.g. 443 to `partners` when `internet` is open on 443); a draft
 * left with no flows is dropped. So no generated rule admits what another already does.
 */
function foldSubsumedLists(drafts: readonly Draft[], peers: PeerLists): Draft[] {
  const groups = new Map<string, Draft[]>();
  for (const d of drafts) {
    const side = peerSide(d.placement);
    if (!side || d.placement.services === 'all') continue;
    const actor = d.placement[side] as Extract<Actor, { kind: 'peers' }>;
    if (actor.list.kind !== 'existing') continue;
    const k = anchorKey(d.placement, side);
    const g = groups.get(k);
    if (g) g.push(d);
    else groups.set(k, [d]);
  }
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    const info = group
      .map((d) => {
        const side = peerSide(d.placement)!;
        const list = (d.placement[side] as Extract<Actor, { kind: 'peers' }>).list;
        const { set, size } = peers.existing(list.kind === 'existing' ? list.name : '');
        return { d, set, size };
      })
      // Smallest list first: flows land on the tightest list that admits them, and of two
      // equal lists the first moves to the second, never both ways.
      .sort((a, b) =>
        a.size < b.size ? -1 : a.size > b.size ? 1 : compare(a.d.placement.key, b.d.placement.key),
      );
    info.forEach((x, i) => {
      const containers = info
        .slice(i + 1)
        .filter((y) => y.set.covers(x.set))
        // A container only ever gains flows it already admits, so its services hold still.
        .map((y) => ({ d: y.d, services: draftServices(y.d) }));
      if (containers.length === 0) return;
      for (const [key, part] of [...x.d.parts]) {
        const needs = partServices(x.d, part);
        const into = containers.find((y) => servicesCover(y.services, needs));
        if (!into) continue;
        x.d.parts.delete(key);
        movePart(into.d, key, part);
      }
    });
  }
  return drafts.filter((d) => d.parts.size > 0);
}

/** Peer drafts alike in all but their list, and admitting the same services, become one rule. */
function gatherLists(drafts: readonly Draft[]): RulePlan[] {
  const plans: RulePlan[] = [];
  const gathered = new Map<string, { plan: RulePlan; lists: PeerList[] }>();
  for (const d of drafts) {
    const p = d.placement;
    const services = draftServices(d);
    const { tally, examples } = draftTally(d);
    const side = peerSide(p);
    if (!side) {
      plans.push({ ...p, services, tally, examples });
      continue;
    }
    const k = `${anchorKey(p, side)}|${formatServices(services)}`;
    const list = (p[side] as Extract<Actor, { kind: 'peers' }>).list;
    const hit = gathered.get(k);
    if (hit) {
      hit.lists.push(list);
      addTally(hit.plan.tally, tally);
      hit.plan.examples.merge(examples);
      continue;
    }
    const lists = [list];
    const sideValue = { kind: 'lists', lists } as const;
    const plan: RulePlan = {
      ...p,
      [side]: sideValue,
      services,
      tally,
      examples,
      key: k,
    };
    gathered.set(k, { plan, lists });
    plans.push(plan);
  }
  for (const { lists } of gathered.values())
    lists.sort((a, b) => compare(peerListKey(a), peerListKey(b)));
  return plans;
}

/** Within a ruleset: inside traffic, then traffic from other rulesets, then peers in, then out. */
function rank(p: RulePlan): number {
  if (p.sources.kind === 'lists') return 2;
  if (p.destinations.kind === 'lists') return 3;
  return p.extraScope ? 1 : 0;
}

function sideText(a: RulePlan['sources'], listName: (l: PeerList) => string): string {
  switch (a.kind) {
    case 'scope':
      return 'all';
    case 'labels':
      return a.labels.map(([, v]) => v).join('-');
    case 'peers':
      return listName(a.list);
    case 'lists': {
      const first = listName(a.lists[0]!);
      return a.lists.length === 1 ? first : `${first}-and-${a.lists.length - 1}-more`;
    }
  }
}

function ruleStem(
  p: RulePlan,
  granularity: Granularity,
  listName: (l: PeerList) => string,
): string {
  const src = sideText(p.sources, listName);
  const dst = sideText(p.destinations, listName);
  if (p.sources.kind === 'scope' && p.destinations.kind === 'scope')
    return granularity === 'env' ? 'within-env' : 'ring-fence';
  if (p.sources.kind === 'lists' || p.extraScope)
    return p.destinations.kind === 'scope' ? `from-${src}` : `from-${src}-to-${dst}`;
  if (p.sources.kind === 'scope') return `to-${dst}`;
  return `${src}-to-${dst}`;
}

function toActors(a: RulePlan['sources'], listName: (l: PeerList) => string): Actors {
  switch (a.kind) {
    case 'scope':
      return { ...emptyActors(), allWorkloads: true };
    case 'labels':
      return {
        ...emptyActors(),
        selector: {
          labels: Object.fromEntries(a.labels.map(([k, v]) => [k, [v]])),
          labelGroups: [],
        },
      };
    case 'peers':
      return { ...emptyActors(), ipLists: [listName(a.list)] };
    case 'lists':
      return { ...emptyActors(), ipLists: a.lists.map(listName) };
  }
}

/** The evidence in the rule's own description, which a reviewer reads in the YAML. */
function describe(t: MutableTally, examples: readonly string[]): string {
  const head = `Observed ${t.flows} flow${t.flows === 1 ? '' : 's'}, ${t.connections} connection${t.connections === 1 ? '' : 's'}, ${t.firstSeen} to ${t.lastSeen}`;
  let text = head;
  for (const [i, e] of examples.entries()) {
    const next = `${text}${i === 0 ? '; e.g. ' : '; '}${e}`;
    // The document schema keeps descriptions to 1024 characters.
    if (next.length > 1000) break;
    text = next;
  }
  return `${text}.`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** IPv4 networks before IPv6, then by text (equal lengths per family sort well enough). */
function compareNetworks(a: string, b: string): number {
  const fa = a.includes(':') ? 6 : 4;
  const fb = b.includes(':') ? 6 : 4;
  return fa - fb || compare(a, b);
}

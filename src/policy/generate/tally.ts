/**
 * Counting the traffic behind a rule or a report line: flow summaries, connections and the
 * time span, plus the busiest flows as examples a reviewer can recognise.
 */
import type { FlowTally } from './types.js';

export interface MutableTally {
  flows: number;
  connections: number;
  firstSeen: string;
  lastSeen: string;
}

export function newTally(): MutableTally {
  // Empty text sorts before any time and '~' after any, so the first add sets both ends.
  return { flows: 0, connections: 0, firstSeen: '~', lastSeen: '' };
}

export function addTally(into: MutableTally, from: FlowTally): void {
  into.flows += from.flows;
  into.connections += from.connections;
  if (from.firstSeen < into.firstSeen) into.firstSeen = from.firstSeen;
  if (from.lastSeen > into.lastSeen) into.lastSeen = from.lastSeen;
}

export function frozenTally(t: FlowTally): FlowTally {
  return {
    flows: t.flows,
    connections: t.connections,
    firstSeen: t.firstSeen,
    lastSeen: t.lastSeen,
  };
}

/** The busiest few flows of something, chosen the same way whatever the input order. */
export class Examples {
  private readonly items: { text: string; connections: number }[] = [];

  constructor(private readonly limit = 3) {}

  /**
   * Whether a flow this busy may be among the examples. Most are not: checking first spares
   * building their text (and a closure to build it lazily) for each of them.
   */
  mayKeep(connections: number): boolean {
    const items = this.items;
    return items.length < this.limit || connections >= items[items.length - 1]!.connections;
  }

  add(text: string, connections: number): void {
    if (!this.mayKeep(connections)) return;
    const items = this.items;
    const last = items[items.length - 1];
    const item = { text, connections };
    if (items.length === this.limit) {
      if (!busier(item, last!)) return;
      items.pop();
    }
    let i = items.length;
    while (i > 0 && busier(item, items[i - 1]!)) i--;
    items.splice(i, 0, item);
  }

  merge(other: Examples): void {
    for (const e of other.items) this.add(e.text, e.connections);
  }

  list(): string[] {
    return this.items.map((e) => `${e.text} (${e.connections} connections)`);
  }
}

/** More connections first; the text breaks ties so that the choice never depends on order. */
function busier(
  a: { text: string; connections: number },
  b: { text: string; connections: number },
): boolean {
  return a.connections > b.connections || (a.connections === b.connections && a.text < b.text);
}

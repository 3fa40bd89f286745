/**
 * Addresses grouped by which of a policy's address sets hold them. Two addresses in the same
 * sets are alike to every IP-list and always-allowed check `decide()` makes, so one of them
 * can stand for both (the same idea as diff.ts's grid of representative flows).
 */
import type { AddressSet, IpFamily } from '../addresses.js';

export class AddressClasses {
  /** Per family: where each segment starts (ascending) and its class. */
  private readonly starts: Record<IpFamily, bigint[]> = { 4: [], 6: [] };
  /** The IPv4 starts as numbers (exact below 2^53), which compare far faster than bigints. */
  private readonly starts4: Float64Array;
  private readonly classes: Record<IpFamily, number[]> = { 4: [], 6: [] };
  /** Per class: the sets (by their index in the constructor's list) that hold its addresses. */
  private readonly members: number[][] = [[]];

  /** Class 0 is "in none of the sets". */
  constructor(sets: readonly AddressSet[]) {
    const ids = new Map<string, number>([['', 0]]);
    for (const family of [4, 6] as const) {
      // A sweep over every interval edge: between two edges, membership does not change.
      const events: { at: bigint; set: number; enter: boolean }[] = [];
      sets.forEach((s, i) => {
        for (const iv of s.intervals(family)) {
          events.push({ at: iv.start, set: i, enter: true });
          events.push({ at: iv.end + 1n, set: i, enter: false });
        }
      });
      events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
      const active = new Map<number, number>();
      const starts = this.starts[family];
      const classes = this.classes[family];
      for (let i = 0; i < events.length;) {
        const at = events[i]!.at;
        for (; i < events.length && events[i]!.at === at; i++) {
          const e = events[i]!;
          const n = (active.get(e.set) ?? 0) + (e.enter ? 1 : -1);
          if (n === 0) active.delete(e.set);
          else active.set(e.set, n);
        }
        const inSets = [...active.keys()].sort((a, b) => a - b);
        const signature = inSets.join(',');
        let id = ids.get(signature);
        if (id === undefined) {
          ids.set(signature, (id = ids.size));
          this.members.push(inSets);
        }
        if (classes.length > 0 && classes[classes.length - 1] === id) continue;
        starts.push(at);
        classes.push(id);
      }
    }
    this.starts4 = Float64Array.from(this.starts[4], Number);
  }

  /** The sets that hold the addresses of a class. */
  setsOf(cls: number): readonly number[] {
    return this.members[cls]!;
  }

  classOf(family: IpFamily, value: bigint): number {
    if (family === 4) return this.classOf4(Number(value));
    const starts = this.starts[family];
    let lo = 0;
    let hi = starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= value) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 ? 0 : this.classes[family][found]!;
  }

  /** classOf for an IPv4 address as a number (a copy of the search, comparing numbers). */
  classOf4(value: number): number {
    const starts = this.starts4;
    let lo = 0;
    let hi = starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= value) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 ? 0 : this.classes[4][found]!;
  }
}

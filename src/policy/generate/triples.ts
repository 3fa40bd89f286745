/**
 * Numbers for triples of integers, e.g. (source class, destination class, service): the keys
 * of the generator's caches, asked once per distinct flow. A lookup in Maps of Maps chases
 * three or four objects scattered over the heap; here it reads one entry of one typed array
 * (a cache line), and a new triple allocates nothing.
 */

/** Slots per entry: the triple, then its number plus one (0 marks an empty slot). */
const WIDTH = 4;

export class TripleNumbers {
  private slots: Int32Array;
  private mask: number;
  private count = 0;

  /** `expected`: how many triples to make room for before the first growth. */
  constructor(expected = 64) {
    let capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    this.slots = new Int32Array(capacity * WIDTH);
    this.mask = capacity - 1;
  }

  /** How many triples have a number (they are numbered 0 to size - 1). */
  get size(): number {
    return this.count;
  }

  /**
   * The triple's number, given on first sight in order (0, 1, 2...): a triple is new exactly
   * when its number equals the size before the call. a, b and c must be 32-bit integers.
   */
  number(a: number, b: number, c: number): number {
    const slots = this.slots;
    const mask = this.mask;
    let i = hashTriple(a, b, c) & mask;
    for (;;) {
      const at = i * WIDTH;
      const n = slots[at + 3]!;
      if (n === 0) break;
      if (slots[at] === a && slots[at + 1] === b && slots[at + 2] === c) return n - 1;
      i = (i + 1) & mask;
    }
    const n = this.count++;
    // At most half full, so that probes stay short.
    if (this.count * 2 > mask + 1) {
      this.grow();
      this.put(a, b, c, n);
    } else {
      const at = i * WIDTH;
      slots[at] = a;
      slots[at + 1] = b;
      slots[at + 2] = c;
      slots[at + 3] = n + 1;
    }
    return n;
  }

  private put(a: number, b: number, c: number, n: number): void {
    const slots = this.slots;
    const mask = this.mask;
    let i = hashTriple(a, b, c) & mask;
    while (slots[i * WIDTH + 3] !== 0) i = (i + 1) & mask;
    const at = i * WIDTH;
    slots[at] = a;
    slots[at + 1] = b;
    slots[at + 2] = c;
    slots[at + 3] = n + 1;
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Int32Array(old.length * 2);
    this.mask = this.mask * 2 + 1;
    for (let at = 0; at < old.length; at += WIDTH) {
      const n = old[at + 3]!;
      if (n !== 0) this.put(old[at]!, old[at + 1]!, old[at + 2]!, n - 1);
    }
  }
}

/** Mixes all bits of the three into the low ones, which pick a slot of a table. */
export function hashTriple(a: number, b: number, c: number): number {
  let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca77) ^ Math.imul(c, 0xc2b2ae3d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 13;
  return h;
}

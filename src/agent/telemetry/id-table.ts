/**
 * The live connections the agent has counted, by conntrack id, each with a small number
 * (the index of its process name). A busy host keeps 100k+ connections in TIME_WAIT; in a
 * Map that is ~8 MB of objects, here it is 7 bytes a slot in typed arrays (open addressing,
 * linear probing, deletion by backward shift so no tombstones pile up).
 *
 * Pure: no I/O.
 */

const EMPTY = 0;
const USED = 1;

export class IdTable {
  private keys: Uint32Array;
  private values: Uint16Array;
  private state: Uint8Array;
  /** Per slot: the generation that last marked it (see `mark`). */
  private marks: Uint8Array;
  private shift = 0;
  private count = 0;

  /** `limit`: at most this many ids are kept; beyond it, new ids are not remembered. */
  constructor(
    private readonly limit = 200_000,
    initialCapacity = 1024,
  ) {
    let capacity = 16;
    while (capacity < initialCapacity) capacity *= 2;
    this.keys = new Uint32Array(capacity);
    this.values = new Uint16Array(capacity);
    this.state = new Uint8Array(capacity);
    this.marks = new Uint8Array(capacity);
    this.shift = 32 - Math.log2(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** Fibonacci hashing: the product's high bits mix every bit of the id. */
  private home(id: number): number {
    return Math.imul(id, 0x9e3779b1) >>> this.shift;
  }

  private slot(id: number): number {
    const mask = this.keys.length - 1;
    let i = this.home(id);
    while (this.state[i] === USED && this.keys[i] !== id) i = (i + 1) & mask;
    return i;
  }

  has(id: number): boolean {
    return this.state[this.slot(id)] === USED;
  }

  /** The id's value, or -1 when the id is not here. */
  get(id: number): number {
    const i = this.slot(id);
    return this.state[i] === USED ? this.values[i]! : -1;
  }

  /** Adds or updates; false when the table is full and the id was not remembered. */
  set(id: number, value: number, mark = 0): boolean {
    let i = this.slot(id);
    if (this.state[i] !== USED) {
      if (this.count >= this.limit) return false;
      if ((this.count + 1) * 2 > this.keys.length) {
        this.grow();
        i = this.slot(id);
      }
      this.state[i] = USED;
      this.keys[i] = id;
      this.count++;
    }
    this.values[i] = value;
    this.marks[i] = mark;
    return true;
  }

  /** Marks a present id with `generation`; false when it is not here. */
  mark(id: number, generation: number): boolean {
    const i = this.slot(id);
    if (this.state[i] !== USED) return false;
    this.marks[i] = generation;
    return true;
  }

  delete(id: number): boolean {
    const mask = this.keys.length - 1;
    let i = this.slot(id);
    if (this.state[i] !== USED) return false;
    this.state[i] = EMPTY;
    this.count--;
    // Backward shift: pull later members of the probe run into the hole.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (this.state[j] !== USED) break;
      const home = this.home(this.keys[j]!);
      const between = i <= j ? home > i && home <= j : home > i || home <= j;
      if (between) continue;
      this.keys[i] = this.keys[j]!;
      this.values[i] = this.values[j]!;
      this.marks[i] = this.marks[j]!;
      this.state[i] = USED;
      this.state[j] = EMPTY;
      i = j;
    }
    return true;
  }

  /**
   * Removes every id whose mark is not `generation`, telling `onGone` each one and its value;
   * returns how many went.
   */
  sweep(generation: number, onGone?: (id: number, value: number) => void): number {
    const gone: number[] = [];
    for (let i = 0; i < this.keys.length; i++)
      if (this.state[i] === USED && this.marks[i] !== generation) {
        gone.push(this.keys[i]!);
        onGone?.(this.keys[i]!, this.values[i]!);
      }
    for (const id of gone) this.delete(id);
    return gone.length;
  }

  private grow(): void {
    const { keys, values, state, marks } = this;
    const capacity = keys.length * 2;
    this.keys = new Uint32Array(capacity);
    this.values = new Uint16Array(capacity);
    this.state = new Uint8Array(capacity);
    this.marks = new Uint8Array(capacity);
    this.shift = 32 - Math.log2(capacity);
    this.count = 0;
    for (let i = 0; i < keys.length; i++)
      if (state[i] === USED) {
        const j = this.slot(keys[i]!);
        this.state[j] = USED;
        this.keys[j] = keys[i]!;
        this.values[j] = values[i]!;
        this.marks[j] = marks[i]!;
        this.count++;
      }
  }
}

/**
 * The live connections the agent has counted, by conntrack id and a check of their tuple
 * (see connections.ts: the kernel's ids are 32-bit hashes, so two live connections can
 * share one), each with a small number (the index of its process name). A busy host keeps
 * 100k+ connections in TIME_WAIT; in a Map that is ~8 MB of objects, here it is 11 bytes a
 * slot in typed arrays (open addressing, linear probing, deletion by backward shift so no
 * tombstones pile up).
 *
 * Pure: no I/O.
 */

const EMPTY = 0;
const USED = 1;

export class IdTable {
  private keys: Uint32Array;
  private checks: Uint32Array;
  private values: Uint16Array;
  private state: Uint8Array;
  /** Per slot: the generation that last marked it (see `mark`). */
  private marks: Uint8Array;
  private shift = 0;
  private count = 0;

  /** `limit`: at most this many ids are kept; beyond it, new ids are not remembered. */
  constructor(
    readonly limit = 200_000,
    initialCapacity = 1024,
  ) {
    let capacity = 16;
    while (capacity < initialCapacity) capacity *= 2;
    this.keys = new Uint32Array(capacity);
    this.checks = new Uint32Array(capacity);
    this.values = new Uint16Array(capacity);
    this.state = new Uint8Array(capacity);
    this.marks = new Uint8Array(capacity);
    this.shift = 32 - Math.log2(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** Fibonacci hashing: the product's high bits mix every bit of the id and its check. */
  private home(id: number, check: number): number {
    return Math.imul(id ^ Math.imul(check, 0x85ebca6b), 0x9e3779b1) >>> this.shift;
  }

  private slot(id: number, check: number): number {
    const mask = this.keys.length - 1;
    let i = this.home(id, check);
    while (this.state[i] === USED && (this.keys[i] !== id || this.checks[i] !== check))
      i = (i + 1) & mask;
    return i;
  }

  has(id: number, check: number): boolean {
    return this.state[this.slot(id, check)] === USED;
  }

  /** The connection's value, or -1 when it is not here. */
  get(id: number, check: number): number {
    const i = this.slot(id, check);
    return this.state[i] === USED ? this.values[i]! : -1;
  }

  /** Adds or updates; false when the table is full and the connection was not remembered. */
  set(id: number, check: number, value: number, mark = 0): boolean {
    let i = this.slot(id, check);
    if (this.state[i] !== USED) {
      if (this.count >= this.limit) return false;
      if ((this.count + 1) * 2 > this.keys.length) {
        this.grow();
        i = this.slot(id, check);
      }
      this.state[i] = USED;
      this.keys[i] = id;
      this.checks[i] = check;
      this.count++;
    }
    this.values[i] = value;
    this.marks[i] = mark;
    return true;
  }

  /** Marks a present connection with `generation`; false when it is not here. */
  mark(id: number, check: number, generation: number): boolean {
    const i = this.slot(id, check);
    if (this.state[i] !== USED) return false;
    this.marks[i] = generation;
    return true;
  }

  delete(id: number, check: number): boolean {
    const mask = this.keys.length - 1;
    let i = this.slot(id, check);
    if (this.state[i] !== USED) return false;
    this.state[i] = EMPTY;
    this.count--;
    // Backward shift: pull later members of the probe run into the hole.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (this.state[j] !== USED) break;
      const home = this.home(this.keys[j]!, this.checks[j]!);
      const between = i <= j ? home > i && home <= j : home > i || home <= j;
      if (between) continue;
      this.keys[i] = this.keys[j]!;
      this.checks[i] = this.checks[j]!;
      this.values[i] = this.values[j]!;
      this.marks[i] = this.marks[j]!;
      this.state[i] = USED;
      this.state[j] = EMPTY;
      i = j;
    }
    return true;
  }

  /**
   * Removes every connection whose mark is not `generation`, telling `onGone` each one and
   * its value; returns how many went.
   */
  sweep(generation: number, onGone?: (id: number, check: number, value: number) => void): number {
    const gone: number[] = [];
    for (let i = 0; i < this.keys.length; i++)
      if (this.state[i] === USED && this.marks[i] !== generation) {
        gone.push(this.keys[i]!, this.checks[i]!);
        onGone?.(this.keys[i]!, this.checks[i]!, this.values[i]!);
      }
    for (let k = 0; k < gone.length; k += 2) this.delete(gone[k]!, gone[k + 1]!);
    return gone.length / 2;
  }

  private grow(): void {
    const { keys, checks, values, state, marks } = this;
    const capacity = keys.length * 2;
    this.keys = new Uint32Array(capacity);
    this.checks = new Uint32Array(capacity);
    this.values = new Uint16Array(capacity);
    this.state = new Uint8Array(capacity);
    this.marks = new Uint8Array(capacity);
    this.shift = 32 - Math.log2(capacity);
    this.count = 0;
    for (let i = 0; i < keys.length; i++)
      if (state[i] === USED) {
        const j = this.slot(keys[i]!, checks[i]!);
        this.state[j] = USED;
        this.keys[j] = keys[i]!;
        this.checks[j] = checks[i]!;
        this.values[j] = values[i]!;
        this.marks[j] = marks[i]!;
        this.count++;
      }
  }
}

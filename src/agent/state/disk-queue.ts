/**
 * A bounded queue on disk: what the agent could not deliver yet (flow batches, integrity
 * reports), kept across restarts and delivered oldest first when the control plane is back.
 *
 * One file per item (`<sequence>-<weight>.json`, written atomically), so delivering an item
 * is deleting its file. When the queue would outgrow its bound, the oldest items are
 * dropped, and how many (and how much they weighed, e.g. summaries) is counted in
 * `dropped.json` until it has been reported.
 */
import { mkdir, readdir, rm, stat } from '../fs.js';
import { join } from 'node:path';
import { number, object, string, type Infer, type Schema } from '../check.js';
import { StateDirError, errorText } from '../errors.js';
import { DIR_MODE, readJson, writeJsonAtomic } from './files.js';

export interface QueueBound {
  readonly maxBytes: number;
  readonly maxItems: number;
}

/**
 * How many of the oldest items (sizes oldest first) must go for one of `incoming` bytes to
 * fit, and whether the incoming item fits at all (alone it may exceed the bound).
 *
 * Pure.
 */
export function evictionPlan(
  sizes: readonly number[],
  incoming: number,
  bound: QueueBound,
): { readonly dropOldest: number; readonly acceptIncoming: boolean } {
  if (incoming > bound.maxBytes || bound.maxItems < 1)
    return { dropOldest: 0, acceptIncoming: false };
  let bytes = incoming;
  for (const s of sizes) bytes += s;
  let items = sizes.length + 1;
  let drop = 0;
  while ((bytes > bound.maxBytes || items > bound.maxItems) && drop < sizes.length) {
    bytes -= sizes[drop]!;
    items--;
    drop++;
  }
  return { dropOldest: drop, acceptIncoming: true };
}

const droppedFile = object({
  items: number({ int: true, min: 0 }),
  weight: number({ int: true, min: 0 }),
  firstAt: string().nullable(),
  lastAt: string().nullable(),
});
export type DroppedCount = Infer<typeof droppedFile>;
const NOTHING_DROPPED: DroppedCount = { items: 0, weight: 0, firstAt: null, lastAt: null };

const FILE = /^(\d{16})-(\d+)\.json$/;

interface Slot {
  readonly name: string;
  readonly seq: number;
  readonly weight: number;
  readonly size: number;
}

export interface QueuedItem<T> {
  readonly name: string;
  readonly item: T;
}

export class DiskQueue<T> {
  private constructor(
    private readonly dir: string,
    private readonly schema: Schema<T>,
    private readonly bound: QueueBound,
    private slots: Slot[],
    private droppedCount: DroppedCount,
    private readonly now: () => Date,
  ) {}

  static async open<T>(
    dir: string,
    schema: Schema<T>,
    bound: QueueBound,
    now: () => Date = () => new Date(),
  ): Promise<DiskQueue<T>> {
    try {
      await mkdir(dir, { recursive: true, mode: DIR_MODE });
    } catch (e) {
      throw new StateDirError(dir, `cannot create: ${errorText(e)}`, { cause: e });
    }
    const slots: Slot[] = [];
    for (const name of await readdir(dir)) {
      const m = FILE.exec(name);
      if (!m) continue;
      const { size } = await stat(join(dir, name));
      slots.push({ name, seq: Number(m[1]), weight: Number(m[2]), size });
    }
    slots.sort((a, b) => a.seq - b.seq);
    const dropped = (await readJson(join(dir, 'dropped.json'), droppedFile)) ?? NOTHING_DROPPED;
    return new DiskQueue(dir, schema, bound, slots, dropped, now);
  }

  get length(): number {
    return this.slots.length;
  }

  get bytes(): number {
    return this.slots.reduce((n, s) => n + s.size, 0);
  }

  /** What was dropped and not yet reported. */
  get dropped(): DroppedCount {
    return this.droppedCount;
  }

  /** Adds an item; `weight` is what it stands for (e.g. its number of flow summaries). */
  async push(item: T, weight = 1): Promise<void> {
    const text = `${JSON.stringify(item)}\n`;
    const size = Buffer.byteLength(text);
    const plan = evictionPlan(
      this.slots.map((s) => s.size),
      size,
      this.bound,
    );
    const gone = this.slots.slice(0, plan.dropOldest);
    for (const s of gone) await rm(join(this.dir, s.name), { force: true });
    this.slots = this.slots.slice(plan.dropOldest);
    const lost = [...gone];
    if (plan.acceptIncoming) {
      const seq = (this.slots.at(-1)?.seq ?? Date.now() * 1000) + 1;
      const name = `${String(seq).padStart(16, '0')}-${weight}.json`;
      await writeJsonAtomic(join(this.dir, name), item);
      this.slots.push({ name, seq, weight, size });
    } else lost.push({ name: '', seq: 0, weight, size });
    if (lost.length) await this.countDropped(lost);
  }

  /** Up to `limit` items, oldest first. A damaged file is removed and counted as dropped. */
  async oldest(limit: number): Promise<QueuedItem<T>[]> {
    const out: QueuedItem<T>[] = [];
    for (const slot of this.slots.slice(0, limit)) {
      try {
        const item = await readJson(join(this.dir, slot.name), this.schema);
        if (item !== null) out.push({ name: slot.name, item });
        else this.slots = this.slots.filter((s) => s !== slot);
      } catch (e) {
        if (!(e instanceof StateDirError)) throw e;
        await this.remove(slot.name);
        await this.countDropped([slot]);
      }
    }
    return out;
  }

  async remove(name: string): Promise<void> {
    await rm(join(this.dir, name), { force: true });
    this.slots = this.slots.filter((s) => s.name !== name);
  }

  /** Removes an item that cannot be delivered, counting it as dropped. */
  async discard(name: string): Promise<void> {
    const slot = this.slots.find((s) => s.name === name);
    await this.remove(name);
    if (slot) await this.countDropped([slot]);
  }

  /** The dropped count has been reported: start counting again. */
  async clearDropped(reported: DroppedCount): Promise<void> {
    const left: DroppedCount = {
      items: Math.max(0, this.droppedCount.items - reported.items),
      weight: Math.max(0, this.droppedCount.weight - reported.weight),
      firstAt: null,
      lastAt: null,
    };
    // What was dropped while the report was on its way stays counted for the next one.
    this.droppedCount =
      left.items === 0
        ? NOTHING_DROPPED
        : { ...left, firstAt: this.droppedCount.lastAt, lastAt: this.droppedCount.lastAt };
    await writeJsonAtomic(join(this.dir, 'dropped.json'), this.droppedCount);
  }

  private async countDropped(slots: readonly Slot[]): Promise<void> {
    const at = this.now().toISOString();
    this.droppedCount = {
      items: this.droppedCount.items + slots.length,
      weight: this.droppedCount.weight + slots.reduce((n, s) => n + s.weight, 0),
      firstAt: this.droppedCount.firstAt ?? at,
      lastAt: at,
    };
    await writeJsonAtomic(join(this.dir, 'dropped.json'), this.droppedCount);
  }
}

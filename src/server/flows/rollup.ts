/**
 * From a chunk of the ingest log to a traffic batch, at the rate agents append to it. The
 * log repeats itself: the same few thousand conversations, and times that share their minute.
 * So what is costly per summary (parsing addresses, building an edge key, parsing a time) is
 * done once per distinct conversation or minute and looked up after that.
 */
import { attributeSummary, edgeKeyText, type OwnerOf } from '../../analysis/flows/edge-key.js';
import type { LogEntry } from '../../store/flow-store.js';
import type { LoggedSummary } from '../../store/flows.js';
import type { Pending, TrafficBatch } from './ingest.js';

/** Where a summary's traffic counts: its edge's key text and the edge as first seen. */
interface Attributed {
  readonly keyText: string;
  readonly edge: Pending;
}

/** Separates the memo key's fields; a summary whose fields hold it is attributed unmemoized. */
const SEP = '\u0001';

/**
 * `attributeSummary` memoized by every field it reads. One per estate: who owns an address
 * is part of the answer. Bounded; it starts over when full.
 */
export class Attributor {
  private readonly memo = new Map<string, Attributed | null>();

  constructor(
    private readonly ownerOf: OwnerOf,
    private readonly max = 200_000,
  ) {}

  /** `t` as `workload`'s agent reported it ('' for an import). */
  attribute(workload: string, t: LoggedSummary): Attributed | null {
    const [src, dst, proto, dport, process, , , , , decision] = t;
    // Only `blocked` changes the answer among decisions; the process goes last, so that
    // whatever it holds cannot make two summaries' keys equal.
    const id = `${decision === 'blocked' ? 'b' : '-'}${proto}${SEP}${dport ?? ''}${SEP}${workload}${SEP}${src}${SEP}${dst}${SEP}${process === null ? '' : `=${process}`}`;
    const known = this.memo.get(id);
    if (known !== undefined) return known;
    const attributed = this.compute(workload, t);
    const ambiguous = [proto, workload, src, dst].some((f) => f.includes(SEP));
    if (!ambiguous) {
      if (this.memo.size >= this.max) this.memo.clear();
      this.memo.set(id, attributed);
    }
    return attributed;
  }

  private compute(workload: string, t: LoggedSummary): Attributed | null {
    const [src, dst, proto, dport, process, , , , , decision] = t;
    const a = attributeSummary(
      { workload, src, dst, proto, dport, process, decision },
      this.ownerOf,
    );
    if (!a.kept) return null;
    return {
      keyText: edgeKeyText(a.key),
      edge: { key: a.key, sourceAddress: src, destinationAddress: dst },
    };
  }
}

/** `2026-03-04T10:17:` of `2026-03-04T10:17:05.123Z`: what canonical times share within a minute. */
const MINUTE_PREFIX = 17;
const CANONICAL = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/**
 * Epoch milliseconds of the log's times. They are canonical UTC text (`toISOString`), so
 * one Date.parse per distinct minute does: the seconds and milliseconds are read as digits.
 * Anything else (no agent sends it, but the log is a table anyone can write) is parsed whole.
 */
export class LogClock {
  /** The minute last parsed (its text up to the seconds), and its epoch milliseconds. */
  private prefix = '';
  private minuteMs = 0;

  millis(text: string): number {
    if (this.prefix === '' || !text.startsWith(this.prefix) || !canonicalTail(text)) {
      if (!CANONICAL.test(text) || !canonicalTail(text)) return Date.parse(text);
      this.prefix = text.slice(0, MINUTE_PREFIX);
      this.minuteMs = Date.parse(`${this.prefix}00.000Z`);
    }
    return this.minuteMs + digits(text, 17, 2) * 1000 + digits(text, 20, 3);
  }
}

const isDigit = (text: string, i: number) => {
  const c = text.charCodeAt(i);
  return c >= 48 && c <= 57;
};

/** `SS.mmmZ` after a minute's prefix, with seconds below 60 (as Date.parse wants them). */
function canonicalTail(text: string): boolean {
  return (
    text.length === 24 &&
    text.charCodeAt(17) <= 53 &&
    isDigit(text, 17) &&
    isDigit(text, 18) &&
    text.charCodeAt(19) === 46 &&
    isDigit(text, 20) &&
    isDigit(text, 21) &&
    isDigit(text, 22) &&
    text.charCodeAt(23) === 90
  );
}

function digits(text: string, from: number, count: number): number {
  let n = 0;
  for (let i = from; i < from + count; i++) n = n * 10 + text.charCodeAt(i) - 48;
  return n;
}

/** Adds every kept summary of a chunk of the log to `batch`. */
export function addSummaries(
  batch: TrafficBatch,
  entries: readonly LogEntry[],
  attributor: Attributor,
): void {
  // One clock per column: first and last seen each stay in their minute for long runs.
  const first = new LogClock();
  const last = new LogClock();
  for (const { workload, summaries } of entries) {
    for (const t of summaries) {
      const a = attributor.attribute(workload, t);
      if (!a) continue;
      batch.addTo(a.keyText, a.edge, {
        firstSeen: first.millis(t[5]),
        lastSeen: last.millis(t[6]),
        connections: t[7],
        blocked: t[9] === 'blocked' ? t[7] : 0,
        bytes: t[8],
      });
    }
  }
}

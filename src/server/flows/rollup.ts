/**
 * From a chunk of the ingest log to a traffic batch, at the rate agents append to it. The
 * log repeats itself: the same few thousand conversations, and times that share their minute.
 * So what is costly per summary (parsing addresses, building an edge key, parsing a time) is
 * done once per distinct conversation or minute and looked up after that.
 */
import {
  attributeResolved,
  edgeKeyText,
  reporterOf,
  resolveEnds,
  type OwnerOf,
  type Reporter,
  type ResolvedEnds,
} from '../../analysis/flows/edge-key.js';
import type { LogEntry } from '../../store/flow-store.js';
import type { LoggedSummary } from '../../store/flows.js';
import type { Pending, TrafficBatch } from './ingest.js';

/** Where a summary's traffic counts: its edge's key text and the edge as first seen. */
interface Attributed {
  readonly keyText: string;
  readonly edge: Pending;
}

/** One conversation's ends, resolved once, and its attributions by what the report adds. */
interface Conversation {
  readonly ends: ResolvedEnds | undefined;
  readonly byReport: Map<string, Attributed | null>;
}

/** Separates the memo key's fields; a summary whose fields hold it is attributed unmemoized. */
const SEP = '\u0001';

/**
 * What an attribution reads of a report, beyond its conversation: the process for the
 * destination's report or an import, whether it was blocked for the source's. The process
 * goes last, so that whatever it holds cannot make two keys equal.
 */
function reportKey(reporter: Reporter, process: string | null, decision: string | null): string {
  switch (reporter) {
    case 'source':
      return decision === 'blocked' ? 'sb' : 's-';
    case 'neither':
      return 'n';
    case 'import':
      return process === null ? 'i' : `i=${process}`;
    case 'destination':
      return process === null ? 'd' : `d=${process}`;
  }
}

/**
 * `attributeSummary` memoized in two steps. The conversation (protocol, port, addresses) is
 * resolved once, whichever agent reports it: a fleet reports the same far ends from many
 * workloads. The attribution is then memoized by what it reads of the report: which side
 * the reporter is on, the process (for the destination's report or an import) and whether
 * it was blocked (for the source's). One per estate: who owns an address is part of the
 * answer. Bounded; it starts over when full.
 */
export class Attributor {
  private readonly memo = new Map<string, Conversation>();
  private entries = 0;

  constructor(
    private readonly ownerOf: OwnerOf,
    private readonly max = 200_000,
  ) {}

  /** `t` as `workload`'s agent reported it ('' for an import). */
  attribute(workload: string, t: LoggedSummary): Attributed | null {
    const [src, dst, proto, dport, process, , , , , decision] = t;
    const id = `${proto}${SEP}${dport ?? ''}${SEP}${src}${SEP}${dst}`;
    let conversation = this.memo.get(id);
    if (conversation === undefined) {
      const ends = resolveEnds({ src, dst, proto, dport }, this.ownerOf);
      conversation = { ends, byReport: new Map() };
      const ambiguous = [proto, src, dst].some((f) => f.includes(SEP));
      if (!ambiguous) {
        this.makeRoom();
        this.memo.set(id, conversation);
      }
    }
    const { ends } = conversation;
    if (!ends) return null;
    const reporter = reporterOf(workload, ends);
    const report = reportKey(reporter, process, decision);
    const known = conversation.byReport.get(report);
    if (known !== undefined) return known;
    const a = attributeResolved(ends, reporter, { process, decision });
    const attributed = a.kept
      ? {
          keyText: edgeKeyText(a.key),
          edge: { key: a.key, sourceAddress: src, destinationAddress: dst },
        }
      : null;
    this.makeRoom();
    conversation.byReport.set(report, attributed);
    return attributed;
  }

  /** Counts an entry about to be memoized, starting over when the memo is full. */
  private makeRoom(): void {
    if (this.entries >= this.max) {
      this.memo.clear();
      this.entries = 0;
    }
    this.entries++;
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

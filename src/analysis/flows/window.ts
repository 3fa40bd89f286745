/**
 * Time: which bucket a moment falls in, and which resolution answers a window. A short,
 * recent window is read from minute buckets; longer ones from hours, then days, each only
 * as far back as that resolution is kept. The window's ends are rounded out to whole
 * buckets, and the rounded window is what every answer reports.
 */
import {
  RESOLUTION_SECONDS,
  RESOLUTIONS,
  type FlowWindow,
  type Resolution,
  type WindowRequest,
} from './model.js';

/** A question the flow store cannot answer as asked; `field` names what to fix. */
export class FlowQueryError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'FlowQueryError';
  }
}

export type Retention = Readonly<Record<Resolution, number>>;

/** Minute buckets for a day, hour buckets for 90 days, day buckets for 400 days. */
export const DEFAULT_RETENTION: Retention = {
  minute: 86_400,
  hour: 90 * 86_400,
  day: 400 * 86_400,
};

export const DEFAULT_SINCE = '24h';
/** Longest window the minute buckets answer. */
export const MINUTE_WINDOW_LIMIT = 6 * 3600;
/** Longest window the hour buckets answer. */
export const HOUR_WINDOW_LIMIT = 14 * 86_400;

const UNIT_SECONDS: Readonly<Record<string, number>> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
  w: 604_800,
};

/** `15m`, `1h`, `24h`, `7d`, `2w` in seconds; null when it is not a duration. */
export function parseDuration(text: string): number | null {
  const m = /^(\d{1,6})([smhdw])$/.exec(text.trim());
  if (!m) return null;
  const seconds = Number(m[1]) * UNIT_SECONDS[m[2]!]!;
  return seconds > 0 ? seconds : null;
}

/** `minute=1d,hour=90d,day=400d` (any subset) over the defaults. */
export function parseRetention(text: string, base: Retention = DEFAULT_RETENTION): Retention {
  const out: Record<Resolution, number> = { ...base };
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')) {
    const [name, value, extra] = part.split('=');
    if (extra !== undefined || value === undefined || !RESOLUTIONS.includes(name as Resolution)) {
      throw new FlowQueryError(
        'retention',
        `"${part}" is not resolution=duration (minute, hour or day, e.g. hour=90d)`,
      );
    }
    const seconds = parseDuration(value);
    if (seconds === null)
      throw new FlowQueryError('retention', `"${value}" is not a duration (e.g. 36h, 90d, 2w)`);
    out[name as Resolution] = seconds;
  }
  return out;
}

/** The start of the bucket holding `epochSeconds`, in epoch seconds. */
export function bucketStart(epochSeconds: number, resolution: Resolution): number {
  const size = RESOLUTION_SECONDS[resolution];
  return Math.floor(epochSeconds / size) * size;
}

/** The bucket holding an ISO time (by whole seconds). */
export function bucketOf(iso: string, resolution: Resolution): number {
  return bucketStart(Math.floor(Date.parse(iso) / 1000), resolution);
}

export function isoOfSeconds(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString();
}

/** A window in epoch seconds, [from, to), bucket-aligned to its resolution. */
export interface ResolvedWindow {
  readonly from: number;
  readonly to: number;
  readonly resolution: Resolution;
}

function parseTime(field: string, text: string): number {
  const ms = Date.parse(text);
  if (!/^\d{4}-\d\d-\d\d/.test(text) || Number.isNaN(ms))
    throw new FlowQueryError(field, `"${text}" is not an ISO 8601 time`);
  return Math.floor(ms / 1000);
}

/** [from, to) in epoch seconds, before rounding. */
export function windowBounds(
  request: WindowRequest | undefined,
  now: Date,
): { from: number; to: number } {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const req = request ?? { since: DEFAULT_SINCE };
  if ('since' in req) {
    const seconds = parseDuration(req.since);
    if (seconds === null)
      throw new FlowQueryError('since', `"${req.since}" is not a duration (e.g. 15m, 1h, 24h, 7d)`);
    return { from: nowSeconds - seconds, to: nowSeconds };
  }
  const from = parseTime('from', req.from);
  const to = 'to' in req ? parseTime('to', req.to) : nowSeconds;
  if (to <= from) throw new FlowQueryError('to', 'must be after from');
  return { from, to };
}

/** The resolution that answers [from, to) seen at `now`, given what each resolution keeps. */
export function chooseResolution(
  from: number,
  to: number,
  nowSeconds: number,
  retention: Retention,
): Resolution {
  const span = to - from;
  if (span <= MINUTE_WINDOW_LIMIT && from >= nowSeconds - retention.minute) return 'minute';
  if (span <= HOUR_WINDOW_LIMIT && from >= nowSeconds - retention.hour) return 'hour';
  return 'day';
}

/** Rounds [from, to) out to whole buckets of `resolution`. */
export function alignWindow(from: number, to: number, resolution: Resolution): ResolvedWindow {
  const size = RESOLUTION_SECONDS[resolution];
  return {
    from: bucketStart(from, resolution),
    to: Math.ceil(to / size) * size,
    resolution,
  };
}

/** A window request, seen at `now`, as the aligned window and resolution that answer it. */
export function resolveWindow(
  request: WindowRequest | undefined,
  now: Date,
  retention: Retention,
  resolution?: Resolution,
): ResolvedWindow {
  const { from, to } = windowBounds(request, now);
  const chosen =
    resolution ?? chooseResolution(from, to, Math.floor(now.getTime() / 1000), retention);
  // An empty window (from = to after rounding) still covers the bucket it sits in.
  const aligned = alignWindow(from, to, chosen);
  return aligned.to > aligned.from
    ? aligned
    : { ...aligned, to: aligned.from + RESOLUTION_SECONDS[chosen] };
}

export function flowWindow(w: ResolvedWindow): FlowWindow {
  return { from: isoOfSeconds(w.from), to: isoOfSeconds(w.to), resolution: w.resolution };
}

const COARSER: Readonly<Record<Resolution, Resolution | null>> = {
  minute: 'hour',
  hour: 'day',
  day: null,
};

/** One part of a window read from one resolution's buckets. */
export interface WindowSegment {
  readonly resolution: Resolution;
  readonly from: number;
  readonly to: number;
}

/**
 * A window's totals read from as few buckets as possible: the whole hours (and days) inside
 * it from the coarser tables, only the ragged ends from the finer one. A day bucket holds
 * exactly the traffic of its hours, so the sums are the same; a 6 h window reads at most
 * two hours of minute buckets instead of 360 minutes per edge.
 */
export function windowSegments(from: number, to: number, resolution: Resolution): WindowSegment[] {
  const coarser = COARSER[resolution];
  if (coarser === null) return [{ resolution, from, to }];
  const size = RESOLUTION_SECONDS[coarser];
  const innerFrom = Math.ceil(from / size) * size;
  const innerTo = Math.floor(to / size) * size;
  if (innerTo <= innerFrom) return [{ resolution, from, to }];
  const out: WindowSegment[] = [];
  if (from < innerFrom) out.push({ resolution, from, to: innerFrom });
  out.push(...windowSegments(innerFrom, innerTo, coarser));
  if (innerTo < to) out.push({ resolution, from: innerTo, to });
  return out;
}

/**
 * `segments` cut at bucket boundaries into about `parts` pieces of equal bucket counts, so
 * that several readers can sum one window side by side. Every bucket is in exactly one
 * piece; a bucket is never cut. The pieces keep the segments' order.
 */
export function splitSegments(segments: readonly WindowSegment[], parts: number): WindowSegment[] {
  const bucketsOf = (s: WindowSegment) => (s.to - s.from) / RESOLUTION_SECONDS[s.resolution];
  const total = segments.reduce((n, s) => n + bucketsOf(s), 0);
  if (parts <= 1 || total <= 1) return [...segments];
  const share = Math.ceil(total / parts);
  const out: WindowSegment[] = [];
  for (const s of segments) {
    const size = RESOLUTION_SECONDS[s.resolution];
    for (let from = s.from; from < s.to;) {
      const to = Math.min(s.to, from + share * size);
      out.push({ resolution: s.resolution, from, to });
      from = to;
    }
  }
  return out;
}

import { describe, expect, it } from 'vitest';
import {
  bucketOf,
  bucketStart,
  DEFAULT_RETENTION,
  FlowQueryError,
  flowWindow,
  parseDuration,
  parseRetention,
  resolveWindow,
  splitSegments,
  windowSegments,
} from '../../../src/analysis/flows/window.js';

const now = new Date('2026-11-23T12:34:56.789Z');
const at = (iso: string) => Date.parse(iso) / 1000;

describe('buckets', () => {
  it('start at the minute, hour or UTC day holding a moment', () => {
    const t = at('2026-11-23T12:34:56Z');
    expect(bucketStart(t, 'minute')).toBe(at('2026-11-23T12:34:00Z'));
    expect(bucketStart(t, 'hour')).toBe(at('2026-11-23T12:00:00Z'));
    expect(bucketStart(t, 'day')).toBe(at('2026-11-23T00:00:00Z'));
    expect(bucketOf('2026-11-23T23:59:59.999Z', 'day')).toBe(at('2026-11-23T00:00:00Z'));
    expect(bucketStart(at('2026-11-23T12:00:00Z'), 'hour')).toBe(at('2026-11-23T12:00:00Z'));
  });
});

describe('durations and retention', () => {
  it('reads 15m, 1h, 24h, 7d, 2w', () => {
    expect(parseDuration('15m')).toBe(900);
    expect(parseDuration('24h')).toBe(86_400);
    expect(parseDuration('7d')).toBe(604_800);
    expect(parseDuration('2w')).toBe(1_209_600);
    for (const bad of ['', '0h', '1y', 'h', '1.5h', '-1h', 'yesterday'])
      expect(parseDuration(bad)).toBeNull();
  });
  it('reads a retention spec over the defaults and names what is wrong', () => {
    expect(parseRetention('minute=2d,day=1w')).toEqual({
      minute: 172_800,
      hour: DEFAULT_RETENTION.hour,
      day: 604_800,
    });
    expect(parseRetention('')).toEqual(DEFAULT_RETENTION);
    expect(() => parseRetention('second=1d')).toThrow(/"second=1d" is not resolution=duration/);
    expect(() => parseRetention('hour=forever')).toThrow(/"forever" is not a duration/);
    expect(() => parseRetention('hour')).toThrow(FlowQueryError);
  });
});

describe('resolving a window', () => {
  it('answers short recent windows from minutes, rounded out to whole minutes', () => {
    const w = resolveWindow({ since: '1h' }, now, DEFAULT_RETENTION);
    expect(flowWindow(w)).toEqual({
      from: '2026-11-23T11:34:00.000Z',
      to: '2026-11-23T12:35:00.000Z',
      resolution: 'minute',
    });
    expect(resolveWindow({ since: '6h' }, now, DEFAULT_RETENTION).resolution).toBe('minute');
  });
  it('uses hours up to 14 days and days beyond, by default for 24 hours', () => {
    const day = resolveWindow(undefined, now, DEFAULT_RETENTION);
    expect(flowWindow(day)).toEqual({
      from: '2026-11-22T12:00:00.000Z',
      to: '2026-11-23T13:00:00.000Z',
      resolution: 'hour',
    });
    expect(resolveWindow({ since: '14d' }, now, DEFAULT_RETENTION).resolution).toBe('hour');
    const month = resolveWindow({ since: '30d' }, now, DEFAULT_RETENTION);
    expect(flowWindow(month)).toMatchObject({
      from: '2026-10-24T00:00:00.000Z',
      to: '2026-11-24T00:00:00.000Z',
      resolution: 'day',
    });
  });
  it('moves to a coarser resolution when the finer one no longer keeps the start', () => {
    const old = { from: '2026-11-21T10:00:00Z', to: '2026-11-21T11:00:00Z' };
    expect(resolveWindow(old, now, DEFAULT_RETENTION).resolution).toBe('hour');
    const short = { ...DEFAULT_RETENTION, hour: 86_400 };
    expect(resolveWindow(old, now, short).resolution).toBe('day');
  });
  it('takes from/to and from alone, and an explicit resolution', () => {
    expect(
      flowWindow(
        resolveWindow(
          { from: '2026-11-23T10:10:10Z', to: '2026-11-23T10:20:00Z' },
          now,
          DEFAULT_RETENTION,
        ),
      ),
    ).toEqual({
      from: '2026-11-23T10:10:00.000Z',
      to: '2026-11-23T10:20:00.000Z',
      resolution: 'minute',
    });
    expect(resolveWindow({ from: '2026-11-23T12:00:00Z' }, now, DEFAULT_RETENTION)).toMatchObject({
      to: at('2026-11-23T12:35:00Z'),
    });
    expect(resolveWindow({ since: '1h' }, now, DEFAULT_RETENTION, 'day')).toMatchObject({
      from: at('2026-11-23T00:00:00Z'),
      to: at('2026-11-24T00:00:00Z'),
      resolution: 'day',
    });
  });
  it('refuses what it cannot read, naming the field', () => {
    expect(() => resolveWindow({ since: 'forever' }, now, DEFAULT_RETENTION)).toThrow(/^since: /);
    expect(() => resolveWindow({ from: 'monday' }, now, DEFAULT_RETENTION)).toThrow(/^from: /);
    expect(() =>
      resolveWindow(
        { from: '2026-11-23T10:00:00Z', to: '2026-11-23T09:00:00Z' },
        now,
        DEFAULT_RETENTION,
      ),
    ).toThrow(/^to: must be after from/);
  });
});

describe('window segments', () => {
  const seg = (from: string, to: string, resolution: 'minute' | 'hour' | 'day') =>
    windowSegments(at(from), at(to), resolution).map(
      (s) =>
        `${s.resolution} ${new Date(s.from * 1000).toISOString().slice(5, 16)}..${new Date(s.to * 1000).toISOString().slice(5, 16)}`,
    );
  it('reads whole hours and days from the coarser buckets, the ragged ends from the finer', () => {
    expect(seg('2026-11-23T06:34:00Z', '2026-11-23T12:35:00Z', 'minute')).toEqual([
      'minute 11-23T06:34..11-23T07:00',
      'hour 11-23T07:00..11-23T12:00',
      'minute 11-23T12:00..11-23T12:35',
    ]);
    expect(seg('2026-11-20T12:00:00Z', '2026-11-23T13:00:00Z', 'hour')).toEqual([
      'hour 11-20T12:00..11-21T00:00',
      'day 11-21T00:00..11-23T00:00',
      'hour 11-23T00:00..11-23T13:00',
    ]);
    expect(seg('2026-11-22T23:58:00Z', '2026-11-24T00:02:00Z', 'minute')).toEqual([
      'minute 11-22T23:58..11-23T00:00',
      'day 11-23T00:00..11-24T00:00',
      'minute 11-24T00:00..11-24T00:02',
    ]);
  });
  it('keeps a window inside one coarser bucket whole, and days as they are', () => {
    expect(seg('2026-11-23T10:10:00Z', '2026-11-23T10:50:00Z', 'minute')).toEqual([
      'minute 11-23T10:10..11-23T10:50',
    ]);
    expect(seg('2026-11-23T10:00:00Z', '2026-11-23T11:00:00Z', 'minute')).toEqual([
      'hour 11-23T10:00..11-23T11:00',
    ]);
    expect(seg('2026-10-01T00:00:00Z', '2026-11-01T00:00:00Z', 'day')).toEqual([
      'day 10-01T00:00..11-01T00:00',
    ]);
  });
  it('covers the window exactly, without gaps or overlaps', () => {
    for (let i = 0; i < 200; i++) {
      const from = 1_790_000_000 + Math.floor(Math.random() * 2_000_000) * 60;
      const to = from + 60 * (1 + Math.floor(Math.random() * 20_000));
      const parts = windowSegments(from, to, 'minute');
      expect(parts[0]!.from).toBe(from);
      expect(parts[parts.length - 1]!.to).toBe(to);
      for (let j = 1; j < parts.length; j++) expect(parts[j]!.from).toBe(parts[j - 1]!.to);
    }
  });
});

describe('splitSegments', () => {
  const buckets = (s: { resolution: 'minute' | 'hour' | 'day'; from: number; to: number }) =>
    (s.to - s.from) / { minute: 60, hour: 3600, day: 86_400 }[s.resolution];

  it('cuts a window into pieces of about equal bucket counts, at bucket boundaries', () => {
    // 7 days back from 12:34: minutes to 13:00, hours to midnight, 6 days, hours, minutes.
    const from = at('2026-11-16T12:34:00Z');
    const to = at('2026-11-23T12:35:00Z');
    const segments = windowSegments(from, to, 'minute');
    const pieces = splitSegments(segments, 2);
    const total = segments.reduce((n, s) => n + buckets(s), 0);
    expect(pieces.reduce((n, s) => n + buckets(s), 0)).toBe(total);
    for (const p of pieces) {
      expect(Number.isInteger(buckets(p))).toBe(true);
      expect(buckets(p)).toBeLessThanOrEqual(Math.ceil(total / 2));
    }
    // One long segment in two halves.
    expect(splitSegments([{ resolution: 'minute', from: 0, to: 3600 }], 2)).toEqual([
      { resolution: 'minute', from: 0, to: 1800 },
      { resolution: 'minute', from: 1800, to: 3600 },
    ]);
  });

  it('leaves a window alone for one reader, or when it is one bucket', () => {
    const one = [{ resolution: 'hour' as const, from: 0, to: 7200 }];
    expect(splitSegments(one, 1)).toEqual(one);
    expect(splitSegments([{ resolution: 'day', from: 0, to: 86_400 }], 4)).toEqual([
      { resolution: 'day', from: 0, to: 86_400 },
    ]);
  });

  it('covers every window exactly, without gaps or overlaps, for any number of readers', () => {
    for (let i = 0; i < 300; i++) {
      // Windows are whole minutes (resolveWindow aligns them).
      const from = 1_790_000_040 + Math.floor(Math.random() * 2_000_000) * 60;
      const to = from + 60 * (1 + Math.floor(Math.random() * 20_000));
      const segments = windowSegments(from, to, 'minute');
      const parts = 1 + Math.floor(Math.random() * 6);
      const pieces = splitSegments(segments, parts);
      expect(pieces[0]!.from).toBe(from);
      expect(pieces[pieces.length - 1]!.to).toBe(to);
      for (let j = 1; j < pieces.length; j++) expect(pieces[j]!.from).toBe(pieces[j - 1]!.to);
      // Within a resolution, nothing but whole buckets; at most one cut piece per segment.
      for (const p of pieces) expect(Number.isInteger(buckets(p))).toBe(true);
      expect(pieces.length).toBeLessThanOrEqual(parts + segments.length);
    }
  });
});

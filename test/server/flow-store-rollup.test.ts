import { describe, expect, it } from 'vitest';
import { attributeSummary, edgeKeyText } from '../../src/analysis/flows/edge-key.js';
import type { Workload } from '../../src/policy/model.js';
import { Attributor, LogClock } from '../../src/server/flows/rollup.js';
import type { LoggedSummary } from '../../src/store/flows.js';

describe('LogClock', () => {
  it('reads every time as Date.parse does, canonical or not', () => {
    const clock = new LogClock();
    const times = [
      '2026-03-04T10:17:05.123Z',
      '2026-03-04T10:17:59.999Z',
      '2026-03-04T10:17:00.000Z',
      '2026-03-04T10:18:00.001Z',
      '2026-03-04T10:17:30.500Z',
      '2026-12-31T23:59:59.999Z',
      '2027-01-01T00:00:00.000Z',
      // Not canonical: parsed whole, and the next canonical time is still right.
      '2026-03-04T12:17:05+02:00',
      '2026-03-04T10:17:60.000Z',
      '2026-03-04T10:17:5x.000Z',
      'yesterday',
      '2026-03-04T10:17:06.007Z',
    ];
    for (const t of times) expect(clock.millis(t), t).toEqual(Date.parse(t));
  });
});

describe('Attributor', () => {
  const web = { name: 'web', addresses: ['10.0.0.1'], managed: true } as unknown as Workload;
  const db = { name: 'db', addresses: ['10.0.0.2'], managed: true } as unknown as Workload;
  const owners = new Map([
    ['10.0.0.1', web],
    ['10.0.0.2', db],
  ]);
  const ownerOf = (a: string) => owners.get(a);
  /** A summary as `workload`'s agent logged it. */
  const tuple = (over: Partial<Record<string, unknown>>): [string, LoggedSummary] => {
    const s = {
      workload: 'db',
      src: '10.0.0.1',
      dst: '10.0.0.2',
      proto: 'tcp',
      dport: 5432,
      process: 'postgres',
      decision: null,
      ...over,
    } as Record<string, unknown>;
    return [
      s.workload as string,
      [
        s.src,
        s.dst,
        s.proto,
        s.dport,
        s.process,
        '2026-03-04T10:17:05.123Z',
        '2026-03-04T10:17:05.123Z',
        1,
        10,
        s.decision,
      ] as unknown as LoggedSummary,
    ];
  };

  it('answers as attributeSummary does, however often a summary repeats', () => {
    const attributor = new Attributor(ownerOf);
    const cases = [
      tuple({}),
      tuple({ workload: 'web', process: 'psql' }),
      tuple({ workload: 'web', process: 'psql', decision: 'blocked' }),
      tuple({ workload: 'web', process: 'psql', decision: 'potentially-blocked' }),
      tuple({ workload: '', src: '::ffff:10.0.0.1' }),
      tuple({ workload: 'db', process: null }),
      tuple({ workload: 'db', process: '' }),
      tuple({ proto: 'sctp' }),
      tuple({ workload: 'gone', dst: '192.0.2.9' }),
      tuple({ src: 'not\u0001an address' }),
    ];
    for (let round = 0; round < 2; round++) {
      for (const [workload, t] of cases) {
        const [src, dst, proto, dport, process, , , , , decision] = t;
        const expected = attributeSummary(
          { workload, src, dst, proto, dport, process, decision },
          ownerOf,
        );
        const got = attributor.attribute(workload, t);
        if (!expected.kept) expect(got, JSON.stringify(t)).toBeNull();
        else
          expect(got, JSON.stringify(t)).toEqual({
            keyText: edgeKeyText(expected.key),
            edge: { key: expected.key, sourceAddress: src, destinationAddress: dst },
          });
      }
    }
  });

  it('answers as attributeSummary does when many reporters share conversations, and when it starts over', () => {
    const unmanaged = {
      name: 'nas',
      addresses: ['10.0.0.3'],
      managed: false,
    } as unknown as Workload;
    const more = new Map([...owners, ['10.0.0.3', unmanaged]]);
    const ownerOfMore = (a: string) => more.get(a);
    const pick = <T>(xs: readonly T[], r: number) => xs[(r >>> 16) % xs.length]!;
    let seed = 7;
    const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    // A small bound, so the memo starts over many times along the way.
    for (const max of [5, 200_000]) {
      const attributor = new Attributor(ownerOfMore, max);
      for (let i = 0; i < 3000; i++) {
        const [workload, t] = tuple({
          workload: pick(['web', 'db', 'nas', '', 'gone'], random()),
          src: pick(['10.0.0.1', '10.0.0.2', '10.0.0.3', '192.0.2.7', '::ffff:10.0.0.1'], random()),
          dst: pick(['10.0.0.1', '10.0.0.2', '10.0.0.3', '198.51.100.1'], random()),
          proto: pick(['tcp', 'udp', 'icmp', 'sctp'], random()),
          dport: pick([5432, 443, null], random()),
          process: pick(['postgres', 'psql', null, ''], random()),
          decision: pick([null, 'blocked', 'allowed', 'potentially-blocked'], random()),
        });
        const [src, dst, proto, dport, process, , , , , decision] = t;
        const expected = attributeSummary(
          { workload, src, dst, proto, dport, process, decision },
          ownerOfMore,
        );
        const got = attributor.attribute(workload, t);
        const what = `${workload} ${JSON.stringify(t)}`;
        if (!expected.kept) expect(got, what).toBeNull();
        else
          expect(got, what).toEqual({
            keyText: edgeKeyText(expected.key),
            edge: { key: expected.key, sourceAddress: src, destinationAddress: dst },
          });
      }
    }
  });
});

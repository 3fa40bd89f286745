/**
 * Flow telemetry without I/O: connections from recorded conntrack lines become attributed,
 * aggregated flow summaries, counted once; the recording sets become blocked attempts.
 */
import { describe, expect, it } from 'vitest';
import { parseConntrackLine, type ConntrackRecord } from '../../src/agent/parse/conntrack.js';
import {
  parseNftListing,
  recordedElements,
  type RecordedElement,
} from '../../src/agent/parse/nft-json.js';
import { parseSs } from '../../src/agent/parse/ss.js';
import { FlowAggregator, type FlowObservation } from '../../src/agent/telemetry/aggregate.js';
import { ConnectionTracker, tupleCheck } from '../../src/agent/telemetry/connections.js';
import { IdTable } from '../../src/agent/telemetry/id-table.js';
import { RecordedAttempts } from '../../src/agent/telemetry/recorded.js';
import { SocketTable } from '../../src/agent/telemetry/sockets.js';
import { mulberry32 } from '../../src/random.js';
import { fixture, TABLE_JSON } from './support/fakes.js';

const CLIENT = '198.18.250.2';
const SERVER = '198.18.250.1';
const recorded = (name: string) =>
  fixture(name)
    .split('\n')
    .map(parseConntrackLine)
    .filter((r) => r !== null);
const T0 = Date.parse('2026-01-05T10:00:00.000Z');

function observation(over: Partial<FlowObservation>): FlowObservation {
  return {
    src: CLIENT,
    dst: SERVER,
    proto: 'tcp',
    dport: 5432,
    process: undefined,
    decision: undefined,
    at: T0,
    connections: 1,
    bytes: 0,
    ...over,
  };
}

describe('flow aggregation', () => {
  it('sums connections and bytes per flow, whatever the source port, with first and last seen', () => {
    const a = new FlowAggregator();
    a.add(observation({ at: T0 + 2000, process: 'psql' }));
    a.add(observation({ at: T0, process: 'psql', bytes: 10 }));
    a.add(observation({ at: T0 + 5000, process: 'psql', connections: 0, bytes: 300 }));
    a.add(observation({ at: T0 + 1000, process: 'pg_dump' }));
    a.add(observation({ at: T0 + 1000, dport: 6379, decision: 'blocked' }));
    const { summaries, overflow } = a.drain();
    expect(overflow).toBe(0);
    expect(summaries).toEqual([
      {
        src: CLIENT,
        dst: SERVER,
        proto: 'tcp',
        dport: 5432,
        process: 'psql',
        firstSeen: '2026-01-05T10:00:00.000Z',
        lastSeen: '2026-01-05T10:00:05.000Z',
        connections: 2,
        bytes: 310,
      },
      expect.objectContaining({ process: 'pg_dump', connections: 1 }),
      {
        src: CLIENT,
        dst: SERVER,
        proto: 'tcp',
        dport: 6379,
        firstSeen: '2026-01-05T10:00:01.000Z',
        lastSeen: '2026-01-05T10:00:01.000Z',
        connections: 1,
        bytes: 0,
        decision: 'blocked',
      },
    ]);
    expect(a.drain().summaries).toEqual([]);
  });

  it('keeps at most its bound of distinct flows per interval, and counts the rest', () => {
    const a = new FlowAggregator(2);
    for (const dport of [1, 2, 3, 4, 2]) a.add(observation({ dport }));
    const { summaries, overflow } = a.drain();
    expect(summaries.map((s) => [s.dport, s.connections])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(overflow).toBe(2);
  });
});

describe('the id table', () => {
  it('behaves like a map of (id, check) under random inserts and deletes (backward shift)', () => {
    const random = mulberry32(7);
    const table = new IdTable(1_000_000, 16);
    const model = new Map<string, number>();
    for (let i = 0; i < 50_000; i++) {
      // A small id space makes collisions and long probe runs common; two checks per id
      // stand for two live connections whose 32-bit ids collide.
      const id = Math.floor(random() * 5000) * 7919 + 1;
      const check = random() < 0.5 ? 0xdeadbeef : 17;
      const key = `${id}:${check}`;
      if (random() < 0.6) {
        const v = Math.floor(random() * 100);
        table.set(id, check, v);
        model.set(key, v);
      } else {
        expect(table.delete(id, check)).toBe(model.delete(key));
      }
    }
    expect(table.size).toBe(model.size);
    for (const [key, v] of model) {
      const [id, check] = key.split(':').map(Number);
      expect(table.get(id!, check!)).toBe(v);
    }
    expect(table.get(4, 17)).toBe(-1);
  });

  it('remembers no more than its limit, and sweeps what a generation did not mark', () => {
    const table = new IdTable(3);
    expect([1, 2, 3, 4].map((id) => table.set(id, 9, 0, 1))).toEqual([true, true, true, false]);
    table.mark(2, 9, 2);
    expect(table.mark(3, 8, 2)).toBe(false); // same id, another connection: not here
    table.set(5, 9, 0, 2); // refused: still full
    const gone: number[][] = [];
    expect(table.sweep(2, (id, check, value) => gone.push([id, check, value]))).toBe(2);
    expect(gone.sort((a, b) => a[0]! - b[0]!)).toEqual([
      [1, 9, 0],
      [3, 9, 0],
    ]);
    expect([1, 2, 3].map((id) => table.has(id, 9))).toEqual([false, true, false]);
  });
});

describe('connection tracking', () => {
  const clientSockets = new SocketTable(parseSs(fixture('ss-client.out')));
  const serverSockets = new SocketTable(parseSs(fixture('ss-server.out')));

  /** A whole `conntrack -L` dump of `records`, read by `t` (on the client). */
  function dumped(t: ConnectionTracker, records: readonly ConntrackRecord[]): void {
    t.beginDump();
    for (const r of records) t.record({ ...r, event: 'entry' }, T0, clientSockets);
    t.endDump();
  }

  function tracker(local: string) {
    const seen: FlowObservation[] = [];
    const t = new ConnectionTracker((o) => seen.push(o));
    t.setLocalAddresses(
      new Set(['127.0.0.1', local, local === CLIENT ? '2001:db8::250:2' : '2001:db8::250:1']),
    );
    return { t, seen };
  }

  it('on the client: outbound connections with the process that owns the source port', () => {
    const { t, seen } = tracker(CLIENT);
    t.setDecision('allowed');
    for (const r of recorded('conntrack-events.out')) t.record(r, T0, clientSockets);
    // 33766 is in the socket table (node); the others wait for the next snapshot.
    expect(seen).toEqual([
      {
        src: CLIENT,
        dst: SERVER,
        proto: 'tcp',
        dport: 8080,
        process: 'node',
        decision: 'allowed',
        at: T0,
        connections: 1,
        bytes: 0,
      },
      // 7777 was refused: its NEW was waiting, its DESTROY releases it and adds its bytes.
      expect.objectContaining({ dport: 7777, connections: 1, bytes: 0, process: undefined }),
      expect.objectContaining({ dport: 7777, connections: 0, bytes: 100 }),
      // ICMP has no socket to wait for.
      expect.objectContaining({ proto: 'icmp', dport: undefined, connections: 1 }),
    ]);
    expect(t.waiting).toBe(3); // 33776, 45600 (IPv6), the UDP one
    const later = new SocketTable([
      ...clientSockets.entries,
      ...parseSs('udp ESTAB 0 0 198.18.250.2:58644 198.18.250.1:5353 users:(("dig",pid=4,fd=3))'),
    ]);
    t.resolvePending(later);
    expect(seen.slice(4).map((o) => [o.dport, o.process])).toEqual([
      [8080, undefined],
      [9090, undefined],
      [5353, 'dig'],
    ]);
    expect(t.waiting).toBe(0);
  });

  it('on the server: inbound connections with the listener behind the port', () => {
    const { t, seen } = tracker(SERVER);
    for (const r of recorded('conntrack-events.out')) t.record(r, T0, serverSockets);
    expect(seen.filter((o) => o.connections > 0).map((o) => [o.dst, o.dport, o.process])).toEqual([
      [SERVER, 8080, 'node'],
      [SERVER, 8080, 'node'],
      ['2001:db8::250:1', 9090, 'node'],
      // Nothing listens on 7777: it waited for a snapshot until its DESTROY released it.
      [SERVER, 7777, undefined],
      [SERVER, 5353, 'node'],
      [SERVER, undefined, undefined], // ICMP
    ]);
    // Outside full mode a passing connection may be a potentially blocked one: no decision.
    expect(seen.every((o) => o.decision === undefined)).toBe(true);
  });

  it('counts each connection once across events and dumps; the first dump only learns', () => {
    const { t, seen } = tracker(CLIENT);
    const dump = recorded('conntrack-dump.out');
    // Start-up: the table already holds these (counted before a restart, perhaps).
    dumped(t, dump);
    expect(seen).toEqual([]);
    // Events for connections already known are not counted again...
    const established = dump.find((r) => r.dport === 8080 && r.bytes === 1380)!;
    t.record({ ...established, event: 'new' }, T0, clientSockets);
    expect(seen).toEqual([]);
    // ...a connection the event stream missed is counted by the next dump, once.
    const missed = { ...established, id: 42, sport: 40000 };
    for (let round = 0; round < 2; round++) {
      dumped(t, [...dump, missed]);
    }
    expect(seen).toEqual([expect.objectContaining({ dport: 8080, connections: 1 })]);
    // Its DESTROY adds its bytes to the same flow, with the process it was counted with.
    t.record({ ...missed, event: 'destroy', bytes: 5000 }, T0 + 1, clientSockets);
    expect(seen[1]).toMatchObject({ dport: 8080, connections: 0, bytes: 5000 });
    // A connection that left the table without its DESTROY is forgotten at the next dump.
    expect(t.tracked).toBe(5);
    dumped(t, dump.slice(0, 2));
    expect(t.tracked).toBe(2);
  });

  it('counts a connection once when a dump forgets it before its DESTROY is read', () => {
    const { t, seen } = tracker(CLIENT);
    const dump = recorded('conntrack-dump.out');
    dumped(t, dump);
    // A connection counted at its NEW, which leaves the kernel's table...
    const closing = { ...dump.find((r) => r.dport === 8080)!, id: 77, sport: 40001 };
    t.record({ ...closing, event: 'new' }, T0, clientSockets);
    t.resolvePending(clientSockets);
    expect(seen).toEqual([expect.objectContaining({ dport: 8080, connections: 1 })]);
    // ...so the next dump no longer lists it, while its DESTROY waits in the event stream.
    dumped(t, dump);
    t.record({ ...closing, event: 'destroy', bytes: 700 }, T0 + 1, clientSockets);
    // Its bytes, with the process it was counted with; not a second connection.
    expect(seen).toEqual([
      expect.objectContaining({ dport: 8080, connections: 1, bytes: 0 }),
      expect.objectContaining({
        dport: 8080,
        connections: 0,
        bytes: 700,
        process: seen[0]!.process,
      }),
    ]);
  });

  it('counts a connection whose NEW was lost at its DESTROY', () => {
    const { t, seen } = tracker(CLIENT);
    const [destroy] = recorded('conntrack-events.out').filter((r) => r.event === 'destroy');
    t.record(destroy!, T0, clientSockets);
    expect(seen).toEqual([expect.objectContaining({ dport: 7777, connections: 1, bytes: 100 })]);
  });

  it('tells apart two live connections whose 32-bit conntrack ids collide', () => {
    const { t, seen } = tracker(CLIENT);
    const dump = recorded('conntrack-dump.out');
    dumped(t, dump);
    const base = dump.find((r) => r.dport === 8080)!;
    const first = { ...base, id: 4242, sport: 40010 };
    const second = { ...base, id: 4242, sport: 40011 };
    expect(tupleCheck(first)).not.toBe(tupleCheck(second));
    // Both are counted, though the kernel gave them one id...
    t.record({ ...first, event: 'new' }, T0, clientSockets);
    t.record({ ...second, event: 'new' }, T0, clientSockets);
    t.resolvePending(clientSockets);
    expect(seen.map((o) => o.connections)).toEqual([1, 1]);
    // ...a dump lists both and counts neither again...
    dumped(t, [...dump, first, second]);
    expect(seen).toHaveLength(2);
    // ...and each DESTROY adds its own bytes, neither taken for a lost NEW.
    t.record({ ...first, event: 'destroy', bytes: 10 }, T0 + 1, clientSockets);
    t.record({ ...second, event: 'destroy', bytes: 20 }, T0 + 1, clientSockets);
    expect(seen.slice(2).map((o) => [o.connections, o.bytes])).toEqual([
      [0, 10],
      [0, 20],
    ]);
  });

  it('leaves out loopback and traffic merely forwarded through the host', () => {
    const { t, seen } = tracker(CLIENT);
    const [first] = recorded('conntrack-events.out');
    t.record({ ...first!, id: 1, src: '127.0.0.1', dst: '127.0.0.1' }, T0, clientSockets);
    t.record({ ...first!, id: 2, src: '198.18.9.9', dst: '198.18.9.10' }, T0, clientSockets);
    expect(seen).toEqual([]);
  });
});

describe('recorded attempts', () => {
  const elements = recordedElements(parseNftListing(TABLE_JSON()));
  const local = { v4: SERVER, v6: '2001:db8::250:1' };
  const listener = (_proto: string, _address: string, port: number) =>
    port === 8080 ? 'nginx' : undefined;

  it('reports what the blocked sets recorded since the last reading, as blocked flows', () => {
    const r = new RecordedAttempts();
    const first = r.read(elements, T0, local, listener);
    expect(first).toContainEqual({
      src: CLIENT,
      dst: SERVER,
      proto: 'tcp',
      dport: 8080,
      process: 'nginx',
      // The set's timeout is 3600 s and the element expires in 3599 s (whole seconds): seen
      // between 0 and 1 s ago, so at the latest time that may be, never before the attempt.
      firstSeen: '2026-01-05T10:00:00.000Z',
      lastSeen: '2026-01-05T10:00:00.000Z',
      connections: 2,
      bytes: 120,
      decision: 'blocked',
    });
    expect(first.find((s) => s.dport === 9090)).toMatchObject({
      src: '2001:db8::250:2',
      dst: '2001:db8::250:1',
    });
    expect(first).toHaveLength(4);
    // Nothing new: nothing to report.
    expect(r.read(elements, T0 + 5000, local, listener)).toEqual([]);
    // Three more attempts on 23.
    const more = elements.map((e): RecordedElement =>
      e.port === 23 ? { ...e, packets: 5, bytes: 300, expiresSeconds: 3600 } : e,
    );
    expect(r.read(more, T0 + 10_000, local, listener)).toEqual([
      expect.objectContaining({
        dport: 23,
        connections: 3,
        bytes: 180,
        firstSeen: '2026-01-05T10:00:05.000Z',
        lastSeen: '2026-01-05T10:00:10.000Z',
      }),
    ]);
    // After a reload the sets start empty: the counters are new attempts.
    r.forget();
    expect(r.read([{ ...more[0]!, packets: 1 }], T0 + 20_000, local, listener)).toHaveLength(1);
  });

  it('reports the would-be-blocked attempts of visibility mode as potentially blocked, outbound from the workload', () => {
    const r = new RecordedAttempts();
    const potential: RecordedElement = {
      set: 'potential_out4',
      verdict: 'potential',
      direction: 'outbound',
      remote: '198.18.9.9',
      proto: 'udp',
      port: 53,
      packets: 1,
      bytes: 60,
      expiresSeconds: 3600,
      timeoutSeconds: 3600,
    };
    expect(r.read([potential], T0, local, listener)).toEqual([
      expect.objectContaining({
        src: SERVER,
        dst: '198.18.9.9',
        proto: 'udp',
        dport: 53,
        decision: 'potentially-blocked',
      }),
    ]);
  });
});

describe('the socket table', () => {
  const socket = (
    state: string,
    local: [string, number],
    peer: [string, number] | null,
    name: string,
  ) => ({
    proto: 'tcp' as const,
    state,
    local: { address: local[0], port: local[1] },
    peer: peer && { address: peer[0], port: peer[1] },
    process: { name, pid: name.length },
  });

  it('names an outbound connection by both its ends, not by a reused source port', () => {
    // By the time the snapshot is taken, the client's source port 40000 has gone to the
    // agent's own connection to the control plane.
    const table = new SocketTable([
      socket('ESTAB', ['198.18.0.10', 40000], ['198.18.0.1', 7480], 'bulkhead-agent'),
      socket('ESTAB', ['198.18.0.10', 40001], ['198.18.0.11', 8080], 'nginx'),
      socket('UNCONN', ['*', 5353], null, 'avahi-daemon'),
    ]);
    expect(table.owner('tcp', '198.18.0.10', 40000, '198.18.0.11', 8080)).toBeUndefined();
    expect(table.owner('tcp', '198.18.0.10', 40001, '198.18.0.11', 8080)?.name).toBe('nginx');
    // An unconnected socket sends to anyone from its port.
    expect(table.owner('tcp', '198.18.0.10', 5353, '198.18.0.53', 53)?.name).toBe('avahi-daemon');
  });
});

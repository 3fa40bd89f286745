/**
 * From conntrack records to attributed flow observations, each connection counted once.
 *
 * - A NEW event counts a connection. Its direction comes from the local addresses: the
 *   original source is local for outbound, the original destination for inbound; loopback
 *   and traffic merely forwarded through the host are not this workload's flows.
 * - The process comes from the socket table (see sockets.ts). A connection whose socket
 *   the last snapshot did not have waits for the next one (`resolvePending`).
 * - A DESTROY event adds the connection's bytes (known only at its end) to the same flow,
 *   attributed to the same process; one whose NEW was never seen is counted then.
 * - A periodic dump (`conntrack -L`) counts the connections the event stream missed
 *   (the kernel drops events under load). The first dump after start only learns what is
 *   there: those connections may have been counted before a restart, and counting one twice
 *   is worse than missing the few opened while the agent was down.
 *
 * Counted connections are remembered by conntrack id and tuple check while they live
 * (id-table.ts), with their process, so a dump or a DESTROY can tell them from the ones
 * never seen.
 *
 * Pure: no I/O; time is given.
 */
import { isLoopback } from '../parse/ip-addr.js';
import type { ConntrackRecord } from '../parse/conntrack.js';
import type { FlowDecision, FlowProto } from '../wire.js';
import type { FlowObservation } from './aggregate.js';
import { IdTable } from './id-table.js';
import type { SocketTable } from './sockets.js';

export interface TrackerOptions {
  /** Live connections remembered (by id). */
  readonly maxTracked?: number;
  /** Connections waiting for a socket snapshot to name their process. */
  readonly maxPending?: number;
}

type Direction = 'inbound' | 'outbound';

interface Pending {
  readonly id: number;
  readonly check: number;
  readonly observation: FlowObservation;
  readonly direction: Direction;
  readonly ends: Ends;
}

/** A connection's two ends as this host sees them. */
interface Ends {
  readonly local: string;
  readonly localPort: number;
  readonly remote: string;
  readonly remotePort: number;
}

function endsOf(r: ConntrackRecord, direction: Direction): Ends {
  return direction === 'outbound'
    ? { local: r.src, localPort: r.sport, remote: r.dst, remotePort: r.dport }
    : { local: r.dst, localPort: r.dport, remote: r.src, remotePort: r.sport };
}

/**
 * A check of a connection beside its conntrack id: its original ports. Linux names a
 * conntrack entry by a 32-bit hash, so among the 25k connections a host at 1k/s holds in
 * TIME_WAIT, two share an id in about one run in fifteen, and by id alone the second would
 * pass for one already counted. Two such connections with the same source and destination
 * ports as well are a chance in hundreds of millions. The ports are what the agent already
 * has as numbers (it runs without an optimizing compiler: hashing the addresses' text
 * on every event costs a visible share of its CPU).
 */
export function tupleCheck(r: ConntrackRecord): number {
  return (((r.sport & 0xffff) << 16) | (r.dport & 0xffff)) >>> 0;
}

/** A pending connection's key: its id and source port, exact in a double (48 bits). */
const pendingKey = (id: number, check: number) => id * 0x10000 + (check >>> 16);

/** At most this many distinct process names are remembered by index. */
const MAX_NAMES = 0xfff0;

export class ConnectionTracker {
  private local: ReadonlySet<string> = new Set();
  private decision: FlowDecision | undefined;
  private readonly known: IdTable;
  private readonly pending = new Map<number, Pending>();
  /**
   * What the last dump's sweep forgot, with each one's process index. The dump and the event
   * stream are read side by side, so a connection that left the table may be swept before
   * its DESTROY event, still queued, is read: that DESTROY is then not a lost NEW.
   */
  private ended: IdTable;
  private readonly maxPending: number;
  /** Process names by index; index 0 is "no process". */
  private names: (string | undefined)[] = [undefined];
  private nameIndex = new Map<string, number>();
  /** The mark of the dump in progress (or of the last one). */
  private generation = 1;
  private dumping = false;
  private dumps = 0;

  constructor(
    private readonly sink: (o: FlowObservation) => void,
    options: TrackerOptions = {},
  ) {
    this.known = new IdTable(options.maxTracked ?? 200_000);
    this.ended = new IdTable(this.known.limit);
    this.maxPending = options.maxPending ?? 10_000;
  }

  /** The host's own addresses (every interface's). */
  setLocalAddresses(addresses: ReadonlySet<string>): void {
    this.local = addresses;
  }

  /**
   * The decision conntrack's connections carry. Only full mode can say `allowed` for sure:
   * the kernel confirms a connection only once every filter let it through, and in full mode
   * nothing passes that no allow rule admits. In selective and visibility modes a passing
   * connection may be a potentially blocked one, which the recording sets report instead.
   */
  setDecision(decision: FlowDecision | undefined): void {
    this.decision = decision;
  }

  get tracked(): number {
    return this.known.size;
  }

  get waiting(): number {
    return this.pending.size;
  }

  record(r: ConntrackRecord, at: number, sockets: SocketTable): void {
    switch (r.event) {
      case 'new':
        this.open(r, tupleCheck(r), at, sockets, true);
        return;
      case 'destroy':
        this.close(r, tupleCheck(r), at, sockets);
        return;
      case 'entry':
        this.dumped(r, tupleCheck(r), at, sockets);
        return;
      case 'update':
        return;
    }
  }

  /** Starts reading a dump; its records come through `record` as `entry`. */
  beginDump(): void {
    this.generation = (this.generation % 255) + 1;
    this.dumping = true;
  }

  /** A dump is complete: what it no longer holds has ended (its DESTROY event was lost). */
  endDump(): void {
    if (!this.dumping) return;
    this.dumping = false;
    this.dumps++;
    const ended = new IdTable(this.known.limit);
    this.known.sweep(this.generation, (id, check, value) => ended.set(id, check, value));
    this.ended = ended;
  }

  /** A dump failed half-way: forget it without concluding anything. */
  abandonDump(): void {
    this.dumping = false;
  }

  /** Names the process of waiting connections from a fresh socket snapshot; all are released. */
  resolvePending(sockets: SocketTable): void {
    for (const p of this.pending.values()) this.release(p, sockets);
    this.pending.clear();
  }

  private release(p: Pending, sockets: SocketTable): void {
    const o = p.observation;
    const process = this.lookUp(o.proto, p.direction, p.ends, sockets);
    this.known.set(p.id, p.check, this.indexOf(process), this.generation);
    this.sink(process === undefined ? o : { ...o, process });
  }

  private indexOf(name: string | undefined): number {
    if (name === undefined) return 0;
    let i = this.nameIndex.get(name);
    if (i === undefined) {
      if (this.names.length >= MAX_NAMES) return 0;
      i = this.names.length;
      this.names.push(name);
      this.nameIndex.set(name, i);
    }
    return i;
  }

  private lookUp(
    proto: FlowProto,
    direction: Direction,
    ends: Ends,
    sockets: SocketTable,
  ): string | undefined {
    if (proto !== 'tcp' && proto !== 'udp') return undefined;
    // Outbound by the whole 4-tuple: a source port is soon reused by another process, so a
    // snapshot taken a moment later may hold someone else's socket on the same port.
    const p =
      direction === 'inbound'
        ? sockets.listener(proto, ends.local, ends.localPort)
        : sockets.owner(proto, ends.local, ends.localPort, ends.remote, ends.remotePort);
    return p?.name;
  }

  private direction(r: ConntrackRecord): Direction | null {
    if (isLoopback(r.src) || isLoopback(r.dst)) return null;
    if (this.local.has(r.src)) return 'outbound';
    if (this.local.has(r.dst)) return 'inbound';
    return null;
  }

  private observation(
    r: ConntrackRecord,
    at: number,
    connections: number,
    bytes: number,
    process: string | undefined,
  ): FlowObservation {
    const ports = r.proto === 'tcp' || r.proto === 'udp';
    return {
      src: r.src,
      dst: r.dst,
      proto: r.proto,
      dport: ports && r.dport >= 0 ? r.dport : undefined,
      process,
      decision: this.decision,
      at,
      connections,
      bytes,
    };
  }

  private open(
    r: ConntrackRecord,
    check: number,
    at: number,
    sockets: SocketTable,
    wait: boolean,
  ): void {
    const key = pendingKey(r.id, check);
    if (this.known.has(r.id, check) || this.pending.has(key)) return;
    const direction = this.direction(r);
    if (!direction) return;
    const ends = endsOf(r, direction);
    const process = this.lookUp(r.proto, direction, ends, sockets);
    const o = this.observation(r, at, 1, 0, process);
    if (
      process === undefined &&
      wait &&
      (r.proto === 'tcp' || r.proto === 'udp') &&
      this.pending.size < this.maxPending
    ) {
      this.pending.set(key, { id: r.id, check, observation: o, direction, ends });
      return;
    }
    this.known.set(r.id, check, this.indexOf(process), this.generation);
    this.sink(o);
  }

  private close(r: ConntrackRecord, check: number, at: number, sockets: SocketTable): void {
    const key = pendingKey(r.id, check);
    const waiting = this.pending.get(key);
    if (waiting) {
      // Its socket is gone by now; release it with whatever the snapshot can still say.
      this.pending.delete(key);
      this.release(waiting, sockets);
    }
    let known = this.known.get(r.id, check);
    this.known.delete(r.id, check);
    if (known < 0) {
      known = this.ended.get(r.id, check);
      this.ended.delete(r.id, check);
    }
    const bytes = Math.max(0, r.bytes);
    const direction = this.direction(r);
    if (!direction) return;
    if (known < 0) {
      // Never seen: its NEW event was lost. Count it now, with its bytes.
      this.sink(
        this.observation(
          r,
          at,
          1,
          bytes,
          this.lookUp(r.proto, direction, endsOf(r, direction), sockets),
        ),
      );
      return;
    }
    if (bytes > 0) this.sink(this.observation(r, at, 0, bytes, this.names[known]));
  }

  private dumped(r: ConntrackRecord, check: number, at: number, sockets: SocketTable): void {
    if (this.known.mark(r.id, check, this.generation) || this.pending.has(pendingKey(r.id, check)))
      return;
    if (this.dumps === 0 && this.dumping) {
      // The first dump after start: remember, do not count.
      const direction = this.direction(r);
      if (!direction) return;
      this.known.set(
        r.id,
        check,
        this.indexOf(this.lookUp(r.proto, direction, endsOf(r, direction), sockets)),
        this.generation,
      );
      return;
    }
    this.open(r, check, at, sockets, false);
  }
}

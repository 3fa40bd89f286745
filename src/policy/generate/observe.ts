/**
 * The one pass over every flow summary: check it, then fold it into its distinct flow
 * (source, destination, service). Everything after works per distinct flow, so this pass is
 * the floor of the generator's cost (the benchmark prints it beside the whole).
 */
import { ProblemList } from './errors.js';
import type { MutableTally } from './tally.js';
import { hashTriple } from './triples.js';
import {
  isTransport,
  type FlowPeer,
  type FlowTally,
  type ObservedFlow,
  type ObservedService,
} from './types.js';

/** A distinct service of the summaries: one object and text, shared by its flows. */
export interface GroupedService {
  readonly service: ObservedService;
  /** `443/tcp`, `3306/tcp@mysqld`, `icmp/8`: the service as a person writes it. */
  readonly text: string;
}

/**
 * The summaries grouped into distinct flows (source, destination, service), numbered 0 to
 * size - 1 in order of first appearance (callers sort what they output). A flow is read from
 * columns by its number: the generator's passes over a hundred thousand flows then walk a
 * few arrays in order, not an object (and its tally) per flow scattered over the heap.
 */
export class GroupedFlows {
  constructor(
    /** How many summaries were given. */
    readonly total: number,
    /** The distinct ends, by id: each is resolved once, not once per flow. */
    readonly peers: readonly FlowPeer[],
    /** The distinct services, by id. */
    readonly services: readonly GroupedService[],
    /** Per flow: its ends' and its service's ids. */
    readonly sourceIds: readonly number[],
    readonly destinationIds: readonly number[],
    readonly serviceIds: readonly number[],
    /** Per flow: where its first summary was in the input, for messages. */
    readonly firstIndexes: readonly number[],
    /** Per flow: its tally (summaries, connections, first and last seen). */
    readonly summaries: readonly number[],
    readonly connections: readonly number[],
    readonly firstSeen: readonly string[],
    readonly lastSeen: readonly string[],
  ) {}

  /** How many distinct flows there are. */
  get size(): number {
    return this.sourceIds.length;
  }

  /** The flow's service. */
  serviceOf(flow: number): GroupedService {
    return this.services[this.serviceIds[flow]!]!;
  }

  /** Adds the flow's tally into another, as addTally does. */
  addTo(into: MutableTally, flow: number): void {
    into.flows += this.summaries[flow]!;
    into.connections += this.connections[flow]!;
    const first = this.firstSeen[flow]!;
    const last = this.lastSeen[flow]!;
    if (first < into.firstSeen) into.firstSeen = first;
    if (last > into.lastSeen) into.lastSeen = last;
  }

  /** The flow's tally, as an object of its own. */
  tally(flow: number): FlowTally {
    return {
      flows: this.summaries[flow]!,
      connections: this.connections[flow]!,
      firstSeen: this.firstSeen[flow]!,
      lastSeen: this.lastSeen[flow]!,
    };
  }
}

const CANONICAL_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Canonical UTC text of an ISO time (which then sorts as time), or null if it is none. */
function canonicalTime(text: unknown): string | null {
  if (typeof text !== 'string') return null;
  if (text.length === 24 && text.charCodeAt(23) === 90 && CANONICAL_TIME.test(text)) return text;
  // Date.parse takes more than ISO 8601 ("March 7"); ask for a date and a time at least.
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(text)) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

const isPort = (n: unknown): n is number =>
  typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;

/** Why a service is none, or null if it is one. */
function serviceProblem(s: ObservedService): string | null {
  switch (s.proto) {
    case 'tcp':
    case 'udp':
      if (!isPort(s.port)) return `${JSON.stringify(s.port)} is not a destination port (1-65535)`;
      if (s.process !== undefined && (typeof s.process !== 'string' || s.process.length === 0))
        return `${JSON.stringify(s.process)} is not a process name`;
      return null;
    case 'icmp':
    case 'icmpv6': {
      const t = s.icmpType;
      if (t !== undefined && (!Number.isInteger(t) || t < 0 || t > 255))
        return `${JSON.stringify(t)} is not an ICMP type (0-255)`;
      return null;
    }
    default:
      return `${JSON.stringify((s as { proto: unknown }).proto)} is not a protocol (tcp, udp, icmp, icmpv6)`;
  }
}

/** Interns peers: workload names and addresses apart (a workload may be named like an address). */
class PeerIds {
  private readonly workloads = new Map<string, number>();
  private readonly addresses = new Map<string, number>();
  readonly list: FlowPeer[] = [];

  /** The peer's id, or -1 if it names neither a workload nor an address, or both. */
  id(peer: FlowPeer): number {
    const w = peer.workload;
    const a = peer.address;
    let map: Map<string, number>;
    let key: string;
    if (typeof w === 'string' && a === undefined && w.length > 0) {
      map = this.workloads;
      key = w;
    } else if (typeof a === 'string' && w === undefined && a.length > 0) {
      map = this.addresses;
      key = a;
    } else return -1;
    let id = map.get(key);
    if (id === undefined) {
      map.set(key, (id = this.list.length));
      this.list.push(peer);
    }
    return id;
  }
}

/** Only what names the service: an ICMP flow's stray `port` or a blank process go. */
function cleanService(s: ObservedService): ObservedService {
  if (isTransport(s))
    return s.process === undefined
      ? { proto: s.proto, port: s.port }
      : { proto: s.proto, port: s.port, process: s.process };
  return s.icmpType === undefined ? { proto: s.proto } : { proto: s.proto, icmpType: s.icmpType };
}

/** Ports of tcp, then of udp, each a slot of a table. */
const PORT_SLOTS = 2 * 65536;
/** ICMP types 0-255 and "any type", of icmp then of icmpv6. */
const ICMP_SLOTS = 2 * 257;

/**
 * Numbers the distinct services, each with one object and text for all its flows. Looked up
 * by numbers (and a process name), never by text built per summary: a million summaries
 * would build and hash a million strings.
 */
class ServiceIds {
  /** By port slot, by ICMP slot: the service's id + 1, or 0 before it is seen. */
  private readonly ports = new Int32Array(PORT_SLOTS);
  private readonly icmp = new Int32Array(ICMP_SLOTS);
  /** process -> port slot -> the service's id. */
  private readonly bound = new Map<string, Map<number, number>>();
  readonly list: GroupedService[] = [];

  /** The id of a service serviceProblem passed. */
  id(s: ObservedService): number {
    if (isTransport(s)) {
      const slot = (s.proto === 'tcp' ? 0 : 65536) + s.port;
      if (s.process === undefined) {
        const known = this.ports[slot]!;
        if (known > 0) return known - 1;
        this.ports[slot] = this.list.length + 1;
        return this.add(s, `${s.port}/${s.proto}`);
      }
      let bySlot = this.bound.get(s.process);
      if (!bySlot) this.bound.set(s.process, (bySlot = new Map<number, number>()));
      const known = bySlot.get(slot);
      if (known !== undefined) return known;
      bySlot.set(slot, this.list.length);
      return this.add(s, `${s.port}/${s.proto}@${s.process}`);
    }
    const t = s.icmpType;
    const slot = (s.proto === 'icmp' ? 0 : 257) + (t === undefined ? 256 : t);
    const known = this.icmp[slot]!;
    if (known > 0) return known - 1;
    this.icmp[slot] = this.list.length + 1;
    return this.add(s, t === undefined ? s.proto : `${s.proto}/${t}`);
  }

  private add(service: ObservedService, text: string): number {
    this.list.push({ service: cleanService(service), text });
    return this.list.length - 1;
  }
}

/** Per entry of FlowCounts: four 32-bit integers, then two doubles (32 bytes). */
const ENTRY_INTS = 8;
const ENTRY_DOUBLES = 4;

/**
 * The distinct flows while summaries are folded in: an open-addressing table whose entry
 * holds a flow's key (source, destination, service), its number, and its counts side by
 * side, with its first and last times at the same place in a parallel array. Folding a
 * summary in then touches one cache line of each, where a Map of Maps and columns by number
 * touched six; at a million summaries over a hundred thousand flows, the memory traffic is
 * most of the cost.
 */
class FlowCounts {
  /** Two views of one buffer: entry i is ints 8i to 8i + 3, then doubles 4i + 2 and 4i + 3. */
  private ints: Int32Array;
  private doubles: Float64Array;
  /** First seen, last seen: entry i's are 2i and 2i + 1. */
  private times: string[];
  private mask: number;
  private count = 0;

  constructor(capacity = 1024) {
    const buffer = new ArrayBuffer(capacity * ENTRY_INTS * 4);
    this.ints = new Int32Array(buffer);
    this.doubles = new Float64Array(buffer);
    this.times = new Array<string>(capacity * 2).fill('');
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.count;
  }

  /**
   * Folds a summary into its flow; returns the flow's number. A new flow is numbered in
   * order (the size before the call).
   */
  add(
    source: number,
    destination: number,
    service: number,
    connections: number,
    first: string,
    last: string,
  ): number {
    const ints = this.ints;
    const mask = this.mask;
    let i = hashTriple(source, destination, service) & mask;
    for (;;) {
      const at = i * ENTRY_INTS;
      const n = ints[at + 3]!;
      if (n === 0) break;
      if (ints[at] === source && ints[at + 1] === destination && ints[at + 2] === service) {
        const d = i * ENTRY_DOUBLES + 2;
        const doubles = this.doubles;
        doubles[d] = doubles[d]! + 1;
        doubles[d + 1] = doubles[d + 1]! + connections;
        const times = this.times;
        if (first < times[2 * i]!) times[2 * i] = first;
        if (last > times[2 * i + 1]!) times[2 * i + 1] = last;
        return n - 1;
      }
      i = (i + 1) & mask;
    }
    const n = this.count++;
    // At most two thirds full, so that probes stay short.
    if (this.count * 3 > (mask + 1) * 2) {
      this.grow();
      i = this.free(source, destination, service);
    }
    const at = i * ENTRY_INTS;
    this.ints[at] = source;
    this.ints[at + 1] = destination;
    this.ints[at + 2] = service;
    this.ints[at + 3] = n + 1;
    // As a sum from zero, so that a count of -0 adds up as before.
    this.doubles[i * ENTRY_DOUBLES + 2] = 1;
    this.doubles[i * ENTRY_DOUBLES + 3] = 0 + connections;
    this.times[2 * i] = first;
    this.times[2 * i + 1] = last;
    return n;
  }

  /** The counts and times, by flow number. */
  columns(): Pick<GroupedFlows, 'summaries' | 'connections' | 'firstSeen' | 'lastSeen'> {
    const summaries = new Array<number>(this.count).fill(0);
    const connections = new Array<number>(this.count).fill(0);
    const firstSeen = new Array<string>(this.count).fill('');
    const lastSeen = new Array<string>(this.count).fill('');
    for (let i = 0; i <= this.mask; i++) {
      const n = this.ints[i * ENTRY_INTS + 3]! - 1;
      if (n < 0) continue;
      summaries[n] = this.doubles[i * ENTRY_DOUBLES + 2]!;
      connections[n] = this.doubles[i * ENTRY_DOUBLES + 3]!;
      firstSeen[n] = this.times[2 * i]!;
      lastSeen[n] = this.times[2 * i + 1]!;
    }
    return { summaries, connections, firstSeen, lastSeen };
  }

  /** The free entry where a key not in the table goes. */
  private free(source: number, destination: number, service: number): number {
    let i = hashTriple(source, destination, service) & this.mask;
    while (this.ints[i * ENTRY_INTS + 3] !== 0) i = (i + 1) & this.mask;
    return i;
  }

  private grow(): void {
    const ints = this.ints;
    const times = this.times;
    const capacity = (this.mask + 1) * 2;
    const buffer = new ArrayBuffer(capacity * ENTRY_INTS * 4);
    this.ints = new Int32Array(buffer);
    this.doubles = new Float64Array(buffer);
    this.times = new Array<string>(capacity * 2).fill('');
    this.mask = capacity - 1;
    for (let i = 0; i * ENTRY_INTS < ints.length; i++) {
      const at = i * ENTRY_INTS;
      if (ints[at + 3] === 0) continue;
      const j = this.free(ints[at]!, ints[at + 1]!, ints[at + 2]!);
      // The whole entry, its counts (the doubles' bytes) included.
      for (let k = 0; k < ENTRY_INTS; k++) this.ints[j * ENTRY_INTS + k] = ints[at + k]!;
      this.times[2 * j] = times[2 * i]!;
      this.times[2 * j + 1] = times[2 * i + 1]!;
    }
  }
}

/**
 * Checks every summary and groups them by (source, destination, service). The source port
 * is not part of the key: an ephemeral port per connection must not split one flow in many.
 * Throws GenerationError listing the bad summaries (the first twenty, and how many more).
 */
export function groupFlows(flows: Iterable<ObservedFlow>): GroupedFlows {
  const problems = new ProblemList();
  // Peers and services become small numbers, and a flow is found by the three of them.
  const peers = new PeerIds();
  const services = new ServiceIds();
  const counts = new FlowCounts();
  const sourceIds: number[] = [];
  const destinationIds: number[] = [];
  const serviceIds: number[] = [];
  const firstIndexes: number[] = [];
  // An array is walked by index: an iterator would make an object per summary.
  const list = Array.isArray(flows) ? (flows as readonly ObservedFlow[]) : [...flows];
  const total = list.length;
  for (let index = 0; index < total; index++) {
    const f = list[index]!;
    const src = peers.id(f.source);
    const dst = peers.id(f.destination);
    const serviceWrong = serviceProblem(f.service);
    const c = f.connections;
    const first = canonicalTime(f.firstSeen);
    const last = canonicalTime(f.lastSeen);
    const countOk = Number.isInteger(c) && c >= 0;
    if (
      src < 0 ||
      dst < 0 ||
      serviceWrong !== null ||
      !countOk ||
      first === null ||
      last === null ||
      last < first
    ) {
      const at = `flows[${index}]`;
      if (src < 0) problems.add(`${at}.source: give a workload name or an address (one of them)`);
      if (dst < 0)
        problems.add(`${at}.destination: give a workload name or an address (one of them)`);
      if (serviceWrong !== null) problems.add(`${at}.service: ${serviceWrong}`);
      if (!countOk)
        problems.add(`${at}.connections: ${JSON.stringify(c)} is not a count (0 or more)`);
      if (first === null)
        problems.add(`${at}.firstSeen: ${JSON.stringify(f.firstSeen)} is not an ISO 8601 time`);
      if (last === null)
        problems.add(`${at}.lastSeen: ${JSON.stringify(f.lastSeen)} is not an ISO 8601 time`);
      if (first !== null && last !== null && last < first)
        problems.add(`${at}.lastSeen: ${last} is before firstSeen ${first}`);
      continue;
    }
    const service = services.id(f.service);
    const known = counts.size;
    if (counts.add(src, dst, service, c, first, last) === known) {
      sourceIds.push(src);
      destinationIds.push(dst);
      serviceIds.push(service);
      firstIndexes.push(index);
    }
  }
  problems.throwIfAny();
  const { summaries, connections, firstSeen, lastSeen } = counts.columns();
  return new GroupedFlows(
    total,
    peers.list,
    services.list,
    sourceIds,
    destinationIds,
    serviceIds,
    firstIndexes,
    summaries,
    connections,
    firstSeen,
    lastSeen,
  );
}

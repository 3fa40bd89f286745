/**
 * The one pass over every flow summary: check it, then fold it into its distinct flow
 * (source, destination, service). Everything after works per distinct flow, so this pass is
 * the floor of the generator's cost (the benchmark prints it beside the whole).
 */
import { ProblemList } from './errors.js';
import { newTally, type MutableTally } from './tally.js';
import { isTransport, type FlowPeer, type ObservedFlow, type ObservedService } from './types.js';

export interface DistinctFlow {
  readonly source: FlowPeer;
  readonly destination: FlowPeer;
  /** Index of each end in GroupedFlows.peers. */
  readonly sourceId: number;
  readonly destinationId: number;
  readonly service: ObservedService;
  /** `443/tcp`, `3306/tcp@mysqld`, `icmp/8`: the service as a person writes it. */
  readonly serviceText: string;
  /** Where the first summary of this flow was in the input, for messages. */
  readonly index: number;
  readonly tally: MutableTally;
}

export interface GroupedFlows {
  readonly total: number;
  /** In order of first appearance; callers sort what they output. */
  readonly distinct: readonly DistinctFlow[];
  /** The distinct ends, by id: each is resolved once, not once per flow. */
  readonly peers: readonly FlowPeer[];
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

/**
 * The service's key among a pair's services, or why it is not a service. A port without a
 * process (most flows) is a number, which a Map hashes for free; the rest is its text.
 */
function serviceSlot(s: ObservedService): string | number | { problem: string } {
  switch (s.proto) {
    case 'tcp':
    case 'udp': {
      if (!isPort(s.port))
        return { problem: `${JSON.stringify(s.port)} is not a destination port (1-65535)` };
      if (s.process === undefined) return s.proto === 'tcp' ? s.port : 65536 + s.port;
      if (typeof s.process !== 'string' || s.process.length === 0)
        return { problem: `${JSON.stringify(s.process)} is not a process name` };
      return `${s.port}/${s.proto}@${s.process}`;
    }
    case 'icmp':
    case 'icmpv6': {
      const t = s.icmpType;
      if (t === undefined) return s.proto;
      if (!Number.isInteger(t) || t < 0 || t > 255)
        return { problem: `${JSON.stringify(t)} is not an ICMP type (0-255)` };
      return `${s.proto}/${t}`;
    }
    default:
      return {
        problem: `${JSON.stringify((s as { proto: unknown }).proto)} is not a protocol (tcp, udp, icmp, icmpv6)`,
      };
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

/** Service slots above the port numbers: one per process-bound or ICMP spelling. */
const FIRST_TEXT_SLOT = 2 * 65536;

/** Only what names the service: an ICMP flow's stray `port` or a blank process go. */
function cleanService(s: ObservedService): ObservedService {
  if (isTransport(s))
    return s.process === undefined
      ? { proto: s.proto, port: s.port }
      : { proto: s.proto, port: s.port, process: s.process };
  return s.icmpType === undefined ? { proto: s.proto } : { proto: s.proto, icmpType: s.icmpType };
}

/**
 * Checks every summary and groups them by (source, destination, service). The source port
 * is not part of the key: an ephemeral port per connection must not split one flow in many.
 * Throws GenerationError listing the bad summaries (the first twenty, and how many more).
 */
export function groupFlows(flows: Iterable<ObservedFlow>): GroupedFlows {
  const problems = new ProblemList();
  // Peers and services become small numbers, and a flow is found by its source (an array
  // index), then its destination, then its service slot. Small integers hash and compare far
  // faster than text, and unlike one number packed from all three (beyond 2^31: a boxed
  // double in V8, allocated per lookup and dereferenced per comparison) need no memory.
  const peers = new PeerIds();
  const bySource: (Map<number, Map<number, DistinctFlow>> | undefined)[] = [];
  const textSlots = new Map<string, number>();
  const slotTexts: string[] = [];
  // One service object and text per slot, shared by the distinct flows of that service: far
  // fewer objects to make and collect, and the few that are stay in the cache.
  const services = new Map<number, { service: ObservedService; text: string }>();
  const distinct: DistinctFlow[] = [];
  let index = 0;
  for (const f of flows) {
    const src = peers.id(f.source);
    const dst = peers.id(f.destination);
    let slot = serviceSlot(f.service);
    const c = f.connections;
    const first = canonicalTime(f.firstSeen);
    const last = canonicalTime(f.lastSeen);
    const countOk = Number.isInteger(c) && c >= 0;
    if (
      src < 0 ||
      dst < 0 ||
      typeof slot === 'object' ||
      !countOk ||
      first === null ||
      last === null ||
      last < first
    ) {
      const at = `flows[${index}]`;
      if (src < 0) problems.add(`${at}.source: give a workload name or an address (one of them)`);
      if (dst < 0)
        problems.add(`${at}.destination: give a workload name or an address (one of them)`);
      if (typeof slot === 'object') problems.add(`${at}.service: ${slot.problem}`);
      if (!countOk)
        problems.add(`${at}.connections: ${JSON.stringify(c)} is not a count (0 or more)`);
      if (first === null)
        problems.add(`${at}.firstSeen: ${JSON.stringify(f.firstSeen)} is not an ISO 8601 time`);
      if (last === null)
        problems.add(`${at}.lastSeen: ${JSON.stringify(f.lastSeen)} is not an ISO 8601 time`);
      if (first !== null && last !== null && last < first)
        problems.add(`${at}.lastSeen: ${last} is before firstSeen ${first}`);
      index++;
      continue;
    }
    if (typeof slot === 'string') {
      let n = textSlots.get(slot);
      if (n === undefined) {
        textSlots.set(slot, (n = FIRST_TEXT_SLOT + slotTexts.length));
        slotTexts.push(slot);
      }
      slot = n;
    }
    while (bySource.length <= src) bySource.push(undefined); // grown in order: a packed array
    let byDestination = bySource[src];
    if (!byDestination) bySource[src] = byDestination = new Map();
    let bySlot = byDestination.get(dst);
    if (!bySlot) byDestination.set(dst, (bySlot = new Map<number, DistinctFlow>()));
    let d = bySlot.get(slot);
    if (!d) {
      let named = services.get(slot);
      if (!named) {
        const text =
          slot >= FIRST_TEXT_SLOT
            ? slotTexts[slot - FIRST_TEXT_SLOT]!
            : slot > 65535
              ? `${slot - 65536}/udp`
              : `${slot}/tcp`;
        services.set(slot, (named = { service: cleanService(f.service), text }));
      }
      d = {
        source: f.source,
        destination: f.destination,
        sourceId: src,
        destinationId: dst,
        service: named.service,
        serviceText: named.text,
        index,
        tally: newTally(),
      };
      bySlot.set(slot, d);
      distinct.push(d);
    }
    const t = d.tally;
    t.flows++;
    t.connections += c;
    if (first < t.firstSeen) t.firstSeen = first;
    if (last > t.lastSeen) t.lastSeen = last;
    index++;
  }
  problems.throwIfAny();
  return { total: index, distinct, peers: peers.list };
}

/**
 * Blocked and would-be-blocked attempts, from the recording sets the kernel fills
 * (blocked_* and potential_*: remote address . protocol . port, with a packet counter and
 * a timeout). Read each interval, each element's counter is compared with the last reading
 * and the difference reported as a flow summary with decision `blocked` or
 * `potentially-blocked`: one attempt per packet the kernel recorded (a retried TCP SYN is
 * another attempt). An element that expired and came back starts from zero again.
 *
 * The sets key by the remote side only; the local side of a summary is the workload's
 * address of the same family.
 *
 * Pure: no I/O; time is given.
 */
import { isIPv6 } from 'node:net';
import type { RecordedElement } from '../parse/nft-json.js';
import type { FlowSummary } from '../wire.js';

export interface LocalSide {
  readonly v4?: string;
  readonly v6?: string;
}

interface Seen {
  readonly packets: number;
  readonly bytes: number;
}

export class RecordedAttempts {
  private last = new Map<string, Seen>();
  private lastReadAt: number | null = null;

  /** The table was loaded anew: its recording sets start empty, whatever the counters say. */
  forget(): void {
    this.last = new Map();
  }

  /**
   * The attempts recorded since the last reading. `at` is when the sets were read;
   * `listener` names the local process on an inbound port, if one listens there.
   */
  read(
    elements: readonly RecordedElement[],
    at: number,
    local: LocalSide,
    listener: (proto: 'tcp' | 'udp', address: string, port: number) => string | undefined,
  ): FlowSummary[] {
    const next = new Map<string, Seen>();
    const out: FlowSummary[] = [];
    for (const e of elements) {
      const k = `${e.set}|${e.remote}|${e.proto}|${e.port}`;
      const seen = { packets: e.packets, bytes: e.bytes };
      next.set(k, seen);
      const before = this.last.get(k);
      // A counter lower than last time: the element expired (or the table was reloaded).
      const fresh = !before || before.packets > e.packets;
      const packets = fresh ? e.packets : e.packets - before.packets;
      const bytes = fresh ? e.bytes : Math.max(0, e.bytes - before.bytes);
      if (packets <= 0) continue;
      // nft reports whole seconds left, so the element's age is known only to within a
      // second: take the youngest age it can have, so that a time is never placed before
      // the attempt, and never before the last reading (which did not see this increase).
      const ageMs = Math.max(0, e.timeoutSeconds - e.expiresSeconds - 1) * 1000;
      const lastSeen = Math.max(Math.min(at, at - ageMs), this.lastReadAt ?? -Infinity);
      const firstSeen =
        fresh || this.lastReadAt === null ? lastSeen : Math.min(lastSeen, this.lastReadAt);
      const self =
        (isIPv6(e.remote) ? local.v6 : local.v4) ?? (isIPv6(e.remote) ? '::' : '0.0.0.0');
      const inbound = e.direction === 'inbound';
      const process = inbound ? listener(e.proto, self, e.port) : undefined;
      out.push({
        src: inbound ? e.remote : self,
        dst: inbound ? self : e.remote,
        proto: e.proto,
        dport: e.port,
        ...(process !== undefined ? { process } : {}),
        firstSeen: new Date(firstSeen).toISOString(),
        lastSeen: new Date(lastSeen).toISOString(),
        connections: packets,
        bytes,
        decision: e.verdict === 'blocked' ? 'blocked' : 'potentially-blocked',
      });
    }
    this.last = next;
    this.lastReadAt = at;
    return out;
  }
}

/**
 * Which local process is behind a connection, from a snapshot of the host's sockets (`ss`).
 * Inbound: the listener on the destination port. Outbound: the socket on the source
 * address and port. A snapshot is refreshed every few seconds, never per connection, so
 * attribution costs two map look-ups however many connections a second the host opens.
 *
 * Pure: no I/O.
 */
import { isListening, type SocketEntry, type SocketProcess } from '../parse/ss.js';

type Proto = 'tcp' | 'udp';

const key = (proto: Proto, address: string, port: number) => `${proto} ${address} ${port}`;

export class SocketTable {
  private readonly listeningAt = new Map<string, SocketProcess>();
  private readonly ownedAt = new Map<string, SocketProcess>();

  constructor(readonly entries: readonly SocketEntry[] = []) {
    for (const s of entries) {
      if (!s.process) continue;
      const k = key(s.proto, s.local.address, s.local.port);
      if (isListening(s)) {
        if (!this.listeningAt.has(k)) this.listeningAt.set(k, s.process);
      }
      // An unconnected UDP socket both listens and sends: it owns its port either way.
      if (!this.ownedAt.has(k)) this.ownedAt.set(k, s.process);
    }
  }

  /** The process listening where an inbound connection arrived (exact address, then wildcard). */
  listener(proto: Proto, address: string, port: number): SocketProcess | undefined {
    return (
      this.listeningAt.get(key(proto, address, port)) ?? this.listeningAt.get(key(proto, '*', port))
    );
  }

  /** The process whose socket an outbound connection left from. */
  owner(proto: Proto, address: string, port: number): SocketProcess | undefined {
    return this.ownedAt.get(key(proto, address, port)) ?? this.ownedAt.get(key(proto, '*', port));
  }

  /** The listening sockets (TCP listeners and bound UDP sockets). */
  listening(): SocketEntry[] {
    return this.entries.filter(isListening);
  }
}

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
const pairKey = (proto: Proto, address: string, port: number, peer: string, peerPort: number) =>
  `${proto} ${address} ${port} ${peer} ${peerPort}`;

export class SocketTable {
  private readonly listeningAt = new Map<string, SocketProcess>();
  /** Sockets with no fixed peer (listeners, unconnected UDP), by local end. */
  private readonly ownedAt = new Map<string, SocketProcess>();
  /** Connected sockets, by both ends. */
  private readonly connectedAt = new Map<string, SocketProcess>();

  constructor(readonly entries: readonly SocketEntry[] = []) {
    for (const s of entries) {
      if (!s.process) continue;
      const k = key(s.proto, s.local.address, s.local.port);
      if (isListening(s)) {
        if (!this.listeningAt.has(k)) this.listeningAt.set(k, s.process);
      }
      if (s.peer && s.peer.address !== '*') {
        const c = pairKey(s.proto, s.local.address, s.local.port, s.peer.address, s.peer.port);
        if (!this.connectedAt.has(c)) this.connectedAt.set(c, s.process);
      } else if (!this.ownedAt.has(k)) {
        // An unconnected UDP socket both listens and sends: it owns its port either way.
        this.ownedAt.set(k, s.process);
      }
    }
  }

  /** The process listening where an inbound connection arrived (exact address, then wildcard). */
  listener(proto: Proto, address: string, port: number): SocketProcess | undefined {
    return (
      this.listeningAt.get(key(proto, address, port)) ?? this.listeningAt.get(key(proto, '*', port))
    );
  }

  /**
   * The process whose socket an outbound connection left from: the connected socket with
   * exactly these two ends, else an unconnected one bound to the local end.
   */
  owner(
    proto: Proto,
    address: string,
    port: number,
    peer: string,
    peerPort: number,
  ): SocketProcess | undefined {
    return (
      this.connectedAt.get(pairKey(proto, address, port, peer, peerPort)) ??
      this.ownedAt.get(key(proto, address, port)) ??
      this.ownedAt.get(key(proto, '*', port))
    );
  }

  /** The listening sockets (TCP listeners and bound UDP sockets). */
  listening(): SocketEntry[] {
    return this.entries.filter(isListening);
  }
}

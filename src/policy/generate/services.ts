/**
 * Services as rules write them: the observed destination ports of a rule gathered into the
 * fewest exact entries (adjacent ports become a range; a gap is never filled, which would
 * open ports nobody used), and the comparisons that minimality and conflict checks need.
 */
import type { ServicePort } from '../model.js';
import { isTransport, type ObservedService } from './types.js';

const PROTO_ORDER = { tcp: 0, udp: 1, icmp: 2, icmpv6: 3 } as const;
/** Marks "any ICMP type" in the set of observed types. */
const ANY_TYPE = -1;

/** The observed services of one rule. */
export class ServiceAccumulator {
  /** `proto` + `\u0000` + process ('' = not bound) -> ports. */
  private readonly transport = new Map<string, Set<number>>();
  private readonly icmp = new Map<'icmp' | 'icmpv6', Set<number>>();

  /** Adds a service; with `bindProcess`, a known serving process goes with its port. */
  add(s: ObservedService, bindProcess: boolean): void {
    if (isTransport(s)) {
      const process = bindProcess && s.process !== undefined ? s.process : '';
      const key = `${s.proto}\u0000${process}`;
      let ports = this.transport.get(key);
      if (!ports) this.transport.set(key, (ports = new Set()));
      ports.add(s.port);
    } else {
      let types = this.icmp.get(s.proto);
      if (!types) this.icmp.set(s.proto, (types = new Set()));
      types.add(s.icmpType ?? ANY_TYPE);
    }
  }

  merge(other: ServiceAccumulator): void {
    for (const [k, ports] of other.transport) {
      const mine = this.transport.get(k);
      if (mine) for (const p of ports) mine.add(p);
      else this.transport.set(k, new Set(ports));
    }
    for (const [k, types] of other.icmp) {
      const mine = this.icmp.get(k);
      if (mine) for (const t of types) mine.add(t);
      else this.icmp.set(k, new Set(types));
    }
  }

  /**
   * The entries, in a fixed order (protocol, unbound before bound, process, port). A port
   * seen both with an unknown process and with a known one is written unbound: the unbound
   * entry admits it anyway, so the bound one would be a subsumed duplicate.
   */
  ports(): ServicePort[] {
    const out: ServicePort[] = [];
    const groups = [...this.transport].map(([key, ports]) => {
      const [proto, process] = key.split('\u0000') as ['tcp' | 'udp', string];
      return { proto, process, ports };
    });
    groups.sort(
      (a, b) =>
        PROTO_ORDER[a.proto] - PROTO_ORDER[b.proto] ||
        (a.process < b.process ? -1 : a.process > b.process ? 1 : 0),
    );
    for (const g of groups) {
      const unbound = g.process === '' ? null : this.transport.get(`${g.proto}\u0000`);
      const ports = [...g.ports].filter((p) => !unbound?.has(p)).sort((a, b) => a - b);
      for (const range of ranges(ports)) {
        out.push(
          g.process === ''
            ? { proto: g.proto, ports: range }
            : { proto: g.proto, ports: range, process: g.process },
        );
      }
    }
    for (const proto of ['icmp', 'icmpv6'] as const) {
      const types = this.icmp.get(proto);
      if (!types) continue;
      if (types.has(ANY_TYPE)) out.push({ proto });
      else for (const t of [...types].sort((a, b) => a - b)) out.push({ proto, icmpType: t });
    }
    return out;
  }
}

/** Sorted distinct ports as the fewest ranges of consecutive ports. */
function ranges(sorted: readonly number[]): { from: number; to: number }[] {
  const out: { from: number; to: number }[] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last && last.to + 1 === p) last.to = p;
    else out.push({ from: p, to: p });
  }
  return out;
}

/** `443/tcp`, `8000-8080/udp`, `3306/tcp@mysqld`, `icmp`, `icmp/8`. */
export function formatServicePort(p: ServicePort): string {
  if ('ports' in p) {
    const { from, to } = p.ports;
    const range = from === to ? `${from}` : `${from}-${to}`;
    return `${range}/${p.proto}${p.process === undefined ? '' : `@${p.process}`}`;
  }
  return p.icmpType === undefined ? p.proto : `${p.proto}/${p.icmpType}`;
}

export function formatServices(services: 'all' | readonly ServicePort[]): string {
  return services === 'all' ? 'all' : services.map(formatServicePort).join(',');
}

/**
 * Whether `outer` admits everything `inner` does. A transport entry must lie within the
 * union of outer ranges of its protocol that are unbound or bound to the same process.
 */
export function servicesCover(
  outer: 'all' | readonly ServicePort[],
  inner: 'all' | readonly ServicePort[],
): boolean {
  if (outer === 'all') return true;
  if (inner === 'all') return false;
  return inner.every((i) => {
    if (!('ports' in i)) {
      return outer.some(
        (o) =>
          o.proto === i.proto &&
          !('ports' in o) &&
          (o.icmpType === undefined || o.icmpType === i.icmpType),
      );
    }
    const usable = outer
      .filter(
        (o): o is Extract<ServicePort, { ports: unknown }> =>
          'ports' in o &&
          o.proto === i.proto &&
          (o.process === undefined || o.process === i.process),
      )
      .map((o) => o.ports)
      .sort((a, b) => a.from - b.from);
    let next = i.ports.from;
    for (const r of usable) {
      if (r.from > next) break;
      if (r.to >= next) next = r.to + 1;
      if (next > i.ports.to) return true;
    }
    return next > i.ports.to;
  });
}

/**
 * Whether some flow could match both. Processes are not compared: a source's outbound side
 * judges by port alone, so two entries on one port always meet there.
 */
export function servicesOverlap(
  a: 'all' | readonly ServicePort[],
  b: 'all' | readonly ServicePort[],
): boolean {
  if (a === 'all') return b === 'all' || b.length > 0;
  if (b === 'all') return a.length > 0;
  return a.some((x) =>
    b.some((y) => {
      if (x.proto !== y.proto) return false;
      if ('ports' in x && 'ports' in y)
        return x.ports.from <= y.ports.to && y.ports.from <= x.ports.to;
      if (!('ports' in x) && !('ports' in y))
        return x.icmpType === undefined || y.icmpType === undefined || x.icmpType === y.icmpType;
      return false;
    }),
  );
}

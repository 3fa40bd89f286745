/**
 * Process bindings a host firewall cannot enforce. decide() checks a binding on the
 * destination's inbound side only (the source cannot see the remote process); no backend's
 * inbound hook can match the serving process, so each backend matches the port and says so.
 */
import type { PortRange, RuleAction } from '../model.js';
import type { EndpointPolicy } from './endpoint.js';

export interface UnenforcedProcessBinding {
  readonly ruleId: string;
  readonly action: RuleAction;
  readonly proto: 'tcp' | 'udp';
  readonly ports: PortRange;
  readonly process: string;
}

export function unenforcedProcessBindings(endpoint: EndpointPolicy): UnenforcedProcessBinding[] {
  const out: UnenforcedProcessBinding[] = [];
  const seen = new Set<string>();
  for (const r of endpoint.inbound) {
    if (r.services === 'all') continue;
    for (const s of r.services) {
      if (!('ports' in s) || s.process === undefined) continue;
      const key = `${r.ruleId}|${s.proto}|${s.ports.from}-${s.ports.to}|${s.process}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({
        ruleId: r.ruleId,
        action: r.action,
        proto: s.proto,
        ports: s.ports,
        process: s.process,
      });
    }
  }
  return out;
}

/**
 * The agent never cuts its own line to the control plane. Whatever the policy says (even
 * deny everything in full mode), the table it loads accepts the agent's connections to the
 * control plane's address and port, right after loopback and return traffic, before any
 * rule. The exception is added here, on the agent, because only the agent knows which
 * address it actually dials (a name may resolve differently on each host).
 *
 * Replies on that connection are return traffic, which the table accepts already; nothing
 * inbound is opened.
 *
 * Pure: no I/O.
 */
import { isIPv6 } from 'node:net';
import type { NftChain, NftState } from '../../policy/compile/nft.js';
import type { Endpoint } from '../wire.js';

export const CONTROL_PLANE_COMMENT = 'bulkhead agent: control plane channel';

/** The rule lines that keep the channel open, one per address. */
export function controlPlaneRules(endpoints: readonly Endpoint[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const e of endpoints) {
    const key = `${e.address}|${e.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const family = isIPv6(e.address) ? 'ip6' : 'ip';
    out.push(
      `${family} daddr ${e.address} tcp dport ${e.port} counter accept comment "${CONTROL_PLANE_COMMENT}"`,
    );
  }
  return out;
}

function isOutputHook(chain: NftChain): boolean {
  return chain.declaration !== null && /\bhook output\b/.test(chain.declaration);
}

/** Where the exception goes: after loopback, return traffic and neighbour discovery. */
function insertionPoint(rules: readonly string[]): number {
  let at = 0;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (
      /^oif "lo" accept/.test(r) ||
      /^ct state established,related accept/.test(r) ||
      /^icmpv6 type /.test(r)
    )
      at = i + 1;
    else break;
  }
  return at;
}

/**
 * The state to load: `state` with the control-plane exception at the head of every output
 * base chain. An idle state (no table) is returned as is.
 */
export function withControlPlane(state: NftState, endpoints: readonly Endpoint[]): NftState {
  if (state.mode === 'idle' || endpoints.length === 0) return state;
  const extra = controlPlaneRules(endpoints);
  return {
    ...state,
    chains: state.chains.map((chain) => {
      if (!isOutputHook(chain)) return chain;
      const at = insertionPoint(chain.rules);
      return {
        ...chain,
        rules: [...chain.rules.slice(0, at), ...extra, ...chain.rules.slice(at)],
      };
    }),
  };
}

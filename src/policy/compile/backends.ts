/**
 * The datapath backends a workload's endpoint policy can be compiled to. The CLI (and the
 * agent, later) choose here; each backend is a pure renderer.
 */
import type { EndpointPolicy, PeerSet } from './endpoint.js';
import { renderIptables } from './iptables.js';
import { renderNft } from './nft.js';
import { renderWindowsFirewall } from './windows.js';

export const BACKENDS = ['nft', 'iptables', 'windows'] as const;
export type Backend = (typeof BACKENDS)[number];

export interface Rendered {
  /** What to load on the host, as one text. */
  readonly text: string;
  readonly warnings: readonly string[];
}

export function isBackend(name: string): name is Backend {
  return (BACKENDS as readonly string[]).includes(name);
}

export function renderEndpoint(
  backend: Backend,
  endpoint: EndpointPolicy,
  peerSets: ReadonlyMap<string, PeerSet>,
): Rendered {
  switch (backend) {
    case 'nft': {
      const { text, warnings } = renderNft(endpoint, peerSets);
      return { text, warnings };
    }
    case 'iptables': {
      // Three inputs for three loaders; printed as one text with a header per part, in the
      // order they must be loaded (the rules name the sets).
      const out = renderIptables(endpoint, peerSets);
      const text = [
        '# --- ipset restore ---',
        out.ipset.trimEnd(),
        '# --- iptables-restore --noflush ---',
        out.iptables.trimEnd(),
        '# --- ip6tables-restore --noflush ---',
        out.ip6tables.trimEnd(),
        '',
      ].join('\n');
      return { text, warnings: out.warnings };
    }
    case 'windows': {
      const { script, warnings } = renderWindowsFirewall(endpoint, peerSets);
      return { text: script, warnings };
    }
  }
}

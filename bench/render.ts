/**
 * The bench's view of the nft backend: a full script per workload, a structured state, and
 * the incremental update between two states of one workload.
 */
import type { EndpointPolicy, PeerSet } from '../src/policy/compile/endpoint.js';
import { nftState, renderNft, type NftState } from '../src/policy/compile/nft.js';
import { renderNftUpdate, type NftUpdate } from '../src/policy/compile/nft-update.js';

export interface Rendered {
  readonly text: string;
  /** nft rule statements in the script (over all chains). */
  readonly ruleLines: number;
}

export function renderScript(
  endpoint: EndpointPolicy,
  peerSets: ReadonlyMap<string, PeerSet>,
): Rendered {
  const { text, state } = renderNft(endpoint, peerSets);
  let ruleLines = 0;
  for (const chain of state.chains) ruleLines += chain.rules.length;
  return { text, ruleLines };
}

export function renderState(
  endpoint: EndpointPolicy,
  peerSets: ReadonlyMap<string, PeerSet>,
): NftState {
  return nftState(endpoint, peerSets);
}

export function renderUpdate(previous: NftState, next: NftState): NftUpdate {
  return renderNftUpdate(previous, next);
}

/**
 * The element changes of one peer set between two compiles, as nft commands: the same text
 * on every host that names the set (sets are named by their meaning), so computed once.
 * Rendered through the real update renderer, on a table holding only that set.
 */
export function setUpdateLines(
  id: string,
  before: ReadonlyMap<string, PeerSet>,
  after: ReadonlyMap<string, PeerSet>,
): string {
  const probe = (peerSets: ReadonlyMap<string, PeerSet>): NftState =>
    nftState(
      {
        workload: 'set-probe',
        mode: 'full',
        inbound: [],
        outbound: [],
        peerSets: peerSets.has(id) ? [id] : [],
        alwaysAllowed: [],
      },
      peerSets,
    );
  const text = renderNftUpdate(probe(before), probe(after)).text;
  // Drop the per-host comment line; keep the element (and set) commands.
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .join('\n');
}

/** Real compiled tables for the agent's tests: the example estate, compiled per workload. */
import { compilePolicy } from '../../../src/policy/compile/endpoint.js';
import { nftState, type NftState } from '../../../src/policy/compile/nft.js';
import { loadPolicy } from '../../../src/policy-as-code/load.js';
import type { CompiledPolicy } from '../../../src/agent/wire.js';

const compiled = compilePolicy((await loadPolicy(['examples/estate'])).resolved);

/** The nft state the control plane would send `workload` (shop-db-1 is in full mode). */
export function estateState(workload = 'shop-db-1'): NftState {
  const endpoint = compiled.endpoints.get(workload);
  if (!endpoint) throw new Error(`no workload ${workload} in the example estate`);
  return nftState(endpoint, compiled.peerSets);
}

export function estatePolicy(revision: number, workload = 'shop-db-1'): CompiledPolicy {
  const nft = estateState(workload);
  // JSON round trip: what arrives over the wire, not objects shared with the compiler.
  return JSON.parse(
    JSON.stringify({
      workload,
      policyVersion: revision,
      revision,
      mode: nft.mode,
      nft,
      warnings: nft.warnings,
    }),
  ) as CompiledPolicy;
}

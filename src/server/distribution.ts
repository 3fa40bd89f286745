/**
 * Keeps every workload's compiled policy current and tells its agent. After a provision, a
 * rollback or a change to workloads, `redistribute` compiles the active version against the
 * estate, stores each workload's result where it changed (with a new revision), and, once
 * the caller's transaction has committed, the hub notifies the connected agents.
 */
import { EventEmitter } from 'node:events';
import { compilePolicy } from '../policy/compile/endpoint.js';
import { nftState, type NftState } from '../policy/compile/nft.js';
import type { Db } from '../store/store.js';
import { activeVersion, loadVersion, loadWorkloads, resolveStored } from './policy-state.js';

/** What an agent receives: the nft table to hold, for one revision of its policy. */
export interface CompiledForAgent {
  readonly workload: string;
  readonly policyVersion: number;
  readonly revision: number;
  readonly mode: NftState['mode'];
  readonly nft: NftState;
  readonly warnings: readonly string[];
}

/** Agents listening for their workload's new revisions. */
export class PolicyHub extends EventEmitter<{ revision: [workload: string, revision: number] }> {
  constructor() {
    super();
    // One listener per connected agent.
    this.setMaxListeners(0);
  }
  announce(changes: readonly { workload: string; revision: number }[]): void {
    for (const c of changes) this.emit('revision', c.workload, c.revision);
  }
}

/**
 * Recompiles every workload under the active version (none active: the empty policy) and
 * stores what changed, in the caller's transaction. Returns the changed workloads, to
 * announce after commit.
 */
export async function redistribute(db: Db): Promise<{ workload: string; revision: number }[]> {
  const version = (await activeVersion(db)) ?? 0;
  const documents = version ? ((await loadVersion(db, version)) ?? []) : [];
  const workloads = await loadWorkloads(db);
  const compiled = compilePolicy(resolveStored(documents, workloads));
  const stored = new Map(
    (
      await db
        .selectFrom('compiled_policies')
        .select(['workload', 'revision', 'compiled'])
        .execute()
    ).map((r) => [r.workload, r]),
  );
  const now = new Date().toISOString();
  const changed: { workload: string; revision: number }[] = [];
  for (const [name, endpoint] of compiled.endpoints) {
    const state = nftState(endpoint, compiled.peerSets);
    const body = JSON.stringify({ mode: state.mode, nft: state, warnings: state.warnings });
    const previous = stored.get(name);
    if (previous && previous.compiled === body) {
      await db
        .updateTable('compiled_policies')
        .set({ policy_version: version })
        .where('workload', '=', name)
        .execute();
      continue;
    }
    const revision = (previous?.revision ?? 0) + 1;
    if (previous) {
      await db
        .updateTable('compiled_policies')
        .set({ policy_version: version, revision, compiled: body, computed_at: now })
        .where('workload', '=', name)
        .execute();
    } else {
      await db
        .insertInto('compiled_policies')
        .values({
          workload: name,
          policy_version: version,
          revision,
          compiled: body,
          computed_at: now,
        })
        .execute();
    }
    changed.push({ workload: name, revision });
  }
  return changed;
}

export async function compiledFor(db: Db, workload: string): Promise<CompiledForAgent | null> {
  const row = await db
    .selectFrom('compiled_policies')
    .select(['workload', 'policy_version', 'revision', 'compiled'])
    .where('workload', '=', workload)
    .executeTakeFirst();
  if (!row) return null;
  const body = JSON.parse(row.compiled) as {
    mode: NftState['mode'];
    nft: NftState;
    warnings: string[];
  };
  return {
    workload: row.workload,
    policyVersion: row.policy_version,
    revision: row.revision,
    ...body,
  };
}

/**
 * Keeps every workload's compiled policy current and tells its agent. After a provision, a
 * rollback or a change to workloads, `redistribute` compiles the active version against the
 * estate, stores each workload's result where it changed (with a new revision), and, once
 * the caller's transaction has committed, the hub notifies the connected agents.
 */
import { EventEmitter } from 'node:events';
import {
  compilePolicy,
  recompileAfterLabelChange,
  type CompiledPolicy,
} from '../policy/compile/endpoint.js';
import { nftState, type NftState } from '../policy/compile/nft.js';
import type { Workload } from '../policy/model.js';
import { updateWorkloads, type ResolvedPolicy } from '../policy/resolve.js';
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

/** The compiled policy as stored and compared: the nft state an agent applies. */
export function compiledBody(state: NftState): string {
  return JSON.stringify({ mode: state.mode, nft: state, warnings: state.warnings });
}

/** A workload as the cache compares it: any change to it may change what compiles. */
const fingerprint = (w: Workload) => JSON.stringify(w);

interface CompiledEstate {
  readonly version: number;
  /** Each workload as compiled, as JSON: what tells a later call which workloads changed. */
  readonly workloads: ReadonlyMap<string, string>;
  readonly resolved: ResolvedPolicy;
  readonly compiled: CompiledPolicy;
}

/**
 * The last compiled estate, so that a change to a few workloads recompiles only what they
 * touch. A compile is staged inside a transaction and becomes current only when `change()`
 * sees that transaction commit; a rollback forgets both (an incremental compile consumes the
 * state it started from). Every call still reads the workloads from the store and compiles
 * in full whenever they differ from the cache by more than the caller's change, so another
 * replica's writes are never missed.
 */
export class CompileCache {
  private current: CompiledEstate | null = null;
  private pending: CompiledEstate | null = null;
  /** How the last redistribution compiled, for tests and logs. */
  lastRun: 'full' | 'incremental' | null = null;

  get(): CompiledEstate | null {
    return this.current;
  }
  /** The committed estate, if it is `version` compiled against exactly these workloads. */
  compiledFor(version: number, workloads: readonly Workload[]): CompiledEstate | null {
    const estate = this.current;
    if (!estate || estate.version !== version || estate.workloads.size !== workloads.length)
      return null;
    const same = workloads.every((w) => estate.workloads.get(w.name) === fingerprint(w));
    return same ? estate : null;
  }
  stage(estate: CompiledEstate): void {
    this.pending = estate;
  }
  commit(): void {
    if (this.pending) this.current = this.pending;
    this.pending = null;
  }
  discard(): void {
    this.pending = null;
    this.current = null;
  }
}

/** Beyond this many changed workloads, a full compile is about as fast. */
const INCREMENTAL_LIMIT = 1000;

function incremental(
  previous: CompiledEstate,
  workloads: readonly Workload[],
  fingerprints: ReadonlyMap<string, string>,
) {
  if (previous.workloads.size !== fingerprints.size) return null;
  const changed: Workload[] = [];
  for (const w of workloads) {
    const before = previous.workloads.get(w.name);
    if (before === undefined) return null;
    if (before !== fingerprints.get(w.name)) changed.push(w);
    if (changed.length > INCREMENTAL_LIMIT) return null;
  }
  if (changed.length === 0) {
    return {
      resolved: previous.resolved,
      compiled: previous.compiled,
      affected: new Set<string>(),
    };
  }
  try {
    const resolved = updateWorkloads(previous.resolved, changed);
    const result = recompileAfterLabelChange(
      previous.compiled,
      resolved,
      changed.map((w) => w.name),
    );
    return {
      resolved,
      compiled: result.compiled,
      affected: result.full ? null : new Set(result.affectedWorkloads),
    };
  } catch {
    return null; // e.g. the change broke resolution: the full path reports it the usual way
  }
}

/**
 * Compiles the active version (none active: the empty policy) against the estate and stores
 * each workload's result where it changed, with a new revision, in the caller's transaction.
 * With a cache, a change to a few workloads recompiles and compares only the workloads it
 * affects. Returns the changed workloads, to announce after commit.
 */
export async function redistribute(
  db: Db,
  cache?: CompileCache,
): Promise<{ workload: string; revision: number }[]> {
  const version = (await activeVersion(db)) ?? 0;
  const workloads = await loadWorkloads(db);
  const fingerprints = new Map(workloads.map((w) => [w.name, fingerprint(w)]));
  const previous = cache?.get();
  let estate =
    previous && previous.version === version
      ? incremental(previous, workloads, fingerprints)
      : null;
  if (cache) cache.lastRun = estate ? 'incremental' : 'full';
  if (!estate) {
    const documents = version ? ((await loadVersion(db, version)) ?? []) : [];
    const resolved = resolveStored(documents, workloads);
    estate = { resolved, compiled: compilePolicy(resolved), affected: null };
  }
  cache?.stage({
    version,
    workloads: fingerprints,
    resolved: estate.resolved,
    compiled: estate.compiled,
  });

  const names = estate.affected ? [...estate.affected] : null;
  if (names?.length === 0) return [];
  const select = () =>
    db
      .selectFrom('compiled_policies')
      .select(['workload', 'revision', 'compiled', 'policy_version']);
  const rows = [];
  if (!names) rows.push(...(await select().execute()));
  // Chunked: SQLite takes at most 32766 parameters in one statement.
  else
    for (let i = 0; i < names.length; i += 5000)
      rows.push(
        ...(await select()
          .where('workload', 'in', names.slice(i, i + 5000))
          .execute()),
      );
  const stored = new Map(rows.map((r) => [r.workload, r]));
  const now = new Date().toISOString();
  const changed: { workload: string; revision: number }[] = [];
  const { compiled } = estate;
  for (const name of names ?? compiled.endpoints.keys()) {
    const endpoint = compiled.endpoints.get(name);
    if (!endpoint) continue;
    const body = compiledBody(nftState(endpoint, compiled.peerSets));
    const previousRow = stored.get(name);
    if (previousRow && previousRow.compiled === body) {
      if (previousRow.policy_version !== version) {
        await db
          .updateTable('compiled_policies')
          .set({ policy_version: version })
          .where('workload', '=', name)
          .execute();
      }
      continue;
    }
    const revision = (previousRow?.revision ?? 0) + 1;
    if (previousRow) {
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

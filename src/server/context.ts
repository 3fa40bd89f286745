/**
 * What every route and service of the control plane shares: the store, and the in-process
 * feeds that tell live listeners (audit streams, agents) about committed changes.
 */
import type { Store } from '../store/store.js';
import type { AuditFeed } from './audit.js';
import type { CredentialCache } from './auth.js';
import type { CompileCache, PolicyHub } from './distribution.js';
import type { FlowBatchReader } from './flow-batches.js';
import type { FlowStoreService } from './flows/types.js';

export interface ServerContext {
  readonly store: Store;
  readonly audit: AuditFeed;
  /** Announces new compiled-policy revisions to connected agents. */
  readonly policies: PolicyHub;
  /** Recently authenticated credentials; cleared by `change()` when one is revoked. */
  readonly credentials: CredentialCache;
  /** The last compiled estate, for incremental recompiles (see `redistribute`). */
  readonly compileCache: CompileCache;
  /** Flow edges and traffic: the map, the explorer, the plots (its loop is started by `serve`). */
  readonly flows: FlowStoreService;
  /** Reads agents' flow-summary batches (in a worker thread when serving). */
  readonly flowBatches: FlowBatchReader;
}

/** What every resource's routes plugin is given. */
export interface RouteOptions {
  readonly ctx: ServerContext;
}

/**
 * Enforcement: holds the workload's table in the kernel, exactly as the last applied policy
 * says, in the mode the control plane set.
 *
 * - Applying a policy loads one transaction: the incremental update from the table the
 *   agent knows is loaded (nft-update.ts), or the whole table when it knows none or the
 *   update fails. A failed load leaves the kernel as it was (nft loads all or nothing).
 * - Every table carries the control-plane exception (control-plane.ts) and is checked to
 *   stay inside Bulkhead's table (containment.ts) before it is printed.
 * - After each load the table is read back as the baseline; `inspect` compares the kernel
 *   with it and, on any difference, reloads the whole table and says what it found.
 *
 * Operations are serialised: a check never reads the table half-way through a load.
 */
import { nftScript, type NftState } from '../../policy/compile/nft.js';
import { renderNftUpdate } from '../../policy/compile/nft-update.js';
import type { FirewallAdapter } from '../adapters/firewall.js';
import { errorText } from '../errors.js';
import { parseNftListing, type NftTableListing } from '../parse/nft-json.js';
import type { CompiledPolicy, Endpoint } from '../wire.js';
import { assertContained } from './containment.js';
import { withControlPlane } from './control-plane.js';
import { snapshotOf, tableDifferences, type TableSnapshot } from './tamper.js';

export const TABLE_NAME = 'inet bulkhead';

export interface AppliedPolicy {
  readonly policy: CompiledPolicy;
  readonly controlPlane: readonly Endpoint[];
  /** The table as loaded: the policy's, with the control-plane exception. */
  readonly effective: NftState;
}

export type ApplyOutcome =
  | { readonly ok: true; readonly how: 'full' | 'incremental' | 'unchanged' }
  | { readonly ok: false; readonly error: string };

export interface TamperFinding {
  readonly detectedAt: string;
  readonly kind: 'missing' | 'changed';
  readonly differences: readonly string[];
  readonly restored: boolean;
  readonly error?: string;
}

export interface Inspection {
  /** The table as read (before any restore), or null when there is none. */
  readonly listing: NftTableListing | null;
  readonly tamper: TamperFinding | null;
}

export interface EnforcerEvents {
  /** The whole table was loaded (its recording sets start empty). */
  onFullLoad?(): void;
}

export class Enforcer {
  private current: AppliedPolicy | null = null;
  /** The kernel's table right after the last load; undefined when it could not be read. */
  private baseline: TableSnapshot | null | undefined = undefined;
  /** The kernel may not hold `current` exactly (a load failed half-way through our plan). */
  private unsure = true;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly firewall: FirewallAdapter,
    private readonly events: EnforcerEvents = {},
    private readonly now: () => Date = () => new Date(),
  ) {}

  get applied(): AppliedPolicy | null {
    return this.current;
  }

  /** Applies `policy`; `full` forces a whole-table load (on start, the kernel is unknown). */
  apply(
    policy: CompiledPolicy,
    controlPlane: readonly Endpoint[],
    options: { full?: boolean } = {},
  ): Promise<ApplyOutcome> {
    return this.serially(() => this.applyNow(policy, controlPlane, options.full ?? false));
  }

  /**
   * Reads the table; with `verify`, compares it with what was loaded and restores it if
   * it differs.
   */
  inspect(options: { verify: boolean } = { verify: true }): Promise<Inspection> {
    return this.serially(() => this.inspectNow(options.verify));
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async applyNow(
    policy: CompiledPolicy,
    controlPlane: readonly Endpoint[],
    full: boolean,
  ): Promise<ApplyOutcome> {
    let effective: NftState;
    try {
      assertContained(policy.nft);
      effective = withControlPlane(policy.nft, controlPlane);
      assertContained(effective);
    } catch (e) {
      return { ok: false, error: errorText(e) };
    }
    const next: AppliedPolicy = { policy, controlPlane: [...controlPlane], effective };
    const previous = this.current;
    if (previous && !this.unsure && !full) {
      const update = renderNftUpdate(previous.effective, effective);
      if (update.text === '') {
        this.current = next;
        return { ok: true, how: 'unchanged' };
      }
      try {
        await this.firewall.load(update.text);
        this.current = next;
        if (update.replacesTable) this.events.onFullLoad?.();
        await this.takeBaseline();
        return { ok: true, how: update.replacesTable ? 'full' : 'incremental' };
      } catch {
        // The kernel may not hold what the update started from: load the whole table instead.
        this.unsure = true;
      }
    }
    try {
      await this.firewall.load(nftScript(effective));
    } catch (e) {
      // nft loads all or nothing: the kernel still holds what it held before.
      return { ok: false, error: errorText(e) };
    }
    this.current = next;
    this.unsure = false;
    this.events.onFullLoad?.();
    await this.takeBaseline();
    return { ok: true, how: 'full' };
  }

  private dynamicSets(): Set<string> {
    return new Set(this.current?.effective.sets.filter((s) => s.dynamic).map((s) => s.name));
  }

  private async read(): Promise<NftTableListing | null> {
    const json = await this.firewall.readTable();
    return json === null ? null : parseNftListing(json);
  }

  private async takeBaseline(): Promise<void> {
    try {
      this.baseline = snapshotOf(await this.read(), this.dynamicSets());
    } catch {
      // Judged at the next inspection instead, which adopts what it reads.
      this.baseline = undefined;
    }
  }

  private async inspectNow(verify: boolean): Promise<Inspection> {
    if (!this.current) return { listing: null, tamper: null };
    const listing = await this.read();
    if (!verify) return { listing, tamper: null };
    const seen = snapshotOf(listing, this.dynamicSets());
    if (this.baseline === undefined) {
      this.baseline = seen;
      return { listing, tamper: null };
    }
    const differences = tableDifferences(this.baseline, seen, TABLE_NAME);
    if (differences.length === 0) return { listing, tamper: null };
    const detectedAt = this.now().toISOString();
    const kind = seen === null ? 'missing' : 'changed';
    try {
      await this.firewall.load(nftScript(this.current.effective));
      this.unsure = false;
      this.events.onFullLoad?.();
      await this.takeBaseline();
      return { listing, tamper: { detectedAt, kind, differences, restored: true } };
    } catch (e) {
      this.unsure = true;
      return {
        listing,
        tamper: { detectedAt, kind, differences, restored: false, error: errorText(e) },
      };
    }
  }
}

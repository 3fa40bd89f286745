/**
 * Enforcement: holds the workload's table in the kernel, exactly as the last applied policy
 * says, in the mode the control plane set.
 *
 * - Applying a policy loads one transaction: the incremental update from the table the
 *   agent knows is loaded (nft-update.ts), or the whole table when it knows none or the
 *   update fails. A failed load leaves the kernel as it was (nft loads all or nothing).
 * - Every table carries the control-plane exception (control-plane.ts) and is checked to
 *   stay inside Bulkhead's table (containment.ts) before it is printed.
 * - The table as the kernel holds it after a load is the baseline; `inspect` compares the
 *   kernel with it and, on any difference, reloads the whole table and says what it found.
 *   While the ruleset watch runs and recognises the agent's own loads, a load is not read
 *   back at once (that read costs as much as the load itself): the next reading of the
 *   table, at the latest the next flush's, becomes the baseline. A change someone else made
 *   meanwhile could hide in such a baseline, so a transaction of someone else's seen before
 *   it was adopted, or soon after (the watch reports late under load), ends with the whole
 *   table reloaded and compared with what was there before.
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

export interface EnforcerOptions {
  /** The whole table was loaded (its recording sets start empty). */
  onFullLoad?(): void;
  /**
   * The ruleset watch runs and recognises the agent's own loads, so every other change to
   * the table reaches `inspect` with `changedByOthers`.
   */
  watchRecognisesLoads?(): boolean;
}

export interface InspectOptions {
  /** Compare with the baseline (and restore on a difference); a plain reading does not. */
  readonly verify: boolean;
  /**
   * The watch saw someone else change the table: restore it even if the baseline cannot
   * tell (it may have been read after that change), and report what the restore undid.
   */
  readonly changedByOthers?: boolean;
}

/** How long after a deferred baseline was read a change of someone else's may predate it. */
const SUSPECT_MS = 5000;

export class Enforcer {
  private current: AppliedPolicy | null = null;
  /**
   * The kernel's table after the last load; undefined until a reading is adopted (the load
   * was not read back, or the read failed).
   */
  private baseline: TableSnapshot | null | undefined = undefined;
  /** When a deferred baseline was adopted (ms), while it may still hide a change. */
  private adoptedAt: number | null = null;
  /** The kernel may not hold `current` exactly (a load failed half-way through our plan). */
  private unsure = true;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly firewall: FirewallAdapter,
    private readonly options: EnforcerOptions = {},
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
  inspect(options: InspectOptions = { verify: true }): Promise<Inspection> {
    return this.serially(() => this.inspectNow(options.verify, options.changedByOthers ?? false));
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
        if (update.replacesTable) this.options.onFullLoad?.();
        await this.loaded();
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
    this.options.onFullLoad?.();
    await this.loaded();
    return { ok: true, how: 'full' };
  }

  /** After a load: the baseline now, or at the next reading when the watch vouches for it. */
  private async loaded(): Promise<void> {
    if (this.options.watchRecognisesLoads?.()) this.baseline = undefined;
    else await this.takeBaseline();
  }

  /** A change of someone else's may be in the baseline, or in the one about to be adopted. */
  private suspect(): boolean {
    if (this.baseline === undefined) return true;
    if (this.adoptedAt === null) return false;
    if (this.now().getTime() - this.adoptedAt < SUSPECT_MS) return true;
    this.adoptedAt = null;
    return false;
  }

  private dynamicSets(): Set<string> {
    return new Set(this.current?.effective.sets.filter((s) => s.dynamic).map((s) => s.name));
  }

  private async read(): Promise<NftTableListing | null> {
    const json = await this.firewall.readTable();
    return json === null ? null : parseNftListing(json);
  }

  private async takeBaseline(): Promise<void> {
    this.adoptedAt = null;
    try {
      this.baseline = snapshotOf(await this.read(), this.dynamicSets());
    } catch {
      // Judged at the next inspection instead, which adopts what it reads.
      this.baseline = undefined;
    }
  }

  private async inspectNow(verify: boolean, changedByOthers: boolean): Promise<Inspection> {
    if (!this.current) return { listing: null, tamper: null };
    const listing = await this.read();
    if (!verify && !changedByOthers && this.baseline !== undefined)
      return { listing, tamper: null };
    const seen = snapshotOf(listing, this.dynamicSets());
    // Only with the watch's word: without it, the agent's own restore would wake the check
    // again, and every baseline was read right after its load anyway.
    const restoreAnyway =
      changedByOthers && (this.options.watchRecognisesLoads?.() ?? false) && this.suspect();
    if (this.baseline === undefined && !restoreAnyway) {
      this.baseline = seen;
      this.adoptedAt = this.now().getTime();
      return { listing, tamper: null };
    }
    let differences =
      this.baseline === undefined ? [] : tableDifferences(this.baseline, seen, TABLE_NAME);
    if (differences.length === 0 && !restoreAnyway) return { listing, tamper: null };
    const detectedAt = this.now().toISOString();
    const kind = seen === null ? 'missing' : 'changed';
    try {
      await this.firewall.load(nftScript(this.current.effective));
    } catch (e) {
      this.unsure = true;
      if (differences.length === 0)
        differences = ['changed by another process (not compared: the restore failed)'];
      return {
        listing,
        tamper: { detectedAt, kind, differences, restored: false, error: errorText(e) },
      };
    }
    this.unsure = false;
    this.options.onFullLoad?.();
    await this.takeBaseline();
    // What the restore undid, when the old baseline could not say (it may hold the change).
    if (differences.length === 0 && this.baseline !== undefined)
      differences = tableDifferences(this.baseline, seen, TABLE_NAME);
    if (differences.length === 0) return { listing, tamper: null };
    return { listing, tamper: { detectedAt, kind, differences, restored: true } };
  }
}

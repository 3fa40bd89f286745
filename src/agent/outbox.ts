/**
 * Everything the agent reports that must survive an outage: flow batches and integrity
 * reports (tamper, dropped telemetry). Written to the state directory's spool first,
 * delivered oldest first when the control plane answers, deleted once it has.
 *
 * Each flow batch gets its id when it is made, and keeps it on disk: a batch that was
 * stored but whose answer was lost is sent again with the same id, and the control plane
 * stores it once.
 */
import type { Logger } from './log.js';
import type { ControlPlane } from './channel/control-plane.js';
import { ControlPlaneRefused, ControlPlaneUnavailable, errorText } from './errors.js';
import type { StateDir } from './state/state-dir.js';
import { MAX_SUMMARIES_PER_BATCH, type FlowSummary, type QueuedReport } from './wire.js';

export type DeliveryResult = 'delivered' | 'unavailable' | 'refused';

/**
 * A batch id: when it was made, and 48 random bits, so two batches of one agent never
 * share an id (ids are not secrets: the credential says who sent the batch).
 */
export function newBatchId(now: Date, random: () => number = Math.random): string {
  const bits = Math.floor(random() * 2 ** 48);
  return `${now.getTime().toString(36)}-${bits.toString(16).padStart(12, '0')}`;
}

/** Splits summaries into batches the control plane accepts. Pure. */
export function batches<T>(items: readonly T[], size = MAX_SUMMARIES_PER_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** A refusal that no retry of the same content can fix (as opposed to a credential problem). */
function isPoison(e: unknown): boolean {
  return e instanceof ControlPlaneRefused && e.status !== 401 && e.status !== 403;
}

export class Outbox {
  private delivering: Promise<DeliveryResult> | null = null;

  constructor(
    private readonly state: StateDir,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Writes the interval's summaries to the spool, as batches with their ids. */
  async spool(summaries: readonly FlowSummary[]): Promise<void> {
    for (const chunk of batches(summaries)) {
      const at = this.now();
      await this.state.flows.push(
        { batchId: newBatchId(at), createdAt: at.toISOString(), summaries: chunk },
        chunk.length,
      );
    }
  }

  async report(report: QueuedReport): Promise<void> {
    await this.state.reports.push(report);
  }

  get pending(): { batches: number; reports: number } {
    return { batches: this.state.flows.length, reports: this.state.reports.length };
  }

  /** Delivers what is queued (one delivery at a time; a second call joins the first). */
  deliver(cp: ControlPlane): Promise<DeliveryResult> {
    this.delivering ??= this.deliverNow(cp).finally(() => {
      this.delivering = null;
    });
    return this.delivering;
  }

  private async deliverNow(cp: ControlPlane): Promise<DeliveryResult> {
    const dropped = this.state.flows.dropped;
    if (dropped.items > 0) {
      // Queued as a report first, so the count survives a crash before it is delivered.
      await this.report({
        kind: 'flows-dropped',
        report: {
          batches: dropped.items,
          summaries: dropped.weight,
          firstDroppedAt: dropped.firstAt ?? this.now().toISOString(),
          lastDroppedAt: dropped.lastAt ?? this.now().toISOString(),
          reason: 'the flow spool reached its size limit while the control plane was unreachable',
        },
      });
      await this.state.flows.clearDropped(dropped);
      this.log.warn(
        { batches: dropped.items, summaries: dropped.weight },
        'flow batches were dropped from the full spool; reporting the count',
      );
    }
    for (;;) {
      const reports = await this.state.reports.oldest(20);
      if (reports.length === 0) break;
      for (const { name, item } of reports) {
        const outcome = await this.send(() =>
          item.kind === 'tamper' ? cp.tamper(item.report) : cp.flowsDropped(item.report),
        );
        if (outcome === 'poison')
          this.log.error({ report: item }, 'the control plane refused a report; dropping it');
        else if (outcome !== 'delivered') return outcome;
        await this.state.reports.remove(name);
      }
    }
    for (;;) {
      const queued = await this.state.flows.oldest(10);
      if (queued.length === 0) return 'delivered';
      for (const { name, item } of queued) {
        const outcome = await this.send(() =>
          cp.flows({ batchId: item.batchId, summaries: item.summaries }),
        );
        if (outcome === 'poison') {
          this.log.error(
            { batchId: item.batchId },
            'the control plane refused a flow batch; dropping it',
          );
          await this.state.flows.discard(name);
          continue;
        }
        if (outcome !== 'delivered') return outcome;
        await this.state.flows.remove(name);
      }
    }
  }

  private async send(call: () => Promise<unknown>): Promise<DeliveryResult | 'poison'> {
    try {
      await call();
      return 'delivered';
    } catch (e) {
      if (e instanceof ControlPlaneUnavailable) return 'unavailable';
      if (isPoison(e)) {
        this.log.error({ err: errorText(e) }, 'refused');
        return 'poison';
      }
      if (e instanceof ControlPlaneRefused) {
        this.log.error({ err: errorText(e) }, 'the control plane refused the agent credential');
        return 'refused';
      }
      // An answer of the wrong shape: the control plane is not itself; try again later.
      this.log.warn({ err: errorText(e) }, 'delivery failed');
      return 'unavailable';
    }
  }
}

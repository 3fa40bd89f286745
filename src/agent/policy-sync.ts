/**
 * Keeping the applied policy current: fetch the compiled policy (with the revision held as
 * ETag, so an unchanged policy costs a 304), apply it, keep it in the state directory,
 * acknowledge it. Asked for by the event stream, the heartbeat and the poll fallback;
 * requests that arrive while a sync runs are folded into one more run.
 *
 * A revision that failed to apply is not fetched again (its ETag goes with the request)
 * until a newer one appears or the agent restarts, so a bad policy is reported once, not
 * every poll.
 */
import type { Logger } from './log.js';
import type { ControlPlane } from './channel/control-plane.js';
import { ControlPlaneRefused, ControlPlaneUnavailable, errorText } from './errors.js';
import type { ApplyOutcome, Enforcer } from './firewall/enforcer.js';
import type { StateDir } from './state/state-dir.js';
import type { AckRequest, CompiledPolicy, Endpoint } from './wire.js';

export interface PolicySyncParts {
  readonly enforcer: Enforcer;
  readonly state: StateDir;
  readonly log: Logger;
  readonly controlPlane: () => ControlPlane | null;
  readonly endpoints: () => readonly Endpoint[];
  /** Called after every apply attempt. */
  readonly onApplied?: (policy: CompiledPolicy, outcome: ApplyOutcome) => void;
}

export class PolicySync {
  private running: Promise<void> | null = null;
  private again = false;
  private failedRevision: number | null = null;
  private unacknowledged: AckRequest | null = null;

  constructor(private readonly parts: PolicySyncParts) {}

  /** The last apply failed (and no later revision has been applied). */
  get failing(): boolean {
    return this.failedRevision !== null;
  }

  /** Asks for a sync; resolves when the sync that covers this request is done. */
  request(reason: string): Promise<void> {
    this.parts.log.debug({ reason }, 'policy sync requested');
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.syncOnce();
      } while (this.again);
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private etag(): string | null {
    const held = this.parts.enforcer.applied?.policy.revision;
    const tags = [held, this.failedRevision].filter(
      (r): r is number => r !== null && r !== undefined,
    );
    return tags.length ? tags.map((r) => `"${r}"`).join(', ') : null;
  }

  private async syncOnce(): Promise<void> {
    const cp = this.parts.controlPlane();
    if (!cp) return;
    const { log, enforcer, state } = this.parts;
    try {
      await this.flushAck(cp);
      const policy = await cp.policy(this.etag());
      if (!policy) return;
      const endpoints = this.parts.endpoints();
      const outcome = await enforcer.apply(policy, endpoints);
      this.parts.onApplied?.(policy, outcome);
      if (outcome.ok) {
        this.failedRevision = null;
        await state.writePolicy({
          policy,
          controlPlane: [...endpoints],
          appliedAt: new Date().toISOString(),
        });
        log.info(
          {
            revision: policy.revision,
            policyVersion: policy.policyVersion,
            mode: policy.mode,
            how: outcome.how,
          },
          'applied policy',
        );
        this.unacknowledged = {
          revision: policy.revision,
          policyVersion: policy.policyVersion,
          result: 'applied',
        };
      } else {
        this.failedRevision = policy.revision;
        log.error(
          { revision: policy.revision, err: outcome.error },
          'cannot apply the policy; still enforcing the previous one',
        );
        this.unacknowledged = {
          revision: policy.revision,
          policyVersion: policy.policyVersion,
          result: 'failed',
          error: outcome.error.slice(0, 4096),
        };
      }
      await this.flushAck(cp);
    } catch (e) {
      if (e instanceof ControlPlaneUnavailable)
        log.debug({ err: errorText(e) }, 'policy sync: control plane unavailable');
      else log.warn({ err: errorText(e) }, 'policy sync failed');
    }
  }

  /** Sends the pending acknowledgement; kept for the next sync if the control plane is away. */
  private async flushAck(cp: ControlPlane): Promise<void> {
    const ack = this.unacknowledged;
    if (!ack) return;
    try {
      await cp.ack(ack);
    } catch (e) {
      if (!(e instanceof ControlPlaneRefused)) throw e;
      this.parts.log.error(
        { err: errorText(e), ack },
        'the control plane refused an acknowledgement',
      );
    }
    if (this.unacknowledged === ack) this.unacknowledged = null;
  }
}

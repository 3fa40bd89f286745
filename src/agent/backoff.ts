/**
 * Exponential backoff with jitter, for reconnecting to the control plane: each failure
 * doubles the wait up to a ceiling, and each wait is drawn between half and all of it, so a
 * fleet of agents that lost the control plane together does not come back in lock-step.
 *
 * Pure: randomness is given.
 */
export interface BackoffOptions {
  readonly initialMs?: number;
  readonly maxMs?: number;
  readonly factor?: number;
  /** A number in [0, 1). */
  readonly random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 500;
    this.maxMs = Math.max(options.maxMs ?? 30_000, this.initialMs);
    this.factor = options.factor ?? 2;
    this.random = options.random ?? Math.random;
  }

  /** How long to wait before the next attempt (and count this failure). */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    if (ceiling < this.maxMs) this.attempt++;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  /** The last attempt worked: start small again. */
  reset(): void {
    this.attempt = 0;
  }

  get failures(): number {
    return this.attempt;
  }
}

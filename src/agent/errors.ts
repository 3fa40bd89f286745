/**
 * The agent's typed errors. Each carries what an operator needs to act on it (which call,
 * which file, what the control plane said), and the loops tell them apart by class: an
 * unavailable control plane is waited out with backoff, a refusal is not retried blindly.
 */

export class AgentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A flag or setting that cannot work; the command exits with usage code 2. */
export class AgentConfigError extends AgentError {}

/**
 * The control plane could not be reached or answered with a server error: nothing was
 * decided, so the call is worth retrying later.
 */
export class ControlPlaneUnavailable extends AgentError {
  constructor(
    readonly url: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`control plane at ${url} is unavailable: ${reason}`, options);
  }
}

/** The control plane answered and refused the call (4xx); retrying the same call will not help. */
export class ControlPlaneRefused extends AgentError {
  constructor(
    readonly call: string,
    readonly status: number,
    readonly code: string | null,
    detail: string,
  ) {
    super(`${call}: refused by the control plane (${status}${code ? ` ${code}` : ''}): ${detail}`);
  }
}

/** The control plane's answer does not have the shape the agent relies on. */
export class ControlPlaneAnswerInvalid extends AgentError {
  constructor(
    readonly call: string,
    detail: string,
  ) {
    super(`${call}: the control plane's answer is not what the agent expects: ${detail}`);
  }
}

/** A file in the state directory cannot be read, parsed or written. */
export class StateDirError extends AgentError {
  constructor(
    readonly path: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`state directory: ${path}: ${reason}`, options);
  }
}

/** The host firewall refused a ruleset, or could not be read. */
export class FirewallError extends AgentError {}

/** A compiled policy that would reach outside Bulkhead's own table if it were loaded. */
export class UnsafePolicyError extends AgentError {}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

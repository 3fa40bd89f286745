/**
 * What can go wrong in a lab, in words a person can act on. Every error says which lab
 * (its directory or file) and what to do next; the CLI prints the message as it is.
 */

/** A lab operation that cannot go on: missing privilege or tool, no lab up, a step failed. */
export class LabError extends Error {
  constructor(
    message: string,
    /** Where it happened (lab directory, workload, command...), for logs and tests. */
    readonly context: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LabError';
  }
}

/** One problem in a topology file: the field's path and what is wrong with it. */
export interface TopologyProblem {
  /** `workloads[2].listen[0].port`, or `(file)` for the whole document. */
  readonly path: string;
  readonly message: string;
}

/** A topology file that does not describe a lab; lists every problem at once. */
export class TopologyError extends LabError {
  constructor(
    readonly file: string,
    readonly problems: readonly TopologyProblem[],
  ) {
    super(problems.map((p) => `${file}: ${p.path}: ${p.message}`).join('\n'), { file });
    this.name = 'TopologyError';
  }
}

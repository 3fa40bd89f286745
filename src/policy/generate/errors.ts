/**
 * Bad generator input, reported all at once (up to a limit) with where each problem is:
 * `flows[12].destination: "10.0.0.300" is not an IP address`.
 */
export class GenerationError extends Error {
  constructor(
    readonly problems: readonly string[],
    /** Problems found beyond those listed. */
    readonly more = 0,
  ) {
    const count = problems.length + more;
    super(
      `${count} problem${count === 1 ? '' : 's'} in the generator's input:\n` +
        problems.map((p) => `  ${p}`).join('\n') +
        (more > 0 ? `\n  ... and ${more} more` : ''),
    );
    this.name = 'GenerationError';
  }
}

/** Collects problems, keeping the first few: a million bad flows need not make a million lines. */
export class ProblemList {
  private readonly listed: string[] = [];
  private more = 0;

  constructor(private readonly limit = 20) {}

  add(problem: string): void {
    if (this.listed.length < this.limit) this.listed.push(problem);
    else this.more++;
  }

  get empty(): boolean {
    return this.listed.length === 0;
  }

  throwIfAny(): void {
    if (!this.empty) throw new GenerationError(this.listed, this.more);
  }
}

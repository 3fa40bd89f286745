/**
 * Names for what the generator writes: readable (`web-to-api`, `gen-payments-prod`), valid
 * policy-as-code names (letters, digits, `.`, `_`, `:`, `-`; a letter or digit first; at most
 * 128), and unique where they must be, whatever label values the estate uses.
 */

const MAX = 128;
/** Room left for a `-NN` suffix when a name is taken. */
const STEM = MAX - 8;

export function sanitizeName(text: string): string {
  const cleaned = text
    .replace(/[^A-Za-z0-9._:-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .replace(/-+$/, '');
  return (cleaned || 'x').slice(0, STEM);
}

/** Hands out names unique among those given (taken) and those it handed out before. */
export class UniqueNames {
  private readonly used: Set<string>;

  constructor(taken: Iterable<string> = []) {
    this.used = new Set(taken);
  }

  /** The sanitized stem, or the stem with the first free `-2`, `-3`... */
  claim(stem: string): string {
    const base = sanitizeName(stem);
    let name = base;
    for (let n = 2; this.used.has(name); n++) name = `${base}-${n}`;
    this.used.add(name);
    return name;
  }
}

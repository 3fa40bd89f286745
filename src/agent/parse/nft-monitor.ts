/**
 * `nft monitor` lines (nftables 1.0.6), as the ruleset watch reads them: one line per object a
 * transaction added or deleted, then one line when the transaction was committed, naming the
 * process that committed it:
 *
 *     delete rule inet bulkhead input handle 37
 *     add rule inet bulkhead input handle 64 ct state established,related accept comment "return traffic"
 *     # new generation 14 by process 9248 (nft)
 *
 * and, when the kernel dropped events for a slow reader:
 *
 *     # ERROR: We lost some netlink events!
 *
 * With its stderr in the same stream, a warning stands for an event nft could not print,
 * e.g. an element change to a set it lost track of (whose table it cannot name either):
 *
 *     W: Received event for an unknown set.
 *
 * Pure: no I/O.
 */

export type MonitorLine =
  /**
   * An object of `table` (or of a table nft could not name) was added, changed or deleted;
   * its transaction is not committed yet.
   */
  | { readonly kind: 'touched' }
  /** A transaction was committed; `pid` is the process that committed it, when nft says. */
  | { readonly kind: 'committed'; readonly pid: number | null }
  /** The watch missed events: anything may have changed. */
  | { readonly kind: 'lost' };

const GENERATION = /^# new generation \d+(?: by process (\d+))?/;

/** What one line says about `table` (e.g. `inet bulkhead`); null when nothing. */
export function monitorLine(line: string, table: string): MonitorLine | null {
  if (line.startsWith('# ')) {
    const m = GENERATION.exec(line);
    if (m) return { kind: 'committed', pid: m[1] === undefined ? null : Number(m[1]) };
    return line.startsWith('# ERROR') ? { kind: 'lost' } : null;
  }
  if (line.startsWith('W: ') || line.startsWith('E: ')) return { kind: 'touched' };
  // Changes to the host's own tables (`inet bulkhead_lab` too) are not ours to judge.
  return line.includes(` ${table} `) || line.endsWith(` ${table}`) ? { kind: 'touched' } : null;
}

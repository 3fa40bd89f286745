/**
 * The firewall adapter: the agent's only way to the kernel's packet filter. The real one
 * runs `nft` (scripts on stdin, one transaction each); tests use a fake.
 *
 * The ruleset watch tells the agent's own transactions from everyone else's: the kernel
 * names the process that committed each one (`# new generation N by process PID`), and the
 * adapter knows the pid of every `nft` it ran. So a load needs no reading back to be told
 * from tampering, and only someone else's change to the table wakes the agent.
 */
import { run } from '../../host/run.js';
import { FirewallError, errorText } from '../errors.js';
import { monitorLine } from '../parse/nft-monitor.js';
import { fifoPath, streamLinesViaFifo, type LineStream } from './lines.js';

export interface FirewallAdapter {
  /** Loads an nft script in one kernel transaction: all of it or none of it. */
  load(script: string): Promise<void>;
  /** `nft -j list table inet bulkhead`, parsed; null when the table does not exist. */
  readTable(): Promise<unknown>;
  /**
   * Watches the ruleset: `onChange` runs for every committed transaction that touched
   * Bulkhead's table and was not one of this adapter's loads (or whose author cannot be
   * told), and when the watcher lost events. The stream ends if the watcher dies; the
   * caller restarts it.
   */
  watch(onChange: () => void): LineStream;
  /**
   * True once a watch has recognised one of this adapter's loads by its process: from then
   * on, a change the watch does not report is the agent's own. (Not so where the kernel
   * reports pids of another pid namespace, e.g. an agent in a container.)
   */
  readonly recognisesOwnLoads: boolean;
}

const TABLE = ['inet', 'bulkhead'] as const;

/**
 * How long a watch that has seen no commit line yet waits, after a transaction's last line,
 * before reporting it anyway (an nft that prints none must not silence the watch).
 */
const COMMIT_WAIT_MS = 1000;
/**
 * How long a load's pid is remembered for the watch to recognise its transaction (nft may
 * take a while to print a large one; a load the watch missed is forgotten at its restart).
 */
const OWN_PID_MS = 10 * 60_000;

/**
 * `runtimeDir` (tmpfs, e.g. /run/bulkhead-agent) holds the named pipe the ruleset watch reads:
 * `nft monitor` writes its warnings there too, in order with its events (see `watch`).
 */
export function nftFirewall(runtimeDir: string, nft = 'nft'): FirewallAdapter {
  /** Pids of the loads whose transaction the watch has not seen yet, with when they ran. */
  const own = new Map<number, number>();
  let recognised = false;
  return {
    get recognisesOwnLoads() {
      return recognised;
    },
    async load(script) {
      let pid: number | null = null;
      try {
        await run([nft, '-f', '-'], {
          input: script,
          onSpawn: (p) => {
            pid = p;
            const now = Date.now();
            for (const [old, at] of own) if (now - at > OWN_PID_MS) own.delete(old);
            own.set(p, now);
          },
        });
      } catch (e) {
        // nft commits all or nothing: a refused script was no transaction.
        if (pid !== null) own.delete(pid);
        throw new FirewallError(`nft refused the ruleset: ${errorText(e)}`, { cause: e });
      }
    },
    async readTable() {
      let result;
      try {
        result = await run([nft, '-j', 'list', 'table', ...TABLE], { okCodes: [0, 1] });
      } catch (e) {
        throw new FirewallError(`cannot list table ${TABLE.join(' ')}: ${errorText(e)}`, {
          cause: e,
        });
      }
      if (result.code === 1) {
        if (/No such file or directory/.test(result.stderr)) return null;
        throw new FirewallError(`cannot list table ${TABLE.join(' ')}: ${result.stderr.trim()}`);
      }
      try {
        return JSON.parse(result.stdout) as unknown;
      } catch (e) {
        throw new FirewallError(`nft -j printed something that is not JSON: ${errorText(e)}`);
      }
    },
    watch(onChange) {
      // Loads committed while no watch ran will never be seen.
      own.clear();
      const table = TABLE.join(' ');
      let touched = false;
      let printsCommits = false;
      let waiting: NodeJS.Timeout | null = null;
      const settle = () => {
        if (waiting) clearTimeout(waiting);
        waiting = null;
        touched = false;
      };
      const onLine = (text: string) => {
        const line = monitorLine(text, table);
        if (!line) return;
        if (line.kind === 'touched') {
          touched = true;
          // A large transaction takes nft a while to print: wait for its commit line.
          if (printsCommits) return;
          if (waiting) clearTimeout(waiting);
          waiting = setTimeout(() => {
            settle();
            onChange();
          }, COMMIT_WAIT_MS);
          return;
        }
        if (line.kind === 'committed') printsCommits = true;
        const mine = line.kind === 'committed' && line.pid !== null && own.delete(line.pid);
        if (mine) recognised = true;
        const report = line.kind === 'lost' || (touched && !mine);
        settle();
        if (report) onChange();
      };
      // Plain `nft monitor`, not `nft monitor ruleset`: only it prints the commit lines. Its
      // stderr shares the pipe: after a rule naming a set is deleted, nft 1.0.6 forgets that
      // set and prints a warning instead of each change to its elements, and only the
      // order of the lines tells whose transaction that warning belongs to.
      const stream = streamLinesViaFifo([nft, 'monitor'], onLine, onLine, {
        path: fifoPath(runtimeDir, 'nft-monitor'),
        pollMs: 100,
        mergeStderr: true,
      });
      void stream.ended.finally(settle);
      return stream;
    },
  };
}

/**
 * The firewall adapter: the agent's only way to the kernel's packet filter. The real one
 * runs `nft` (scripts on stdin, one transaction each); tests use a fake.
 */
import { run } from '../../host/run.js';
import { FirewallError, errorText } from '../errors.js';
import { streamLines, type LineStream } from './lines.js';

export interface FirewallAdapter {
  /** Loads an nft script in one kernel transaction: all of it or none of it. */
  load(script: string): Promise<void>;
  /** `nft -j list table inet bulkhead`, parsed; null when the table does not exist. */
  readTable(): Promise<unknown>;
  /**
   * Watches the ruleset: `onChange` runs for every change that names Bulkhead's table.
   * The stream ends if the watcher dies; the caller restarts it.
   */
  watch(onChange: () => void): LineStream;
}

const TABLE = ['inet', 'bulkhead'] as const;

export function nftFirewall(nft = 'nft'): FirewallAdapter {
  return {
    async load(script) {
      try {
        await run([nft, '-f', '-'], { input: script });
      } catch (e) {
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
      return streamLines([nft, 'monitor', 'ruleset'], (line) => {
        // Changes to the host's own tables are not ours to judge.
        if (line.includes(` ${TABLE.join(' ')}`)) onChange();
      });
    },
  };
}

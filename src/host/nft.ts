/**
 * The nftables adapter: the only code that talks to `nft`. Rulesets go in on stdin
 * (`nft -f -`), so a whole table is replaced in one kernel transaction.
 */
import { run } from './run.js';

export interface Nft {
  /** Applies a ruleset script atomically. */
  apply(script: string): Promise<void>;
  /** Checks a ruleset script without applying it (`nft -c`). */
  check(script: string): Promise<void>;
  /** `nft -j list ...`, parsed. */
  listJson(args: readonly string[]): Promise<unknown>;
}

/** Runs nft on this host, or inside a network namespace when `netns` is given. */
export function systemNft(netns?: string): Nft {
  const prefix = netns ? ['ip', 'netns', 'exec', netns, 'nft'] : ['nft'];
  return {
    async apply(script) {
      await run([...prefix, '-f', '-'], { input: script });
    },
    async check(script) {
      await run([...prefix, '-c', '-f', '-'], { input: script });
    },
    async listJson(args) {
      const { stdout } = await run([...prefix, '-j', 'list', ...args]);
      return JSON.parse(stdout) as unknown;
    },
  };
}

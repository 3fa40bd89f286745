/**
 * The ruleset watch and the enforcer over the real nft, in a network namespace: the agent's
 * own loads are told from everyone else's changes by the process that committed them, a
 * peer address someone else adds is reported even where nft 1.0.6 only warns about it, and
 * the enforcer restores it although it read nothing back since its own update.
 *
 * The namespace is `bhwwatch` (prefix `bhw`); nothing in it is reachable.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nftFirewall } from '../../src/agent/adapters/firewall.js';
import { Enforcer } from '../../src/agent/firewall/enforcer.js';
import { destroyByPrefix } from '../../src/host/netns.js';
import { run } from '../../src/host/run.js';
import { kernelLabUnavailable } from '../support/kernel-probe.js';
import { waitFor } from '../support/lab-e2e.js';
import { estatePolicy, estateState } from './support/policy.js';

const NETNS = 'bhwwatch';
const CP = [{ address: '198.19.0.1', port: 7480 }];

const why = await kernelLabUnavailable(['nft', 'mkfifo']);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(why !== null)(`the ruleset watch${why ? ` (skipped: ${why})` : ''}`, () => {
  let dir: string;
  let nft: string;

  beforeAll(async () => {
    await destroyByPrefix('bhw');
    await run(['ip', 'netns', 'add', NETNS]);
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-watch-'));
    // `nft` inside the namespace; `exec` twice keeps the pid the kernel names as author.
    nft = join(dir, 'nft');
    await writeFile(nft, `#!/bin/sh\nexec ip netns exec ${NETNS} nft "$@"\n`);
    await chmod(nft, 0o700);
  });
  afterAll(async () => {
    await destroyByPrefix('bhw');
    await rm(dir, { recursive: true, force: true });
  });

  it("reports someone else's changes but not the agent's loads, and the enforcer restores them", async () => {
    const firewall = nftFirewall(join(dir, 'run'), nft);
    const changes: number[] = [];
    const watch = firewall.watch(() => changes.push(Date.now()));
    try {
      const e = new Enforcer(firewall, { watchRecognisesLoads: () => firewall.recognisesOwnLoads });
      // Loaded whole until the watch, subscribing meanwhile, has seen one of them.
      for (let i = 0; i < 30 && !firewall.recognisesOwnLoads; i++) {
        expect(await e.apply(estatePolicy(1), CP, { full: true })).toEqual({
          ok: true,
          how: 'full',
        });
        await sleep(200);
      }
      expect(firewall.recognisesOwnLoads).toBe(true);
      const update = await e.apply({ ...estatePolicy(2), nft: estateState('shop-api-1') }, CP);
      expect(update).toEqual({ ok: true, how: 'incremental' });
      await sleep(500);
      expect(changes).toEqual([]);

      // Someone adds a peer address. The update deleted the rules naming that set, so nft
      // prints a warning where the element would be: reported all the same.
      const peers = e.applied!.effective.sets.find(
        (s) => !s.dynamic && s.declaration.startsWith('type ipv4_addr;'),
      )!;
      await run([
        'ip',
        'netns',
        'exec',
        NETNS,
        'nft',
        'add',
        'element',
        'inet',
        'bulkhead',
        peers.name,
        '{ 198.18.99.99 }',
      ]);
      await waitFor('the change to be reported', 3000, async () => changes.length === 1, 50);

      // Nothing was read back since the update: the enforcer restores and says what it undid.
      const { tamper } = await e.inspect({ verify: true, changedByOthers: true });
      expect(tamper).toMatchObject({
        restored: true,
        differences: [`set ${peers.name}: 0 element(s) missing, 1 element(s) added`],
      });
      const listed = await run([
        'ip',
        'netns',
        'exec',
        NETNS,
        'nft',
        'list',
        'set',
        'inet',
        'bulkhead',
        peers.name,
      ]);
      expect(listed.stdout).not.toContain('198.18.99.99');
      // The restore was the agent's own load.
      await sleep(500);
      expect(changes).toHaveLength(1);
    } finally {
      watch.stop();
      await watch.ended;
    }
  });
});

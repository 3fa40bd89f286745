/**
 * The table the agent loads: the control-plane exception, containment of what the control
 * plane sends, tamper comparison, and the enforcer over a fake kernel. The scripts also go
 * through the real `nft -c` when it is available.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONTROL_PLANE_COMMENT,
  controlPlaneRules,
  withControlPlane,
} from '../../src/agent/firewall/control-plane.js';
import { assertContained } from '../../src/agent/firewall/containment.js';
import { Enforcer } from '../../src/agent/firewall/enforcer.js';
import { snapshotOf, tableDifferences } from '../../src/agent/firewall/tamper.js';
import { parseNftListing } from '../../src/agent/parse/nft-json.js';
import { UnsafePolicyError } from '../../src/agent/errors.js';
import { destroyByPrefix } from '../../src/host/netns.js';
import { hasCommand, run } from '../../src/host/run.js';
import { nftScript, type NftState } from '../../src/policy/compile/nft.js';
import { renderNftUpdate } from '../../src/policy/compile/nft-update.js';
import { FakeFirewall, TABLE_JSON } from './support/fakes.js';
import { estatePolicy, estateState } from './support/policy.js';

const CP = [{ address: '198.19.0.1', port: 7480 }];

describe('the control-plane exception', () => {
  it('accepts the channel in every output base chain, after loopback, return traffic and neighbour discovery, before any rule', () => {
    const state = estateState('shop-db-1');
    const out = withControlPlane(state, [...CP, { address: '2001:db8::1', port: 443 }]);
    const output = out.chains.find((c) => c.name === 'output')!;
    const before = state.chains.find((c) => c.name === 'output')!;
    expect(output.rules.slice(0, 4)).toEqual(before.rules.slice(0, 4));
    expect(output.rules.slice(4, 6)).toEqual([
      `ip daddr 198.19.0.1 tcp dport 7480 counter accept comment "${CONTROL_PLANE_COMMENT}"`,
      `ip6 daddr 2001:db8::1 tcp dport 443 counter accept comment "${CONTROL_PLANE_COMMENT}"`,
    ]);
    expect(output.rules.slice(6)).toEqual(before.rules.slice(4));
    // The last rule is still the default deny: the exception is the only new opening.
    expect(output.rules.at(-1)).toContain('default deny');
    // Inbound and the tails are untouched; nothing inbound is opened.
    for (const name of ['input', 'block_in', 'block_out'])
      expect(out.chains.find((c) => c.name === name)).toBe(
        state.chains.find((c) => c.name === name),
      );
    // The compiler's state is not changed in place.
    expect(before.rules.join('\n')).not.toContain(CONTROL_PLANE_COMMENT);
  });

  it('stays through incremental updates, and an idle workload (no table) gets none', () => {
    const full = withControlPlane(estateState('shop-db-1'), CP);
    const next = withControlPlane(estateState('shop-api-1'), CP);
    const update = renderNftUpdate(full, next);
    expect(update.text).toContain(`ip daddr 198.19.0.1 tcp dport 7480 counter accept`);
    const idle: NftState = { workload: 'x', mode: 'idle', sets: [], chains: [], warnings: [] };
    expect(withControlPlane(idle, CP)).toBe(idle);
    expect(controlPlaneRules([...CP, ...CP])).toHaveLength(1);
  });
});

describe('containment of what the control plane sends', () => {
  const state = estateState('shop-db-1');
  const withRule = (rule: string): NftState => ({
    ...state,
    chains: state.chains.map((c) => (c.name === 'input' ? { ...c, rules: [...c.rules, rule] } : c)),
  });

  it('accepts what the compiler makes', () => {
    expect(() => assertContained(withControlPlane(state, CP))).not.toThrow();
  });

  it('refuses anything that could reach another table', () => {
    for (const [rule, why] of [
      ['accept }\n}\ntable ip host {', /"}"|line break/],
      ['accept\ntable ip host { }', /line break/],
      ['accept; flush ruleset', /";"/],
      [
        'accept } } table ip host { chain c { type filter hook input priority 0; policy drop',
        /";"|"}"/,
      ],
      ['accept }', /"}"/],
      ['accept comment "open', /unclosed quote/],
      ['ip saddr { 10.0.0.1', /unclosed "\{"/],
      ['accept # and the rest', /"#"/],
    ] as const)
      expect(() => assertContained(withRule(rule)), rule).toThrow(why);
    const badElement = { ...state, sets: [{ ...state.sets[0]!, elements: ['10.0.0.1 }'] }] };
    expect(() => assertContained(badElement)).toThrow(UnsafePolicyError);
  });
});

describe('tamper comparison', () => {
  const dynamic = new Set([
    'blocked_in4',
    'blocked_in6',
    'blocked_out4',
    'blocked_out6',
    'potential_in4',
    'potential_in6',
    'potential_out4',
    'potential_out6',
  ]);
  const snap = (json: unknown) => snapshotOf(parseNftListing(json), dynamic);
  type Item = Record<string, Record<string, unknown>>;
  const edit = (change: (items: Item[]) => Item[]) => {
    const json = TABLE_JSON() as { nftables: Item[] };
    return { nftables: change(json.nftables) };
  };

  it('finds nothing when only the kernel changed things: counters, handles, recorded attempts', () => {
    const after = edit((items) =>
      items.map((i) => {
        if (i.rule)
          return {
            rule: {
              ...i.rule,
              handle: 9999,
              expr: JSON.parse(
                JSON.stringify(i.rule.expr).replace(/"packets":\d+/g, '"packets":77'),
              ),
            },
          };
        if (i.set?.name === 'blocked_in4') return { set: { ...i.set, elem: [] } };
        return i;
      }),
    );
    expect(tableDifferences(snap(TABLE_JSON()), snap(after))).toEqual([]);
  });

  it('finds a flushed table, a deleted rule, a deleted peer address, an added rule, a changed policy', () => {
    const base = snap(TABLE_JSON());
    expect(tableDifferences(base, null)).toEqual(['table inet bulkhead is missing']);
    let dropped = false;
    const noRule = edit((items) =>
      items.filter((i) => {
        if (!dropped && i.rule?.comment === 'default deny') return !(dropped = true);
        return true;
      }),
    );
    expect(tableDifferences(base, snap(noRule))).toEqual([
      'chain input: rules changed (15 expected, 14 found; 1 missing, 0 added)',
    ]);
    const noPeer = edit((items) =>
      items.map((i) =>
        i.set?.name === 'p_ef5dd9fd7d5a_v4' ? { set: { ...i.set, elem: ['198.18.9.10'] } } : i,
      ),
    );
    expect(tableDifferences(base, snap(noPeer))).toEqual([
      'set p_ef5dd9fd7d5a_v4: 1 element(s) missing, 0 element(s) added',
    ]);
    const extra = edit((items) => [
      ...items,
      {
        rule: {
          family: 'inet',
          table: 'bulkhead',
          chain: 'input',
          handle: 1,
          expr: [{ accept: null }],
        },
      },
    ]);
    expect(tableDifferences(base, snap(extra))).toEqual([
      'chain input: rules changed (15 expected, 16 found; 0 missing, 1 added)',
    ]);
    const dropPolicy = edit((items) =>
      items.map((i) =>
        i.chain?.name === 'output' ? { chain: { ...i.chain, policy: 'drop' } } : i,
      ),
    );
    expect(tableDifferences(base, snap(dropPolicy))).toEqual([
      'chain output: declaration (hook, priority or policy) changed',
    ]);
    expect(tableDifferences(null, base)).toEqual([
      'table inet bulkhead exists, but the policy holds none',
    ]);
  });
});

describe('the enforcer', () => {
  it('loads the whole table first, then incremental updates, nothing when nothing changed', async () => {
    const fw = new FakeFirewall();
    const e = new Enforcer(fw);
    expect(await e.apply(estatePolicy(1), CP)).toEqual({ ok: true, how: 'full' });
    expect(fw.loads[0]).toBe(nftScript(withControlPlane(estateState('shop-db-1'), CP)));
    const next = { ...estatePolicy(2), nft: estateState('shop-api-1') };
    expect(await e.apply(next, CP)).toEqual({ ok: true, how: 'incremental' });
    expect(fw.loads[1]).toMatch(/^# Bulkhead update/);
    expect(await e.apply({ ...next, revision: 3 }, CP)).toEqual({ ok: true, how: 'unchanged' });
    expect(fw.loads).toHaveLength(2);
    expect(e.applied?.policy.revision).toBe(3);
    // A restart knows nothing of the kernel: it loads the whole table.
    expect(await new Enforcer(fw).apply(next, CP, { full: true })).toEqual({
      ok: true,
      how: 'full',
    });
  });

  it('falls back to the whole table when an update fails, and keeps the old policy when that fails too', async () => {
    const fw = new FakeFirewall();
    const e = new Enforcer(fw);
    await e.apply(estatePolicy(1), CP);
    fw.failures.push(new Error('nft: No such file or directory'));
    expect(await e.apply({ ...estatePolicy(2), nft: estateState('shop-api-1') }, CP)).toEqual({
      ok: true,
      how: 'full',
    });
    // The update fails, then the whole table too: nft loads all or nothing.
    fw.failures.push(new Error('nft: syntax error'), new Error('nft: syntax error'));
    const bad = { ...estatePolicy(3), nft: estateState('shop-web-1') };
    expect(await e.apply(bad, CP)).toEqual({ ok: false, error: 'nft: syntax error' });
    expect(e.applied?.policy.revision).toBe(2);
  });

  it('refuses a policy that would leave its table, loading nothing', async () => {
    const fw = new FakeFirewall();
    const e = new Enforcer(fw);
    const state = estateState();
    const evil = {
      ...estatePolicy(1),
      nft: {
        ...state,
        chains: [
          ...state.chains.slice(0, -1),
          { name: 'output', declaration: null, rules: ['accept } table ip host { chain x {'] },
        ],
      },
    };
    const outcome = await e.apply(evil, CP);
    expect(outcome.ok).toBe(false);
    expect(fw.loads).toEqual([]);
  });

  it('finds tampering, restores the whole table, and says what it found', async () => {
    const fw = new FakeFirewall();
    let reloads = 0;
    const e = new Enforcer(fw, { onFullLoad: () => reloads++ });
    await e.apply(estatePolicy(1), CP);
    expect(await e.inspect()).toMatchObject({ tamper: null });
    fw.tamper(() => null); // nft flush ruleset
    const { tamper } = await e.inspect();
    expect(tamper).toMatchObject({
      kind: 'missing',
      restored: true,
      differences: ['table inet bulkhead is missing'],
    });
    expect(fw.loads.at(-1)).toBe(fw.loads[0]);
    expect(reloads).toBe(2);
    expect(await e.inspect()).toMatchObject({ tamper: null });
    // A read without verification never restores.
    fw.tamper(() => null);
    expect(await e.inspect({ verify: false })).toEqual({ listing: null, tamper: null });
    // When the restore fails, it says so.
    fw.failures.push(new Error('nft: Operation not permitted'));
    expect((await e.inspect()).tamper).toMatchObject({
      restored: false,
      error: 'nft: Operation not permitted',
    });
  });

  describe('while the watch recognises its loads', () => {
    /** A kernel whose first peer set gained an address: what `nft add element` leaves. */
    const withExtraPeer = (kernel: unknown) => {
      const json = structuredClone(kernel) as { nftables: Record<string, { elem?: unknown[] }>[] };
      const set = json.nftables.find((i) => i.set?.elem?.length)!.set!;
      set.elem = [...set.elem!, '198.18.99.99'];
      return json;
    };
    const setUp = () => {
      const journal: string[] = [];
      const fw = new FakeFirewall(journal);
      fw.recognisesOwnLoads = true;
      let clock = 1_000_000;
      const e = new Enforcer(
        fw,
        { watchRecognisesLoads: () => fw.recognisesOwnLoads },
        () => new Date(clock),
      );
      return { fw, e, journal, later: (ms: number) => (clock += ms) };
    };

    it('does not read a load back: the next reading of the table becomes the baseline', async () => {
      const { fw, e, journal, later } = setUp();
      await e.apply(estatePolicy(1), CP);
      await e.apply({ ...estatePolicy(2), nft: estateState('shop-api-1') }, CP);
      expect(journal).toEqual(['firewall.load', 'firewall.load']);
      // The flush's plain reading adopts the table; a later difference is found as before.
      expect(await e.inspect({ verify: false })).toMatchObject({ tamper: null });
      later(60_000);
      fw.kernel = withExtraPeer(fw.kernel);
      expect((await e.inspect()).tamper).toMatchObject({
        kind: 'changed',
        restored: true,
        differences: [
          expect.stringMatching(/^set \w+: 0 element\(s\) missing, 1 element\(s\) added$/),
        ],
      });
    });

    it("restores a change of someone else's that came before the baseline was read, and says what it undid", async () => {
      const { fw, e, later } = setUp();
      await e.apply(estatePolicy(1), CP);
      // Someone adds a peer before any reading: the watch reports it, the baseline cannot.
      fw.kernel = withExtraPeer(fw.kernel);
      const { tamper } = await e.inspect({ verify: true, changedByOthers: true });
      expect(tamper).toMatchObject({
        restored: true,
        differences: [expect.stringMatching(/1 element\(s\) added$/)],
      });
      expect(fw.loads.at(-1)).toBe(fw.loads[0]);
      // The same change just after a deferred baseline was adopted (the watch reports late).
      await e.apply({ ...estatePolicy(2), nft: estateState('shop-api-1') }, CP);
      fw.kernel = withExtraPeer(fw.kernel);
      expect(await e.inspect({ verify: false })).toMatchObject({ tamper: null });
      later(1000);
      expect(
        (await e.inspect({ verify: true, changedByOthers: true })).tamper?.differences,
      ).toEqual([expect.stringMatching(/1 element\(s\) added$/)]);
      // Once the baseline is settled, a report that changed nothing restores nothing.
      later(60_000);
      const loads = fw.loads.length;
      expect(await e.inspect({ verify: true, changedByOthers: true })).toMatchObject({
        tamper: null,
      });
      expect(fw.loads).toHaveLength(loads);
    });

    it('without the watch, reads every load back and restores only on a difference', async () => {
      const { fw, e, journal } = setUp();
      fw.recognisesOwnLoads = false;
      await e.apply(estatePolicy(1), CP);
      expect(journal).toEqual(['firewall.load', 'firewall.read']);
      expect(await e.inspect({ verify: true, changedByOthers: true })).toMatchObject({
        tamper: null,
      });
      expect(fw.loads).toHaveLength(1);
    });
  });
});

// --- The same scripts through the real nft --------------------------------------------------

const NETNS = 'bhachk';
async function nftUnavailable(): Promise<string | null> {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'needs root (a network namespace to check in)';
  for (const tool of ['ip', 'nft'])
    if (!(await hasCommand(tool))) return `\`${tool}\` is not installed`;
  return null;
}
const why = await nftUnavailable();

describe.skipIf(why !== null)(
  `the agent's scripts pass \`nft -c\`${why ? ` (skipped: ${why})` : ''}`,
  () => {
    beforeAll(async () => {
      await destroyByPrefix(NETNS);
      await run(['ip', 'netns', 'add', NETNS]);
    });
    afterAll(() => destroyByPrefix(NETNS));

    it('checks the table with the exception, and the update between two such tables', async () => {
      const a = withControlPlane(estateState('shop-db-1'), [
        ...CP,
        { address: '2001:db8::7', port: 7480 },
      ]);
      const b = withControlPlane(estateState('shop-api-1'), CP);
      const check = (text: string) =>
        run(['ip', 'netns', 'exec', NETNS, 'nft', '-c', '-f', '-'], {
          input: text,
          okCodes: [0, 1],
        });
      expect((await check(nftScript(a))).stderr).toBe('');
      await run(['ip', 'netns', 'exec', NETNS, 'nft', '-f', '-'], { input: nftScript(a) });
      expect((await check(renderNftUpdate(a, b).text)).stderr).toBe('');
      const listed = (
        await run([
          'ip',
          'netns',
          'exec',
          NETNS,
          'nft',
          'list',
          'chain',
          'inet',
          'bulkhead',
          'output',
        ])
      ).stdout;
      expect(listed).toContain(
        'ip daddr 198.19.0.1 tcp dport 7480 counter packets 0 bytes 0 accept',
      );
    });
  },
);

/**
 * Incremental nft updates against the real kernel: for every workload of the example
 * estate, version 1 loaded in full and then moved to version 2 by `renderNftUpdate` must
 * leave exactly the table that a fresh full load of version 2 leaves.
 *
 * Two network namespaces only hold tables (no traffic): `bhuinc` gets v1 + the update,
 * `bhufresh` gets v2 in full. Each full script replaces the table, so one pair of
 * namespaces serves every workload in turn.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { destroyByPrefix } from '../../src/host/netns.js';
import { hasCommand, run } from '../../src/host/run.js';
import { compilePolicy, type CompiledPolicy } from '../../src/policy/compile/endpoint.js';
import { nftState, renderNft, type NftState } from '../../src/policy/compile/nft.js';
import { renderNftUpdate } from '../../src/policy/compile/nft-update.js';
import type { Actors, EnforcementMode, Policy, Rule, Workload } from '../../src/policy/model.js';
import { resolvePolicy } from '../../src/policy/resolve.js';
import { loadPolicy } from '../../src/policy-as-code/load.js';

const PREFIX = 'bhu';
const INCREMENTAL = `${PREFIX}inc`;
const FRESH = `${PREFIX}fresh`;

async function unavailable(): Promise<string | null> {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const tool of ['ip', 'nft'])
    if (!(await hasCommand(tool))) return `\`${tool}\` is not installed`;
  return null;
}

// --- Two versions of the example estate -------------------------------------------------

function withWorkload(policy: Policy, name: string, change: (w: Workload) => Workload): Policy {
  if (!policy.workloads.some((w) => w.name === name)) throw new Error(`no workload ${name}`);
  return { ...policy, workloads: policy.workloads.map((w) => (w.name === name ? change(w) : w)) };
}

const relabel = (key: string, value: string) => (w: Workload) => ({
  ...w,
  labels: { ...w.labels, [key]: value },
});
const mode = (m: EnforcementMode) => (w: Workload) => ({ ...w, mode: m });
const addAddress = (a: string) => (w: Workload) => ({ ...w, addresses: [...w.addresses, a] });

function actors(labels: Record<string, string[]>): Actors {
  return {
    allWorkloads: false,
    selector: { labels, labelGroups: [] },
    workloads: [],
    ipLists: [],
    userGroups: [],
  };
}

/** Version 2: the kinds of change an operator makes between two policy versions. */
function version2(v1: Policy): Policy {
  let p = v1;
  // Label changes that move workloads between peer sets (a managed and an unmanaged one).
  p = withWorkload(p, 'shop-web-s1', relabel('env', 'prod'));
  p = withWorkload(p, 'vault-hsm', relabel('env', 'staging'));
  // Mode changes, including to and from idle.
  p = withWorkload(p, 'shop-db-s1', mode('full'));
  p = withWorkload(p, 'jump-1', mode('idle'));
  p = withWorkload(p, 'jump-2', mode('selective'));
  // IPv6 addresses added.
  p = withWorkload(p, 'shop-web-1', addAddress('2001:db8:1::11'));
  p = withWorkload(p, 'shop-api-1', addAddress('2001:db8:1::21'));
  // A new rule (with a peer set nobody used before) and a removed one.
  const jumpToWeb: Rule = {
    name: 'jump-to-web',
    action: 'allow',
    sources: actors({ role: ['jump'] }),
    destinations: actors({ role: ['web'] }),
    services: [
      { kind: 'inline', port: { proto: 'tcp', ports: { from: 22, to: 22 } } },
      { kind: 'inline', port: { proto: 'udp', ports: { from: 5000, to: 5010 } } },
    ],
    extraScope: true,
  };
  p = {
    ...p,
    rulesets: p.rulesets.map((rs) => {
      if (rs.name === 'shop') return { ...rs, rules: [...rs.rules, jumpToWeb] };
      if (rs.name === 'payments')
        return { ...rs, rules: rs.rules.filter((r) => r.name !== 'api-to-hsm') };
      return rs;
    }),
  };
  return p;
}

// --- Reading a table back, comparably ------------------------------------------------------

type Json = Record<string, unknown>;

/** Drops what differs between two equal tables loaded differently: handles, counter values. */
function scrub(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(scrub);
  if (value === null || typeof value !== 'object') return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value as Json)) {
    if (k === 'handle') continue;
    if (k === 'counter' && v !== null && typeof v === 'object') out[k] = 'counter';
    else out[k] = scrub(v);
  }
  return out;
}

/**
 * `nft -j list table inet bulkhead`, normalised: no handles, no counter values, no contents
 * of the kernel-filled recording sets; sets and chains by name (their listing order is
 * creation order, which an update changes), rules in order within their chain.
 */
async function tableOf(netns: string): Promise<unknown> {
  const r = await run(
    ['ip', 'netns', 'exec', netns, 'nft', '-j', 'list', 'table', 'inet', 'bulkhead'],
    { okCodes: [0, 1] },
  );
  if (r.code !== 0) return null;
  const items = (JSON.parse(r.stdout) as { nftables: Json[] }).nftables;
  const sets: Record<string, unknown> = {};
  const chains: Record<string, { chain: unknown; rules: unknown[] }> = {};
  for (const item of items) {
    if (item.set) {
      const set = { ...(item.set as Json) };
      const flags = (set.flags as string[] | undefined) ?? [];
      if (flags.includes('dynamic')) delete set.elem;
      sets[set.name as string] = scrub(set);
    } else if (item.chain) {
      const chain = item.chain as Json;
      chains[chain.name as string] = { chain: scrub(chain), rules: [] };
    }
  }
  for (const item of items) {
    if (!item.rule) continue;
    const rule = item.rule as Json;
    chains[rule.chain as string]!.rules.push(scrub(rule));
  }
  const sortedKeys = <T>(o: Record<string, T>): Record<string, T> =>
    Object.fromEntries(
      Object.keys(o)
        .sort()
        .map((k) => [k, o[k]!]),
    );
  return { sets: sortedKeys(sets), chains: sortedKeys(chains) };
}

async function nft(netns: string, script: string): Promise<void> {
  await run(['ip', 'netns', 'exec', netns, 'nft', '-f', '-'], { input: script });
}

/** Non-comment lines of a script. */
function commands(script: string): string[] {
  return script.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
}

// --- The tests ---------------------------------------------------------------------------

const why = await unavailable();

describe.skipIf(why !== null)(
  `incremental nft updates in the kernel${why ? ` (skipped: ${why})` : ''}`,
  () => {
    let v1: CompiledPolicy;
    let v2: CompiledPolicy;
    let base: Policy;

    beforeAll(async () => {
      await destroyByPrefix(PREFIX);
      for (const ns of [INCREMENTAL, FRESH]) {
        await run(['ip', 'netns', 'add', ns]);
      }
      base = (await loadPolicy(['examples/estate'])).policy;
      v1 = compilePolicy(resolvePolicy(base));
      v2 = compilePolicy(resolvePolicy(version2(base)));
    });

    afterAll(async () => {
      await destroyByPrefix(PREFIX);
    });

    it('version 1 + the update equals version 2 loaded in full, for every workload', async () => {
      const modes = new Set<string>();
      let updated = 0;
      for (const [name, after] of v2.endpoints) {
        const before = v1.endpoints.get(name)!;
        const s1 = nftState(before, v1.peerSets);
        const s2 = nftState(after, v2.peerSets);
        const update = renderNftUpdate(s1, s2);
        modes.add(`${s1.mode}->${s2.mode}`);
        if (update.text !== '') updated++;

        await nft(INCREMENTAL, renderNft(before, v1.peerSets).text);
        await nft(INCREMENTAL, update.text);
        await nft(FRESH, renderNft(after, v2.peerSets).text);
        const [incremental, fresh] = await Promise.all([tableOf(INCREMENTAL), tableOf(FRESH)]);
        expect(incremental, `${name}: ${s1.mode} -> ${s2.mode}\n${update.text}`).toEqual(fresh);
        if (s2.mode === 'idle') expect(fresh, name).toBeNull();
        else expect(fresh, name).not.toBeNull();
      }
      // The versions really exercise what they claim to.
      for (const m of ['visibility->full', 'full->idle', 'idle->selective'])
        expect(modes).toContain(m);
      expect(updated).toBeGreaterThan(5);
    });

    it('rewrites only the chains whose rules changed, never the recording tails', () => {
      const update = (name: string) =>
        renderNftUpdate(
          nftState(v1.endpoints.get(name)!, v1.peerSets),
          nftState(v2.endpoints.get(name)!, v2.peerSets),
        );
      // shop-web-1: a new inbound rule (and a new peer set for it), an IPv6 address of its own.
      const web = update('shop-web-1');
      expect(web.replacesTable).toBe(false);
      expect(web.chainsRewritten).toEqual(['input']);
      expect(web.setsCreated).toBe(2);
      // shop-db-s1: visibility -> full rewrites both base chains; its peers change by elements.
      const db = update('shop-db-s1');
      expect(db.chainsRewritten).toEqual(['input', 'output']);
      const other = commands(db.text).filter(
        (l) => !/^(add rule|flush chain|add element|delete element) /.test(l),
      );
      expect(other).toEqual([]);
      // pay-api-1: api-to-hsm is gone, and with it the set that only that rule named.
      const pay = update('pay-api-1');
      expect(pay.chainsRewritten).toEqual(['output']);
      expect(pay.setsDeleted).toBe(2);
      const lines = commands(pay.text);
      const lastRule = lines.findLastIndex((l) => l.startsWith('add rule'));
      const firstSetDelete = lines.findIndex((l) => l.startsWith('delete set'));
      expect(firstSetDelete).toBeGreaterThan(lastRule);
      // jump-1 goes idle: the table is removed; jump-2 comes out of idle: a full load.
      expect(commands(update('jump-1').text)).toEqual([
        'table inet bulkhead',
        'delete table inet bulkhead',
      ]);
      expect(update('jump-2').replacesTable).toBe(true);
    });

    it('a label change is only set-element changes, and the kernel takes them', async () => {
      // An unmanaged appliance moves from prod to staging: every host that names env=staging
      // or env=prod learns it through elements alone.
      const changed = compilePolicy(
        resolvePolicy(withWorkload(base, 'vault-hsm', relabel('env', 'staging'))),
      );
      let touched = 0;
      for (const [name, after] of changed.endpoints) {
        const before = v1.endpoints.get(name)!;
        const s1: NftState = nftState(before, v1.peerSets);
        const update = renderNftUpdate(s1, nftState(after, changed.peerSets));
        if (update.text === '') continue;
        touched++;
        const lines = commands(update.text);
        expect(
          lines.every((l) => /^(add|delete) element inet bulkhead p_[0-9a-f]{12}_v[46] \{/.test(l)),
          `${name}:\n${update.text}`,
        ).toBe(true);
        expect(update.chainsRewritten).toEqual([]);
        expect(update.setsCreated + update.setsDeleted).toBe(0);
        await nft(INCREMENTAL, renderNft(before, v1.peerSets).text);
        await nft(INCREMENTAL, update.text);
        await nft(FRESH, renderNft(after, changed.peerSets).text);
        expect(await tableOf(INCREMENTAL)).toEqual(await tableOf(FRESH));
      }
      // The prod hosts (override-deny from staging) and the staging ones (to prod) all hear of it.
      expect(touched).toBeGreaterThanOrEqual(5);
    });

    it('keeps what the kernel recorded across an update', async () => {
      const name = 'shop-db-s1';
      const s1 = nftState(v1.endpoints.get(name)!, v1.peerSets);
      const s2 = nftState(v2.endpoints.get(name)!, v2.peerSets);
      await nft(INCREMENTAL, renderNft(v1.endpoints.get(name)!, v1.peerSets).text);
      await nft(
        INCREMENTAL,
        'add element inet bulkhead potential_in4 { 198.18.1.21 . tcp . 3306 }\n',
      );
      await nft(INCREMENTAL, renderNftUpdate(s1, s2).text);
      const r = await run([
        'ip',
        'netns',
        'exec',
        INCREMENTAL,
        'nft',
        'list',
        'set',
        'inet',
        'bulkhead',
        'potential_in4',
      ]);
      expect(r.stdout).toContain('198.18.1.21 . tcp . 3306');
    });
  },
);

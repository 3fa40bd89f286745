import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decide, type FlowDecision } from '../../src/policy/decide.js';
import {
  accessChange,
  accessGrid,
  diffPolicies,
  forEachFlow,
  type AccessChange,
} from '../../src/policy/diff.js';
import type { AlwaysAllowed, Policy } from '../../src/policy/model.js';
import { resolvePolicy, type ResolvedPolicy } from '../../src/policy/resolve.js';
import { parsePolicyFiles, type SourceFile } from '../../src/policy-as-code/parse.js';
import { randomPolicy, Rng } from '../support/random-policy.js';

let estate: SourceFile[];
beforeAll(async () => {
  const dir = 'examples/estate';
  estate = await Promise.all(
    (await readdir(dir))
      .sort()
      .map(async (f) => ({ path: f, text: await readFile(join(dir, f), 'utf8') })),
  );
});

/** The example estate with one textual edit in one file. */
function edited(file: string, from: string, to: string): ResolvedPolicy {
  const files = estate.map((f) => {
    if (f.path !== file) return f;
    if (!f.text.includes(from)) throw new Error(`test setup: "${from}" not in ${file}`);
    return { ...f, text: f.text.replace(from, to) };
  });
  return parsePolicyFiles(files).resolved;
}
const original = () => parsePolicyFiles(estate).resolved;

describe('diffPolicies', () => {
  it('finds nothing between a policy and itself', () => {
    const d = diffPolicies(original(), original());
    expect(d).toMatchObject({ rules: [], objects: [], access: [] });
    expect(d.flowsCompared).toBeGreaterThan(1000);
  });

  it('shows a relabelled workload losing and gaining access by the rules that decide', () => {
    // shop-web-2 becomes an api: it loses https from users and gains the web tier's access to it.
    const next = edited(
      'workloads.yaml',
      'name: shop-web-2\naddresses: [198.18.1.12]\nlabels: {role: web',
      'name: shop-web-2\naddresses: [198.18.1.12]\nlabels: {role: api',
    );
    const d = diffPolicies(original(), next);
    expect(d.objects).toEqual([
      { change: 'changed', kind: 'Workload', name: 'shop-web-2', fields: ['labels'] },
    ]);
    expect(d.rules).toEqual([]);
    const lost = d.access.filter((a) => a.to === 'shop-web-2' && a.service === 'tcp/443');
    expect(lost.length).toBeGreaterThan(0);
    expect(lost.every((a) => a.direction === 'loses' && a.after === 'blocked')).toBe(true);
    expect(d.access).toContainEqual(
      expect.objectContaining({
        from: 'shop-web-1',
        to: 'shop-web-2',
        service: 'tcp/8080',
        before: 'blocked',
        after: 'allowed',
        direction: 'gains',
      }),
    );
    // As an api it may now reach the shop database, served by mysqld only.
    expect(d.access).toContainEqual(
      expect.objectContaining({
        from: 'shop-web-2',
        to: 'shop-db-1',
        service: 'tcp/3306 (mysqld)',
        direction: 'gains',
      }),
    );
    expect(d.access).not.toContainEqual(
      expect.objectContaining({ from: 'shop-web-2', to: 'shop-db-1', service: 'tcp/3306' }),
    );
  });

  it('shows outsiders losing access when an IP list leaves a rule', () => {
    const next = edited(
      'rulesets.yaml',
      'ipLists: [corporate-users, internet]',
      'ipLists: [corporate-users]',
    );
    const d = diffPolicies(original(), next);
    expect(d.rules).toEqual([
      { change: 'changed', ruleId: 'shop/users-to-web', fields: ['sources'] },
    ]);
    expect(d.access.length).toBeGreaterThan(0);
    expect(d.access.every((a) => a.from.includes('(in internet)'))).toBe(true);
    // shop-web-s1 is in selective mode: what it loses is only marked, not blocked.
    const staging = d.access.filter((a) => a.to === 'shop-web-s1');
    expect(staging.length).toBeGreaterThan(0);
    expect(staging.every((a) => a.after === 'potentially-blocked')).toBe(true);
  });

  it('reports added and removed rules and the access they change', () => {
    // The ops team's ping rule is replaced by a deny: only echo requests from ops change.
    const next = edited(
      'rulesets.yaml',
      '  - name: ping\n',
      '  - name: no-ping\n    action: deny\n',
    );
    const d = diffPolicies(original(), next);
    expect(d.rules).toEqual([
      { change: 'added', ruleId: 'environment-separation/no-ping', fields: [] },
      { change: 'removed', ruleId: 'environment-separation/ping', fields: [] },
    ]);
    expect(d.access).toContainEqual(
      expect.objectContaining({
        from: 'jump-1',
        to: 'shop-db-1',
        service: 'icmp/8',
        before: 'allowed',
        after: 'blocked',
      }),
    );
    expect(d.access.every((a) => a.service.startsWith('icmp') && a.direction === 'loses')).toBe(
      true,
    );
    expect(d.access.every((a) => a.from === 'jump-1' || a.from === 'jump-2')).toBe(true);
  });

  it('skips the access grid for an estate too large for it, and says so', () => {
    const d = diffPolicies(original(), original(), 10);
    expect(d.flowsCompared).toBe(0);
  });
});

/** The access changes by deciding every flow of the grid under both versions, one by one. */
function exhaustiveAccess(before: ResolvedPolicy, after: ResolvedPolicy): AccessChange[] {
  const grid = accessGrid(before, after);
  const out: AccessChange[] = [];
  forEachFlow(grid, (s, d, p) => {
    const [b, a] = grid.versions.map((v) =>
      decide(v.policy, {
        source: v.endpoints[s]!,
        destination: v.endpoints[d]!,
        ...grid.probes[p]!,
      }),
    ) as [FlowDecision, FlowDecision];
    if (b.decision !== a.decision) out.push(accessChange(grid, s, d, p, b, a));
  });
  return out;
}

/** One random edit of the kind a person makes: a rule, a mode, a label, a list, a group, an endpoint. */
function edit(policy: Policy, rng: Rng): Policy {
  const rulesets = policy.rulesets.map((rs) => ({ ...rs, rules: [...rs.rules] }));
  const rs = rng.pick(rulesets);
  const i = rng.int(0, rs.rules.length - 1);
  const workloads = policy.workloads.map((w) => ({ ...w, labels: { ...w.labels } }));
  const w = rng.pick(workloads);
  switch (rng.int(0, 7)) {
    case 0:
      rs.rules.splice(i, 1);
      break;
    case 1:
      rs.rules[i] = { ...rs.rules[i]!, action: rng.pick(['allow', 'deny', 'override-deny']) };
      break;
    case 2:
      rs.rules[i] = { ...rs.rules[i]!, services: 'all' };
      break;
    case 3:
      w.mode = rng.pick(['full', 'selective', 'visibility', 'idle']);
      break;
    case 4:
      w.labels.role = rng.pick(['web', 'api', 'db']);
      break;
    case 5:
      return {
        ...policy,
        ipLists: policy.ipLists.map((l, n) =>
          n === 0 ? { ...l, include: ['198.18.0.12/30'] } : l,
        ),
      };
    case 6:
      return {
        ...policy,
        userGroups: policy.userGroups.map((g) => ({ ...g, members: ['carol'] })),
      };
    case 7: {
      // An operator's endpoint on one workload's address, open to it both ways on any port.
      const address = w.addresses[0]!;
      const alwaysAllowed: AlwaysAllowed[] = [
        { name: 'ops', addresses: [address], ports: [], direction: 'both' },
      ];
      return { ...policy, settings: { alwaysAllowed } };
    }
  }
  return { ...policy, rulesets, workloads };
}

describe('diffPolicies against deciding every flow of its grid', () => {
  it('finds the same access changes, in the same order, for random edits and random policies', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const policy = randomPolicy(seed);
      const rng = new Rng(seed);
      const pairs: [Policy, Policy][] = [
        [policy, edit(policy, rng)],
        [policy, edit(edit(policy, rng), rng)],
        [policy, randomPolicy(seed + 1000)],
      ];
      for (const [a, b] of pairs) {
        const before = resolvePolicy(a);
        const after = resolvePolicy(b);
        expect(diffPolicies(before, after).access, `seed ${seed}`).toEqual(
          exhaustiveAccess(before, after),
        );
      }
    }
    // Deciding every flow one by one is the slow part: seconds, on a busy CI.
  }, 60_000);

  it('finds the same access changes for edits of the example estate', () => {
    const edits: [string, string, string][] = [
      ['workloads.yaml', 'labels: {role: web', 'labels: {role: api'],
      ['rulesets.yaml', 'ipLists: [corporate-users, internet]', 'ipLists: [corporate-users]'],
      ['rulesets.yaml', '  - name: ping\n', '  - name: no-ping\n    action: deny\n'],
    ];
    for (const [file, from, to] of edits) {
      const before = original();
      const after = edited(file, from, to);
      const access = diffPolicies(before, after).access;
      expect(access.length).toBeGreaterThan(0);
      expect(access).toEqual(exhaustiveAccess(before, after));
    }
  });
});

import { describe, expect, it } from 'vitest';
import { buildEstate, rng, withLabelChange, ENVS, ROLES, LOCS } from '../../bench/estate.js';
import {
  compilePolicy,
  recompileAfterLabelChange,
  type CompiledPolicy,
} from '../../src/policy/compile/endpoint.js';
import type { EnforcementMode, Policy, Workload } from '../../src/policy/model.js';
import { resolvePolicy, updateWorkloads } from '../../src/policy/resolve.js';

const stringify = (x: unknown): string =>
  JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));

/** A comparable form: maps as name-sorted arrays (a map's order is not part of the meaning). */
function normal(c: CompiledPolicy): unknown {
  const endpoints = [...c.endpoints.values()].sort((a, b) => (a.workload < b.workload ? -1 : 1));
  const peerSets = [...c.peerSets.values()]
    .sort((a, b) => (a.id < b.id ? -1 : 1))
    .map((p) => ({ id: p.id, key: p.key, label: p.label, v4: p.addresses.v4, v6: p.addresses.v6 }));
  return { endpoints, peerSets };
}

function replaceWorkload(policy: Policy, i: number, w: Workload): Policy {
  const workloads = policy.workloads.slice();
  workloads[i] = w;
  return { ...policy, workloads };
}

describe('recompileAfterLabelChange', () => {
  it('equals a full compile after the benchmark label change, and reports what it touched', () => {
    const { policy } = buildEstate({ workloads: 2000, rules: 4500, seed: 7 });
    const before = compilePolicy(resolvePolicy(policy));
    const { policy: changedPolicy, changed } = withLabelChange(policy);
    const next = resolvePolicy(changedPolicy);
    const inc = recompileAfterLabelChange(before, next, [changed]);
    expect(inc.full).toBe(false);
    expect(normal(inc.compiled)).toEqual(normal(compilePolicy(next)));
    expect(inc.changedEndpoints).toEqual([changed]);
    expect(inc.changedPeerSets.length).toBeGreaterThan(0);
    // Every workload whose endpoint or peer set contents differ is reported as affected.
    const full = compilePolicy(next);
    const affected = new Set(inc.affectedWorkloads);
    for (const [name, ep] of full.endpoints) {
      const old = before.endpoints.get(name)!;
      const differs =
        stringify(old) !== stringify(ep) ||
        ep.peerSets.some((id) => {
          const a = before.peerSets.get(id);
          const b = full.peerSets.get(id)!;
          return (
            !a ||
            a.addresses.elements(4).join() !== b.addresses.elements(4).join() ||
            a.addresses.elements(6).join() !== b.addresses.elements(6).join()
          );
        });
      if (differs) expect(affected.has(name), name).toBe(true);
    }
  });

  it('equals a full compile over a chain of random workload changes (labels, modes, addresses)', () => {
    const random = rng(99);
    let policy = buildEstate({ workloads: 600, rules: 4000, seed: 3 }).policy;
    let resolved = resolvePolicy(policy);
    let compiled = compilePolicy(resolved);
    const modes: EnforcementMode[] = ['idle', 'visibility', 'selective', 'full'];
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    let freshAddress = 1;
    for (let step = 0; step < 40; step++) {
      const changedNow: Workload[] = [];
      const count = 1 + Math.floor(random() * 3);
      for (let k = 0; k < count; k++) {
        const i = Math.floor(random() * policy.workloads.length);
        const old = policy.workloads[i]!;
        const what = random();
        let w: Workload;
        if (what < 0.4) w = { ...old, labels: { ...old.labels, role: pick(ROLES) } };
        else if (what < 0.55)
          w = { ...old, labels: { ...old.labels, env: pick(ENVS), loc: pick(LOCS) } };
        else if (what < 0.65)
          w = {
            ...old,
            labels: {
              ...old.labels,
              app: policy.workloads[Math.floor(random() * policy.workloads.length)]!.labels.app!,
            },
          };
        else if (what < 0.8) w = { ...old, mode: pick(modes) };
        else if (what < 0.88) w = { ...old, managed: !old.managed };
        else
          w = {
            ...old,
            addresses: [
              `10.200.${freshAddress >> 8}.${freshAddress++ & 255}`,
              ...(random() < 0.5 ? [`fd00:99::${freshAddress++}`] : []),
            ],
          };
        policy = replaceWorkload(policy, i, w);
        changedNow.push(w);
      }
      const viaUpdate = updateWorkloads(
        resolved,
        changedNow.map((w) => policy.workloads.find((x) => x.name === w.name)!),
      );
      const fresh = resolvePolicy(policy);
      expect(viaUpdate.workloads).toEqual(fresh.workloads);
      const inc = recompileAfterLabelChange(
        compiled,
        viaUpdate,
        changedNow.map((w) => w.name),
      );
      expect(inc.full).toBe(false);
      expect(normal(inc.compiled), `step ${step}`).toEqual(normal(compilePolicy(fresh)));
      resolved = viaUpdate;
      compiled = inc.compiled;
    }
  });

  it('handles user groups, named workloads and label groups', () => {
    const w = (
      name: string,
      labels: Record<string, string>,
      addr: string,
      users: string[] = [],
    ): Workload => ({
      name,
      addresses: [addr],
      labels,
      mode: 'full',
      managed: true,
      users,
    });
    const sel = (labels: Record<string, string[]>, labelGroups: string[] = []) => ({
      labels,
      labelGroups,
    });
    const actors = (p: Partial<Policy['rulesets'][number]['rules'][number]['sources']>) => ({
      allWorkloads: false,
      selector: null,
      workloads: [],
      ipLists: [],
      userGroups: [],
      ...p,
    });
    const policy: Policy = {
      workloads: [
        w('a', { role: 'web', env: 'prod' }, '10.0.0.1', ['alice']),
        w('b', { role: 'api', env: 'prod' }, '10.0.0.2'),
        w('c', { role: 'db', env: 'prod' }, '10.0.0.3'),
        w('d', { role: 'web', env: 'dev' }, '10.0.0.4', ['bob']),
      ],
      labelGroups: [{ name: 'front', key: 'role', values: ['web'], groups: [] }],
      ipLists: [{ name: 'corp', include: ['10.0.0.0/30'], exclude: [] }],
      userGroups: [{ name: 'admins', members: ['alice'] }],
      services: [],
      rulesets: [
        {
          name: 'prod',
          scope: sel({ env: ['prod'] }),
          rules: [
            {
              name: 'front-to-api',
              action: 'allow',
              sources: actors({ selector: sel({}, ['front']) }),
              destinations: actors({ selector: sel({ role: ['api'] }) }),
              services: 'all',
              extraScope: false,
            },
            {
              name: 'admins-to-db',
              action: 'allow',
              sources: actors({ userGroups: ['admins'], workloads: ['d'] }),
              destinations: actors({ selector: sel({ role: ['db'] }) }),
              services: 'all',
              extraScope: true,
            },
            {
              name: 'corp-deny',
              action: 'override-deny',
              sources: actors({ ipLists: ['corp'] }),
              destinations: actors({ allWorkloads: true }),
              services: 'all',
              extraScope: false,
            },
          ],
        },
      ],
      settings: { alwaysAllowed: [] },
    };
    let current = policy;
    let compiled = compilePolicy(resolvePolicy(current));
    const changes: Workload[] = [
      { ...policy.workloads[3]!, users: ['alice'] },
      { ...policy.workloads[0]!, users: [] },
      { ...policy.workloads[1]!, labels: { role: 'web', env: 'prod' } },
      { ...policy.workloads[2]!, labels: { role: 'db', env: 'dev' } },
      { ...policy.workloads[2]!, labels: { role: 'db', env: 'prod' }, mode: 'visibility' },
    ];
    for (const change of changes) {
      const i = current.workloads.findIndex((x) => x.name === change.name);
      current = replaceWorkload(current, i, change);
      const next = resolvePolicy(current);
      const inc = recompileAfterLabelChange(compiled, next, [change.name]);
      expect(inc.full).toBe(false);
      expect(normal(inc.compiled)).toEqual(normal(compilePolicy(next)));
      compiled = inc.compiled;
    }
  });

  it('falls back to a full compile when the rules changed or the previous result was already used', () => {
    const { policy } = buildEstate({ workloads: 300, rules: 3800, seed: 5 });
    const resolved = resolvePolicy(policy);
    const compiled = compilePolicy(resolved);
    const fewerRules: Policy = { ...policy, rulesets: policy.rulesets.slice(1) };
    const changedRules = recompileAfterLabelChange(compiled, resolvePolicy(fewerRules), []);
    expect(changedRules.full).toBe(true);
    expect(normal(changedRules.compiled)).toEqual(normal(compilePolicy(resolvePolicy(fewerRules))));

    const { policy: p2, changed } = withLabelChange(policy);
    const first = recompileAfterLabelChange(compiled, resolvePolicy(p2), [changed]);
    expect(first.full).toBe(false);
    const again = recompileAfterLabelChange(compiled, resolvePolicy(p2), [changed]);
    expect(again.full).toBe(true);
    expect(normal(again.compiled)).toEqual(normal(first.compiled));
  });

  it('updateWorkloads rejects an address another workload owns', () => {
    const { policy } = buildEstate({ workloads: 200, rules: 3800, seed: 5 });
    const resolved = resolvePolicy(policy);
    const [a, b] = policy.workloads;
    expect(() => updateWorkloads(resolved, [{ ...a!, addresses: [b!.addresses[0]!] }])).toThrow(
      /also an address/,
    );
    const moved = updateWorkloads(resolved, [{ ...a!, addresses: ['10.99.0.1'] }]);
    expect(moved.workloadAt('10.99.0.1')?.name).toBe(a!.name);
    expect(moved.workloadAt(a!.addresses[0]!)).toBeUndefined();
    expect(moved.workloadAt(b!.addresses[0]!)?.name).toBe(b!.name);
  });
});

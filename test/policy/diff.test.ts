import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { diffPolicies } from '../../src/policy/diff.js';
import type { ResolvedPolicy } from '../../src/policy/resolve.js';
import { parsePolicyFiles, type SourceFile } from '../../src/policy-as-code/parse.js';

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

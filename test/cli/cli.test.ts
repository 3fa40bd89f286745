import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli.js';

const ESTATE = 'examples/estate';

describe('bulkhead decide', () => {
  it('allows a tier-to-tier flow and names the allow rule', async () => {
    const r = await cli(
      'decide',
      '-f',
      ESTATE,
      '--from',
      'shop-web-1',
      '--to',
      'shop-api-1',
      '--port',
      '8080/tcp',
    );
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^allowed: shop-web-1 \(198\.18\.1\.11\) -> shop-api-1 \(198\.18\.1\.21\) tcp\/8080/,
    );
    expect(r.out).toContain('allow rule shop/web-to-api');
  });

  it('blocks staging reaching production by the override-deny rule', async () => {
    const r = await cli(
      'decide',
      '-f',
      ESTATE,
      '--from',
      'shop-web-s1',
      '--to',
      'shop-api-1',
      '--port',
      '8080/tcp',
      '--json',
    );
    expect(r.code).toBe(0);
    const d = JSON.parse(r.out) as {
      decision: string;
      decidedBy: { ruleId: string };
      side: string;
    };
    expect(d.decision).toBe('blocked');
    expect(d.decidedBy.ruleId).toBe('environment-separation/no-staging-to-prod');
  });

  it('judges an address outside the estate by the IP lists it falls in', async () => {
    const inside = await cli(
      'decide',
      '-f',
      ESTATE,
      '--from',
      '198.19.4.7',
      '--to',
      'shop-web-1',
      '--port',
      '443/tcp',
      '--json',
    );
    expect(JSON.parse(inside.out)).toMatchObject({
      decision: 'allowed',
      decidedBy: { ruleId: 'shop/users-to-web' },
    });
    // 198.19.99.0/24 is the guest Wi-Fi, excluded from corporate-users and outside the internet list.
    const guest = await cli(
      'decide',
      '-f',
      ESTATE,
      '--from',
      '198.19.99.7',
      '--to',
      'shop-web-1',
      '--port',
      '443/tcp',
      '--json',
    );
    expect(JSON.parse(guest.out)).toMatchObject({
      decision: 'blocked',
      decidedBy: { kind: 'default', action: 'deny' },
    });
  });

  it('reports what visibility mode would block as potentially blocked', async () => {
    const r = await cli(
      'decide',
      '-f',
      ESTATE,
      '--from',
      'pay-api-s1',
      '--to',
      'shop-db-s1',
      '--port',
      '3306/tcp',
      '--json',
    );
    expect(JSON.parse(r.out)).toMatchObject({ decision: 'potentially-blocked' });
  });

  it('refuses a bad port and an unknown workload with a clear message', async () => {
    const port = await cli(
      'decide',
      '-f',
      ESTATE,
      '--from',
      'shop-web-1',
      '--to',
      'shop-api-1',
      '--port',
      '70000/tcp',
    );
    expect(port.code).toBe(2);
    expect(port.err).toContain('--port: 70000 is not a port (1-65535)');
    const who = await cli(
      'decide',
      '-f',
      ESTATE,
      '--from',
      'nobody',
      '--to',
      'shop-api-1',
      '--port',
      '80/tcp',
    );
    expect(who.code).toBe(2);
    expect(who.err).toContain('--from: "nobody" is neither a workload name nor an IP address');
  });
});

describe('bulkhead policy check', () => {
  it('summarises the example estate with no warnings', async () => {
    const r = await cli('policy', 'check', '-f', ESTATE, '--json');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out) as Record<string, unknown>;
    expect(s).toMatchObject({ ok: true, workloads: 12, rulesets: 3, rules: 10, warnings: [] });
    expect(s.workloadsByMode).toMatchObject({
      full: 7,
      selective: 1,
      visibility: 2,
      idle: 1,
      unmanaged: 1,
    });
  });

  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fails with every problem located by file and line', async () => {
    const bad = join(dir, 'bad');
    await cp(ESTATE, bad, { recursive: true });
    const text = await readFile(join(bad, 'rulesets.yaml'), 'utf8');
    await writeFile(
      join(bad, 'rulesets.yaml'),
      text
        .replace('services: [mysql]', 'services: ["70000/tcp"]')
        .replace('labelGroups: [customer-facing]', 'labelGroups: [no-such-group]'),
    );
    const r = await cli('policy', 'check', '-f', bad);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /rulesets\.yaml:\d+: Ruleset "shop": rules\[2\]\.services\[0\]: "70000\/tcp": 70000 is not a port \(1-65535\)/,
    );
    expect(r.out).toBe('');
  });
});

describe('bulkhead policy diff', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-diff-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('shows the changed rule and which peers gain access on which port', async () => {
    const next = join(dir, 'next');
    await cp(ESTATE, next, { recursive: true });
    const text = await readFile(join(next, 'rulesets.yaml'), 'utf8');
    await writeFile(
      join(next, 'rulesets.yaml'),
      text.replace(
        'services: [api]\n  - name: api-to-db',
        'services: [api, "9090/tcp"]\n  - name: api-to-db',
      ),
    );
    const r = await cli('policy', 'diff', '-f', ESTATE, '-f', next, '--json');
    expect(r.code).toBe(0);
    const d = JSON.parse(r.out) as {
      rules: unknown[];
      access: { from: string; to: string; service: string; direction: string }[];
    };
    expect(d.rules).toEqual([
      { change: 'changed', ruleId: 'shop/web-to-api', fields: ['services'] },
    ]);
    expect(d.access).toContainEqual(
      expect.objectContaining({
        to: 'shop-api-1',
        from: 'shop-web-1',
        service: 'tcp/9090',
        direction: 'gains',
      }),
    );
    expect(d.access.every((a) => a.service === 'tcp/9090' && a.direction === 'gains')).toBe(true);
  });

  it('says there are no changes between a policy and itself', async () => {
    const r = await cli('policy', 'diff', '-f', ESTATE, '-f', ESTATE);
    expect(r.out.trim()).toBe('no changes');
  });
});

describe('bulkhead --help', () => {
  it('lists every command', async () => {
    const r = await cli('--help');
    expect(r.code).toBe(0);
    for (const c of ['decide', 'policy']) expect(r.out).toContain(c);
    const p = await cli('policy', '--help');
    for (const c of ['check', 'compile', 'diff']) expect(p.out).toContain(c);
  });
});

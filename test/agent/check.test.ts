/**
 * The agent's own checks (src/agent/check.ts), which stand between the kernel and whatever
 * the control plane or the state directory hands it.
 */
import { describe, expect, it } from 'vitest';
import { array, count, number, object, oneOf, string, union } from '../../src/agent/check.js';
import { compiledPolicy, queuedReport, savedCredential } from '../../src/agent/wire.js';
import { estatePolicy } from './support/policy.js';

const issuesOf = (r: ReturnType<typeof compiledPolicy.safeParse>) =>
  r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);

describe('checks', () => {
  it('accepts a compiled policy as the control plane sends it, and keeps only the fields it names', () => {
    const sent = { ...estatePolicy(7), extra: 'ignored' };
    const parsed = compiledPolicy.safeParse(JSON.parse(JSON.stringify(sent)));
    expect(parsed.success).toBe(true);
    if (!parsed.success) return;
    expect(parsed.data).toEqual(estatePolicy(7));
    expect(parsed.data).not.toHaveProperty('extra');
    // `warnings` may be left out: it defaults to none.
    const { warnings: _, ...bare } = estatePolicy(7);
    const defaulted = compiledPolicy.safeParse(bare);
    expect(defaulted.success && defaulted.data.warnings).toEqual([]);
  });

  it('refuses what does not fit, saying where', () => {
    const policy = JSON.parse(JSON.stringify(estatePolicy(1))) as {
      revision: unknown;
      nft: { sets: { name: string; elements: unknown[] }[]; mode: string };
    };
    policy.revision = -1;
    policy.nft.sets[0]!.name = 'x y';
    policy.nft.sets[0]!.elements.push(42);
    policy.nft.mode = 'off';
    expect(issuesOf(compiledPolicy.safeParse(policy))).toEqual([
      'revision: must be at least 0',
      'nft.mode: expected one of idle, visibility, selective, full, received off',
      'nft.sets.0.name: is not an nft set or chain name',
      `nft.sets.0.elements.${policy.nft.sets[0]!.elements.length - 1}: expected string, received number`,
    ]);
    expect(issuesOf(compiledPolicy.safeParse(null))).toEqual([': expected object, received null']);
    expect(savedCredential.safeParse({ agentId: 'a', credential: 'short' }).success).toBe(false);
  });

  it('leaves arrays of texts as they came, and numbers to their bounds', () => {
    const texts = ['198.18.0.1', '198.18.0.2'];
    const r = array(string({ max: 100 })).safeParse(texts);
    expect(r.success && r.data).toBe(texts);
    expect(number({ int: true, min: 1, max: 10 }).safeParse(1.5).success).toBe(false);
    expect(number({ int: true, min: 1, max: 10 }).safeParse(11).success).toBe(false);
    expect(count().safeParse(0).success).toBe(true);
    expect(oneOf(['tcp', 'udp']).safeParse('icmp').success).toBe(false);
    const shape = object({ a: string().nullable(), b: count().optional() });
    expect(shape.safeParse({ a: null })).toEqual({ success: true, data: { a: null } });
    expect(shape.safeParse({ b: 1 }).success).toBe(false);
  });

  it('tells the shapes of a union apart by their tag', () => {
    const tamper = {
      kind: 'tamper',
      report: {
        detectedAt: '2026-01-01T00:00:00.000Z',
        table: 'inet bulkhead',
        kind: 'missing',
        differences: ['table inet bulkhead is missing'],
        restored: true,
      },
    };
    expect(queuedReport.safeParse(tamper)).toEqual({ success: true, data: tamper });
    expect(queuedReport.safeParse({ ...tamper, kind: 'flows-dropped' }).success).toBe(false);
    expect(queuedReport.safeParse({ ...tamper, kind: 'other' }).success).toBe(false);
    const tagged = union('t', { a: object({ t: string(), n: count() }) });
    expect(tagged.safeParse({ t: 'a', n: 1 }).success).toBe(true);
  });
});

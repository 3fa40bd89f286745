import { describe, expect, it } from 'vitest';
import {
  attributeSummary,
  edgeKeyText,
  type SummaryFields,
} from '../../../src/analysis/flows/edge-key.js';
import type { Workload } from '../../../src/policy/model.js';

const w = (name: string, address: string, managed = true): Workload => ({
  name,
  addresses: [address],
  labels: {},
  mode: 'full',
  managed,
  users: [],
});
const estate = [w('web', '10.0.0.1'), w('api', '10.0.0.2'), w('nas', '10.0.0.9', false)];
const owners = new Map(estate.map((x) => [x.addresses[0]!, x]));
const ownerOf = (a: string) => owners.get(a);

const summary = (s: Partial<SummaryFields>): SummaryFields => ({
  workload: 'api',
  src: '10.0.0.1',
  dst: '10.0.0.2',
  proto: 'tcp',
  dport: 8080,
  process: 'java',
  decision: null,
  ...s,
});

describe('attributing a summary to an edge', () => {
  it("keeps the destination's report, with the serving process", () => {
    expect(attributeSummary(summary({}), ownerOf)).toEqual({
      kept: true,
      key: {
        source: { workload: 'web' },
        destination: { workload: 'api' },
        proto: 'tcp',
        port: 8080,
        process: 'java',
      },
    });
  });

  it("drops the source's report of a conversation the managed destination reports too", () => {
    expect(attributeSummary(summary({ workload: 'web', process: 'curl' }), ownerOf)).toEqual({
      kept: false,
      reason: 'seen-by-destination',
    });
    expect(
      attributeSummary(summary({ workload: 'web', decision: 'potentially-blocked' }), ownerOf),
    ).toMatchObject({ kept: false });
  });

  it('keeps what the source saw blocked (the destination never saw it), without a process', () => {
    expect(
      attributeSummary(summary({ workload: 'web', process: 'curl', decision: 'blocked' }), ownerOf),
    ).toMatchObject({ kept: true, key: { destination: { workload: 'api' }, process: null } });
  });

  it('keeps the source side when the destination is outside the estate or unmanaged', () => {
    expect(
      attributeSummary(
        summary({ workload: 'web', dst: '8.8.8.8', dport: 53, proto: 'udp' }),
        ownerOf,
      ),
    ).toEqual({
      kept: true,
      key: {
        source: { workload: 'web' },
        destination: { address: '8.8.8.8' },
        proto: 'udp',
        port: 53,
        process: null,
      },
    });
    expect(
      attributeSummary(summary({ workload: 'web', dst: '10.0.0.9', dport: 445 }), ownerOf),
    ).toMatchObject({ kept: true, key: { destination: { workload: 'nas' }, process: null } });
  });

  it('always keeps imported flows (no reporting side), with their process', () => {
    expect(
      attributeSummary(summary({ workload: '', src: '203.0.113.5', process: 'nginx' }), ownerOf),
    ).toMatchObject({
      kept: true,
      key: {
        source: { address: '203.0.113.5' },
        destination: { workload: 'api' },
        process: 'nginx',
      },
    });
  });

  it('keeps a report whose reporter owns neither end any more, without a process', () => {
    expect(attributeSummary(summary({ workload: 'gone' }), ownerOf)).toMatchObject({
      kept: true,
      key: { process: null },
    });
  });

  it('names addresses canonically and gives ICMP no port', () => {
    const a = attributeSummary(
      summary({
        workload: '',
        src: '2001:DB8:0:0::1',
        dst: '::ffff:10.0.0.2',
        proto: 'icmpv6',
        dport: 7,
      }),
      ownerOf,
    );
    expect(a).toMatchObject({
      kept: true,
      key: { source: { address: '2001:db8::1' }, destination: { workload: 'api' }, port: null },
    });
  });

  it('skips a protocol the store does not know', () => {
    expect(attributeSummary(summary({ proto: 'sctp' }), ownerOf)).toEqual({
      kept: false,
      reason: 'bad-protocol',
    });
  });
});

describe('edge key text', () => {
  const key = {
    source: { workload: 'web' },
    destination: { address: '10.0.0.2' },
    proto: 'tcp',
    port: 443,
    process: null,
  } as const;
  it('is equal for equal keys and differs for any different part', () => {
    expect(edgeKeyText({ ...key })).toBe(edgeKeyText(key));
    const variants = [
      { ...key, source: { address: 'web' } },
      { ...key, destination: { workload: '10.0.0.2' } },
      { ...key, proto: 'udp' as const },
      { ...key, port: 444 },
      { ...key, port: null },
      { ...key, process: 'nginx' },
      { ...key, process: '' },
    ];
    const texts = new Set([edgeKeyText(key), ...variants.map(edgeKeyText)]);
    expect(texts.size).toBe(variants.length + 1);
  });
  it('cannot be confused by separators inside names', () => {
    expect(edgeKeyText({ ...key, source: { workload: 'a","w:b' } })).not.toBe(
      edgeKeyText({ ...key, source: { workload: 'a' }, destination: { workload: 'b' } }),
    );
  });
});

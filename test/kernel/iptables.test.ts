/**
 * The iptables + ipset backend against the real kernel: each workload is a network
 * namespace; its compiled ipset and (ip6)iptables-restore files are loaded inside it the way
 * the agent will load them; real TCP and UDP probes between the namespaces must get exactly
 * the verdict decide() gives, over IPv4 and IPv6; and loading the same files again changes
 * nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCommand, run } from '../../src/host/run.js';
import { parsePolicyFiles } from '../../src/policy-as-code/parse.js';
import { compilePolicy, type CompiledPolicy } from '../../src/policy/compile/endpoint.js';
import { IPTABLES_JUMPS, renderIptables } from '../../src/policy/compile/iptables.js';
import { decide } from '../../src/policy/decide.js';
import { resolvePolicy, type ResolvedPolicy } from '../../src/policy/resolve.js';
import { OUTSIDER_ADDRESSES, PORT_POOL, randomPolicy } from '../support/random-policy.js';
import {
  kernelLabUnavailable,
  probeMatrix,
  startKernelLab,
  type KernelLab,
  type LabHost,
  type Probe,
  type ProbeResult,
} from '../support/kernel-probe.js';

const POLICY = `
kind: Workload
name: web
addresses: [198.18.10.1, "2001:db8::a1"]
labels: {role: web, app: shop, env: prod}
mode: full
---
kind: Workload
name: api
addresses: [198.18.10.2, "2001:db8::a2"]
labels: {role: api, app: shop, env: prod}
mode: full
---
kind: Workload
name: db
addresses: [198.18.10.3, "2001:db8::a3"]
labels: {role: db, app: shop, env: prod}
mode: selective
---
kind: Workload
name: jump
addresses: [198.18.10.9, "2001:db8::a9"]
labels: {role: jump, app: ops, env: prod}
mode: visibility
---
kind: Settings
alwaysAllowed:
  - {name: monitoring, addresses: [198.18.10.9], ports: ["9100/tcp"], direction: both}
---
kind: Ruleset
name: shop
scope: {labels: {app: shop}}
rules:
  - name: web-to-api
    sources: {labels: {role: web}}
    destinations: {labels: {role: api}}
    # More than 15 ports: the rule is split over two multiport matches.
    services: ["8080/tcp", "9001-9003/tcp", "9005/tcp", "9007/tcp", "9009/tcp", "9011/tcp", "9013/tcp",
               "9015/tcp", "9017/tcp", "9019/tcp", "9021/tcp", "9023/tcp", "9025/tcp", "9027/tcp"]
  - name: api-to-db
    sources: {labels: {role: api}}
    destinations: {labels: {role: db}}
    services: ["5432/tcp", "53/udp"]
---
kind: Ruleset
name: estate
rules:
  - name: jump-ssh
    sources: {labels: {role: jump}}
    destinations: all
    services: ["22/tcp"]
  - name: no-jump-to-db
    action: override-deny
    sources: {labels: {role: jump}}
    destinations: {labels: {role: db}}
    services: ["5432/tcp", "22/tcp"]
  - name: no-telnet
    action: deny
    sources: all
    destinations: all
    services: ["23/tcp"]
`;

const LISTEN = [
  ...[22, 23, 5432, 8080, 9027, 9100].map((port) => ({ port, proto: 'tcp' as const })),
  { port: 53, proto: 'udp' as const },
];

async function unavailable(): Promise<string | null> {
  const why = await kernelLabUnavailable();
  if (why) return why;
  for (const tool of ['iptables-restore', 'ip6tables-restore', 'ipset'])
    if (!(await hasCommand(tool))) return `${tool} is missing`;
  return null;
}
const skip = await unavailable();

function inNamespace(host: LabHost, command: string[], input?: string) {
  return run(['ip', 'netns', 'exec', host.netns, ...command], input === undefined ? {} : { input });
}

/** What the agent will do: sets first, then both rule files, then the jumps (once). */
async function applyIptables(compiled: CompiledPolicy, host: LabHost): Promise<void> {
  const out = renderIptables(compiled.endpoints.get(host.name)!, compiled.peerSets);
  await inNamespace(host, ['ipset', 'restore'], out.ipset);
  await inNamespace(host, ['iptables-restore', '--noflush'], out.iptables);
  await inNamespace(host, ['ip6tables-restore', '--noflush'], out.ip6tables);
  for (const tool of ['iptables', 'ip6tables']) {
    for (const j of IPTABLES_JUMPS) {
      const present = await run(
        ['ip', 'netns', 'exec', host.netns, tool, '-C', j.from, '-j', j.to],
        { okCodes: [0, 1] },
      );
      if (present.code !== 0) await inNamespace(host, [tool, '-I', j.from, '1', '-j', j.to]);
    }
  }
}

/** The kernel state a reload must leave as it was (counters and set timeouts aside). */
async function kernelState(host: LabHost): Promise<string> {
  const strip = (s: string) =>
    s
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]/, ''))
      .join('\n');
  const v4 = await inNamespace(host, ['iptables-save', '-t', 'filter']);
  const v6 = await inNamespace(host, ['ip6tables-save', '-t', 'filter']);
  // Peer sets with their elements; the recording sets' entries (timed attempts) aside.
  const sets = (await inNamespace(host, ['ipset', 'save'])).stdout
    .split('\n')
    .filter((l) => !/^add \S+-(in|out)-(blocked|potential) /.test(l))
    // A swap puts a fresh set in place, with its own random hash seed.
    .map((l) => l.replace(/ initval 0x[0-9a-f]+/, ''))
    .sort();
  return [strip(v4.stdout), strip(v6.stdout), sets.join('\n')].join('\n---\n');
}

function expectedVerdict(policy: ResolvedPolicy, p: Probe): 'allowed' | 'blocked' {
  const side = (address: string) => {
    const workload = policy.workloadAt(address);
    return workload ? { address, workload } : { address };
  };
  const d = decide(policy, {
    source: side(p.from),
    destination: side(p.to),
    proto: p.proto,
    port: p.port,
  });
  // Potentially blocked flows pass: only "blocked" is dropped by the kernel.
  return d.decision === 'blocked' ? 'blocked' : 'allowed';
}

function describeProbe(r: ProbeResult): string {
  return `${r.probe.proto} ${r.probe.from} -> ${r.probe.to}:${r.probe.port} ${r.verdict} (${r.evidence})`;
}

describe.skipIf(skip !== null)('iptables backend in the kernel', () => {
  const loaded = parsePolicyFiles([{ path: 'kernel-iptables.yaml', text: POLICY }]);
  const policy = loaded.resolved;
  const compiled = compilePolicy(policy);
  let lab: KernelLab;

  beforeAll(async () => {
    lab = await startKernelLab({
      prefix: 'bhi',
      hosts: policy.workloads.map((w) => ({ name: w.name, addresses: w.addresses })),
      listen: LISTEN,
    });
    await lab.applyFirewalls((host) => applyIptables(compiled, host));
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  const allProbes = (): Probe[] => {
    const probes: Probe[] = [];
    for (const src of lab.hosts) {
      for (const dst of lab.hosts) {
        if (src === dst) continue;
        for (const family of [0, 1]) {
          for (const l of LISTEN)
            probes.push({
              from: src.addresses[family]!,
              to: dst.addresses[family]!,
              port: l.port,
              proto: l.proto,
            });
        }
      }
    }
    return probes;
  };

  it('gives every probe, IPv4 and IPv6, the verdict decide() gives', async () => {
    const results = await lab.probe(allProbes());
    const wrong = results
      .filter((r) => r.verdict !== expectedVerdict(policy, r.probe))
      .map(describeProbe);
    expect(wrong).toEqual([]);
    // The matrix is not trivially one-sided.
    expect(results.filter((r) => r.verdict === 'allowed').length).toBeGreaterThan(20);
    expect(results.filter((r) => r.verdict === 'blocked').length).toBeGreaterThan(20);
  });

  it('connects the allowed flows and drops the blocked ones, by name', async () => {
    const probes: Probe[] = [
      { from: '198.18.10.1', to: '198.18.10.2', port: 8080, proto: 'tcp' }, // web-to-api
      { from: '2001:db8::a1', to: '2001:db8::a2', port: 9027, proto: 'tcp' }, // web-to-api, second multiport rule
      { from: '198.18.10.2', to: '198.18.10.3', port: 53, proto: 'udp' }, // api-to-db
      { from: '198.18.10.9', to: '198.18.10.1', port: 9100, proto: 'tcp' }, // always-allowed monitoring
      { from: '198.18.10.1', to: '198.18.10.3', port: 5432, proto: 'tcp' }, // web (full) has no outbound allow
      { from: '198.18.10.2', to: '198.18.10.1', port: 8080, proto: 'tcp' }, // web's inbound default
      { from: '198.18.10.9', to: '198.18.10.3', port: 5432, proto: 'tcp' }, // override-deny at db (selective)
      { from: '2001:db8::a9', to: '2001:db8::a3', port: 23, proto: 'tcp' }, // deny at db (selective)
    ];
    const results = await lab.probe(probes, { timeoutMs: 600 });
    expect(results.map((r) => r.verdict)).toEqual([
      'allowed',
      'allowed',
      'allowed',
      'allowed',
      'blocked',
      'blocked',
      'blocked',
      'blocked',
    ]);
    for (const r of results) expect(r.verdict).toBe(expectedVerdict(policy, r.probe));
    // A drop is silence: the probe times out (no reject reveals the policy).
    expect(results[5]!.evidence).toBe('timeout');
  });

  it('records blocked and would-be-blocked attempts in the kernel', async () => {
    const [passed] = await lab.probe([
      { from: '198.18.10.9', to: '198.18.10.3', port: 8080, proto: 'tcp' },
    ]);
    expect(passed!.verdict).toBe('allowed');
    // No rule admits jump -> db:8080. jump (visibility) records it outbound, db (selective)
    // inbound, and both let it pass: potentially blocked.
    const db = lab.host('db');
    const potential = await inNamespace(db, ['ipset', 'list', 'bulkhead4-in-potential']);
    expect(potential.stdout).toMatch(/^198\.18\.10\.9,tcp:8080 /m);
    const jumpOut = await inNamespace(lab.host('jump'), [
      'ipset',
      'list',
      'bulkhead4-out-potential',
    ]);
    expect(jumpOut.stdout).toMatch(/^198\.18\.10\.3,tcp:8080 /m);
    // db drops jump's telnet (a deny rule) and records it as blocked.
    const blocked = await inNamespace(db, ['ipset', 'list', 'bulkhead6-in-blocked']);
    expect(blocked.stdout).toMatch(/2001:db8::a9,tcp:23/);
  });

  it('reloads idempotently: same kernel state, one jump, same verdicts', async () => {
    const before = await Promise.all(lab.hosts.map(kernelState));
    await lab.applyFirewalls((host) => applyIptables(compiled, host));
    await lab.applyFirewalls((host) => applyIptables(compiled, host));
    const after = await Promise.all(lab.hosts.map(kernelState));
    expect(after).toEqual(before);
    const web = lab.host('web');
    const rules = (await inNamespace(web, ['iptables', '-S', 'INPUT'])).stdout;
    expect(rules.split('\n').filter((l) => l.includes('-j BULKHEAD-IN'))).toEqual([
      '-A INPUT -j BULKHEAD-IN',
    ]);
    const results = await lab.probe(allProbes());
    expect(
      results.filter((r) => r.verdict !== expectedVerdict(policy, r.probe)).map(describeProbe),
    ).toEqual([]);
  });

  it('idle empties the chains and leaves the host rules alone', async () => {
    const web = lab.host('web');
    await inNamespace(web, ['iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', '23', '-j', 'DROP']);
    const idle = renderIptables(
      { ...compiled.endpoints.get('web')!, mode: 'idle', inbound: [], outbound: [] },
      compiled.peerSets,
    );
    await inNamespace(web, ['iptables-restore', '--noflush'], idle.iptables);
    const rules = (await inNamespace(web, ['iptables', '-S'])).stdout;
    expect(rules).toContain('-A INPUT -p tcp -m tcp --dport 23 -j DROP');
    expect(rules).not.toMatch(/^-A BULKHEAD-/m);
    // Put web back as compiled for any later test.
    await inNamespace(web, ['iptables', '-D', 'INPUT', '-p', 'tcp', '--dport', '23', '-j', 'DROP']);
    await applyIptables(compiled, web);
  });
});

/**
 * The same differential check over seeded random policies (the generator the nft test
 * uses): every mode, precedence, IP lists with exclusions, ranges, always-allowed endpoints.
 * Replay one seed with BULKHEAD_IPT_SEEDS=2003.
 */
describe.skipIf(skip !== null)('iptables backend in the kernel, random policies', () => {
  const seeds = process.env.BULKHEAD_IPT_SEEDS?.split(',').map(Number) ?? [2001, 2002, 2003, 2004];
  const OUTSIDE = 'outside';
  let lab: KernelLab | null = null;

  afterAll(async () => {
    await lab?.destroy();
  });

  it.each(seeds)(
    'seed %i: the kernel agrees with decide() on every probe',
    async (seed) => {
      const policy = randomPolicy(seed);
      const resolved = resolvePolicy(policy);
      const compiled = compilePolicy(resolved);
      await lab?.destroy();
      lab = await startKernelLab({
        prefix: 'bhi',
        hosts: [
          ...policy.workloads.map((w) => ({ name: w.name, addresses: w.addresses })),
          { name: OUTSIDE, addresses: OUTSIDER_ADDRESSES },
        ],
        listen: PORT_POOL.flatMap((port) =>
          (['tcp', 'udp'] as const).map((proto) => ({ port, proto })),
        ),
      });
      await lab.applyFirewalls(async (host) => {
        if (host.name !== OUTSIDE) await applyIptables(compiled, host);
      });
      const probes = probeMatrix(lab, PORT_POOL, OUTSIDE);
      const first = await lab.probe(probes);
      const suspects = first.filter((r) => r.verdict !== expectedVerdict(resolved, r.probe));
      // A disagreement is measured again, slower, before it counts.
      const again = suspects.length
        ? await lab.probe(
            suspects.map((r) => r.probe),
            { timeoutMs: 1500, concurrency: 8 },
          )
        : [];
      const wrong = again
        .filter((r) => r.verdict !== expectedVerdict(resolved, r.probe))
        .map(describeProbe);
      expect(wrong).toEqual([]);
    },
    60_000,
  );
});

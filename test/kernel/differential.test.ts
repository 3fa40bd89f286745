/**
 * The differential test: over seeded random policies, the kernel's verdict on every probe
 * must equal decide()'s.
 *
 * Per seed: generate a policy, resolve and compile it, load each enforcing workload's nft
 * ruleset into that workload's own network namespace, then probe the full matrix (every
 * workload and outsider address, to every other address of the same family, on every pool
 * port, over TCP and UDP) through real sockets. decide() 'blocked' must be a kernel drop;
 * 'allowed' and 'potentially-blocked' must get through (visibility and selective modes
 * only record what they would block). And the renderer's recording sets must hold exactly
 * the attempts each side blocked or marked: what visibility and selective mode report as
 * potentially blocked is read back from the kernel itself.
 *
 * Replay one seed: BULKHEAD_DIFF_SEEDS=1007 npx vitest run test/kernel/differential.test.ts
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { addressFamily, canonicalAddress } from '../../src/policy/addresses.js';
import { compilePolicy, type CompiledPolicy } from '../../src/policy/compile/endpoint.js';
import { recordingSetName, renderNft } from '../../src/policy/compile/nft.js';
import {
  decide,
  type Flow,
  type FlowDecision,
  type SideJudgement,
} from '../../src/policy/decide.js';
import type { Policy } from '../../src/policy/model.js';
import { resolvePolicy, type ResolvedPolicy } from '../../src/policy/resolve.js';
import {
  kernelLabUnavailable,
  probeMatrix,
  startKernelLab,
  type KernelLab,
  type LabHostSpec,
  type Probe,
  type ProbeResult,
} from '../support/kernel-probe.js';
import { OUTSIDER_ADDRESSES, PORT_POOL, randomPolicy } from '../support/random-policy.js';

const PREFIX = 'bhd';
const OUTSIDE = 'outside';
const PROTOCOLS = ['tcp', 'udp'] as const;
const PROBE_TIMEOUT_MS = 400;
/** A probe that contradicts decide() is measured again, slower, before it counts. */
const CONFIRM_TIMEOUT_MS = 1500;
const DEFAULT_SEEDS = Array.from({ length: 16 }, (_, i) => 1001 + i);

function seedsToRun(): number[] {
  const listed = process.env.BULKHEAD_DIFF_SEEDS;
  return listed ? listed.split(',').map((s) => Number(s.trim())) : DEFAULT_SEEDS;
}

// --- The lab for one policy -------------------------------------------------------------

/** One namespace per workload, holding exactly its addresses, and one for the outsiders. */
function labHostsFor(policy: Policy): LabHostSpec[] {
  return [
    ...policy.workloads.map((w) => ({ name: w.name, addresses: w.addresses })),
    { name: OUTSIDE, addresses: OUTSIDER_ADDRESSES },
  ];
}

/** Loads each enforcing workload's ruleset into its namespace; returns those workloads. */
async function applyCompiledPolicy(lab: KernelLab, compiled: CompiledPolicy): Promise<string[]> {
  const scripts = new Map<string, string>();
  for (const [name, endpoint] of compiled.endpoints) {
    if (endpoint.mode !== 'idle') scripts.set(name, renderNft(endpoint, compiled.peerSets).text);
  }
  // Workloads that enforce nothing (and the outsiders) keep the empty ruleset they started with.
  await lab.applyFirewalls(async (host) => {
    const script = scripts.get(host.name);
    if (script !== undefined) await host.exec(['nft', '-f', '-'], script);
  });
  return [...scripts.keys()];
}

// --- Comparing with decide() ------------------------------------------------------------

interface Comparison {
  readonly result: ProbeResult;
  readonly decision: FlowDecision;
}

function flowOf(resolved: ResolvedPolicy, probe: Probe): Flow {
  const source = resolved.workloadAt(probe.from);
  const destination = resolved.workloadAt(probe.to);
  return {
    source: source ? { address: probe.from, workload: source } : { address: probe.from },
    destination: destination ? { address: probe.to, workload: destination } : { address: probe.to },
    proto: probe.proto,
    port: probe.port,
  };
}

/** Potentially blocked passes: visibility and selective modes only record what they would block. */
function agrees({ result, decision }: Comparison): boolean {
  return (result.verdict === 'blocked') === (decision.decision === 'blocked');
}

/** Re-measures the disagreements with a longer timeout; only those that persist remain. */
async function confirmed(lab: KernelLab, suspects: readonly Comparison[]): Promise<Comparison[]> {
  if (suspects.length === 0) return [];
  const again = await lab.probe(
    suspects.map((s) => s.result.probe),
    { timeoutMs: CONFIRM_TIMEOUT_MS, concurrency: 8 },
  );
  return suspects.map((s, i) => ({ ...s, result: again[i]! })).filter((c) => !agrees(c));
}

// --- The recording sets -----------------------------------------------------------------

/** One element of a recording set on one host: `remote address . protocol . port`. */
interface Attempt {
  readonly host: string;
  readonly set: string;
  readonly element: string;
}

const attemptKey = (a: Attempt): string => `${a.host} ${a.set} ${a.element}`;

function attemptFor(
  judgement: SideJudgement,
  outcome: 'block' | 'mark',
  remote: string,
  probe: Probe,
): Attempt {
  return {
    host: judgement.workload,
    set: recordingSetName(
      judgement.side,
      outcome === 'block' ? 'block' : 'potential',
      addressFamily(remote),
    ),
    element: `${canonicalAddress(remote)} . ${probe.proto} . ${probe.port}`,
  };
}

/**
 * What each judging side should record for a probe: the source on its way out, then the
 * destination on its way in, each in blocked_* or potential_* by its outcome. A side that
 * allows records nothing, and a source that blocks means the destination never sees it.
 */
function expectedAttempts({ result, decision }: Comparison): Attempt[] {
  const p = result.probe;
  const out = decision.outbound;
  const into = decision.inbound;
  const attempts: Attempt[] = [];
  if (out && out.outcome !== 'allow') attempts.push(attemptFor(out, out.outcome, p.to, p));
  if (into && into.outcome !== 'allow' && out?.outcome !== 'block')
    attempts.push(attemptFor(into, into.outcome, p.from, p));
  return attempts;
}

/** Every attempt a probe could ever leave, whatever the outcomes: to trace a stray element. */
function conceivableAttempts({ result, decision }: Comparison): Attempt[] {
  const p = result.probe;
  const sides = [
    [decision.outbound, p.to],
    [decision.inbound, p.from],
  ] as const;
  return sides.flatMap(([judgement, remote]) =>
    judgement
      ? (['block', 'mark'] as const).map((outcome) => attemptFor(judgement, outcome, remote, p))
      : [],
  );
}

interface NftJsonItem {
  readonly set?: {
    readonly name: string;
    readonly elem?: readonly {
      readonly elem: { readonly val: { readonly concat: readonly (string | number)[] } };
    }[];
  };
}

const RECORDING_SETS = new Set(
  (['block', 'potential'] as const).flatMap((verdict) =>
    (['inbound', 'outbound'] as const).flatMap((direction) =>
      [4, 6].map((family) => recordingSetName(direction, verdict, family as 4 | 6)),
    ),
  ),
);

/** What the kernel recorded on one host, read back with `nft -j list table`. */
async function recordedOn(lab: KernelLab, host: string): Promise<Attempt[]> {
  const listing = await lab.host(host).exec(['nft', '-j', 'list', 'table', 'inet', 'bulkhead']);
  const attempts: Attempt[] = [];
  for (const item of (JSON.parse(listing) as { nftables: NftJsonItem[] }).nftables) {
    if (!item.set || !RECORDING_SETS.has(item.set.name)) continue;
    for (const { elem } of item.set.elem ?? []) {
      const [address, proto, port] = elem.val.concat;
      attempts.push({
        host,
        set: item.set.name,
        element: `${canonicalAddress(String(address))} . ${proto} . ${port}`,
      });
    }
  }
  return attempts;
}

interface RecordingProblem {
  readonly problem: 'not recorded' | 'recorded but not expected';
  readonly attempt: string;
  readonly comparison: Comparison | undefined;
}

/** The attempts the recording sets should hold and do not, and those they hold but should not. */
async function recordingProblems(
  lab: KernelLab,
  enforcing: readonly string[],
  comparisons: readonly Comparison[],
): Promise<RecordingProblem[]> {
  const expected = new Set(comparisons.flatMap(expectedAttempts).map(attemptKey));
  const recorded = new Set(
    (await Promise.all(enforcing.map((h) => recordedOn(lab, h)))).flat().map(attemptKey),
  );
  const origin = new Map(
    comparisons.flatMap((c) => conceivableAttempts(c).map((a) => [attemptKey(a), c] as const)),
  );
  const problem = (kind: RecordingProblem['problem']) => (attempt: string) => ({
    problem: kind,
    attempt,
    comparison: origin.get(attempt),
  });
  return [
    ...[...expected].filter((k) => !recorded.has(k)).map(problem('not recorded')),
    ...[...recorded].filter((k) => !expected.has(k)).map(problem('recorded but not expected')),
  ];
}

// --- Reporting --------------------------------------------------------------------------

function describeProbe(lab: KernelLab, p: Probe): string {
  return `${p.proto}/${p.port} ${lab.hostOf(p.from).name} (${p.from}) -> ${lab.hostOf(p.to).name} (${p.to})`;
}

function describeComparison(lab: KernelLab, { result, decision }: Comparison): string {
  return `${describeProbe(lab, result.probe)}: decide ${decision.decision}, kernel ${result.verdict} (${result.evidence})`;
}

async function rulesetOf(lab: KernelLab, host: string): Promise<string> {
  if (host === OUTSIDE) return '(outsider: no firewall)';
  return lab.host(host).exec(['nft', 'list', 'ruleset']);
}

/** Everything needed to understand, and replay, a seed's disagreements. */
async function failureReport(
  lab: KernelLab,
  seed: number,
  policy: Policy,
  mismatches: readonly Comparison[],
  recording: readonly RecordingProblem[],
): Promise<string> {
  const examples = [
    ...mismatches,
    ...recording.flatMap((r) => (r.comparison ? [r.comparison] : [])),
  ].slice(0, 4);
  const hosts = [
    ...new Set(
      examples.flatMap((c) =>
        [c.result.probe.from, c.result.probe.to].map((a) => lab.hostOf(a).name),
      ),
    ),
  ];
  const rulesets = await Promise.all(
    hosts.map(async (h) => `--- nft list ruleset on ${h} ---\n${await rulesetOf(lab, h)}`),
  );
  return [
    `seed ${seed} (replay: BULKHEAD_DIFF_SEEDS=${seed} npx vitest run test/kernel/differential.test.ts)`,
    `${mismatches.length} probe(s) where the kernel's verdict disagrees with decide():`,
    ...mismatches.map((m) => `  ${describeComparison(lab, m)}`),
    `${recording.length} recording-set difference(s):`,
    ...recording.map(
      (r) =>
        `  ${r.problem}: ${r.attempt}${r.comparison ? ` <- ${describeComparison(lab, r.comparison)}` : ''}`,
    ),
    '--- policy ---',
    stringify(policy),
    ...examples.map(
      (c) =>
        `--- decide() for ${describeProbe(lab, c.result.probe)} ---\n${JSON.stringify(c.decision, null, 2)}`,
    ),
    ...rulesets,
  ].join('\n');
}

interface Totals {
  seeds: number;
  probes: number;
  allowed: number;
  blocked: number;
  potentiallyBlocked: number;
}

function count(totals: Totals, comparisons: readonly Comparison[]): void {
  totals.seeds++;
  totals.probes += comparisons.length;
  for (const { result, decision } of comparisons) {
    if (result.verdict === 'allowed') totals.allowed++;
    else totals.blocked++;
    if (decision.decision === 'potentially-blocked') totals.potentiallyBlocked++;
  }
}

// --- The test ---------------------------------------------------------------------------

const unavailable = await kernelLabUnavailable(['nft']);

describe.skipIf(unavailable !== null)(
  `differential: the kernel's verdict equals decide()${unavailable ? ` (skipped: ${unavailable})` : ''}`,
  () => {
    const totals: Totals = { seeds: 0, probes: 0, allowed: 0, blocked: 0, potentiallyBlocked: 0 };
    let lab: KernelLab | null = null;

    afterEach(async () => {
      await lab?.destroy();
      lab = null;
    });

    afterAll(() => {
      console.log(
        `differential: ${totals.seeds} seeds, ${totals.probes} probes: ${totals.allowed} allowed ` +
          `(decide: ${totals.potentiallyBlocked} potentially blocked), ${totals.blocked} blocked`,
      );
    });

    it.each(seedsToRun())(
      'seed %i',
      async (seed) => {
        const policy = randomPolicy(seed);
        expect(randomPolicy(seed), 'the same seed must give the same policy').toEqual(policy);
        const resolved = resolvePolicy(policy);
        const compiled = compilePolicy(resolved);
        lab = await startKernelLab({
          prefix: PREFIX,
          hosts: labHostsFor(policy),
          listen: PORT_POOL.flatMap((port) => PROTOCOLS.map((proto) => ({ port, proto }))),
        });
        const enforcing = await applyCompiledPolicy(lab, compiled);

        const results = await lab.probe(probeMatrix(lab, PORT_POOL, OUTSIDE), {
          timeoutMs: PROBE_TIMEOUT_MS,
        });
        const comparisons = results.map((result) => ({
          result,
          decision: decide(resolved, flowOf(resolved, result.probe)),
        }));
        const mismatches = await confirmed(
          lab,
          comparisons.filter((c) => !agrees(c)),
        );
        const recording = await recordingProblems(lab, enforcing, comparisons);
        count(totals, comparisons);

        if (mismatches.length > 0 || recording.length > 0) {
          console.error(await failureReport(lab, seed, policy, mismatches, recording));
        }
        const labNow = lab;
        expect(mismatches.map((m) => describeComparison(labNow, m))).toEqual([]);
        expect(recording.map((r) => `${r.problem}: ${r.attempt}`)).toEqual([]);
      },
      60_000,
    );

    it('measured a non-trivial matrix (some probes allowed, some blocked, some potentially blocked)', () => {
      expect(totals.seeds).toBeGreaterThan(0);
      expect(totals.allowed).toBeGreaterThan(0);
      expect(totals.blocked).toBeGreaterThan(0);
      expect(totals.potentiallyBlocked).toBeGreaterThan(0);
    });
  },
);

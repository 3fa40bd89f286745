/**
 * `bulkhead lab probe`: the reachability matrix as the kernel enforces it. From inside each
 * source namespace it tries every other workload on every port it listens on, and on a few
 * closed ports per destination (the same ones every run), with short timeouts and bounded
 * concurrency, using the prober the kernel tests use (src/lab/prober.ts).
 *
 * The verdict reads what came back. A listening port: a handshake or an echo is allowed,
 * anything else blocked. A closed port: a refusal (TCP RST, or ICMP port-unreachable for
 * UDP) crossed both firewalls, so it is allowed; silence (twice, for UDP) is blocked. (A
 * firewall that rejects with a TCP reset looks like a closed port there: the evidence field
 * says which.)
 */
import { mapLimit } from './concurrency.js';
import { executableFor, PROBE_PROCESS } from './programs.js';
import { Prober, type Probe, type ProbeEvidence } from './prober.js';
import { LabError } from './errors.js';
import { labPaths, type LabState } from './state.js';
import { addressPair, type Protocol, type WorkloadSpec } from './topology.js';

export interface ProbeOptions {
  /** How long a probe waits for an answer. */
  readonly timeoutMs: number;
  /** Closed ports tried per destination and protocol. */
  readonly closedPorts: number;
  /** Probes in flight per source. */
  readonly concurrency: number;
}

export const DEFAULT_PROBE: ProbeOptions = { timeoutMs: 500, closedPorts: 2, concurrency: 16 };

export type ProbeResult = 'allowed' | 'blocked';

export interface ProbeRow {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly proto: Protocol;
  readonly result: ProbeResult;
  /** Whether a service listens there (false: a closed port from the sample). */
  readonly listening: boolean;
  /** The process serving the port, when one does. */
  readonly process: string | null;
  readonly evidence: ProbeEvidence;
  readonly fromAddress: string;
  readonly toAddress: string;
}

/**
 * Ports where nothing in a lab listens unless the file says so: well-known services an
 * attacker would try. A destination's sample starts at a place derived from its name, so
 * different workloads get different ports, and the same workload the same ones every run.
 */
const CLOSED_CANDIDATES: Record<Protocol, readonly number[]> = {
  tcp: [21, 23, 25, 80, 110, 135, 139, 445, 1433, 2049, 3389, 5900, 6379, 8443, 9200, 27017],
  udp: [69, 111, 123, 137, 161, 500, 1900, 5353, 11211],
};

/** FNV-1a: a stable small hash of a name. */
function hashOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The closed ports probed on a workload, per protocol. */
export function closedPortSample(
  w: WorkloadSpec,
  perProtocol: number,
): { port: number; proto: Protocol }[] {
  const out: { port: number; proto: Protocol }[] = [];
  for (const proto of ['tcp', 'udp'] as const) {
    const open = new Set(w.listen.filter((l) => l.proto === proto).map((l) => l.port));
    const candidates = CLOSED_CANDIDATES[proto].filter((p) => !open.has(p));
    const start = candidates.length ? hashOf(w.name) % candidates.length : 0;
    for (let i = 0; i < Math.min(perProtocol, candidates.length); i++)
      out.push({ port: candidates[(start + i) % candidates.length]!, proto });
  }
  return out;
}

interface Planned {
  readonly row: Omit<ProbeRow, 'result' | 'evidence'>;
  readonly probe: Probe;
}

/** Every (source, destination, port) the matrix holds, in a stable order. */
export function planProbes(state: LabState, closedPorts: number): Planned[] {
  const workloads = state.topology.workloads;
  const planned: Planned[] = [];
  for (const from of workloads) {
    for (const to of workloads) {
      if (from === to) continue;
      const pair = addressPair(from, to);
      if (!pair) continue;
      const targets = [
        ...to.listen.map((l) => ({
          port: l.port,
          proto: l.proto,
          listening: true,
          process: l.process,
        })),
        ...closedPortSample(to, closedPorts).map((c) => ({
          ...c,
          listening: false,
          process: null,
        })),
      ];
      for (const t of targets) {
        planned.push({
          row: {
            from: from.name,
            to: to.name,
            port: t.port,
            proto: t.proto,
            listening: t.listening,
            process: t.process,
            fromAddress: pair.from,
            toAddress: pair.to,
          },
          probe: { from: pair.from, to: pair.to, port: t.port, proto: t.proto },
        });
      }
    }
  }
  return planned;
}

/** What the evidence means for a port that listens, or one that does not. */
export function verdictOf(evidence: ProbeEvidence, listening: boolean): ProbeResult {
  if (evidence === 'connected' || evidence === 'replied') return 'allowed';
  return !listening && evidence === 'refused' ? 'allowed' : 'blocked';
}

/** Probers start a few at a time; each then runs its source's probes concurrently. */
const SOURCE_CONCURRENCY = 4;

export async function labProbe(state: LabState, options: ProbeOptions): Promise<ProbeRow[]> {
  const planned = planProbes(state, options.closedPorts);
  const netns = new Map(state.workloads.map((w) => [w.name, w.netns]));
  const program = executableFor(labPaths(state.labDir), PROBE_PROCESS);
  const bySource = new Map<string, number[]>();
  planned.forEach((p, i) => {
    let list = bySource.get(p.row.from);
    if (!list) bySource.set(p.row.from, (list = []));
    list.push(i);
  });
  const rows = new Array<ProbeRow>(planned.length);
  await mapLimit([...bySource], SOURCE_CONCURRENCY, async ([source, indexes]) => {
    const prober = await Prober.start(netns.get(source)!, source, { program });
    try {
      const answers = await prober.probe(
        indexes.map((i) => planned[i]!.probe),
        options.timeoutMs,
        options.concurrency,
      );
      // A UDP probe is one datagram, which nothing resends: on a busy host a lost or late
      // one looks like a drop. Silence is taken as blocked only when a second try, given
      // twice as long, is silent too. (TCP resends its handshake itself.)
      const silent = answers.flatMap((a, k) =>
        a.evidence === 'timeout' && planned[indexes[k]!]!.row.proto === 'udp' ? [k] : [],
      );
      if (silent.length > 0) {
        const again = await prober.probe(
          silent.map((k) => planned[indexes[k]!]!.probe),
          options.timeoutMs * 2,
          options.concurrency,
        );
        silent.forEach((k, j) => (answers[k] = again[j]!));
      }
      answers.forEach((answer, k) => {
        const { row } = planned[indexes[k]!]!;
        if (!answer.evidence)
          throw new LabError(
            `probe ${row.proto}/${row.port} ${row.from} -> ${row.to} failed: ${answer.error ?? 'no answer'}`,
            { row },
          );
        rows[indexes[k]!] = {
          ...row,
          result: verdictOf(answer.evidence, row.listening),
          evidence: answer.evidence,
        };
      });
    } finally {
      await prober.stop();
    }
  });
  return rows;
}

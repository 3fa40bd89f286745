/**
 * `bulkhead lab traffic`: plays the topology's traffic lines as real connections from inside
 * each source namespace, by a client process named as the line says (so the source's agent
 * sees, say, `java` calling the database), once or at a rate for a duration.
 */
import { run } from '../host/run.js';
import { mapLimit } from './concurrency.js';
import { LabError } from './errors.js';
import { executableFor, programPaths } from './programs.js';
import { labPaths, type LabState } from './state.js';
import { addressPair, type Protocol, type TrafficSpec } from './topology.js';

export interface TrafficOptions {
  /** Seconds to keep playing; 0: each line once. */
  readonly durationSeconds: number;
  /** Connections per second per line while a duration runs. */
  readonly rate: number;
  /** How long each TCP connection stays open after the service answered. */
  readonly holdMs: number;
  /** How long a connection may take to be answered before it counts as failed. */
  readonly timeoutMs: number;
}

export const DEFAULT_TRAFFIC: TrafficOptions = {
  durationSeconds: 0,
  rate: 1,
  holdMs: 2000,
  timeoutMs: 2000,
};

export interface TrafficResult {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly proto: Protocol;
  readonly process: string;
  readonly fromAddress: string;
  readonly toAddress: string;
  readonly attempts: number;
  readonly ok: number;
  /** Failed attempts by what came back: timeout, refused, unreachable, refused-locally. */
  readonly failures: Readonly<Record<string, number>>;
}

interface ClientAnswer {
  id: number;
  attempts: number;
  ok: number;
  failures: Record<string, number>;
}

/**
 * Played once, clients start a few at a time (see mapLimit); played for a duration, all
 * at once, or the last would start when the first had finished.
 */
const CLIENT_CONCURRENCY = 6;

export async function labTraffic(
  state: LabState,
  options: TrafficOptions,
): Promise<TrafficResult[]> {
  if (!(options.rate > 0 && options.rate <= 1000))
    throw new LabError(
      `--rate ${options.rate} is not a rate (1-1000 connections a second per line)`,
    );
  const specs = new Map(state.topology.workloads.map((w) => [w.name, w]));
  const netns = new Map(state.workloads.map((w) => [w.name, w.netns]));
  const paths = labPaths(state.labDir);
  const lines = state.topology.traffic.map((t, id) => {
    const pair = addressPair(specs.get(t.from)!, specs.get(t.to)!)!;
    return { id, spec: t, pair };
  });
  // One client per (source, process name): that is what a host's connection table shows.
  const groups = new Map<string, typeof lines>();
  for (const l of lines) {
    const key = `${l.spec.from}\u0000${l.spec.process}`;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = []));
    group.push(l);
  }
  const durationMs = options.durationSeconds * 1000;
  const limit = durationMs > 0 ? groups.size : CLIENT_CONCURRENCY;
  const answers = await mapLimit([...groups.values()], limit, async (group) => {
    const { from, process } = group[0]!.spec;
    const input = JSON.stringify({
      lines: group.map((l) => ({
        id: l.id,
        from: l.pair.from,
        to: l.pair.to,
        port: l.spec.port,
        proto: l.spec.proto,
      })),
      durationMs,
      rate: options.rate,
      holdMs: options.holdMs,
      timeoutMs: options.timeoutMs,
    });
    const command = [
      'ip',
      'netns',
      'exec',
      netns.get(from)!,
      executableFor(paths, process),
      programPaths(paths).traffic,
    ];
    const { stdout } = await run(command, {
      input,
      timeoutMs: durationMs + options.timeoutMs + options.holdMs + 30_000,
    });
    return JSON.parse(stdout) as ClientAnswer[];
  });
  const byId = new Map(answers.flat().map((a) => [a.id, a]));
  return lines.map(({ id, spec, pair }) => resultOf(spec, pair, byId.get(id)!));
}

function resultOf(
  spec: TrafficSpec,
  pair: { from: string; to: string },
  answer: ClientAnswer,
): TrafficResult {
  return {
    from: spec.from,
    to: spec.to,
    port: spec.port,
    proto: spec.proto,
    process: spec.process,
    fromAddress: pair.from,
    toAddress: pair.to,
    attempts: answer.attempts,
    ok: answer.ok,
    failures: answer.failures,
  };
}

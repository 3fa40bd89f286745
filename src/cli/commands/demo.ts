/**
 * `bulkhead demo`: loads the simulated demo estate into a control plane (see
 * src/demo/), so the map, the explorer and the UI have something real to show.
 */
import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { CliError, json, type CliIo } from '../io.js';

interface Loaded {
  workloads: number;
  edges: number;
  buckets: number;
  policyVersion: number;
}

async function demo(
  io: CliIo,
  opts: { weeks: string; replace?: boolean; json?: boolean },
): Promise<void> {
  if (!/^\d+$/.test(opts.weeks) || Number(opts.weeks) < 1 || Number(opts.weeks) > 8)
    throw new CliError(`--weeks "${opts.weeks}" is not a whole number from 1 to 8`, 2);
  const r = await new ApiClient().post<Loaded>('/demo', {
    weeks: Number(opts.weeks),
    replace: opts.replace === true,
  });
  io.out(
    opts.json
      ? json(r)
      : `loaded the demo estate: ${r.workloads} workloads, ${r.edges} flow edges from ${r.buckets} traffic buckets over ${opts.weeks} weeks; policy version ${r.policyVersion} is active`,
  );
}

export function registerDemo(program: Command, io: CliIo): void {
  program
    .command('demo')
    .description(
      'load a simulated estate (apps in prod, staging and dev, networks, weeks of traffic) into the control plane at BULKHEAD_URL with BULKHEAD_TOKEN',
    )
    .option('--weeks <n>', 'weeks of traffic history, 1 to 8', '3')
    .option('--replace', 'replace the workloads, agents and draft already there')
    .option('--json', 'print the result as JSON')
    .action((opts: { weeks: string; replace?: boolean; json?: boolean }) => demo(io, opts));
}

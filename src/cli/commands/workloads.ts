/**
 * `bulkhead workloads mode MODE --selector app=shop,env=prod [--dry-run]`: the rollout step
 * of issue 6, moving workloads by selector through visibility -> selective -> full. A dry
 * run says which workloads would change and, before full enforcement, which observed flows
 * stand in the way (those the active policy marks potentially blocked).
 */
import type { Command } from 'commander';
import type { FlowPage } from '../../analysis/flows/model.js';
import { ENFORCEMENT_MODES } from '../../policy/model.js';
import { ApiClient } from '../client.js';
import { CliError, json, type CliIo } from '../io.js';

/** Potentially blocked flows a dry run lists before a step to full enforcement. */
const IN_THE_WAY = 20;
/** How far back a dry run looks for flows in the way. */
const IN_THE_WAY_SINCE = '30d';

interface WorkloadView {
  name: string;
  labels: Record<string, string>;
  mode: string;
}

/** `app=shop,app=pay,env=prod`: the same key ORed, different keys ANDed (as the API reads it). */
export function parseSelector(text: string): Record<string, string[]> {
  const labels: Record<string, string[]> = {};
  for (const part of text.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    const m = /^([a-z][a-z0-9_.-]{0,62})=(.{1,128})$/.exec(part);
    if (!m)
      throw new CliError(`--selector: "${part}" is not key=value (e.g. app=shop,env=prod)`, 2);
    (labels[m[1]!] ??= []).push(m[2]!);
  }
  if (Object.keys(labels).length === 0)
    throw new CliError('--selector: give at least one label, e.g. app=shop,env=prod', 2);
  return labels;
}

const selectorText = (labels: Record<string, string[]>) =>
  Object.entries(labels)
    .flatMap(([k, vs]) => vs.map((v) => `${k}=${v}`))
    .join(',');

async function matching(client: ApiClient, labels: Record<string, string[]>) {
  const out: WorkloadView[] = [];
  const q = encodeURIComponent(selectorText(labels));
  for (let offset = 0; ;) {
    const page = await client.get<{ items: WorkloadView[]; total: number }>(
      `/workloads?labels=${q}&limit=1000&offset=${offset}`,
    );
    out.push(...page.items);
    offset += page.items.length;
    if (page.items.length === 0 || offset >= page.total) return out;
  }
}

interface ModeOptions {
  selector: string;
  dryRun?: boolean;
  json?: boolean;
}

async function setMode(io: CliIo, mode: string, opts: ModeOptions): Promise<void> {
  if (!(ENFORCEMENT_MODES as readonly string[]).includes(mode))
    throw new CliError(`mode: "${mode}" is not one of ${ENFORCEMENT_MODES.join(', ')}`, 2);
  const labels = parseSelector(opts.selector);
  const client = new ApiClient();
  if (!opts.dryRun) {
    const r = await client.post<{ matched: number; changed: string[] }>('/workloads/mode', {
      selector: { labels },
      mode,
    });
    if (opts.json) io.out(json(r));
    else
      io.out(
        `${r.matched} workloads matched ${selectorText(labels)}; ${r.changed.length} set to ${mode}${r.changed.length ? `: ${r.changed.join(', ')}` : ''}`,
      );
    return;
  }
  const picked = await matching(client, labels);
  const changing = picked.filter((w) => w.mode !== mode).map((w) => w.name);
  // Under full enforcement, what the active policy only marks today is blocked.
  const inTheWay =
    mode === 'full'
      ? await client.get<FlowPage>(
          `/flows?any=${encodeURIComponent(selectorText(labels))}&decision=potentially-blocked&since=${IN_THE_WAY_SINCE}&sort=-connections&limit=${IN_THE_WAY}`,
        )
      : null;
  if (opts.json) {
    io.out(
      json({
        dryRun: true,
        matched: picked.length,
        wouldChange: changing,
        ...(inTheWay ? { potentiallyBlocked: inTheWay.total, flows: inTheWay.items } : {}),
      }),
    );
    return;
  }
  const lines = [
    `dry run: ${picked.length} workloads match ${selectorText(labels)}; ${changing.length} would be set to ${mode}${changing.length ? `: ${changing.join(', ')}` : ''}`,
  ];
  if (inTheWay) {
    lines.push(
      inTheWay.total === 0
        ? `no flow observed in the last ${IN_THE_WAY_SINCE} would be blocked`
        : `${inTheWay.total} ${inTheWay.total === 1 ? 'flow' : 'flows'} observed in the last ${IN_THE_WAY_SINCE} ${inTheWay.total === 1 ? 'is' : 'are'} potentially blocked and would be blocked:`,
    );
    for (const r of inTheWay.items) {
      const end = (e: (typeof r)['source']) => e.workload ?? e.address;
      lines.push(
        `  ${end(r.source)} -> ${end(r.destination)} ${r.port === null ? r.proto : `${r.port}/${r.proto}`} (${r.connections} connections): ${r.decidedBy}`,
      );
    }
  }
  io.out(lines.join('\n'));
}

export function registerWorkloads(program: Command, io: CliIo): void {
  const workloads = program
    .command('workloads')
    .description('roll enforcement out by selector (talks to the control plane at BULKHEAD_URL)');
  workloads
    .command('mode')
    .description(
      `set the enforcement mode (${ENFORCEMENT_MODES.join(', ')}) of every workload a selector picks`,
    )
    .argument('<mode>', ENFORCEMENT_MODES.join(', '))
    .requiredOption('--selector <labels>', 'the workloads, e.g. app=shop,env=prod')
    .option(
      '--dry-run',
      'say what would change, and what full enforcement would block, without changing it',
    )
    .option('--json', 'print the answer as JSON')
    .action((mode: string, opts: ModeOptions) => setMode(io, mode, opts));
}

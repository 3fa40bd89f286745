/**
 * `bulkhead policy generate` (allow rules from observed flows, previewed or added to the
 * draft) and `bulkhead policy simulate` (what provisioning the draft would newly block or
 * allow among observed flows, or among the flows of a file with `--file`; exit status 1 when
 * anything would be newly blocked, so a CI pipeline over a policy repository can gate on it).
 * Both ask the control plane.
 */
import type { Command } from 'commander';
import { FilterTextError, parseDuration } from '../../analysis/flows/filter-text.js';
import type { EndView, FlowRow, FlowWindow } from '../../analysis/flows/model.js';
import { GRANULARITIES, type GeneratedPolicy } from '../../policy/generate/index.js';
import { ApiClient } from '../client.js';
import { CliError, json, type CliIo } from '../io.js';
import { FLOW_IMPORT_FORMATS } from '../../importers/flows/formats.js';
import { flowFileName, readFlowFile } from '../flow-file.js';

const DEFAULT_SINCE = '30d';
/** Changes a text simulation report lists (the JSON has up to the server's limit). */
const TOP_CHANGES = 20;
/** Uncovered flows a text generation report lists. */
const TOP_UNCOVERED = 20;

type GenerateAnswer = Omit<GeneratedPolicy, 'rulesets' | 'ipLists'> & {
  scope: string | null;
  window: FlowWindow;
  documents: { kind: string; name: string; spec: Record<string, unknown> }[];
  yaml: string;
  blockedLeftOut: { flows: number; connections: number };
  written: boolean;
};

interface SimulateAnswer {
  /** Retained flows: the window read. */
  window?: FlowWindow;
  /** A file's flows: what it held. */
  file?: {
    format: string;
    summaries: number;
    skipped: number;
    flows: number;
    firstSeen: string | null;
    lastSeen: string | null;
  };
  activeVersion: number | null;
  newlyBlocked: { flows: number; connections: number };
  newlyAllowed: { flows: number; connections: number };
  byApplication: { application: string; newlyBlocked: number; newlyAllowed: number }[];
  changes: FlowRow[];
  truncated: boolean;
}

/** `--since`, checked with the server's parser so a typo fails before any request. */
function sinceFlag(text: string | undefined): string {
  const since = text ?? DEFAULT_SINCE;
  try {
    parseDuration(since);
  } catch (e) {
    if (e instanceof FilterTextError) throw new CliError(`--since: ${e.message}`, 2);
    throw e;
  }
  return since;
}

const plural = (n: number, word: string, words = `${word}s`) => `${n} ${n === 1 ? word : words}`;
const percent = (share: number) => `${(share * 100).toFixed(1)}%`;
const windowText = (w: FlowWindow) => `${w.from} .. ${w.to}`;

interface GenerateOptions {
  scope?: string;
  granularity: string;
  since?: string;
  dryRun?: boolean;
  includeBlocked?: boolean;
  json?: boolean;
}

async function generate(io: CliIo, opts: GenerateOptions): Promise<void> {
  if (!(GRANULARITIES as readonly string[]).includes(opts.granularity))
    throw new CliError(
      `--granularity: "${opts.granularity}" is not one of ${GRANULARITIES.join(', ')}`,
      2,
    );
  const since = sinceFlag(opts.since);
  const answer = await new ApiClient().post<GenerateAnswer>('/policy/generate', {
    ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
    granularity: opts.granularity,
    since,
    dryRun: opts.dryRun === true,
    includeBlocked: opts.includeBlocked === true,
  });
  io.out(opts.json ? json(answer) : generateReport(answer));
}

export function generateReport(a: GenerateAnswer): string {
  const lines: string[] = [
    `# ${a.granularity} granularity, scope ${a.scope ?? 'the whole estate'}, flows ${windowText(a.window)}`,
    `# ${plural(a.counts.flows, 'flow summary', 'flow summaries')}, ${a.counts.inScope} in scope`,
  ];
  if (a.documents.length === 0) lines.push('# no new rules needed');
  else lines.push(a.yaml.trimEnd());
  if (a.evidence.length > 0) {
    lines.push('', 'evidence:');
    for (const e of a.evidence) {
      lines.push(
        `  ${e.ruleset}/${e.rule}: ${plural(e.flows, 'flow')}, ${plural(e.connections, 'connection')}, first seen ${e.firstSeen}, last seen ${e.lastSeen}`,
      );
      for (const x of e.examples) lines.push(`    ${x}`);
    }
  }
  const c = a.coverage;
  lines.push(
    '',
    `coverage: ${percent(c.share)} of flows in scope allowed (${c.flows.allowed} of ${c.flows.inScope} flows, ${c.connections.allowed} of ${c.connections.inScope} connections)`,
  );
  for (const n of c.notAllowed.slice(0, TOP_UNCOVERED))
    lines.push(
      `  not allowed: ${n.source} -> ${n.destination} ${n.service} (${plural(n.connections, 'connection')}): ${n.reason}`,
    );
  if (c.notAllowed.length > TOP_UNCOVERED)
    lines.push(`  ... and ${c.notAllowed.length - TOP_UNCOVERED} more (see --json)`);
  for (const x of a.alreadyAllowed)
    lines.push(`already allowed by ${x.by}: ${plural(x.flows, 'flow')}`);
  const left = a.blockedLeftOut;
  if (left.connections > 0)
    lines.push(
      `left out ${plural(left.connections, 'blocked attempt')} (${plural(left.flows, 'flow')} never went through): agents blocked them; --include-blocked to propose rules for them`,
    );
  for (const b of a.blockedByExisting)
    lines.push(`left blocked by existing ${b.action} rule ${b.rule}: ${plural(b.flows, 'flow')}`);
  for (const u of a.unlabelled)
    lines.push(
      `unlabelled: ${u.workload} lacks ${u.missing.join(', ')} (${plural(u.flows, 'flow')} not written)`,
    );
  for (const o of a.overriddenDenies)
    lines.push(`warning: generated rule ${o.rule} admits traffic that ${o.existingRule} denies`);
  lines.push('');
  if (a.written)
    lines.push(
      `wrote ${plural(a.documents.length, 'document')} to the draft: review with \`bulkhead diff\`, check with \`bulkhead policy simulate\`, then \`bulkhead provision\``,
    );
  else if (a.documents.length > 0)
    lines.push(
      `dry run: nothing written (run without --dry-run to add ${plural(a.documents.length, 'document')} to the draft)`,
    );
  else lines.push('nothing to write');
  return lines.join('\n');
}

interface SimulateOptions {
  since?: string;
  file?: string;
  format?: string;
  json?: boolean;
}

async function simulateFile(file: string, formatFlag: string | undefined): Promise<SimulateAnswer> {
  const flows = await readFlowFile(file, formatFlag);
  const res = await new ApiClient().send('POST', `/policy/simulate/file?format=${flows.format}`, {
    text: flows.text,
    contentType: flows.contentType,
  });
  return (await res.json()) as SimulateAnswer;
}

async function simulate(io: CliIo, opts: SimulateOptions, cmd: Command): Promise<void> {
  if (opts.file !== undefined && cmd.getOptionValueSource('since') === 'cli')
    throw new CliError('--since: a --file is simulated whole; give one or the other', 2);
  if (opts.file === undefined && opts.format !== undefined)
    throw new CliError('--format: only with --file', 2);
  const answer =
    opts.file !== undefined
      ? await simulateFile(opts.file, opts.format)
      : await new ApiClient().post<SimulateAnswer>('/policy/simulate', {
          since: sinceFlag(opts.since),
        });
  const fileName = opts.file === undefined ? undefined : flowFileName(opts.file);
  io.out(opts.json ? json(answer) : simulateReport(answer, fileName));
  // Non-zero so a CI pipeline stops before provisioning a draft that blocks observed traffic.
  if (answer.newlyBlocked.flows > 0) {
    const [one, many] =
      opts.file === undefined
        ? ['observed flow', 'observed flows']
        : [`flow of ${fileName}`, `flows of ${fileName}`];
    throw new CliError(
      `the draft would newly block ${plural(answer.newlyBlocked.flows, one, many)} (${plural(answer.newlyBlocked.connections, 'connection')})`,
      1,
    );
  }
}

function endText(e: EndView): string {
  return e.workload ?? (e.group ? `${e.address} (${e.group})` : e.address);
}

function serviceText(r: FlowRow): string {
  return r.port === null ? r.proto : `${r.port}/${r.proto}`;
}

function table(rows: readonly string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}

/** What was simulated: the window of retained flows, or the file and what it held. */
function simulatedText(a: SimulateAnswer, fileName: string | undefined): string {
  if (a.window) return `flows ${windowText(a.window)}`;
  const f = a.file;
  if (!f) return 'flows';
  const seen =
    f.firstSeen !== null && f.lastSeen !== null ? `, seen ${f.firstSeen} .. ${f.lastSeen}` : '';
  const skipped = f.skipped ? `, ${plural(f.skipped, 'line')} skipped` : '';
  return `flows of ${fileName ?? `the ${f.format} file`} (${plural(f.summaries, 'flow summary', 'flow summaries')}, ${plural(f.flows, 'distinct flow')}${skipped}${seen})`;
}

export function simulateReport(a: SimulateAnswer, fileName?: string): string {
  const against =
    a.activeVersion === null ? 'no active version' : `active version ${a.activeVersion}`;
  const lines = [
    `the draft against ${against}, ${simulatedText(a, fileName)}`,
    `newly blocked: ${plural(a.newlyBlocked.flows, 'flow')}, ${plural(a.newlyBlocked.connections, 'connection')}`,
    `newly allowed: ${plural(a.newlyAllowed.flows, 'flow')}, ${plural(a.newlyAllowed.connections, 'connection')}`,
  ];
  if (a.byApplication.length === 0) {
    lines.push(a.file ? 'no flow of the file would change' : 'no observed flow would change');
    return lines.join('\n');
  }
  lines.push(
    '',
    ...table([
      ['APPLICATION', 'NEWLY BLOCKED', 'NEWLY ALLOWED'],
      ...a.byApplication.map((x) => [x.application, `${x.newlyBlocked}`, `${x.newlyAllowed}`]),
    ]),
    '',
    ...table([
      ['SOURCE', 'DESTINATION', 'SERVICE', 'CONNECTIONS', 'ACTIVE', 'DRAFT', 'DRAFT DECIDED BY'],
      ...a.changes
        .slice(0, TOP_CHANGES)
        .map((r) => [
          endText(r.source),
          endText(r.destination),
          serviceText(r),
          `${r.connections}`,
          r.decision,
          r.draftDecision,
          r.draftDecidedBy,
        ]),
    ]),
  );
  const more = a.changes.length - TOP_CHANGES;
  if (more > 0 || a.truncated)
    lines.push(`... ${a.truncated ? 'more' : more} changed flows not shown (see --json)`);
  return lines.join('\n');
}

export function registerPolicyGenerate(policy: Command, io: CliIo): void {
  const remote = 'talks to the control plane at BULKHEAD_URL with BULKHEAD_TOKEN';
  policy
    .command('generate')
    .description(`generate allow rules from observed flows and add them to the draft (${remote})`)
    .requiredOption('--granularity <g>', `how finely to segment: ${GRANULARITIES.join(', ')}`)
    .option(
      '--scope <selector>',
      'the workloads to segment, e.g. app=payments,env=prod (default: all)',
    )
    .option('--since <duration>', 'the flows observed in this window', DEFAULT_SINCE)
    .option('--dry-run', 'print the proposed rules without writing them to the draft')
    .option(
      '--include-blocked',
      'also propose rules for connection attempts enforcing agents blocked (left out by default)',
    )
    .option('--json', 'print the whole answer as JSON')
    .action((opts: GenerateOptions) => generate(io, opts));
  policy
    .command('simulate')
    .description(
      `what provisioning the draft would newly block or allow among observed flows, or the flows of a file (nothing is stored); exits 1 when anything would be newly blocked (${remote})`,
    )
    .option('--since <duration>', 'the flows observed in this window', DEFAULT_SINCE)
    .option(
      '--file <file>',
      'simulate the flows of this file instead (- for standard input; the formats `bulkhead flows import` reads)',
    )
    .option(
      '--format <format>',
      `${FLOW_IMPORT_FORMATS.join('|')} (default from a .csv or .json name)`,
    )
    .option('--json', 'print the whole answer as JSON')
    .action((opts: SimulateOptions, cmd: Command) => simulate(io, opts, cmd));
}

/** `bulkhead import labels FILE.csv [--dry-run]`: set workload labels from a CSV file. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError, type CliIo } from '../io.js';

interface ImportAnswer {
  dryRun: boolean;
  changes: {
    row: number;
    workload: string;
    before: Record<string, string>;
    after: Record<string, string>;
    mode?: { before: string; after: string };
  }[];
  unusable: { row: number; message: string }[];
  unchanged: number;
}

/** POSTs to the control plane at BULKHEAD_URL with BULKHEAD_TOKEN; API errors become CliErrors. */
async function post(
  env: NodeJS.ProcessEnv,
  path: string,
  body: string,
  contentType: string,
): Promise<unknown> {
  const base = (env.BULKHEAD_URL ?? 'http://127.0.0.1:7480').replace(/\/+$/, '');
  const token = env.BULKHEAD_TOKEN;
  if (!token)
    throw new CliError('set BULKHEAD_TOKEN to an API key (and BULKHEAD_URL to the server)');
  let res: Response;
  try {
    res = await fetch(`${base}/api/v1${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
      body,
    });
  } catch (e) {
    const cause = (e as { cause?: Error }).cause;
    throw new CliError(
      `cannot reach the control plane at ${base}: ${(cause ?? (e as Error)).message}`,
    );
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError(`the control plane answered ${res.status} with a body that is not JSON`);
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } }).error;
    throw new CliError(`${err?.code ?? res.status}: ${err?.message ?? text}`);
  }
  return json;
}

const labelText = (labels: Record<string, string>): string =>
  Object.keys(labels).length
    ? Object.entries(labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',')
    : '(none)';

export function formatImport(answer: ImportAnswer): string {
  const lines: string[] = [];
  const verb = answer.dryRun ? 'would change' : 'changed';
  lines.push(`${verb} ${answer.changes.length} workload${answer.changes.length === 1 ? '' : 's'}:`);
  for (const c of answer.changes) {
    lines.push(`  ${c.workload} (row ${c.row}): ${labelText(c.before)} -> ${labelText(c.after)}`);
    if (c.mode) lines.push(`    mode: ${c.mode.before} -> ${c.mode.after}`);
  }
  if (answer.unchanged) lines.push(`${answer.unchanged} row(s) already matched`);
  if (answer.unusable.length) {
    lines.push(`could not use ${answer.unusable.length} row(s):`);
    for (const u of answer.unusable) lines.push(`  ${u.message}`);
  }
  if (answer.dryRun) lines.push('dry run: nothing was stored');
  return lines.join('\n');
}

export function registerImport(
  program: Command,
  io: CliIo,
  env: NodeJS.ProcessEnv = process.env,
): void {
  const cmd = program.command('import').description('import data into the control plane');
  cmd
    .command('labels')
    .description(
      'set workload labels from a CSV file: a hostname or address column, then one column per label key (an empty cell removes the label)',
    )
    .argument('<file>', 'the CSV file')
    .option('--dry-run', 'show the changes and unusable rows without storing anything')
    .action(async (file: string, opts: { dryRun?: boolean }) => {
      let csv: string;
      try {
        csv = await readFile(file, 'utf8');
      } catch (e) {
        throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
      }
      const answer = (await post(
        env,
        `/labels/import?dryRun=${opts.dryRun ? 'true' : 'false'}`,
        csv,
        'text/csv',
      )) as ImportAnswer;
      io.out(formatImport(answer));
      if (answer.unusable.length) io.err(`${answer.unusable.length} row(s) could not be used`);
    });
}

/**
 * A flow file the CLI sends to the control plane (`flows import`, `policy simulate --file`):
 * its text, read from a path or, for `-`, from standard input (a capture piped straight in),
 * and its format, from --format or a .csv/.json name.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { FLOW_IMPORT_FORMATS, type FlowImportFormat } from '../importers/flows/formats.js';
import { CliError } from './io.js';

const STDIN = '-';

/** How messages name `file`. */
export function flowFileName(file: string): string {
  return file === STDIN ? 'standard input' : file;
}

export interface FlowFile {
  readonly text: string;
  readonly format: FlowImportFormat;
  /** What the request's body is declared as. */
  readonly contentType: 'text/csv' | 'text/plain';
  /** The file as messages name it. */
  readonly name: string;
}

export async function readFlowFile(
  file: string,
  formatFlag: string | undefined,
): Promise<FlowFile> {
  const name = flowFileName(file);
  const byExtension: Record<string, FlowImportFormat> = { '.csv': 'csv', '.json': 'json' };
  const format =
    formatFlag ?? (file === STDIN ? undefined : byExtension[extname(file).toLowerCase()]);
  if (format === undefined)
    throw new CliError(`say what ${name} holds: --format ${FLOW_IMPORT_FORMATS.join('|')}`, 2);
  if (!(FLOW_IMPORT_FORMATS as readonly string[]).includes(format))
    throw new CliError(`--format: "${format}" is not one of ${FLOW_IMPORT_FORMATS.join(', ')}`, 2);
  let text: string;
  try {
    text = file === STDIN ? await readStdin() : await readFile(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${name}: ${(e as Error).message}`);
  }
  return {
    text,
    format: format as FlowImportFormat,
    contentType: format === 'csv' || format === 'netflow' ? 'text/csv' : 'text/plain',
    name,
  };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

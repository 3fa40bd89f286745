import { Command, CommanderError } from 'commander';
import { PolicyFilesError } from '../policy-as-code/parse.js';
import { registerDecide } from './commands/decide.js';
import { registerImport } from './commands/import.js';
import { registerPolicy } from './commands/policy.js';
import { registerResources } from './commands/resources.js';
import { registerServer } from './commands/server.js';
import { CliError, type CliIo } from './io.js';
import { VERSION } from '../version.js';

export function createProgram(io: CliIo): Command {
  const program = new Command('bulkhead')
    .description(
      'Bulkhead: microsegmentation. See which workloads talk, label them, write allow-list policy, enforce it on every host.',
    )
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride();
  registerDecide(program, io);
  registerImport(program, io);
  registerPolicy(program, io);
  registerServer(program, io);
  registerResources(program, io);
  for (const cmd of program.commands) {
    cmd.exitOverride().configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
    for (const sub of cmd.commands)
      sub
        .exitOverride()
        .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  }
  return program;
}

/** Runs the CLI and returns its exit code; never calls process.exit (the caller does). */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    await createProgram(io).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof CliError) {
      io.err(`bulkhead: ${e.message}`);
      return e.exitCode;
    }
    if (e instanceof PolicyFilesError) {
      io.err(e.message);
      return 1;
    }
    throw e;
  }
}

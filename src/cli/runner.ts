/**
 * A `bulkhead` program from a list of commands, and how it runs: shared by the full CLI
 * (program.ts) and the agent's own entry point (agent-main.ts), which registers only the
 * agent so that its bundle holds nothing else.
 */
import { Command, CommanderError } from 'commander';
import { CliError, type CliIo } from './io.js';
import { VERSION } from '../version.js';

/** Adds a command (or a family of them) to the program. */
export type Register = (program: Command, io: CliIo) => void;

/** A `bulkhead` program with these commands, its output through `io`. */
export function programOf(io: CliIo, registers: readonly Register[]): Command {
  const output = { writeOut: (s: string) => io.out(s), writeErr: (s: string) => io.err(s) };
  const program = new Command('bulkhead')
    .description(
      'Bulkhead: microsegmentation. See which workloads talk, label them, write allow-list policy, enforce it on every host.',
    )
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput(output)
    .exitOverride();
  for (const register of registers) register(program, io);
  for (const cmd of program.commands) {
    cmd.exitOverride().configureOutput(output);
    for (const sub of cmd.commands) sub.exitOverride().configureOutput(output);
  }
  return program;
}

/**
 * Runs `program` on `argv` and returns the exit code: usage errors 2, a CliError its own
 * code (its message printed without a stack); anything else is thrown.
 */
export async function runProgram(
  program: Command,
  argv: readonly string[],
  io: CliIo,
): Promise<number> {
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof CliError) {
      io.err(`bulkhead: ${e.message}`);
      return e.exitCode;
    }
    throw e;
  }
}

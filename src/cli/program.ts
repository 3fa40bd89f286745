import type { Command } from 'commander';
import type { CliIo } from './io.js';
import { programOf, runProgram, type Register } from './runner.js';

/**
 * Every top-level command, and where it is registered. A command's module is imported only
 * when that command runs (or when help lists them all), so `bulkhead agent` never loads the
 * control plane's stack and `bulkhead server` never loads the agent's.
 */
const COMMANDS: readonly { names: readonly string[]; load: () => Promise<Register> }[] = [
  { names: ['agent'], load: async () => (await import('./commands/agent.js')).registerAgent },
  { names: ['decide'], load: async () => (await import('./commands/decide.js')).registerDecide },
  { names: ['demo'], load: async () => (await import('./commands/demo.js')).registerDemo },
  { names: ['import'], load: async () => (await import('./commands/import.js')).registerImport },
  {
    names: ['map', 'flows'],
    load: async () => (await import('./commands/flows.js')).registerFlows,
  },
  { names: ['lab'], load: async () => (await import('./commands/lab.js')).registerLab },
  { names: ['policy'], load: async () => (await import('./commands/policy.js')).registerPolicy },
  { names: ['server'], load: async () => (await import('./commands/server.js')).registerServer },
  {
    names: ['apply', 'get', 'diff', 'provision', 'rollback'],
    load: async () => (await import('./commands/resources.js')).registerResources,
  },
  {
    names: ['workloads'],
    load: async () => (await import('./commands/workloads.js')).registerWorkloads,
  },
];

/** The commands `argv` needs: the one it names, or all of them (help, a typo). */
function commandsFor(argv: readonly string[] | undefined): typeof COMMANDS {
  const first = argv?.find((a) => !a.startsWith('-'));
  const named = COMMANDS.find((c) => first !== undefined && c.names.includes(first));
  return named ? [named] : COMMANDS;
}

/** The program, with the commands `argv` needs registered (every command without argv). */
export async function createProgram(io: CliIo, argv?: readonly string[]): Promise<Command> {
  return programOf(io, await Promise.all(commandsFor(argv).map((c) => c.load())));
}

/** Runs the CLI and returns its exit code; never calls process.exit (the caller does). */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    return await runProgram(await createProgram(io, argv), argv, io);
  } catch (e) {
    // Loaded only here: most commands never read policy files.
    const { PolicyFilesError } = await import('../policy-as-code/parse.js');
    if (e instanceof PolicyFilesError) {
      io.err(e.message);
      return 1;
    }
    throw e;
  }
}

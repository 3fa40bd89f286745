/**
 * The agent's own entry point: `bulkhead agent` and nothing else, bundled by the build into
 * dist/agent/bulkhead-agent.cjs (see agent/program.ts). It takes the same arguments as the
 * full CLI: `node bulkhead-agent.cjs agent --server URL ...`.
 */
import { registerAgentRun } from './commands/agent-run.js';
import { processIo } from './io.js';
import { programOf, runProgram } from './runner.js';

runProgram(programOf(processIo, [registerAgentRun]), process.argv.slice(2), processIo).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.exitCode = 1;
    throw e;
  },
);

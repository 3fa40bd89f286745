/**
 * `bulkhead agent` (the run command, agent-run.ts) and `bulkhead agent install` (its
 * systemd unit, which runs the agent's bundle).
 */
import { isAbsolute } from 'node:path';
import type { Command } from 'commander';
import { CliError, type CliIo } from '../io.js';
import { registerAgentRun } from './agent-run.js';

async function installCommand(
  io: CliIo,
  flags: {
    root: string;
    server?: string;
    stateDir?: string;
    activationCode?: string;
    hostname?: string;
    node?: string;
  },
): Promise<void> {
  const { install } = await import('../../agent/install.js');
  const { DEFAULT_STATE_DIR } = await import('../../agent/config.js');
  const { AgentConfigError } = await import('../../agent/errors.js');
  const { builtAgentProgram } = await import('../../agent/program.js');
  const server = flags.server ?? process.env.BULKHEAD_AGENT_SERVER;
  if (!server) throw new CliError('agent install: --server is required (the control plane URL)', 2);
  const stateDir = flags.stateDir ?? DEFAULT_STATE_DIR;
  if (!isAbsolute(stateDir))
    throw new CliError(`--state-dir: "${stateDir}" is not an absolute path`, 2);
  try {
    const written = await install({
      root: flags.root,
      server,
      stateDir,
      node: flags.node ?? process.execPath,
      program: builtAgentProgram(),
      ...(flags.activationCode ? { activationCode: flags.activationCode } : {}),
      ...(flags.hostname ? { hostname: flags.hostname } : {}),
    });
    io.out(`wrote ${written.unit}`);
    io.out(`wrote ${written.environment} (0600)`);
    io.out(`made ${written.stateDir} (0700)`);
    io.out('enable it with: systemctl daemon-reload && systemctl enable --now bulkhead-agent');
  } catch (e) {
    if (e instanceof AgentConfigError) throw new CliError(e.message, 2);
    throw e;
  }
}

export function registerAgent(program: Command, io: CliIo): void {
  const agent = registerAgentRun(program);

  agent
    .command('install')
    .description('write the systemd unit and its environment file (does not enable or start it)')
    .option('--root <dir>', 'install under this directory instead of /', '/')
    .option('--node <path>', 'the node binary the unit runs (default: this one)')
    .action(async (_flags: unknown, cmd: Command) => {
      await installCommand(
        io,
        cmd.optsWithGlobals<{
          root: string;
          server?: string;
          stateDir?: string;
          activationCode?: string;
          hostname?: string;
          node?: string;
        }>(),
      );
    });
}

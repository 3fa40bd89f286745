/**
 * `bulkhead agent`: the Linux agent (enforces the workload's policy with nftables, reports
 * inventory and flows), and `bulkhead agent install` (its systemd unit). The agent's code
 * is imported only when the command runs, so it loads nothing of the control plane.
 */
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CliError, type CliIo } from '../io.js';

interface RunFlags {
  server?: string;
  activationCode?: string;
  stateDir?: string;
  runtimeDir?: string;
  hostname?: string;
  caFile?: string;
  logLevel?: string;
  flushInterval?: string;
  heartbeatInterval?: string;
  inventoryInterval?: string;
  conntrackDumpInterval?: string;
  socketScanInterval?: string;
  reconnectMax?: string;
  spoolLimit?: string;
}

async function runCommand(flags: RunFlags): Promise<void> {
  const { agentConfig } = await import('../../agent/config.js');
  const { AgentConfigError } = await import('../../agent/errors.js');
  let config;
  try {
    config = agentConfig(flags, process.env);
  } catch (e) {
    if (e instanceof AgentConfigError) throw new CliError(e.message, 2);
    throw e;
  }
  const { runAgent } = await import('../../agent/run.js');
  try {
    await runAgent(config);
  } catch (e) {
    if (e instanceof AgentConfigError) throw new CliError(e.message, 1);
    throw e;
  }
}

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
  const server = flags.server ?? process.env.BULKHEAD_AGENT_SERVER;
  if (!server) throw new CliError('agent install: --server is required (the control plane URL)', 2);
  const stateDir = flags.stateDir ?? DEFAULT_STATE_DIR;
  if (!isAbsolute(stateDir))
    throw new CliError(`--state-dir: "${stateDir}" is not an absolute path`, 2);
  // This very CLI: dist/src/cli/commands/agent.js → dist/src/cli/main.js.
  const cli = join(dirname(dirname(fileURLToPath(import.meta.url))), 'main.js');
  try {
    const written = await install({
      root: flags.root,
      server,
      stateDir,
      node: flags.node ?? process.execPath,
      cli,
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
  const agent = program
    .command('agent')
    .description(
      'run the Linux agent: pairs once, enforces the workload policy with nftables, reports inventory and flows (root)',
    )
    .option('--server <url>', 'control plane URL (or BULKHEAD_AGENT_SERVER)')
    .option(
      '--activation-code <code>',
      'pairs the agent on first start; not needed once paired (or BULKHEAD_AGENT_ACTIVATION_CODE)',
    )
    .option(
      '--state-dir <dir>',
      'credential, last applied policy and spool (default /var/lib/bulkhead-agent; or BULKHEAD_AGENT_STATE_DIR)',
    )
    .option(
      '--runtime-dir <dir>',
      'scratch space on tmpfs (default /run/bulkhead-agent; or BULKHEAD_AGENT_RUNTIME_DIR)',
    )
    .option('--hostname <name>', "the workload's name, instead of this machine's hostname")
    .option('--ca-file <file>', 'extra CA certificates (PEM) for an https control plane')
    .option(
      '--log-level <level>',
      'fatal, error, warn, info, debug, trace or silent (default info)',
    )
    .option(
      '--flush-interval <seconds>',
      'how often flow summaries are sent, at most 10 (default 5)',
    )
    .option('--heartbeat-interval <seconds>', 'heartbeat period (default 15)')
    .option(
      '--inventory-interval <seconds>',
      'how often inventory is checked for changes (default 60)',
    )
    .option('--conntrack-dump-interval <seconds>', 'full conntrack dump period (default 30)')
    .option(
      '--socket-scan-interval <seconds>',
      'least time between socket table snapshots, taken when a connection needs its process named (default 1)',
    )
    .option('--reconnect-max <seconds>', 'longest wait between reconnection attempts (default 30)')
    .option('--spool-limit <MiB>', 'disk space for undelivered flow batches (default 64)')
    .action((flags: RunFlags) => runCommand(flags));

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

/**
 * `bulkhead agent`: runs the Linux agent (enforces the workload's policy with nftables,
 * reports inventory and flows). Its own module, free of the install command's paths, so
 * the agent's bundle (agent-main.ts) holds this and the agent and nothing else. The
 * agent's code is imported only when the command runs: `--help` loads none of it.
 */
import type { Command } from 'commander';
import { CliError } from '../io.js';

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

export function registerAgentRun(program: Command): Command {
  return program
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
}

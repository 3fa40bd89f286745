/**
 * `bulkhead agent`: the agent core with the real adapters (nft, conntrack, the host, HTTP),
 * until SIGTERM or SIGINT. Stopping leaves the firewall in force.
 */
import { readFile } from './fs.js';
import { systemConntrack } from './adapters/conntrack.js';
import { nftFirewall } from './adapters/firewall.js';
import { systemHost } from './adapters/host.js';
import { Agent } from './agent.js';
import { httpControlPlane } from './channel/http-control-plane.js';
import type { AgentConfig } from './config.js';
import { AgentConfigError, errorText } from './errors.js';
import { agentLogger } from './log.js';
import { openStateDir } from './state/state-dir.js';

/** Runs until stopped by a signal; rejects when the agent cannot go on. */
export async function runAgent(config: AgentConfig): Promise<void> {
  // The process name shows in `ps` and in the agent's own flows (ss reports it).
  process.title = 'bulkhead-agent';
  const log = agentLogger(config.logLevel);
  let ca: Buffer | undefined;
  if (config.caFile) {
    try {
      ca = await readFile(config.caFile);
    } catch (e) {
      throw new AgentConfigError(`--ca-file: cannot read ${config.caFile}: ${errorText(e)}`);
    }
  }
  const state = await openStateDir(config.stateDir, {
    maxBytes: config.spoolLimitBytes,
    maxItems: 100_000,
  });
  const agent = new Agent(config, {
    firewall: nftFirewall(config.runtimeDir),
    conntrack: systemConntrack(config.runtimeDir),
    host: systemHost(),
    state,
    log,
    connect: (credential) =>
      httpControlPlane({ server: config.server, credential, ...(ca ? { ca } : {}) }),
  });
  const stop = (signal: string) => {
    log.info({ signal }, 'stopping; the firewall stays in force');
    void agent.stop();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  log.info(
    { server: config.server, stateDir: config.stateDir, hostname: config.hostname },
    'bulkhead agent starting',
  );
  try {
    await agent.run();
  } catch (e) {
    log.fatal({ err: errorText(e) }, 'agent stopped');
    await agent.stop();
    throw e;
  }
}

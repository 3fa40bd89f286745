/**
 * `bulkhead agent install`: the systemd unit that runs the agent, and the environment file
 * it reads its settings from (it may hold the activation code, so 0600). Written under a
 * root directory (default `/`), atomically; nothing is enabled or started.
 *
 * deploy/bulkhead-agent.service is `unitFile(UNIT_DEFAULTS)`, checked by a test.
 */
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { AgentConfigError } from './errors.js';
import { DEFAULT_STATE_DIR } from './config.js';

export const UNIT_PATH = 'etc/systemd/system/bulkhead-agent.service';
export const ENV_PATH = 'etc/bulkhead/agent.env';

export interface UnitOptions {
  /** The node binary. */
  readonly node: string;
  /** The agent's program (program.ts: the bundle the build makes). */
  readonly program: string;
  readonly stateDir: string;
  /** Absolute path of the environment file on the target system. */
  readonly environmentFile: string;
}

/** The node flags the agent should run with (the lab uses them too). */
export const NODE_FLAGS = ['--max-semi-space-size=1', '--no-opt', '--no-sparkplug'] as const;

export const UNIT_DEFAULTS: UnitOptions = {
  node: '/usr/bin/node',
  program: '/usr/lib/node_modules/bulkhead/dist/agent/bulkhead-agent.cjs',
  stateDir: DEFAULT_STATE_DIR,
  environmentFile: `/${ENV_PATH}`,
};

/** A value that is safe on one line of a unit or environment file. */
function plain(what: string, value: string): string {
  if (!/^[\x21-\x7e]+$/.test(value) || /["'\\$`%]/.test(value))
    throw new AgentConfigError(
      `${what}: "${value}" has characters a systemd file cannot hold safely (spaces, quotes, $, %, \\)`,
    );
  return value;
}

export function unitFile(o: UnitOptions): string {
  const stateDir = plain('--state-dir', o.stateDir);
  return `# Bulkhead agent: enforces this host's segmentation policy with nftables and reports
# its flows to the control plane. Settings: ${plain('environment file', o.environmentFile)}
[Unit]
Description=Bulkhead agent (host firewall enforcement and flow telemetry)
After=network-online.target nftables.service
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile=${o.environmentFile}
# A small young generation and no compiler but the interpreter keep the agent near its
# 50 MB memory target (about 11 MB less); its hot path costs a little more for it.
ExecStart=${plain('node', o.node)} ${NODE_FLAGS.join(' ')} ${plain('program', o.program)} agent --state-dir ${stateDir}
Restart=always
RestartSec=2
# Stopping the agent leaves its firewall table in force: the host never opens because the
# agent is down, and on start the agent re-applies its last policy before it connects.
KillMode=mixed
TimeoutStopSec=15
UMask=0077
# tmpfs scratch space (the conntrack events and the ruleset watch pass through it).
RuntimeDirectory=bulkhead-agent
RuntimeDirectoryMode=0700
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${stateDir}
ProtectHome=read-only
PrivateTmp=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# nft and conntrack need NET_ADMIN; naming the process behind a socket needs to read
# every process's /proc entries.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_PTRACE CAP_DAC_READ_SEARCH
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`;
}

export interface EnvironmentOptions {
  readonly server: string;
  readonly activationCode?: string;
  readonly hostname?: string;
}

export function environmentFile(o: EnvironmentOptions): string {
  const lines = [
    '# Bulkhead agent settings, read by bulkhead-agent.service. Flags override these.',
    '# The activation code is used once, to pair; afterwards the credential in the state',
    '# directory is all the agent needs, and the code can be removed from this file.',
    `BULKHEAD_AGENT_SERVER=${plain('--server', o.server)}`,
  ];
  if (o.activationCode)
    lines.push(`BULKHEAD_AGENT_ACTIVATION_CODE=${plain('--activation-code', o.activationCode)}`);
  if (o.hostname) lines.push(`BULKHEAD_AGENT_HOSTNAME=${plain('--hostname', o.hostname)}`);
  return `${lines.join('\n')}\n`;
}

async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

export interface InstallOptions extends EnvironmentOptions {
  readonly root: string;
  readonly node: string;
  readonly program: string;
  readonly stateDir: string;
}

/**
 * Writes the unit and the environment file under `root`, and makes the state directory
 * (0700; the unit's file system is read-only but for it); returns their paths.
 */
export async function install(
  o: InstallOptions,
): Promise<{ unit: string; environment: string; stateDir: string }> {
  const unit = join(o.root, UNIT_PATH);
  const environment = join(o.root, ENV_PATH);
  const stateDir = join(o.root, o.stateDir);
  const unitText = unitFile({
    node: o.node,
    program: o.program,
    stateDir: o.stateDir,
    environmentFile: `/${ENV_PATH}`,
  });
  const envText = environmentFile(o);
  await writeAtomic(unit, unitText, 0o644);
  await writeAtomic(environment, envText, 0o600);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await chmod(stateDir, 0o700);
  return { unit, environment, stateDir };
}

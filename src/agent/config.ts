/**
 * The agent's settings: flags first, then BULKHEAD_AGENT_* environment variables (what the
 * systemd unit's environment file sets), then defaults. Checked here, once, so the agent
 * never starts with an interval it cannot keep.
 *
 * Pure: the environment is given.
 */
import { AgentConfigError } from './errors.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULT_STATE_DIR = '/var/lib/bulkhead-agent';
export const DEFAULT_RUNTIME_DIR = '/run/bulkhead-agent';

export interface AgentConfig {
  readonly server: string;
  readonly activationCode: string | null;
  readonly stateDir: string;
  /** Scratch space on tmpfs (the conntrack events and the ruleset watch pass through pipes there). */
  readonly runtimeDir: string;
  /** Overrides the machine's hostname as the workload's name. */
  readonly hostname: string | null;
  readonly caFile: string | null;
  readonly logLevel: LogLevel;
  readonly flushIntervalMs: number;
  readonly heartbeatIntervalMs: number;
  readonly inventoryIntervalMs: number;
  readonly conntrackDumpIntervalMs: number;
  readonly socketScanIntervalMs: number;
  readonly reconnectMaxMs: number;
  readonly spoolLimitBytes: number;
}

/** The flags as commander hands them over (all text). */
export interface AgentFlags {
  readonly server?: string;
  readonly activationCode?: string;
  readonly stateDir?: string;
  readonly runtimeDir?: string;
  readonly hostname?: string;
  readonly caFile?: string;
  readonly logLevel?: string;
  readonly flushInterval?: string;
  readonly heartbeatInterval?: string;
  readonly inventoryInterval?: string;
  readonly conntrackDumpInterval?: string;
  readonly socketScanInterval?: string;
  readonly reconnectMax?: string;
  readonly spoolLimit?: string;
}

interface Range {
  readonly flag: string;
  readonly min: number;
  readonly max: number;
  readonly fallback: number;
}

export const INTERVALS = {
  flushInterval: { flag: '--flush-interval', min: 0.2, max: 10, fallback: 5 },
  heartbeatInterval: { flag: '--heartbeat-interval', min: 0.2, max: 300, fallback: 15 },
  inventoryInterval: { flag: '--inventory-interval', min: 1, max: 3600, fallback: 60 },
  conntrackDumpInterval: { flag: '--conntrack-dump-interval', min: 1, max: 3600, fallback: 30 },
  socketScanInterval: { flag: '--socket-scan-interval', min: 0.1, max: 60, fallback: 1 },
  reconnectMax: { flag: '--reconnect-max', min: 0.5, max: 600, fallback: 30 },
} as const satisfies Record<string, Range>;

function seconds(text: string | undefined, range: Range): number {
  if (text === undefined || text === '') return range.fallback * 1000;
  if (!/^\d+(\.\d+)?$/.test(text.trim()))
    throw new AgentConfigError(`${range.flag}: "${text}" is not a number of seconds`);
  const value = Number(text);
  if (value < range.min || value > range.max)
    throw new AgentConfigError(`${range.flag}: ${value} s is outside ${range.min}-${range.max} s`);
  return Math.round(value * 1000);
}

const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export function agentConfig(flags: AgentFlags, env: NodeJS.ProcessEnv = {}): AgentConfig {
  const pick = (flag: string | undefined, name: string): string | undefined =>
    flag ?? (env[`BULKHEAD_AGENT_${name}`] || undefined);
  const server = pick(flags.server, 'SERVER');
  if (!server)
    throw new AgentConfigError(
      '--server is required: the control plane URL, e.g. https://bulkhead.example:7480 (or BULKHEAD_AGENT_SERVER)',
    );
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new AgentConfigError(`--server: "${server}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new AgentConfigError(`--server: "${server}" is not an http:// or https:// URL`);
  const hostname = pick(flags.hostname, 'HOSTNAME') ?? null;
  if (hostname !== null && !HOSTNAME.test(hostname))
    throw new AgentConfigError(
      `--hostname: "${hostname}" is not a workload name (1-128 letters, digits, ".", "_", ":" or "-")`,
    );
  const logLevel = pick(flags.logLevel, 'LOG_LEVEL') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    throw new AgentConfigError(`--log-level: "${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`);
  const spoolText = pick(flags.spoolLimit, 'SPOOL_LIMIT') ?? '64';
  if (!/^\d+$/.test(spoolText) || Number(spoolText) < 1 || Number(spoolText) > 102_400)
    throw new AgentConfigError(`--spool-limit: "${spoolText}" is not a size in MiB (1-102400)`);
  return {
    server: url.toString().replace(/\/+$/, ''),
    activationCode: pick(flags.activationCode, 'ACTIVATION_CODE') ?? null,
    stateDir: pick(flags.stateDir, 'STATE_DIR') ?? DEFAULT_STATE_DIR,
    runtimeDir: pick(flags.runtimeDir, 'RUNTIME_DIR') ?? DEFAULT_RUNTIME_DIR,
    hostname,
    caFile: pick(flags.caFile, 'CA_FILE') ?? null,
    logLevel: logLevel as LogLevel,
    flushIntervalMs: seconds(flags.flushInterval, INTERVALS.flushInterval),
    heartbeatIntervalMs: seconds(flags.heartbeatInterval, INTERVALS.heartbeatInterval),
    inventoryIntervalMs: seconds(flags.inventoryInterval, INTERVALS.inventoryInterval),
    conntrackDumpIntervalMs: seconds(flags.conntrackDumpInterval, INTERVALS.conntrackDumpInterval),
    socketScanIntervalMs: seconds(flags.socketScanInterval, INTERVALS.socketScanInterval),
    reconnectMaxMs: seconds(flags.reconnectMax, INTERVALS.reconnectMax),
    spoolLimitBytes: Number(spoolText) * 1024 * 1024,
  };
}

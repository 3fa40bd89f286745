/**
 * The agent's log: JSON lines on stdout, which journald or the lab keeps, in the shape pino
 * writes (`level`, `time`, `component`, `pid`, `msg`, then the fields). Written here rather
 * than with pino because the agent logs a few lines a minute and every megabyte of its
 * resident memory counts on every host (pino and its stream machinery cost about 3 MB).
 */
import type { LogLevel } from './config.js';

export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  fatal(fields: LogFields | string, msg?: string): void;
  error(fields: LogFields | string, msg?: string): void;
  warn(fields: LogFields | string, msg?: string): void;
  info(fields: LogFields | string, msg?: string): void;
  debug(fields: LogFields | string, msg?: string): void;
}

const RANK: Record<LogLevel, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

export function agentLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => void process.stdout.write(line),
): Logger {
  const at =
    (name: 'fatal' | 'error' | 'warn' | 'info' | 'debug') =>
    (fields: LogFields | string, msg?: string): void => {
      if (RANK[name] < RANK[level]) return;
      const [extra, text] = typeof fields === 'string' ? [{}, fields] : [fields, msg];
      const entry = {
        level: name,
        time: new Date().toISOString(),
        component: 'bulkhead-agent',
        pid: process.pid,
        ...(text !== undefined ? { msg: text } : {}),
        ...extra,
      };
      write(`${JSON.stringify(entry, (_k, v: unknown) => (v instanceof Error ? v.message : v))}\n`);
    };
  return {
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
  };
}

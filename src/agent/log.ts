/** The agent's log: JSON lines on stdout (pino), which journald or the lab keeps. */
import pino, { type Logger } from 'pino';
import type { LogLevel } from './config.js';

export function agentLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { component: 'bulkhead-agent', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

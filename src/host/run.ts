/**
 * Runs a host command with an argument array (never a shell string) and optional stdin.
 * Every platform adapter (nft, ip, conntrack) goes through here, so no input ever reaches
 * a shell and every failure carries the command and what it printed.
 */
import { spawn } from 'node:child_process';

export interface RunOptions {
  readonly input?: string;
  readonly timeoutMs?: number;
  /** Exit codes that are not failures (default: only 0). */
  readonly okCodes?: readonly number[];
  /** Told the child's pid once it runs (the agent recognises its own nft transactions by it). */
  readonly onSpawn?: (pid: number) => void;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly command: readonly string[],
    readonly result: RunResult | null,
    reason: string,
  ) {
    super(`${command.join(' ')}: ${reason}`);
    this.name = 'CommandError';
  }
}

export function run(command: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = command;
  if (!file) throw new Error('run: empty command');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    if (child.pid !== undefined) options.onSpawn?.(child.pid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 30_000);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CommandError(command, null, e.message));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const result = {
        code: code ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (timedOut) reject(new CommandError(command, result, 'timed out'));
      else if (!(options.okCodes ?? [0]).includes(result.code)) {
        reject(
          new CommandError(
            command,
            result,
            `exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`,
          ),
        );
      } else resolve(result);
    });
    child.stdin.on('error', () => {
      /* the command may exit before reading all its input; its exit code says what happened */
    });
    child.stdin.end(options.input ?? '');
  });
}

/** True when a program is on PATH (for tests that need a kernel tool). */
export async function hasCommand(name: string): Promise<boolean> {
  try {
    await run(['sh', '-c', 'command -v "$1"', 'sh', name]);
    return true;
  } catch {
    return false;
  }
}

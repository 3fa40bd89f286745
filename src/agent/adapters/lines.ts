/**
 * Child processes whose output is read line by line while they run (`conntrack -E`,
 * `nft monitor`, a `conntrack -L` dump too large to hold as one string). Like
 * src/host/run.ts: an argument array, never a shell.
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readSync,
  readdirSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { run } from '../../host/run.js';

export interface ChildExit {
  readonly code: number | null;
  readonly signal: string | null;
  /** The last lines it wrote to stderr, for the error message. */
  readonly stderr: string;
}

export interface LineStream {
  /** Ends the child (SIGTERM). */
  stop(): void;
  /** Settles when the child has exited, for whatever reason; rejects if it could not start. */
  readonly ended: Promise<ChildExit>;
}

/** Calls `onLine` for each complete line of a chunked text stream. */
export function lineSplitter(onLine: (line: string) => void): (chunk: string) => void {
  let carry = '';
  return (chunk) => {
    let start = 0;
    let nl = chunk.indexOf('\n');
    // Only the line split across chunks is joined: joining whole chunks would copy every
    // chunk once more (thousands of lines a second come through here).
    if (carry !== '' && nl >= 0) {
      onLine(carry + chunk.slice(0, nl));
      carry = '';
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
    }
    for (; nl >= 0; nl = chunk.indexOf('\n', start)) {
      onLine(chunk.slice(start, nl));
      start = nl + 1;
    }
    carry += chunk.slice(start);
    // A line never grows without bound: a runaway child cannot exhaust the agent's memory.
    if (carry.length > 1 << 20) carry = '';
  };
}

export function streamLines(
  command: readonly string[],
  onLine: (line: string) => void,
  onStderrLine: (line: string) => void = () => undefined,
): LineStream {
  const [file, ...args] = command;
  if (!file) throw new Error('streamLines: empty command');
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const recent: string[] = [];
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  // Not paused to gather lines: a conntrack that cannot write loses events (ENOBUFS).
  child.stdout.on('data', lineSplitter(onLine));
  child.stderr.on(
    'data',
    lineSplitter((line) => {
      recent.push(line);
      if (recent.length > 5) recent.shift();
      onStderrLine(line);
    }),
  );
  const ended = new Promise<ChildExit>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`${command.join(' ')}: ${e.message}`)));
    child.once('close', (code, signal) => resolve({ code, signal, stderr: recent.join('\n') }));
  });
  // Callers watch `ended`; this keeps an unobserved failure from crashing the process.
  ended.catch(() => undefined);
  return {
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
    ended,
  };
}

/**
 * Runs a command to completion, streaming its lines; rejects unless it exits 0. With `fifo`,
 * through a named pipe (see `streamLinesViaFifo`), for output of many lines.
 */
export async function eachLine(
  command: readonly string[],
  onLine: (line: string) => void,
  fifo?: FifoStreamOptions,
): Promise<void> {
  const stream = fifo
    ? streamLinesViaFifo(command, onLine, () => undefined, fifo)
    : streamLines(command, onLine);
  const exit = await stream.ended;
  if (exit.code !== 0)
    throw new Error(
      `${command.join(' ')}: exited ${exit.code ?? exit.signal}${exit.stderr ? `: ${exit.stderr}` : ''}`,
    );
}

/**
 * The path of this process's named pipe `name` in `dir` (made if missing), after removing
 * the pipes of that name that agents killed before they could clean up left behind.
 */
export function fifoPath(dir: string, name: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pattern = new RegExp(`^${name}\\.(\\d+)\\.fifo$`);
  for (const file of readdirSync(dir)) {
    const m = pattern.exec(file);
    if (m && Number(m[1]) !== process.pid && !existsSync(`/proc/${m[1]}`))
      rmSync(join(dir, file), { force: true });
  }
  return join(dir, `${name}.${process.pid}.fifo`);
}

export interface FifoStreamOptions {
  /** Where to make the named pipe the child writes to (on tmpfs; one per stream). */
  readonly path: string;
  /** How often the pipe is read when it is quiet (sooner while lines pour in). */
  readonly pollMs?: number;
  /**
   * The child's stderr goes into the same pipe, its lines to `onLine` in the order the
   * child wrote them (a warning then belongs to the event printed around it).
   */
  readonly mergeStderr?: boolean;
}

/**
 * Like `streamLines`, for a child that writes a line per event at a high rate (conntrack:
 * thousands a second). Through node's stream machinery each line would cost more than
 * everything else the agent does with it; here the child writes into a named pipe that the
 * agent drains with plain reads every few tens of milliseconds, many lines at a time.
 *
 * A named pipe, not a file: when the agent dies, the child's next write fails (SIGPIPE)
 * and it exits too, instead of filling tmpfs behind a dead agent. The pipe holds 64 KiB;
 * the drain comes sooner while it fills fast, and a child that still outruns it waits
 * while the kernel buffers its events (conntrack says ENOBUFS if even that overflows).
 */
export function streamLinesViaFifo(
  command: readonly string[],
  onLine: (line: string) => void,
  onStderrLine: (line: string) => void,
  options: FifoStreamOptions,
): LineStream {
  const [file, ...args] = command;
  if (!file) throw new Error('streamLinesViaFifo: empty command');
  const { path } = options;
  const pollMs = options.pollMs ?? 50;
  let stopped = false;
  let kill: () => void = () => {
    stopped = true;
  };
  const ended = (async (): Promise<ChildExit> => {
    rmSync(path, { force: true });
    await run(['mkfifo', '-m', '600', path]);
    // The reader first (non-blocking: the writer does not exist yet), then the writer,
    // which a FIFO opens at once because a reader is there. The child gets the writer.
    const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(path, constants.O_WRONLY);
    let child;
    try {
      if (stopped) throw new Error(`${command.join(' ')}: stopped before it started`);
      child = spawn(file, args, {
        stdio: ['ignore', writer, options.mergeStderr ? writer : 'pipe'],
      });
    } catch (e) {
      closeSync(reader);
      rmSync(path, { force: true });
      throw e;
    } finally {
      closeSync(writer);
    }
    const running = child;
    kill = () => {
      if (running.exitCode === null && running.signalCode === null) running.kill('SIGTERM');
    };
    const recent: string[] = [];
    running.stderr?.setEncoding('utf8');
    running.stderr?.on(
      'data',
      lineSplitter((line) => {
        recent.push(line);
        if (recent.length > 5) recent.shift();
        onStderrLine(line);
      }),
    );
    const split = lineSplitter(onLine);
    // Pieces of a quarter of the pipe (which holds 64 KiB): each piece's text stays alive
    // while its lines are handled, and the agent's young generation is small.
    const buffer = Buffer.allocUnsafe(16 * 1024);
    let open = true;
    /** Reads what the pipe holds; the number of bytes read. */
    const drain = (): number => {
      let total = 0;
      while (open) {
        let n: number;
        try {
          n = readSync(reader, buffer, 0, buffer.length, null);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break;
          throw e;
        }
        if (n <= 0) break;
        total += n;
        split(buffer.toString('latin1', 0, n));
      }
      return total;
    };
    let timer: NodeJS.Timeout | undefined;
    const schedule = (delay: number) => {
      timer = setTimeout(() => {
        let read = 0;
        try {
          read = drain();
        } catch (e) {
          onStderrLine(`reading ${path}: ${(e as Error).message}`);
        }
        // A quarter of the pipe in one interval: come back sooner.
        if (open) schedule(read > 16 * 1024 ? Math.max(5, pollMs / 5) : pollMs);
      }, delay);
    };
    schedule(pollMs);
    const exit = await new Promise<ChildExit>((resolve, reject) => {
      running.once('error', (e) => reject(new Error(`${command.join(' ')}: ${e.message}`)));
      running.once('close', (code, signal) => resolve({ code, signal, stderr: recent.join('\n') }));
    }).finally(() => {
      clearTimeout(timer);
      try {
        drain();
      } catch {
        // the last lines go with the pipe; the dump recounts them
      }
      open = false;
      closeSync(reader);
      rmSync(path, { force: true });
    });
    return exit;
  })();
  ended.catch(() => undefined);
  return { stop: () => kill(), ended };
}

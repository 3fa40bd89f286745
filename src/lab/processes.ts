/**
 * The lab's long-lived processes: started detached (their own session, so they outlive the
 * `bulkhead lab up` that started them and a closed terminal), logging to a file, and found
 * again later by pid AND kernel start time, so a pid the kernel has since given to another
 * program is never taken for a lab process, let alone killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { LabError } from './errors.js';
import type { ProcessRecord } from './state.js';

export interface DaemonSpec {
  /** What it is, in messages: `nginx on web-1`, `agent on db-1`, `relay`. */
  readonly what: string;
  /** The namespace to run in; none for the root namespace. */
  readonly netns?: string;
  readonly command: readonly string[];
  readonly log: string;
  /** The comm the process will have (the executable's file name). */
  readonly comm: string;
  /**
   * Wait for the program's first stdout line: `ready ...` means it is serving (the words
   * after `ready` are returned), anything else is why it failed. Without it, the process
   * counts as started once it runs.
   */
  readonly waitReady?: boolean;
  readonly readyTimeoutMs?: number;
  /** The process's whole environment; by default this process's. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface Daemon {
  readonly record: ProcessRecord;
  /** What the program said after `ready` (e.g. the port it bound). */
  readonly ready: string;
  /** The running child, for watching an early exit; forget it with `release`. */
  readonly child: ChildProcess;
  release(): void;
}

/** `/proc/PID/stat`: start time (field 22) and state (field 3), or null when gone. */
async function procStat(pid: number): Promise<{ startTime: number; state: string } | null> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The comm (field 2) is in parentheses and may hold spaces: count fields after the last ")".
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const startTime = Number(fields[19]);
  return Number.isFinite(startTime) ? { startTime, state: fields[0] ?? '?' } : null;
}

/** True when the recorded process still runs (and is the same process, not a reused pid). */
export async function isAlive(p: Pick<ProcessRecord, 'pid' | 'startTime'>): Promise<boolean> {
  const stat = await procStat(p.pid);
  return stat !== null && stat.startTime === p.startTime && stat.state !== 'Z';
}

/** Starts a detached daemon; resolves once it runs (and, with waitReady, serves). */
export async function startDaemon(spec: DaemonSpec): Promise<Daemon> {
  const argv = spec.netns
    ? ['ip', 'netns', 'exec', spec.netns, ...spec.command]
    : [...spec.command];
  const logFd = openSync(spec.log, 'a');
  let child: ChildProcess;
  try {
    // `ip netns exec` execs the command in place, so the child's pid is the daemon's.
    child = spawn(argv[0]!, argv.slice(1), {
      detached: true,
      env: spec.env ?? process.env,
      // Both streams go to the log: the agent logs JSON lines on stdout.
      stdio: ['ignore', spec.waitReady ? 'pipe' : logFd, logFd],
    });
  } finally {
    closeSync(logFd);
  }
  const spawned = await new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid!));
    child.once('error', (e) =>
      reject(
        new LabError(`${spec.what}: cannot start ${argv[0]}: ${e.message}`, { argv }, { cause: e }),
      ),
    );
  });
  const stat = await procStat(spawned);
  const record: ProcessRecord = {
    pid: spawned,
    startTime: stat?.startTime ?? -1,
    comm: spec.comm,
    log: spec.log,
  };
  let ready = '';
  if (spec.waitReady) {
    try {
      ready = await readyLine(child, spec);
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
  }
  return {
    record,
    ready,
    child,
    release() {
      child.stdout?.destroy();
      child.removeAllListeners();
      child.unref();
    },
  };
}

function readyLine(child: ChildProcess, spec: DaemonSpec): Promise<string> {
  const timeoutMs = spec.readyTimeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const fail = (why: string) => {
      clearTimeout(timer);
      lines.close();
      reject(
        new LabError(`${spec.what} did not start: ${why} (log: ${spec.log})`, { log: spec.log }),
      );
    };
    const timer = setTimeout(() => fail(`not ready after ${timeoutMs} ms`), timeoutMs);
    lines.once('line', (line) => {
      clearTimeout(timer);
      lines.close();
      if (line.startsWith('ready')) resolve(line.slice('ready'.length).trim());
      else fail(line);
    });
    child.once('exit', (code, signal) => fail(`exited (${signal ?? code ?? '?'})`));
  });
}

/** Waits until none of the processes runs, or the time is up; returns those still running. */
async function waitGone(records: readonly ProcessRecord[], ms: number): Promise<ProcessRecord[]> {
  const deadline = Date.now() + ms;
  let left = [...records];
  while (left.length) {
    const alive = await Promise.all(left.map(isAlive));
    left = left.filter((_, i) => alive[i]);
    if (!left.length || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return left;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    // Already gone between the check and the signal: that is what we wanted.
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/**
 * Stops processes: SIGTERM, then SIGKILL for those still running after `graceMs`. Only
 * processes that are still the recorded ones get a signal. Returns how many were running.
 */
export async function stopProcesses(
  records: readonly ProcessRecord[],
  graceMs = 2000,
): Promise<number> {
  const alive = await Promise.all(records.map(isAlive));
  const running = records.filter((_, i) => alive[i]);
  for (const r of running) signal(r.pid, 'SIGTERM');
  const stubborn = await waitGone(running, graceMs);
  for (const r of stubborn) signal(r.pid, 'SIGKILL');
  const survivors = await waitGone(stubborn, 2000);
  if (survivors.length)
    throw new LabError(
      `could not stop ${survivors.map((s) => `${s.comm} (pid ${s.pid})`).join(', ')}`,
      { pids: survivors.map((s) => s.pid) },
    );
  return running.length;
}

/** The record of a running pid found some other way (e.g. `ip netns pids`). */
export async function recordOf(pid: number): Promise<ProcessRecord | null> {
  const stat = await procStat(pid);
  if (!stat) return null;
  let comm = '?';
  try {
    comm = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
  } catch {
    // It exited meanwhile; the start time is enough to leave it alone.
  }
  return { pid, startTime: stat.startTime, comm, log: '' };
}

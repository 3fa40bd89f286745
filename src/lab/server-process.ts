/**
 * A control plane in a process of its own (`bulkhead server` on the embedded store), for
 * the end-to-end tests and benchmarks that must stop it, start it again on the same data,
 * or measure it apart from themselves.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The built CLI: beside this module once built (dist/src/lab/), or in dist/ when this
 * module runs from source (tests), which needs `npm run build` first.
 */
function cliMain(): string {
  const built = resolve(import.meta.dirname, '../cli/main.js');
  return existsSync(built) ? built : resolve(import.meta.dirname, '../../dist/src/cli/main.js');
}

/** A TCP port nothing listens on right now, on loopback. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

export interface ServerProcessOptions {
  readonly port: number;
  /** The embedded store's directory; `server.log` is written there too. */
  readonly dataDir: string;
  /** The owner API key a first start creates. */
  readonly ownerKey: string;
  /** How long `start` waits for /api/v1/health (default 30 s). */
  readonly startTimeoutMs?: number;
}

export class ServerProcess {
  private child: ChildProcess | null = null;
  constructor(readonly options: ServerProcessOptions) {}

  get url(): string {
    return `http://127.0.0.1:${this.options.port}`;
  }
  get dataDir(): string {
    return this.options.dataDir;
  }
  get pid(): number {
    return this.child?.pid ?? -1;
  }
  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts it and waits until it answers its health check. */
  async start(): Promise<void> {
    const { port, dataDir, ownerKey } = this.options;
    await mkdir(dataDir, { recursive: true });
    const log = openSync(join(dataDir, 'server.log'), 'a');
    // SQLite in the data directory, whatever the caller's environment says.
    const env: NodeJS.ProcessEnv = { ...process.env, BULKHEAD_OWNER_KEY: ownerKey };
    for (const k of ['DATABASE_URL', 'BULKHEAD_DATABASE_SCHEMA', 'BULKHEAD_SYSLOG']) delete env[k];
    let child: ChildProcess;
    try {
      child = spawn(
        process.execPath,
        [cliMain(), 'server', '--port', String(port), '--data-dir', dataDir],
        { env, stdio: ['ignore', log, log] },
      );
    } finally {
      closeSync(log);
    }
    this.child = child;
    const timeout = this.options.startTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeout;
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`the control plane exited ${child.exitCode} (log: ${dataDir}/server.log)`);
      const ok = await fetch(`${this.url}/api/v1/health`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) return;
      if (Date.now() > deadline)
        throw new Error(
          `the control plane did not answer in ${timeout / 1000} s (log: ${dataDir})`,
        );
      await sleep(200);
    }
  }

  /** Synchronous, for process exit handlers. */
  kill(): void {
    if (this.running) this.child!.kill('SIGKILL');
  }

  /** SIGTERM, then SIGKILL if it has not exited in 10 s. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

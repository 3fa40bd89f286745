/**
 * The prober: one process inside a namespace that sends probes from there and reports, per
 * probe, what came back (see sockets-source.ts for the evidence). It can also serve
 * listeners, which the kernel tests use (one process per host both serves and probes); the
 * lab's own services are separate daemons with their own process names.
 *
 * Protocol: config (the listeners) as the last argument; requests `{id, probes, timeoutMs,
 * concurrency}` as JSON lines on stdin; `{type: 'ready'}` once listening, then
 * `{type: 'results', id, results}` per request on stdout. It exits when stdin closes, so it
 * never outlives its parent.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { LabError } from './errors.js';
import { SOCKETS_SOURCE } from './sockets-source.js';

export type ProbeProtocol = 'tcp' | 'udp';

export interface Probe {
  /** Source address; it must be on the prober's host. */
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly proto: ProbeProtocol;
}

export type ProbeEvidence =
  'connected' | 'replied' | 'timeout' | 'refused-locally' | 'refused' | 'unreachable';

/** What came back for one probe: evidence, or an error no firewall explains. */
export interface ProbeAnswer {
  readonly evidence?: ProbeEvidence;
  readonly error?: string;
}

export interface ProberListener {
  readonly address: string;
  readonly port: number;
  readonly proto: ProbeProtocol;
}

const PROBER_PROGRAM = String.raw`${SOCKETS_SOURCE}
const readline = require('node:readline');
const config = JSON.parse(process.argv[process.argv.length - 1]);
const send = (m) => process.stdout.write(JSON.stringify(m) + '\n');
(async () => {
  try {
    for (const l of config.listen)
      await (l.proto === 'tcp' ? listenTcp(l.address, l.port, 'bulkhead-probe\n') : listenUdp(l.address, l.port));
  } catch (e) {
    send({ type: 'fatal', message: String(e) });
    process.exit(1);
  }
  send({ type: 'ready' });
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', async (line) => {
    const req = JSON.parse(line);
    send({ type: 'results', id: req.id, results: await probeAll(req.probes, req.timeoutMs, req.concurrency) });
  });
  lines.on('close', () => process.exit(0));
})();
`;

type ProberMessage =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | { type: 'results'; id: number; results: ProbeAnswer[] };

export interface ProberOptions {
  /** The executable to run (node, or a symlink to it that names the process). */
  readonly program?: string;
  readonly listen?: readonly ProberListener[];
}

/** The parent's handle on one namespace's prober process. */
export class Prober {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: ProbeAnswer[]) => void; reject: (e: Error) => void }
  >();
  private readonly ready: Promise<void>;
  private stderr = '';
  private exited = false;

  private constructor(
    readonly host: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    child.stderr.on('data', (b: Buffer) => (this.stderr += b.toString('utf8')));
    this.ready = new Promise((resolve, reject) => {
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        const message = JSON.parse(line) as ProberMessage;
        if (message.type === 'ready') resolve();
        else if (message.type === 'fatal')
          reject(new LabError(`prober on ${host}: ${message.message}`, { host }));
        else this.pending.get(message.id)?.resolve(message.results);
      });
      child.on('error', (e) => {
        this.exited = true;
        reject(
          new LabError(`prober on ${host} did not start: ${e.message}`, { host }, { cause: e }),
        );
      });
      child.on('exit', (code) => {
        this.exited = true;
        const why = new LabError(`prober on ${host} exited (${code}): ${this.stderr.trim()}`, {
          host,
        });
        reject(why);
        for (const waiter of this.pending.values()) waiter.reject(why);
        this.pending.clear();
      });
    });
  }

  /** Starts a prober inside `netns` (named `host` in messages) and waits until it listens. */
  static async start(netns: string, host: string, options: ProberOptions = {}): Promise<Prober> {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        netns,
        options.program ?? process.execPath,
        '-e',
        PROBER_PROGRAM,
        JSON.stringify({ listen: options.listen ?? [] }),
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const prober = new Prober(host, child);
    await prober.ready;
    return prober;
  }

  probe(probes: readonly Probe[], timeoutMs: number, concurrency: number): Promise<ProbeAnswer[]> {
    if (this.exited)
      return Promise.reject(
        new LabError(`prober on ${this.host} is not running: ${this.stderr.trim()}`, {
          host: this.host,
        }),
      );
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        resolve: (results) => {
          this.pending.delete(id);
          resolve(results);
        },
        reject,
      });
      this.child.stdin.write(`${JSON.stringify({ id, probes, timeoutMs, concurrency })}\n`);
    });
  }

  /** Stops the prober at once; safe to call twice. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGKILL');
    await gone;
  }
}

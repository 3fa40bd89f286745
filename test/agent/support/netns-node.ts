/**
 * Node helpers inside network namespaces for the agent's namespace test: listeners under a
 * process name of their choosing (what the agent must report as the flow's process), and
 * connection probes from a named process. Every address must be in the lab's ranges.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { run } from '../../../src/host/run.js';

const LAB = /^(198\.(18|19)\.\d{1,3}\.\d{1,3}|2001:db8::[0-9a-f:]*)$/i;

function labOnly(address: string): string {
  if (!LAB.test(address)) throw new Error(`${address} is outside the lab ranges`);
  return address;
}

const LISTENER = String.raw`
const net = require('node:net');
const [title, address, ...ports] = process.argv.slice(1);
process.title = title;
const sockets = new Set();
Promise.all(ports.map((p) => new Promise((resolve, reject) => {
  const server = net.createServer((s) => { sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)); s.resume(); });
  server.once('error', reject);
  server.listen({ host: address, port: Number(p) }, resolve);
}))).then(() => console.log('ready'), (e) => { console.error(e.message); process.exit(1); });
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

const PROBE = String.raw`
const net = require('node:net');
const [title, from, to, port, count, timeoutMs, holdMs] = process.argv.slice(1);
process.title = title;
const one = () => new Promise((resolve) => {
  const s = net.connect({ host: to, port: Number(port), localAddress: from });
  let done = false;
  const finish = (r) => { if (done) return; done = true; clearTimeout(timer); resolve(r); };
  const timer = setTimeout(() => { s.destroy(); finish('timeout'); }, Number(timeoutMs));
  s.on('connect', () => { clearTimeout(timer); setTimeout(() => { s.end(); finish('connected'); }, Number(holdMs)); });
  s.on('error', (e) => { s.destroy(); finish(e.code === 'EPERM' ? 'refused-locally' : e.code); });
});
Promise.all(Array.from({ length: Number(count) }, one)).then((r) => { console.log(JSON.stringify(r)); process.exit(0); });
`;

export interface Listener {
  stop(): void;
}

/** Listens on `ports` (TCP) in `netns` under the process name `title`; resolves once listening. */
export async function listen(
  netns: string,
  title: string,
  address: string,
  ports: readonly number[],
): Promise<Listener> {
  const child: ChildProcessWithoutNullStreams = spawn(
    'ip',
    [
      'netns',
      'exec',
      netns,
      process.execPath,
      '-e',
      LISTENER,
      title,
      labOnly(address),
      ...ports.map(String),
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const lines = createInterface({ input: child.stdout });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  await new Promise<void>((resolve, reject) => {
    lines.once('line', () => resolve());
    child.once('exit', (code) => reject(new Error(`listener ${title} exited ${code}: ${stderr}`)));
  });
  return { stop: () => child.stdin.end() };
}

/** `connected`, `timeout`, `refused-locally` (EPERM: dropped on the way out), or an error code. */
export type ProbeResult = string;

/**
 * Opens `count` TCP connections at once from `from` to `to:port` in `netns`, as process
 * `title`; each is held open `holdMs` after it connects (long enough for the agent's socket
 * table to see it), then closed.
 */
export async function probe(
  netns: string,
  title: string,
  from: string,
  to: string,
  port: number,
  options: { count?: number; timeoutMs?: number; holdMs?: number } = {},
): Promise<ProbeResult[]> {
  const { stdout } = await run([
    'ip',
    'netns',
    'exec',
    netns,
    process.execPath,
    '-e',
    PROBE,
    title,
    labOnly(from),
    labOnly(to),
    String(port),
    String(options.count ?? 1),
    String(options.timeoutMs ?? 1000),
    String(options.holdMs ?? 0),
  ]);
  return JSON.parse(stdout) as ProbeResult[];
}

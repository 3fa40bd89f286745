/**
 * The programs the lab runs: service daemons inside the namespaces, the relay that lets
 * agents reach the control plane, and the traffic client. Each is plain CommonJS on Node's
 * core modules, written into the lab directory at `up` and run by node through a symlink
 * named after the process it plays: the kernel names a process (its comm, what `ss -p` and
 * /proc/PID/comm show, and so what an agent reports) after the file it executes, so a
 * symlink called `mysqld` makes node a `mysqld`.
 */
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SOCKETS_SOURCE } from './sockets-source.js';
import type { LabPaths } from './state.js';

/** The relay's and the prober's process names, so agents and people can tell them apart. */
export const RELAY_PROCESS = 'bulkhead-relay';
export const PROBE_PROCESS = 'bulkhead-probe';

/**
 * A service: listens on every address of its workload for each of its ports; TCP greets
 * (`nginx on web-1`) and holds the connection until the client closes it, UDP echoes. Logs
 * one line per connection or datagram. Says `ready` on stdout once every port is bound.
 */
const SERVICE_PROGRAM = String.raw`${SOCKETS_SOURCE}
const config = JSON.parse(process.argv[process.argv.length - 1]);
const log = (m) => process.stderr.write(new Date().toISOString() + ' ' + m + '\n');
const greeting = config.process + ' on ' + config.workload + '\n';
process.on('SIGTERM', () => process.exit(0));
(async () => {
  try {
    for (const l of config.listen) {
      const from = (addr, port) => l.proto + ' ' + l.address + ':' + l.port + ' from ' + addr + ':' + port;
      if (l.proto === 'tcp') await listenTcp(l.address, l.port, greeting, (s) => log(from(s.remoteAddress, s.remotePort)));
      else await listenUdp(l.address, l.port, (r) => log(from(r.address, r.port)));
    }
  } catch (e) {
    process.stdout.write('cannot listen: ' + e.message + '\n');
    process.exit(1);
  }
  log('serving ' + config.listen.map((l) => l.address + ':' + l.port + '/' + l.proto).join(', '));
  process.stdout.write('ready\n');
})();
`;

/**
 * The relay: a TCP pipe from the bridge's address (which the namespaces reach) to the
 * control plane (usually on 127.0.0.1, which they cannot). TCP-level, so HTTPS passes
 * through untouched. It exits by itself once the lab's state file is gone, so a relay
 * orphaned by a crash does not outlive its lab for long.
 */
const RELAY_PROGRAM = String.raw`
const net = require('node:net');
const fs = require('node:fs');
const config = JSON.parse(process.argv[process.argv.length - 1]);
const log = (m) => process.stderr.write(new Date().toISOString() + ' ' + m + '\n');
process.on('SIGTERM', () => process.exit(0));
const server = net.createServer((client) => {
  const upstream = net.connect({ host: config.targetHost, port: config.targetPort });
  const close = () => { client.destroy(); upstream.destroy(); };
  upstream.on('error', (e) => { log('control plane ' + config.targetHost + ':' + config.targetPort + ': ' + e.message); close(); });
  client.on('error', close);
  client.on('close', close);
  upstream.on('close', close);
  client.pipe(upstream);
  upstream.pipe(client);
});
server.once('error', (e) => {
  const why = e.code === 'EADDRINUSE' ? config.listenHost + ':' + config.listenPort + ' is already in use' : e.message;
  process.stdout.write('cannot listen: ' + why + '\n');
  process.exit(1);
});
server.listen({ host: config.listenHost, port: config.listenPort }, () => {
  log('relaying ' + config.listenHost + ':' + server.address().port + ' to ' + config.targetHost + ':' + config.targetPort);
  process.stdout.write('ready ' + server.address().port + '\n');
});
setInterval(() => {
  if (!fs.existsSync(config.stateFile)) { log('the lab is gone; exiting'); process.exit(0); }
}, 2000);
`;

/**
 * The traffic client: plays traffic lines from one namespace, as one process name. Reads
 * `{lines: [{id, from, to, port, proto}], durationMs, rate, holdMs, timeoutMs}` on stdin;
 * writes `[{id, attempts, ok, failures: {evidence: count}}]` on stdout. Without a duration
 * each line is played once; with one, `rate` times a second per line until it is over. A TCP
 * session succeeds when the service's greeting arrives, a UDP one on the echo; either is then
 * held open `holdMs`, so an agent sampling sockets sees the client process behind it.
 */
const TRAFFIC_PROGRAM = String.raw`${SOCKETS_SOURCE}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sessionTcp(l, timeoutMs, holdMs) {
  return new Promise((resolve) => {
    const s = net.connect({ host: l.to, port: l.port, localAddress: l.from });
    let finished = false;
    const done = (r) => { if (!finished) { finished = true; clearTimeout(timer); resolve(r); } };
    const timer = setTimeout(() => { s.destroy(); done({ evidence: 'timeout' }); }, timeoutMs);
    s.on('error', (e) => { s.destroy(); done(evidenceOf(e)); });
    s.once('data', () => {
      clearTimeout(timer);
      s.write('hello\n');
      setTimeout(() => { s.end(); done({ ok: true }); }, holdMs);
    });
  });
}

async function playLine(l, config) {
  const result = { id: l.id, attempts: 0, ok: 0, failures: {} };
  const count = (r) => {
    result.attempts++;
    if (r.ok || r.evidence === 'replied') result.ok++;
    else { const why = r.evidence || r.error; result.failures[why] = (result.failures[why] || 0) + 1; }
  };
  const attempt = () =>
    (l.proto === 'tcp' ? sessionTcp(l, config.timeoutMs, config.holdMs) : probeUdp(l, config.timeoutMs, config.holdMs)).then(count);
  if (!config.durationMs) { await attempt(); return result; }
  const interval = 1000 / config.rate;
  const started = Date.now();
  const inflight = [];
  for (let k = 0; k * interval < config.durationMs; k++) {
    const wait = started + k * interval - Date.now();
    if (wait > 0) await sleep(wait);
    inflight.push(attempt());
  }
  await Promise.all(inflight);
  return result;
}

let input = '';
process.stdin.on('data', (b) => (input += b));
process.stdin.on('end', async () => {
  const config = JSON.parse(input);
  const results = await Promise.all(config.lines.map((l) => playLine(l, config)));
  process.stdout.write(JSON.stringify(results) + '\n');
});
`;

export interface LabPrograms {
  readonly service: string;
  readonly relay: string;
  readonly traffic: string;
}

export function programPaths(paths: LabPaths): LabPrograms {
  return {
    service: join(paths.programs, 'service.cjs'),
    relay: join(paths.programs, 'relay.cjs'),
    traffic: join(paths.programs, 'traffic.cjs'),
  };
}

/** The executable that runs as `name`: a symlink to node in the lab's bin.d. */
export function executableFor(paths: LabPaths, name: string): string {
  return join(paths.bin, name);
}

/** Writes the programs and one node symlink per process name into the lab directory. */
export async function installPrograms(
  paths: LabPaths,
  processNames: Iterable<string>,
): Promise<void> {
  await mkdir(paths.programs, { recursive: true });
  await mkdir(paths.bin, { recursive: true });
  const files = programPaths(paths);
  await writeFile(files.service, SERVICE_PROGRAM);
  await writeFile(files.relay, RELAY_PROGRAM);
  await writeFile(files.traffic, TRAFFIC_PROGRAM);
  for (const name of new Set([...processNames, RELAY_PROCESS, PROBE_PROCESS])) {
    const link = executableFor(paths, name);
    await rm(link, { force: true });
    await symlink(process.execPath, link);
  }
}

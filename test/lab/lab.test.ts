/**
 * `bulkhead lab` on real network namespaces (prefix `bhl`, addresses in 198.19.254.0/24),
 * driven through the CLI as a person would: up, status, traffic, probe (with and without a
 * firewall), down, and down after `up` crashed halfway. The agents' part runs against a real
 * control plane with a stub agent that pairs as the real one would (the agent itself is
 * tested with the agent; the lab only promises to launch it with its command-line contract).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { linksWithPrefix, namespacesWithPrefix, pidsInNamespace } from '../../src/host/netns.js';
import { run } from '../../src/host/run.js';
import type { ProbeRow } from '../../src/lab/probe.js';
import { isAlive, recordOf } from '../../src/lab/processes.js';
import { readState, type LabState, type ProcessRecord } from '../../src/lab/state.js';
import type { LabStatus } from '../../src/lab/status.js';
import type { TrafficResult } from '../../src/lab/traffic.js';
import { cli } from '../support/cli.js';
import { kernelLabUnavailable, lockPrefix } from '../support/kernel-probe.js';
import { OWNER_KEY, testServer, type TestServer } from '../support/server.js';

const PREFIX = 'bhl';
const NET = '198.19.254';
const unavailable = await kernelLabUnavailable(['nft', 'conntrack', 'ss']);

const yaml = (...lines: string[]): string => lines.join('\n') + '\n';

const SMALL = yaml(
  'name: small',
  `network: {ipv4: ${NET}.0/24}`,
  'workloads:',
  '  - name: web',
  '    labels: {role: web, app: shop, env: prod}',
  '    listen: [{port: 443, proto: tcp, process: nginx}]',
  '  - name: api',
  '    labels: {role: api, app: shop, env: prod}',
  '    listen: [{port: 8080, proto: tcp, process: java}, {port: 22, proto: tcp, process: sshd}]',
  '  - name: db',
  '    labels: {role: db, app: shop, env: prod}',
  '    listen: [{port: 3306, proto: tcp, process: mysqld}, {port: 514, proto: udp, process: rsyslogd}]',
  'traffic:',
  '  - {from: web, to: api, port: 8080, proto: tcp}',
  '  - {from: api, to: db, port: 3306, proto: tcp, process: php-fpm}',
  '  - {from: web, to: db, port: 514, proto: udp, process: rsyslogd}',
);
const ADDRESS = { web: `${NET}.10`, api: `${NET}.11`, db: `${NET}.12` };

/** Runs a command inside one of the lab's namespaces; resolves to its stdout. */
async function inside(workload: string, command: string[], input?: string): Promise<string> {
  const options = input === undefined ? {} : { input };
  return (await run(['ip', 'netns', 'exec', `${PREFIX}${workload}`, ...command], options)).stdout;
}

function recordedProcesses(state: LabState): ProcessRecord[] {
  return [
    ...(state.relay ? [state.relay] : []),
    ...state.workloads.flatMap((w) => [...w.services, ...(w.agent ? [w.agent] : [])]),
  ];
}

async function anyAlive(records: readonly ProcessRecord[]): Promise<string[]> {
  const alive = await Promise.all(records.map(isAlive));
  return records.filter((_, i) => alive[i]).map((r) => `${r.comm} (pid ${r.pid})`);
}

async function expectNothingLeft(labDir: string, records: readonly ProcessRecord[]): Promise<void> {
  expect(await namespacesWithPrefix(PREFIX)).toEqual([]);
  expect(await linksWithPrefix(PREFIX)).toEqual([]);
  expect(await anyAlive(records)).toEqual([]);
  expect(existsSync(labDir)).toBe(false);
}

/** Polls until `check` returns a value, or fails after `ms`. */
async function eventually<T>(what: string, ms: number, check: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('bulkhead lab refuses a machine it cannot run on', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('says it needs root', async () => {
    vi.spyOn(process, 'getuid').mockReturnValue(1000);
    const r = await cli(
      'lab',
      'up',
      'examples/lab/shop.yaml',
      '--no-agents',
      '--lab-dir',
      '/nonexistent/lab',
    );
    expect(r.code).toBe(1);
    expect(r.err).toContain('the lab needs root');
    expect(existsSync('/nonexistent/lab')).toBe(false);
  });

  it.skipIf(process.getuid?.() !== 0)('says it needs nftables when nft is missing', async () => {
    const bin = await mkdtemp(join(tmpdir(), 'bhl-path-'));
    const path = process.env.PATH;
    try {
      // A PATH with the shell and iproute2 but no nft.
      const { stdout } = await run(['sh', '-c', 'command -v ip']);
      await run(['ln', '-s', '/bin/sh', join(bin, 'sh')]);
      await run(['ln', '-s', stdout.trim(), join(bin, 'ip')]);
      process.env.PATH = bin;
      const r = await cli(
        'lab',
        'up',
        'examples/lab/shop.yaml',
        '--no-agents',
        '--lab-dir',
        join(bin, 'lab'),
      );
      expect(r.code).toBe(1);
      expect(r.err).toContain('the lab needs nftables, but `nft` is not installed');
    } finally {
      process.env.PATH = path;
      await rm(bin, { recursive: true, force: true });
    }
  });
});

describe.skipIf(unavailable !== null)(
  `bulkhead lab on real namespaces${unavailable ? ` (skipped: ${unavailable})` : ''}`,
  () => {
    let dir = '';
    let labDir = '';
    let file = '';
    let unlock: () => Promise<void> = async () => undefined;
    const lab = (...args: string[]) => cli('lab', ...args, '--lab-dir', labDir);
    const state = async (): Promise<LabState> => (await readState(labDir))!;

    beforeAll(async () => {
      unlock = await lockPrefix(PREFIX, 60_000);
      dir = await mkdtemp(join(tmpdir(), 'bhl-'));
      labDir = join(dir, 'lab');
      file = join(dir, 'small.yaml');
      await writeFile(file, SMALL);
    });

    afterAll(async () => {
      // Whatever a failed test left behind.
      await cli('lab', 'down', '--lab-dir', labDir, '--prefix', PREFIX);
      await rm(dir, { recursive: true, force: true });
      await unlock();
    });

    it('up --no-agents starts every service under its process name', async () => {
      const up = await lab('up', file, '--no-agents', '--prefix', PREFIX);
      expect(up.err).not.toContain('bulkhead:');
      expect(up.code).toBe(0);
      expect(up.out).toContain('lab small is up: 3 workloads');

      const status = await lab('status', '--json');
      expect(status.code).toBe(0);
      const s = JSON.parse(status.out) as LabStatus;
      expect(s.healthy).toBe(true);
      expect(
        s.workloads.map((w) => [w.name, w.addresses, w.services.map((p) => [p.process, p.alive])]),
      ).toEqual([
        ['web', [ADDRESS.web], [['nginx', true]]],
        [
          'api',
          [ADDRESS.api],
          [
            ['java', true],
            ['sshd', true],
          ],
        ],
        [
          'db',
          [ADDRESS.db],
          [
            ['mysqld', true],
            ['rsyslogd', true],
          ],
        ],
      ]);

      // What an agent (or a person) sees on the host: the listener under its process name.
      const tcp = await inside('db', ['ss', '-Htlnp']);
      expect(tcp).toMatch(new RegExp(`${ADDRESS.db}:3306 .*users:\\(\\("mysqld",pid=\\d+`));
      const udp = await inside('db', ['ss', '-Hulnp']);
      expect(udp).toMatch(new RegExp(`${ADDRESS.db}:514 .*users:\\(\\("rsyslogd",pid=\\d+`));
      for (const w of (await state()).workloads)
        for (const p of w.services)
          expect((await readFile(`/proc/${p.pid}/comm`, 'utf8')).trim()).toBe(p.process);
    });

    it('refuses a second lab in the same directory, or under a prefix in use', async () => {
      const again = await lab('up', file, '--no-agents', '--prefix', PREFIX);
      expect(again.code).toBe(1);
      expect(again.err).toContain(
        `a lab is already up in ${labDir} (small, prefix ${PREFIX}, running)`,
      );
      const elsewhere = join(dir, 'other');
      const other = await cli(
        'lab',
        'up',
        file,
        '--no-agents',
        '--prefix',
        PREFIX,
        '--lab-dir',
        elsewhere,
      );
      expect(other.code).toBe(1);
      expect(other.err).toContain(`namespaces or links named ${PREFIX}* already exist`);
      expect(existsSync(join(elsewhere, 'state.json'))).toBe(false);
    });

    it('traffic makes real connections, from clients under the names the file gives', async () => {
      // Held open long enough to see the client behind each connection, as an agent would.
      const playing = lab('traffic', '--json', '--hold', '5000');
      const client = async (workload: string, port: number) =>
        eventually(`a connection to port ${port} from ${workload}`, 5000, async () => {
          const line = (await inside(workload, ['ss', '-Htnp', 'state', 'established']))
            .split('\n')
            .find((l) => l.includes(`:${port} `));
          return line ? (/users:\(\("([^"]+)"/.exec(line)?.[1] ?? null) : null;
        });
      expect(await client('web', 8080)).toBe('nginx');
      expect(await client('api', 3306)).toBe('php-fpm');
      const played = await playing;
      expect(played.code).toBe(0);
      const results = JSON.parse(played.out) as TrafficResult[];
      expect(
        results.map((r) => [r.from, r.to, r.port, r.proto, r.process, r.ok, r.attempts]),
      ).toEqual([
        ['web', 'api', 8080, 'tcp', 'nginx', 1, 1],
        ['api', 'db', 3306, 'tcp', 'php-fpm', 1, 1],
        ['web', 'db', 514, 'udp', 'rsyslogd', 1, 1],
      ]);
      // The destination's connection tracking, which the agents read, saw both.
      const tracked = await inside('db', ['conntrack', '-L']);
      expect(tracked).toMatch(
        new RegExp(`tcp .*src=${ADDRESS.api} dst=${ADDRESS.db} sport=\\d+ dport=3306 `),
      );
      expect(tracked).toMatch(
        new RegExp(`udp .*src=${ADDRESS.web} dst=${ADDRESS.db} sport=\\d+ dport=514 `),
      );
      // And the services logged them.
      const log = await readFile(join(labDir, 'log.d', 'db.mysqld.log'), 'utf8');
      expect(log).toContain(`tcp ${ADDRESS.db}:3306 from ${ADDRESS.api}:`);
    });

    it('traffic --duration repeats each line at the rate', async () => {
      const played = await lab(
        'traffic',
        '--json',
        '--duration',
        '2',
        '--rate',
        '2',
        '--hold',
        '0',
      );
      expect(played.code).toBe(0);
      const results = JSON.parse(played.out) as TrafficResult[];
      expect(results.map((r) => [r.ok, r.attempts])).toEqual([
        [4, 4],
        [4, 4],
        [4, 4],
      ]);
    });

    let openMatrix: ProbeRow[] = [];
    const key = (r: ProbeRow) => `${r.from}>${r.to} ${r.port}/${r.proto}`;

    it('probe --json with no firewall: every listening and every closed port is allowed', async () => {
      const probed = await lab('probe', '--json', '--timeout', '1500');
      expect(probed.code).toBe(0);
      openMatrix = JSON.parse(probed.out) as ProbeRow[];
      // web serves 1 port, api and db 2 each; each destination adds 2 closed TCP and 2 closed UDP.
      expect(openMatrix).toHaveLength(2 * (1 + 4) + 2 * (2 + 4) + 2 * (2 + 4));
      for (const r of openMatrix) {
        expect(Object.keys(r)).toEqual(
          expect.arrayContaining(['from', 'to', 'port', 'proto', 'result']),
        );
        expect([key(r), r.result]).toEqual([key(r), 'allowed']);
      }
      const listening = openMatrix.filter((r) => r.listening).map((r) => `${key(r)} ${r.evidence}`);
      expect(listening.sort()).toEqual(
        [
          'api>db 3306/tcp connected',
          'api>db 514/udp replied',
          'api>web 443/tcp connected',
          'db>api 22/tcp connected',
          'db>api 8080/tcp connected',
          'db>web 443/tcp connected',
          'web>api 22/tcp connected',
          'web>api 8080/tcp connected',
          'web>db 3306/tcp connected',
          'web>db 514/udp replied',
        ].sort(),
      );
      // A closed port answered with a refusal (TCP RST, ICMP port unreachable): it got through.
      const closed = openMatrix.filter((r) => !r.listening);
      expect(new Set(closed.map((r) => r.proto))).toEqual(new Set(['tcp', 'udp']));
      expect(new Set(closed.map((r) => r.evidence))).toEqual(new Set(['refused']));
    });

    it('probe reports as blocked what an nft drop rule in one namespace stops', async () => {
      await inside(
        'db',
        ['nft', '-f', '-'],
        yaml(
          'table inet manual {',
          '  chain input {',
          '    type filter hook input priority 0; policy accept;',
          '    ct state established,related accept',
          '    iifname "eth0" drop',
          '  }',
          '}',
        ),
      );
      const probed = await lab('probe', '--json', '--timeout', '1500');
      expect(probed.code).toBe(0);
      const rows = JSON.parse(probed.out) as ProbeRow[];
      // The same probes (the closed-port sample does not change between runs)...
      expect(rows.map(key)).toEqual(openMatrix.map(key));
      // ...and everything into db, open port or closed, is now blocked; nothing else is (db's
      // own connections out still get their answers: the rule is stateful).
      for (const r of rows)
        expect([key(r), r.result]).toEqual([key(r), r.to === 'db' ? 'blocked' : 'allowed']);
      expect(new Set(rows.filter((r) => r.to === 'db').map((r) => r.evidence))).toEqual(
        new Set(['timeout']),
      );

      const text = await lab('probe', '--timeout', '1500');
      expect(text.out).toMatch(/^web +db +3306\/tcp +mysqld +blocked +timeout$/m);
      expect(text.out).toContain(`${rows.length} probes: ${rows.length - 12} allowed, 12 blocked`);
    });

    it('status says which process is no longer running', async () => {
      const syslog = (await state()).workloads
        .find((w) => w.name === 'db')!
        .services.find((p) => p.process === 'rsyslogd')!;
      process.kill(syslog.pid, 'SIGKILL');
      await eventually('rsyslogd to exit', 2000, async () =>
        (await isAlive(syslog)) ? null : true,
      );
      const status = await lab('status');
      expect(status.code).toBe(1);
      expect(status.out).toContain(`rsyslogd 514/udp (pid ${syslog.pid} NOT RUNNING)`);
      expect(status.out).toContain(`not running: rsyslogd on db (pid ${syslog.pid})`);
      expect(status.err).toContain('lab small is not healthy: 1 problem(s)');
    });

    it('down removes every namespace, link, process and file it made', async () => {
      const records = recordedProcesses(await state());
      expect(records.length).toBe(5);
      const down = await lab('down');
      expect(down.code).toBe(0);
      expect(down.out).toContain(
        'lab taken down: 4 processes stopped, 3 namespaces and 4 links removed',
      );
      await expectNothingLeft(labDir, records);
      const again = await lab('down', '--prefix', PREFIX);
      expect(again.out).toContain('nothing to take down');
    });

    it('down cleans up after up crashed halfway', async () => {
      // Six workloads of two services each, so `up` is still starting them when it dies.
      const crashFile = join(dir, 'crash.yaml');
      await writeFile(
        crashFile,
        yaml(
          'name: crash',
          `network: {ipv4: ${NET}.0/24}`,
          'workloads:',
          ...['a', 'b', 'c', 'd', 'e', 'f'].map(
            (n) =>
              `  - {name: ${n}, listen: [{port: 80, process: httpd}, {port: 22, process: sshd}]}`,
          ),
        ),
      );
      const script = `const { labUp } = await import(${JSON.stringify(join(process.cwd(), 'src/lab/up.ts'))});
await labUp({ file: ${JSON.stringify(crashFile)}, labDir: ${JSON.stringify(labDir)}, prefix: '${PREFIX}', agents: null });`;
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        {
          stdio: 'ignore',
        },
      );
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await eventually('up to start its first service', 20_000, async () => {
        const s = await readState(labDir).catch(() => null);
        return s && s.workloads.some((w) => w.services.length > 0) ? true : null;
      });
      child.kill('SIGKILL');
      await exited;

      const left = await state();
      expect(left.phase).toBe('starting');
      expect(left.workloads.flatMap((w) => w.services).length).toBeLessThan(12);
      const namespaces = await namespacesWithPrefix(PREFIX);
      expect(namespaces).toHaveLength(6);
      // Everything running in the namespaces, recorded or not (a service caught mid-start).
      const inNamespaces = (
        await Promise.all((await Promise.all(namespaces.map(pidsInNamespace))).flat().map(recordOf))
      ).filter((r): r is ProcessRecord => r !== null);
      const records = [...recordedProcesses(left), ...inNamespaces];
      expect((await anyAlive(records)).length).toBeGreaterThan(0);

      const status = await lab('status');
      expect(status.code).toBe(1);
      expect(status.out).toContain('the lab did not finish starting');
      const probe = await lab('probe');
      expect(probe.code).toBe(1);
      expect(probe.err).toContain('did not finish starting (up was interrupted)');

      const down = await lab('down');
      expect(down.code).toBe(0);
      await expectNothingLeft(labDir, records);
    });

    describe('with agents', () => {
      let server: TestServer;
      const saved = { url: process.env.BULKHEAD_URL, token: process.env.BULKHEAD_TOKEN };
      const stub = () => join(dir, 'stub-agent.mjs');

      beforeAll(async () => {
        server = await testServer('sqlite');
        process.env.BULKHEAD_URL = await server.app.listen({ port: 0, host: '127.0.0.1' });
        process.env.BULKHEAD_TOKEN = OWNER_KEY;
        // Pairs as the real agent does (its command line is the contract), then stays up.
        await writeFile(
          stub(),
          `import { writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
const args = process.argv.slice(2);
const flag = (name) => args[args.indexOf(name) + 1];
const addresses = (networkInterfaces().eth0 ?? []).filter((i) => i.family === 'IPv4').map((i) => i.address);
const response = await fetch(flag('--server') + '/api/v1/agents/pair', {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ activationCode: flag('--activation-code'), hostname: flag('--hostname'), addresses }),
});
writeFileSync(flag('--state-dir') + '/stub.json', JSON.stringify({ args, status: response.status }));
if (!response.ok) process.exit(1);
setInterval(() => {}, 1 << 30);
`,
        );
      });

      afterAll(async () => {
        await server.close();
        for (const [name, value] of [
          ['BULKHEAD_URL', saved.url],
          ['BULKHEAD_TOKEN', saved.token],
        ] as const)
          if (value === undefined) delete process.env[name];
          else process.env[name] = value;
      });

      it('creates the workloads, pairs each agent through the relay, and down revokes them', async () => {
        const agentsFile = join(dir, 'agents.yaml');
        await writeFile(
          agentsFile,
          yaml(
            'name: agents',
            `network: {ipv4: ${NET}.0/24}`,
            'workloads:',
            '  - {name: web, labels: {role: web, app: shop}, listen: [{port: 443, process: nginx}]}',
            '  - {name: db, labels: {role: db, app: shop}, mode: selective, listen: [{port: 3306, process: mysqld}]}',
            '  - {name: hsm, labels: {role: hsm}, agent: false, listen: [{port: 1792, process: hsmd}]}',
          ),
        );
        const up = await lab(
          'up',
          agentsFile,
          '--prefix',
          PREFIX,
          '--agent-program',
          stub(),
          '--relay-port',
          '0',
        );
        expect(up.err).not.toContain('bulkhead:');
        expect(up.code).toBe(0);
        expect(up.err).toContain('all 2 agents paired');
        const s = await state();
        const agentUrl = s.controlPlane!.agentUrl;
        expect(agentUrl).toMatch(new RegExp(`^http://${NET}\\.1:\\d+$`));
        expect(up.out).toContain(`at ${agentUrl}`);

        // Each agent was launched by the contract, inside its namespace.
        const launched = JSON.parse(await readFile(join(labDir, 'web', 'stub.json'), 'utf8')) as {
          args: string[];
          status: number;
        };
        expect(launched.status).toBe(201);
        expect(launched.args).toEqual([
          'agent',
          '--server',
          agentUrl,
          '--activation-code',
          expect.stringMatching(/\S{16,}/) as unknown as string,
          '--state-dir',
          join(labDir, 'web'),
          '--hostname',
          'web',
        ]);

        // The control plane has the file's workloads; pairing adopted them, labels and all.
        const workloads = JSON.parse(
          (await server.call({ method: 'GET', url: '/api/v1/workloads' })).body,
        ) as {
          items: {
            name: string;
            labels: Record<string, string>;
            mode: string;
            managed: boolean;
            addresses: string[];
          }[];
        };
        expect(
          workloads.items.map((w) => [w.name, w.labels, w.mode, w.managed, w.addresses]),
        ).toEqual([
          ['db', { role: 'db', app: 'shop' }, 'selective', true, [`${NET}.11`]],
          ['hsm', { role: 'hsm' }, 'visibility', false, [`${NET}.12`]],
          ['web', { role: 'web', app: 'shop' }, 'visibility', true, [`${NET}.10`]],
        ]);
        const agents = () =>
          server
            .call({ method: 'GET', url: '/api/v1/agents' })
            .then(
              (r) =>
                (JSON.parse(r.body) as { items: { workload: string; revokedAt: string | null }[] })
                  .items,
            );
        expect((await agents()).map((a) => [a.workload, a.revokedAt]).sort()).toEqual([
          ['db', null],
          ['web', null],
        ]);

        const status = JSON.parse((await lab('status', '--json')).out) as LabStatus;
        expect(status.healthy).toBe(true);
        expect(status.relay?.alive).toBe(true);
        expect(status.workloads.map((w) => [w.name, w.agent?.alive ?? null])).toEqual([
          ['web', true],
          ['db', true],
          ['hsm', null],
        ]);

        const records = recordedProcesses(s);
        const down = await lab('down');
        expect(down.code).toBe(0);
        expect(down.out).toContain('control plane: 2 agents revoked, 2 pairing profiles deleted');
        expect((await agents()).every((a) => a.revokedAt !== null)).toBe(true);
        const profiles = JSON.parse(
          (await server.call({ method: 'GET', url: '/api/v1/pairing-profiles' })).body,
        ) as { items: unknown[] };
        expect(profiles.items).toEqual([]);
        await expectNothingLeft(labDir, records);
      });
    });
  },
);

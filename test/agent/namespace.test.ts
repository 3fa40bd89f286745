/**
 * The real `bulkhead agent` in a network namespace, against a real control plane: pairing,
 * enforcement through the kernel, flows from conntrack with their processes, tamper repair
 * within 2 s (audited), fail-safe while the control plane is down (across the agent's own
 * restart, with the flows made meanwhile delivered once), and a deny-everything policy in
 * full mode that leaves the agent's own channel open.
 *
 * Namespaces and links use the prefix `bha`; addresses are 198.19.231.0/24. The control
 * plane listens on the bridge's address in the root namespace.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/agent/install.js';
import { createNetwork, type NetnsNetwork } from '../../src/host/netns.js';
import { hasCommand, run } from '../../src/host/run.js';
import { testServer, type TestServer } from '../support/server.js';
import { listen, probe, type Listener } from './support/netns-node.js';

const PREFIX = 'bha';
const BIN = 'dist/agent/bulkhead-agent.cjs';
const CP = '198.19.231.1';
const DB = '198.19.231.20';
const WEB = '198.19.231.10';

async function unavailable(): Promise<string | null> {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (network namespaces need root)';
  for (const tool of ['ip', 'nft', 'conntrack', 'ss'])
    if (!(await hasCommand(tool))) return `\`${tool}\` is not installed`;
  if (!existsSync(BIN)) return `${BIN} is not built (run npm run build)`;
  return null;
}
const skipReason = await unavailable();
if (skipReason) console.warn(`SKIPPED agent namespace test: ${skipReason}`);

async function until<T>(
  what: string,
  check: () => Promise<T | null | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface RunningAgent {
  readonly child: ChildProcess;
  readonly logs: Record<string, unknown>[];
}

describe.skipIf(skipReason !== null)('bulkhead agent in a network namespace', () => {
  let net: NetnsNetwork;
  let server: TestServer;
  let port = 0;
  let stateDir: string;
  let agent: RunningAgent | null = null;
  const listeners: Listener[] = [];
  const allLogs: Record<string, unknown>[] = [];

  const api = async <T>(method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) => {
    const r = await server.call({ method, url: `/api/v1${url}`, ...(payload ? { payload } : {}) });
    expect(r.statusCode, `${method} ${url}: ${r.body}`).toBeLessThan(300);
    return r.json<T>();
  };
  const nft = (...args: string[]) => net.exec('db', ['nft', ...args]);
  const agentView = async () =>
    (
      await api<{
        items: {
          appliedRevision: number | null;
          currentRevision: number | null;
          upToDate: boolean;
          lastHeartbeatAt: string | null;
          status: string;
        }[];
      }>('GET', '/agents')
    ).items[0];
  const flows = (dport: number) =>
    server.store.db.selectFrom('flow_summaries').selectAll().where('dport', '=', dport).execute();

  function startAgent(extra: string[]): RunningAgent {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        `${PREFIX}db`,
        // The node flags the systemd unit runs the agent with.
        process.execPath,
        ...NODE_FLAGS,
        BIN,
        'agent',
        '--server',
        `http://${CP}:${port}`,
        '--state-dir',
        stateDir,
        '--runtime-dir',
        `${stateDir}.run`,
        '--hostname',
        'db',
        '--flush-interval',
        '1',
        '--heartbeat-interval',
        '1',
        '--socket-scan-interval',
        '0.2',
        '--conntrack-dump-interval',
        '5',
        '--inventory-interval',
        '5',
        '--reconnect-max',
        '1',
        '--log-level',
        'debug',
        ...extra,
      ],
      // Its own process group, so that killing it takes its conntrack and nft children too.
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    const logs: Record<string, unknown>[] = [];
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        allLogs.push(entry);
      } catch {
        allLogs.push({ raw: line });
      }
    });
    child.stderr.on('data', (b: Buffer) => allLogs.push({ stderr: b.toString() }));
    return { child, logs };
  }

  async function killAgent(signal: NodeJS.Signals): Promise<void> {
    const a = agent;
    agent = null;
    if (!a?.child.pid || a.child.exitCode !== null) return;
    const exited = new Promise((r) => a.child.once('exit', r));
    process.kill(-a.child.pid, signal);
    await exited;
  }

  beforeAll(async () => {
    net = await createNetwork(PREFIX, [
      { name: 'db', addresses: [`${DB}/24`] },
      { name: 'web', addresses: [`${WEB}/24`] },
    ]);
    await run(['ip', 'addr', 'add', `${CP}/24`, 'dev', net.bridge]);
    stateDir = await mkdtemp(join(tmpdir(), 'bulkhead-agent-ns-'));
    server = await testServer('sqlite');
    await server.app.listen({ host: CP, port: 0 });
    port = (server.app.server.address() as { port: number }).port;

    listeners.push(await listen(`${PREFIX}db`, 'pgsrv', DB, [5432, 5433]));
    listeners.push(await listen(`${PREFIX}db`, 'redissrv', DB, [6379]));
    listeners.push(await listen(`${PREFIX}web`, 'websrv', WEB, [8080, 9999]));

    await api('POST', '/workloads', {
      name: 'web',
      addresses: [WEB],
      labels: { role: 'web', app: 'shop' },
      managed: false,
    });
    await api('POST', '/policy/draft/apply', {
      documents: [
        {
          kind: 'Ruleset',
          name: 'shop',
          rules: [
            {
              name: 'web-to-db',
              sources: { labels: { role: 'web' } },
              destinations: { labels: { role: 'db' } },
              services: ['5432-5433/tcp'],
            },
            {
              name: 'db-to-web',
              sources: { labels: { role: 'db' } },
              destinations: { labels: { role: 'web' } },
              services: ['8080/tcp'],
            },
          ],
        },
      ],
    });
    await api('POST', '/policy/provision', { message: 'web may reach the database' });
  });

  afterAll(async () => {
    if (process.env.BULKHEAD_AGENT_TEST_LOGS)
      console.log(
        allLogs
          .filter((l) => l.level !== 'debug')
          .map((l) => JSON.stringify(l))
          .join('\n'),
      );
    await killAgent('SIGKILL').catch(() => undefined);
    for (const l of listeners) l.stop();
    await server?.close();
    await net?.destroy();
    if (stateDir) {
      await rm(stateDir, { recursive: true, force: true });
      await rm(`${stateDir}.run`, { recursive: true, force: true });
    }
  });

  it('pairs, applies the policy in full mode, and the kernel enforces it', async () => {
    const profile = await api<{ id: string }>('POST', '/pairing-profiles', {
      name: 'databases',
      labels: { role: 'db', app: 'shop' },
      mode: 'full',
    });
    const { code } = await api<{ code: string }>(
      'POST',
      `/pairing-profiles/${profile.id}/activation-codes`,
      {},
    );
    agent = startAgent(['--activation-code', code]);
    try {
      await until('the agent to apply its policy', async () => (await agentView())?.upToDate);
    } catch (e) {
      console.error(allLogs.slice(-40));
      throw e;
    }
    const table = await nft('list', 'table', 'inet', 'bulkhead');
    expect(table).toContain('web-to-db');
    expect(table).toContain('bulkhead agent: control plane channel');

    expect(await probe(`${PREFIX}web`, 'psql', WEB, DB, 5432, { count: 2, holdMs: 1500 })).toEqual([
      'connected',
      'connected',
    ]);
    // The agent's memory (target 50 MB; a bare node is ~40 MB): a bound that catches it
    // loading what it does not need.
    const rss =
      Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${agent.child.pid}/status`, 'utf8'))![1]) /
      1024;
    console.log(`agent RSS after pairing and applying: ${rss.toFixed(1)} MB`);
    expect(rss).toBeLessThan(60);
    expect(await probe(`${PREFIX}web`, 'redis-cli', WEB, DB, 6379)).toEqual(['timeout']);
    expect(await probe(`${PREFIX}db`, 'dbclient', DB, WEB, 8080, { holdMs: 1500 })).toEqual([
      'connected',
    ]);
    // Dropped on the way out: the SYN never leaves (retransmitted until the probe gives up).
    expect(['timeout', 'refused-locally']).toContain(
      (await probe(`${PREFIX}db`, 'dbclient', DB, WEB, 9999))[0],
    );
  });

  it('reports the connections conntrack saw with their processes, and the blocked attempts', async () => {
    const inbound = await until('the inbound flow to 5432', async () =>
      (await flows(5432)).find((f) => f.src === WEB && f.dst === DB),
    );
    expect(inbound).toMatchObject({
      proto: 'tcp',
      process: 'pgsrv',
      decision: 'allowed',
      workload: 'db',
    });
    expect(Number(inbound.connections)).toBe(2);
    const outbound = await until('the outbound flow to 8080', async () =>
      (await flows(8080)).find((f) => f.src === DB && f.dst === WEB),
    );
    expect(outbound).toMatchObject({ process: 'dbclient', decision: 'allowed' });
    const blockedIn = await until('the blocked attempt on 6379', async () =>
      (await flows(6379)).find((f) => f.decision === 'blocked'),
    );
    expect(blockedIn).toMatchObject({ src: WEB, dst: DB, process: 'redissrv' });
    const blockedOut = await until('the blocked attempt to 9999', async () =>
      (await flows(9999)).find((f) => f.decision === 'blocked'),
    );
    expect(blockedOut).toMatchObject({ src: DB, dst: WEB });
  });

  it('restores a flushed ruleset within 2 seconds and audits the tampering', async () => {
    await nft('flush', 'ruleset');
    const flushedAt = Date.now();
    await until('the table to come back', async () =>
      (await net.exec('db', ['nft', 'list', 'tables'])).includes('inet bulkhead'),
    );
    expect(Date.now() - flushedAt).toBeLessThanOrEqual(2000);
    expect(await probe(`${PREFIX}web`, 'redis-cli', WEB, DB, 6379)).toEqual(['timeout']);
    const event = await until('the agent.tamper audit event', async () =>
      server.store.db
        .selectFrom('audit_events')
        .selectAll()
        .where('type', '=', 'agent.tamper')
        .executeTakeFirst(),
    );
    expect(JSON.parse(event.after!)).toMatchObject({
      workload: 'db',
      kind: 'missing',
      restored: true,
      differences: ['table inet bulkhead is missing'],
    });
  });

  it('keeps enforcing while the control plane is down, across its own restart, and delivers the flows made meanwhile once', async () => {
    // The control plane goes away (the new instance is not listening yet).
    server = await server.restart();
    await until('the agent to notice', async () =>
      agent!.logs.some((l) => String(l.msg).startsWith('event stream')),
    );
    // The agent dies; someone removes a rule while it is down; it comes back without a code.
    await killAgent('SIGKILL');
    expect(await probe(`${PREFIX}web`, 'redis-cli', WEB, DB, 6379)).toEqual(['timeout']);
    const rules = JSON.parse(
      await nft('-j', '-a', 'list', 'chain', 'inet', 'bulkhead', 'input'),
    ) as {
      nftables: { rule?: { handle: number; comment?: string } }[];
    };
    const allow = rules.nftables.find((o) => o.rule?.comment === 'shop/web-to-db')!.rule!;
    await nft('delete', 'rule', 'inet', 'bulkhead', 'input', 'handle', String(allow.handle));
    agent = startAgent([]);
    await until('the agent to re-apply the saved policy', async () =>
      agent!.logs.some((l) => l.msg === 'enforcing the saved policy (before connecting)'),
    );
    const firstConnect = agent.logs.findIndex((l) => String(l.msg).startsWith('event stream'));
    const reapplied = agent.logs.findIndex(
      (l) => l.msg === 'enforcing the saved policy (before connecting)',
    );
    expect(firstConnect === -1 || reapplied < firstConnect).toBe(true);
    expect(await nft('list', 'chain', 'inet', 'bulkhead', 'input')).toContain('web-to-db');
    expect(await probe(`${PREFIX}web`, 'redis-cli', WEB, DB, 6379)).toEqual(['timeout']);

    // Flows made while the control plane is away are spooled...
    await new Promise((r) => setTimeout(r, 1500)); // the event stream child is up
    expect(await probe(`${PREFIX}web`, 'psql', WEB, DB, 5433, { count: 3, holdMs: 1000 })).toEqual([
      'connected',
      'connected',
      'connected',
    ]);
    await until('a spooled batch', async () =>
      (await readdir(join(stateDir, 'spool', 'flows'))).some(
        (f) => f.endsWith('.json') && f !== 'dropped.json',
      ),
    );
    expect(await flows(5433)).toEqual([]);
    // ...and delivered once when it is back, on the same address.
    await server.app.listen({ host: CP, port });
    const delivered = await until('the flows made meanwhile', async () => {
      const rows = await flows(5433);
      return rows.length > 0 && rows;
    });
    expect(delivered.every((f) => f.process === 'pgsrv' && f.src === WEB)).toBe(true);
    await until('the spool to empty', async () =>
      (await readdir(join(stateDir, 'spool', 'flows'))).every((f) => !/^\d+-\d+\.json$/.test(f)),
    );
    await new Promise((r) => setTimeout(r, 2000));
    const total = (await flows(5433)).reduce((n, f) => n + Number(f.connections), 0);
    expect(total).toBe(3);
  });

  it('keeps its own channel under a deny-everything policy in full mode', async () => {
    await api('DELETE', '/policy/draft/Ruleset/shop');
    await api('POST', '/policy/provision', { message: 'deny everything' });
    const applied = await until('the agent to apply the deny-everything policy', async () => {
      const v = await agentView();
      return v?.upToDate && v;
    });
    expect(await nft('list', 'chain', 'inet', 'bulkhead', 'input')).not.toContain('web-to-db');
    expect(await probe(`${PREFIX}web`, 'psql', WEB, DB, 5432)).toEqual(['timeout']);
    const before = Date.parse(applied.lastHeartbeatAt!);
    const later = await until('heartbeats to continue', async () => {
      const v = await agentView();
      return v && Date.parse(v.lastHeartbeatAt!) > before + 1500 && v;
    });
    expect(later).toMatchObject({ status: 'ok', upToDate: true });
  });
});

/**
 * The agent core with fake adapters: fail-safe start-up (the saved policy before any
 * connection), pairing, policy sync and acknowledgement, tamper repair and its report,
 * flows spooled while the control plane is away and delivered once when it returns.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent, type AgentSettings } from '../../src/agent/agent.js';
import { AgentConfigError } from '../../src/agent/errors.js';
import { CONTROL_PLANE_COMMENT, withControlPlane } from '../../src/agent/firewall/control-plane.js';
import { openStateDir, type StateDir } from '../../src/agent/state/state-dir.js';
import { nftScript } from '../../src/policy/compile/nft.js';
import {
  FakeConntrack,
  FakeControlPlane,
  FakeFirewall,
  FakeHost,
  fixture,
  silentLog,
  until,
  type Journal,
} from './support/fakes.js';
import { estatePolicy, estateState } from './support/policy.js';

const SETTINGS: AgentSettings = {
  server: 'http://198.18.0.1:7480',
  activationCode: null,
  hostname: null,
  flushIntervalMs: 30,
  heartbeatIntervalMs: 30,
  inventoryIntervalMs: 1000,
  conntrackDumpIntervalMs: 1000,
  socketScanIntervalMs: 20,
  reconnectMaxMs: 20,
};
const CREDENTIAL = {
  agentId: 'agent-1',
  credential: 'bha_secret_credential',
  workload: 'shop-db-1',
  server: SETTINGS.server,
  pairedAt: '2026-01-05T10:00:00.000Z',
};
const CP = [{ address: '198.18.0.1', port: 7480 }];

let dir: string;
let state: StateDir;
let journal: Journal;
let firewall: FakeFirewall;
let conntrack: FakeConntrack;
let host: FakeHost;
let cp: FakeControlPlane;
let agent: Agent | null;
let running: Promise<void> | null;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulkhead-agent-core-'));
  state = await openStateDir(dir, { maxBytes: 1 << 20, maxItems: 1000 });
  journal = [];
  firewall = new FakeFirewall(journal);
  conntrack = new FakeConntrack();
  host = new FakeHost('shop-db-1');
  cp = new FakeControlPlane(journal);
  agent = null;
  running = null;
});
afterEach(async () => {
  await agent?.stop();
  await running?.catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

function start(settings: Partial<AgentSettings> = {}): Agent {
  agent = new Agent(
    { ...SETTINGS, ...settings },
    { firewall, conntrack, host, state, log: silentLog, connect: async () => cp },
  );
  running = agent.run();
  running.catch(() => undefined);
  return agent;
}

describe('start-up', () => {
  it('re-applies the saved policy before it connects to anything, and enforces it while the control plane is away', async () => {
    await state.writeCredential(CREDENTIAL);
    await state.writePolicy({ policy: estatePolicy(4), controlPlane: CP, appliedAt: 'then' });
    cp.available = false;
    const a = start();
    await until('a connection attempt', () => journal.some((j) => j.startsWith('cp.')));
    const firstLoad = journal.indexOf('firewall.load');
    const firstCall = journal.findIndex((j) => j.startsWith('cp.'));
    expect(firstLoad).toBeGreaterThanOrEqual(0);
    expect(firstLoad).toBeLessThan(firstCall);
    // The whole table (the kernel is unknown after a restart), with the channel open.
    expect(firewall.loads[0]).toBe(nftScript(withControlPlane(estateState(), CP)));
    expect(firewall.loads[0]).toContain(CONTROL_PLANE_COMMENT);
    await new Promise((r) => setTimeout(r, 100));
    expect(a.status).toMatchObject({
      paired: true,
      streamOpen: false,
      appliedRevision: 4,
      mode: 'full',
    });
    expect(firewall.loads).toHaveLength(1);
  });

  it('re-applies the saved policy even when its credential is damaged', async () => {
    await state.writePolicy({ policy: estatePolicy(4), controlPlane: CP, appliedAt: 'then' });
    await writeFile(join(dir, 'credential.json'), '{"agentId": ');
    start();
    await expect(running).rejects.toThrow(/not paired yet/);
    expect(firewall.loads).toEqual([nftScript(withControlPlane(estateState(), CP))]);
  });

  it('will not start unpaired without an activation code, and touches nothing', async () => {
    await expect(start().run()).rejects.toThrow(AgentConfigError);
    await expect(running).rejects.toThrow(/not paired yet.*--activation-code/);
    expect(firewall.loads).toEqual([]);
    expect(journal).toEqual([]);
  });

  it('pairs once with the activation code, keeps the credential root-only, then applies and acknowledges its policy', async () => {
    cp.current = estatePolicy(1);
    const a = start({ activationCode: 'bhc_code', hostname: 'shop-db-1' });
    await until('the policy to be acknowledged', () => cp.acks.length > 0);
    expect(cp.pairings).toEqual([
      expect.objectContaining({
        activationCode: 'bhc_code',
        hostname: 'shop-db-1',
        addresses: ['198.18.250.1'],
        os: 'Debian GNU/Linux 12 (bookworm); Linux 6.1.0',
        users: ['alice'],
      }),
    ]);
    expect(await state.readCredential()).toMatchObject({
      agentId: 'agent-1',
      credential: 'bha_secret_credential',
    });
    expect((await stat(join(dir, 'credential.json'))).mode & 0o777).toBe(0o600);
    expect(cp.acks).toEqual([{ revision: 1, policyVersion: 1, result: 'applied' }]);
    expect(a.status).toMatchObject({ appliedRevision: 1, streamOpen: true });
    expect((await state.readPolicy())?.policy.revision).toBe(1);
    await until('a heartbeat with the applied revision', () =>
      cp.heartbeats.some((h) => h.appliedRevision === 1 && h.status === 'ok'),
    );
  });

  it('stops when the activation code is refused', async () => {
    cp.pairRefusal = 'ACTIVATION_CODE_EXPIRED';
    start({ activationCode: 'bhc_old' });
    await expect(running).rejects.toThrow(/pairing failed.*ACTIVATION_CODE_EXPIRED/);
  });
});

describe('running', () => {
  beforeEach(async () => {
    await state.writeCredential(CREDENTIAL);
  });

  it('applies a pushed revision at once, and reports a revision it cannot apply once', async () => {
    cp.current = estatePolicy(1);
    const a = start();
    await until('revision 1', () => a.status.appliedRevision === 1);
    cp.publish({ ...estatePolicy(2), nft: estateState('shop-api-1') });
    await until('revision 2', () => a.status.appliedRevision === 2);
    expect(firewall.loads.at(-1)).toMatch(/^# Bulkhead update/);
    firewall.failures.push(new Error('nft: syntax error'), new Error('nft: syntax error'));
    cp.publish({ ...estatePolicy(3), nft: estateState('shop-web-1') });
    await until('the failure to be acknowledged', () => cp.acks.some((k) => k.result === 'failed'));
    expect(cp.acks.at(-1)).toEqual({
      revision: 3,
      policyVersion: 3,
      result: 'failed',
      error: 'nft: syntax error',
    });
    expect(a.status.appliedRevision).toBe(2);
    await until('the heartbeat to say so', () => cp.heartbeats.at(-1)?.status === 'apply-failed');
    // Polls and heartbeats do not apply (nor report) the failed revision again.
    await new Promise((r) => setTimeout(r, 150));
    expect(cp.acks.filter((k) => k.result === 'failed')).toHaveLength(1);
    expect((await state.readPolicy())?.policy.revision).toBe(2);
  });

  it('restores a tampered table within moments and reports it', async () => {
    cp.current = estatePolicy(1);
    const a = start();
    await until('revision 1', () => a.status.appliedRevision === 1);
    const loads = firewall.loads.length;
    firewall.tamper(() => null);
    await until('the report', () => cp.tampers.length > 0);
    expect(firewall.loads).toHaveLength(loads + 1);
    expect(firewall.loads.at(-1)).toBe(firewall.loads[0]);
    expect(cp.tampers[0]).toMatchObject({
      table: 'inet bulkhead',
      kind: 'missing',
      differences: ['table inet bulkhead is missing'],
      restored: true,
      revision: 1,
      policyVersion: 1,
    });
  });

  it('spools the flows it sees while the control plane is away, and delivers them once when it returns', async () => {
    host.interfaceList = [{ name: 'eth0', addresses: ['198.18.250.2/24', '2001:db8::250:2/64'] }];
    cp.current = estatePolicy(1);
    const a = start();
    await until('revision 1', () => a.status.appliedRevision === 1);
    cp.available = false;
    await until('the stream to close', () => !a.status.streamOpen);
    conntrack.emit(...fixture('conntrack-events.out').split('\n'));
    await until('a spooled batch', () => a.status.spooledBatches > 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(cp.stored.size).toBe(0);
    cp.available = true;
    await until('delivery', () => a.status.spooledBatches === 0 && cp.stored.size > 0);
    const delivered = [...cp.stored.values()].flatMap((b) => b.summaries);
    const total = (decision: string) =>
      delivered.filter((s) => s.decision === decision).reduce((n, s) => n + s.connections, 0);
    // Each connection conntrack saw, once: 8080 twice, 9090, 7777, 5353 and the ICMP echo...
    expect(total('allowed')).toBe(6);
    // ...and the attempts the table's recording sets hold (the recorded listing: 2+2+1+2).
    expect(total('blocked')).toBe(7);
    expect(delivered.find((s) => s.dport === 7777)).toMatchObject({
      src: '198.18.250.2',
      bytes: 100,
      decision: 'allowed',
    });
    expect(cp.batches.length).toBe(cp.stored.size);
  });

  it('stops only once a flush under way has finished with the spool', async () => {
    host.interfaceList = [{ name: 'eth0', addresses: ['198.18.250.2/24', '2001:db8::250:2/64'] }];
    cp.current = estatePolicy(1);
    const a = start();
    await until('revision 1', () => a.status.appliedRevision === 1);
    let release = () => {};
    cp.flowsGate = new Promise((r) => (release = r));
    try {
      conntrack.emit(...fixture('conntrack-events.out').split('\n'));
      await until('a flush sending its batch', () => journal.includes('cp.flows'));
      let stopped = false;
      const stopping = a.stop().then(() => (stopped = true));
      await new Promise((r) => setTimeout(r, 100));
      // The flush waits on the control plane: stop waits for it, so nothing writes the state
      // directory (the spool) after stop has returned.
      expect(stopped).toBe(false);
      release();
      await stopping;
    } finally {
      release();
    }
    expect(a.status.spooledBatches).toBe(0);
    expect(cp.stored.size).toBeGreaterThan(0);
  });
});

/**
 * The whole product in the lab: a real control plane (its own process, on the embedded
 * store), the estate of examples/estate as a lab of network namespaces (examples/lab/shop.yaml)
 * with a real agent in each, real services, real traffic, and the kernel's verdict on every
 * probe held against the decision function.
 *
 * One lab serves every step, in order, because building it is the slow part: flows after
 * traffic, the probe matrix in the estate's mixed modes and then in full, selective and
 * visibility mode, tamper, the control plane down (agents restarted meanwhile), and a
 * deny-everything policy.
 */
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/agent/install.js';
import { ApiClient } from '../../src/cli/client.js';
import { run } from '../../src/host/run.js';
import type { ProbeRow } from '../../src/lab/probe.js';
import { freePort, ServerProcess } from '../../src/lab/server-process.js';
import { readState, type LabState } from '../../src/lab/state.js';
import type { TrafficResult } from '../../src/lab/traffic.js';
import type { EnforcementMode } from '../../src/policy/model.js';
import { openStore, type Store } from '../../src/store/store.js';
import { cli } from '../support/cli.js';
import { kernelLabUnavailable, lockPrefix } from '../support/kernel-probe.js';
import { activeAgents, agentsSettled, bulkhead, probeOracle, waitFor } from '../support/lab-e2e.js';

const PREFIX = 'bhe';
const OWNER = 'owner-key-for-the-lab-e2e-0123456789';
const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'dist/src/cli/main.js');
const unavailable = await kernelLabUnavailable(['nft', 'conntrack', 'ss']);

describe.skipIf(unavailable)(
  `the lab end to end${unavailable ? ` (skipped: ${unavailable})` : ''}`,
  () => {
    let dir: string;
    let labDir: string;
    let plane: ServerProcess;
    let store: Store;
    let state: LabState;
    let unlock: (() => Promise<void>) | null = null;
    const saved = { url: process.env.BULKHEAD_URL, token: process.env.BULKHEAD_TOKEN };

    let client: ApiClient;
    const api = <T>(method: string, path: string, body?: unknown): Promise<T> =>
      client.request<T>(method, path, body);
    const agents = () => activeAgents(client);
    const settled = () => agentsSettled(client);
    const setMode = async (mode: EnforcementMode) => {
      for (const env of ['prod', 'staging']) {
        await api('POST', '/workloads/mode', { selector: { labels: { env } }, mode });
      }
      await settled();
    };
    const probe = async (): Promise<ProbeRow[]> =>
      JSON.parse(await bulkhead('lab', 'probe', '--json', '--lab-dir', labDir)) as ProbeRow[];
    const traffic = async (...extra: string[]): Promise<TrafficResult[]> =>
      JSON.parse(
        await bulkhead('lab', 'traffic', '--json', '--lab-dir', labDir, ...extra),
      ) as TrafficResult[];
    const inside = async (workload: string, command: string[]): Promise<string> =>
      (await run(['ip', 'netns', 'exec', `${PREFIX}${workload}`, ...command])).stdout;

    /** Probes the lab; returns the probes the kernel and decide() disagree on, and the counts. */
    async function differential() {
      const decideProbe = await probeOracle(store);
      const rows = await probe();
      const mismatches = rows
        .map((row) => ({ row, decision: decideProbe(row).decision }))
        .filter(
          ({ row, decision }) => (decision === 'blocked' ? 'blocked' : 'allowed') !== row.result,
        )
        .map(
          ({ row, decision }) =>
            `${row.from} -> ${row.to} ${row.proto}/${row.port}: kernel ${row.result}, decide ${decision}`,
        );
      return {
        rows,
        mismatches,
        blocked: rows.filter((r) => r.result === 'blocked').length,
        decisions: rows.map((row) => ({ row, decision: decideProbe(row).decision })),
      };
    }

    beforeAll(async () => {
      unlock = await lockPrefix(PREFIX, 120_000);
      dir = await mkdtemp(join(tmpdir(), 'bulkhead-e2e-'));
      labDir = join(dir, 'lab');
      plane = new ServerProcess({
        port: await freePort(),
        dataDir: join(dir, 'plane'),
        ownerKey: OWNER,
      });
      await run(['mkdir', '-p', plane.dataDir]);
      await plane.start();
      client = new ApiClient(plane.url, OWNER);
      process.env.BULKHEAD_URL = plane.url;
      process.env.BULKHEAD_TOKEN = OWNER;
      await cli('lab', 'down', '--prefix', PREFIX, '--lab-dir', labDir);
      await bulkhead(
        'lab',
        'up',
        join(ROOT, 'examples/lab/shop.yaml'),
        '--prefix',
        PREFIX,
        '--lab-dir',
        labDir,
      );
      const read = await readState(labDir);
      if (!read) throw new Error(`lab up left no state in ${labDir}`);
      state = read;
      await bulkhead('apply', '-f', join(ROOT, 'examples/estate'));
      await bulkhead('provision', '-m', 'segment the shop');
      store = await openStore({ dataDir: plane.dataDir });
      await settled();
    }, 240_000);

    afterAll(async () => {
      await cli('lab', 'down', '--lab-dir', labDir).catch(() => undefined);
      await cli('lab', 'down', '--prefix', PREFIX, '--lab-dir', labDir).catch(() => undefined);
      await store?.close();
      await plane?.stop();
      process.env.BULKHEAD_URL = saved.url;
      process.env.BULKHEAD_TOKEN = saved.token;
      if (saved.url === undefined) delete process.env.BULKHEAD_URL;
      if (saved.token === undefined) delete process.env.BULKHEAD_TOKEN;
      await rm(dir, { recursive: true, force: true });
      await unlock?.();
    }, 120_000);

    it('holds the flows of real traffic with their workloads, ports and processes', async () => {
      const started = new Date().toISOString();
      const played = await traffic();
      expect(played.filter((t) => t.ok > 0).length).toBeGreaterThan(10);
      // Every line that got through is reported by the agent on its source (outbound, with the
      // client process) and on its destination (inbound, with the serving process).
      const managed = new Set(state.workloads.filter((w) => w.agent).map((w) => w.name));
      const expected = played.filter((t) => t.ok > 0);
      await waitFor('the agents to report the traffic', 30_000, async () => {
        const rows = await store.db
          .selectFrom('flow_summaries')
          .select(['workload', 'src', 'dst', 'dport', 'proto', 'process'])
          .where('last_seen', '>=', started)
          .execute();
        return expected.every(
          (t) =>
            (!managed.has(t.to) ||
              rows.some(
                (r) =>
                  r.workload === t.to &&
                  r.src === t.fromAddress &&
                  r.dst === t.toAddress &&
                  r.dport === t.port &&
                  r.proto === t.proto,
              )) &&
            (!managed.has(t.from) ||
              rows.some(
                (r) =>
                  r.workload === t.from &&
                  r.src === t.fromAddress &&
                  r.dst === t.toAddress &&
                  r.dport === t.port,
              )),
        );
      });
      const rows = await store.db
        .selectFrom('flow_summaries')
        .select(['workload', 'src', 'dst', 'dport', 'proto', 'process'])
        .where('last_seen', '>=', started)
        .execute();
      const listener = (workload: string, port: number) =>
        state.topology.workloads
          .find((w) => w.name === workload)!
          .listen.find((l) => l.port === port)!.process;
      // The serving process on the destination's side, the client's on the source's side.
      const unattributed = expected.flatMap((t) => {
        const reports = (workload: string) =>
          rows.filter(
            (r) =>
              r.workload === workload &&
              r.src === t.fromAddress &&
              r.dst === t.toAddress &&
              r.dport === t.port,
          );
        const wrong: string[] = [];
        const line = `${t.from} -> ${t.to} ${t.proto}/${t.port}`;
        const server = listener(t.to, t.port);
        if (managed.has(t.to) && !reports(t.to).some((r) => r.process === server))
          wrong.push(
            `${line}: ${t.to} did not name ${server} (named: ${reports(t.to)
              .map((r) => r.process ?? 'nothing')
              .join(', ')})`,
          );
        if (managed.has(t.from) && !reports(t.from).some((r) => r.process === t.process))
          wrong.push(
            `${line}: ${t.from} did not name ${t.process} (named: ${reports(t.from)
              .map((r) => r.process ?? 'nothing')
              .join(', ')})`,
          );
        return wrong;
      });
      expect(unattributed).toEqual([]);
    }, 60_000);

    it('enforces the estate (mixed modes) exactly as decide() says', async () => {
      const { mismatches, blocked, rows } = await differential();
      expect(mismatches).toEqual([]);
      expect(rows.length).toBeGreaterThan(100);
      expect(blocked).toBeGreaterThan(0);
    }, 60_000);

    it('enforces full mode exactly as decide() says', async () => {
      await setMode('full');
      const { mismatches, blocked, rows } = await differential();
      expect(mismatches).toEqual([]);
      expect(blocked).toBeGreaterThan(rows.length / 2);
    }, 60_000);

    it('enforces selective mode exactly as decide() says', async () => {
      await setMode('selective');
      const { mismatches, blocked } = await differential();
      expect(mismatches).toEqual([]);
      // The estate's deny rules (staging may not reach production) bite in selective mode too.
      expect(blocked).toBeGreaterThan(0);
    }, 60_000);

    it('blocks nothing in visibility mode and reports what full mode would block', async () => {
      await setMode('visibility');
      // Recorded attempts are timed from nft's whole seconds: allow one either side.
      const started = new Date(Date.now() - 1_000).toISOString();
      const { mismatches, blocked, decisions } = await differential();
      expect(mismatches).toEqual([]);
      expect(blocked).toBe(0);
      const wouldBlock = decisions.filter(
        (d) => d.decision === 'potentially-blocked' && d.row.listening,
      );
      expect(wouldBlock.length).toBeGreaterThan(0);
      const missing = async () => {
        const reported = await store.db
          .selectFrom('flow_summaries')
          .select(['src', 'dst', 'dport'])
          .where('decision', '=', 'potentially-blocked')
          .where('last_seen', '>=', started)
          .execute();
        return wouldBlock
          .filter(
            ({ row }) =>
              !reported.some(
                (r) => r.src === row.fromAddress && r.dst === row.toAddress && r.dport === row.port,
              ),
          )
          .map(({ row }) => `${row.from} -> ${row.to} ${row.proto}/${row.port}`);
      };
      await waitFor(
        'potentially blocked flows to be reported',
        30_000,
        async () => (await missing()).length === 0,
      ).catch(async (e: Error) => {
        const all = await store.db
          .selectFrom('flow_summaries')
          .select(['workload', 'src', 'dst', 'proto', 'dport', 'first_seen', 'last_seen'])
          .where('decision', '=', 'potentially-blocked')
          .execute();
        throw new Error(
          `${e.message}; not reported: ${(await missing()).join(', ')}; reported (started ${started}): ${JSON.stringify(all.slice(-20))}`,
        );
      });
    }, 90_000);

    it('undoes `nft flush ruleset` within 2 s and audits it', async () => {
      await setMode('full');
      const before = await inside('shop-db-1', ['nft', 'list', 'table', 'inet', 'bulkhead']);
      await inside('shop-db-1', ['nft', 'flush', 'ruleset']);
      const flushed = Date.now();
      await waitFor('the table to be restored', 2_000, async () => {
        const r = await run(
          ['ip', 'netns', 'exec', `${PREFIX}shop-db-1`, 'nft', 'list', 'table', 'inet', 'bulkhead'],
          { okCodes: [0, 1] },
        );
        return r.stdout.includes('chain input');
      });
      expect(Date.now() - flushed).toBeLessThan(2_000);
      const after = await inside('shop-db-1', ['nft', 'list', 'table', 'inet', 'bulkhead']);
      // Same rules (counters aside) as before the flush.
      const rules = (t: string) =>
        t
          .replace(/counter packets \d+ bytes \d+/g, 'counter')
          .split('\n')
          .filter((l) => !l.includes('expires'));
      expect(rules(after).filter((l) => /accept|drop|jump/.test(l))).toEqual(
        rules(before).filter((l) => /accept|drop|jump/.test(l)),
      );
      await waitFor('the tamper event in the audit log', 10_000, async () => {
        const { items } = await api<{ items: { type: string; name: string; after: unknown }[] }>(
          'GET',
          '/audit-events?type=agent.tamper',
        );
        return items.some((e) => JSON.stringify(e).includes('shop-db-1'));
      });
    }, 30_000);

    it('keeps enforcing while the control plane is down, across an agent restart, and delivers the flows later, once', async () => {
      const decideProbe = await probeOracle(store);
      const before = await probe();
      // Let the agents send what the probe made (they flush every 5 s), so that nothing of
      // it shares a summary with what is made while the control plane is away.
      await new Promise((r) => setTimeout(r, 6_000));
      await plane.stop();
      // Traffic while nobody listens: the agents spool what they see.
      const downtimeStart = new Date().toISOString();
      const played = await traffic();
      // Kill one agent and start it again from its state directory (no activation code).
      const victim = state.workloads.find((w) => w.name === 'shop-api-1')!;
      const agentPid = victim.agent!.pid;
      process.kill(agentPid, 'SIGKILL');
      const stateDir = victim.agent!.stateDir;
      const log = openSync(join(dir, 'restarted-agent.log'), 'a');
      const restarted = spawn(
        'ip',
        [
          'netns',
          'exec',
          `${PREFIX}shop-api-1`,
          process.execPath,
          ...NODE_FLAGS,
          MAIN,
          'agent',
          '--server',
          state.controlPlane!.agentUrl,
          '--state-dir',
          stateDir,
          '--hostname',
          'shop-api-1',
        ],
        { detached: true, stdio: ['ignore', log, log] },
      );
      restarted.unref();
      // The kernel's verdicts do not move while the control plane is away.
      const during = await probe();
      const verdicts = (rows: ProbeRow[]) =>
        rows.map((r) => `${r.from} ${r.to} ${r.proto}/${r.port} ${r.result}`).sort();
      expect(verdicts(during)).toEqual(verdicts(before));
      expect(before.filter((r) => decideProbe(r).decision === 'blocked').length).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 8_000));
      await plane.start();
      const landed = async () =>
        store.db
          .selectFrom('flow_summaries')
          .select(['workload', 'src', 'dst', 'dport', 'batch_id'])
          .select((eb) => eb.fn.sum<number>('connections').as('connections'))
          .where('first_seen', '>=', downtimeStart)
          .groupBy(['workload', 'src', 'dst', 'dport', 'batch_id'])
          .execute();
      const api1 = played.find(
        (t) => t.from === 'shop-web-1' && t.to === 'shop-api-1' && t.ok > 0,
      )!;
      expect(api1).toBeDefined();
      // Each connection counted once: the source's agent reports as many as were made (the
      // traffic's, and the probe's while the control plane was away).
      const probed = during.filter(
        (r) =>
          r.from === 'shop-web-1' &&
          r.to === 'shop-api-1' &&
          r.port === 8080 &&
          r.result === 'allowed',
      ).length;
      expect(probed).toBe(1);
      const counted = async () =>
        (await landed())
          .filter(
            (r) => r.workload === 'shop-web-1' && r.dst === api1.toAddress && r.dport === 8080,
          )
          .reduce((n, r) => n + Number(r.connections), 0);
      // The spool is sent a batch at a time: wait for all of it, then a flush interval more,
      // so that a batch delivered twice would show.
      await waitFor(
        'the spooled flows to arrive',
        45_000,
        async () => (await counted()) >= api1.ok + probed,
      );
      await new Promise((r) => setTimeout(r, 6_000));
      expect(
        await counted(),
        JSON.stringify(
          await store.db
            .selectFrom('flow_summaries')
            .select(['batch_id', 'first_seen', 'last_seen', 'connections', 'process', 'decision'])
            .where('workload', '=', 'shop-web-1')
            .where('dst', '=', api1.toAddress)
            .where('dport', '=', 8080)
            .execute(),
        ) + ` downtime from ${downtimeStart}`,
      ).toBe(api1.ok + probed);
      // The restarted agent is back and up to date.
      await settled();
      await waitFor('a heartbeat from the restarted agent', 30_000, async () => {
        const view = (await agents()).find((a) => a.workload === 'shop-api-1')!;
        return Date.parse(view.lastHeartbeatAt ?? '') > Date.parse(downtimeStart);
      });
    }, 150_000);

    it('a deny-everything policy leaves every agent connected', async () => {
      await setMode('full');
      // Remove every ruleset from the draft and provision: nothing is allowed any more.
      const draft = await api<{ items: { kind: string; name: string }[] }>('GET', '/policy/draft');
      for (const d of draft.items.filter((i) => i.kind === 'Ruleset')) {
        await api('DELETE', `/policy/draft/Ruleset/${encodeURIComponent(d.name)}`);
      }
      await bulkhead('provision', '-m', 'deny everything');
      await settled();
      const { mismatches, rows } = await differential();
      expect(mismatches).toEqual([]);
      const between = rows.filter((r) => r.listening && r.to !== 'vault-hsm');
      expect(between.every((r) => r.result === 'blocked')).toBe(true);
      // Heartbeats keep arriving after the deny-everything policy is in place.
      const mark = Date.now();
      await waitFor('a heartbeat from every agent after the lockdown', 60_000, async () =>
        (await agents()).every((a) => Date.parse(a.lastHeartbeatAt ?? '') > mark),
      );
    }, 120_000);
  },
);

/**
 * Issue 6's proof in the lab: generated policy, from real observed traffic to full
 * enforcement. A real control plane (its own process) and the shop topology of
 * examples/lab/shop.yaml (15 workloads, two applications, two environments, replicas) with a
 * real agent in each namespace, all in visibility mode and with no ruleset at all. The lab
 * plays its traffic lines; the generator turns the observed flows into rules at `service`
 * granularity, simulation finds nothing observed that would be blocked, the rules are
 * provisioned, every workload goes to full enforcement, and the kernel's verdicts are probed:
 * every observed (role, role, port) path is open for every replica pair, everything else is
 * closed. Then the same at `app` granularity (ring-fenced applications).
 *
 * The lab runs on its own prefix, state directory and network (198.19.0.0/16: the topology's
 * addresses moved from 198.18.x.y to 198.19.x.y), so it can run beside test/e2e/lab.test.ts.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/cli/client.js';
import { run } from '../../src/host/run.js';
import type { ProbeRow } from '../../src/lab/probe.js';
import { freePort, ServerProcess } from '../../src/lab/server-process.js';
import { readState, type LabState } from '../../src/lab/state.js';
import type { TrafficResult } from '../../src/lab/traffic.js';
import type { EndView, FlowRow } from '../../src/analysis/flows/model.js';
import { openStore, type Store } from '../../src/store/store.js';
import { cli } from '../support/cli.js';
import { kernelLabUnavailable, lockPrefix } from '../support/kernel-probe.js';
import { agentsSettled, bulkhead, probeOracle, waitFor } from '../support/lab-e2e.js';

const PREFIX = 'bhg';
const OWNER = 'owner-key-for-the-generate-e2e-0123456789';
const ROOT = resolve(import.meta.dirname, '../..');
const unavailable = await kernelLabUnavailable(['nft', 'conntrack', 'ss']);

/** The lab's network, apart from lab.test.ts's 198.18.0.0/15 addresses. */
const NETWORK = '198.19.0.0/16';
const moved = (text: string) => text.replaceAll('198.18.', '198.19.');

/**
 * Only what the lab needs whatever the policy: name lookups and the agents' way to the
 * control plane (the relay on the bridge), as examples/estate's settings, in this network.
 */
const SETTINGS = `kind: Settings
alwaysAllowed:
  - name: dns
    addresses: [198.19.0.53]
    ports: ["53/udp", "53/tcp"]
  - name: control-plane
    addresses: [198.19.0.1]
    ports: ["7480/tcp"]
`;

const endName = (e: EndView) => e.workload ?? null;

interface Coverage {
  share: number;
  flows: { inScope: number; allowed: number };
  notAllowed: { source: string; destination: string; service: string; reason: string }[];
}
interface GenerateAnswer {
  coverage: Coverage;
  documents: { kind: string; name: string }[];
  yaml: string;
  written: boolean;
}

describe.skipIf(unavailable)(
  `generated policy in the lab${unavailable ? ` (skipped: ${unavailable})` : ''}`,
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
    const settled = () => agentsSettled(client);
    const labelsOf = (workload: string) =>
      state.topology.workloads.find((w) => w.name === workload)!.labels;

    /**
     * Where a path falls at a granularity: the labels the generated rules are written in
     * (application, environment, and at `service` the role) of each end, and the service.
     */
    const pathKey = (
      granularity: 'service' | 'app',
      from: string,
      to: string,
      port: number,
      proto: string,
    ) => {
      const end = (w: string) => {
        const l = labelsOf(w);
        return granularity === 'service' ? `${l.app}/${l.env}/${l.role}` : `${l.app}/${l.env}`;
      };
      return `${end(from)} -> ${end(to)} ${proto}/${port}`;
    };
    const observedPaths = (granularity: 'service' | 'app') =>
      new Set(
        state.topology.traffic.map((t) => pathKey(granularity, t.from, t.to, t.port, t.proto)),
      );
    const sameAppEnv = (a: string, b: string) =>
      labelsOf(a).app === labelsOf(b).app && labelsOf(a).env === labelsOf(b).env;
    /**
     * The application environments a ring fence goes around at `app` granularity: those with
     * traffic observed inside them (a rule needs flows to justify it; ops and infra have none).
     */
    const fenced = () =>
      new Set(
        state.topology.traffic
          .filter((t) => sameAppEnv(t.from, t.to))
          .map((t) => `${labelsOf(t.from).app}/${labelsOf(t.from).env}`),
      );
    const line = (r: ProbeRow) => `${r.from} -> ${r.to} ${r.proto}/${r.port}`;

    const probe = async (): Promise<ProbeRow[]> =>
      JSON.parse(await bulkhead('lab', 'probe', '--json', '--lab-dir', labDir)) as ProbeRow[];

    /** The probe rows on which the kernel and decide() on the active policy disagree. */
    async function mismatches(rows: readonly ProbeRow[]): Promise<string[]> {
      const decideProbe = await probeOracle(store);
      return rows
        .map((row) => ({ row, decision: decideProbe(row).decision }))
        .filter(
          ({ row, decision }) => (decision === 'blocked' ? 'blocked' : 'allowed') !== row.result,
        )
        .map(({ row, decision }) => `${line(row)}: kernel ${row.result}, decide ${decision}`);
    }

    /** Provisions the draft, puts every workload in full enforcement, waits for the agents. */
    async function enforce(message: string): Promise<void> {
      // Nothing observed may be newly blocked: simulate exits 1 if anything would be.
      await bulkhead('policy', 'simulate', '--since', '1h');
      await bulkhead('provision', '-m', message);
      for (const env of ['prod', 'staging'])
        await bulkhead('workloads', 'mode', 'full', '--selector', `env=${env}`);
      await settled();
    }

    beforeAll(async () => {
      unlock = await lockPrefix(PREFIX, 120_000);
      dir = await mkdtemp(join(tmpdir(), 'bulkhead-e2e-generate-'));
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
      // The shop, moved into this test's network; every workload pairs in visibility mode
      // (the topology's default), so the traffic is observed, never blocked.
      const topology = join(dir, 'shop.yaml');
      await writeFile(
        topology,
        moved(await readFile(join(ROOT, 'examples/lab/shop.yaml'), 'utf8')).replace(
          /^name: shop$/m,
          `name: shop\nnetwork: {ipv4: ${NETWORK}}`,
        ),
      );
      const settings = join(dir, 'settings.yaml');
      await writeFile(settings, SETTINGS);
      await cli('lab', 'down', '--prefix', PREFIX, '--lab-dir', labDir);
      await bulkhead('lab', 'up', topology, '--prefix', PREFIX, '--lab-dir', labDir);
      const read = await readState(labDir);
      if (!read) throw new Error(`lab up left no state in ${labDir}`);
      state = read;
      expect(state.topology.workloads.every((w) => w.mode === 'visibility')).toBe(true);
      // No ruleset: nothing allows the applications' traffic until the generator writes it.
      await bulkhead('apply', '-f', settings);
      await bulkhead('provision', '-m', 'settings only');
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

    /** The app-granularity draft, generated from the same flows as the service one (below). */
    let appDraft: GenerateAnswer;

    it('observes the traffic lines and generates policy covering all of them', async () => {
      const played = JSON.parse(
        await bulkhead('lab', 'traffic', '--json', '--lab-dir', labDir),
      ) as TrafficResult[];
      // Visibility mode: every line gets through.
      expect(played.filter((t) => t.ok === 0).map((t) => `${t.from} -> ${t.to}`)).toEqual([]);
      // Each line in the flow store's rolled-up, decided flows (what the explorer, the map and
      // the generator read), between the two workloads, on its port.
      await waitFor('the flow store to roll up every traffic line', 60_000, async () => {
        const status = await api<{ pendingSummaries: number; decisionsCurrent: boolean }>(
          'GET',
          '/flows/status',
        );
        if (status.pendingSummaries !== 0 || !status.decisionsCurrent) return false;
        const { items } = await api<{ items: FlowRow[] }>('GET', '/flows?since=1h&limit=1000');
        return played.every((t) =>
          items.some(
            (r) =>
              endName(r.source) === t.from &&
              endName(r.destination) === t.to &&
              r.port === t.port &&
              r.proto === t.proto,
          ),
        );
      });
      // The app granularity's rules, previewed now, from exactly these flows. Generated after
      // the probe, they would also admit every probe the kernel dropped: the generator reads
      // blocked attempts as observed flows (see the app granularity step).
      appDraft = JSON.parse(
        await bulkhead(
          'policy',
          'generate',
          '--granularity',
          'app',
          '--since',
          '1h',
          '--dry-run',
          '--json',
        ),
      ) as GenerateAnswer;
      expect(appDraft.coverage.notAllowed).toEqual([]);
      expect(appDraft.coverage.share).toBe(1);
      expect(appDraft.written).toBe(false);

      const answer = JSON.parse(
        await bulkhead('policy', 'generate', '--granularity', 'service', '--since', '1h', '--json'),
      ) as GenerateAnswer;
      expect(answer.written).toBe(true);
      expect(answer.coverage.notAllowed).toEqual([]);
      expect(answer.coverage.share).toBe(1);
      expect(answer.coverage.flows.inScope).toBeGreaterThanOrEqual(played.length);
      expect(answer.documents.filter((d) => d.kind === 'Ruleset').length).toBeGreaterThan(0);
    }, 120_000);

    it('service granularity: observed role-to-role services open for every replica, the rest closed', async () => {
      await enforce('generated: service granularity');
      const rows = await probe();
      expect(await mismatches(rows)).toEqual([]);
      const observed = observedPaths('service');
      const listening = rows.filter((r) => r.listening);
      const isObserved = (r: ProbeRow) =>
        observed.has(pathKey('service', r.from, r.to, r.port, r.proto));
      // Every observed path, between every replica of its roles, gets through...
      const closed = listening.filter((r) => isObserved(r) && r.result !== 'allowed').map(line);
      expect(closed).toEqual([]);
      // ...including the replica pairs the traffic never used (jump-2 -> shop-db-1 ssh).
      expect(
        listening.some(
          (r) =>
            r.from === 'jump-2' && r.to === 'shop-db-1' && r.port === 22 && r.result === 'allowed',
        ),
      ).toBe(true);
      // ...and nothing else does. Not even other name lookups: dns-1 is a managed workload,
      // and the settings' always-allowed entry opens the clients' side of a lookup, not its
      // inbound side, which follows the rules like any other service.
      const open = listening.filter((r) => !isObserved(r) && r.result !== 'blocked').map(line);
      expect(open).toEqual([]);
      // Closed: other services between roles that do talk, across environments and across
      // applications.
      const blocked = listening.filter((r) => r.result === 'blocked');
      expect(
        blocked.some((r) => r.from === 'shop-web-1' && r.to === 'shop-api-1' && r.port === 22),
      ).toBe(true);
      expect(
        blocked.filter((r) => labelsOf(r.from).env !== labelsOf(r.to).env).length,
      ).toBeGreaterThan(20);
      expect(
        blocked.filter((r) => labelsOf(r.from).app !== labelsOf(r.to).app).length,
      ).toBeGreaterThan(20);
    }, 120_000);

    it('app granularity: anything inside an application, across applications only the observed services', async () => {
      // A clean draft: the service-level rules go, the app-level ones (previewed from the
      // traffic alone, before any probe) come in. Regenerating now would read the probes'
      // blocked attempts as observed flows too and write rules for them.
      const draft = await api<{ items: { kind: string; name: string }[] }>('GET', '/policy/draft');
      for (const d of draft.items.filter((i) => i.kind === 'Ruleset' || i.kind === 'IpList'))
        await api('DELETE', `/policy/draft/${d.kind}/${encodeURIComponent(d.name)}`);
      const file = join(dir, 'app.yaml');
      await writeFile(file, appDraft.yaml);
      await bulkhead('apply', '-f', file);
      await enforce('generated: app granularity');
      const rows = await probe();
      expect(await mismatches(rows)).toEqual([]);
      const observed = observedPaths('app');
      const fences = fenced();
      expect([...fences].sort()).toEqual(['payments/prod', 'shop/prod', 'shop/staging']);
      const expected = (r: ProbeRow) =>
        (sameAppEnv(r.from, r.to) &&
          fences.has(`${labelsOf(r.from).app}/${labelsOf(r.from).env}`)) ||
        observed.has(pathKey('app', r.from, r.to, r.port, r.proto));
      const listening = rows.filter((r) => r.listening);
      const wrong = listening
        .filter((r) => (expected(r) ? 'allowed' : 'blocked') !== r.result)
        .map((r) => `${line(r)}: ${r.result}`);
      expect(wrong, appDraft.yaml).toEqual([]);
      // Inside the ring fence, services nobody used are open (ssh web -> api)...
      expect(
        listening.some(
          (r) =>
            r.from === 'shop-web-1' &&
            r.to === 'shop-api-1' &&
            r.port === 22 &&
            r.result === 'allowed',
        ),
      ).toBe(true);
      // ...while across environments and applications most is closed.
      const blocked = listening.filter((r) => r.result === 'blocked');
      expect(
        blocked.filter((r) => labelsOf(r.from).env !== labelsOf(r.to).env).length,
      ).toBeGreaterThan(20);
      expect(
        blocked.filter((r) => labelsOf(r.from).app !== labelsOf(r.to).app).length,
      ).toBeGreaterThan(20);
    }, 120_000);
  },
);

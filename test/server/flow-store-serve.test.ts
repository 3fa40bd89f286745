import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { AuditFeed } from '../../src/server/audit.js';
import { affectsDecisions, createFlowStore } from '../../src/server/flows/service.js';
import { serve } from '../../src/server/serve.js';
import { appendFlowBatch } from '../../src/store/flows.js';
import { cli } from '../support/cli.js';
import { testStore } from '../support/server.js';

describe('the flow store in a running control plane', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-flows-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('rolls up summaries in the background while serving, and stops with the server', async () => {
    const running = await serve({
      host: '127.0.0.1',
      port: 0,
      dataDir: dir,
      logLevel: 'silent',
      flows: { intervalMs: 20, retention: { minute: 7200 } },
    });
    try {
      const seen = new Date(Date.now() - 60_000).toISOString();
      await appendFlowBatch(
        running.store,
        { agent_id: 'a', batch_id: 'b1', received_at: seen, summaries: 1 },
        [
          {
            agent_id: 'a',
            batch_id: 'b1',
            workload: '',
            src: '203.0.113.1',
            dst: '10.0.0.1',
            proto: 'tcp',
            dport: 443,
            process: null,
            first_seen: seen,
            last_seen: seen,
            connections: 3,
            bytes: 300,
            decision: null,
          },
        ],
      );
      const flows = running.app.bulkhead.flows;
      const deadline = Date.now() + 10_000;
      while ((await flows.status()).pendingSummaries > 0) {
        if (Date.now() > deadline) throw new Error('the loop never rolled the summary up');
        await new Promise((r) => setTimeout(r, 20));
      }
      const status = await flows.status();
      expect(status).toMatchObject({ edges: 1, retention: { minute: 7200, hour: 90 * 86_400 } });
      expect(status.lastError).toBeUndefined();
      const page = await flows.explore({}, { key: 'connections', descending: true }, 10, null);
      expect(page.items.map((r) => r.connections)).toEqual([3]);
    } finally {
      await running.close();
    }
  });

  it('refuses a retention it cannot read, naming the flag', async () => {
    const r = await cli('server', '--data-dir', dir, '--flow-retention', 'hour=forever');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /--flow-retention \(or BULKHEAD_FLOW_RETENTION\): "forever" is not a duration/,
    );
    const r2 = await cli('server', '--data-dir', dir, '--flow-retention', 'weeks=2');
    expect(r2.err).toMatch(/"weeks=2" is not resolution=duration/);
  });

  it('says which data directory it cannot make, without a stack, and exits 1', async () => {
    const r = await cli('server', '--data-dir', '/proc/bulkhead-nonexistent/data', '--port', '0');
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      "bulkhead: cannot open the store at /proc/bulkhead-nonexistent/data/bulkhead.db: ENOENT: no such file or directory, mkdir '/proc/bulkhead-nonexistent'",
    );
    expect(r.err).not.toContain('    at ');
  });
});

describe('which audit events re-decide flows', () => {
  const event = (type: string, before: unknown = null, after: unknown = null) => ({
    type,
    before,
    after,
  });
  it('policy, draft and workload changes do; keys, agents and pairing do not', () => {
    for (const t of [
      'policy.provision',
      'policy.rollback',
      'draft.create',
      'draft.replace',
      'draft.delete',
      'workload.labels',
      'workload.mode',
      'workload.create',
      'workload.update',
      'workload.delete',
      'workload.adopt',
    ])
      expect(affectsDecisions(event(t)), t).toBe(true);
    for (const t of [
      'key.create',
      'agent.pair',
      'agent.tamper',
      'pairing-profile.create',
      'activation-code.revoke',
      'http',
    ])
      expect(affectsDecisions(event(t)), t).toBe(false);
  });
  it("an inventory does only when it changes the workload's addresses or users", () => {
    const inv = (addresses: string[], users: string[], listening: number) => ({
      addresses,
      users,
      listening,
    });
    expect(
      affectsDecisions(
        event('workload.inventory', inv(['10.0.0.1'], [], 3), inv(['10.0.0.1'], [], 5)),
      ),
    ).toBe(false);
    expect(
      affectsDecisions(
        event('workload.inventory', inv(['10.0.0.1'], [], 3), inv(['10.0.0.2'], [], 3)),
      ),
    ).toBe(true);
    expect(
      affectsDecisions(
        event('workload.inventory', inv(['10.0.0.1'], [], 3), inv(['10.0.0.1'], ['ann'], 3)),
      ),
    ).toBe(true);
    expect(affectsDecisions(event('workload.inventory', null, inv(['10.0.0.1'], [], 3)))).toBe(
      true,
    );
  });
});

describe('a failing roll-up', () => {
  it('is logged and reported by status, and the loop keeps going', async () => {
    const ts = await testStore('sqlite');
    const logged: string[] = [];
    const flows = createFlowStore(
      {
        store: ts.store,
        audit: new AuditFeed(),
        log: { error: (_o, msg) => logged.push(msg), warn: (_o, msg) => logged.push(msg) },
      },
      { intervalMs: 5 },
    );
    try {
      await sql`drop table flow_days`.execute(ts.store.db);
      const seen = new Date().toISOString();
      const row = {
        agent_id: 'a',
        batch_id: 'b',
        workload: '',
        src: '203.0.113.1',
        dst: '10.0.0.1',
        proto: 'tcp',
        dport: 443,
        process: null,
        first_seen: seen,
        last_seen: seen,
        connections: 1,
        bytes: 1,
        decision: null,
      };
      await appendFlowBatch(
        ts.store,
        { agent_id: 'a', batch_id: 'b', received_at: seen, summaries: 1 },
        [row],
      );
      flows.start();
      const deadline = Date.now() + 10_000;
      let status = await flows.status();
      while (status.lastError === undefined) {
        if (Date.now() > deadline) throw new Error('no error reported');
        await new Promise((r) => setTimeout(r, 10));
        status = await flows.status();
      }
      expect(status.lastError).toMatch(/flow_days/);
      expect(status.pendingSummaries).toBe(1);
      expect(logged).toContain('flow store round failed; retrying');
    } finally {
      await flows.stop();
      await ts.cleanup();
    }
  });
});

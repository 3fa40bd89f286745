/**
 * The agent's side of the wire against the real control plane: the new integrity routes
 * (tamper and dropped telemetry, both audited), the HTTP channel over a real socket, and
 * what the agent sends checked against the server's own schemas.
 */
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { httpControlPlane } from '../../src/agent/channel/http-control-plane.js';
import { ControlPlaneRefused, ControlPlaneUnavailable } from '../../src/agent/errors.js';
import { takeInventory } from '../../src/agent/inventory.js';
import { workloadAddresses } from '../../src/agent/parse/ip-addr.js';
import { parseSs } from '../../src/agent/parse/ss.js';
import { FlowAggregator } from '../../src/agent/telemetry/aggregate.js';
import { SocketTable } from '../../src/agent/telemetry/sockets.js';
import type { PolicyNotice, TamperReport } from '../../src/agent/wire.js';
import {
  flowsBody,
  flowsDroppedBody,
  heartbeatBody,
  inventoryBody,
  pairBody,
  tamperBody,
} from '../../src/server/agent-schemas.js';
import { redistribute } from '../../src/server/distribution.js';
import { testServer, type TestServer } from '../support/server.js';
import { FakeHost, fixture } from './support/fakes.js';

let s: TestServer;
beforeEach(async () => {
  s = await testServer('sqlite');
});
afterEach(async () => {
  await s.close();
});

async function pairedAgent(hostname = 'db-1'): Promise<{ agentId: string; credential: string }> {
  const profile = await s.call({
    method: 'POST',
    url: '/api/v1/pairing-profiles',
    payload: { name: 'db', labels: { role: 'db' }, mode: 'full' },
  });
  const code = await s.call({
    method: 'POST',
    url: `/api/v1/pairing-profiles/${profile.json<{ id: string }>().id}/activation-codes`,
    payload: { maxUses: 5 },
  });
  const paired = await s.call({
    method: 'POST',
    url: '/api/v1/agents/pair',
    token: null,
    payload: {
      activationCode: code.json<{ code: string }>().code,
      hostname,
      addresses: ['198.18.0.20'],
    },
  });
  expect(paired.statusCode, paired.body).toBe(201);
  return paired.json();
}

const TAMPER: TamperReport = {
  detectedAt: '2026-01-05T10:00:00.000Z',
  table: 'inet bulkhead',
  kind: 'missing',
  differences: ['table inet bulkhead is missing'],
  restored: true,
  revision: 3,
  policyVersion: 2,
};

describe('POST /api/v1/agent/tamper and /agent/flows-dropped', () => {
  it('records an agent.tamper audit event, by the agent, naming its workload', async () => {
    const { agentId, credential } = await pairedAgent();
    const r = await s.call({
      method: 'POST',
      url: '/api/v1/agent/tamper',
      token: credential,
      payload: TAMPER,
    });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toEqual({ recorded: true });
    const event = await s.store.db
      .selectFrom('audit_events')
      .selectAll()
      .where('type', '=', 'agent.tamper')
      .executeTakeFirstOrThrow();
    expect(event.actor).toBe(`agent:${agentId} (db-1)`);
    expect(event.resource_kind).toBe('Agent');
    expect(event.resource_name).toBe(agentId);
    expect(JSON.parse(event.after!)).toEqual({ workload: 'db-1', ...TAMPER });
    // It shows in the audit log people read.
    const log = await s.call({ method: 'GET', url: '/api/v1/audit-events' });
    expect(log.body).toContain('agent.tamper');
  });

  it('takes reports from agents only, and refuses malformed ones, storing nothing', async () => {
    const { credential } = await pairedAgent();
    const owner = await s.call({ method: 'POST', url: '/api/v1/agent/tamper', payload: TAMPER });
    expect(owner.statusCode).toBe(403);
    const anonymous = await s.call({
      method: 'POST',
      url: '/api/v1/agent/tamper',
      token: null,
      payload: TAMPER,
    });
    expect(anonymous.statusCode).toBe(401);
    const before = await s.store.db.selectFrom('audit_events').select('id').execute();
    for (const [payload, field] of [
      [{ ...TAMPER, kind: 'flushed' }, 'body.kind'],
      [{ ...TAMPER, differences: [] }, 'body.differences'],
      [{ ...TAMPER, detectedAt: 'yesterday' }, 'body.detectedAt'],
      [{ ...TAMPER, extra: 1 }, 'extra'],
    ] as const) {
      const r = await s.call({
        method: 'POST',
        url: '/api/v1/agent/tamper',
        token: credential,
        payload,
      });
      expect(r.statusCode, field).toBe(400);
      expect(r.body).toContain(field);
    }
    expect(await s.store.db.selectFrom('audit_events').select('id').execute()).toEqual(before);
  });

  it('records dropped telemetry as agent.flows-dropped', async () => {
    const { credential } = await pairedAgent();
    const report = {
      batches: 3,
      summaries: 420,
      firstDroppedAt: '2026-01-05T10:00:00.000Z',
      lastDroppedAt: '2026-01-05T10:05:00.000Z',
      reason: 'the flow spool reached its size limit',
    };
    const r = await s.call({
      method: 'POST',
      url: '/api/v1/agent/flows-dropped',
      token: credential,
      payload: report,
    });
    expect(r.statusCode, r.body).toBe(200);
    const event = await s.store.db
      .selectFrom('audit_events')
      .selectAll()
      .where('type', '=', 'agent.flows-dropped')
      .executeTakeFirstOrThrow();
    expect(JSON.parse(event.after!)).toEqual({ workload: 'db-1', ...report });
    const backwards = await s.call({
      method: 'POST',
      url: '/api/v1/agent/flows-dropped',
      token: credential,
      payload: { ...report, lastDroppedAt: '2026-01-05T09:00:00.000Z' },
    });
    expect(backwards.statusCode).toBe(400);
  });
});

describe('the HTTP channel against a real control plane', () => {
  it('pairs, heartbeats, fetches the policy with its ETag, follows the event stream, delivers flows once', async () => {
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(s.app.server.address() as AddressInfo).port}`;
    const profile = await s.call({
      method: 'POST',
      url: '/api/v1/pairing-profiles',
      payload: { name: 'db', mode: 'full' },
    });
    const code = await s.call({
      method: 'POST',
      url: `/api/v1/pairing-profiles/${profile.json<{ id: string }>().id}/activation-codes`,
      payload: {},
    });
    const host = new FakeHost('db-1');
    const sockets = new SocketTable(parseSs(fixture('ss-server.out')));
    const inventory = await takeInventory(host, 'db-1', host.interfaceList, sockets);
    const anonymous = await httpControlPlane({ server: url, credential: null });
    const paired = await anonymous.pair({
      activationCode: code.json<{ code: string }>().code,
      addresses: workloadAddresses(inventory.interfaces),
      ...inventory,
    });
    expect(paired).toMatchObject({ workload: 'db-1', pollIntervalSeconds: 30 });

    const cp = await httpControlPlane({ server: url, credential: paired.credential });
    expect(await cp.heartbeat({ status: 'ok' })).toMatchObject({
      workload: 'db-1',
      revision: 1,
      mode: 'full',
    });
    const policy = await cp.policy(null);
    expect(policy).toMatchObject({ workload: 'db-1', revision: 1, mode: 'full' });
    expect(policy!.nft.chains.map((c) => c.name)).toContain('input');
    expect(await cp.policy('"1"')).toBeNull();
    await cp.ack({ revision: 1, policyVersion: 0, result: 'applied' });
    await cp.inventory({ ...inventory, users: ['bob'] });

    const notices: PolicyNotice[] = [];
    const stop = new AbortController();
    let opened = false;
    const stream = cp.events(
      { onOpen: () => (opened = true), onPolicy: (n) => notices.push(n) },
      stop.signal,
    );
    await expect.poll(() => notices.length).toBe(1);
    expect(opened).toBe(true);
    expect(notices[0]).toMatchObject({ workload: 'db-1', revision: 1 });
    const changed = await s.store.transaction(async (trx) => {
      await trx
        .updateTable('workloads')
        .set({ mode: 'visibility' })
        .where('name', '=', 'db-1')
        .execute();
      return redistribute(trx);
    });
    s.app.bulkhead.policies.announce(changed);
    await expect.poll(() => notices.length).toBe(2);
    expect(notices[1]).toMatchObject({ revision: 2 });
    stop.abort();
    await stream;

    const batch = {
      batchId: 'b-1',
      summaries: [
        {
          src: '198.18.0.9',
          dst: '198.18.250.1',
          proto: 'tcp' as const,
          dport: 8080,
          process: 'node',
          firstSeen: '2026-01-05T10:00:00.000Z',
          lastSeen: '2026-01-05T10:00:01.000Z',
          connections: 2,
          bytes: 100,
          decision: 'allowed' as const,
        },
      ],
    };
    expect(await cp.flows(batch)).toEqual({ duplicate: false });
    expect(await cp.flows(batch)).toEqual({ duplicate: true });
    await cp.tamper(TAMPER);

    const impostor = await httpControlPlane({ server: url, credential: 'bha_not-a-credential' });
    await expect(impostor.heartbeat({})).rejects.toThrow(ControlPlaneRefused);
    await expect(impostor.heartbeat({})).rejects.toMatchObject({ status: 401 });
    await expect(cp.tamper({ ...TAMPER, differences: [] })).rejects.toMatchObject({
      status: 400,
      code: 'VALIDATION_FAILED',
    });
    await s.app.close();
    await expect(cp.heartbeat({})).rejects.toThrow(ControlPlaneUnavailable);
  });
});

describe("what the agent sends passes the control plane's schemas", () => {
  it('inventory, pairing, heartbeat, flow summaries, reports', async () => {
    const host = new FakeHost('db-1');
    host.socketList = [
      ...parseSs(fixture('ss-listen.out')),
      ...parseSs(fixture('ss-host-listen.out')),
      ...parseSs(fixture('ss-server.out')),
    ];
    const inventory = await takeInventory(
      host,
      'db-1',
      host.interfaceList,
      new SocketTable(host.socketList),
    );
    expect(inventory.listening.length).toBeGreaterThan(10);
    // Listed in a stable order, the same on every host: protocol, then port, then address.
    const order = inventory.listening.map((l) => [l.proto, l.port, l.address ?? ''] as const);
    const sorted = [...order].sort(
      (x, y) =>
        (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0) ||
        x[1] - y[1] ||
        (x[2] < y[2] ? -1 : x[2] > y[2] ? 1 : 0),
    );
    expect(order).toEqual(sorted);
    expect(new Set(order.map((o) => o[0]))).toEqual(new Set(['tcp', 'udp']));
    expect(inventoryBody.safeParse(inventory).error).toBeUndefined();
    expect(
      pairBody.safeParse({
        activationCode: 'bhc_x',
        addresses: workloadAddresses(inventory.interfaces),
        ...inventory,
      }).error,
    ).toBeUndefined();
    expect(
      heartbeatBody.safeParse({ appliedRevision: 3, appliedVersion: 2, status: 'apply-failed' })
        .error,
    ).toBeUndefined();
    const a = new FlowAggregator();
    a.add({
      src: '198.18.0.9',
      dst: '2001:db8::1',
      proto: 'icmpv6',
      dport: undefined,
      process: undefined,
      decision: undefined,
      at: Date.now(),
      connections: 1,
      bytes: 0,
    });
    a.add({
      src: '198.18.0.9',
      dst: '198.18.0.1',
      proto: 'udp',
      dport: 53,
      process: 'systemd-resolved',
      decision: 'potentially-blocked',
      at: Date.now(),
      connections: 4,
      bytes: 512,
    });
    expect(
      flowsBody.safeParse({ batchId: 'mk2x3-0a1b2c3d4e5f', summaries: a.drain().summaries }).error,
    ).toBeUndefined();
    expect(tamperBody.safeParse(TAMPER).error).toBeUndefined();
    expect(
      flowsDroppedBody.safeParse({
        batches: 1,
        summaries: 5,
        firstDroppedAt: TAMPER.detectedAt,
        lastDroppedAt: TAMPER.detectedAt,
        reason: 'full',
      }).error,
    ).toBeUndefined();
  });
});

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { redistribute } from '../../src/server/distribution.js';
import type { Database } from '../../src/store/schema.js';
import { postgresSkipReason, STORE_KINDS, testServer, type TestServer } from '../support/server.js';

interface Paired {
  agentId: string;
  credential: string;
  workload: string;
  pollIntervalSeconds: number;
}

async function makeProfile(
  s: TestServer,
  body: Record<string, unknown> = { name: 'web', labels: { role: 'web', env: 'prod' } },
): Promise<string> {
  const r = await s.call({ method: 'POST', url: '/api/v1/pairing-profiles', payload: body });
  expect(r.statusCode).toBe(201);
  return r.json<{ id: string }>().id;
}

async function makeCode(
  s: TestServer,
  profileId: string,
  body: Record<string, unknown> = { maxUses: 10 },
): Promise<{ id: string; code: string }> {
  const r = await s.call({
    method: 'POST',
    url: `/api/v1/pairing-profiles/${profileId}/activation-codes`,
    payload: body,
  });
  expect(r.statusCode).toBe(201);
  return r.json<{ id: string; code: string }>();
}

function pair(s: TestServer, code: string, hostname: string, addresses = ['10.0.0.1']) {
  return s.call({
    method: 'POST',
    url: '/api/v1/agents/pair',
    token: null,
    payload: { activationCode: code, hostname, addresses, os: 'Linux 6.8' },
  });
}

async function paired(s: TestServer, code: string, hostname: string, addresses?: string[]) {
  const r = await pair(s, code, hostname, addresses);
  expect(r.statusCode, r.body).toBe(201);
  return r.json<Paired>();
}

async function count(s: TestServer, table: keyof Database): Promise<number> {
  const row = await s.store.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function auditTypes(s: TestServer): Promise<string[]> {
  const rows = await s.store.db.selectFrom('audit_events').select('type').orderBy('id').execute();
  return rows.map((r) => r.type);
}

/** Changes a workload's mode behind the API, as a provision or label change would, and announces it. */
async function bump(s: TestServer, workload: string, mode: string) {
  const changed = await s.store.transaction(async (trx) => {
    await trx.updateTable('workloads').set({ mode }).where('name', '=', workload).execute();
    return redistribute(trx);
  });
  s.app.bulkhead.policies.announce(changed);
  return changed;
}

describe.each(STORE_KINDS)('agent channel on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  let s: TestServer;
  beforeEach(async () => {
    if (!skip) s = await testServer(kind);
  });
  afterEach(async () => {
    if (!skip) await s.close();
  });

  it.skipIf(skip)(
    'pairs an agent: workload, agent, credential, uses, compiled policy, audit',
    async () => {
      const profileId = await makeProfile(s, {
        name: 'web',
        labels: { role: 'web', env: 'prod' },
        mode: 'selective',
      });
      const profiles = await s.call({ method: 'GET', url: '/api/v1/pairing-profiles' });
      expect(profiles.json()).toMatchObject({
        items: [{ id: profileId, name: 'web', mode: 'selective' }],
      });
      const { id: codeId, code } = await makeCode(s, profileId, {
        maxUses: 2,
        expiresInSeconds: 600,
      });
      expect(code).toMatch(/^bhc_/);
      const codes = await s.call({
        method: 'GET',
        url: `/api/v1/pairing-profiles/${profileId}/activation-codes`,
      });
      expect(codes.json()).toMatchObject({ items: [{ id: codeId, uses: 0, state: 'usable' }] });
      expect(codes.body).not.toContain(code);

      const agent = await paired(s, code, 'web-1', ['10.0.0.1', '2001:db8::0:1']);
      expect(agent).toMatchObject({ workload: 'web-1', pollIntervalSeconds: 30 });
      expect(agent.credential).toMatch(/^bha_/);

      const w = await s.store.db
        .selectFrom('workloads')
        .selectAll()
        .where('name', '=', 'web-1')
        .executeTakeFirstOrThrow();
      expect(JSON.parse(w.labels)).toEqual({ role: 'web', env: 'prod' });
      expect(JSON.parse(w.addresses)).toEqual(['10.0.0.1', '2001:db8::1']);
      expect(w.mode).toBe('selective');
      expect(Number(w.managed)).toBe(1);
      expect(JSON.parse(w.inventory!)).toMatchObject({ hostname: 'web-1', os: 'Linux 6.8' });
      const stored = await s.store.db.selectFrom('agents').selectAll().executeTakeFirstOrThrow();
      expect(stored.id).toBe(agent.agentId);
      expect(stored.credential_hash).not.toContain(agent.credential);
      const used = await s.store.db
        .selectFrom('activation_codes')
        .select('uses')
        .executeTakeFirstOrThrow();
      expect(Number(used.uses)).toBe(1);

      const hb = await s.call({
        method: 'POST',
        url: '/api/v1/agent/heartbeat',
        token: agent.credential,
        payload: { status: 'ok' },
      });
      expect(hb.statusCode).toBe(200);
      expect(hb.json()).toMatchObject({ workload: 'web-1', revision: 1, mode: 'selective' });

      const list = await s.call({ method: 'GET', url: '/api/v1/agents' });
      expect(list.json()).toMatchObject({
        items: [
          {
            id: agent.agentId,
            workload: 'web-1',
            status: 'ok',
            mode: 'selective',
            currentRevision: 1,
            appliedRevision: null,
            upToDate: false,
          },
        ],
      });
      expect(list.body).not.toContain(agent.credential);
      const ack = await s.call({
        method: 'POST',
        url: '/api/v1/agent/policy/ack',
        token: agent.credential,
        payload: { revision: 1, policyVersion: 0, result: 'applied' },
      });
      expect(ack.statusCode).toBe(200);
      const one = await s.call({ method: 'GET', url: `/api/v1/agents/${agent.agentId}` });
      expect(one.json()).toMatchObject({ appliedRevision: 1, appliedVersion: 0, upToDate: true });
      expect((await s.call({ method: 'GET', url: '/api/v1/agents/nope' })).json()).toMatchObject({
        error: { code: 'NOT_FOUND' },
      });

      expect(await auditTypes(s)).toEqual([
        'key.create',
        'pairing-profile.create',
        'activation-code.create',
        'workload.create',
        'agent.pair',
      ]);
    },
  );

  it.skipIf(skip)('adopts an unmanaged workload of the same hostname', async () => {
    const now = new Date().toISOString();
    await s.store.db
      .insertInto('workloads')
      .values({
        name: 'db-1',
        addresses: JSON.stringify(['10.0.0.9']),
        labels: JSON.stringify({ app: 'shop', role: 'legacy' }),
        mode: 'idle',
        managed: 0,
        users: '[]',
        inventory: null,
        created_at: now,
        updated_at: now,
      })
      .execute();
    const { code } = await makeCode(s, await makeProfile(s));
    await paired(s, code, 'db-1', ['10.0.0.10']);
    const w = await s.store.db
      .selectFrom('workloads')
      .selectAll()
      .where('name', '=', 'db-1')
      .executeTakeFirstOrThrow();
    expect(JSON.parse(w.labels)).toEqual({ app: 'shop', role: 'web', env: 'prod' });
    expect(JSON.parse(w.addresses)).toEqual(['10.0.0.10']);
    expect(w.mode).toBe('visibility');
    expect(Number(w.managed)).toBe(1);
    expect(await count(s, 'workloads')).toBe(1);
    expect(await auditTypes(s)).toContain('workload.adopt');

    // A second agent for a workload that has one is refused, and uses nothing.
    const again = await pair(s, code, 'db-1');
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ error: { code: 'CONFLICT' } });
    expect(await count(s, 'agents')).toBe(1);
    const codeRow = await s.store.db
      .selectFrom('activation_codes')
      .select('uses')
      .executeTakeFirstOrThrow();
    expect(Number(codeRow.uses)).toBe(1);
  });

  it.skipIf(skip)('refuses bad activation codes with a clear code, storing nothing', async () => {
    const profileId = await makeProfile(s);
    const single = await makeCode(s, profileId, { maxUses: 1 });
    const expired = await makeCode(s, profileId);
    await s.store.db
      .updateTable('activation_codes')
      .set({ expires_at: '2000-01-01T00:00:00.000Z' })
      .where('id', '=', expired.id)
      .execute();
    const revoked = await makeCode(s, profileId);
    const rv = await s.call({
      method: 'DELETE',
      url: `/api/v1/pairing-profiles/${profileId}/activation-codes/${revoked.id}`,
    });
    expect(rv.json()).toMatchObject({ state: 'revoked' });
    await paired(s, single.code, 'first');

    const snapshot = async () => ({
      workloads: await count(s, 'workloads'),
      agents: await count(s, 'agents'),
      compiled: await count(s, 'compiled_policies'),
      audit: await count(s, 'audit_events'),
      uses: (
        await s.store.db
          .selectFrom('activation_codes')
          .select(['id', 'uses'])
          .orderBy('id')
          .execute()
      ).map((r) => `${r.id}:${Number(r.uses)}`),
    });
    const before = await snapshot();
    const cases: [string, string][] = [
      ['bhc_not-a-real-code', 'ACTIVATION_CODE_INVALID'],
      [expired.code, 'ACTIVATION_CODE_EXPIRED'],
      [single.code, 'ACTIVATION_CODE_USED_UP'],
      [revoked.code, 'ACTIVATION_CODE_REVOKED'],
    ];
    for (const [code, error] of cases) {
      const r = await pair(s, code, `host-${error.toLowerCase().replace(/_/g, '-')}`);
      expect(r.statusCode, error).toBe(401);
      expect(r.json()).toMatchObject({
        error: { code: error, message: expect.stringContaining('activation code') as unknown },
      });
    }
    expect(await snapshot()).toEqual(before);

    // Malformed bodies are 400s that say where, and store nothing either.
    const bad = await s.call({
      method: 'POST',
      url: '/api/v1/agents/pair',
      token: null,
      payload: { activationCode: single.code, hostname: 'bad host', addresses: ['10.0.0.300'] },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
    expect(bad.body).toContain('body.hostname');
    expect(bad.body).toContain('body.addresses[0]');
    expect(await snapshot()).toEqual(before);

    // The activation code is no credential for anything else.
    for (const url of ['/api/v1/agent/policy', '/api/v1/agents', '/api/v1/pairing-profiles']) {
      const r = await s.call({ method: 'GET', url, token: expired.code });
      expect(r.statusCode, url).toBe(401);
    }
  });

  it.skipIf(skip)('keeps agents to their own channel and API keys out of it', async () => {
    const { code } = await makeCode(s, await makeProfile(s));
    const a = await paired(s, code, 'a-1', ['10.0.0.1']);
    const b = await paired(s, code, 'b-1', ['10.0.0.2']);
    const pa = await s.call({ method: 'GET', url: '/api/v1/agent/policy', token: a.credential });
    const pb = await s.call({ method: 'GET', url: '/api/v1/agent/policy', token: b.credential });
    expect(pa.json()).toMatchObject({ workload: 'a-1' });
    expect(pb.json()).toMatchObject({ workload: 'b-1' });

    for (const [method, url] of [
      ['GET', '/api/v1/agents'],
      ['GET', `/api/v1/agents/${b.agentId}`],
      ['POST', `/api/v1/agents/${b.agentId}/revoke`],
      ['GET', '/api/v1/keys'],
      ['GET', '/api/v1/pairing-profiles'],
    ] as const) {
      const r = await s.call({ method, url, token: a.credential });
      expect(r.statusCode, url).toBe(403);
    }
    const created = await s.call({
      method: 'POST',
      url: '/api/v1/keys',
      payload: { name: 'reader', role: 'read-only' },
    });
    const reader = created.json<{ key: string }>().key;
    for (const token of [undefined, reader]) {
      for (const [method, url, payload] of [
        ['GET', '/api/v1/agent/policy', undefined],
        ['POST', '/api/v1/agent/heartbeat', {}],
        ['PUT', '/api/v1/agent/inventory', { hostname: 'a-1' }],
        ['POST', '/api/v1/agent/flows', { batchId: 'x', summaries: [] }],
      ] as const) {
        const r = await s.call({ method, url, token, ...(payload ? { payload } : {}) });
        expect(r.statusCode, `${url} ${token ?? 'owner'}`).toBe(403);
        expect(r.json()).toMatchObject({
          error: { code: 'FORBIDDEN', message: 'your role may not use the agent channel' },
        });
      }
    }
    const none = await s.call({ method: 'GET', url: '/api/v1/agent/policy', token: null });
    expect(none.statusCode).toBe(401);
    // A reader sees agents but may not revoke them.
    expect((await s.call({ method: 'GET', url: '/api/v1/agents', token: reader })).statusCode).toBe(
      200,
    );
    expect(
      (await s.call({ method: 'POST', url: `/api/v1/agents/${a.agentId}/revoke`, token: reader }))
        .statusCode,
    ).toBe(403);
  });

  it.skipIf(skip)('revokes an agent: its credential stops working at once', async () => {
    const { code } = await makeCode(s, await makeProfile(s));
    const a = await paired(s, code, 'a-1');
    const b = await paired(s, code, 'b-1', ['10.0.0.2']);
    const r = await s.call({ method: 'POST', url: `/api/v1/agents/${a.agentId}/revoke` });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({
      id: a.agentId,
      status: 'revoked',
      revokedAt: expect.any(String) as unknown,
    });
    const hb = await s.call({
      method: 'POST',
      url: '/api/v1/agent/heartbeat',
      token: a.credential,
      payload: {},
    });
    expect(hb.statusCode).toBe(401);
    const other = await s.call({
      method: 'POST',
      url: '/api/v1/agent/heartbeat',
      token: b.credential,
      payload: {},
    });
    expect(other.statusCode).toBe(200);
    const types = await auditTypes(s);
    expect(types.filter((t) => t === 'agent.revoke')).toHaveLength(1);
    // Revoking again changes nothing and audits nothing.
    await s.call({ method: 'POST', url: `/api/v1/agents/${a.agentId}/revoke` });
    expect(await auditTypes(s)).toEqual(types);
    // The workload can now pair a new agent.
    await paired(s, code, 'a-1');
  });

  it.skipIf(skip)('never moves an agent back to an older applied revision', async () => {
    const { code } = await makeCode(s, await makeProfile(s));
    const a = await paired(s, code, 'a-1');
    const beat = (payload: Record<string, unknown>) =>
      s.call({ method: 'POST', url: '/api/v1/agent/heartbeat', token: a.credential, payload });
    const applied = async () =>
      (await s.call({ method: 'GET', url: `/api/v1/agents/${a.agentId}` })).json<{
        appliedRevision: number | null;
        appliedVersion: number | null;
      }>();
    expect((await beat({ appliedRevision: 3, appliedVersion: 2 })).statusCode).toBe(200);
    // A heartbeat sent before revision 3 was applied, arriving after.
    expect((await beat({ appliedRevision: 2, appliedVersion: 1 })).statusCode).toBe(200);
    expect(await applied()).toMatchObject({ appliedRevision: 3, appliedVersion: 2 });
    await beat({ appliedRevision: 4, appliedVersion: 3 });
    expect(await applied()).toMatchObject({ appliedRevision: 4, appliedVersion: 3 });
    // The same holds for a late acknowledgement of an older revision.
    const ack = (revision: number, policyVersion: number) =>
      s.call({
        method: 'POST',
        url: '/api/v1/agent/policy/ack',
        token: a.credential,
        payload: { revision, policyVersion, result: 'applied' },
      });
    expect((await ack(2, 1)).statusCode).toBe(200);
    expect(await applied()).toMatchObject({ appliedRevision: 4, appliedVersion: 3 });
    expect((await ack(5, 4)).statusCode).toBe(200);
    expect(await applied()).toMatchObject({ appliedRevision: 5, appliedVersion: 4 });
  });

  it.skipIf(skip)(
    'serves the policy with the revision as ETag, and 304 when unchanged',
    async () => {
      const { code } = await makeCode(s, await makeProfile(s));
      const a = await paired(s, code, 'a-1');
      const first = await s.call({
        method: 'GET',
        url: '/api/v1/agent/policy',
        token: a.credential,
      });
      expect(first.statusCode).toBe(200);
      expect(first.headers.etag).toBe('"1"');
      expect(first.json()).toMatchObject({
        workload: 'a-1',
        revision: 1,
        policyVersion: 0,
        mode: 'visibility',
      });
      const again = await s.call({
        method: 'GET',
        url: '/api/v1/agent/policy',
        token: a.credential,
        headers: { 'if-none-match': '"1"' },
      });
      expect(again.statusCode).toBe(304);
      expect(again.body).toBe('');
      await bump(s, 'a-1', 'full');
      const changed = await s.call({
        method: 'GET',
        url: '/api/v1/agent/policy',
        token: a.credential,
        headers: { 'if-none-match': '"1"' },
      });
      expect(changed.statusCode).toBe(200);
      expect(changed.headers.etag).toBe('"2"');
      expect(changed.json()).toMatchObject({ revision: 2, mode: 'full' });

      const failed = await s.call({
        method: 'POST',
        url: '/api/v1/agent/policy/ack',
        token: a.credential,
        payload: { revision: 2, policyVersion: 0, result: 'failed', error: 'nft: syntax error' },
      });
      expect(failed.statusCode).toBe(200);
      const audit = await s.store.db
        .selectFrom('audit_events')
        .select(['type', 'actor', 'after'])
        .where('type', '=', 'agent.policy-failed')
        .executeTakeFirstOrThrow();
      expect(audit.actor).toContain(`agent:${a.agentId}`);
      expect(JSON.parse(audit.after!)).toMatchObject({ revision: 2, error: 'nft: syntax error' });
      const view = await s.call({ method: 'GET', url: `/api/v1/agents/${a.agentId}` });
      expect(view.json()).toMatchObject({ status: 'apply-failed', currentRevision: 2 });
    },
  );

  it.skipIf(skip)('stores a flow batch once, however often it is sent', async () => {
    const { code } = await makeCode(s, await makeProfile(s));
    const a = await paired(s, code, 'a-1');
    const b = await paired(s, code, 'b-1', ['10.0.0.2']);
    const summary = {
      src: '10.0.0.1',
      dst: '10.0.0.2',
      proto: 'tcp',
      dport: 443,
      process: 'curl',
      firstSeen: '2026-01-01T00:00:00Z',
      lastSeen: '2026-01-01T00:05:00Z',
      connections: 3,
      bytes: 12_345,
    };
    const batch = { batchId: 'batch-1', summaries: [summary, { ...summary, dport: 80 }] };
    const send = (token: string, payload: Record<string, unknown>) =>
      s.call({ method: 'POST', url: '/api/v1/agent/flows', token, payload });
    const first = await send(a.credential, batch);
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({ batchId: 'batch-1', accepted: 2, duplicate: false });
    const retry = await send(a.credential, batch);
    expect(retry.statusCode).toBe(200);
    expect(retry.json()).toEqual({ batchId: 'batch-1', accepted: 2, duplicate: true });
    expect(await count(s, 'flow_summaries')).toBe(2);
    expect(await count(s, 'flow_batches')).toBe(1);
    // Concurrent retries are stored once too.
    const racing = await Promise.all(
      [1, 2, 3].map(() => send(a.credential, { ...batch, batchId: 'batch-2' })),
    );
    expect(racing.map((r) => r.statusCode)).toEqual([200, 200, 200]);
    expect(racing.filter((r) => !r.json<{ duplicate: boolean }>().duplicate)).toHaveLength(1);
    expect(await count(s, 'flow_summaries')).toBe(4);
    // Another agent's batch of the same id is its own.
    expect((await send(b.credential, batch)).json()).toMatchObject({ duplicate: false });
    const rows = await s.store.db
      .selectFrom('flow_summaries')
      .select(['workload', 'agent_id', 'bytes'])
      .where('agent_id', '=', b.agentId)
      .execute();
    expect(rows.map((r) => [r.workload, Number(r.bytes)])).toEqual([
      ['b-1', 12_345],
      ['b-1', 12_345],
    ]);

    const before = await count(s, 'flow_summaries');
    const bad = await send(a.credential, {
      batchId: 'batch-3',
      summaries: [
        summary,
        { ...summary, src: 'nope' },
        { ...summary, lastSeen: '2025-01-01T00:00:00Z' },
      ],
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('body.summaries[1].src');
    expect(bad.body).toContain('body.summaries[2].lastSeen');
    const tooMany = await send(a.credential, {
      batchId: 'batch-4',
      summaries: Array.from({ length: 5001 }, () => summary),
    });
    expect(tooMany.statusCode).toBe(400);
    expect(tooMany.body).toContain('at most 5000');
    expect(await count(s, 'flow_summaries')).toBe(before);
    expect(await count(s, 'flow_batches')).toBe(3);

    const full = await send(a.credential, {
      batchId: 'batch-5',
      summaries: Array.from({ length: 5000 }, (_, i) => ({ ...summary, dport: (i % 60000) + 1 })),
    });
    expect(full.json()).toMatchObject({ accepted: 5000, duplicate: false });
    expect(await count(s, 'flow_summaries')).toBe(before + 5000);
  });

  it.skipIf(skip)(
    'stores every field of a summary as sent, whatever its process name holds',
    async () => {
      const { code } = await makeCode(s, await makeProfile(s));
      const a = await paired(s, code, 'a-1', ['10.0.0.1']);
      const base = {
        src: '10.0.0.1',
        dst: '2001:db8::7',
        proto: 'udp',
        firstSeen: '2026-01-01T01:00:00+01:00',
        lastSeen: '2026-01-01T00:00:01Z',
        connections: 0,
        bytes: Number.MAX_SAFE_INTEGER,
      };
      // Characters that COPY's text format must escape, and a summary without the optional fields.
      const processes = ['tab\there', 'back\\slash', 'line\nbreak\r', '\\N', 'plain'];
      const summaries = [
        ...processes.map((process, i) => ({
          ...base,
          dport: 53 + i,
          process,
          decision: 'blocked',
        })),
        { ...base, proto: 'icmp' },
      ];
      const sent = await s.call({
        method: 'POST',
        url: '/api/v1/agent/flows',
        token: a.credential,
        payload: { batchId: 'odd', summaries },
      });
      expect(sent.json()).toMatchObject({ accepted: 6, duplicate: false });
      const rows = await s.store.db
        .selectFrom('flow_summaries')
        .select(['src', 'dst', 'proto', 'dport', 'process', 'first_seen', 'last_seen'])
        .select(['connections', 'bytes', 'decision', 'workload', 'batch_id'])
        .orderBy('id')
        .execute();
      expect(rows.map((r) => ({ ...r, bytes: Number(r.bytes) }))).toEqual([
        ...processes.map((process, i) => ({
          src: '10.0.0.1',
          dst: '2001:db8::7',
          proto: 'udp',
          dport: 53 + i,
          process,
          first_seen: '2026-01-01T00:00:00.000Z',
          last_seen: '2026-01-01T00:00:01.000Z',
          connections: 0,
          bytes: Number.MAX_SAFE_INTEGER,
          decision: 'blocked',
          workload: 'a-1',
          batch_id: 'odd',
        })),
        expect.objectContaining({ proto: 'icmp', dport: null, process: null, decision: null }),
      ]);
    },
  );

  it.skipIf(skip)('updates addresses and users from inventory, auditing only changes', async () => {
    const { code } = await makeCode(s, await makeProfile(s));
    const a = await paired(s, code, 'a-1', ['10.0.0.1']);
    const inventory = {
      hostname: 'a-1',
      os: 'Debian 13',
      interfaces: [
        { name: 'lo', addresses: ['127.0.0.1/8', '::1/128'] },
        { name: 'eth0', addresses: ['10.0.0.1/24', '10.0.1.7/24', 'fe80::1/64'] },
      ],
      listening: [
        {
          port: 3306,
          proto: 'tcp',
          process: 'mysqld',
          pid: 812,
          user: 'mysql',
          path: '/usr/sbin/mysqld',
        },
      ],
      users: ['bob', 'alice', 'bob'],
    };
    const put = () =>
      s.call({
        method: 'PUT',
        url: '/api/v1/agent/inventory',
        token: a.credential,
        payload: inventory,
      });
    const before = (await auditTypes(s)).length;
    const r = await put();
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toEqual({
      workload: 'a-1',
      changed: true,
      addresses: ['10.0.0.1', '10.0.1.7'],
      users: ['alice', 'bob'],
    });
    const w = await s.store.db
      .selectFrom('workloads')
      .select(['addresses', 'users', 'inventory'])
      .where('name', '=', 'a-1')
      .executeTakeFirstOrThrow();
    expect(JSON.parse(w.addresses)).toEqual(['10.0.0.1', '10.0.1.7']);
    expect(JSON.parse(w.users)).toEqual(['alice', 'bob']);
    expect(JSON.parse(w.inventory!)).toMatchObject({
      os: 'Debian 13',
      listening: [{ port: 3306, process: 'mysqld' }],
    });
    expect((await auditTypes(s)).slice(before)).toEqual(['workload.inventory']);
    const same = await put();
    expect(same.json()).toMatchObject({ changed: false });
    expect((await auditTypes(s)).length).toBe(before + 1);

    const bad = await s.call({
      method: 'PUT',
      url: '/api/v1/agent/inventory',
      token: a.credential,
      payload: { hostname: 'a-1', listening: [{ port: 70000, proto: 'sctp' }] },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('body.listening[0].port');
  });

  it.skipIf(skip)('pushes policy revisions as server-sent events over a real socket', async () => {
    const { code } = await makeCode(s, await makeProfile(s));
    const a = await paired(s, code, 'a-1');
    const b = await paired(s, code, 'b-1', ['10.0.0.2']);
    await s.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = s.app.server.address() as AddressInfo;
    const hub = s.app.bulkhead.policies;
    const listenersBefore = hub.listenerCount('revision');

    let text = '';
    let status = 0;
    let contentType = '';
    const req = http.get({
      host: '127.0.0.1',
      port,
      path: '/api/v1/agent/events',
      headers: { authorization: `Bearer ${a.credential}`, accept: 'text/event-stream' },
    });
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      contentType = String(res.headers['content-type']);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
    });
    req.on('error', () => undefined);
    const events = () =>
      text
        .split('\n\n')
        .filter((e) => e.includes('event: policy'))
        .map((e) => JSON.parse(/^data: (.*)$/m.exec(e)![1]!) as { revision: number });
    const until = async (ok: () => boolean) => {
      for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
      expect(ok()).toBe(true);
    };
    try {
      await until(() => events().length === 1);
      expect(status).toBe(200);
      expect(contentType).toContain('text/event-stream');
      expect(events()[0]).toMatchObject({ workload: 'a-1', revision: 1, policyVersion: 0 });
      expect(hub.listenerCount('revision')).toBe(listenersBefore + 1);

      // Another workload's change is not this agent's business.
      await bump(s, 'b-1', 'full');
      await bump(s, 'a-1', 'full');
      await until(() => events().length === 2);
      expect(events()[1]).toEqual({ workload: 'a-1', revision: 2 });
      const now = await s.call({ method: 'GET', url: '/api/v1/agent/policy', token: a.credential });
      expect(now.json()).toMatchObject({ revision: 2, mode: 'full' });
      void b;
    } finally {
      req.destroy();
    }
    // The listener goes with the connection.
    await until(() => hub.listenerCount('revision') === listenersBefore);
  });

  it.skipIf(skip)('ends an agent stream when the agent is revoked', async () => {
    const { code } = await makeCode(s, await makeProfile(s));
    const a = await paired(s, code, 'a-1');
    await s.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = s.app.server.address() as AddressInfo;
    const ended = new Promise<string>((resolve, reject) => {
      const req = http.get({
        host: '127.0.0.1',
        port,
        path: '/api/v1/agent/events',
        headers: { authorization: `Bearer ${a.credential}` },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
          if (text.includes('event: policy'))
            void s.call({ method: 'POST', url: `/api/v1/agents/${a.agentId}/revoke` });
        });
        res.on('end', () => resolve(text));
      });
    });
    expect(await ended).toContain('event: policy');
    expect(s.app.bulkhead.policies.listenerCount('revision')).toBe(0);
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import {
  OWNER_KEY,
  postgresSkipReason,
  STORE_KINDS,
  testServer,
  type TestServer,
} from '../support/server.js';

async function addWorkload(
  s: TestServer,
  name: string,
  addresses: string[],
  labels: Record<string, string>,
): Promise<void> {
  const now = new Date().toISOString();
  await s.store.db
    .insertInto('workloads')
    .values({
      name,
      addresses: JSON.stringify(addresses),
      labels: JSON.stringify(labels),
      mode: 'visibility',
      managed: 0,
      users: '[]',
      inventory: null,
      created_at: now,
      updated_at: now,
    })
    .execute();
}

async function labelsOf(s: TestServer): Promise<Record<string, Record<string, string>>> {
  const rows = await s.store.db
    .selectFrom('workloads')
    .select(['name', 'labels'])
    .orderBy('name')
    .execute();
  return Object.fromEntries(
    rows.map((r) => [r.name, JSON.parse(r.labels) as Record<string, string>]),
  );
}

const importCsv = (s: TestServer, csv: string, dryRun: boolean, token?: string) =>
  s.call({
    method: 'POST',
    url: `/api/v1/labels/import?dryRun=${dryRun}`,
    headers: { 'content-type': 'text/csv' },
    payload: csv,
    ...(token ? { token } : {}),
  });

const CSV = [
  'hostname,address,role,app,env,Role',
  'web-1,,web,shop,prod,x',
  ',198.18.0.2,db,shop,,',
  'nobody,,web,shop,prod,',
  ',198.18.9.9,web,,,',
  'web-1,,api,shop,prod,',
  'db-1,198.18.0.1,db,,,',
  'web-2,,web,shop,prod,',
  '',
].join('\n');

describe.each(STORE_KINDS)('label import and export on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  let s: TestServer;
  beforeEach(async () => {
    if (skip) return;
    s = await testServer(kind);
    await addWorkload(s, 'web-1', ['198.18.0.1'], { role: 'web', app: 'old' });
    await addWorkload(s, 'db-1', ['198.18.0.2'], { role: 'db', env: 'prod', loc: 'dc1' });
    await addWorkload(s, 'web-2', ['198.18.0.3'], { role: 'web', app: 'shop', env: 'prod' });
  });
  afterEach(async () => {
    if (!skip) await s.close();
  });

  it.skipIf(skip)('lists every label key in use with its values and workload counts', async () => {
    const r = await s.call({ method: 'GET', url: '/api/v1/labels' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({
      keys: [
        {
          key: 'app',
          workloads: 2,
          values: [
            { value: 'old', workloads: 1 },
            { value: 'shop', workloads: 1 },
          ],
        },
        { key: 'env', workloads: 2, values: [{ value: 'prod', workloads: 2 }] },
        { key: 'loc', workloads: 1, values: [{ value: 'dc1', workloads: 1 }] },
        {
          key: 'role',
          workloads: 3,
          values: [
            { value: 'db', workloads: 1 },
            { value: 'web', workloads: 2 },
          ],
        },
      ],
    });
  });

  it.skipIf(skip)('dry run shows changes and unusable rows, and stores nothing', async () => {
    const before = await labelsOf(s);
    const auditBefore = await s.store.db.selectFrom('audit_events').select('id').execute();
    const r = await importCsv(s, CSV, true);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({
      dryRun: true,
      changes: [
        {
          row: 2,
          workload: 'web-1',
          before: { app: 'old', role: 'web' },
          after: { app: 'shop', env: 'prod', role: 'web' },
        },
        {
          row: 3,
          workload: 'db-1',
          before: { env: 'prod', loc: 'dc1', role: 'db' },
          after: { app: 'shop', loc: 'dc1', role: 'db' },
        },
      ],
      unusable: [
        { row: 1, message: expect.stringMatching(/^row 1: "Role" is not a label key/) as unknown },
        { row: 4, message: 'row 4: no workload named "nobody"' },
        { row: 5, message: 'row 5: no workload with address 198.18.9.9' },
        {
          row: 6,
          message: 'row 6: workload "web-1" was already set by row 2 (duplicate row ignored)',
        },
        { row: 7, message: 'row 7: workload "db-1" does not have address 198.18.0.1' },
      ],
      unchanged: 1,
    });
    expect(await labelsOf(s)).toEqual(before);
    expect(await s.store.db.selectFrom('audit_events').select('id').execute()).toEqual(auditBefore);
  });

  it.skipIf(skip)(
    'a real import applies usable rows in one go, audits and redistributes',
    async () => {
      const r = await importCsv(s, CSV, false);
      expect(r.statusCode).toBe(200);
      expect(r.json<{ changes: unknown[] }>().changes).toHaveLength(2);
      expect(await labelsOf(s)).toEqual({
        'db-1': { app: 'shop', loc: 'dc1', role: 'db' },
        'web-1': { app: 'shop', env: 'prod', role: 'web' },
        'web-2': { role: 'web', app: 'shop', env: 'prod' },
      });
      const audit = await s.store.db
        .selectFrom('audit_events')
        .select(['type', 'resource_name', 'before', 'after', 'actor'])
        .where('type', '=', 'workload.labels')
        .orderBy('id')
        .execute();
      expect(
        audit.map((a): unknown[] => [a.resource_name, JSON.parse(a.before!), JSON.parse(a.after!)]),
      ).toEqual([
        ['web-1', { app: 'old', role: 'web' }, { app: 'shop', env: 'prod', role: 'web' }],
        ['db-1', { env: 'prod', loc: 'dc1', role: 'db' }, { app: 'shop', loc: 'dc1', role: 'db' }],
      ]);
      expect(audit[0]!.actor).toMatch(/\(owner\)$/);
      const compiled = await s.store.db
        .selectFrom('compiled_policies')
        .select('workload')
        .execute();
      expect(compiled.map((c) => c.workload).sort()).toEqual(['db-1', 'web-1', 'web-2']);
    },
  );

  it.skipIf(skip)('sets the enforcement mode from an optional mode column', async () => {
    const r = await importCsv(s, 'address,mode\n198.18.0.3,full\n198.18.0.1,nonsense\n', false);
    expect(r.json()).toMatchObject({
      changes: [{ workload: 'web-2', mode: { before: 'visibility', after: 'full' } }],
      unusable: [{ row: 3, message: expect.stringContaining('mode "nonsense"') as unknown }],
    });
    const row = await s.store.db
      .selectFrom('workloads')
      .select('mode')
      .where('name', '=', 'web-2')
      .executeTakeFirstOrThrow();
    expect(row.mode).toBe('full');
  });

  it.skipIf(skip)('refuses unusable input as a whole with a clear message', async () => {
    for (const [csv, status, message] of [
      ['role,app\nweb,shop\n', 400, 'needs a "hostname" or an "address" column'],
      ['', 400, ''],
      ['hostname,role\n"web-1,web\n', 400, 'not valid CSV'],
    ] as const) {
      const r = await importCsv(s, csv, false);
      expect(r.statusCode, csv).toBe(status);
      expect(r.json<{ error: { message: string } }>().error.message).toContain(message);
    }
    const json = await s.call({
      method: 'POST',
      url: '/api/v1/labels/import',
      payload: { hostname: 'web-1' },
    });
    expect(json.statusCode).toBe(400);
    const big = await importCsv(s, `hostname,role\n${'web-1,web\n'.repeat(500_000)}`, true);
    expect(big.statusCode).toBe(413);
  });

  it.skipIf(skip)('needs estate:write to import, read to export', async () => {
    const key = (
      await s.call({
        method: 'POST',
        url: '/api/v1/keys',
        payload: { name: 'r', role: 'read-only' },
      })
    ).json<{ key: string }>().key;
    expect((await importCsv(s, 'hostname,role\nweb-1,x\n', true, key)).statusCode).toBe(403);
    expect(
      (await s.call({ method: 'GET', url: '/api/v1/labels/export.csv', token: key })).statusCode,
    ).toBe(200);
  });

  it.skipIf(skip)('exports CSV that imports back unchanged', async () => {
    await addWorkload(s, 'odd', ['198.18.0.9'], { note: 'a, "quoted" value' });
    const r = await s.call({ method: 'GET', url: '/api/v1/labels/export.csv' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain('text/csv');
    expect(r.body).toBe(
      [
        'hostname,address,app,env,loc,note,role',
        'db-1,198.18.0.2,,prod,dc1,,db',
        'odd,198.18.0.9,,,,"a, ""quoted"" value",',
        'web-1,198.18.0.1,old,,,,web',
        'web-2,198.18.0.3,shop,prod,,,web',
        '',
      ].join('\r\n'),
    );
    const back = await importCsv(s, r.body, true);
    expect(back.json()).toEqual({ dryRun: true, changes: [], unusable: [], unchanged: 4 });
  });

  it.skipIf(skip)('bulkhead import labels prints changes and unusable rows', async () => {
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const address = s.app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const dir = await mkdtemp(join(tmpdir(), 'bulkhead-import-'));
    const out: string[] = [];
    const err: string[] = [];
    const env = { ...process.env };
    process.env.BULKHEAD_URL = `http://127.0.0.1:${port}`;
    process.env.BULKHEAD_TOKEN = OWNER_KEY;
    try {
      const file = join(dir, 'labels.csv');
      await writeFile(file, CSV);
      const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t) };
      expect(await runCli(['import', 'labels', file, '--dry-run'], io)).toBe(0);
      const text = out.join('\n');
      expect(text).toContain('would change 2 workloads:');
      expect(text).toContain('web-1 (row 2): app=old,role=web -> app=shop,env=prod,role=web');
      expect(text).toContain('row 5: no workload with address 198.18.9.9');
      expect(text).toContain('dry run: nothing was stored');
      expect((await labelsOf(s))['web-1']).toEqual({ role: 'web', app: 'old' });
      out.length = 0;
      expect(await runCli(['import', 'labels', file], io)).toBe(0);
      expect(out.join('\n')).toContain('changed 2 workloads:');
      expect((await labelsOf(s))['web-1']).toEqual({ app: 'shop', env: 'prod', role: 'web' });
      expect(await runCli(['import', 'labels', join(dir, 'missing.csv')], io)).toBe(1);
      expect(err.join('\n')).toContain('cannot read');
    } finally {
      process.env.BULKHEAD_URL = env.BULKHEAD_URL;
      process.env.BULKHEAD_TOKEN = env.BULKHEAD_TOKEN;
      if (env.BULKHEAD_URL === undefined) delete process.env.BULKHEAD_URL;
      if (env.BULKHEAD_TOKEN === undefined) delete process.env.BULKHEAD_TOKEN;
      await rm(dir, { recursive: true, force: true });
    }
  });
});

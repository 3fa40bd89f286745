import { spawn } from 'node:child_process';
/**
 * `bulkhead policy generate`, `bulkhead policy simulate` (and its exit status, a CI gate),
 * also of a flow file, and `bulkhead workloads mode` against a control plane over a real socket.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/server/app.js';
import { ensureOwnerKey } from '../../src/server/bootstrap.js';
import { cli } from '../support/cli.js';
import { OWNER_KEY, testStore, type TestStore } from '../support/server.js';

describe('generation, simulation and rollout commands', () => {
  let ts: TestStore;
  let app: FastifyInstance;
  const saved = { url: process.env.BULKHEAD_URL, token: process.env.BULKHEAD_TOKEN };
  const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
  const row = (src: string, dst: string, port: number, process: string, n: number) =>
    `${src},${dst},tcp,${port},${process},${at(40)},${at(30)},${n},${n * 100}`;
  const call = (method: 'POST' | 'GET' | 'DELETE', url: string, payload?: unknown) =>
    app.inject({
      method,
      url: `/api/v1${url}`,
      headers: { authorization: `Bearer ${OWNER_KEY}` },
      ...(payload !== undefined ? { payload: payload as object } : {}),
    });
  const draft = async () => (await call('GET', '/policy/draft')).json<{ items: unknown[] }>().items;
  let dir: string;
  /** A flow file in a temporary directory; its path. */
  const file = async (name: string, text: string) => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };
  const header = 'src,dst,proto,port,process,first_seen,last_seen,connections,bytes';
  /** What the flow store holds, so a file simulation can be seen to store nothing. */
  const stored = async () => {
    await app.bulkhead.flows.catchUp();
    const { rolledUpTo, pendingSummaries, edges } = (await call('GET', '/flows/status')).json<
      Record<string, unknown>
    >();
    const flows = (await call('GET', '/flows?since=30d&limit=1000')).json<{ total: number }>();
    return { rolledUpTo, pendingSummaries, edges, total: flows.total };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-simulate-'));
    ts = await testStore('sqlite');
    app = await buildServer({ store: ts.store });
    await ensureOwnerKey(app.bulkhead, OWNER_KEY);
    process.env.BULKHEAD_URL = await app.listen({ port: 0, host: '127.0.0.1' });
    process.env.BULKHEAD_TOKEN = OWNER_KEY;
    for (const [name, address, app_, role] of [
      ['web-1', '10.1.0.11', 'shop', 'web'],
      ['api-1', '10.1.0.21', 'shop', 'api'],
      ['db-1', '10.1.0.31', 'shop', 'db'],
      ['pay-1', '10.2.0.11', 'pay', 'api'],
      ['pay-db-1', '10.2.0.31', 'pay', 'db'],
    ] as const) {
      const r = await call('POST', '/workloads', {
        name,
        addresses: [address],
        labels: { app: app_, env: 'prod', role },
        managed: true,
        mode: 'full',
      });
      expect(r.statusCode, r.body).toBe(201);
    }
    const d = await call('POST', '/policy/draft/apply', {
      documents: [
        {
          kind: 'Ruleset',
          name: 'shop',
          scope: { labels: { app: ['shop'] } },
          rules: [
            {
              name: 'web-to-api',
              sources: { labels: { role: ['web'] } },
              destinations: { labels: { role: ['api'] } },
              services: ['8080/tcp'],
            },
          ],
        },
      ],
    });
    expect(d.statusCode, d.body).toBe(200);
    expect((await call('POST', '/policy/provision', { message: 'v1' })).statusCode).toBe(201);
    const imported = await app.inject({
      method: 'POST',
      url: '/api/v1/flows/import?format=csv',
      headers: { authorization: `Bearer ${OWNER_KEY}`, 'content-type': 'text/csv' },
      payload: [
        'src,dst,proto,port,process,first_seen,last_seen,connections,bytes',
        row('10.1.0.11', '10.1.0.21', 8080, 'java', 40),
        row('10.1.0.21', '10.1.0.31', 3306, 'mysqld', 2),
        row('10.2.0.11', '10.2.0.31', 5432, 'postgres', 5),
      ].join('\n'),
    });
    expect(imported.statusCode, imported.body).toBe(200);
    await app.bulkhead.flows.catchUp();
  });
  afterAll(async () => {
    process.env.BULKHEAD_URL = saved.url;
    process.env.BULKHEAD_TOKEN = saved.token;
    if (saved.url === undefined) delete process.env.BULKHEAD_URL;
    if (saved.token === undefined) delete process.env.BULKHEAD_TOKEN;
    await app.close();
    await ts.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses bad flags before any request', async () => {
    const g = await cli('policy', 'generate', '--granularity', 'host');
    expect(g.code).toBe(2);
    expect(g.err).toMatch(/--granularity: "host" is not one of env, app, tier, service, process/);
    const s = await cli('policy', 'simulate', '--since', '1y');
    expect(s.code).toBe(2);
    expect(s.err).toMatch(/--since: "1y" is not a duration/);
    const w = await cli('workloads', 'mode', 'full', '--selector', 'shop');
    expect(w.code).toBe(2);
    expect(w.err).toMatch(/--selector: "shop" is not key=value/);
    const m = await cli('workloads', 'mode', 'strict', '--selector', 'app=shop');
    expect(m.code).toBe(2);
  });

  it('simulates a draft equal to the active version: nothing changes, exit 0', async () => {
    const s = await cli('policy', 'simulate', '--since', '1h');
    expect(s.code, s.err).toBe(0);
    expect(s.out).toMatch(/the draft against active version 1/);
    expect(s.out).toMatch(/newly blocked: 0 flows, 0 connections/);
    expect(s.out).toMatch(/no observed flow would change/);
  });

  it('previews generated rules with their evidence and coverage, writing nothing', async () => {
    const before = await draft();
    const g = await cli(
      'policy',
      'generate',
      '--scope',
      'app=shop,env=prod',
      '--granularity',
      'service',
      '--since',
      '1h',
      '--dry-run',
    );
    expect(g.code, g.err).toBe(0);
    expect(g.out).toMatch(/^# service granularity, scope app=shop,env=prod, flows /);
    expect(g.out).toMatch(/# 3 flow summaries, 2 in scope/);
    expect(g.out).toMatch(/kind: Ruleset/);
    expect(g.out).toMatch(/3306\/tcp|port: 3306/);
    expect(g.out).toMatch(
      /evidence:\n {2}\S+: 1 flow, 2 connections, first seen \S+, last seen \S+\n {4}api-1 -> db-1 3306\/tcp/,
    );
    expect(g.out).toMatch(/coverage: 100\.0% of flows in scope allowed \(2 of 2 flows/);
    expect(g.out).toMatch(/already allowed by .*shop\/web-to-api: 1 flow/);
    expect(g.out).toMatch(/dry run: nothing written \(run without --dry-run to add 1 document/);
    expect(await draft()).toEqual(before);

    const j = await cli('policy', 'generate', '--granularity', 'app', '--dry-run', '--json');
    expect(j.code, j.err).toBe(0);
    expect(JSON.parse(j.out)).toMatchObject({ granularity: 'app', scope: null, written: false });
  });

  it('writes the rules to the draft; the simulation then blocks nothing observed', async () => {
    const g = await cli(
      'policy',
      'generate',
      '--scope',
      'app=shop,env=prod',
      '--granularity',
      'service',
      '--since',
      '1h',
    );
    expect(g.code, g.err).toBe(0);
    expect(g.out).toMatch(/wrote 1 document to the draft/);
    expect(await draft()).toHaveLength(2);

    const s = await cli('policy', 'simulate', '--since', '1h', '--json');
    expect(s.code, s.err).toBe(0);
    expect(JSON.parse(s.out)).toMatchObject({
      newlyBlocked: { flows: 0, connections: 0 },
      newlyAllowed: { flows: 1, connections: 2 },
      byApplication: [{ application: 'shop', newlyBlocked: 0, newlyAllowed: 2 }],
    });
  });

  it('simulates a flow file the draft allows: exit 0, nothing stored', async () => {
    const before = await stored();
    const path = await file(
      'allowed.csv',
      [
        header,
        row('10.1.0.11', '10.1.0.21', 8080, 'java', 7),
        row('10.1.0.21', '10.1.0.31', 3306, 'mysqld', 3),
      ].join('\n'),
    );
    const s = await cli('policy', 'simulate', '--file', path);
    expect(s.code, s.err).toBe(0);
    expect(s.out).toMatch(
      new RegExp(
        `^the draft against active version 1, flows of ${path} \\(2 flow summaries, 2 distinct flows, seen \\S+ \\.\\. \\S+\\)`,
      ),
    );
    expect(s.out).toMatch(/newly blocked: 0 flows, 0 connections/);
    expect(s.out).toMatch(/newly allowed: 1 flow, 3 connections/);
    expect(s.out).toMatch(/APPLICATION\s+NEWLY BLOCKED\s+NEWLY ALLOWED\nshop\s+0\s+3/);
    expect(await stored()).toEqual(before);
  });

  it('reads the flow file from standard input with --file -', async () => {
    // The built command as a person pipes a capture into it (npm test builds first).
    const csv = [header, row('10.1.0.21', '10.1.0.31', 3306, 'mysqld', 3)].join('\n');
    const run = (...args: string[]) =>
      new Promise<{ code: number | null; out: string; err: string }>((done) => {
        const child = spawn(process.execPath, ['dist/src/cli/main.js', ...args], {
          env: process.env,
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('close', (code) => done({ code, out, err }));
        child.stdin.end(csv);
      });
    const s = await run('policy', 'simulate', '--file', '-', '--format', 'csv');
    expect(s.code, s.err).toBe(0);
    expect(s.out).toMatch(
      /^the draft against active version 1, flows of standard input \(1 flow summary/,
    );
    expect(s.out).toMatch(/newly allowed: 1 flow, 3 connections/);
    const unnamed = await run('policy', 'simulate', '--file', '-');
    expect(unnamed.code).toBe(2);
    expect(unnamed.err).toMatch(
      /say what standard input holds: --format csv\|json\|conntrack\|netflow/,
    );
  });

  it('refuses a file it cannot read as asked before any request', async () => {
    const path = await file('capture.txt', 'tcp 6 1 CLOSE src=10.1.0.11 dst=10.1.0.21\n');
    const unnamed = await cli('policy', 'simulate', '--file', path);
    expect(unnamed.code).toBe(2);
    expect(unnamed.err).toMatch(
      /say what .*capture\.txt holds: --format csv\|json\|conntrack\|netflow/,
    );
    const format = await cli('policy', 'simulate', '--file', path, '--format', 'pcap');
    expect(format.code).toBe(2);
    expect(format.err).toMatch(/--format: "pcap" is not one of csv, json, conntrack, netflow/);
    const both = await cli('policy', 'simulate', '--file', path, '--since', '1h');
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/--since: a --file is simulated whole/);
    const alone = await cli('policy', 'simulate', '--format', 'csv');
    expect(alone.code).toBe(2);
    expect(alone.err).toMatch(/--format: only with --file/);
    const missing = await cli('policy', 'simulate', '--file', join(dir, 'nope.csv'));
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/cannot read .*nope\.csv/);
  });

  it('names the line and field of a malformed file, storing nothing', async () => {
    const before = await stored();
    const path = await file(
      'bad.csv',
      [
        header,
        row('10.1.0.11', '10.1.0.21', 8080, 'java', 7),
        '10.1.0.11,10.1.0.21,tcp,99999,java,x,y,1,1',
      ].join('\n'),
    );
    const s = await cli('policy', 'simulate', '--file', path);
    expect(s.code).toBe(1);
    expect(s.err).toMatch(
      /VALIDATION_FAILED: the csv file was not simulated: line 3, port: "99999" is not a port/,
    );
    expect(s.err).toMatch(/line 3, first_seen: "x" is not a time/);
    expect(await stored()).toEqual(before);
  });

  it('exits 1 when the draft drops an allow rule, naming what it would block', async () => {
    expect((await call('DELETE', '/policy/draft/Ruleset/shop')).statusCode).toBe(200);
    const s = await cli('policy', 'simulate', '--since', '1h');
    expect(s.code).toBe(1);
    expect(s.out).toMatch(/newly blocked: 1 flow, 40 connections/);
    expect(s.out).toMatch(/APPLICATION\s+NEWLY BLOCKED\s+NEWLY ALLOWED\nshop\s+40\s+2/);
    expect(s.out).toMatch(/web-1\s+api-1\s+8080\/tcp\s+40\s+allowed\s+blocked/);
    expect(s.err).toMatch(/the draft would newly block 1 observed flow \(40 connections\)/);
  });

  it('exits 1 when a file holds a flow the draft would newly block, in any format', async () => {
    const before = await stored();
    const csv = await file(
      'capture.csv',
      [
        header,
        row('10.1.0.11', '10.1.0.21', 8080, 'java', 5),
        row('10.1.0.11', '10.1.0.21', 8080, 'java', 6),
        row('10.2.0.11', '10.2.0.31', 5432, 'postgres', 2),
      ].join('\n'),
    );
    const s = await cli('policy', 'simulate', '--file', csv);
    expect(s.code).toBe(1);
    expect(s.out).toMatch(/newly blocked: 1 flow, 11 connections/);
    expect(s.out).toMatch(/APPLICATION\s+NEWLY BLOCKED\s+NEWLY ALLOWED\nshop\s+11\s+0/);
    expect(s.out).toMatch(/web-1\s+api-1\s+8080\/tcp\s+11\s+allowed\s+blocked/);
    expect(s.err).toMatch(
      /the draft would newly block 1 flow of .*capture\.csv \(11 connections\)/,
    );

    const j = await cli('policy', 'simulate', '--file', csv, '--json');
    expect(j.code).toBe(1);
    expect(JSON.parse(j.out)).toMatchObject({
      file: { format: 'csv', summaries: 3, flows: 2 },
      activeVersion: 1,
      newlyBlocked: { flows: 1, connections: 11 },
      byApplication: [{ application: 'shop', newlyBlocked: 11, newlyAllowed: 0 }],
    });

    const dump = await file(
      'conntrack.out',
      'tcp      6 118 TIME_WAIT src=10.1.0.11 dst=10.1.0.21 sport=40000 dport=8080 packets=4 bytes=400 src=10.1.0.21 dst=10.1.0.11 sport=8080 dport=40000 packets=3 bytes=300 [ASSURED] mark=0 use=1\n',
    );
    const c = await cli('policy', 'simulate', '--file', dump, '--format', 'conntrack');
    expect(c.code).toBe(1);
    expect(c.out).toMatch(/newly blocked: 1 flow, 1 connection\n/);
    expect(await stored()).toEqual(before);
  });

  it('moves workloads through the modes by selector, a dry run showing what is in the way', async () => {
    const dry = await cli('workloads', 'mode', 'visibility', '--selector', 'app=pay', '--dry-run');
    expect(dry.code, dry.err).toBe(0);
    expect(dry.out).toMatch(/dry run: 2 workloads match app=pay; 2 would be set to visibility/);
    const set = await cli('workloads', 'mode', 'visibility', '--selector', 'app=pay,env=prod');
    expect(set.code, set.err).toBe(0);
    expect(set.out).toBe(
      '2 workloads matched app=pay,env=prod; 2 set to visibility: pay-1, pay-db-1\n',
    );
    await app.bulkhead.flows.catchUp();
    const full = await cli('workloads', 'mode', 'full', '--selector', 'app=pay', '--dry-run');
    expect(full.code, full.err).toBe(0);
    expect(full.out).toMatch(/2 would be set to full/);
    expect(full.out).toMatch(
      /1 flow observed in the last 30d is potentially blocked and would be blocked:/,
    );
    expect(full.out).toMatch(/pay-1 -> pay-db-1 5432\/tcp \(5 connections\)/);
    const again = await cli('workloads', 'mode', 'visibility', '--selector', 'app=pay', '--json');
    expect(JSON.parse(again.out)).toEqual({ matched: 2, changed: [] });
  });
});

/**
 * `bulkhead map`, `bulkhead flows` and `bulkhead flows import` against a control plane over a
 * real socket, and the flag parsers they share with the server.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FilterTextError,
  parseDecisions,
  parseDuration,
  parseEndFilter,
  parseGrouping,
  parsePortFilter,
  parseSort,
} from '../../src/analysis/flows/filter-text.js';
import type { MapResult } from '../../src/analysis/flows/model.js';
import { buildServer } from '../../src/server/app.js';
import { ensureOwnerKey } from '../../src/server/bootstrap.js';
import { cli } from '../support/cli.js';
import { OWNER_KEY, testStore, type TestStore } from '../support/server.js';

describe('the flag parsers shared with the server', () => {
  const message = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(FilterTextError);
      return (e as Error).message;
    }
    throw new Error('accepted');
  };

  it('reads end filters in their four forms', () => {
    expect(parseEndFilter('app=shop,env=prod,app=cart')).toEqual({
      labels: { app: ['shop', 'cart'], env: ['prod'] },
    });
    expect(parseEndFilter('workload:shop-web-1')).toEqual({ workload: 'shop-web-1' });
    expect(parseEndFilter('ip:10.0.0.0/8')).toEqual({ address: '10.0.0.0/8' });
    expect(parseEndFilter('ip:2001:DB8::1')).toEqual({ address: '2001:db8::1' });
    expect(parseEndFilter('10.1.2.3')).toEqual({ address: '10.1.2.3' });
    expect(parseEndFilter('group:internet')).toEqual({ group: 'internet' });
    expect(message(() => parseEndFilter('shop'))).toMatch(/"shop" is not an end filter/);
    expect(message(() => parseEndFilter('ip:10.0.0.0-10.0.0.9'))).toMatch(
      /ranges are not accepted/,
    );
    expect(message(() => parseEndFilter('app='))).toMatch(/label app in "app=" has no value/);
  });

  it('reads ports, sorts, durations, decisions and groupings', () => {
    expect(parsePortFilter('443/TCP')).toEqual({ proto: 'tcp', port: 443 });
    expect(parsePortFilter('53')).toEqual({ port: 53 });
    expect(parsePortFilter('icmp')).toEqual({ proto: 'icmp' });
    expect(message(() => parsePortFilter('70000/tcp'))).toBe('"70000/tcp" is not a port (1-65535)');
    expect(message(() => parsePortFilter('8/icmp'))).toMatch(/only tcp and udp have ports/);
    expect(parseSort('-lastSeen')).toEqual({ key: 'lastSeen', descending: true });
    expect(parseSort('bytes')).toEqual({ key: 'bytes', descending: false });
    expect(parseDuration('90d')).toBe(90 * 86400);
    expect(message(() => parseDuration('1y'))).toMatch(/not a duration/);
    expect(parseDecisions('blocked, allowed,blocked')).toEqual(['blocked', 'allowed']);
    expect(parseGrouping('app, env')).toEqual(['app', 'env']);
    expect(message(() => parseGrouping('workload,app'))).toMatch(/use it alone/);
  });
});

describe('flow commands against a control plane over a real socket', () => {
  let ts: TestStore;
  let app: FastifyInstance;
  let dir: string;
  const saved = { url: process.env.BULKHEAD_URL, token: process.env.BULKHEAD_TOKEN };
  const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
  const row = (src: string, dst: string, port: number, process: string, n: number) =>
    `${src},${dst},tcp,${port},${process},${at(40)},${at(30)},${n},${n * 100}`;
  const SCANNERS = 25;
  const FLOWS = 3 + SCANNERS;

  beforeAll(async () => {
    ts = await testStore('sqlite');
    app = await buildServer({ store: ts.store });
    await ensureOwnerKey(app.bulkhead, OWNER_KEY);
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    process.env.BULKHEAD_URL = address;
    process.env.BULKHEAD_TOKEN = OWNER_KEY;
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-flows-cli-'));
    const call = (url: string, payload: unknown) =>
      app.inject({
        method: 'POST',
        url: `/api/v1${url}`,
        headers: { authorization: `Bearer ${OWNER_KEY}` },
        payload: payload as object,
      });
    for (const [name, address, role] of [
      ['web-1', '10.1.0.11', 'web'],
      ['api-1', '10.1.0.21', 'api'],
      ['db-1', '10.1.0.31', 'db'],
    ] as const) {
      const r = await call('/workloads', {
        name,
        addresses: [address],
        labels: { app: 'shop', env: 'prod', role },
        managed: true,
        mode: 'full',
      });
      expect(r.statusCode, r.body).toBe(201);
    }
    const d = await call('/policy/draft/apply', {
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
    expect((await call('/policy/provision', { message: 'v1' })).statusCode).toBe(201);
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

  it('imports a file, then maps, lists, filters and exports what it held', async () => {
    const file = join(dir, 'flows.csv');
    await writeFile(
      file,
      [
        'src,dst,proto,port,process,first_seen,last_seen,connections,bytes',
        row('10.1.0.11', '10.1.0.21', 8080, 'java', 40),
        row('10.1.0.11', '10.1.0.31', 3306, 'mysqld', 2),
        row('8.8.8.8', '10.1.0.11', 443, 'nginx', 5),
        ...Array.from({ length: SCANNERS }, (_, i) =>
          row(`198.51.100.${i + 1}`, '10.1.0.11', 443, 'nginx', 1),
        ),
      ].join('\n'),
    );
    const imported = await cli('flows', 'import', file);
    expect(imported.code, imported.err).toBe(0);
    expect(imported.out).toMatch(/^imported 28 flow summaries from .*flows\.csv \(batch import-/);
    await app.bulkhead.flows.catchUp();

    const map = await cli('map', '--group-by', 'app,env', '--since', '1h');
    expect(map.code, map.err).toBe(0);
    expect(map.out).toMatch(/decisions under the active policy; grouped by app, env/);
    expect(map.out).toMatch(/shop · prod\s+group\s+3\s+full\s+g:app=shop;env=prod/);
    // Inside shop the worst decision shows; the busiest edge first.
    expect(map.out).toMatch(
      /shop · prod\s+shop · prod\s+42\s+\S+ KB\s+blocked\s+8080\/tcp java, 3306\/tcp mysqld/,
    );
    expect(map.out).toMatch(/internet\s+shop · prod\s+30\s+.*blocked\s+443\/tcp nginx/);

    const expanded = await cli(
      'map',
      '--expand',
      'g:app=shop;env=prod',
      '--expand-by',
      'role',
      '--json',
    );
    expect(expanded.code, expanded.err).toBe(0);
    const m = JSON.parse(expanded.out) as MapResult;
    expect(m.nodes.filter((n) => n.parent === 'g:app=shop;env=prod')).toHaveLength(3);

    const table = await cli('flows', '--dst', 'workload:db-1');
    expect(table.code, table.err).toBe(0);
    expect(table.out).toMatch(
      /^SOURCE\s+DESTINATION\s+SERVICE\s+PROCESS\s+CONNECTIONS\s+BLOCKED\s+BYTES\s+LAST SEEN\s+DECISION\s+DECIDED BY/,
    );
    expect(table.out).toMatch(/web-1\s+db-1\s+3306\/tcp\s+mysqld\s+2\s+-\s+200 B\s+\S+\s+blocked/);
    expect(table.out).toMatch(/1 of 1 flows/);

    // The table pages through everything (more than one page of 1000 is not needed to see it).
    const everything = await cli('flows', '--port', '443/tcp', '--sort', 'bytes');
    expect(everything.out).toMatch(new RegExp(`${SCANNERS + 1} of ${SCANNERS + 1} flows`));
    const limited = await cli('flows', '--limit', '3');
    expect(limited.out).toMatch(new RegExp(`3 of ${FLOWS} flows.*--limit`));
    expect(limited.out.split('\n').filter((l) => / tcp|\/tcp/.test(l))).toHaveLength(3);

    const csv = await cli('flows', '--csv', '--since', '24h');
    expect(csv.code, csv.err).toBe(0);
    const lines = csv.out.trimEnd().split('\n');
    expect(lines[0]).toBe(
      'source,source_labels,destination,destination_labels,proto,port,process,connections,blocked,bytes,first_seen,last_seen,decision,decided_by,draft_decision,draft_decided_by',
    );
    expect(lines).toHaveLength(FLOWS + 1);
    expect(lines[1]).toMatch(/^web-1,.*,api-1,.*,tcp,8080,java,40,0,4000,/);

    const json = await cli('flows', '--json', '--decision', 'allowed');
    expect(json.code, json.err).toBe(0);
    const rows = JSON.parse(json.out) as { destination: { workload?: string } }[];
    expect(rows.map((r) => r.destination.workload)).toEqual(['api-1']);
  });

  it('says which flag is wrong before asking the server', async () => {
    const port = await cli('flows', '--port', '70000/tcp');
    expect(port.code).toBe(2);
    expect(port.err).toContain('--port: "70000/tcp" is not a port (1-65535)');
    const src = await cli('map', '--src', 'shop');
    expect(src.code).toBe(2);
    expect(src.err).toMatch(/--src: "shop" is not an end filter/);
    const both = await cli('flows', '--since', '1h', '--from', '2026-01-01T00:00:00Z');
    expect(both.code).toBe(2);
    const format = await cli('flows', 'import', join(dir, 'x.txt'));
    expect(format.code).toBe(2);
    expect(format.err).toContain('--format csv|json|conntrack|netflow');
  });

  it('reports an import refused by the server with the bad line', async () => {
    const file = join(dir, 'dump.txt');
    await writeFile(
      file,
      'tcp      6 118 TIME_WAIT src=10.1.0.11 dst=10.1.0.21 sport=40000 dport=8080 packets=1 bytes=10\ntcp      6 118 TIME_WAIT src=10.1.0.11 dst=10.1.0.999 sport=40000 dport=8080\n',
    );
    const r = await cli('flows', 'import', file, '--format', 'conntrack');
    expect(r.code).toBe(1);
    expect(r.err).toContain('line 2, dst: "10.1.0.999" is not an IP address');
    expect(r.err).toContain('nothing was stored');
    const ok = await cli(
      'flows',
      'import',
      file.replace('dump.txt', 'ok.txt'),
      '--format',
      'conntrack',
      '--json',
    );
    expect(ok.code).toBe(1);
    expect(ok.err).toMatch(/cannot read .*ok\.txt/);
    await writeFile(
      join(dir, 'ok.txt'),
      'udp      17 28 src=10.1.0.11 dst=10.1.0.31 sport=5000 dport=53 packets=1 bytes=70\n',
    );
    const good = await cli(
      'flows',
      'import',
      join(dir, 'ok.txt'),
      '--format',
      'conntrack',
      '--json',
    );
    expect(good.code, good.err).toBe(0);
    expect(JSON.parse(good.out)).toMatchObject({ accepted: 1, skipped: 0 });
  });
});

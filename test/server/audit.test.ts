import { createSocket } from 'node:dgram';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditFeed, type AuditEvent } from '../../src/server/audit.js';
import { change } from '../../src/server/change.js';
import {
  cefMessage,
  octetCounted,
  parseSyslogTarget,
  startSyslogSink,
  syslogFromEnv,
  syslogMessage,
} from '../../src/server/syslog.js';
import { VERSION } from '../../src/version.js';
import { postgresSkipReason, STORE_KINDS, testServer, type TestServer } from '../support/server.js';

async function emit(s: TestServer, type: string, name = 'x'): Promise<void> {
  await change(s.app.bulkhead, null, async (_trx, audit) => {
    await audit({ type, kind: 'Workload', name, before: { a: 1 }, after: { a: 2 } });
  });
}

/** Reads JSON lines from a response until `count` have arrived. */
function lineReader(res: IncomingMessage) {
  const lines: AuditEvent[] = [];
  let buf = '';
  const waiters: (() => void)[] = [];
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)) as AuditEvent);
      buf = buf.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  return {
    lines,
    async until(count: number): Promise<AuditEvent[]> {
      const deadline = Date.now() + 5000;
      while (lines.length < count) {
        if (Date.now() > deadline) throw new Error(`only ${lines.length} of ${count} lines`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
      return lines;
    },
  };
}

describe.each(STORE_KINDS)('audit events API on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  let s: TestServer;
  beforeEach(async () => {
    if (!skip) s = await testServer(kind);
  });
  afterEach(async () => {
    if (!skip) await s.close();
  });

  it.skipIf(skip)(
    'queries by type, type prefix, time and cursor, within a page limit',
    async () => {
      await emit(s, 'workload.labels', 'a');
      await emit(s, 'workload.mode', 'b');
      await emit(s, 'policy.provision', 'c');
      await emit(s, 'workload_x.odd', 'd');
      const all = await s.call({ method: 'GET', url: '/api/v1/audit-events' });
      expect(all.statusCode).toBe(200);
      const items = all.json<{ items: AuditEvent[]; next: number | null }>();
      // the owner key created at start-up is audited too
      expect(items.items.map((e) => e.type)).toEqual([
        'key.create',
        'workload.labels',
        'workload.mode',
        'policy.provision',
        'workload_x.odd',
      ]);
      expect(items.next).toBeNull();
      expect(items.items[1]).toMatchObject({
        actor: 'system',
        resource: { kind: 'Workload', name: 'a' },
        before: { a: 1 },
        after: { a: 2 },
      });

      const types = async (query: string) =>
        (await s.call({ method: 'GET', url: `/api/v1/audit-events?${query}` }))
          .json<{ items: AuditEvent[] }>()
          .items.map((e) => e.type);
      expect(await types('type=workload.')).toEqual(['workload.labels', 'workload.mode']);
      expect(await types('type=workload.*')).toEqual(['workload.labels', 'workload.mode']);
      expect(await types('type=workload.mode')).toEqual(['workload.mode']);
      expect(await types('type=workload')).toEqual([]);

      const page1 = (await s.call({ method: 'GET', url: '/api/v1/audit-events?limit=2' })).json<{
        items: AuditEvent[];
        next: number;
      }>();
      expect(page1.items).toHaveLength(2);
      const page2 = (
        await s.call({ method: 'GET', url: `/api/v1/audit-events?limit=2&after=${page1.next}` })
      ).json<{ items: AuditEvent[]; next: number }>();
      expect(page2.items.map((e) => e.type)).toEqual(['workload.mode', 'policy.provision']);
      const page3 = (
        await s.call({ method: 'GET', url: `/api/v1/audit-events?limit=2&after=${page2.next}` })
      ).json<{ items: AuditEvent[]; next: number | null }>();
      expect(page3.items.map((e) => e.type)).toEqual(['workload_x.odd']);
      expect(page3.next).toBeNull();

      const future = new Date(Date.now() + 3_600_000).toISOString();
      expect(await types(`since=${encodeURIComponent(future)}`)).toEqual([]);
      expect(await types(`until=${encodeURIComponent(future)}&type=policy.`)).toEqual([
        'policy.provision',
      ]);
      expect(await types('until=2000-01-01T00:00:00Z')).toEqual([]);
    },
  );

  it.skipIf(skip)('rejects bad queries with the parameter named', async () => {
    for (const [query, param] of [
      ['limit=0', 'query.limit'],
      ['limit=100000', 'query.limit'],
      ['limit=abc', 'query.limit'],
      ['since=yesterday', 'query.since'],
      ['type=DROP%20TABLE', 'query.type'],
      ['after=-1', 'query.after'],
      ['bogus=1', 'query'],
    ] as const) {
      const r = await s.call({ method: 'GET', url: `/api/v1/audit-events?${query}` });
      expect(r.statusCode, query).toBe(400);
      expect(r.json<{ error: { code: string; message: string } }>().error).toMatchObject({
        code: 'VALIDATION_FAILED',
        message: expect.stringContaining(param) as unknown,
      });
    }
  });

  it.skipIf(skip)(
    'streams stored events then live ones as JSON lines, and lets go when the client leaves',
    async () => {
      await emit(s, 'workload.labels', 'stored');
      await emit(s, 'policy.provision', 'stored-other');
      await s.app.listen({ host: '127.0.0.1', port: 0 });
      const address = s.app.server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const feed = s.app.bulkhead.audit;
      const before = feed.listenerCount('event');
      const req = httpRequest({
        host: '127.0.0.1',
        port,
        path: '/api/v1/audit-events/stream?type=workload.',
        headers: { authorization: 'Bearer owner-key-for-tests-0123456789' },
      });
      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        req.on('response', resolve);
        req.on('error', reject);
        req.end();
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toContain('application/x-ndjson');
      const reader = lineReader(res);
      expect((await reader.until(1)).map((e) => e.resource.name)).toEqual(['stored']);
      expect(feed.listenerCount('event')).toBe(before + 1);
      await emit(s, 'policy.provision', 'live-filtered-out');
      await emit(s, 'workload.mode', 'live');
      const lines = await reader.until(2);
      expect(lines.map((e) => `${e.type} ${e.resource.name}`)).toEqual([
        'workload.labels stored',
        'workload.mode live',
      ]);
      expect(lines[1]!.id).toBeGreaterThan(lines[0]!.id);
      req.destroy();
      const deadline = Date.now() + 5000;
      while (feed.listenerCount('event') !== before && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect(feed.listenerCount('event')).toBe(before);
    },
  );

  it.skipIf(skip)('ends open streams when the server shuts down', async () => {
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const address = s.app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      path: '/api/v1/audit-events/stream',
      headers: { authorization: 'Bearer owner-key-for-tests-0123456789' },
    });
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
      req.end();
    });
    const ended = new Promise<void>((r) => res.on('end', r));
    res.resume();
    await s.app.close();
    await ended;
    expect(s.app.bulkhead.audit.listenerCount('event')).toBe(0);
  });

  it.skipIf(skip)('refuses the stream without a credential', async () => {
    const r = await s.call({ method: 'GET', url: '/api/v1/audit-events/stream', token: null });
    expect(r.statusCode).toBe(401);
  });
});

const tricky: AuditEvent = {
  id: 42,
  at: '2026-11-23T20:45:00.000Z',
  actor: 'key:k1 (ops "night" \\ shift]=x|y)',
  type: 'workload.labels',
  resource: { kind: 'Workload', name: 'db|1=a\nb' },
  before: { role: 'db' },
  after: { role: 'web' },
  source: '127.0.0.1',
  requestId: 'req-1',
};

describe('audit events to syslog', () => {
  it('formats RFC 5424 with structured data escaped', () => {
    const m = syslogMessage(tricky, { hostname: 'ctl-1', procId: 99 });
    expect(m).toBe(
      '<110>1 2026-11-23T20:45:00.000Z ctl-1 bulkhead 99 workload.labels ' +
        '[bulkhead@32473 id="42" actor="key:k1 (ops \\"night\\" \\\\ shift\\]=x|y)" type="workload.labels" kind="Workload" name="db|1=a\nb" source="127.0.0.1" requestId="req-1"] ' +
        JSON.stringify(tricky),
    );
  });

  it('formats CEF with header and extension escaping', () => {
    expect(cefMessage(tricky)).toBe(
      `CEF:0|Bulkhead|bulkhead|${VERSION}|workload.labels|workload.labels|3|` +
        `rt=${Date.parse(tricky.at)} act=workload.labels suser=key:k1 (ops "night" \\\\ shift]\\=x|y) src=127.0.0.1 ` +
        'cs1Label=resourceKind cs1=Workload cs2Label=resourceName cs2=db|1\\=a\\nb externalId=42 cs3Label=requestId cs3=req-1',
    );
    const pipe = cefMessage({ ...tricky, type: 'agent.tamper|x' });
    expect(pipe).toContain('|agent.tamper\\|x|agent.tamper\\|x|8|');
  });

  it('parses targets and refuses others', () => {
    expect(parseSyslogTarget('udp://127.0.0.1:5514')).toEqual({
      protocol: 'udp',
      host: '127.0.0.1',
      port: 5514,
    });
    expect(parseSyslogTarget('tcp://[::1]:601')).toEqual({
      protocol: 'tcp',
      host: '::1',
      port: 601,
    });
    expect(() => parseSyslogTarget('http://x:1')).toThrow(/udp:\/\/ or tcp:\/\//);
    expect(() => parseSyslogTarget('nonsense')).toThrow(/not a URL/);
    expect(syslogFromEnv(new AuditFeed(), {})).toBeNull();
    expect(() =>
      syslogFromEnv(new AuditFeed(), {
        BULKHEAD_SYSLOG: 'udp://127.0.0.1:9',
        BULKHEAD_SYSLOG_FORMAT: 'xml',
      }),
    ).toThrow(/not cef or json/);
  });

  it('sends each committed event as one UDP datagram', async () => {
    const udp = createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    const port = udp.address().port;
    const received: string[] = [];
    udp.on('message', (m) => received.push(m.toString('utf8')));
    const feed = new AuditFeed();
    const sink = syslogFromEnv(feed, {
      BULKHEAD_SYSLOG: `udp://127.0.0.1:${port}`,
      BULKHEAD_SYSLOG_FORMAT: 'cef',
    })!;
    try {
      feed.publish([tricky, { ...tricky, id: 43 }]);
      const deadline = Date.now() + 5000;
      while (received.length < 2 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      expect(received).toHaveLength(2);
      expect(received[0]).toMatch(
        /^<110>1 2026-11-23T20:45:00\.000Z \S+ bulkhead \d+ workload\.labels \[bulkhead@32473 id="42" /,
      );
      expect(received[0]!.endsWith(` ${cefMessage(tricky)}`)).toBe(true);
      expect(received[1]).toContain('externalId=43');
    } finally {
      await sink.close();
      udp.close();
    }
    expect(feed.listenerCount('event')).toBe(0);
  });

  it('sends octet-counted frames over TCP (RFC 6587)', async () => {
    const chunks: Buffer[] = [];
    const server = createServer((socket) => socket.on('data', (d) => chunks.push(d)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const feed = new AuditFeed();
    const sink = startSyslogSink(feed, {
      target: { protocol: 'tcp', host: '127.0.0.1', port },
      hostname: 'ctl-1',
    });
    const second = { ...tricky, id: 43, actor: 'système ü' };
    const expected = Buffer.concat([
      octetCounted(syslogMessage(tricky, { hostname: 'ctl-1' })),
      octetCounted(syslogMessage(second, { hostname: 'ctl-1' })),
    ]);
    try {
      feed.publish([tricky, second]);
      const deadline = Date.now() + 5000;
      while (Buffer.concat(chunks).length < expected.length && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      const got = Buffer.concat(chunks);
      expect(got.equals(expected)).toBe(true);
      // The count is in bytes, not characters.
      const text = got.toString('utf8');
      const firstLen = Number(text.slice(0, text.indexOf(' ')));
      expect(
        got
          .subarray(String(firstLen).length + 1, String(firstLen).length + 1 + firstLen)
          .toString(),
      ).toMatch(/^<110>1 .* \{"id":42,/s);
      expect(Buffer.byteLength(syslogMessage(second, { hostname: 'ctl-1' }))).toBeGreaterThan(
        syslogMessage(second, { hostname: 'ctl-1' }).length,
      );
    } finally {
      await sink.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('wires the sink to the API: a committed change reaches the listener', async () => {
    const udp = createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    const received: string[] = [];
    udp.on('message', (m) => received.push(m.toString('utf8')));
    const s = await testServer('sqlite');
    const sink = syslogFromEnv(s.app.bulkhead.audit, {
      BULKHEAD_SYSLOG: `udp://127.0.0.1:${udp.address().port}`,
    })!;
    try {
      const r = await s.call({
        method: 'POST',
        url: '/api/v1/keys',
        payload: { name: 'n', role: 'read-only' },
      });
      expect(r.statusCode).toBe(201);
      const deadline = Date.now() + 5000;
      while (received.length < 1 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      expect(received[0]).toMatch(
        /^<1\d\d>1 \S+ \S+ bulkhead \d+ key\.create \[bulkhead@32473 id="\d+" actor="key:[^"]+ \(owner\)" type="key\.create" kind="ApiKey"/,
      );
    } finally {
      await sink.close();
      udp.close();
      await s.close();
    }
  });
});

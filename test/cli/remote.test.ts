import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli.js';
import { buildServer } from '../../src/server/app.js';
import { ensureOwnerKey } from '../../src/server/bootstrap.js';
import { OWNER_KEY, testStore, type TestStore } from '../support/server.js';

describe('the CLI against a control plane over a real socket', () => {
  let ts: TestStore;
  let app: FastifyInstance;
  let dir: string;
  const saved = { url: process.env.BULKHEAD_URL, token: process.env.BULKHEAD_TOKEN };

  beforeAll(async () => {
    ts = await testStore('sqlite');
    app = await buildServer({ store: ts.store });
    await ensureOwnerKey(app.bulkhead, OWNER_KEY);
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    process.env.BULKHEAD_URL = address;
    process.env.BULKHEAD_TOKEN = OWNER_KEY;
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-cli-'));
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

  it('applies the example estate, gets rulesets as YAML that round-trips, provisions, lists versions', async () => {
    const applied = await cli('apply', '-f', 'examples/estate');
    expect(applied.code, applied.err).toBe(0);
    expect(applied.out).toContain('Workload/shop-web-1 created');
    expect(applied.out).toContain('Ruleset/shop created');
    expect(applied.out).toMatch(/applied 23 documents: 23 created/);

    const yaml = await cli('get', 'rulesets', '-o', 'yaml');
    expect(yaml.code, yaml.err).toBe(0);
    expect(yaml.out).toContain('kind: Ruleset');
    expect(yaml.out).toContain('name: environment-separation');
    const file = join(dir, 'rulesets.yaml');
    await writeFile(file, yaml.out);
    const again = await cli('apply', '-f', file);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toContain('3 unchanged');
    const workloads = await cli('get', 'workloads', '-o', 'yaml');
    await writeFile(join(dir, 'workloads.yaml'), workloads.out);
    expect((await cli('apply', '-f', join(dir, 'workloads.yaml'))).out).toContain('12 unchanged');

    const table = await cli('get', 'workloads');
    expect(table.out).toMatch(/shop-web-1\s+full\s+yes\s+198\.18\.1\.11/);

    const noDiff = await cli('diff', '-f', 'examples/estate');
    expect(noDiff.out.trim()).toBe('no changes');
    await writeFile(file, yaml.out.replace(/name: no-telnet/, 'name: no-telnet-at-all'));
    const d = await cli('diff', '-f', file);
    expect(d.code, d.err).toBe(0);
    expect(d.out).toContain('+ environment-separation/no-telnet-at-all');

    const dry = await cli('provision', '--dry-run');
    expect(dry.code, dry.err).toBe(0);
    expect(dry.out).toContain('against no active version');
    expect(dry.out).toContain('workloads whose policy would change');
    const prov = await cli('provision', '-m', 'first cut');
    expect(prov.code, prov.err).toBe(0);
    expect(prov.out).toMatch(/provisioned version 1/);
    const noop = await cli('provision', '-m', 'again');
    expect(noop.code).toBe(1);
    expect(noop.err).toContain('CONFLICT: nothing to provision');

    const versions = await cli('get', 'versions');
    expect(versions.out).toMatch(/1\s+\*\s+\S+\s+key:.*first cut/);
    const rb = await cli('rollback', '1');
    expect(rb.code).toBe(1);
    expect(rb.err).toContain('CONFLICT');
    const v = await cli('get', 'versions', '1', '-o', 'json');
    expect(JSON.parse(v.out)).toMatchObject({ version: 1, message: 'first cut', active: true });
  });

  it('reports API errors with their code, and an unreachable server clearly', async () => {
    const missing = await cli('get', 'rulesets', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('NOT_FOUND: Ruleset "nope" does not exist');
    const badKind = await cli('get', 'widgets');
    expect(badKind.code).toBe(2);
    const url = process.env.BULKHEAD_URL;
    process.env.BULKHEAD_URL = 'http://127.0.0.1:1';
    try {
      const down = await cli('get', 'workloads');
      expect(down.err).toContain('cannot reach the control plane at http://127.0.0.1:1');
    } finally {
      process.env.BULKHEAD_URL = url;
    }
    const help = await cli('apply', '--help');
    expect(help.out).toContain('-f, --file');
  });
});

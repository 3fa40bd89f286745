import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { compilePolicy } from '../../src/policy/compile/endpoint.js';
import { nftState } from '../../src/policy/compile/nft.js';
import { compiledBody } from '../../src/server/distribution.js';
import {
  activeVersion,
  loadVersion,
  loadWorkloads,
  resolveStored,
} from '../../src/server/policy-state.js';
import { postgresSkipReason, STORE_KINDS, testServer, type TestServer } from '../support/server.js';

/** The example estate's documents, split into workloads and policy. */
async function estateDocuments(): Promise<{ workloads: unknown[]; documents: unknown[] }> {
  const all: Record<string, unknown>[] = [];
  for (const f of (await readdir('examples/estate')).sort()) {
    for (const d of parseAllDocuments(await readFile(join('examples/estate', f), 'utf8'))) {
      all.push(d.toJS() as Record<string, unknown>);
    }
  }
  return {
    workloads: all.filter((d) => d.kind === 'Workload'),
    documents: all.filter((d) => d.kind !== 'Workload'),
  };
}

/** Every workload's compiled policy as a full compile from scratch would store it. */
async function fullCompile(s: TestServer): Promise<Map<string, string>> {
  const version = (await activeVersion(s.store.db)) ?? 0;
  const docs = version ? ((await loadVersion(s.store.db, version)) ?? []) : [];
  const compiled = compilePolicy(resolveStored(docs, await loadWorkloads(s.store.db)));
  return new Map(
    [...compiled.endpoints].map(([name, e]) => [
      name,
      compiledBody(nftState(e, compiled.peerSets)),
    ]),
  );
}

async function stored(s: TestServer): Promise<Map<string, { revision: number; compiled: string }>> {
  const rows = await s.store.db
    .selectFrom('compiled_policies')
    .select(['workload', 'revision', 'compiled'])
    .execute();
  return new Map(rows.map((r) => [r.workload, { revision: r.revision, compiled: r.compiled }]));
}

describe.each(STORE_KINDS)('compiled-policy distribution on %s', (kind) => {
  const skip = kind === 'postgres' && postgresSkipReason !== null;
  let s: TestServer;
  beforeEach(async () => {
    if (skip) return;
    s = await testServer(kind);
    const { workloads, documents } = await estateDocuments();
    expect(
      (await s.call({ method: 'POST', url: '/api/v1/workloads/apply', payload: { workloads } }))
        .statusCode,
    ).toBe(200);
    expect(
      (await s.call({ method: 'POST', url: '/api/v1/policy/draft/apply', payload: { documents } }))
        .statusCode,
    ).toBe(200);
    expect(
      (
        await s.call({
          method: 'POST',
          url: '/api/v1/policy/provision',
          payload: { message: 'v1' },
        })
      ).statusCode,
    ).toBe(201);
  });
  afterEach(async () => {
    if (!skip) await s.close();
  });

  it.skipIf(skip)(
    'recompiles a label change incrementally, equal to a full compile, touching only affected workloads',
    async () => {
      const before = await stored(s);
      const r = await s.call({
        method: 'PATCH',
        url: '/api/v1/workloads/shop-web-2',
        payload: { labels: { role: 'api', app: 'shop', env: 'prod', loc: 'dc2' } },
      });
      expect(r.statusCode).toBe(200);
      expect(s.app.bulkhead.compileCache.lastRun).toBe('incremental');
      const after = await stored(s);
      const expected = await fullCompile(s);
      for (const [name, body] of expected) expect(after.get(name)?.compiled, name).toBe(body);
      const bumped = [...after]
        .filter(([name, row]) => row.revision !== before.get(name)?.revision)
        .map(([n]) => n)
        .sort();
      // The relabelled workload, and the workloads whose rules name a set it left or joined.
      expect(bumped).toContain('shop-web-2');
      expect(bumped).toContain('shop-api-1');
      expect(bumped).not.toContain('pay-db-1');
      for (const name of bumped)
        expect(after.get(name)!.compiled).not.toBe(before.get(name)!.compiled);
    },
  );

  it.skipIf(skip)(
    'compiles in full after a provision, and after a failed change forgets its staged compile',
    async () => {
      expect(s.app.bulkhead.compileCache.lastRun).toBe('full');
      // Two workloads claiming one address: refused, nothing stored, and the cache is dropped.
      const bad = await s.call({
        method: 'PATCH',
        url: '/api/v1/workloads/shop-web-2',
        payload: { addresses: ['198.18.1.11'] },
      });
      expect(bad.statusCode).toBe(422);
      const ok = await s.call({
        method: 'PATCH',
        url: '/api/v1/workloads/shop-web-2',
        payload: { mode: 'visibility' },
      });
      expect(ok.statusCode).toBe(200);
      const after = await stored(s);
      for (const [name, body] of await fullCompile(s))
        expect(after.get(name)?.compiled, name).toBe(body);
    },
  );
});

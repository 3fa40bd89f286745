/**
 * The control plane serves the web UI at `/`: its files by name, its pages (/map, /flows…)
 * as index.html, the API's unknown paths still as JSON 404s; and without a built UI, a page
 * that says to run `npm run build`.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testServer, type TestServer } from '../support/server.js';

describe('serving the web UI', () => {
  let dir: string;
  let server: TestServer | undefined;
  const previous = process.env.BULKHEAD_UI_DIR;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-ui-'));
    process.env.BULKHEAD_UI_DIR = dir;
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    if (previous === undefined) delete process.env.BULKHEAD_UI_DIR;
    else process.env.BULKHEAD_UI_DIR = previous;
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the files, answers the pages with index.html, and keeps API 404s as JSON', async () => {
    await mkdir(join(dir, 'assets'));
    await writeFile(join(dir, 'index.html'), '<!doctype html><title>Bulkhead UI</title>');
    await writeFile(join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');
    server = await testServer('sqlite');

    for (const path of ['/', '/map', '/flows?src=app%3Dshop', '/workloads/extra']) {
      const page = await server.call({ method: 'GET', url: path, token: null });
      expect(page.statusCode, path).toBe(200);
      expect(page.headers['content-type']).toContain('text/html');
      expect(page.body).toContain('Bulkhead UI');
      // A new build must reach the browser at once; its hashed assets may be cached forever.
      expect(page.headers['cache-control']).toBe('no-cache');
    }
    const asset = await server.call({ method: 'GET', url: '/assets/index-abc123.js', token: null });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['cache-control']).toContain('immutable');

    const api = await server.call({ method: 'GET', url: '/api/v1/no-such-thing' });
    expect(api.statusCode).toBe(404);
    expect(api.json()).toMatchObject({ error: { code: 'ROUTE_NOT_FOUND' } });
    // The UI's files are public; the API still asks for a key.
    const refused = await server.call({ method: 'GET', url: '/api/v1/workloads', token: null });
    expect(refused.statusCode).toBe(401);
  });

  it('says to run npm run build when the UI is not built', async () => {
    server = await testServer('sqlite');
    const page = await server.call({ method: 'GET', url: '/', token: null });
    expect(page.statusCode).toBe(503);
    expect(page.body).toContain('npm run build');
    const api = await server.call({ method: 'GET', url: '/api/v1/health' });
    expect(api.statusCode).toBe(200);
  });
});

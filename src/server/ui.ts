/**
 * The web UI: the files `npm run build` writes to dist/ui, served at `/`. The UI routes in
 * the browser (/map, /flows, …), so any GET outside /api that is not a file answers
 * index.html. Without a built UI, `/` says how to build it rather than a bare 404.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ownPackage } from '../own-package.js';

/** Where the built UI is: BULKHEAD_UI_DIR, else dist/ui in the package. */
export function uiDirectory(): string {
  return resolve(
    process.env.BULKHEAD_UI_DIR ?? join(ownPackage()?.root ?? process.cwd(), 'dist', 'ui'),
  );
}

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bulkhead</title>
<style>body{font:15px/1.6 system-ui,sans-serif;background:#0b1220;color:#e2e8f0;display:grid;place-items:center;min-height:100vh;margin:0}
main{max-width:560px;padding:32px;border:1px solid #22324d;border-radius:12px;background:#111a2b}
code{background:#1c2a42;padding:2px 6px;border-radius:4px}</style></head>
<body><main><h1>The web UI is not built</h1>
<p>This control plane is running, and its API answers under <code>/api/v1</code>, but the web UI's
files are missing. Build them with <code>npm run build</code> (it builds the server and the UI into
<code>dist/ui</code>), then restart the server.</p></main></body></html>`;

/** The API's own 404s stay JSON. */
const isApi = (path: string) => path === '/api' || path.startsWith('/api/');

/** Registers the UI on the server. Call before the server is ready. */
export async function registerUi(app: FastifyInstance, dir = uiDirectory()): Promise<void> {
  const built = existsSync(join(dir, 'index.html'));
  if (built) {
    await app.register(fastifyStatic, {
      root: dir,
      // The catch-all below serves the SPA's pages; files found at start are routed by name.
      wildcard: false,
      index: false,
      // Our own cache headers (below), not send's `max-age=0` over them.
      cacheControl: false,
      setHeaders: (res, path) => {
        // Vite names built assets by their content hash: they never change under a name.
        res.setHeader(
          'cache-control',
          path.includes(`${join(dir, 'assets')}`)
            ? 'public, max-age=31536000, immutable'
            : 'no-cache',
        );
      },
    });
  }
  const page = async (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0] ?? request.url;
    if (isApi(path)) return reply.callNotFound();
    if (!built) return reply.code(503).type('text/html; charset=utf-8').send(NOT_BUILT);
    return reply.sendFile('index.html');
  };
  app.get('/', { schema: { hide: true } }, page);
  app.get('/*', { schema: { hide: true } }, page);
}

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainHttpWarning, serve } from '../../src/server/serve.js';

const run = promisify(execFile);

describe('serving the control plane', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-tls-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('serves HTTPS with a given certificate and key', async () => {
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ]);
    const running = await serve({
      host: '127.0.0.1',
      port: 0,
      dataDir: join(dir, 'data'),
      ownerKey: 'tls-test-owner-key-0123456789',
      tlsCert: cert,
      tlsKey: key,
      logLevel: 'silent',
    });
    try {
      expect(running.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const ca = await readFile(cert);
      const { status, body } = await new Promise<{ status: number; body: string }>(
        (resolve, reject) => {
          const req = httpsRequest(`${running.url}/api/v1/health`, { ca }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on('error', reject);
          req.end();
        },
      );
      expect(status).toBe(200);
      expect(JSON.parse(body)).toMatchObject({ status: 'ok', store: 'sqlite' });
      // An untrusting client refuses the throw-away certificate: the channel really is TLS.
      await expect(
        new Promise((resolve, reject) => {
          const req = httpsRequest(`${running.url}/api/v1/health`, resolve);
          req.on('error', reject);
          req.end();
        }),
      ).rejects.toThrow(/self[- ]signed/i);
    } finally {
      await running.close();
    }
  });

  it('refuses a certificate without its key', async () => {
    await expect(
      serve({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'x'), tlsCert: 'c.pem' }),
    ).rejects.toThrow(/both a certificate and a key/);
  });

  it('warns about plain HTTP off loopback, and only there', () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'ctl.example.com'])
      expect(plainHttpWarning(host, false)).toMatch(/plain HTTP on .*unencrypted.*--tls-cert/);
    for (const host of ['127.0.0.1', '127.3.4.5', '::1', 'localhost'])
      expect(plainHttpWarning(host, false)).toBeNull();
    expect(plainHttpWarning('0.0.0.0', true)).toBeNull();
  });
});

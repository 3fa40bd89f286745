/**
 * `bulkhead agent` as a command: its flags are checked before anything starts, `install`
 * writes under --root, and the command loads none of the control plane's stack.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { VERSION } from '../../src/version.js';
import { cli } from '../support/cli.js';

describe('bulkhead agent', () => {
  it('lists its flags', async () => {
    const { code, out } = await cli('agent', '--help');
    expect(code).toBe(0);
    for (const flag of [
      '--server',
      '--activation-code',
      '--state-dir',
      '--hostname',
      '--flush-interval',
      '--log-level',
      'install',
    ])
      expect(out).toContain(flag);
  });

  it('refuses flags it cannot keep, with exit code 2, before touching anything', async () => {
    const r = await cli(
      'agent',
      '--server',
      'http://198.18.0.1:7480',
      '--flush-interval',
      '11',
      '--state-dir',
      '/nonexistent/x',
    );
    expect(r.code).toBe(2);
    expect(r.err).toContain('--flush-interval: 11 s is outside 0.2-10 s');
    expect(existsSync('/nonexistent/x')).toBe(false);
    const none = await cli('agent');
    expect(none.code).toBe(2);
    expect(none.err).toContain('--server is required');
  });

  it('installs the unit and its environment file under --root', async () => {
    const root = await mkdtemp(join(tmpdir(), 'bulkhead-agent-root-'));
    try {
      const r = await cli(
        'agent',
        'install',
        '--root',
        root,
        '--server',
        'https://cp.example:7480',
        '--activation-code',
        'bhc_abc',
      );
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toContain('systemctl daemon-reload && systemctl enable --now bulkhead-agent');
      const unit = await readFile(join(root, 'etc/systemd/system/bulkhead-agent.service'), 'utf8');
      expect(unit).toMatch(
        /ExecStart=\S*node --max-semi-space-size=1 --no-opt --no-sparkplug \S+dist\/agent\/bulkhead-agent\.cjs agent --state-dir \/var\/lib\/bulkhead-agent/,
      );
      const env = await readFile(join(root, 'etc/bulkhead/agent.env'), 'utf8');
      expect(env).toContain('BULKHEAD_AGENT_SERVER=https://cp.example:7480\n');
      expect(env).toContain('BULKHEAD_AGENT_ACTIVATION_CODE=bhc_abc\n');
      const bad = await cli(
        'agent',
        'install',
        '--root',
        root,
        '--server',
        'https://cp',
        '--state-dir',
        'relative/dir',
      );
      expect(bad.code).toBe(2);
      expect(bad.err).toContain('is not an absolute path');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

const BIN = 'dist/src/cli/main.js';
describe.skipIf(!existsSync(BIN))(
  `the built command loads only what it needs (${BIN}; run npm run build)`,
  () => {
    it('`bulkhead agent` loads none of the server stack (which `bulkhead server` does load)', async () => {
      const loaded = async (argv: string[]) => {
        const script = `
        import { createRequire } from 'node:module';
        const { runCli } = await import('./dist/src/cli/program.js');
        await runCli(${JSON.stringify(argv)}, { out() {}, err() {} });
        console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));`;
        const { stdout } = await promisify(execFile)(process.execPath, [
          '--input-type=module',
          '-e',
          script,
        ]);
        return JSON.parse(stdout) as string[];
      };
      const agent = await loaded(['agent', '--help']);
      expect(
        agent.filter((m) => /node_modules\/(fastify|better-sqlite3|pg|@fastify)\//.test(m)),
      ).toEqual([]);
      const server = await loaded(['server', '--help']);
      expect(server.some((m) => m.includes('node_modules/fastify/'))).toBe(true);
    });
  },
);

const AGENT_PROGRAM = 'dist/agent/bulkhead-agent.cjs';
describe.skipIf(!existsSync(AGENT_PROGRAM))(
  `the agent's bundle (${AGENT_PROGRAM}; run npm run build)`,
  () => {
    const run = (...argv: string[]) =>
      promisify(execFile)(process.execPath, [AGENT_PROGRAM, ...argv]).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );

    it('takes the arguments of `bulkhead agent`, and checks them the same way', async () => {
      const full = await cli('agent', '--help');
      const bundled = await run('agent', '--help');
      expect(bundled.code).toBe(0);
      const options = (text: string) => text.split('\n').filter((l) => /^\s+--?\w/.test(l));
      expect(options(bundled.stdout).length).toBeGreaterThan(10);
      expect(options(bundled.stdout)).toEqual(options(full.out));
      const bad = await run('agent', '--server', 'http://cp', '--flush-interval', '11');
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--flush-interval: 11 s is outside 0.2-10 s');
    });

    it('says the version of the package it was built from', async () => {
      const { stdout } = await run('--version');
      expect(stdout.trim()).toBe(VERSION);
      expect(VERSION).not.toBe('0.0.0');
    });

    it('is one file holding the agent and none of the control plane', async () => {
      const text = await readFile(AGENT_PROGRAM, 'utf8');
      expect(text).not.toMatch(/require\("\.{1,2}\//);
      for (const other of ['fastify', 'better-sqlite3', 'kysely', 'zod', 'pino'])
        expect(text).not.toContain(`node_modules/${other}/`);
      expect(text).toContain('node_modules/commander/');
    });
  },
);

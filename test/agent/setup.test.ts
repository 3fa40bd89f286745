/**
 * The agent's settings, the systemd unit, its event-stream parser and its line readers.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  eachLine,
  fifoPath,
  lineSplitter,
  streamLinesViaFifo,
} from '../../src/agent/adapters/lines.js';
import { SseParser } from '../../src/agent/channel/sse.js';
import { agentConfig } from '../../src/agent/config.js';
import { AgentConfigError } from '../../src/agent/errors.js';
import { environmentFile, install, UNIT_DEFAULTS, unitFile } from '../../src/agent/install.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulkhead-agent-setup-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('settings', () => {
  it('takes flags, then BULKHEAD_AGENT_* variables, then defaults', () => {
    const c = agentConfig(
      { server: 'https://cp.example:7480/', flushInterval: '2.5' },
      {
        BULKHEAD_AGENT_ACTIVATION_CODE: 'bhc_code',
        BULKHEAD_AGENT_SERVER: 'http://ignored',
        BULKHEAD_AGENT_HOSTNAME: 'web-1',
      },
    );
    expect(c).toMatchObject({
      server: 'https://cp.example:7480',
      activationCode: 'bhc_code',
      hostname: 'web-1',
      stateDir: '/var/lib/bulkhead-agent',
      runtimeDir: '/run/bulkhead-agent',
      logLevel: 'info',
      flushIntervalMs: 2500,
      heartbeatIntervalMs: 15_000,
      spoolLimitBytes: 64 * 1024 * 1024,
    });
    expect(agentConfig({}, { BULKHEAD_AGENT_SERVER: 'http://198.18.0.1:7480' }).server).toBe(
      'http://198.18.0.1:7480',
    );
  });

  it('refuses what it cannot keep, saying which flag', () => {
    const refused = (flags: Record<string, string>, message: RegExp) =>
      expect(() => agentConfig({ server: 'http://cp:7480', ...flags })).toThrow(message);
    expect(() => agentConfig({})).toThrow(AgentConfigError);
    expect(() => agentConfig({})).toThrow(/--server is required/);
    refused({ server: 'ftp://cp' }, /--server: "ftp:\/\/cp" is not an http/);
    refused({ flushInterval: '11' }, /--flush-interval: 11 s is outside 0.2-10 s/);
    refused({ flushInterval: 'often' }, /--flush-interval: "often" is not a number of seconds/);
    refused({ hostname: 'bad host' }, /--hostname: "bad host" is not a workload name/);
    refused({ logLevel: 'loud' }, /--log-level/);
    refused({ spoolLimit: '0' }, /--spool-limit/);
  });
});

describe('the systemd unit', () => {
  it('is what deploy/bulkhead-agent.service holds', async () => {
    expect(await readFile('deploy/bulkhead-agent.service', 'utf8')).toBe(unitFile(UNIT_DEFAULTS));
  });

  it('installs under a root directory: the unit, a root-only environment file and state directory', async () => {
    const written = await install({
      root: dir,
      server: 'https://cp.example:7480',
      activationCode: 'bhc_abc',
      stateDir: '/var/lib/bulkhead-agent',
      node: '/opt/node/bin/node',
      program: '/opt/bulkhead/dist/agent/bulkhead-agent.cjs',
    });
    expect(written).toEqual({
      unit: join(dir, 'etc/systemd/system/bulkhead-agent.service'),
      environment: join(dir, 'etc/bulkhead/agent.env'),
      stateDir: join(dir, 'var/lib/bulkhead-agent'),
    });
    const unit = await readFile(written.unit, 'utf8');
    expect(unit).toContain(
      'ExecStart=/opt/node/bin/node --max-semi-space-size=1 --no-opt --no-sparkplug /opt/bulkhead/dist/agent/bulkhead-agent.cjs agent --state-dir /var/lib/bulkhead-agent',
    );
    expect(unit).toContain('EnvironmentFile=/etc/bulkhead/agent.env');
    expect(unit).toContain('Restart=always');
    expect((await stat(written.unit)).mode & 0o777).toBe(0o644);
    expect(await readFile(written.environment, 'utf8')).toContain(
      'BULKHEAD_AGENT_ACTIVATION_CODE=bhc_abc\n',
    );
    expect((await stat(written.environment)).mode & 0o777).toBe(0o600);
    expect((await stat(written.stateDir)).mode & 0o777).toBe(0o700);
  });

  it('refuses values that would break out of their line', () => {
    expect(() => environmentFile({ server: 'http://cp\nExecStartPre=/bin/sh' })).toThrow(
      AgentConfigError,
    );
    expect(() => unitFile({ ...UNIT_DEFAULTS, stateDir: '/var/lib/a b' })).toThrow(/--state-dir/);
  });
});

describe('server-sent events', () => {
  it('parses events split anywhere, CRLF, comments, multi-line data and retry', () => {
    const p = new SseParser();
    const text =
      'retry: 5000\r\n\r\n: keep-alive\n\nid: 3\nevent: policy\ndata: {"revision":\ndata: 3}\n\nevent: policy\rdata: {}\r\r\n';
    const events = [];
    for (let i = 0; i < text.length; i += 7) events.push(...p.push(text.slice(i, i + 7)));
    expect(events).toEqual([
      { event: 'policy', data: '{"revision":\n3}', id: '3' },
      { event: 'policy', data: '{}', id: '3' },
    ]);
    expect(p.retryMs).toBe(5000);
  });
});

describe('line readers', () => {
  it('splits chunks into lines, whatever the chunk boundaries', () => {
    const lines: string[] = [];
    const split = lineSplitter((l) => lines.push(l));
    for (const chunk of ['a', 'b\ncd', '\n', '\nef', 'g\n']) split(chunk);
    expect(lines).toEqual(['ab', 'cd', '', 'efg']);
  });

  it('runs a command to its end through a named pipe, and says when it failed', async () => {
    const fifo = { path: fifoPath(join(dir, 'run'), 'dump'), pollMs: 10 };
    const lines: string[] = [];
    await eachLine(
      [process.execPath, '-e', "for (let i = 0; i < 5000; i++) console.log('entry ' + i)"],
      (l) => lines.push(l),
      fifo,
    );
    expect(lines).toHaveLength(5000);
    expect(lines.at(-1)).toBe('entry 4999');
    await expect(
      eachLine(
        [process.execPath, '-e', "console.error('no table'); process.exit(1)"],
        () => {},
        fifo,
      ),
    ).rejects.toThrow(/exited 1: no table/);
  });

  it('reads a fast child through a named pipe, every line, and removes the pipe after', async () => {
    const path = join(dir, 'events.fifo');
    const lines: string[] = [];
    const script =
      "let i=0;const t=setInterval(()=>{for(let k=0;k<300;k++)process.stdout.write('line '+(i++)+'\\n');if(i>=30000)clearInterval(t)},1)";
    const s = streamLinesViaFifo(
      [process.execPath, '-e', script],
      (l) => lines.push(l),
      () => undefined,
      {
        path,
        pollMs: 20,
      },
    );
    const exit = await s.ended;
    expect(exit.code).toBe(0);
    expect(lines).toHaveLength(30_000);
    expect(lines[29_999]).toBe('line 29999');
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  });

  it('takes the child down with it: when the reader dies, the child does not live on', async () => {
    // An "agent" process streams a child's lines; the child prints its pid first.
    const agentScript = `
      import { streamLinesViaFifo } from ${JSON.stringify(join(process.cwd(), 'src/agent/adapters/lines.ts'))};
      streamLinesViaFifo([process.execPath, '-e', "console.log(process.pid);setInterval(()=>console.log('tick'),5)"],
        (l) => console.log(l), () => {}, { path: ${JSON.stringify(join(dir, 'orphan.fifo'))} });`;
    const agent = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', agentScript],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const childPid = await new Promise<number>((resolve) =>
      createInterface({ input: agent.stdout }).once('line', (l) => resolve(Number(l))),
    );
    expect(existsSync(`/proc/${childPid}`)).toBe(true);
    agent.kill('SIGKILL');
    const deadline = Date.now() + 3000;
    while (existsSync(`/proc/${childPid}`) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(`/proc/${childPid}`)).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import { agentLogger } from '../../src/agent/log.js';

describe("the agent's log", () => {
  it('writes one JSON line per entry at or above its level, fields and message included', () => {
    const lines: string[] = [];
    const log = agentLogger('info', (line) => lines.push(line));
    log.debug('not at info');
    log.info('bulkhead agent starting');
    log.warn({ retryInMs: 2000, err: new Error('connect ECONNREFUSED') }, 'control plane away');
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.endsWith('\n'))).toBe(true);
    const [first, second] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(first).toMatchObject({
      level: 'info',
      component: 'bulkhead-agent',
      msg: 'bulkhead agent starting',
    });
    expect(Date.parse(String(first!.time))).not.toBeNaN();
    expect(second).toMatchObject({
      level: 'warn',
      msg: 'control plane away',
      retryInMs: 2000,
      err: 'connect ECONNREFUSED',
    });
    const silent: string[] = [];
    agentLogger('silent', (l) => silent.push(l)).fatal('nothing');
    expect(silent).toEqual([]);
  });
});

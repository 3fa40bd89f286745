/**
 * What the agent keeps on disk: atomic, root-only files validated on the way back in, and
 * the bounded spool that drops its oldest batches (and counts them) when it is full.
 */
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Backoff } from '../../src/agent/backoff.js';
import { StateDirError } from '../../src/agent/errors.js';
import { batches, newBatchId, Outbox } from '../../src/agent/outbox.js';
import { DiskQueue, evictionPlan } from '../../src/agent/state/disk-queue.js';
import { readJson, writeJsonAtomic } from '../../src/agent/state/files.js';
import { openStateDir } from '../../src/agent/state/state-dir.js';
import { savedCredential, spooledBatch, type FlowSummary } from '../../src/agent/wire.js';
import { FakeControlPlane, silentLog } from './support/fakes.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulkhead-agent-state-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const summary = (dport: number): FlowSummary => ({
  src: '198.18.0.2',
  dst: '198.18.0.1',
  proto: 'tcp',
  dport,
  firstSeen: '2026-01-05T10:00:00.000Z',
  lastSeen: '2026-01-05T10:00:01.000Z',
  connections: 1,
  bytes: 0,
});

describe('backoff', () => {
  it('doubles up to its ceiling, with jitter between half and all of the wait, and starts over on reset', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    expect([1, 2, 3, 4, 5, 6].map(() => low.next())).toEqual([50, 100, 200, 400, 500, 500]);
    const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    expect([1, 2, 3, 4, 5].map(() => high.next())).toEqual([100, 200, 400, 800, 1000]);
    high.reset();
    expect(high.next()).toBe(100);
    // Many agents that failed together spread out.
    const spread = new Set(
      Array.from({ length: 50 }, () => new Backoff({ initialMs: 1000 }).next()),
    );
    expect(spread.size).toBeGreaterThan(30);
  });
});

describe('state files', () => {
  it('are written atomically, readable by root only, and checked when read back', async () => {
    const path = join(dir, 'credential.json');
    const credential = {
      agentId: 'a',
      credential: 'bha_0123456789',
      workload: 'w',
      server: 'http://x',
      pairedAt: 'now',
    };
    await writeJsonAtomic(path, credential);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readJson(path, savedCredential)).toEqual(credential);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(await readJson(join(dir, 'none.json'), savedCredential)).toBeNull();
    await writeFile(path, '{"agentId": 1}');
    await expect(readJson(path, savedCredential)).rejects.toThrow(StateDirError);
    await expect(readJson(path, savedCredential)).rejects.toThrow(
      /credential.json: is not what the agent wrote: agentId/,
    );
    await writeFile(path, '{"agentId": ');
    await expect(readJson(path, savedCredential)).rejects.toThrow(/is not JSON/);
  });

  it('makes the state directory root-only', async () => {
    const state = await openStateDir(join(dir, 'agent'), { maxBytes: 1 << 20, maxItems: 10 });
    expect((await stat(state.path)).mode & 0o777).toBe(0o700);
    expect(await state.readPolicy()).toBeNull();
  });
});

describe('the spool', () => {
  it('plans evictions: oldest first, until the new item fits', () => {
    const bound = { maxBytes: 100, maxItems: 3 };
    expect(evictionPlan([10, 10], 10, bound)).toEqual({ dropOldest: 0, acceptIncoming: true });
    expect(evictionPlan([10, 10, 10], 10, bound)).toEqual({ dropOldest: 1, acceptIncoming: true });
    expect(evictionPlan([60, 30], 40, bound)).toEqual({ dropOldest: 1, acceptIncoming: true });
    expect(evictionPlan([60, 30], 100, bound)).toEqual({ dropOldest: 2, acceptIncoming: true });
    expect(evictionPlan([60], 101, bound)).toEqual({ dropOldest: 0, acceptIncoming: false });
  });

  it('drops the oldest batches when full, counts them (batches and summaries), and keeps the count across restarts', async () => {
    const open = () =>
      DiskQueue.open(join(dir, 'flows'), spooledBatch, { maxBytes: 1500, maxItems: 100 });
    const q = await open();
    const batch = (i: number, n: number) => ({
      batchId: `b-${i}`,
      createdAt: '2026-01-05T10:00:00.000Z',
      summaries: Array.from({ length: n }, (_, k) => summary(k + 1)),
    });
    for (let i = 0; i < 8; i++) await q.push(batch(i, 2), 2);
    const kept = (await q.oldest(100)).map((e) => e.item.batchId);
    expect(kept.length).toBeLessThan(8);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, k) => `b-${8 - kept.length + k}`));
    expect(q.bytes).toBeLessThanOrEqual(1500);
    expect(q.dropped).toMatchObject({ items: 8 - kept.length, weight: 2 * (8 - kept.length) });
    const again = await open();
    expect(again.length).toBe(kept.length);
    expect(again.dropped.items).toBe(8 - kept.length);
    // A damaged file is dropped and counted, never delivered.
    const [first] = (await readdir(join(dir, 'flows')))
      .filter((f) => /^\d+-\d+\.json$/.test(f))
      .sort();
    await writeFile(join(dir, 'flows', first!), '{"batchId": "b-x"');
    const read = await again.oldest(100);
    expect(read.map((e) => e.item.batchId)).toEqual(kept.slice(1));
    expect(again.dropped.items).toBe(9 - kept.length);
    await again.clearDropped(again.dropped);
    expect((await open()).dropped.items).toBe(0);
  });
});

describe('the outbox', () => {
  it('splits summaries into batches the server accepts', () => {
    expect(batches(Array.from({ length: 12_001 }, (_, i) => i)).map((b) => b.length)).toEqual([
      5000, 5000, 2001,
    ]);
    expect(newBatchId(new Date(0), () => 0.5)).toBe('0-800000000000');
    expect(newBatchId(new Date())).toMatch(/^[a-z0-9]+-[0-9a-f]{12}$/);
  });

  it('keeps batches while the control plane is away and delivers each once, under the id it was spooled with', async () => {
    const state = await openStateDir(dir, { maxBytes: 1 << 20, maxItems: 100 });
    const outbox = new Outbox(state, silentLog);
    const cp = new FakeControlPlane();
    cp.available = false;
    await outbox.spool([summary(1)]);
    await outbox.spool([summary(2), summary(3)]);
    expect(await outbox.deliver(cp)).toBe('unavailable');
    expect(outbox.pending.batches).toBe(2);
    cp.available = true;
    // The first answer is lost after the server stored the batch: it is sent again, same id.
    cp.loseNextFlowsAnswer = true;
    expect(await outbox.deliver(cp)).toBe('unavailable');
    expect(await outbox.deliver(cp)).toBe('delivered');
    expect(outbox.pending.batches).toBe(0);
    expect(cp.batches.map((b) => b.batchId)).toEqual([
      cp.batches[0]!.batchId,
      cp.batches[0]!.batchId,
      cp.batches[2]!.batchId,
    ]);
    expect([...cp.stored.values()].flatMap((b) => b.summaries.map((s) => s.dport))).toEqual([
      1, 2, 3,
    ]);
  });

  it('reports the batches it had to drop, once', async () => {
    const state = await openStateDir(dir, { maxBytes: 700, maxItems: 100 });
    const outbox = new Outbox(state, silentLog);
    for (let i = 0; i < 6; i++) await outbox.spool([summary(i + 1), summary(i + 100)]);
    const dropped = state.flows.dropped;
    expect(dropped.items).toBeGreaterThan(0);
    const cp = new FakeControlPlane();
    expect(await outbox.deliver(cp)).toBe('delivered');
    expect(cp.drops).toEqual([
      expect.objectContaining({
        batches: dropped.items,
        summaries: 2 * dropped.items,
        reason: expect.stringContaining('spool') as unknown,
      }),
    ]);
    expect(await outbox.deliver(cp)).toBe('delivered');
    expect(cp.drops).toHaveLength(1);
  });
});

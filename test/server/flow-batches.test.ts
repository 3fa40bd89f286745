/**
 * An agent's flow batch read in a worker thread (as the server reads it) gives exactly what
 * reading it inline gives: the same log text for a good batch, the same field-by-field
 * problems for a bad one.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  inlineBatchReader,
  readFlowBatch,
  threadBatchReader,
} from '../../src/server/flow-batches.js';
import { LOG_ROW_SUMMARIES } from '../../src/store/flows.js';

const summary = (i: number) => ({
  src: `10.0.0.${1 + (i % 200)}`,
  dst: '10.0.1.1',
  proto: 'tcp',
  dport: 443,
  process: i % 2 ? 'nginx' : undefined,
  firstSeen: '2026-11-24T10:00:00.000Z',
  lastSeen: '2026-11-24T10:00:05+00:00',
  connections: 1 + (i % 3),
  bytes: 100 * i,
  decision: i % 7 === 0 ? 'blocked' : undefined,
});

describe('reading flow batches', () => {
  const failures: Error[] = [];
  const thread = threadBatchReader((e) => failures.push(e));
  const inline = inlineBatchReader();
  afterAll(() => thread.close());

  it('turns a batch into log text, canonical times and all, alike in a worker', async () => {
    const body = Buffer.from(
      JSON.stringify({
        batchId: 'b-1',
        summaries: Array.from({ length: 300 }, (_, i) => summary(i)),
      }),
    );
    const mine = await inline.read(body);
    expect(await thread.read(body)).toEqual(mine);
    expect(failures).toEqual([]);
    if (!mine.ok) throw new Error('the batch should read');
    expect(mine).toMatchObject({ batchId: 'b-1', summaries: 300 });
    const [first] = JSON.parse(mine.logTexts[0]!.text) as unknown[][];
    expect(first).toEqual([
      '10.0.0.1',
      '10.0.1.1',
      'tcp',
      443,
      null,
      '2026-11-24T10:00:00.000Z',
      '2026-11-24T10:00:05.000Z',
      1,
      0,
      'blocked',
    ]);
  });

  it('splits a batch of the most summaries into bounded log rows', () => {
    const reading = readFlowBatch(
      JSON.stringify({
        batchId: 'big',
        summaries: Array.from({ length: LOG_ROW_SUMMARIES }, (_, i) => summary(i)),
      }),
    );
    expect(reading.ok && reading.logTexts.map((t) => t.count)).toEqual([LOG_ROW_SUMMARIES]);
  });

  it('names each bad field, alike in a worker', async () => {
    const bad = Buffer.from(
      JSON.stringify({
        batchId: 'b 2',
        summaries: [summary(0), { ...summary(1), dst: '10.0.1.300', connections: -1 }],
      }),
    );
    const mine = await inline.read(bad);
    expect(await thread.read(bad)).toEqual(mine);
    expect(mine.ok).toBe(false);
    if (mine.ok) return;
    expect(mine.details.map((d) => d.path)).toEqual(
      expect.arrayContaining([
        'body.batchId',
        'body.summaries[1].dst',
        'body.summaries[1].connections',
      ]),
    );
    const notJson = await thread.read(Buffer.from('{"batchId": '));
    expect(notJson).toMatchObject({ ok: false, details: [{ path: 'body' }] });
  });
});

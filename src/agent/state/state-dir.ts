/**
 * The agent's state directory: what it needs to keep working across restarts without the
 * control plane.
 *
 *   credential.json   the agent's credential from pairing (0600): once paired, the
 *                     activation code is never needed again
 *   policy.json       the last policy applied, and the control-plane channel kept open
 *                     with it: re-applied on start, before the agent connects anywhere
 *   spool/flows/      flow batches not delivered yet (bounded; see disk-queue.ts)
 *   spool/reports/    tamper and dropped-telemetry reports not delivered yet
 */
import { chmod, mkdir } from '../fs.js';
import { join } from 'node:path';
import { StateDirError, errorText } from '../errors.js';
import {
  queuedReport,
  savedCredential,
  savedPolicy,
  spooledBatch,
  type QueuedReport,
  type SavedCredential,
  type SavedPolicy,
} from '../wire.js';
import type { Infer } from '../check.js';
import { DiskQueue, type QueueBound } from './disk-queue.js';
import { DIR_MODE, readJson, writeJsonAtomic } from './files.js';

export type SpooledBatch = Infer<typeof spooledBatch>;

export interface StateDir {
  readonly path: string;
  readCredential(): Promise<SavedCredential | null>;
  writeCredential(c: SavedCredential): Promise<void>;
  readPolicy(): Promise<SavedPolicy | null>;
  writePolicy(p: SavedPolicy): Promise<void>;
  readonly flows: DiskQueue<SpooledBatch>;
  readonly reports: DiskQueue<QueuedReport>;
}

export async function openStateDir(path: string, spoolBound: QueueBound): Promise<StateDir> {
  try {
    await mkdir(path, { recursive: true, mode: DIR_MODE });
    // The directory holds a credential: whatever umask made it, only root may enter.
    await chmod(path, DIR_MODE);
  } catch (e) {
    throw new StateDirError(path, `cannot create: ${errorText(e)}`, { cause: e });
  }
  const flows = await DiskQueue.open(join(path, 'spool', 'flows'), spooledBatch, spoolBound);
  const reports = await DiskQueue.open(join(path, 'spool', 'reports'), queuedReport, {
    maxBytes: 1024 * 1024,
    maxItems: 200,
  });
  const file = (name: string) => join(path, name);
  return {
    path,
    readCredential: () => readJson(file('credential.json'), savedCredential),
    writeCredential: (c) => writeJsonAtomic(file('credential.json'), c),
    readPolicy: () => readJson(file('policy.json'), savedPolicy),
    writePolicy: (p) => writeJsonAtomic(file('policy.json'), p),
    flows,
    reports,
  };
}

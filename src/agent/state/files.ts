/**
 * Files in the state directory: written atomically (a temporary file in the same directory,
 * flushed, then renamed over the old one), so a crash leaves the old file or the new one,
 * never half of either; readable only by root (0600); checked (check.ts) on the way back
 * in, since anything on disk may have been damaged or edited.
 */
import { createFileSynced, readFile, rename, rm } from '../fs.js';
import { basename, dirname, join } from 'node:path';
import type { Schema } from '../check.js';
import { StateDirError, errorText } from '../errors.js';

export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

let sequence = 0;

export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${sequence++}.tmp`);
  try {
    await createFileSynced(tmp, text, FILE_MODE);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new StateDirError(path, `cannot write: ${errorText(e)}`, { cause: e });
  }
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value)}\n`);
}

/** The file's content, checked against `schema`; null when there is no such file. */
export async function readJson<T>(path: string, schema: Schema<T>): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateDirError(path, `cannot read: ${errorText(e)}`, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new StateDirError(path, `is not JSON: ${errorText(e)}`, { cause: e });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success)
    throw new StateDirError(
      path,
      `is not what the agent wrote: ${parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`)
        .join('; ')}`,
    );
  return parsed.data;
}

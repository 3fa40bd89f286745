/**
 * What `bulkhead lab down` removes from the lab's directory: everything the lab wrote, a
 * state file half-written when `up` was killed included, and nothing of anyone else's.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { labPaths, removeLabFiles } from '../../src/lab/state.js';

describe("the lab directory's removal", () => {
  let root = '';
  afterEach(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  async function labDir(): Promise<string> {
    root = await mkdtemp(join(tmpdir(), 'bulkhead-lab-state-'));
    const dir = join(root, 'lab');
    const paths = labPaths(dir);
    for (const d of [paths.bin, paths.programs, paths.logs, join(dir, 'web-1')])
      await mkdir(d, { recursive: true });
    await writeFile(paths.state, '{}\n');
    await writeFile(join(dir, 'web-1', 'credential.json'), '{}\n');
    // `up` was killed between writing its new state and renaming it into place.
    await writeFile(`${paths.state}.4242.tmp`, '{"half":');
    return dir;
  }

  it('removes what the lab wrote, a half-written state file too, and the directory', async () => {
    const dir = await labDir();
    await removeLabFiles(dir, ['web-1']);
    expect(existsSync(dir)).toBe(false);
  });

  it("leaves the operator's own files, and the directory that holds them", async () => {
    const dir = await labDir();
    await writeFile(join(dir, 'notes.txt'), 'mine\n');
    await writeFile(join(dir, 'state.json.bak'), 'mine too\n');
    await removeLabFiles(dir, ['web-1']);
    expect((await readdir(dir)).sort()).toEqual(['notes.txt', 'state.json.bak']);
  });
});

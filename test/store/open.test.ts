/**
 * Opening the embedded store where the data directory cannot be: a clear error naming the
 * path, promptly (Node's recursive mkdir never returns under /proc), and a data directory
 * several levels deep that does not exist yet is made.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, StoreError } from '../../src/store/store.js';

describe('opening the embedded store', () => {
  let root = '';
  afterEach(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it.skipIf(!existsSync('/proc/self'))(
    'fails at once, naming the path, for a data directory it cannot make (under /proc)',
    async () => {
      const started = Date.now();
      const opening = openStore({ dataDir: '/proc/bulkhead-nonexistent/data' });
      await expect(opening).rejects.toThrow(StoreError);
      await expect(opening).rejects.toThrow(
        /cannot open the store at \/proc\/bulkhead-nonexistent\/data\/bulkhead\.db: .*mkdir '\/proc\/bulkhead-nonexistent'/,
      );
      expect(Date.now() - started).toBeLessThan(5_000);
    },
  );

  it('makes a data directory several levels deep', async () => {
    root = await mkdtemp(join(tmpdir(), 'bulkhead-open-'));
    const dataDir = join(root, 'a', 'b', 'c');
    const store = await openStore({ dataDir });
    await store.db.destroy();
    expect(existsSync(join(dataDir, 'bulkhead.db'))).toBe(true);
  });
});

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const BIN = 'dist/src/cli/main.js';
const built = existsSync(BIN);

// `npm test` builds before it runs the tests; a bare `vitest` run without a build skips this.
describe.skipIf(!built)(
  `the installed command (${BIN}; skipped when not built: run npm run build)`,
  () => {
    it('runs as a program and exits with the right codes', async () => {
      const run = promisify(execFile);
      const help = await run('node', [BIN, '--help']);
      expect(help.stdout).toContain('Usage: bulkhead');
      const check = await run('node', [BIN, 'policy', 'check', '-f', 'examples/estate']);
      expect(check.stdout).toContain('policy OK');
      await expect(
        run('node', [BIN, 'policy', 'check', '-f', 'no/such/dir']),
      ).rejects.toMatchObject({
        code: 1,
        stderr: expect.stringContaining('no/such/dir: no such file or directory') as unknown,
      });
    });
  },
);

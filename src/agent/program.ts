/**
 * Where the agent's program is: the build bundles the agent into one CommonJS file
 * (`dist/agent/bulkhead-agent.cjs`, from src/cli/agent-main.ts). One file, loaded without
 * node's ES module loader, keeps about a megabyte and a half off every agent's memory; the
 * systemd unit and the lab run it, with the same arguments as `bulkhead agent`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The bundle's path under the package root. */
export const AGENT_PROGRAM = join('dist', 'agent', 'bulkhead-agent.cjs');

/** This package's root: the nearest folder above this module with Bulkhead's package.json. */
export function packageRoot(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const { name } = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string };
      if (name === 'bulkhead') return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** The built agent program of this package (`npm run build` makes it). */
export function builtAgentProgram(): string {
  return join(packageRoot() ?? process.cwd(), AGENT_PROGRAM);
}

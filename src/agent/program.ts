/**
 * Where the agent's program is: the build bundles the agent into one CommonJS file
 * (`dist/agent/bulkhead-agent.cjs`, from src/cli/agent-main.ts). One file, loaded without
 * node's ES module loader, keeps about a megabyte and a half off every agent's memory; the
 * systemd unit and the lab run it, with the same arguments as `bulkhead agent`.
 */
import { join } from 'node:path';
import { ownPackage } from '../own-package.js';

/** The bundle's path under the package root. */
const AGENT_PROGRAM = join('dist', 'agent', 'bulkhead-agent.cjs');

/** The built agent program of this package (`npm run build` makes it). */
export function builtAgentProgram(): string {
  return join(ownPackage()?.root ?? process.cwd(), AGENT_PROGRAM);
}

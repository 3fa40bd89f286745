/**
 * Bulkhead's own package, found from this module: the nearest folder above it whose
 * package.json is Bulkhead's. That is the checkout when run from src/ or dist/src/, the
 * installed package's folder, or, for the agent's bundle in dist/agent/, the same.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface OwnPackage {
  /** The folder holding package.json. */
  readonly root: string;
  readonly version: string;
}

let found: OwnPackage | null | undefined;

/** The package, or null when this module is not inside it (it was copied out alone). */
export function ownPackage(): OwnPackage | null {
  if (found !== undefined) return found;
  found = null;
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const { name, version } = JSON.parse(readFileSync(manifest, 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (name === 'bulkhead') {
        found = { root: dir, version: version ?? '0.0.0' };
        break;
      }
    }
    if (dirname(dir) === dir) break;
  }
  return found;
}

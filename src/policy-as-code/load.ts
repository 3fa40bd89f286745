/** Reads policy-as-code from a file or a directory of `.yaml`/`.yml` files. */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parsePolicyFiles, PolicyFilesError, type LoadedPolicy, type SourceFile } from './parse.js';

async function yamlFilesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && /\.ya?ml$/i.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** Reads every policy file at the given paths (files or directories), in a stable order. */
export async function readPolicySources(paths: readonly string[]): Promise<SourceFile[]> {
  const files: SourceFile[] = [];
  for (const p of paths) {
    let info;
    try {
      info = await stat(p);
    } catch {
      throw new PolicyFilesError([
        {
          severity: 'error',
          file: p,
          line: null,
          object: null,
          path: '',
          message: 'no such file or directory',
        },
      ]);
    }
    const list = info.isDirectory() ? await yamlFilesUnder(p) : [p];
    if (list.length === 0) {
      throw new PolicyFilesError([
        {
          severity: 'error',
          file: p,
          line: null,
          object: null,
          path: '',
          message: 'holds no .yaml or .yml files',
        },
      ]);
    }
    for (const file of list) {
      const shown = info.isDirectory() ? relative(p, file) : file;
      files.push({ path: shown, text: await readFile(file, 'utf8') });
    }
  }
  return files;
}

export async function loadPolicy(paths: readonly string[]): Promise<LoadedPolicy> {
  return parsePolicyFiles(await readPolicySources(paths));
}

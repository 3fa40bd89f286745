/**
 * The file system calls the agent makes, as promises over node:fs's callbacks. The agent
 * does not import node:fs/promises: that module brings file handles, streams and readline
 * with it, half a megabyte of every agent's memory, for calls this small set covers.
 */
import * as fs from 'node:fs';
import { promisify } from 'node:util';

export const chmod = promisify(fs.chmod);
export const mkdir = promisify(fs.mkdir);
export const readdir = promisify(fs.readdir);
export const readFile = promisify(fs.readFile);
export const readlink = promisify(fs.readlink);
export const rename = promisify(fs.rename);
export const rm = promisify(fs.rm);
export const stat = promisify(fs.stat);
export const writeFile = promisify(fs.writeFile);

const open = promisify(fs.open);
const fsync = promisify(fs.fsync);
const close = promisify(fs.close);

/** Creates `path` (which must not exist) with `text`, flushed to the disk before it returns. */
export async function createFileSynced(path: string, text: string, mode: number): Promise<void> {
  const fd = await open(path, 'wx', mode);
  try {
    await writeFile(fd, text, 'utf8');
    await fsync(fd);
  } finally {
    await close(fd);
  }
}

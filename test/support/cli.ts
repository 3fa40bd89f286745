import { runCli } from '../../src/cli/program.js';

/** Runs the CLI in-process and captures what it prints and its exit code. */
export async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, {
    out: (s) => (out += s.endsWith('\n') ? s : `${s}\n`),
    err: (s) => (err += s.endsWith('\n') ? s : `${s}\n`),
  });
  return { code, out, err };
}

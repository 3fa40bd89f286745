#!/usr/bin/env node
import { processIo } from './io.js';
import { runCli } from './program.js';

// `bulkhead flows --csv | head` closes the pipe early: the reader has what it wanted, so
// stop quietly instead of dying on an unhandled EPIPE.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

process.exitCode = await runCli(process.argv.slice(2), processIo);

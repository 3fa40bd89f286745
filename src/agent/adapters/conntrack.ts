/**
 * The conntrack adapter: new and ended connections from the kernel's connection tracker,
 * as raw lines (parsing is pure, in parse/conntrack.ts). One long-running `conntrack -E`
 * child streams events (through a named pipe); `conntrack -L` dumps (through another) catch
 * what the event stream missed.
 */
import { readFile, writeFile } from '../fs.js';
import { eachLine, fifoPath, streamLinesViaFifo, type LineStream } from './lines.js';

export interface ConntrackAdapter {
  /** Streams NEW and DESTROY events, with conntrack ids; stderr lines go to `onNotice`. */
  events(onLine: (line: string) => void, onNotice: (line: string) => void): LineStream;
  /** Lists every tracked connection, a line at a time. */
  dump(onLine: (line: string) => void): Promise<void>;
  /**
   * Turns on byte accounting (`net.netfilter.nf_conntrack_acct`) if it is off, so flows carry
   * byte counts; true when this call turned it on.
   */
  enableAccounting(): Promise<boolean>;
}

const ACCOUNTING = '/proc/sys/net/netfilter/nf_conntrack_acct';

/** A larger receive buffer makes the kernel drop fewer events under bursts. */
const EVENT_BUFFER_BYTES = String(8 * 1024 * 1024);

/**
 * `runtimeDir` (tmpfs, e.g. /run/bulkhead-agent) holds the named pipes the events and the
 * dumps pass through (see `streamLinesViaFifo`); one of each per agent process.
 */
export function systemConntrack(runtimeDir: string, conntrack = 'conntrack'): ConntrackAdapter {
  // Found once: finding a pipe's path also clears what killed agents left in the directory.
  let dumpPath: string | undefined;
  return {
    events: (onLine, onNotice) =>
      streamLinesViaFifo(
        [conntrack, '-E', '-e', 'NEW,DESTROY', '-o', 'id', '-b', EVENT_BUFFER_BYTES],
        onLine,
        onNotice,
        { path: fifoPath(runtimeDir, 'conntrack-events') },
      ),
    // A busy table lists 100k+ connections: the same pipe-and-poll path as the events.
    dump: (onLine) =>
      eachLine([conntrack, '-L', '-o', 'id'], onLine, {
        path: (dumpPath ??= fifoPath(runtimeDir, 'conntrack-dump')),
        pollMs: 10,
      }),
    async enableAccounting() {
      const now = (await readFile(ACCOUNTING, 'utf8')).trim();
      if (now !== '0') return false;
      await writeFile(ACCOUNTING, '1\n');
      return true;
    },
  };
}

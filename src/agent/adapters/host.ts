/**
 * The host adapter: what the agent learns about the machine it runs on (name, OS,
 * interfaces, sockets and the processes behind them, logged-in users). The real one reads
 * /etc, /proc and runs `ip`, `ss` and `who`; tests use a fake.
 */
import { readFile, readlink } from '../fs.js';
import { hostname, release } from 'node:os';
import { run } from '../../host/run.js';
import { parseIpAddr } from '../parse/ip-addr.js';
import { describeOs } from '../parse/os-release.js';
import { parseSs, type SocketEntry } from '../parse/ss.js';
import { parsePasswd, parseWho, statusUid } from '../parse/users.js';
import type { InterfaceReport } from '../wire.js';

export interface ProcessDetails {
  readonly path?: string;
  readonly user?: string;
}

export interface HostAdapter {
  hostname(): string;
  /** `Debian GNU/Linux 12 (bookworm); Linux 6.1.0`, or undefined when unknown. */
  osDescription(): Promise<string | undefined>;
  interfaces(): Promise<InterfaceReport[]>;
  /** Every TCP and UDP socket but TIME-WAIT ones, with its process where there is one. */
  sockets(): Promise<SocketEntry[]>;
  processDetails(pid: number): Promise<ProcessDetails>;
  loggedInUsers(): Promise<string[]>;
  /** The addresses a host name resolves to (an address resolves to itself). */
  resolve(name: string): Promise<string[]>;
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

export function systemHost(): HostAdapter {
  let passwd: { at: number; users: Map<number, string> } | null = null;
  const userName = async (uid: number): Promise<string | undefined> => {
    // Re-read now and then: users are added while the agent runs.
    if (!passwd || Date.now() - passwd.at > 60_000)
      passwd = { at: Date.now(), users: parsePasswd((await readOptional('/etc/passwd')) ?? '') };
    return passwd.users.get(uid) ?? String(uid);
  };
  return {
    hostname: () => hostname(),
    async osDescription() {
      const text =
        (await readOptional('/etc/os-release')) ?? (await readOptional('/usr/lib/os-release'));
      return describeOs(text, release());
    },
    async interfaces() {
      const { stdout } = await run(['ip', '-j', 'addr', 'show']);
      return parseIpAddr(stdout);
    },
    async sockets() {
      // TIME-WAIT sockets have no process and can number 100k on a busy host: left out.
      const { stdout } = await run(['ss', '-Htuapn', 'exclude', 'time-wait']);
      return parseSs(stdout);
    },
    async processDetails(pid) {
      const [path, status] = await Promise.all([
        readlink(`/proc/${pid}/exe`).catch(() => undefined),
        readOptional(`/proc/${pid}/status`),
      ]);
      const uid = status === null ? null : statusUid(status);
      const user = uid === null ? undefined : await userName(uid);
      return {
        ...(path !== undefined ? { path: path.replace(/ \(deleted\)$/, '') } : {}),
        ...(user !== undefined ? { user } : {}),
      };
    },
    async loggedInUsers() {
      const { stdout } = await run(['who']);
      return parseWho(stdout);
    },
    async resolve(name) {
      // Loaded only for a control plane named by host name (a quarter megabyte).
      const { lookup } = await import('node:dns/promises');
      const answers = await lookup(name, { all: true, verbatim: true });
      return [...new Set(answers.map((a) => a.address))];
    },
  };
}

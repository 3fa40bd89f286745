/**
 * Who is logged in, and who owns a process: `who` output (coreutils 9, recorded in
 * test/agent/fixtures/who.out: `alice    pts/0        2026-01-05 09:12 (198.18.0.5)`),
 * `/etc/passwd` lines and the `Uid:` line of `/proc/PID/status`.
 */

/** The distinct user names `who` lists, sorted. */
export function parseWho(text: string): string[] {
  const users = new Set<string>();
  for (const line of text.split('\n')) {
    const user = line.trim().split(/\s+/)[0];
    if (user) users.add(user);
  }
  return [...users].sort();
}

/** uid → user name. */
export function parsePasswd(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    const [name, , uid] = line.split(':');
    if (name && uid !== undefined && /^\d+$/.test(uid) && !out.has(Number(uid)))
      out.set(Number(uid), name);
  }
  return out;
}

/** The real uid in a `/proc/PID/status` text, or null. */
export function statusUid(text: string): number | null {
  const m = /^Uid:\s+(\d+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

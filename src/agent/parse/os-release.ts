/** `/etc/os-release` (see os-release(5)): shell-style KEY=value lines, values maybe quoted. */

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    let value = line.slice(eq + 1);
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2)
      value = value.slice(1, -1).replace(/\\(["'$`\\])/g, '$1');
    out[line.slice(0, eq)] = value;
  }
  return out;
}

/** What the inventory says the OS is: `Debian GNU/Linux 12 (bookworm); Linux 6.1.0`. */
export function describeOs(osRelease: string | null, kernel: string | null): string | undefined {
  const fields = osRelease === null ? {} : parseOsRelease(osRelease);
  const name = fields.PRETTY_NAME ?? fields.NAME;
  const parts = [name, kernel ? `Linux ${kernel}` : undefined].filter((p): p is string => !!p);
  return parts.length ? parts.join('; ').slice(0, 256) : undefined;
}

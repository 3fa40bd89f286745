/**
 * The inventory a workload reports: hostname, OS, interfaces and addresses, listening
 * sockets with the process behind each (name, path, pid, user), and logged-in users.
 * Re-sent when it changes; compared as JSON, so it is built in a stable order.
 */
import type { HostAdapter, ProcessDetails } from './adapters/host.js';
import type { SocketTable } from './telemetry/sockets.js';
import type { Inventory, InterfaceReport, ListeningSocket } from './wire.js';

export async function takeInventory(
  host: HostAdapter,
  hostname: string,
  interfaces: readonly InterfaceReport[],
  sockets: SocketTable,
): Promise<Inventory> {
  const details = new Map<number, Promise<ProcessDetails>>();
  const detailsOf = (pid: number) => {
    let d = details.get(pid);
    if (!d) details.set(pid, (d = host.processDetails(pid).catch(() => ({}))));
    return d;
  };
  const seen = new Set<string>();
  const listening: ListeningSocket[] = [];
  for (const s of sockets.listening()) {
    const key = `${s.proto} ${s.local.address} ${s.local.port}`;
    if (seen.has(key) || s.local.port === 0) continue;
    seen.add(key);
    const d = s.process ? await detailsOf(s.process.pid) : {};
    listening.push({
      port: s.local.port,
      proto: s.proto,
      address: s.local.address.slice(0, 64),
      ...(s.process ? { process: s.process.name.slice(0, 255), pid: s.process.pid } : {}),
      ...(d.user !== undefined ? { user: d.user.slice(0, 255) } : {}),
      ...(d.path !== undefined ? { path: d.path.slice(0, 4096) } : {}),
    });
  }
  // Plain code-unit order, not localeCompare: the first localeCompare loads ICU's collation
  // data, about 2 MB of the agent's resident memory, to sort a few ASCII strings.
  listening.sort(
    (a, b) =>
      byCodeUnits(a.proto, b.proto) ||
      a.port - b.port ||
      byCodeUnits(a.address ?? '', b.address ?? ''),
  );
  const users = await host.loggedInUsers().catch(() => []);
  const os = await host.osDescription().catch(() => undefined);
  return {
    hostname,
    ...(os !== undefined ? { os } : {}),
    interfaces: interfaces.slice(0, 256).map((i) => ({
      name: i.name.slice(0, 64),
      addresses: i.addresses.slice(0, 256),
    })),
    listening: listening.slice(0, 10_000),
    users: users.slice(0, 10_000),
  };
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Network namespaces joined by one bridge: the smallest real network. The lab and the
 * kernel tests build their hosts with this, always under a name prefix they own, so that
 * teardown can find everything even after a crash.
 */
import { spawn } from 'node:child_process';
import { run } from './run.js';

export interface NetnsHost {
  readonly name: string;
  readonly netns: string;
  readonly addresses: readonly string[];
}

export interface NetnsNetwork {
  readonly prefix: string;
  readonly bridge: string;
  readonly hosts: readonly NetnsHost[];
  /** Runs a command inside a host's namespace. */
  exec(host: string, command: readonly string[], input?: string): Promise<string>;
  destroy(): Promise<void>;
}

export interface HostSpec {
  readonly name: string;
  /** IPv4 addresses with prefix length, e.g. 198.18.0.10/24; IPv6 likewise. */
  readonly addresses: readonly string[];
}

export interface NetworkOptions {
  /**
   * Addresses (with prefix length) for the bridge itself, so the root namespace (a control
   * plane, say) is on the hosts' link. None by default: the hosts only see each other.
   */
  readonly bridgeAddresses?: readonly string[];
}

const ip = (...args: string[]) => run(['ip', ...args]);
const noDad = (a: string) => (a.includes(':') ? ['nodad'] : []);

/** The network namespaces whose name starts with `prefix`. */
export async function namespacesWithPrefix(prefix: string): Promise<string[]> {
  const { stdout } = await run(['ip', '-o', 'netns', 'list']);
  return stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((ns) => ns !== '' && ns.startsWith(prefix));
}

/** The links in the root namespace whose name starts with `prefix`. */
export async function linksWithPrefix(prefix: string): Promise<string[]> {
  const { stdout } = await run(['ip', '-o', 'link', 'show']);
  const links: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^\d+: ([^:@]+)/.exec(line);
    if (m?.[1]?.startsWith(prefix)) links.push(m[1]);
  }
  return links;
}

/** The processes running inside a namespace (none when it is already gone). */
export async function pidsInNamespace(netns: string): Promise<number[]> {
  const { stdout } = await run(['ip', 'netns', 'pids', netns], { okCodes: [0, 1] });
  return stdout
    .split('\n')
    .filter((line) => /^\d+$/.test(line.trim()))
    .map((line) => Number(line.trim()));
}

/** Removes every namespace and link whose name starts with `prefix` (idempotent). */
export async function destroyByPrefix(prefix: string): Promise<void> {
  for (const ns of await namespacesWithPrefix(prefix))
    await run(['ip', 'netns', 'del', ns], { okCodes: [0, 1] });
  for (const link of await linksWithPrefix(prefix))
    await run(['ip', 'link', 'del', link], { okCodes: [0, 1] });
}

/**
 * Builds one namespace per host, each with a veth into a shared bridge in the root
 * namespace. Interface names are kept within the kernel's 15 characters.
 */
export async function createNetwork(
  prefix: string,
  hosts: readonly HostSpec[],
  options: NetworkOptions = {},
): Promise<NetnsNetwork> {
  if (prefix.length > 6) throw new Error(`netns prefix "${prefix}" is longer than 6 characters`);
  await destroyByPrefix(prefix);
  const bridge = `${prefix}br`;
  const built: NetnsHost[] = [];
  try {
    await ip('link', 'add', bridge, 'type', 'bridge');
    for (const a of options.bridgeAddresses ?? [])
      await ip('addr', 'add', a, 'dev', bridge, ...noDad(a));
    await ip('link', 'set', bridge, 'up');
    for (const [i, host] of hosts.entries()) {
      const netns = `${prefix}${host.name}`;
      const outer = `${prefix}v${i}`;
      await ip('netns', 'add', netns);
      await ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
      await ip('link', 'set', outer, 'master', bridge, 'up');
      await ip('-n', netns, 'link', 'set', 'lo', 'up');
      for (const a of host.addresses) {
        await ip('-n', netns, 'addr', 'add', a, 'dev', 'eth0', ...noDad(a));
      }
      await ip('-n', netns, 'link', 'set', 'eth0', 'up');
      built.push({
        name: host.name,
        netns,
        addresses: host.addresses.map((a) => a.split('/')[0]!),
      });
    }
  } catch (e) {
    await destroyByPrefix(prefix);
    throw e;
  }
  const byName = new Map(built.map((h) => [h.name, h]));
  return {
    prefix,
    bridge,
    hosts: built,
    async exec(host, command, input) {
      const h = byName.get(host);
      if (!h) throw new Error(`no host "${host}" in network ${prefix}`);
      const { stdout } = await run(
        ['ip', 'netns', 'exec', h.netns, ...command],
        input === undefined ? {} : { input },
      );
      return stdout;
    },
    destroy: () => destroyByPrefix(prefix),
  };
}

/**
 * Takes an exclusive lock on a namespace prefix, so that two runs of the same test (a
 * developer's and the suite's, say) never tear down each other's namespaces. The lock is
 * held by a `flock` child that waits on our stdin: it is released when we release it, and
 * also when this process dies, however it dies.
 */
export async function lockPrefix(prefix: string, timeoutMs: number): Promise<() => Promise<void>> {
  const path = `/run/lock/bulkhead-lab-${prefix}.lock`;
  const seconds = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
  const child = spawn(
    'flock',
    ['--exclusive', '--timeout', seconds, path, 'sh', '-c', 'echo locked; exec cat'],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const locked = await new Promise<boolean>((resolve) => {
    child.stdout.once('data', () => resolve(true));
    child.once('exit', () => resolve(false));
    child.once('error', () => resolve(false));
  });
  if (!locked)
    throw new Error(`lab prefix "${prefix}" is still in use after ${seconds}s (lock ${path})`);
  return async () => {
    child.stdin.end();
    await exited;
  };
}

/**
 * What a lab needs from the machine before it touches anything: Linux, root (network
 * namespaces, veth, bridges), iproute2 and nftables (the agents enforce with nft, and the
 * lab turns on connection tracking with it).
 */
import { hasCommand } from '../host/run.js';
import { LabError } from './errors.js';

const TOOLS: readonly { name: string; why: string; install: string }[] = [
  { name: 'ip', why: 'network namespaces', install: 'iproute2' },
  { name: 'nft', why: 'nftables', install: 'nftables' },
];

/** Why a lab cannot run here, or null when it can. */
export async function labUnavailable(): Promise<string | null> {
  if (process.platform !== 'linux') return 'the lab needs Linux (network namespaces)';
  if (process.getuid?.() !== 0)
    return 'the lab needs root (it builds network namespaces, veth links and a bridge): run it with sudo';
  for (const tool of TOOLS) {
    if (!(await hasCommand(tool.name)))
      return `the lab needs ${tool.why}, but \`${tool.name}\` is not installed (on Debian: apt-get install ${tool.install})`;
  }
  return null;
}

export async function requireLabHost(): Promise<void> {
  const why = await labUnavailable();
  if (why) throw new LabError(why);
}

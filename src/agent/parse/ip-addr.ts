/**
 * `ip -j addr show` (iproute2 6.x), as recorded in test/agent/fixtures/ip-j-addr.out: one
 * object per interface, its addresses in `addr_info` with `local` and `prefixlen`.
 */
import { array, number, object, string } from '../check.js';
import type { InterfaceReport } from '../wire.js';

const ipAddrJson = array(
  object({
    ifname: string({ min: 1 }),
    addr_info: array(
      object({
        family: string().optional(),
        local: string().optional(),
        prefixlen: number({ int: true, min: 0, max: 128 }).optional(),
      }),
    ).default([]),
  }),
);

/** Interfaces with their addresses as `address/prefix`; throws on output that is not ip's JSON. */
export function parseIpAddr(text: string): InterfaceReport[] {
  const parsed = ipAddrJson.safeParse(JSON.parse(text) as unknown);
  if (!parsed.success) throw new Error(`ip -j addr: unexpected output: ${parsed.error.message}`);
  return parsed.data.map((i) => ({
    name: i.ifname,
    addresses: i.addr_info
      .filter((a) => a.local !== undefined && (a.family === 'inet' || a.family === 'inet6'))
      .map((a) => (a.prefixlen === undefined ? a.local! : `${a.local}/${a.prefixlen}`)),
  }));
}

const LOOPBACK = /^(127\.|::1$)/;
const LINK_LOCAL = /^(169\.254\.|fe[89ab][0-9a-f]?:)/i;

/**
 * The addresses a workload is known by: every interface's, but loopback and link-local (what
 * the control plane keeps too), without prefix lengths.
 */
export function workloadAddresses(interfaces: readonly InterfaceReport[]): string[] {
  const out = new Set<string>();
  for (const i of interfaces)
    for (const a of i.addresses) {
      const address = a.split('/')[0]!;
      if (!LOOPBACK.test(address) && !LINK_LOCAL.test(address)) out.add(address);
    }
  return [...out];
}

/** Every local address, loopback and link-local included: what "this host" means for a flow. */
export function localAddresses(interfaces: readonly InterfaceReport[]): Set<string> {
  const out = new Set<string>();
  for (const i of interfaces) for (const a of i.addresses) out.add(a.split('/')[0]!);
  return out;
}

/** 127.0.0.0/8 or ::1 (per connection: no regular expression). */
export function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

/**
 * `nft -j list table inet bulkhead` (nftables 1.0.6), as recorded in
 * test/agent/fixtures/nft-j-list-table.out: `{"nftables": [{"metainfo"}, {"table"},
 * {"set"}..., {"chain"}..., {"rule"}...]}`. Only Bulkhead's table is read; a dynamic set's
 * elements look like
 *   {"elem": {"val": {"concat": ["198.18.250.2", "tcp", 23]}, "expires": 3596,
 *             "counter": {"packets": 2, "bytes": 120}}}
 */
export interface NftJsonSet {
  readonly family: string;
  readonly table: string;
  readonly name: string;
  readonly timeout?: number;
  readonly elem?: readonly unknown[];
  readonly [key: string]: unknown;
}
export interface NftJsonChain {
  readonly family: string;
  readonly table: string;
  readonly name: string;
  readonly [key: string]: unknown;
}
export interface NftJsonRule {
  readonly family: string;
  readonly table: string;
  readonly chain: string;
  readonly expr: readonly unknown[];
  readonly [key: string]: unknown;
}

/** The objects of one table, in the order nft listed them. */
export interface NftTableListing {
  readonly sets: readonly NftJsonSet[];
  readonly chains: readonly NftJsonChain[];
  readonly rules: readonly NftJsonRule[];
}

type Loose = Record<string, unknown>;
const isObject = (v: unknown): v is Loose =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const hasText = (o: Loose, ...keys: string[]) => keys.every((k) => typeof o[k] === 'string');

/**
 * Reads a listing; objects of other tables are ignored. Throws on output that is not nft's
 * JSON. (Read every flush interval, so checked by hand rather than with a schema.)
 */
export function parseNftListing(
  json: unknown,
  family = 'inet',
  table = 'bulkhead',
): NftTableListing {
  if (!isObject(json) || !Array.isArray(json.nftables))
    throw new Error('nft -j: unexpected output: no "nftables" array');
  const sets: NftJsonSet[] = [];
  const chains: NftJsonChain[] = [];
  const rules: NftJsonRule[] = [];
  const ours = (o: Loose) => o.family === family && o.table === table;
  for (const item of json.nftables as unknown[]) {
    if (!isObject(item)) continue;
    const { set, chain, rule } = item;
    if (isObject(set) && hasText(set, 'family', 'table', 'name') && ours(set)) {
      if (set.timeout !== undefined && typeof set.timeout !== 'number') continue;
      if (set.elem !== undefined && !Array.isArray(set.elem)) continue;
      sets.push(set as NftJsonSet);
    } else if (isObject(chain) && hasText(chain, 'family', 'table', 'name') && ours(chain))
      chains.push(chain as NftJsonChain);
    else if (isObject(rule) && hasText(rule, 'family', 'table', 'chain') && ours(rule))
      rules.push({
        ...rule,
        expr: Array.isArray(rule.expr) ? rule.expr : [],
      } as unknown as NftJsonRule);
  }
  return { sets, chains, rules };
}

/** One element the kernel recorded in a blocked_* or potential_* set. */
export interface RecordedElement {
  readonly set: string;
  readonly verdict: 'blocked' | 'potential';
  readonly direction: 'inbound' | 'outbound';
  readonly remote: string;
  readonly proto: 'tcp' | 'udp';
  readonly port: number;
  readonly packets: number;
  readonly bytes: number;
  /** Seconds until the element expires, and the set's timeout: their difference is its age. */
  readonly expiresSeconds: number;
  readonly timeoutSeconds: number;
}

const RECORDING = /^(blocked|potential)_(in|out)[46]$/;

/** `{"elem": {"val": {"concat": [address, proto, port]}, "expires": s, "counter": {...}}}` */
function recordedElem(raw: unknown): {
  remote: string;
  proto: string | number;
  port: number;
  expires?: number;
  packets: number;
  bytes: number;
} | null {
  if (!isObject(raw) || !isObject(raw.elem)) return null;
  const { val, expires, counter } = raw.elem;
  if (!isObject(val) || !Array.isArray(val.concat) || val.concat.length !== 3) return null;
  const [remote, proto, port] = val.concat as unknown[];
  if (typeof remote !== 'string' || typeof port !== 'number') return null;
  if (typeof proto !== 'string' && typeof proto !== 'number') return null;
  const c = isObject(counter) ? counter : {};
  return {
    remote,
    proto,
    port,
    ...(typeof expires === 'number' ? { expires } : {}),
    packets: typeof c.packets === 'number' ? c.packets : 0,
    bytes: typeof c.bytes === 'number' ? c.bytes : 0,
  };
}

/** Every element of the recording sets (blocked_in4, potential_out6, ...). */
export function recordedElements(listing: NftTableListing): RecordedElement[] {
  const out: RecordedElement[] = [];
  for (const set of listing.sets) {
    const m = RECORDING.exec(set.name);
    if (!m || !set.elem) continue;
    const timeout = set.timeout ?? 0;
    for (const raw of set.elem) {
      const e = recordedElem(raw);
      if (!e) continue;
      const { remote, proto, port } = e;
      const p = proto === 6 ? 'tcp' : proto === 17 ? 'udp' : proto;
      if (p !== 'tcp' && p !== 'udp') continue;
      out.push({
        set: set.name,
        verdict: m[1] as 'blocked' | 'potential',
        direction: m[2] === 'in' ? 'inbound' : 'outbound',
        remote,
        proto: p,
        port,
        packets: e.packets,
        bytes: e.bytes,
        expiresSeconds: e.expires ?? timeout,
        timeoutSeconds: timeout,
      });
    }
  }
  return out;
}

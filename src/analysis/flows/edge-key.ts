/**
 * From one flow summary to the edge it counts for. An edge is named by its ends (a workload
 * of the estate, or an address outside it), protocol, port and the destination's serving
 * process; its canonical text is the unique key the store upserts by.
 *
 * One conversation between two managed workloads is seen by both agents. The destination's
 * report is the one kept (it alone knows the serving process); the source's is dropped,
 * unless the source saw it blocked (the destination then never saw it at all).
 */
import { canonicalAddress } from '../../policy/addresses.js';
import type { Decision, FlowProtocol } from '../../policy/decide.js';
import type { Workload } from '../../policy/model.js';
import type { EdgeKey, FlowEnd } from './model.js';

const PROTOCOLS: ReadonlySet<string> = new Set<FlowProtocol>(['tcp', 'udp', 'icmp', 'icmpv6']);

/** A flow summary as the ingest log holds it (`workload` is '' for imported flows). */
export interface SummaryFields {
  readonly workload: string;
  readonly src: string;
  readonly dst: string;
  readonly proto: string;
  readonly dport: number | null;
  readonly process: string | null;
  readonly decision: string | null;
}

export type Attribution =
  | { readonly kept: true; readonly key: EdgeKey }
  | { readonly kept: false; readonly reason: 'seen-by-destination' | 'bad-protocol' };

/** The workload owning an address (canonical text), if any. */
export type OwnerOf = (address: string) => Workload | undefined;

/** An address as stored on edges: canonical where it parses, as reported where it does not. */
export function edgeAddress(text: string): string {
  try {
    return canonicalAddress(text);
  } catch {
    return text;
  }
}

function endOf(address: string, owner: Workload | undefined): FlowEnd {
  return owner ? { workload: owner.name } : { address };
}

/**
 * What a summary's addresses, protocol and port resolve to, whoever reported it: the edge's
 * ends, and who owns them. The costly part of attribution (parsing addresses, finding their
 * owners), and the same for every agent that reports the same conversation.
 */
export interface ResolvedEnds {
  readonly base: Omit<EdgeKey, 'process'>;
  /** The owners' names; whether the destination's owner has an agent (reports it itself). */
  readonly sourceOwner: string | undefined;
  readonly destinationOwner: string | undefined;
  readonly destinationManaged: boolean;
}

/** Who reported a summary, relative to its ends. */
export type Reporter = 'import' | 'destination' | 'source' | 'neither';

/** The ends of a summary's edge; undefined for a protocol that flows do not have. */
export function resolveEnds(
  summary: Pick<SummaryFields, 'src' | 'dst' | 'proto' | 'dport'>,
  ownerOf: OwnerOf,
): ResolvedEnds | undefined {
  if (!PROTOCOLS.has(summary.proto)) return undefined;
  const proto = summary.proto as FlowProtocol;
  const src = edgeAddress(summary.src);
  const dst = edgeAddress(summary.dst);
  const srcOwner = ownerOf(src);
  const dstOwner = ownerOf(dst);
  const port = proto === 'tcp' || proto === 'udp' ? (summary.dport ?? null) : null;
  return {
    base: { source: endOf(src, srcOwner), destination: endOf(dst, dstOwner), proto, port },
    sourceOwner: srcOwner?.name,
    destinationOwner: dstOwner?.name,
    destinationManaged: dstOwner !== undefined && dstOwner.managed,
  };
}

/** Which side `workload` ('' for an import) reported the conversation from. */
export function reporterOf(workload: string, ends: ResolvedEnds): Reporter {
  if (workload === '') return 'import';
  // Traffic to itself counts as the destination's report.
  if (ends.destinationOwner === workload) return 'destination';
  if (ends.sourceOwner === workload) return 'source';
  return 'neither';
}

/** The edge a resolved summary counts for, given who reported it (see the module comment). */
export function attributeResolved(
  ends: ResolvedEnds,
  reporter: Reporter,
  summary: Pick<SummaryFields, 'process' | 'decision'>,
): Attribution {
  switch (reporter) {
    // Imported flows have no reporting side: what they say is all there is. The
    // destination's own report names the serving process.
    case 'import':
    case 'destination':
      return { kept: true, key: { ...ends.base, process: summary.process } };
    case 'source':
      if (ends.destinationManaged && (summary.decision as Decision | null) !== 'blocked')
        return { kept: false, reason: 'seen-by-destination' };
      // The process on a source-side report is the client's, not the service's.
      return { kept: true, key: { ...ends.base, process: null } };
    case 'neither':
      // Neither end belongs to the reporter any more (its addresses changed since): keep the
      // traffic, but the reporting side and so its process are unknown.
      return { kept: true, key: { ...ends.base, process: null } };
  }
}

/** Which edge a summary counts for, and whether it is counted at all (see the module comment). */
export function attributeSummary(summary: SummaryFields, ownerOf: OwnerOf): Attribution {
  const ends = resolveEnds(summary, ownerOf);
  if (!ends) return { kept: false, reason: 'bad-protocol' };
  return attributeResolved(ends, reporterOf(summary.workload, ends), summary);
}

function endText(end: FlowEnd): string {
  return end.workload !== undefined ? `w:${end.workload}` : `a:${end.address}`;
}

/**
 * The canonical text of an edge key: equal keys, equal text; different keys, different text.
 * Usually `w:web|a:10.0.0.9|tcp|443|=nginx` (the process last, so a `|` inside it is
 * harmless; `~` for none); a key whose ends hold a `|` is written as JSON instead.
 */
export function edgeKeyText(key: EdgeKey): string {
  const src = endText(key.source);
  const dst = endText(key.destination);
  if (src.includes('|') || dst.includes('|'))
    return `json:${JSON.stringify([src, dst, key.proto, key.port, key.process])}`;
  const process = key.process === null ? '~' : `=${key.process}`;
  return `${src}|${dst}|${key.proto}|${key.port ?? ''}|${process}`;
}

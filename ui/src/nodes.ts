/**
 * Map node ids and the explorer's filters: a node's id names exactly the ends it stands for,
 * so an edge between two nodes becomes a `src`/`dst` filter for its flows.
 * `g:app=shop;env=prod` → `app=shop,env=prod`; `w:NAME` → `workload:NAME`; `a:NAME` → `group:NAME`.
 */

/** The label pairs of a group node id; a missing label (`key=`) cannot be filtered and is left out. */
export function groupLabels(id: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of id.slice(2).split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const value = part.slice(eq + 1);
    if (value) out[part.slice(0, eq)] = value;
  }
  return out;
}

/** The EndFilter text that selects a node's ends, or null when nothing narrower than "any" does. */
export function endFilterOf(nodeId: string): string | null {
  if (nodeId.startsWith('w:')) return `workload:${nodeId.slice(2)}`;
  if (nodeId.startsWith('a:')) return `group:${nodeId.slice(2)}`;
  if (nodeId.startsWith('g:')) {
    const text = Object.entries(groupLabels(nodeId))
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    return text || null;
  }
  return null;
}

/** How deep a group id is: the number of label keys it fixes. */
export const groupDepth = (id: string): number => (id.startsWith('g:') ? id.split(';').length : 0);

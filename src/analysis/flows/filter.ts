/**
 * Which edges a flow filter accepts. Each list is ORed inside and the lists ANDed together;
 * label filters match the labels the workloads carry now (so a relabelled workload is
 * found by its new labels), address filters match an address end inside the range or a
 * workload end with an address there.
 */
import { AddressSet, parseAddressEntry } from '../../policy/addresses.js';
import type { Workload } from '../../policy/model.js';
import type { EndFilter, Edge, FlowEnd, FlowFilter, PolicyView } from './model.js';
import { FlowQueryError } from './window.js';

export type EdgePredicate = (edge: Edge) => boolean;
type EndPredicate = (end: FlowEnd, group: string | null) => boolean;

function labelsMatch(
  wanted: Readonly<Record<string, readonly string[]>>,
  labels: Readonly<Record<string, string>>,
): boolean {
  for (const [key, values] of Object.entries(wanted)) {
    // `app=` (an empty value) asks for workloads without that label.
    const v = labels[key] ?? '';
    if (!values.includes(v)) return false;
  }
  return true;
}

function endPredicate(
  filter: EndFilter,
  field: string,
  workloads: ReadonlyMap<string, Workload>,
): EndPredicate {
  if ('labels' in filter) {
    const wanted = filter.labels;
    return (end) => {
      if (end.workload === undefined) return false;
      return labelsMatch(wanted, workloads.get(end.workload)?.labels ?? {});
    };
  }
  if ('workload' in filter) {
    const name = filter.workload;
    return (end) => end.workload === name;
  }
  if ('address' in filter) {
    let set: AddressSet;
    try {
      parseAddressEntry(filter.address);
      set = AddressSet.of([filter.address]);
    } catch (e) {
      throw new FlowQueryError(field, (e as Error).message);
    }
    return (end) => {
      if (end.address !== undefined) {
        try {
          return set.has(end.address);
        } catch {
          return false;
        }
      }
      const w = workloads.get(end.workload);
      return w !== undefined && w.addresses.some((a) => safeHas(set, a));
    };
  }
  const group = filter.group;
  return (end, endGroup) => end.address !== undefined && endGroup === group;
}

function safeHas(set: AddressSet, address: string): boolean {
  try {
    return set.has(address);
  } catch {
    return false;
  }
}

function anyOf(preds: readonly EndPredicate[]): EndPredicate {
  return (end, group) => preds.some((p) => p(end, group));
}

/** The verdict an edge shows under a policy view. */
export function verdictOf(edge: Edge, policy: PolicyView): Edge['active'] {
  return policy === 'draft' ? edge.draft : edge.active;
}

/**
 * Compiles a filter (its window aside) into a predicate over edges. Throws FlowQueryError
 * naming the field for a filter that cannot match as written (e.g. a bad CIDR).
 */
export function edgeFilter(
  filter: FlowFilter,
  workloads: ReadonlyMap<string, Workload>,
): EdgePredicate {
  const tests: EdgePredicate[] = [];
  const ends = (list: readonly EndFilter[], field: string) =>
    anyOf(list.map((f, i) => endPredicate(f, `${field}[${i}]`, workloads)));
  if (filter.source?.length) {
    const p = ends(filter.source, 'src');
    tests.push((e) => p(e.source, e.sourceGroup));
  }
  if (filter.destination?.length) {
    const p = ends(filter.destination, 'dst');
    tests.push((e) => p(e.destination, e.destinationGroup));
  }
  if (filter.either?.length) {
    const p = ends(filter.either, 'any');
    tests.push((e) => p(e.source, e.sourceGroup) || p(e.destination, e.destinationGroup));
  }
  if (filter.ports?.length) {
    const ports = filter.ports;
    tests.push((e) =>
      ports.some(
        (p) =>
          (p.proto === undefined || p.proto === e.proto) &&
          (p.port === undefined || p.port === e.port),
      ),
    );
  }
  if (filter.processes?.length) {
    const processes = new Set(filter.processes);
    tests.push((e) => e.process !== null && processes.has(e.process));
  }
  if (filter.decisions?.length) {
    const decisions = new Set(filter.decisions);
    const policy = filter.policy ?? 'active';
    tests.push((e) => decisions.has(verdictOf(e, policy).decision));
  }
  if (tests.length === 0) return () => true;
  return (e) => tests.every((t) => t(e));
}

/** Whether a filter narrows the edges at all (beyond the window and the policy view). */
export function narrows(filter: FlowFilter): boolean {
  return Boolean(
    filter.source?.length ||
    filter.destination?.length ||
    filter.either?.length ||
    filter.ports?.length ||
    filter.processes?.length ||
    filter.decisions?.length,
  );
}

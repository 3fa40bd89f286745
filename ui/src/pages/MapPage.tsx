/**
 * The application dependency map. Groups by the label keys the user picks (app+env by
 * default), drills into a group (its roles, then its workloads) as compound nodes, colours
 * edges by decision, and opens an edge's services, flows, deciding rules and traffic in a
 * side panel. Thousands of workloads stay readable because the server aggregates; the page
 * never draws more than MAX_NODES nodes, and says so when it holds some back.
 */
import { useMemo, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  ApiFailure,
  flowsApi,
  get,
  send,
  type Decision,
  type DemoResult,
  type LabelKey,
  type MapEdge,
  type MapNode,
  type MapResult,
} from '../api';
import { Graph, MODE_COLOR } from '../components/Graph';
import {
  ErrorBox,
  PageHeader,
  POLICIES,
  Segmented,
  Spinner,
  WINDOWS,
  type PolicyChoice,
  type WindowChoice,
} from '../components/ui';
import { EdgePanel, NodePanel } from '../components/MapPanels';
import { count, DECISION_COLOR, DECISION_LABEL } from '../format';
import { groupDepth } from '../nodes';

/** Most nodes drawn at once: past this a graph is a hairball, so the busiest are kept. */
export const MAX_NODES = 300;
const DECISIONS: readonly Decision[] = ['allowed', 'potentially-blocked', 'blocked'];

export interface MapView {
  readonly groupBy: readonly string[];
  readonly since: WindowChoice;
  readonly policy: PolicyChoice;
  readonly decisions: readonly Decision[];
}

/** Keeps the busiest nodes (and the compound boxes they sit in) when there are too many. */
function limitNodes(map: MapResult): { nodes: MapNode[]; edges: MapEdge[]; hidden: number } {
  if (map.nodes.length <= MAX_NODES)
    return { nodes: [...map.nodes], edges: [...map.edges], hidden: 0 };
  const traffic = new Map<string, number>();
  for (const e of map.edges) {
    traffic.set(e.source, (traffic.get(e.source) ?? 0) + e.connections);
    traffic.set(e.target, (traffic.get(e.target) ?? 0) + e.connections);
  }
  const byId = new Map(map.nodes.map((n) => [n.id, n]));
  const keep = new Set<string>();
  for (const n of [...map.nodes].sort(
    (a, b) => (traffic.get(b.id) ?? 0) - (traffic.get(a.id) ?? 0),
  )) {
    if (keep.size >= MAX_NODES) break;
    keep.add(n.id);
    for (let p = n.parent; p; p = byId.get(p)?.parent) keep.add(p);
  }
  const nodes = map.nodes.filter((n) => keep.has(n.id));
  const edges = map.edges.filter((e) => keep.has(e.source) && keep.has(e.target));
  return { nodes, edges, hidden: map.nodes.length - nodes.length };
}

export function MapPage() {
  const [view, setView] = useState<MapView>({
    groupBy: ['app', 'env'],
    since: '24h',
    policy: 'active',
    decisions: [],
  });
  const [expanded, setExpanded] = useState<readonly string[]>([]);
  const [selected, setSelected] = useState<{ kind: 'node' | 'edge'; id: string } | null>(null);
  const client = useQueryClient();

  const labels = useQuery({
    queryKey: ['labels'],
    queryFn: () => get<{ keys: LabelKey[] }>('/labels'),
  });

  // An opened group breaks down by role (its tiers), or into its workloads.
  const [expandBy, setExpandBy] = useState<'role' | 'workload'>('role');
  const query = {
    groupBy: view.groupBy.join(','),
    since: view.since,
    policy: view.policy,
    decision: view.decisions.length ? view.decisions.join(',') : undefined,
    expand: expanded,
    expandBy: expanded.length ? expandBy : undefined,
  };
  const map = useQuery({
    queryKey: ['map', query],
    queryFn: () => flowsApi.map(query),
    placeholderData: (previous) => previous,
  });

  const demo = useMutation({
    mutationFn: () => send<DemoResult>('POST', '/demo', {}),
    onSuccess: () => void client.invalidateQueries(),
  });

  const shown = useMemo(() => (map.data ? limitNodes(map.data) : null), [map.data]);
  const empty = map.data && map.data.nodes.length === 0;
  const noFilter = view.decisions.length === 0;

  const toggleExpand = (id: string) => {
    if (!id.startsWith('g:')) return;
    setSelected(null);
    // A tier inside an opened group opens further: the opened groups show their workloads.
    if (groupDepth(id) > view.groupBy.length) {
      setExpandBy('workload');
      return;
    }
    setExpanded((current) =>
      current.includes(id) ? current.filter((x) => x !== id) : [...current, id],
    );
  };

  const selectedEdge =
    selected?.kind === 'edge' ? map.data?.edges.find((e) => e.id === selected.id) : undefined;
  const selectedNode =
    selected?.kind === 'node' ? map.data?.nodes.find((n) => n.id === selected.id) : undefined;
  const nodeById = useMemo(
    () => new Map((map.data?.nodes ?? []).map((n) => [n.id, n])),
    [map.data],
  );

  const totals = useMemo(() => {
    const t = { allowed: 0, 'potentially-blocked': 0, blocked: 0 } as Record<Decision, number>;
    for (const e of map.data?.edges ?? []) for (const d of DECISIONS) t[d] += e.byDecision[d];
    return t;
  }, [map.data]);

  return (
    <div className="map-page">
      <PageHeader
        title="Application dependency map"
        subtitle={
          map.data
            ? `${map.data.nodes.length} nodes · ${map.data.edges.length} connections between them · ${map.data.window.resolution} resolution`
            : 'Who talks to whom, and what the policy says about it'
        }
      >
        {map.isFetching ? <Spinner /> : null}
        <Segmented
          testId="map-window"
          value={view.since}
          options={WINDOWS}
          onChange={(since) => setView({ ...view, since })}
        />
        <Segmented
          testId="map-policy"
          value={view.policy}
          options={POLICIES}
          onChange={(policy) => setView({ ...view, policy })}
        />
      </PageHeader>

      <div className="toolbar">
        <GroupByPicker
          keys={labels.data?.keys.map((k) => k.key) ?? ['app', 'env', 'role']}
          value={view.groupBy}
          onChange={(groupBy) => {
            setExpanded([]);
            setSelected(null);
            setView({ ...view, groupBy });
          }}
        />
        <div className="toolbar-group" data-testid="map-decisions">
          <span className="toolbar-label">Show</span>
          {DECISIONS.map((d) => {
            const on = view.decisions.length === 0 || view.decisions.includes(d);
            return (
              <button
                key={d}
                type="button"
                className={`toggle decision-toggle${on ? ' on' : ''}`}
                data-decision={d}
                onClick={() => {
                  const current = view.decisions.length ? view.decisions : DECISIONS;
                  const next = current.includes(d)
                    ? current.filter((x) => x !== d)
                    : [...current, d];
                  setView({
                    ...view,
                    decisions: next.length === DECISIONS.length || next.length === 0 ? [] : next,
                  });
                }}
              >
                <span className="dot" style={{ background: DECISION_COLOR[d] }} />
                {DECISION_LABEL[d]}
                <span className="toggle-count">{count(totals[d])}</span>
              </button>
            );
          })}
        </div>
        {expanded.length ? (
          <div className="toolbar-group">
            <span className="toolbar-label">Open groups by</span>
            <Segmented
              testId="map-expand-by"
              value={expandBy}
              options={[
                { value: 'role', label: 'Tier' },
                { value: 'workload', label: 'Workload' },
              ]}
              onChange={(v) => {
                setSelected(null);
                setExpandBy(v);
              }}
            />
            <button
              type="button"
              className="btn ghost"
              data-testid="map-collapse-all"
              onClick={() => {
                setExpanded([]);
                setExpandBy('role');
                setSelected(null);
              }}
            >
              Collapse all
            </button>
          </div>
        ) : null}
      </div>

      <ErrorBox error={map.error} />
      {shown && shown.hidden > 0 ? (
        <div className="notice" data-testid="map-limited">
          Showing the {shown.nodes.length} busiest of {map.data!.nodes.length} nodes. Group by fewer
          label keys or filter to see the rest.
        </div>
      ) : null}

      <div className="map-body">
        <div className="map-canvas">
          {empty && noFilter && !demo.isPending ? (
            <EmptyEstate onDemo={() => demo.mutate()} error={demo.error} busy={demo.isPending} />
          ) : null}
          {empty && !noFilter ? (
            <div className="map-empty">
              <p>No connections match this filter in the last {view.since}.</p>
            </div>
          ) : null}
          {demo.isPending ? (
            <div className="map-empty">
              <Spinner label="Loading the demo estate: workloads, policy and weeks of flows…" />
            </div>
          ) : null}
          {shown ? (
            <Graph
              nodes={shown.nodes}
              edges={shown.edges}
              selected={
                selected ? (selected.kind === 'edge' ? `edge:${selected.id}` : selected.id) : null
              }
              onSelect={(id, kind) => setSelected(id && kind ? { id, kind } : null)}
              onExpand={toggleExpand}
            />
          ) : map.isLoading ? (
            <div className="map-empty">
              <Spinner label="Loading the map…" />
            </div>
          ) : null}
          <Legend />
          <EdgeList
            edges={shown?.edges ?? []}
            nodes={nodeById}
            onSelect={(id) => setSelected({ kind: 'edge', id })}
          />
        </div>
        {selectedEdge && map.data ? (
          <EdgePanel
            edge={selectedEdge}
            source={nodeById.get(selectedEdge.source)}
            target={nodeById.get(selectedEdge.target)}
            view={view}
            onClose={() => setSelected(null)}
          />
        ) : null}
        {selectedNode ? (
          <NodePanel
            node={selectedNode}
            expanded={expanded.includes(selectedNode.id)}
            canExpand={
              selectedNode.kind === 'group' &&
              !(groupDepth(selectedNode.id) > view.groupBy.length && expandBy === 'workload')
            }
            onExpand={() => toggleExpand(selectedNode.id)}
            view={view}
            onClose={() => setSelected(null)}
          />
        ) : null}
      </div>
    </div>
  );
}

function GroupByPicker({
  keys,
  value,
  onChange,
}: {
  keys: readonly string[];
  value: readonly string[];
  onChange: (v: readonly string[]) => void;
}) {
  const all = [...new Set([...keys, ...value.filter((k) => k !== 'workload')])];
  const perWorkload = value.length === 1 && value[0] === 'workload';
  return (
    <div className="toolbar-group" data-testid="map-groupby">
      <span className="toolbar-label">Group by</span>
      {all.map((k) => {
        const on = value.includes(k);
        return (
          <button
            key={k}
            type="button"
            className={`toggle${on ? ' on' : ''}`}
            data-key={k}
            onClick={() => {
              const base = perWorkload ? [] : value;
              const next = on ? base.filter((x) => x !== k) : [...base, k];
              onChange(next.length ? next : ['workload']);
            }}
          >
            {k}
          </button>
        );
      })}
      <button
        type="button"
        className={`toggle${perWorkload ? ' on' : ''}`}
        data-key="workload"
        onClick={() => onChange(perWorkload ? ['app', 'env'] : ['workload'])}
      >
        each workload
      </button>
    </div>
  );
}

function EmptyEstate({
  onDemo,
  error,
  busy,
}: {
  onDemo: () => void;
  error: unknown;
  busy: boolean;
}) {
  const conflict = error instanceof ApiFailure && error.status === 409;
  return (
    <div className="map-empty hero" data-testid="map-empty">
      <div className="hero-card">
        <h2>No flows yet</h2>
        <p>
          Install agents on your hosts and their connections appear here within a minute. Or see
          Bulkhead on a realistic simulated estate first: several applications across environments,
          unmanaged networks, and weeks of traffic with daily patterns.
        </p>
        <button
          type="button"
          className="btn primary large"
          onClick={onDemo}
          disabled={busy}
          data-testid="load-demo"
        >
          Load demo estate
        </button>
        {conflict ? (
          <p className="muted">
            This control plane already has workloads; the demo estate loads only into an empty one.
          </p>
        ) : (
          <ErrorBox error={error} />
        )}
      </div>
    </div>
  );
}

function Legend() {
  return (
    <>
      <div className="legend" data-testid="map-legend">
        {(['allowed', 'potentially-blocked', 'blocked'] as const).map((d) => (
          <span key={d}>
            <span className="legend-line" style={{ background: DECISION_COLOR[d] }} />
            {DECISION_LABEL[d]}
          </span>
        ))}
        <span className="legend-sep" />
        {(['full', 'selective', 'visibility', 'idle', 'mixed'] as const).map((m) => (
          <span key={m}>
            <span className="legend-ring" style={{ borderColor: MODE_COLOR[m] }} />
            {m}
          </span>
        ))}
        <span>
          <span className="legend-shape addresses" />
          network
        </span>
      </div>
      <div className="map-hint">Double-click a group to see its tiers · scroll to zoom</div>
    </>
  );
}

/** The edges as text: for keyboards, screen readers and tests (the graph is a canvas). */
function EdgeList({
  edges,
  nodes,
  onSelect,
}: {
  edges: readonly MapEdge[];
  nodes: ReadonlyMap<string, MapNode>;
  onSelect: (id: string) => void;
}) {
  return (
    <ul className="sr-only" data-testid="map-edge-list">
      {[...nodes.values()].map((n) => (
        <li key={n.id} data-testid="map-node" data-id={n.id} data-kind={n.kind}>
          {n.label}
        </li>
      ))}
      {edges.map((e) => (
        <li key={e.id} data-testid="map-edge" data-source={e.source} data-target={e.target}>
          <button type="button" onClick={() => onSelect(e.id)}>
            {nodes.get(e.source)?.label ?? e.source} to {nodes.get(e.target)?.label ?? e.target}:{' '}
            {e.connections} connections, {e.decision}
          </button>
        </li>
      ))}
    </ul>
  );
}

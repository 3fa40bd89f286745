/**
 * The map's side panels. An edge: its services and processes, the decision, the rules that
 * decide its flows (from the explorer's rows between the two nodes), and its traffic over
 * time. A node: its labels, size and mode, and the drill-down.
 */
import { useQuery } from '@tanstack/react-query';
import { flowsApi, type MapEdge, type MapNode } from '../api';
import { bytes, count, endName, service, time } from '../format';
import { endFilterOf } from '../nodes';
import { navigate } from '../router';
import { TrafficChart } from './TrafficChart';
import { DecisionBadge, ErrorBox, LabelChips, ModePill, Spinner } from './ui';
import type { MapView } from '../pages/MapPage';

function filterQuery(view: MapView, src: string | null, dst: string | null) {
  return {
    since: view.since,
    policy: view.policy,
    decision: view.decisions.length ? view.decisions.join(',') : undefined,
    src: src ?? undefined,
    dst: dst ?? undefined,
  };
}

/** Opens the explorer with the same filter. */
function explore(query: Record<string, string | undefined>) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) params.set(k, v);
  navigate('flows', `?${params.toString()}`);
}

export function EdgePanel({
  edge,
  source,
  target,
  view,
  onClose,
}: {
  edge: MapEdge;
  source: MapNode | undefined;
  target: MapNode | undefined;
  view: MapView;
  onClose: () => void;
}) {
  const query = filterQuery(view, endFilterOf(edge.source), endFilterOf(edge.target));
  const flows = useQuery({
    queryKey: ['edge-flows', query],
    queryFn: () => flowsApi.page({ ...query, sort: '-connections', limit: 50 }),
  });
  const series = useQuery({
    queryKey: ['edge-series', query],
    queryFn: () => flowsApi.timeseries(query),
  });
  return (
    <aside className="panel" data-testid="edge-panel">
      <header className="panel-head">
        <div>
          <div className="panel-kicker">Connection</div>
          <h2 className="panel-title">
            <span>{source?.label ?? edge.source}</span>
            <span className="arrow">→</span>
            <span>{target?.label ?? edge.target}</span>
          </h2>
        </div>
        <button className="icon-btn" onClick={onClose} aria-label="Close" data-testid="panel-close">
          ×
        </button>
      </header>
      <div className="panel-body">
        <div className="stat-row">
          <DecisionBadge decision={edge.decision} />
          <span className="muted">
            under the {view.policy === 'draft' ? 'draft' : 'active policy'}
          </span>
        </div>
        <dl className="stats">
          <div>
            <dt>Connections</dt>
            <dd>{count(edge.connections)}</dd>
          </div>
          <div>
            <dt>Bytes</dt>
            <dd>{bytes(edge.bytes)}</dd>
          </div>
          <div>
            <dt>First seen</dt>
            <dd>{time(edge.firstSeen)}</dd>
          </div>
          <div>
            <dt>Last seen</dt>
            <dd>{time(edge.lastSeen)}</dd>
          </div>
        </dl>

        <h3>Traffic</h3>
        {series.data ? <TrafficChart series={series.data} /> : <Spinner />}
        <ErrorBox error={series.error} />

        <h3>Services</h3>
        <table className="mini" data-testid="edge-services">
          <thead>
            <tr>
              <th>Service</th>
              <th>Process</th>
              <th className="num">Conns</th>
              <th>Decision</th>
            </tr>
          </thead>
          <tbody>
            {edge.services.map((s, i) => (
              <tr key={i}>
                <td className="mono">{service(s.proto, s.port)}</td>
                <td className="mono">{s.process ?? '—'}</td>
                <td className="num">{count(s.connections)}</td>
                <td>
                  <DecisionBadge decision={s.decision} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>

        <h3>
          Flows {flows.data ? <span className="muted">({count(flows.data.total)})</span> : null}
        </h3>
        <ErrorBox error={flows.error} />
        {flows.isLoading ? <Spinner /> : null}
        <ul className="flow-list" data-testid="edge-flows">
          {flows.data?.items.map((f) => (
            <li key={f.id} data-testid="edge-flow">
              <div className="flow-line">
                <span className="mono">{endName(f.source)}</span>
                <span className="arrow">→</span>
                <span className="mono">{endName(f.destination)}</span>
                <span className="mono muted">{service(f.proto, f.port)}</span>
                {f.process ? <span className="mono muted">{f.process}</span> : null}
              </div>
              <div className="flow-line">
                <DecisionBadge decision={view.policy === 'draft' ? f.draftDecision : f.decision} />
                <span className="rule" data-testid="edge-flow-rule">
                  {view.policy === 'draft' ? f.draftDecidedBy : f.decidedBy}
                </span>
                <span className="muted right">{count(f.connections)} conns</span>
              </div>
            </li>
          ))}
        </ul>
        <button
          className="btn wide"
          data-testid="edge-explore"
          onClick={() => explore({ ...query, decision: query.decision })}
        >
          Open in flow explorer
        </button>
      </div>
    </aside>
  );
}

export function NodePanel({
  node,
  expanded,
  canExpand,
  onExpand,
  view,
  onClose,
}: {
  node: MapNode;
  expanded: boolean;
  canExpand: boolean;
  onExpand: () => void;
  view: MapView;
  onClose: () => void;
}) {
  const filter = endFilterOf(node.id);
  const query = { ...filterQuery(view, null, null), any: filter ?? undefined };
  const series = useQuery({
    queryKey: ['node-series', query],
    queryFn: () => flowsApi.timeseries(query),
  });
  const kind =
    node.kind === 'addresses' ? 'Network' : node.kind === 'workload' ? 'Workload' : 'Group';
  return (
    <aside className="panel" data-testid="node-panel">
      <header className="panel-head">
        <div>
          <div className="panel-kicker">{kind}</div>
          <h2 className="panel-title">{node.label}</h2>
        </div>
        <button className="icon-btn" onClick={onClose} aria-label="Close">
          ×
        </button>
      </header>
      <div className="panel-body">
        <dl className="stats">
          <div>
            <dt>Workloads</dt>
            <dd>{node.workloads}</dd>
          </div>
          <div>
            <dt>Mode</dt>
            <dd>{node.mode ? <ModePill mode={node.mode} /> : '—'}</dd>
          </div>
        </dl>
        <h3>Labels</h3>
        <LabelChips labels={node.labels} />
        <h3>Traffic in and out</h3>
        {series.data ? <TrafficChart series={series.data} /> : <Spinner />}
        <ErrorBox error={series.error} />
        <div className="panel-actions">
          {canExpand ? (
            <button className="btn primary" onClick={onExpand} data-testid="node-expand">
              {expanded ? 'Collapse' : 'Open group'}
            </button>
          ) : null}
          {filter ? (
            <button className="btn" onClick={() => explore({ since: view.since, any: filter })}>
              Show flows
            </button>
          ) : null}
        </div>
      </div>
    </aside>
  );
}

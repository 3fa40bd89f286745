/**
 * The estate: every workload with its labels, enforcement mode and agent status. Labels are
 * edited in place (`app=shop, env=prod`) and the mode switched from the row; both are PATCHes
 * that the server validates against the policy, so a refused change shows why. A filter
 * written as a label selector selects as policy does, and opens the Rollout page for it.
 */
import { useMemo, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ENFORCEMENT_MODES, get, send, type Agent, type Workload } from '../api';
import { parseSelector, selects } from '../components/policyText';
import { ErrorBox, LabelChips, ModePill, PageHeader, Spinner } from '../components/ui';
import { ago, plural } from '../format';
import { navigate } from '../router';

const PAGE = 1000;

export async function allWorkloads(): Promise<Workload[]> {
  const out: Workload[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await get<{ items: Workload[]; total: number }>('/workloads', {
      limit: PAGE,
      offset,
    });
    out.push(...page.items);
    if (out.length >= page.total || page.items.length === 0) return out;
  }
}

/**
 * The filter as a label selector (`app=shop,env=prod`), when it reads as one. Then the table
 * shows exactly the workloads a rollout of that selector would move; anything else (a name, a
 * half-typed `app=`) filters by text as before.
 */
function filterSelector(text: string): Record<string, string[]> | null {
  if (!text.includes('=')) return null;
  const parsed = parseSelector(text);
  return typeof parsed === 'string' || Object.keys(parsed).length === 0 ? null : parsed;
}

const selectorText = (selector: Readonly<Record<string, readonly string[]>>): string =>
  Object.entries(selector)
    .flatMap(([k, vs]) => vs.map((v) => `${k}=${v}`))
    .join(',');

/** `app=shop, env=prod` → { app: 'shop', env: 'prod' }, or the reason it is not. */
export function parseLabels(text: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const part of text.split(/[,\n]/).map((p) => p.trim())) {
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq <= 0) return `"${part}" is not key=value`;
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

export function WorkloadsPage() {
  const [filter, setFilter] = useState('');
  const workloads = useQuery({ queryKey: ['workloads'], queryFn: allWorkloads });
  const agents = useQuery({
    queryKey: ['agents'],
    queryFn: () => get<{ items: Agent[] }>('/agents'),
  });
  const agentOf = useMemo(() => {
    const m = new Map<string, Agent>();
    for (const a of agents.data?.items ?? []) if (!a.revokedAt) m.set(a.workload, a);
    return m;
  }, [agents.data]);

  const selector = useMemo(() => filterSelector(filter), [filter]);
  const rows = useMemo(() => {
    const needle = filter.trim().toLowerCase();
    const all = workloads.data ?? [];
    if (selector) return all.filter((w) => selects(selector, w.labels));
    if (!needle) return all;
    return all.filter(
      (w) =>
        w.name.toLowerCase().includes(needle) ||
        Object.entries(w.labels).some(([k, v]) => `${k}=${v}`.toLowerCase().includes(needle)) ||
        w.addresses.some((a) => a.includes(needle)),
    );
  }, [workloads.data, filter, selector]);

  const modes = useMemo(() => {
    const m: Record<string, number> = {};
    for (const w of workloads.data ?? []) m[w.mode] = (m[w.mode] ?? 0) + 1;
    return m;
  }, [workloads.data]);

  return (
    <div className="page">
      <PageHeader
        title="Workloads"
        subtitle={
          workloads.data
            ? `${workloads.data.length} workloads · ${agentOf.size} with an agent`
            : 'Hosts, VMs and containers in the estate'
        }
      >
        <input
          className="search"
          placeholder="Filter by name, label or address, or app=shop,env=prod"
          value={filter}
          onChange={(e) => setFilter(e.target.value)}
          data-testid="workloads-filter"
        />
        <button
          className="btn"
          disabled={!selector}
          title={
            selector
              ? `Move the workloads ${selectorText(selector)} selects towards full enforcement`
              : 'Filter by a label selector (app=shop,env=prod) to roll out the workloads it selects'
          }
          onClick={() => {
            if (selector)
              navigate('rollout', `?selector=${encodeURIComponent(selectorText(selector))}`);
          }}
          data-testid="workloads-rollout"
        >
          {selector ? `Roll out ${plural(rows.length, 'workload')}` : 'Roll out…'}
        </button>
      </PageHeader>
      <div className="summary-cards">
        {ENFORCEMENT_MODES.map((m) => (
          <div className="card" key={m}>
            <ModePill mode={m} />
            <div className="card-value">{modes[m] ?? 0}</div>
          </div>
        ))}
      </div>
      <ErrorBox error={workloads.error ?? agents.error} />
      {workloads.isLoading ? <Spinner label="Loading workloads…" /> : null}
      <div className="table-wrap">
        <table className="table" data-testid="workloads-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Labels</th>
              <th>Addresses</th>
              <th>Mode</th>
              <th>Agent</th>
            </tr>
          </thead>
          <tbody>
            {rows.slice(0, 2000).map((w) => (
              <WorkloadRow key={w.name} workload={w} agent={agentOf.get(w.name)} />
            ))}
          </tbody>
        </table>
        {workloads.data && rows.length === 0 ? (
          <div className="table-empty">No workloads match.</div>
        ) : null}
      </div>
    </div>
  );
}

function WorkloadRow({ workload, agent }: { workload: Workload; agent: Agent | undefined }) {
  const client = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const patch = useMutation({
    mutationFn: (body: { labels?: Record<string, string>; mode?: string }) =>
      send<Workload>('PATCH', `/workloads/${encodeURIComponent(workload.name)}`, body),
    onSuccess: () => {
      setEditing(false);
      // The map, labels and flows all read the labels: refresh everything.
      void client.invalidateQueries();
    },
  });
  const save = () => {
    const labels = parseLabels(text);
    if (typeof labels === 'string') return setProblem(labels);
    setProblem(null);
    patch.mutate({ labels });
  };
  return (
    <tr data-testid="workload-row" data-name={workload.name}>
      <td className="mono strong">{workload.name}</td>
      <td className="labels-cell">
        {editing ? (
          <form
            className="inline-edit"
            onSubmit={(e) => {
              e.preventDefault();
              save();
            }}
          >
            <input
              autoFocus
              value={text}
              onChange={(e) => setText(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === 'Escape') setEditing(false);
              }}
              data-testid="labels-input"
            />
            <button className="btn small primary" type="submit" data-testid="labels-save">
              Save
            </button>
            <button className="btn small ghost" type="button" onClick={() => setEditing(false)}>
              Cancel
            </button>
            {problem ? <div className="field-error">{problem}</div> : null}
            <ErrorBox error={patch.error} />
          </form>
        ) : (
          <button
            className="editable"
            title="Edit labels"
            data-testid="labels-edit"
            onClick={() => {
              setText(
                Object.entries(workload.labels)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(', '),
              );
              setProblem(null);
              patch.reset();
              setEditing(true);
            }}
          >
            <LabelChips labels={workload.labels} />
            <span className="edit-hint">Edit</span>
          </button>
        )}
      </td>
      <td className="mono muted">{workload.addresses.join(', ') || '—'}</td>
      <td>
        <select
          className={`mode-select pill-${workload.mode}`}
          value={workload.mode}
          onChange={(e) => patch.mutate({ mode: e.target.value })}
          data-testid="mode-select"
          aria-label={`Enforcement mode of ${workload.name}`}
        >
          {ENFORCEMENT_MODES.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </select>
        {!editing && patch.error ? <ErrorBox error={patch.error} /> : null}
      </td>
      <td>
        {agent ? (
          <span className={`status status-${agent.status}`} title={agent.id}>
            <span className="dot" />
            {agent.status}
            <span className="muted"> · {ago(agent.lastHeartbeatAt)}</span>
            {!agent.upToDate ? <span className="muted"> · policy pending</span> : null}
          </span>
        ) : workload.managed ? (
          <span className="status status-missing">
            <span className="dot" />
            not paired
          </span>
        ) : (
          <span className="muted">unmanaged</span>
        )}
      </td>
    </tr>
  );
}

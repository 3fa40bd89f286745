/**
 * The flow explorer: every flow in a window, filtered by its ends (labels, workloads,
 * addresses, networks), ports, processes and decision; sorted by any column and paged by
 * cursor, without a row cap; exported as CSV or JSON with the same filter.
 */
import { useState, type FormEvent } from 'react';
import { useMutation, useQuery } from '@tanstack/react-query';
import { download, flowsApi, type Decision, type EndView, type FlowRow } from '../api';
import {
  DecisionBadge,
  ErrorBox,
  LabelChips,
  PageHeader,
  POLICIES,
  Segmented,
  Spinner,
  WINDOWS,
  type PolicyChoice,
  type WindowChoice,
} from '../components/ui';
import { bytes, count, DECISION_LABEL, service, time } from '../format';
import { searchParams } from '../router';

interface Filters {
  readonly src: string;
  readonly dst: string;
  readonly any: string;
  readonly port: string;
  readonly process: string;
  readonly decision: readonly Decision[];
  readonly since: WindowChoice;
  readonly policy: PolicyChoice;
}

const ALL_DECISIONS: readonly Decision[] = ['allowed', 'potentially-blocked', 'blocked'];

const SORTABLE = {
  source: 'Source',
  destination: 'Destination',
  port: 'Service',
  connections: 'Connections',
  bytes: 'Bytes',
  lastSeen: 'Last seen',
} as const;
type SortKey = keyof typeof SORTABLE | 'firstSeen';

const split = (text: string): string[] =>
  text
    .split(/\s+|;/)
    .map((s) => s.trim())
    .filter(Boolean);

function fromLocation(): Filters {
  const p = searchParams();
  const since = p.get('since');
  return {
    src: p.getAll('src').join(' '),
    dst: p.getAll('dst').join(' '),
    any: p.getAll('any').join(' '),
    port: p.getAll('port').join(' '),
    process: p.getAll('process').join(' '),
    decision: (p.get('decision')?.split(',').filter(Boolean) ?? []) as Decision[],
    since: WINDOWS.some((w) => w.value === since) ? (since as WindowChoice) : '24h',
    policy: p.get('policy') === 'draft' ? 'draft' : 'active',
  };
}

/** The API's filter parameters; several values in one box are ORed. */
function apiQuery(f: Filters) {
  return {
    src: split(f.src),
    dst: split(f.dst),
    any: split(f.any),
    port: split(f.port),
    process: split(f.process),
    decision: f.decision.length ? f.decision.join(',') : undefined,
    since: f.since,
    policy: f.policy,
  };
}

export function FlowsPage() {
  const [draft, setDraft] = useState<Filters>(fromLocation);
  const [applied, setApplied] = useState<Filters>(draft);
  const [sort, setSort] = useState<{ key: SortKey; descending: boolean }>({
    key: 'connections',
    descending: true,
  });
  const [cursors, setCursors] = useState<readonly (string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1] ?? null;
  const sortText = `${sort.descending ? '-' : ''}${sort.key}`;
  const query = { ...apiQuery(applied), sort: sortText, limit: 100, cursor };
  const page = useQuery({
    queryKey: ['flows', query],
    queryFn: () => flowsApi.page(query),
    placeholderData: (previous) => previous,
  });
  const exporter = useMutation({
    mutationFn: (format: 'csv' | 'json') =>
      download(
        '/flows/export',
        { ...apiQuery(applied), sort: sortText, format },
        `bulkhead-flows-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.${format}`,
      ),
  });

  const apply = (e?: FormEvent) => {
    e?.preventDefault();
    setApplied(draft);
    setCursors([null]);
  };
  const sortBy = (key: SortKey) => {
    setSort((s) => ({
      key,
      descending:
        s.key === key ? !s.descending : key !== 'source' && key !== 'destination' && key !== 'port',
    }));
    setCursors([null]);
  };
  const set = (patch: Partial<Filters>) => setDraft((d) => ({ ...d, ...patch }));

  return (
    <div className="page">
      <PageHeader
        title="Flow explorer"
        subtitle={
          page.data
            ? `${count(page.data.total)} flows · ${time(page.data.window.from)} to ${time(page.data.window.to)} · ${page.data.window.resolution} resolution`
            : 'Every conversation the agents saw, and what the policy says about it'
        }
      >
        {page.isFetching ? <Spinner /> : null}
        <button
          className="btn"
          onClick={() => exporter.mutate('csv')}
          disabled={exporter.isPending}
          data-testid="export-csv"
        >
          Export CSV
        </button>
        <button
          className="btn"
          onClick={() => exporter.mutate('json')}
          disabled={exporter.isPending}
          data-testid="export-json"
        >
          Export JSON
        </button>
      </PageHeader>

      <form className="filters" onSubmit={apply} data-testid="flow-filters">
        <FilterField
          label="Source"
          hint="app=shop,env=prod · workload:NAME · ip:10.0.0.0/8 · group:internet"
          value={draft.src}
          onChange={(src) => set({ src })}
          testId="filter-src"
        />
        <FilterField
          label="Destination"
          hint="same forms as the source"
          value={draft.dst}
          onChange={(dst) => set({ dst })}
          testId="filter-dst"
        />
        <FilterField
          label="Either end"
          hint="matches source or destination"
          value={draft.any}
          onChange={(any) => set({ any })}
          testId="filter-any"
        />
        <FilterField
          label="Port"
          hint="443/tcp · 53/udp · icmp"
          value={draft.port}
          onChange={(port) => set({ port })}
          testId="filter-port"
          narrow
        />
        <FilterField
          label="Process"
          hint="nginx · mysqld"
          value={draft.process}
          onChange={(process) => set({ process })}
          testId="filter-process"
          narrow
        />
        <div className="filter-row">
          <Segmented
            value={draft.since}
            options={WINDOWS}
            onChange={(since) => setDraft((d) => ({ ...d, since }))}
            testId="filter-window"
          />
          <Segmented
            value={draft.policy}
            options={POLICIES}
            onChange={(policy) => setDraft((d) => ({ ...d, policy }))}
            testId="filter-policy"
          />
          <div className="toolbar-group" data-testid="filter-decision">
            {ALL_DECISIONS.map((d) => {
              // None picked means every decision: all shown as on.
              const on = draft.decision.length === 0 || draft.decision.includes(d);
              return (
                <button
                  key={d}
                  type="button"
                  className={`toggle decision-toggle${on ? ' on' : ''}`}
                  data-decision={d}
                  aria-pressed={on}
                  onClick={() => {
                    const current = draft.decision.length ? draft.decision : ALL_DECISIONS;
                    const next = on ? current.filter((x) => x !== d) : [...current, d];
                    set({
                      decision:
                        next.length === 0 || next.length === ALL_DECISIONS.length ? [] : next,
                    });
                  }}
                >
                  <span className={`dot dot-${d}`} />
                  {DECISION_LABEL[d]}
                </button>
              );
            })}
          </div>
          <span className="spacer" />
          <button
            type="button"
            className="btn ghost"
            onClick={() => {
              const cleared: Filters = {
                src: '',
                dst: '',
                any: '',
                port: '',
                process: '',
                decision: [],
                since: '24h',
                policy: 'active',
              };
              setDraft(cleared);
              setApplied(cleared);
              setCursors([null]);
            }}
          >
            Clear
          </button>
          <button type="submit" className="btn primary" data-testid="filter-apply">
            Apply filters
          </button>
        </div>
      </form>

      <ErrorBox error={page.error ?? exporter.error} />

      <div className="table-wrap">
        <table className="table" data-testid="flows-table">
          <thead>
            <tr>
              {(Object.keys(SORTABLE) as (keyof typeof SORTABLE)[]).map((k) => (
                <th
                  key={k}
                  className={`sortable${k === 'connections' || k === 'bytes' ? ' num' : ''}`}
                  onClick={() => sortBy(k)}
                  data-testid={`sort-${k}`}
                  aria-sort={
                    sort.key === k ? (sort.descending ? 'descending' : 'ascending') : undefined
                  }
                >
                  {SORTABLE[k]}
                  {sort.key === k ? (
                    <span className="sort">{sort.descending ? '▼' : '▲'}</span>
                  ) : null}
                </th>
              ))}
              <th>Decision</th>
              <th>Decided by</th>
            </tr>
          </thead>
          <tbody>
            {page.data?.items.map((f) => (
              <Row key={f.id} flow={f} draft={applied.policy === 'draft'} />
            ))}
          </tbody>
        </table>
        {page.data && page.data.items.length === 0 ? (
          <div className="table-empty">No flows match these filters in this window.</div>
        ) : null}
      </div>

      <div className="pager">
        <span className="muted">
          {page.data
            ? `Page ${cursors.length} · rows ${count((cursors.length - 1) * 100 + 1)}–${count((cursors.length - 1) * 100 + page.data.items.length)} of ${count(page.data.total)}`
            : ''}
        </span>
        <button
          className="btn"
          disabled={cursors.length <= 1}
          onClick={() => setCursors((c) => c.slice(0, -1))}
          data-testid="page-prev"
        >
          ← Previous
        </button>
        <button
          className="btn"
          disabled={!page.data?.nextCursor}
          onClick={() => page.data?.nextCursor && setCursors((c) => [...c, page.data.nextCursor])}
          data-testid="page-next"
        >
          Next →
        </button>
      </div>
    </div>
  );
}

function FilterField({
  label,
  hint,
  value,
  onChange,
  testId,
  narrow,
}: {
  label: string;
  hint: string;
  value: string;
  onChange: (v: string) => void;
  testId: string;
  narrow?: boolean;
}) {
  return (
    <label className={`field${narrow ? ' narrow' : ''}`}>
      <span>{label}</span>
      <input
        value={value}
        placeholder={hint}
        onChange={(e) => onChange(e.target.value)}
        data-testid={testId}
        spellCheck={false}
      />
    </label>
  );
}

function End({ end }: { end: EndView }) {
  if (end.workload !== undefined)
    return (
      <div className="end">
        <span className="mono strong">{end.workload}</span>
        <LabelChips labels={end.labels} />
      </div>
    );
  return (
    <div className="end">
      <span className="mono strong">{end.address}</span>
      {end.group ? <span className="chip net">{end.group}</span> : null}
    </div>
  );
}

function Row({ flow, draft }: { flow: FlowRow; draft: boolean }) {
  return (
    <tr data-testid="flow-row">
      <td>
        <End end={flow.source} />
      </td>
      <td>
        <End end={flow.destination} />
      </td>
      <td className="mono">
        {service(flow.proto, flow.port)}
        {flow.process ? <div className="muted">{flow.process}</div> : null}
      </td>
      <td className="num">
        {count(flow.connections)}
        {flow.blocked > 0 ? (
          <div className="blocked-attempts" data-testid="flow-blocked">
            {count(flow.blocked)} blocked
          </div>
        ) : null}
      </td>
      <td className="num">{bytes(flow.bytes)}</td>
      <td className="muted nowrap">{time(flow.lastSeen)}</td>
      <td>
        <DecisionBadge decision={draft ? flow.draftDecision : flow.decision} />
      </td>
      <td className="rule">{draft ? flow.draftDecidedBy : flow.decidedBy}</td>
    </tr>
  );
}

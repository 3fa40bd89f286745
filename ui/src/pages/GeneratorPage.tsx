/**
 * The policy generator: pick a scope, a granularity and a window of observed traffic; the
 * preview (a dry run) shows what share of that traffic the proposed rules allow, each rule
 * with the flows behind it, what stays not allowed and why, and the YAML. Writing puts the
 * rules in the draft, for review and provisioning.
 */
import { useMemo, useState } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { GRANULARITIES, send, type GenerateResult, type Granularity } from '../api';
import { DecisionBadge, ErrorBox, PageHeader, Segmented, Spinner } from '../components/ui';
import { LabelHints, SelectorInput } from '../components/SelectorInput';
import { rulesOf, type RuleView } from '../components/policyText';
import { ago, count, plural, time } from '../format';
import { navigate, searchParams } from '../router';

const EXPLAIN: Readonly<Record<Granularity, string>> = {
  env: 'Workloads of one environment talk freely; crossing environments takes an explicit rule.',
  app: 'Each application is ring-fenced: anything inside it, explicit rules by service across it.',
  tier: 'Role to role inside an application (web → api), on any service.',
  service: 'Role to role on the services observed (ports merged into lists and ranges).',
  process: 'As service, and each port bound to the process seen serving it.',
};

const GENERATOR_WINDOWS = [
  { value: '7d', label: '7 days' },
  { value: '30d', label: '30 days' },
  { value: '90d', label: '90 days' },
] as const;
type GeneratorWindow = (typeof GENERATOR_WINDOWS)[number]['value'];

interface Request {
  readonly scope: string;
  readonly granularity: Granularity;
  readonly since: GeneratorWindow;
}

const body = (r: Request, dryRun: boolean) => ({
  ...(r.scope.trim() ? { scope: r.scope.trim() } : {}),
  granularity: r.granularity,
  since: r.since,
  dryRun,
});

const percent = (share: number): string => {
  const p = share * 100;
  return `${p === 100 || p === 0 ? p.toFixed(0) : p >= 99.9 ? '99.9' : p.toFixed(1)}%`;
};

export function GeneratorPage() {
  const client = useQueryClient();
  const [form, setForm] = useState<Request>(() => {
    const p = searchParams();
    const g = p.get('granularity');
    return {
      scope: p.get('scope') ?? '',
      granularity: (GRANULARITIES as readonly string[]).includes(g ?? '')
        ? (g as Granularity)
        : 'service',
      since: '30d',
    };
  });
  // The request the preview answers (writing sends exactly that one).
  const [previewed, setPreviewed] = useState<Request | null>(null);
  const preview = useMutation({
    mutationFn: (r: Request) => send<GenerateResult>('POST', '/policy/generate', body(r, true)),
    onSuccess: (_data, r) => setPreviewed(r),
  });
  const write = useMutation({
    mutationFn: (r: Request) => send<GenerateResult>('POST', '/policy/generate', body(r, false)),
    onSuccess: () => void client.invalidateQueries(),
  });
  const set = (patch: Partial<Request>) => {
    setForm((f) => ({ ...f, ...patch }));
    write.reset();
  };
  const result = preview.data;
  const stale =
    previewed !== null &&
    (previewed.scope !== form.scope ||
      previewed.granularity !== form.granularity ||
      previewed.since !== form.since);

  return (
    <div className="page">
      <PageHeader
        title="Policy generator"
        subtitle="Allow-list rules written in labels from the traffic the agents observed; choose the granularity"
      >
        {preview.isPending ? <Spinner /> : null}
      </PageHeader>

      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          write.reset();
          preview.mutate(form);
        }}
        data-testid="generator-form"
      >
        <SelectorInput
          label="Scope"
          value={form.scope}
          onChange={(scope) => set({ scope })}
          placeholder="app=payments,env=prod · empty for the whole estate"
          testId="generator-scope"
        />
        <div className="field narrow-auto">
          <span>Window of observed flows</span>
          <Segmented
            value={form.since}
            options={GENERATOR_WINDOWS}
            onChange={(since) => set({ since })}
            testId="generator-window"
          />
        </div>
        <LabelHints value={form.scope} onChange={(scope) => set({ scope })} />
        <div className="granularity" data-testid="generator-granularity">
          <span className="toolbar-label">Granularity</span>
          <Segmented
            value={form.granularity}
            options={GRANULARITIES.map((g) => ({ value: g, label: g }))}
            onChange={(granularity) => set({ granularity })}
            testId="granularity"
          />
          <ul className="granularity-help">
            {GRANULARITIES.map((g) => (
              <li key={g} className={g === form.granularity ? 'active' : ''}>
                <span className="mono">{g}</span>
                <span>{EXPLAIN[g]}</span>
              </li>
            ))}
          </ul>
        </div>
        <div className="filter-row">
          <span className="muted small">
            Existing rules are kept: the generator only adds what is missing.
          </span>
          <span className="spacer" />
          <button
            type="submit"
            className="btn primary"
            disabled={preview.isPending}
            data-testid="generator-preview"
          >
            {preview.isPending ? <Spinner /> : null} Preview
          </button>
        </div>
      </form>

      <ErrorBox error={preview.error} />
      {result ? (
        <Result
          result={result}
          stale={stale}
          writing={write.isPending}
          written={write.data ?? null}
          writeError={write.error}
          onWrite={() => previewed && write.mutate(previewed)}
        />
      ) : null}
    </div>
  );
}

function Result({
  result,
  stale,
  writing,
  written,
  writeError,
  onWrite,
}: {
  result: GenerateResult;
  stale: boolean;
  writing: boolean;
  written: GenerateResult | null;
  writeError: unknown;
  onWrite: () => void;
}) {
  const rules = useMemo(
    () => rulesOf(result.documents as readonly Record<string, unknown>[]),
    [result.documents],
  );
  const c = result.coverage;
  const rulesets = result.documents.filter((d) => d.kind === 'Ruleset').length;
  const ipLists = result.documents.filter((d) => d.kind === 'IpList').length;
  const left = result.blockedLeftOut;
  const notes =
    result.blockedByExisting.length +
    result.unlabelled.length +
    result.overriddenDenies.length +
    (left.connections > 0 ? 1 : 0);
  return (
    <>
      {stale ? (
        <div className="notice" data-testid="generator-stale">
          The form changed since this preview: preview again before writing.
        </div>
      ) : null}
      <div className="coverage-row">
        <section className="card-panel coverage" data-testid="generator-coverage">
          <div className="card-label">Coverage of observed traffic in scope</div>
          <div
            className={`coverage-share ${c.share >= 1 ? 'ok' : 'warn'}`}
            data-testid="coverage-share"
          >
            {percent(c.share)}
          </div>
          <div className="coverage-bar">
            <span style={{ width: `${Math.min(100, c.share * 100)}%` }} />
          </div>
          <div className="muted small" data-testid="coverage-detail">
            {count(c.flows.allowed)} of {count(c.flows.inScope)} flows ·{' '}
            {count(c.connections.allowed)} of {count(c.connections.inScope)} connections allowed
          </div>
        </section>
        <div className="summary-cards coverage-cards">
          <div className="card">
            <div className="card-label">Rules proposed</div>
            <div className="card-value" data-testid="rules-count">
              {result.evidence.length}
            </div>
          </div>
          <div className="card">
            <div className="card-label">Rulesets · IP lists</div>
            <div className="card-value">
              {rulesets} · {ipLists}
            </div>
          </div>
          <div className="card">
            <div className="card-label">Already allowed</div>
            <div className="card-value">
              {count(result.alreadyAllowed.reduce((n, a) => n + a.flows, 0))}
            </div>
          </div>
          <div className="card">
            <div className="card-label">Not allowed</div>
            <div className={`card-value ${c.notAllowed.length ? 'bad' : 'ok'}`}>
              {count(c.notAllowed.length)}
            </div>
          </div>
          <div className="card">
            <div className="card-label">Flows read · in scope</div>
            <div className="card-value">
              {count(result.counts.flows)} · {count(result.counts.inScope)}
            </div>
          </div>
        </div>
      </div>

      <section className="card-panel" data-testid="generator-write">
        <div className="write-row">
          <div>
            <h2>Write to the draft</h2>
            <p className="muted small">
              {result.granularity} granularity · adds {plural(result.evidence.length, 'rule')} in{' '}
              {plural(rulesets, 'ruleset')} and {plural(ipLists, 'IP list')}. Nothing is enforced
              until it is provisioned.
            </p>
          </div>
          <span className="spacer" />
          <button
            className="btn primary"
            disabled={writing || stale || result.evidence.length + ipLists === 0 || !!written}
            onClick={onWrite}
            data-testid="generator-write-submit"
          >
            {writing ? <Spinner /> : null} Write to draft
          </button>
        </div>
        <ErrorBox error={writeError} />
        {written ? (
          <div className="ok-box" data-testid="generator-written">
            Written to the draft: {plural(written.documents.length, 'document')}. Review them under{' '}
            <a
              href="/rulesets"
              onClick={(e) => {
                e.preventDefault();
                navigate('rulesets');
              }}
            >
              Rulesets
            </a>
            , then{' '}
            <a
              href="/provisioning"
              onClick={(e) => {
                e.preventDefault();
                navigate('provisioning');
              }}
              data-testid="generator-to-provisioning"
            >
              preview and provision →
            </a>
          </div>
        ) : null}
      </section>

      <section className="card-panel" data-testid="generator-rules">
        <h2>Proposed rules</h2>
        <p className="muted small">Each rule with the observed flows that justify it.</p>
        {result.evidence.length === 0 ? (
          <p className="ok-text" data-testid="generator-no-rules">
            Nothing to add: the existing policy already allows every flow in scope.
          </p>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <thead>
                <tr>
                  <th>Ruleset · rule</th>
                  <th>Sources → destinations</th>
                  <th>Services</th>
                  <th className="num">Flows</th>
                  <th className="num">Conns</th>
                  <th>Seen</th>
                  <th>Examples</th>
                </tr>
              </thead>
              <tbody>
                {result.evidence.map((e) => (
                  <RuleRow
                    key={`${e.ruleset}/${e.rule}`}
                    evidence={e}
                    rule={rules.get(`${e.ruleset}/${e.rule}`)}
                  />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <div className="grid-2">
        <section className="card-panel" data-testid="generator-not-allowed">
          <h2>Not allowed by the draft</h2>
          {c.notAllowed.length === 0 ? (
            <p className="ok-text">None: every observed flow in scope would be allowed.</p>
          ) : (
            <div className="table-wrap short">
              <table className="table">
                <thead>
                  <tr>
                    <th>Source</th>
                    <th>Destination</th>
                    <th>Service</th>
                    <th className="num">Conns</th>
                    <th>Decision</th>
                    <th>Why</th>
                  </tr>
                </thead>
                <tbody>
                  {c.notAllowed.map((f, i) => (
                    <tr key={i} data-testid="not-allowed-row">
                      <td className="mono">{f.source}</td>
                      <td className="mono">{f.destination}</td>
                      <td className="mono">{f.service}</td>
                      <td className="num">{count(f.connections)}</td>
                      <td>
                        <DecisionBadge decision={f.decision} />
                      </td>
                      <td className="muted small">{f.reason}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
        <section className="card-panel" data-testid="generator-notes">
          <h2>Notes</h2>
          {notes === 0 && result.alreadyAllowed.length === 0 ? (
            <p className="muted">Nothing to note.</p>
          ) : null}
          {left.connections > 0 ? (
            <>
              <h3>Blocked attempts (left out)</h3>
              <p className="muted small" data-testid="generator-blocked-left-out">
                {count(left.connections)} connection attempts were blocked by enforcing agents
                {left.flows > 0 ? `; ${count(left.flows)} flows never went through` : ''}. No rule
                is proposed for them (the API's includeBlocked and the CLI's --include-blocked
                would).
              </p>
            </>
          ) : null}
          {result.blockedByExisting.length ? (
            <>
              <h3>Blocked by existing rules (left blocked)</h3>
              <ul className="note-list">
                {result.blockedByExisting.map((b) => (
                  <li key={b.rule}>
                    <span className="mono">{b.rule}</span>{' '}
                    <span className="change change-removed">{b.action}</span>{' '}
                    <span className="muted">
                      {count(b.flows)} flows · {count(b.connections)} conns
                    </span>
                  </li>
                ))}
              </ul>
            </>
          ) : null}
          {result.unlabelled.length ? (
            <>
              <h3>Unlabelled workloads (no rule written)</h3>
              <ul className="note-list">
                {result.unlabelled.map((u) => (
                  <li key={u.workload}>
                    <span className="mono">{u.workload}</span>{' '}
                    <span className="muted">
                      lacks {u.missing.join(', ')} · {count(u.flows)} flows
                    </span>
                  </li>
                ))}
              </ul>
            </>
          ) : null}
          {result.overriddenDenies.length ? (
            <>
              <h3>Rules that would override a deny</h3>
              <ul className="note-list">
                {result.overriddenDenies.map((o) => (
                  <li key={`${o.rule}:${o.existingRule}`}>
                    <span className="mono">{o.rule}</span>{' '}
                    <span className="muted">admits what</span>{' '}
                    <span className="mono">{o.existingRule}</span>{' '}
                    <span className="muted">denies</span>
                  </li>
                ))}
              </ul>
            </>
          ) : null}
          {result.alreadyAllowed.length ? (
            <>
              <h3>Already allowed (no rule needed)</h3>
              <ul className="note-list">
                {result.alreadyAllowed.slice(0, 12).map((a) => (
                  <li key={a.by}>
                    <span className="mono">{a.by}</span>{' '}
                    <span className="muted">
                      {count(a.flows)} flows · {count(a.connections)} conns
                    </span>
                  </li>
                ))}
              </ul>
            </>
          ) : null}
        </section>
      </div>

      <section className="card-panel" data-testid="generator-yaml">
        <h2>YAML</h2>
        <pre className="yaml">{result.yaml}</pre>
      </section>
    </>
  );
}

function RuleRow({
  evidence: e,
  rule,
}: {
  evidence: GenerateResult['evidence'][number];
  rule: RuleView | undefined;
}) {
  return (
    <tr data-testid="generated-rule">
      <td>
        <div className="mono muted small">{e.ruleset}</div>
        <div className="mono strong">{e.rule}</div>
      </td>
      <td>
        {rule ? (
          <div className="rule-ends">
            <span className="chips">
              {rule.sources.map((s) => (
                <span className="chip" key={s}>
                  <span className="chip-value">{s}</span>
                </span>
              ))}
            </span>
            <span className="arrow">→</span>
            <span className="chips">
              {rule.destinations.map((s) => (
                <span className="chip" key={s}>
                  <span className="chip-value">{s}</span>
                </span>
              ))}
            </span>
          </div>
        ) : (
          <span className="muted">—</span>
        )}
      </td>
      <td className="mono">{rule ? rule.services.join(', ') : '—'}</td>
      <td className="num">{count(e.flows)}</td>
      <td className="num">{count(e.connections)}</td>
      <td className="muted small nowrap" title={`${time(e.firstSeen)} – ${time(e.lastSeen)}`}>
        first {ago(e.firstSeen)}
        <br />
        last {ago(e.lastSeen)}
      </td>
      <td className="examples">
        {e.examples.slice(0, 3).map((x) => (
          <div key={x} className="mono small muted ellipsis" title={x}>
            {x}
          </div>
        ))}
      </td>
    </tr>
  );
}

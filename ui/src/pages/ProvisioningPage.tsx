/**
 * Provisioning: what the draft changes (objects, rules, access), which observed traffic it
 * would newly block, the workloads whose firewall changes; then provision with a message,
 * and the version history with rollback.
 */
import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  ApiFailure,
  flowsApi,
  get,
  send,
  type FlowRow,
  type ProvisionPreview,
  type SimulateResult,
  type VersionSummary,
} from '../api';
import { DecisionBadge, ErrorBox, PageHeader, Spinner } from '../components/ui';
import { ago, count, endName, service, time } from '../format';

export function ProvisioningPage() {
  const client = useQueryClient();
  const [message, setMessage] = useState('');
  const preview = useQuery({
    queryKey: ['preview'],
    queryFn: () => get<ProvisionPreview>('/policy/provision/preview'),
  });
  // Observed traffic the draft would stop: blocked (or would be) under the draft, allowed now.
  const impact = useQuery({
    queryKey: ['impact'],
    queryFn: () =>
      flowsApi.page({
        since: '7d',
        policy: 'draft',
        decision: 'blocked,potentially-blocked',
        sort: '-connections',
        limit: 200,
      }),
    // Draft decisions are recomputed in the background after a draft change.
    refetchInterval: 5000,
  });
  // The what-if: the retained flows replayed against the draft, per application.
  const simulate = useQuery({
    queryKey: ['simulate'],
    queryFn: () => send<SimulateResult>('POST', '/policy/simulate', { since: '7d' }),
    retry: (n, e) => !(e instanceof ApiFailure && e.status === 404) && n < 2,
  });
  const versions = useQuery({
    queryKey: ['versions'],
    queryFn: () => get<{ active: number | null; items: VersionSummary[] }>('/policy/versions'),
  });
  const refresh = () => void client.invalidateQueries();
  const provision = useMutation({
    mutationFn: () =>
      send<{ version: number; workloadsChanged: string[] }>('POST', '/policy/provision', {
        message,
      }),
    onSuccess: () => {
      setMessage('');
      refresh();
    },
  });
  const rollback = useMutation({
    mutationFn: (version: number) =>
      send<{ version: number }>('POST', '/policy/rollback', {
        version,
        message: `Roll back to version ${version}`,
      }),
    onSuccess: refresh,
  });

  const newlyBlocked: FlowRow[] = (impact.data?.items ?? []).filter(
    (f) => f.decision === 'allowed' && f.draftDecision !== 'allowed',
  );
  const p = preview.data;
  const gains = p?.diff.access.filter((a) => a.direction === 'gains').length ?? 0;
  const loses = p?.diff.access.filter((a) => a.direction === 'loses').length ?? 0;

  return (
    <div className="page">
      <PageHeader
        title="Provisioning"
        subtitle={
          versions.data?.active
            ? `Version ${versions.data.active} is active`
            : 'No policy version has been provisioned yet'
        }
      />
      <ErrorBox error={preview.error ?? versions.error} />
      <div className="grid-2">
        <section className="card-panel" data-testid="provision-preview">
          <h2>Pending changes</h2>
          {preview.isLoading ? (
            <Spinner label="Comparing the draft with the active version…" />
          ) : null}
          {p && !p.changes ? (
            <p className="muted" data-testid="no-changes">
              The draft is the same as the active version: nothing to provision.
            </p>
          ) : null}
          {p && p.changes ? (
            <>
              <div className="summary-cards compact">
                <div className="card">
                  <div className="card-label">Objects changed</div>
                  <div className="card-value">{p.diff.objects.length}</div>
                </div>
                <div className="card">
                  <div className="card-label">Rules changed</div>
                  <div className="card-value">{p.diff.rules.length}</div>
                </div>
                <div className="card">
                  <div className="card-label">Access gained</div>
                  <div className="card-value ok">{gains}</div>
                </div>
                <div className="card">
                  <div className="card-label">Access lost</div>
                  <div className="card-value bad">{loses}</div>
                </div>
                <div className="card">
                  <div className="card-label">Workloads recompiled</div>
                  <div className="card-value">{p.workloads.length}</div>
                </div>
              </div>
              <table className="mini">
                <tbody>
                  {p.diff.objects.map((o) => (
                    <tr key={`${o.kind}/${o.name}`}>
                      <td>
                        <span className={`change change-${o.change}`}>{o.change}</span>
                      </td>
                      <td className="mono">
                        {o.kind}/{o.name}
                      </td>
                      <td className="muted">{o.fields.join(', ')}</td>
                    </tr>
                  ))}
                  {p.diff.rules.map((r) => (
                    <tr key={`rule:${r.ruleId}`}>
                      <td>
                        <span className={`change change-${r.change}`}>{r.change}</span>
                      </td>
                      <td className="mono">rule {r.ruleId}</td>
                      <td className="muted">{r.fields.join(', ')}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {p.diff.access.length ? (
                <>
                  <h3>
                    Access changes{' '}
                    <span className="muted">
                      ({count(p.diff.accessTotal)}
                      {p.diff.accessTruncated ? ', first shown' : ''})
                    </span>
                  </h3>
                  <div className="table-wrap short">
                    <table className="table">
                      <thead>
                        <tr>
                          <th>From</th>
                          <th>To</th>
                          <th>Service</th>
                          <th>Change</th>
                        </tr>
                      </thead>
                      <tbody>
                        {p.diff.access.slice(0, 200).map((a, i) => (
                          <tr key={i}>
                            <td className="mono">{a.from}</td>
                            <td className="mono">{a.to}</td>
                            <td className="mono">{a.service}</td>
                            <td>
                              <span className={`change change-${a.direction}`}>
                                {a.before} → {a.after}
                              </span>
                            </td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  </div>
                </>
              ) : null}
            </>
          ) : null}

          <Simulation
            result={simulate.data}
            loading={simulate.isLoading}
            error={
              simulate.error instanceof ApiFailure && simulate.error.status === 404
                ? null
                : simulate.error
            }
          />

          <h3>Observed traffic the draft would block</h3>
          <p className="muted small">
            Flows of the last 7 days allowed now but not under the draft.
          </p>
          {impact.isLoading ? <Spinner /> : null}
          <ErrorBox error={impact.error} />
          {impact.data && newlyBlocked.length === 0 ? (
            <p className="ok-text" data-testid="impact-none">
              None: every flow seen in the last 7 days stays allowed.
            </p>
          ) : null}
          {newlyBlocked.length ? (
            <div className="table-wrap short" data-testid="impact">
              <table className="table">
                <thead>
                  <tr>
                    <th>Source</th>
                    <th>Destination</th>
                    <th>Service</th>
                    <th className="num">Conns</th>
                    <th>Under the draft</th>
                  </tr>
                </thead>
                <tbody>
                  {newlyBlocked.map((f) => (
                    <tr key={f.id}>
                      <td className="mono">{endName(f.source)}</td>
                      <td className="mono">{endName(f.destination)}</td>
                      <td className="mono">{service(f.proto, f.port)}</td>
                      <td className="num">{count(f.connections)}</td>
                      <td>
                        <DecisionBadge decision={f.draftDecision} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : null}

          <form
            className="provision-form"
            onSubmit={(e) => {
              e.preventDefault();
              provision.mutate();
            }}
          >
            <label className="field grow">
              <span>What this version changes</span>
              <input
                value={message}
                onChange={(e) => setMessage(e.target.value)}
                placeholder="e.g. Ring-fence payments in prod"
                data-testid="provision-message"
              />
            </label>
            <button
              className="btn primary"
              type="submit"
              disabled={!message.trim() || provision.isPending || !p?.changes}
              data-testid="provision-submit"
            >
              {provision.isPending ? <Spinner /> : null} Provision
            </button>
          </form>
          <ErrorBox error={provision.error} />
          {provision.data ? (
            <div className="ok-box" data-testid="provisioned">
              Version {provision.data.version} is active; {provision.data.workloadsChanged.length}{' '}
              workloads get new firewall rules.
            </div>
          ) : null}
        </section>

        <section className="card-panel" data-testid="versions">
          <h2>Versions</h2>
          <ErrorBox error={rollback.error} />
          {versions.isLoading ? <Spinner /> : null}
          <ol className="timeline">
            {versions.data?.items.map((v) => (
              <li key={v.version} className={v.active ? 'active' : ''} data-testid="version">
                <div className="timeline-dot" />
                <div className="timeline-body">
                  <div className="timeline-head">
                    <span className="strong">Version {v.version}</span>
                    {v.active ? <span className="pill pill-full">active</span> : null}
                    {v.restores ? (
                      <span className="muted small">restores v{v.restores}</span>
                    ) : null}
                    <span className="spacer" />
                    {!v.active ? (
                      <button
                        className="btn small"
                        disabled={rollback.isPending}
                        onClick={() => {
                          if (window.confirm(`Provision version ${v.version}'s policy again?`))
                            rollback.mutate(v.version);
                        }}
                        data-testid="rollback"
                      >
                        Roll back
                      </button>
                    ) : null}
                  </div>
                  <div>{v.message}</div>
                  <div className="muted small" title={time(v.createdAt)}>
                    {v.createdBy} · {ago(v.createdAt)} · {v.objects} objects
                  </div>
                </div>
              </li>
            ))}
          </ol>
          {versions.data && versions.data.items.length === 0 ? (
            <p className="muted">Nothing provisioned yet.</p>
          ) : null}
        </section>
      </div>
    </div>
  );
}

const flowCount = (v: number | { flows: number; connections: number }): number =>
  typeof v === 'number' ? v : v.flows;

/** What the draft would newly block and allow of the last 7 days' flows, per application. */
function Simulation({
  result,
  loading,
  error,
}: {
  result: SimulateResult | undefined;
  loading: boolean;
  error: unknown;
}) {
  if (loading)
    return (
      <>
        <h3>Simulation</h3>
        <Spinner label="Replaying the last 7 days against the draft…" />
      </>
    );
  if (error) return <ErrorBox error={error} />;
  if (!result) return null;
  const apps = result.byApplication.filter(
    (a) => flowCount(a.newlyBlocked) > 0 || flowCount(a.newlyAllowed) > 0,
  );
  return (
    <div data-testid="simulate">
      <h3>Simulation: the last 7 days replayed against the draft</h3>
      <div className="summary-cards compact">
        <div className="card">
          <div className="card-label">Newly blocked flows</div>
          <div
            className={`card-value ${result.newlyBlocked.flows ? 'bad' : 'ok'}`}
            data-testid="simulate-blocked"
          >
            {count(result.newlyBlocked.flows)}
          </div>
        </div>
        <div className="card">
          <div className="card-label">Blocked connections</div>
          <div className={`card-value ${result.newlyBlocked.connections ? 'bad' : ''}`}>
            {count(result.newlyBlocked.connections)}
          </div>
        </div>
        <div className="card">
          <div className="card-label">Newly allowed flows</div>
          <div className="card-value ok" data-testid="simulate-allowed">
            {count(result.newlyAllowed.flows)}
          </div>
        </div>
        <div className="card">
          <div className="card-label">Allowed connections</div>
          <div className="card-value">{count(result.newlyAllowed.connections)}</div>
        </div>
      </div>
      {apps.length ? (
        <table className="mini" data-testid="simulate-apps">
          <thead>
            <tr>
              <th>Application</th>
              <th className="num">Conns newly blocked</th>
              <th className="num">Conns newly allowed</th>
            </tr>
          </thead>
          <tbody>
            {apps.map((a) => (
              <tr key={a.application} data-testid="simulate-app">
                <td className="mono">{a.application}</td>
                <td className={`num${flowCount(a.newlyBlocked) ? ' bad-text' : ''}`}>
                  {count(flowCount(a.newlyBlocked))}
                </td>
                <td className={`num${flowCount(a.newlyAllowed) ? ' ok-text' : ''}`}>
                  {count(flowCount(a.newlyAllowed))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p className="muted small">
          The draft decides every observed flow as the active policy does.
        </p>
      )}
    </div>
  );
}

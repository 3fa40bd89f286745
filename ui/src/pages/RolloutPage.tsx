/**
 * Rollout: pick workloads by selector and move them one step towards full enforcement
 * (visibility → selective → full). Before each step, the potentially-blocked flows of the last
 * 7 days that touch them: the traffic that would stop, and so stands in the way. The selector
 * comes from `?selector=` (the Workloads page links here with its filter) and is kept there.
 */
import { useMemo, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ENFORCEMENT_MODES, flowsApi, send, type EndView } from '../api';
import { ErrorBox, LabelChips, ModePill, PageHeader, Spinner } from '../components/ui';
import { LabelHints, SelectorInput } from '../components/SelectorInput';
import { parseSelector, selects } from '../components/policyText';
import { count, plural, service, time } from '../format';
import { navigate, searchParams } from '../router';
import { allWorkloads } from './WorkloadsPage';

type Mode = (typeof ENFORCEMENT_MODES)[number];
const STEPS: readonly Mode[] = ['visibility', 'selective', 'full'];
const STEP_TEXT: Readonly<Record<Mode, string>> = {
  idle: 'No agent policy: nothing is seen or enforced.',
  visibility: 'Flows are reported and decided; nothing is blocked.',
  selective: 'Deny rules are enforced; the rest is still only reported.',
  full: 'Only what the rules allow gets through.',
};

/**
 * The first step that stops a potentially-blocked flow: deny rules are enforced from selective
 * on, the default deny (no allow rule) only in full.
 */
const stoppedAt = (decidedBy: string): Mode =>
  /^(override-)?deny rule/.test(decidedBy) ? 'selective' : 'full';

/** The step after the least advanced workload's mode, or null when all are at full. */
function nextMode(modes: readonly string[]): Mode | null {
  if (modes.length === 0) return null;
  const rank = (m: string) => ENFORCEMENT_MODES.indexOf(m as Mode);
  const least = Math.min(...modes.map(rank));
  if (least < 0) return 'visibility';
  return least >= ENFORCEMENT_MODES.length - 1 ? null : ENFORCEMENT_MODES[least + 1]!;
}

export function RolloutPage() {
  const client = useQueryClient();
  const [text, setText] = useState(() => searchParams().get('selector') ?? '');
  const [applied, setApplied] = useState(text);
  const [confirming, setConfirming] = useState(false);
  const parsed = parseSelector(applied);
  const selector = typeof parsed === 'string' || !Object.keys(parsed).length ? null : parsed;

  const workloads = useQuery({ queryKey: ['workloads'], queryFn: allWorkloads });
  const picked = useMemo(
    () => (selector ? (workloads.data ?? []).filter((w) => selects(selector, w.labels)) : []),
    [workloads.data, selector],
  );
  const modes = useMemo(() => {
    const m: Record<string, number> = {};
    for (const w of picked) m[w.mode] = (m[w.mode] ?? 0) + 1;
    return m;
  }, [picked]);
  const next = nextMode(picked.map((w) => w.mode));

  const flows = useQuery({
    queryKey: ['rollout-flows', applied],
    queryFn: () =>
      flowsApi.page({
        any: applied.trim(),
        decision: 'potentially-blocked',
        since: '7d',
        sort: '-connections',
        limit: 200,
      }),
    enabled: selector !== null,
  });
  const move = useMutation({
    mutationFn: (mode: Mode) =>
      send<{ matched: number; changed: string[] }>('POST', '/workloads/mode', {
        selector: { labels: selector },
        mode,
      }),
    onSuccess: () => {
      setConfirming(false);
      void client.invalidateQueries();
    },
  });

  const blocking = flows.data?.items ?? [];
  const blockingTotal = flows.data?.total ?? 0;
  // What the next step itself would stop (selective: only what deny rules match).
  const stoppedNext =
    next === 'full'
      ? blockingTotal
      : next === 'selective'
        ? blocking.filter((f) => stoppedAt(f.decidedBy) === 'selective').length
        : 0;

  return (
    <div className="page">
      <PageHeader
        title="Rollout"
        subtitle="Move workloads by selector through visibility → selective → full enforcement"
      />
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(text);
          // The address names the selection, so a reload or a shared link shows the same one.
          window.history.replaceState(
            null,
            '',
            text.trim() ? `/rollout?selector=${encodeURIComponent(text.trim())}` : '/rollout',
          );
          setConfirming(false);
          move.reset();
        }}
        data-testid="rollout-form"
      >
        <SelectorInput
          label="Workloads"
          value={text}
          onChange={setText}
          placeholder="app=shop,env=prod"
          testId="rollout-selector"
        />
        <LabelHints value={text} onChange={setText} />
        <div className="filter-row">
          {typeof parsed === 'string' ? <span className="field-error">{parsed}</span> : null}
          <span className="spacer" />
          <button type="submit" className="btn primary" data-testid="rollout-apply">
            Show
          </button>
        </div>
      </form>
      <ErrorBox error={workloads.error} />

      {selector === null ? (
        <p className="muted">Choose the workloads to move with a label selector.</p>
      ) : (
        <>
          <ol className="stepper" data-testid="rollout-steps">
            {(modes.idle ? ENFORCEMENT_MODES : STEPS).map((s) => (
              <li
                key={s}
                className={`step${modes[s] ? ' current' : ''}${s === next ? ' next' : ''}`}
              >
                <div className="step-head">
                  <ModePill mode={s} />
                  <span className="card-value">{modes[s] ?? 0}</span>
                  {s === next ? <span className="step-tag">next step</span> : null}
                </div>
                <div className="muted small">{STEP_TEXT[s]}</div>
              </li>
            ))}
          </ol>

          <div className="grid-2 rollout-grid">
            <section className="card-panel" data-testid="rollout-blocking">
              <h2>
                {next
                  ? `What stands in the way of ${next}`
                  : 'Potentially-blocked flows of the last 7 days'}
              </h2>
              <p className="muted small">
                Flows of the last 7 days touching these workloads that the active policy does not
                allow. They pass now; selective stops those a deny rule matches, full stops the
                rest.
              </p>
              {flows.isLoading ? <Spinner label="Reading the flows…" /> : null}
              <ErrorBox error={flows.error} />
              {flows.data && blocking.length === 0 ? (
                <p className="ok-text" data-testid="rollout-clear">
                  None: every flow these workloads had in the last 7 days is allowed.
                </p>
              ) : null}
              {blocking.length ? (
                <>
                  <div className="table-wrap short" data-testid="rollout-flows">
                    <table className="table">
                      <thead>
                        <tr>
                          <th>Source</th>
                          <th>Destination</th>
                          <th>Service</th>
                          <th className="num">Conns</th>
                          <th>Stopped at</th>
                        </tr>
                      </thead>
                      <tbody>
                        {blocking.map((f) => (
                          <tr key={f.id} data-testid="rollout-flow">
                            <td>
                              <End end={f.source} />
                            </td>
                            <td>
                              <End end={f.destination} />
                            </td>
                            <td className="mono">{service(f.proto, f.port)}</td>
                            <td className="num" title={`last seen ${time(f.lastSeen)}`}>
                              {count(f.connections)}
                            </td>
                            <td>
                              <div className="decided">
                                <ModePill mode={stoppedAt(f.decidedBy)} />
                                <span className="rule">{f.decidedBy}</span>
                              </div>
                            </td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  </div>
                  <p className="muted small">
                    {blockingTotal > blocking.length
                      ? `The busiest ${blocking.length} of ${count(blockingTotal)}. `
                      : ''}
                    Allow them with{' '}
                    <a
                      href="/generator"
                      onClick={(e) => {
                        e.preventDefault();
                        navigate(
                          'generator',
                          `?scope=${encodeURIComponent(applied.trim())}&granularity=service`,
                        );
                      }}
                      data-testid="rollout-generate"
                    >
                      the generator
                    </a>{' '}
                    or a rule, or{' '}
                    <a
                      href="/flows"
                      onClick={(e) => {
                        e.preventDefault();
                        navigate(
                          'flows',
                          `?any=${encodeURIComponent(applied.trim())}&decision=potentially-blocked&since=7d`,
                        );
                      }}
                    >
                      explore them
                    </a>
                    .
                  </p>
                </>
              ) : null}
            </section>

            <section className="card-panel" data-testid="rollout-move">
              <h2>Move the selection</h2>
              {next ? (
                <>
                  <p className="muted small">
                    {plural(picked.length, 'workload')} match <code>{applied.trim()}</code>. The
                    next step sets all of them to <ModePill mode={next} />.
                  </p>
                  {!confirming ? (
                    <button
                      className="btn primary"
                      disabled={picked.length === 0 || move.isPending}
                      onClick={() => setConfirming(true)}
                      data-testid="rollout-move-start"
                    >
                      Move {plural(picked.length, 'workload')} to {next}
                    </button>
                  ) : (
                    <div className="confirm" data-testid="rollout-confirm">
                      <div>
                        Set <strong>{plural(picked.length, 'workload')}</strong> to{' '}
                        <strong>{next}</strong>?
                        {stoppedNext > 0 ? (
                          <div className="warn-text" data-testid="rollout-warning">
                            {plural(stoppedNext, 'flow')} seen in the last 7 days would be blocked.
                          </div>
                        ) : (
                          <div className="ok-text">
                            Nothing seen in the last 7 days would be blocked by this step.
                          </div>
                        )}
                      </div>
                      <div className="confirm-actions">
                        <button
                          className="btn ghost"
                          onClick={() => setConfirming(false)}
                          data-testid="rollout-cancel"
                        >
                          Cancel
                        </button>
                        <button
                          className="btn primary"
                          disabled={move.isPending}
                          onClick={() => move.mutate(next)}
                          data-testid="rollout-confirm-submit"
                        >
                          {move.isPending ? <Spinner /> : null} Move to {next}
                        </button>
                      </div>
                    </div>
                  )}
                </>
              ) : picked.length ? (
                <p className="ok-text">Every selected workload is in full enforcement.</p>
              ) : (
                <p className="muted">No workloads match.</p>
              )}
              <ErrorBox error={move.error} />
              {move.data ? (
                <div className="ok-box" data-testid="rollout-moved">
                  {move.data.changed.length} of {move.data.matched} workloads changed mode.
                </div>
              ) : null}

              <h3>Selected workloads</h3>
              <div className="table-wrap short">
                <table className="table" data-testid="rollout-workloads">
                  <tbody>
                    {picked.map((w) => (
                      <tr key={w.name} data-testid="rollout-workload" data-name={w.name}>
                        <td className="mono strong nowrap">{w.name}</td>
                        <td>
                          <LabelChips
                            labels={Object.fromEntries(
                              Object.entries(w.labels).filter(([k]) => !(k in (selector ?? {}))),
                            )}
                          />
                        </td>
                        <td>
                          <ModePill mode={w.mode} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                {workloads.data && picked.length === 0 ? (
                  <div className="table-empty">No workloads match.</div>
                ) : null}
              </div>
            </section>
          </div>
        </>
      )}
    </div>
  );
}

function End({ end }: { end: EndView }) {
  return (
    <span className="mono nowrap">
      {end.workload ?? end.address}
      {end.workload === undefined && end.group ? (
        <span className="chip net end-group">{end.group}</span>
      ) : null}
    </span>
  );
}

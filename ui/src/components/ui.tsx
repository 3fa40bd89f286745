/** The small pieces every page uses: decision badges, mode pills, errors, empty states. */
import type { ReactNode } from 'react';
import { ApiFailure, type Decision } from '../api';
import { DECISION_LABEL } from '../format';

export function DecisionBadge({ decision }: { decision: Decision }) {
  return (
    <span
      className={`badge badge-${decision}`}
      data-testid="decision-badge"
      data-decision={decision}
    >
      <span className="dot" />
      {DECISION_LABEL[decision]}
    </span>
  );
}

export function ModePill({ mode }: { mode: string | null | undefined }) {
  const m = mode ?? 'unknown';
  return (
    <span className={`pill pill-${m}`} data-testid="mode-pill">
      {m}
    </span>
  );
}

export function LabelChips({ labels }: { labels: Readonly<Record<string, string>> }) {
  const entries = Object.entries(labels);
  if (!entries.length) return <span className="muted">no labels</span>;
  return (
    <span className="chips">
      {entries.map(([k, v]) => (
        <span className="chip" key={k}>
          <span className="chip-key">{k}</span>
          <span className="chip-value">{v}</span>
        </span>
      ))}
    </span>
  );
}

/** `POLICY_INVALID` → `Policy invalid`. */
const sentence = (code: string): string => {
  const text = code.replace(/_/g, ' ').toLowerCase();
  return text.charAt(0).toUpperCase() + text.slice(1);
};

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error instanceof ApiFailure ? error : null;
  return (
    <div className="error-box" role="alert" data-testid="error">
      <strong>{e ? sentence(e.code) : 'Error'}</strong>
      <span>{error instanceof Error ? error.message : 'something went wrong'}</span>
      {e && e.details.length > 1 ? (
        <ul>
          {e.details.map((d, i) => (
            <li key={i}>
              <code>{d.path}</code> {d.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

export function Spinner({ label }: { label?: string }) {
  return (
    <span className="spinner-wrap">
      <span className="spinner" />
      {label ? <span>{label}</span> : null}
    </span>
  );
}

export function PageHeader({
  title,
  subtitle,
  children,
}: {
  title: string;
  subtitle?: ReactNode;
  children?: ReactNode;
}) {
  return (
    <header className="page-header">
      <div>
        <h1>{title}</h1>
        {subtitle ? <p className="subtitle">{subtitle}</p> : null}
      </div>
      <div className="page-actions">{children}</div>
    </header>
  );
}

export function Segmented<T extends string>({
  value,
  options,
  onChange,
  testId,
}: {
  value: T;
  options: readonly { value: T; label: string }[];
  onChange: (v: T) => void;
  testId?: string;
}) {
  return (
    <div className="segmented" data-testid={testId} role="radiogroup">
      {options.map((o) => (
        <button
          key={o.value}
          type="button"
          role="radio"
          aria-checked={o.value === value}
          className={o.value === value ? 'active' : ''}
          onClick={() => onChange(o.value)}
        >
          {o.label}
        </button>
      ))}
    </div>
  );
}

export const WINDOWS = [
  { value: '1h', label: '1h' },
  { value: '24h', label: '24h' },
  { value: '7d', label: '7d' },
  { value: '30d', label: '30d' },
] as const;
export type WindowChoice = (typeof WINDOWS)[number]['value'];

export const POLICIES = [
  { value: 'active', label: 'Active policy' },
  { value: 'draft', label: 'Draft' },
] as const;
export type PolicyChoice = (typeof POLICIES)[number]['value'];

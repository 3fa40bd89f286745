/**
 * A label selector typed as text (`app=payments,env=prod`), suggesting the estate's label keys
 * and values for the part being typed (the browser's list completes the whole text).
 */
import { useId, useMemo } from 'react';
import { useQuery } from '@tanstack/react-query';
import { get, type LabelKey } from '../api';

export function useLabelKeys() {
  return useQuery({
    queryKey: ['labels'],
    queryFn: () => get<{ keys: LabelKey[] }>('/labels'),
    staleTime: 30_000,
  });
}

export function SelectorInput({
  label,
  value,
  onChange,
  placeholder,
  testId,
}: {
  label: string;
  value: string;
  onChange: (v: string) => void;
  placeholder?: string;
  testId: string;
}) {
  const listId = useId();
  const labels = useLabelKeys();
  const suggestions = useMemo(() => {
    const comma = value.lastIndexOf(',');
    const before = comma >= 0 ? `${value.slice(0, comma + 1)}` : '';
    const used = new Set(
      before
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean),
    );
    const out: string[] = [];
    for (const k of labels.data?.keys ?? [])
      for (const v of k.values) {
        const pair = `${k.key}=${v.value}`;
        if (!used.has(pair)) out.push(`${before}${pair}`);
      }
    return out.slice(0, 300);
  }, [labels.data, value]);
  return (
    <label className="field">
      <span>{label}</span>
      <input
        value={value}
        placeholder={placeholder}
        onChange={(e) => onChange(e.target.value)}
        list={listId}
        spellCheck={false}
        autoComplete="off"
        className="mono-input"
        data-testid={testId}
      />
      <datalist id={listId}>
        {suggestions.map((s) => (
          <option key={s} value={s} />
        ))}
      </datalist>
    </label>
  );
}

/** The known label keys with their values, as chips that add `key=value` to a selector. */
export function LabelHints({ value, onChange }: { value: string; onChange: (v: string) => void }) {
  const labels = useLabelKeys();
  const keys = (labels.data?.keys ?? []).filter((k) => ['app', 'env', 'role'].includes(k.key));
  if (!keys.length) return null;
  const add = (pair: string) => {
    const parts = value
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    onChange(parts.includes(pair) ? value : [...parts, pair].join(','));
  };
  return (
    <div className="label-hints" data-testid="label-hints">
      {keys.map((k) => (
        <div className="label-hint-row" key={k.key}>
          <span className="toolbar-label mono">{k.key}</span>
          {k.values.slice(0, 12).map((v) => (
            <button
              type="button"
              key={v.value}
              className="toggle small-toggle"
              onClick={() => add(`${k.key}=${v.value}`)}
              title={`${v.workloads} workloads`}
            >
              {v.value}
            </button>
          ))}
        </div>
      ))}
    </div>
  );
}

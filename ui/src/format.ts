/** How numbers, times and flow ends read in the UI. */
import type { Decision, EndView } from './api';

const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });
const whole = new Intl.NumberFormat('en');

export const count = (n: number): string => (n >= 10_000 ? compact.format(n) : whole.format(n));

export function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value >= 100 || unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** `2026-11-23 20:45` in the viewer's time zone. */
export function time(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** `3 min ago`, `2 h ago`, `5 d ago`. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const seconds = Math.max(0, (now - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export const service = (proto: string, port: number | null): string =>
  port === null ? proto : `${port}/${proto}`;

export const DECISION_LABEL: Readonly<Record<Decision, string>> = {
  allowed: 'Allowed',
  'potentially-blocked': 'Potentially blocked',
  blocked: 'Blocked',
};

export const DECISION_COLOR: Readonly<Record<Decision, string>> = {
  allowed: '#22c55e',
  'potentially-blocked': '#f59e0b',
  blocked: '#ef4444',
};

export const endName = (end: EndView): string => end.workload ?? end.address;

export const labelText = (labels: Readonly<Record<string, string>>): string =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

/** `1 flow`, `2 flows`, `12.3K flows`. */
export const plural = (n: number, one: string, many = `${one}s`): string =>
  `${count(n)} ${n === 1 ? one : many}`;

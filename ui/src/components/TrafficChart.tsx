/**
 * Traffic over time: connections per bucket, stacked by decision, as a small SVG area chart
 * (no charting library: three paths and two axes).
 */
import type { Decision, TimeSeries } from '../api';
import { count, DECISION_COLOR, time } from '../format';

const W = 360;
const H = 130;
const PAD = { left: 36, right: 4, top: 8, bottom: 20 };
const ORDER: readonly Decision[] = ['allowed', 'potentially-blocked', 'blocked'];

export function TrafficChart({ series }: { series: TimeSeries }) {
  const points = series.points;
  if (points.length === 0)
    return <div className="chart-empty muted">No traffic in this window.</div>;
  const max = Math.max(1, ...points.map((p) => p.connections));
  const x = (i: number) =>
    PAD.left + (points.length === 1 ? 0 : (i / (points.length - 1)) * (W - PAD.left - PAD.right));
  const y = (v: number) => H - PAD.bottom - (v / max) * (H - PAD.top - PAD.bottom);
  // Stack: allowed at the bottom, then potentially blocked, then blocked.
  const layers = ORDER.map((decision, li) => {
    const lower = points.map((p) => ORDER.slice(0, li).reduce((s, d) => s + p.byDecision[d], 0));
    const upper = points.map((p, i) => lower[i]! + p.byDecision[decision]);
    if (upper.every((u, i) => u === lower[i])) return null;
    const top = upper.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    const bottom = lower.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).reverse();
    return (
      <path
        key={decision}
        d={`M${top.join('L')}L${bottom.join('L')}Z`}
        fill={DECISION_COLOR[decision]}
        fillOpacity={0.35}
        stroke={DECISION_COLOR[decision]}
        strokeWidth={1.2}
      />
    );
  });
  const first = points[0]!.t;
  const last = points[points.length - 1]!.t;
  return (
    <svg
      className="chart"
      viewBox={`0 0 ${W} ${H}`}
      data-testid="traffic-chart"
      role="img"
      aria-label={`Connections from ${time(first)} to ${time(last)}, at most ${count(max)} per ${series.window.resolution}`}
    >
      {[0, 0.5, 1].map((f) => (
        <g key={f}>
          <line
            x1={PAD.left}
            x2={W - PAD.right}
            y1={y(max * f)}
            y2={y(max * f)}
            stroke="#1e293b"
            strokeWidth={1}
          />
          <text x={PAD.left - 6} y={y(max * f) + 4} textAnchor="end" className="axis">
            {count(Math.round(max * f))}
          </text>
        </g>
      ))}
      {layers}
      <text x={PAD.left} y={H - 6} className="axis">
        {time(first)}
      </text>
      <text x={W - PAD.right} y={H - 6} textAnchor="end" className="axis">
        {time(last)}
      </text>
    </svg>
  );
}

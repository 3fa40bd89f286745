/**
 * The audit log: who changed what, newest first, live. The stream route sends the stored
 * events and then each new one as it commits, as JSON lines; the page keeps the latest.
 */
import { useEffect, useMemo, useState } from 'react';
import { request, type AuditEvent } from '../api';
import { ErrorBox, PageHeader } from '../components/ui';
import { time } from '../format';

const KEEP = 2000;

/** Reads the stream for one filter; the caller remounts (a `key`) to change the filter. */
function useAuditStream(type: string): { events: AuditEvent[]; error: unknown; live: boolean } {
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [live, setLive] = useState(false);
  useEffect(() => {
    const abort = new AbortController();
    const since = new Date(Date.now() - 30 * 86400_000).toISOString();
    const q = new URLSearchParams({ since });
    if (type) q.set('type', type);
    void (async () => {
      try {
        const response = await request(`/audit-events/stream?${q.toString()}`, {
          signal: abort.signal,
        });
        const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
        setLive(true);
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          const lines = buffer.split('\n');
          buffer = lines.pop() ?? '';
          const fresh = lines.filter(Boolean).map((l) => JSON.parse(l) as AuditEvent);
          if (fresh.length) setEvents((current) => [...fresh.reverse(), ...current].slice(0, KEEP));
        }
      } catch (e) {
        if (!abort.signal.aborted) setError(e);
      } finally {
        setLive(false);
      }
    })();
    return () => abort.abort();
  }, [type]);
  return { events, error, live };
}

const summary = (e: AuditEvent): string => {
  const after = e.after as Record<string, unknown> | null;
  const before = e.before as Record<string, unknown> | null;
  if (e.type.endsWith('.update') && after && before) {
    const changed = Object.keys(after).filter(
      (k) => JSON.stringify(after[k]) !== JSON.stringify(before[k]),
    );
    return changed.length ? `changed ${changed.join(', ')}` : '';
  }
  if (after && typeof after === 'object' && 'message' in after) return String(after.message);
  return '';
};

export function AuditPage() {
  const [applied, setApplied] = useState('');
  return <AuditLog key={applied} type={applied} onType={setApplied} />;
}

function AuditLog({ type: applied, onType }: { type: string; onType: (t: string) => void }) {
  const [type, setType] = useState(applied);
  const { events, error, live } = useAuditStream(applied);
  const types = useMemo(() => [...new Set(events.map((e) => e.type.split('.')[0]))], [events]);
  return (
    <div className="page">
      <PageHeader
        title="Audit log"
        subtitle={
          <>
            Every change to the estate and the policy, last 30 days{' '}
            {live ? (
              <span className="live" data-testid="audit-live">
                <span className="dot" />
                live
              </span>
            ) : null}
          </>
        }
      >
        <form
          onSubmit={(e) => {
            e.preventDefault();
            onType(type.trim());
          }}
        >
          <input
            className="search"
            list="audit-types"
            placeholder="Type or prefix, e.g. workload.*"
            value={type}
            onChange={(e) => setType(e.target.value)}
            data-testid="audit-type"
          />
          <datalist id="audit-types">
            {types.map((t) => (
              <option key={t} value={`${t}.*`} />
            ))}
          </datalist>
        </form>
      </PageHeader>
      <ErrorBox error={error} />
      <div className="table-wrap">
        <table className="table" data-testid="audit-table">
          <thead>
            <tr>
              <th>Time</th>
              <th>Actor</th>
              <th>Event</th>
              <th>Resource</th>
              <th>Change</th>
            </tr>
          </thead>
          <tbody>
            {events.map((e) => (
              <tr key={e.id} data-testid="audit-row">
                <td className="nowrap muted">{time(e.at)}</td>
                <td className="mono">{e.actor}</td>
                <td>
                  <span className={`event event-${e.type.split('.')[0]}`}>{e.type}</span>
                </td>
                <td className="mono">
                  <span className="muted">{e.resource.kind}</span> {e.resource.name}
                </td>
                <td className="muted ellipsis">{summary(e)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {events.length === 0 && !error ? (
          <div className="table-empty">No events in the last 30 days.</div>
        ) : null}
      </div>
    </div>
  );
}

/**
 * The audit log: every change, with who, when, what (before and after) and where from.
 * An event is written in the same transaction as the change it describes, so the log
 * never claims a change that did not happen, nor misses one that did. After the commit,
 * it is handed to the live sinks (the JSON-lines stream, syslog).
 */
import { EventEmitter } from 'node:events';
import type { Db } from '../store/store.js';

export interface AuditEvent {
  readonly id: number;
  readonly at: string;
  readonly actor: string;
  readonly type: string;
  readonly resource: { readonly kind: string; readonly name: string };
  readonly before: unknown;
  readonly after: unknown;
  readonly source: string | null;
  readonly requestId: string | null;
}

export interface AuditInput {
  readonly actor: string;
  readonly type: string;
  readonly kind: string;
  readonly name: string;
  readonly before?: unknown;
  readonly after?: unknown;
  readonly source?: string | null;
  readonly requestId?: string | null;
}

/** Live subscribers to committed audit events. */
export class AuditFeed extends EventEmitter<{ event: [AuditEvent] }> {
  publish(events: readonly AuditEvent[]): void {
    for (const e of events) this.emit('event', e);
  }
}

const toText = (v: unknown): string | null =>
  v === undefined || v === null ? null : JSON.stringify(v);

/** Writes one audit event inside the caller's transaction and returns it (publish after commit). */
export async function recordAudit(db: Db, input: AuditInput): Promise<AuditEvent> {
  const at = new Date().toISOString();
  const row = await db
    .insertInto('audit_events')
    .values({
      at,
      actor: input.actor,
      type: input.type,
      resource_kind: input.kind,
      resource_name: input.name,
      before: toText(input.before),
      after: toText(input.after),
      source: input.source ?? null,
      request_id: input.requestId ?? null,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return {
    id: Number(row.id),
    at,
    actor: input.actor,
    type: input.type,
    resource: { kind: input.kind, name: input.name },
    before: input.before ?? null,
    after: input.after ?? null,
    source: input.source ?? null,
    requestId: input.requestId ?? null,
  };
}

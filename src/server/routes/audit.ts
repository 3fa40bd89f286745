/**
 * The audit log, read: a query by time, type (or type prefix) and id cursor, and a stream of
 * JSON lines (the matching stored events, then live ones as they commit).
 */
import { sql } from 'kysely';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AuditEventRow } from '../../store/schema.js';
import type { Db } from '../../store/store.js';
import type { AuditEvent } from '../audit.js';
import type { RouteOptions } from '../context.js';

export const AUDIT_PAGE_MAX = 1000;
const STREAM_BATCH = 500;

const isoTime = z
  .string()
  .max(64)
  .refine(
    (s) => !Number.isNaN(Date.parse(s)),
    'is not a time (use ISO 8601, e.g. 2026-11-23T20:45:00Z)',
  )
  .transform((s) => new Date(s).toISOString());

const filters = {
  since: isoTime.optional(),
  until: isoTime.optional(),
  type: z
    .string()
    .max(128)
    .regex(
      /^[a-z][a-z0-9_.-]*\*?$/,
      'is not an event type or prefix (e.g. "workload.labels", "workload." or "workload.*")',
    )
    .optional(),
  after: z.coerce.number().int().min(0).optional(),
};

const auditEventView = z.object({
  id: z.number(),
  at: z.string(),
  actor: z.string(),
  type: z.string(),
  resource: z.object({ kind: z.string(), name: z.string() }),
  before: z.unknown(),
  after: z.unknown(),
  source: z.string().nullable(),
  requestId: z.string().nullable(),
});

type Filters = {
  since?: string | undefined;
  until?: string | undefined;
  type?: string | undefined;
  after?: number | undefined;
};

const parseJson = (text: string | null): unknown => (text === null ? null : JSON.parse(text));

export function auditEventFromRow(r: AuditEventRow): AuditEvent {
  return {
    id: Number(r.id),
    at: r.at,
    actor: r.actor,
    type: r.type,
    resource: { kind: r.resource_kind, name: r.resource_name },
    before: parseJson(r.before),
    after: parseJson(r.after),
    source: r.source,
    requestId: r.request_id,
  };
}

/** `workload.` and `workload.*` are prefixes; anything else is an exact type. */
function typePrefix(type: string): string | null {
  if (type.endsWith('*')) return type.slice(0, -1);
  if (type.endsWith('.')) return type;
  return null;
}

export function matchesFilters(e: AuditEvent, f: Filters): boolean {
  if (f.after !== undefined && e.id <= f.after) return false;
  if (f.since !== undefined && e.at < f.since) return false;
  if (f.until !== undefined && e.at >= f.until) return false;
  if (f.type !== undefined) {
    const prefix = typePrefix(f.type);
    if (prefix !== null ? !e.type.startsWith(prefix) : e.type !== f.type) return false;
  }
  return true;
}

async function queryEvents(db: Db, f: Filters, limit: number): Promise<AuditEvent[]> {
  let q = db.selectFrom('audit_events').selectAll();
  if (f.after !== undefined) q = q.where('id', '>', f.after);
  if (f.since !== undefined) q = q.where('at', '>=', f.since);
  if (f.until !== undefined) q = q.where('at', '<', f.until);
  if (f.type !== undefined) {
    const prefix = typePrefix(f.type);
    if (prefix !== null) {
      // LIKE with the prefix's own wildcards escaped.
      const escaped = prefix.replace(/[\\%_]/g, (c) => `\\${c}`);
      q = q.where(sql<boolean>`type like ${`${escaped}%`} escape '\\'`);
    } else q = q.where('type', '=', f.type);
  }
  const rows = await q.orderBy('id').limit(limit).execute();
  // LIKE's escape and case rules differ between SQLite and PostgreSQL; the prefix test decides.
  return rows.map(auditEventFromRow).filter((e) => matchesFilters(e, f));
}

export const auditRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  // Open streams end when the server closes, so a listening client never holds a shutdown.
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });
  app.get(
    '/audit-events',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'Query the audit log by time, type or type prefix, oldest first, paged by id',
        tags: ['audit'],
        querystring: z.strictObject({
          ...filters,
          limit: z.coerce.number().int().min(1).max(AUDIT_PAGE_MAX).default(100),
        }),
        response: {
          200: z.object({
            items: z.array(auditEventView),
            /** The `after` for the next page; null when this page is the last. */
            next: z.number().nullable(),
          }),
        },
      },
    },
    async (request) => {
      const { limit, ...f } = request.query;
      const items = await queryEvents(ctx.store.db, f, limit + 1);
      const page = items.slice(0, limit);
      return {
        items: page,
        next: items.length > limit ? page[page.length - 1]!.id : null,
      };
    },
  );

  app.get(
    '/audit-events/stream',
    {
      config: { permission: 'read' },
      schema: {
        summary:
          'Stream the audit log as JSON lines: the matching stored events, then each new one as it commits',
        tags: ['audit'],
        querystring: z.strictObject(filters),
      },
    },
    async (request, reply) => {
      const f: Filters = request.query;
      // Subscribe first, so nothing committed while the backlog is read is lost.
      const pending: AuditEvent[] = [];
      let live = false;
      let lastId = f.after ?? 0;
      let closed = false;
      const raw = reply.raw;
      const write = (e: AuditEvent) => {
        if (closed || e.id <= lastId || !matchesFilters(e, f)) return;
        lastId = e.id;
        raw.write(`${JSON.stringify(e)}\n`);
      };
      const onEvent = (e: AuditEvent) => {
        if (live) write(e);
        else pending.push(e);
      };
      const cleanup = () => {
        closed = true;
        ctx.audit.off('event', onEvent);
        streams.delete(end);
      };
      const end = () => {
        cleanup();
        raw.end();
      };
      streams.add(end);
      ctx.audit.on('event', onEvent);
      request.raw.on('close', cleanup);
      raw.on('close', cleanup);
      reply.hijack();
      raw.writeHead(200, {
        'content-type': 'application/x-ndjson; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
      });
      try {
        for (;;) {
          const batch = await queryEvents(ctx.store.db, { ...f, after: lastId }, STREAM_BATCH);
          if (closed) return;
          for (const e of batch) write(e);
          if (batch.length < STREAM_BATCH) break;
        }
      } catch (err) {
        request.log.error({ err }, 'audit stream failed');
        end();
        return;
      }
      live = true;
      for (const e of pending.splice(0)) write(e);
      if (f.until !== undefined && new Date().toISOString() >= f.until) {
        // Nothing later can match.
        end();
      }
    },
  );
};

/**
 * A change made through the API: one transaction for the data and its audit events, and
 * the events published only once the transaction has committed.
 */
import type { FastifyRequest } from 'fastify';
import type { Transaction } from 'kysely';
import type { Database } from '../store/schema.js';
import type { ServerContext } from './context.js';
import { recordAudit, type AuditEvent, type AuditInput } from './audit.js';
import { actorOf } from './auth.js';

export type Audit = (event: Omit<AuditInput, 'actor' | 'source' | 'requestId'>) => Promise<void>;

export async function change<T>(
  ctx: ServerContext,
  request: FastifyRequest | null,
  work: (trx: Transaction<Database>, audit: Audit) => Promise<T>,
): Promise<T> {
  const events: AuditEvent[] = [];
  let result: T;
  try {
    result = await ctx.store.transaction(async (trx) => {
      const audit: Audit = async (event) => {
        events.push(
          await recordAudit(trx, {
            ...event,
            actor: request ? actorOf(request.principal) : 'system',
            source: request?.ip ?? null,
            requestId: request?.id ?? null,
          }),
        );
      };
      return work(trx, audit);
    });
  } catch (e) {
    ctx.compileCache.discard();
    throw e;
  }
  ctx.compileCache.commit();
  // A revoked credential, or one whose agent's workload is gone, must stop working now.
  if (events.some((e) => /\.(revoke|delete)$/.test(e.type))) ctx.credentials.clear();
  ctx.audit.publish(events);
  return result;
}
